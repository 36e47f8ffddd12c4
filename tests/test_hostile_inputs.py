"""Issue 13, attacks 5-10 through the public commands: non-finite numbers, `--aligned` on things that are not
aligned crops, decompression bombs and hostile training files, broken pair lists, read-only and missing data
folders, weak pass-phrases."""
from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
import torch
from PIL import Image

from xfr_desktop.cli import main as xfr_main
from xfr_desktop.core import save_model


@pytest.fixture
def model_file(tmp_path, tiny_model):
    path = tmp_path / "tiny.pt"
    save_model(tiny_model, path)
    return path


@pytest.fixture
def crops(tmp_path, tiny_model):
    """Two plausible aligned crops of the tiny model's input size."""
    h, w = tiny_model.input_size
    rng = np.random.default_rng(0)
    paths = []
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    return paths


def xfr(*args) -> int:
    """The CLI entry point's exit status, usage errors (argparse's SystemExit) included."""
    try:
        return xfr_main(list(args))
    except SystemExit as exc:
        return int(exc.code)


def strict_json(text: str):
    """json.loads that refuses NaN/Infinity, as every other JSON reader does."""
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"not JSON: {name}"))


# --- numbers --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "-inf", "inf", "1e999"])
def test_non_finite_threshold_is_refused(tmp_path, model_file, crops, capsys, value):
    rc = xfr("explain", *crops, "--out", str(tmp_path / "o"), "--model", str(model_file), "--aligned",
             f"--threshold={value}")
    assert rc == 2 and "finite" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_model_with_nan_weights_is_refused(tmp_path, tiny_model, crops, capsys):
    with torch.no_grad():
        next(tiny_model.backbone.parameters()).view(-1)[0] = float("nan")
    save_model(tiny_model, tmp_path / "nan.pt")
    rc = xfr_main(["explain", *crops, "--out", str(tmp_path / "o"), "--model", str(tmp_path / "nan.pt"),
                   "--aligned"])
    err = capsys.readouterr().err
    assert rc == 2 and "non-finite weights" in err and "nan.pt" in err


def test_explain_result_json_is_strict_json(tmp_path, model_file, crops):
    assert xfr_main(["explain", *crops, "--out", str(tmp_path / "o"), "--model", str(model_file), "--aligned"]) == 0
    info = strict_json((tmp_path / "o" / "result.json").read_text())
    assert np.isfinite(info["score"])


def test_stored_nan_is_refused_and_old_ones_print_as_json(tmp_path, capsys):
    from xfr_desktop.core.errors import StoreError
    from xfr_desktop.store import open_store

    data = tmp_path / "data"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    with open_store(data) as store:
        case = store.create_case("N-1")
        sha = store.import_image(tmp_path / "a.png", case.id)
        comp = store.add_comparison(case.id, sha, sha)
        with pytest.raises(StoreError, match="finite"):
            store.save_result(comp.id, {"score": float("nan"), "threshold": 0.3, "decision": False})
        store.save_result(comp.id, {"score": 0.5, "threshold": 0.3, "decision": True})
    with sqlite3.connect(data / "xfr.sqlite") as con:  # what an older version could have saved
        con.execute("UPDATE results SET score = ?", (float("inf"),))
    capsys.readouterr()
    assert xfr_main(["--data-dir", str(data), "cases", "show", "N-1", "--json"]) == 0
    shown = strict_json(capsys.readouterr().out)
    assert shown["comparisons"][0]["latest_result"]["score"] is None


# --- --aligned ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size, needle", [((1, 1), "too small"), ((300, 160), "not an aligned face crop")])
def test_aligned_refuses_what_is_not_an_aligned_crop(tmp_path, model_file, crops, capsys, size, needle):
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(tmp_path / "odd.png")
    rc = xfr_main(["explain", str(tmp_path / "odd.png"), crops[1], "--out", str(tmp_path / "o"),
                   "--model", str(model_file), "--aligned"])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and "odd.png" in err
