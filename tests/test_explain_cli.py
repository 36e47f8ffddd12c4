"""`xfr explain` end to end on the bundled sample images, and its one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from xfr_desktop.cli import main
from xfr_desktop.core import save_model


@pytest.fixture
def model_file(tmp_path, tiny_model):
    path = tmp_path / "tiny.pt"
    save_model(tiny_model, path)
    return path


@pytest.fixture
def sample_pair(samples_dir):
    case = json.loads((samples_dir / "case.json").read_text())
    pair = case["pairs"][0]
    return samples_dir / pair["image_a"], samples_dir / pair["image_b"]


def test_explain_writes_result_maps_and_overlays(tmp_path, model_file, sample_pair, capsys):
    out = tmp_path / "out"
    rc = main(["explain", str(sample_pair[0]), str(sample_pair[1]), "--out", str(out), "--model", str(model_file),
               "--threshold", "0.2"])
    assert rc == 0
    info = json.loads((out / "result.json").read_text())
    assert info["decision"] in ("match", "non-match")
    assert info["threshold"] == 0.2
    assert (info["score"] >= 0.2) == (info["decision"] == "match")
    assert info["faces_found"] == {"a": 1, "b": 1}
    assert len(info["model_sha256"]) == 64
    assert {"backbone", "residuals_A", "total"} <= set(info["timings_ms"])
    assert info["inputs"]["a"]["path"].endswith(sample_pair[0].name) and len(info["inputs"]["b"]["sha256"]) == 64
    maps = np.load(out / "maps.npz")
    for side in "ab":
        for key in ("H", "S", "S_pos", "S_neg"):
            assert maps[f"{side}_{key}"].shape == (112, 112)
        assert maps[f"{side}_H"].sum() == pytest.approx(info["margin"], abs=1e-4) or info["channels_used"] < 16
        for kind in ("S", "S_pos", "S_neg", "aligned", "reconstruction"):
            assert (out / f"{side}_{kind}.png").stat().st_size > 100
    assert "outputs:" in capsys.readouterr().out


def test_top_k_channels(tmp_path, model_file, sample_pair):
    out = tmp_path / "out"
    assert main(["explain", *map(str, sample_pair), "--out", str(out), "--model", str(model_file),
                 "--channels", "3"]) == 0
    assert json.loads((out / "result.json").read_text())["channels_used"] <= 3


@pytest.mark.parametrize("bad", ["text", "empty", "truncated"])
def test_bad_image_gets_a_one_line_error(tmp_path, model_file, sample_pair, capsys, bad):
    path = tmp_path / "bad.jpg"
    if bad == "text":
        path.write_text("not an image")
    elif bad == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes(sample_pair[0].read_bytes()[:300])
    rc = main(["explain", str(path), str(sample_pair[1]), "--out", str(tmp_path / "o"), "--model", str(model_file)])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and err.startswith("xfr: error:") and "bad.jpg" in err and "\n" not in err
    assert not (tmp_path / "o" / "result.json").exists()


def test_image_without_a_face(tmp_path, model_file, sample_pair, capsys):
    import cv2

    path = tmp_path / "wall.png"
    cv2.imwrite(str(path), np.full((200, 200, 3), 128, np.uint8))
    rc = main(["explain", str(path), str(sample_pair[1]), "--out", str(tmp_path / "o"), "--model", str(model_file)])
    err = capsys.readouterr().err
    assert rc != 0 and "face" in err.lower() and "wall.png" in err


def test_damaged_model_file(tmp_path, sample_pair, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 broken")
    rc = main(["explain", *map(str, sample_pair), "--out", str(tmp_path / "o"), "--model", str(bad)])
    assert rc != 0 and "bad.pt" in capsys.readouterr().err


def test_console_script_runs_in_a_subprocess(tmp_path, model_file, sample_pair):
    proc = subprocess.run([sys.executable, "-m", "xfr_desktop.cli", "explain", *map(str, sample_pair), "--out",
                           str(tmp_path / "o"), "--model", str(model_file), "--aligned"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "result.json").exists()


def test_result_json_states_the_likelihood_ratio_and_one_based_faces(tmp_path, model_file, sample_pair, capsys):
    from xfr_desktop.core.calibration import calibration_path, fit_calibration
    from xfr_desktop.core.model import file_sha256

    rng = np.random.default_rng(0)
    cal = fit_calibration(rng.normal(0.8, 0.1, 300), rng.normal(0.1, 0.1, 300), model_sha256=file_sha256(model_file))
    cal.save(calibration_path(model_file))
    out = tmp_path / "out"
    assert main(["explain", str(sample_pair[0]), str(sample_pair[1]), "--out", str(out), "--model",
                 str(model_file), "--threshold", "0.2"]) == 0
    info = json.loads((out / "result.json").read_text())
    assert info["face_number"] == {"a": 1, "b": 1} and "face_index" not in info
    lr = info["likelihood_ratio"]
    assert lr["value"] == pytest.approx(float(cal.lr(info["score"])), rel=1e-9)
    assert "proposition that the two images show" in lr["verbal_equivalent"]
    assert lr["limits"] == pytest.approx([1 / 300, 300])
    decision = info["model_decision"]
    assert decision["text"].startswith("model decision at τ = 0.200: ")
    assert any("not the model's calibrated threshold" in f for f in decision["flags"])  # 0.2 is not the model's τ
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:   # face numbers start at 1
        main(["explain", str(sample_pair[0]), str(sample_pair[1]), "--out", str(out), "--face-a", "0"])
    assert exc.value.code == 2 and "start at 1" in capsys.readouterr().err
    rc = main(["explain", str(sample_pair[0]), str(sample_pair[1]), "--out", str(out), "--model", str(model_file),
               "--face-b", "2"])
    err = capsys.readouterr().err
    assert rc != 0 and "face 2 requested but 1 face found (valid: 1 to 1" in err
