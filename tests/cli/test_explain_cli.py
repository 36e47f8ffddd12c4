"""`xfr explain` end to end on the bundled sample images, and its one-line errors. Runs not about the per-pair
trust check skip it (``--no-trust-check``: it took most of each run); the last test checks it."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from xfr_desktop.cli import main
from xfr_desktop.core import save_model




@pytest.fixture
def sample_pair(samples_dir):
    case = json.loads((samples_dir / "case.json").read_text())
    pair = case["pairs"][0]
    return samples_dir / pair["image_a"], samples_dir / pair["image_b"]


def test_explain_writes_result_maps_and_overlays(tmp_path, model_file, sample_pair, capsys):
    out = tmp_path / "out"
    rc = main(["explain", str(sample_pair[0]), str(sample_pair[1]), "--out", str(out), "--model", str(model_file),
               "--threshold", "0.2", "--no-trust-check"])
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
        # Algorithm 1's sum normalization: ΣH is the sum of the channel weights actually used
        assert maps[f"{side}_H"].sum() == pytest.approx(maps[f"{side}_weights"].sum(), abs=1e-4)
        assert 0 < np.count_nonzero(maps[f"{side}_weights"]) <= info["channels_used"]
        for kind in ("S", "S_pos", "S_neg", "aligned", "reconstruction"):
            assert (out / f"{side}_{kind}.png").stat().st_size > 100
    assert "outputs:" in capsys.readouterr().out


def test_heatmaps_sum_to_the_decision_margin_when_every_channel_enters(tmp_path, tiny_model, sample_pair):
    """With non-positive channels included (the model's spec says so) every one of the 16 channels enters the
    score, and each side's H sums to score - threshold (the paper's decomposition), checked on the written files."""
    tiny_model.spec["explain"] = {"nonpositive_channels": "include"}
    path = tmp_path / "include.pt"
    save_model(tiny_model, path)
    out = tmp_path / "out"
    assert main(["explain", *map(str, sample_pair), "--out", str(out), "--model", str(path),
                 "--threshold", "0.2", "--no-trust-check"]) == 0
    info = json.loads((out / "result.json").read_text())
    maps = np.load(out / "maps.npz")
    assert info["channels_used"] == 16
    assert info["margin"] == pytest.approx(info["score"] - 0.2, abs=1e-12)
    for side in "ab":
        assert maps[f"{side}_H"].sum() == pytest.approx(info["score"] - 0.2, abs=1e-4)


def test_top_k_channels(tmp_path, model_file, sample_pair):
    out = tmp_path / "out"
    assert main(["explain", *map(str, sample_pair), "--out", str(out), "--model", str(model_file),
                 "--channels", "3", "--no-trust-check"]) == 0
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
                           str(tmp_path / "o"), "--model", str(model_file), "--aligned", "--no-trust-check"],
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
                 str(model_file), "--threshold", "0.2", "--no-trust-check"]) == 0
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
               "--face-b", "2", "--no-trust-check"])
    err = capsys.readouterr().err
    assert rc != 0 and "face 2 requested but 1 face found (valid: 1 to 1" in err


def test_result_json_and_the_printed_line_say_how_far_to_trust_the_map(tmp_path, model_file, sample_pair, capsys):
    """Faithfulness and stability of this pair's map (issue 27): the record in result.json is the check rerun on
    the written aligned faces, the line names its verdict and figures; 0 draws = no stability, and the check can
    be skipped (said, not silent)."""
    from xfr_desktop.core.evaluation.pair_trust import assess_pair
    from xfr_desktop.core.explain import explain_pair
    from xfr_desktop.core.imageio import load_image
    from xfr_desktop.core.model import load_model

    out = tmp_path / "out"
    args = ["explain", *map(str, sample_pair), "--model", str(model_file), "--threshold", "0.2"]
    assert main(args + ["--out", str(out), "--trust-jitter", "2"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("map trust"))
    info = json.loads((out / "result.json").read_text())
    faith, stab = info["faithfulness"], info["stability"]
    model = load_model(str(model_file), device="cpu")
    a, b = (load_image(out / f"{s}_aligned.png") for s in "ab")
    again, _ = assess_pair(model, a, b, explain_pair(model, a, b, threshold=0.2), jitter=0)
    assert faith["verdict"] == again.verdict and faith["gaps"] == pytest.approx(again.gaps, abs=1e-5)
    assert faith["sentence"].startswith("For this pair, blurring the regions this map ranks first")
    assert stab["draws"] == 2 and all(-1 <= r <= 1 for r in stab["correlation"])
    figure = "undetermined" if faith["normalised"] is None else f"{faith['normalised']:.2f}"
    assert f"{faith['verdict']} a gradient map ({figure})" in line
    assert f"A {stab['correlation'][0]:.2f} · B {stab['correlation'][1]:.2f} (2 jitter draws)" in line
    assert main(args + ["--out", str(tmp_path / "o0"), "--trust-jitter", "0"]) == 0
    info0 = json.loads((tmp_path / "o0" / "result.json").read_text())
    assert info0["faithfulness"]["verdict"] == faith["verdict"] and info0["stability"] is None
    assert "stability r not checked" in capsys.readouterr().out
    assert main(args + ["--out", str(tmp_path / "o1"), "--no-trust-check"]) == 0
    info1 = json.loads((tmp_path / "o1" / "result.json").read_text())
    assert info1["faithfulness"] is None and info1["stability"] is None
    assert "map trust: not checked for these maps" in capsys.readouterr().out
    from xfr_desktop.core import trust_display as td
    from xfr_desktop.core.evaluation import pair_trust as pt
    assert (td.CELLS, td.JITTER) == (pt.GRID ** 2, (pt.JITTER_SHIFT_PX, pt.JITTER_ROTATION_DEG, 100 * pt.JITTER_SCALE))
