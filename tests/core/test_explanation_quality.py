"""Explanation quality (`xfr evaluate explanations`): the swap game on a model that sees only the mouth, argmax
statistics and residual correlation against hand-computed references, model randomization, the command line."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn

from xfr_desktop.core.attribution import Explainer
from xfr_desktop.core.decoder import paper_decoder_spec
from xfr_desktop.core.evaluation.explanation_quality import (
    argmax_positions, argmax_statistics, box_mask, mass_ratio, mean_pairwise_correlation, pearson, play_swaps,
    pointing_hit, psnr_db, randomize_model, region_boxes, summarize_swaps, swap_region, swap_rows,
)
from xfr_desktop.core.model import ARCFACE_TEMPLATE_112, JointModel, default_spec

SIZE = 64
TEMPLATE = (np.asarray(ARCFACE_TEMPLATE_112) * SIZE / 112).tolist()
MOUTH = region_boxes(TEMPLATE, (SIZE, SIZE))["mouth"]


class MouthOnlyBackbone(nn.Module):
    """C depends only on the pixels inside the mouth box: everything else is zeroed before the first conv."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mask", torch.from_numpy(box_mask(MOUTH, (SIZE, SIZE))).float()[None, None], False)
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, stride=2, padding=1),
            nn.ReLU(), nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, stride=2, padding=1))

    def forward(self, x):
        return self.body(x * self.mask)


class OutsideExplainer(Explainer):
    """A map that calls everything but the mouth important."""

    name = "outside"

    def explain_maps(self, model, a, b):
        m = (~box_mask(MOUTH, model.input_size)).astype(np.float32)
        return m, m.copy()


@pytest.fixture(scope="module")
def mouth_model():
    torch.manual_seed(0)
    spec = default_spec(name="mouth-only", input_size=[SIZE, SIZE], template=TEMPLATE, channels=16,
                        decoder=paper_decoder_spec((16, 16, 8, 8, 3)), threshold=0.5)
    return JointModel(spec, backbone=MouthOnlyBackbone()).eval()


@pytest.fixture(scope="module")
def faces(samples_dir):
    """The four different people of the sample case, aligned onto the 64 px template by the product's aligner."""
    from xfr_desktop.core.alignment import FaceAligner

    aligner = FaceAligner(TEMPLATE, (SIZE, SIZE))
    names = ["Sergey_Lavrov_0003", "John_Kerry_0009", "Billy_Sollie_0001", "Mark_Swartz_0001"]
    return [aligner.align_file(samples_dir / "images" / f"{n}.jpg").aligned for n in names]


# --- 1. swap game --------------------------------------------------------------------------------------------
def test_swap_changes_only_the_box_and_falls_back_to_an_alpha_blend(faces, monkeypatch):
    a, b = faces[0], faces[1]
    inside = box_mask(MOUTH, a.shape[:2])
    for how in ("seamless", "alpha"):
        if how == "alpha":
            def broken(*args):
                raise cv2.error("no")
            monkeypatch.setattr(cv2, "seamlessClone", broken)
        swapped, used = swap_region(a, b, MOUTH)
        assert used == how
        np.testing.assert_array_equal(swapped[~inside], a[~inside])
        # the box now carries B's content (Poisson cloning keeps B's detail, A's colour at the border)
        x0, y0, x1, y1 = MOUTH

        def detail(img):        # horizontal gradient of the grey image inside the box
            return np.diff(img[y0 + 1:y1 - 1, x0 + 1:x1 - 1].astype(float).mean(-1), axis=1)

        like_b, like_a = pearson(detail(swapped), detail(b)), pearson(detail(swapped), detail(a))
        assert like_b > 0.6 and like_b > like_a + 0.1, (like_b, like_a)
    same, _ = swap_region(a, a, MOUTH, feather=2.0)
    assert np.abs(same.astype(int) - a).max() <= 1          # cloning A into itself: no shift


def test_swap_game_on_a_model_that_only_sees_the_mouth(mouth_model, faces):
    rows = swap_rows(["gradient", "outside"], {"outside": OutsideExplainer()})
    assert [r.name for r in rows] == ["gradient", "outside", "uniform", "centre"]
    results = []
    for a, b in [(faces[0], faces[1]), (faces[2], faces[3]), (faces[1], faces[2])]:
        results += play_swaps(mouth_model, a, b, rows, margin=1e-6)
    by_region = {r: [x for x in results if x.region == r] for r in ("eyes", "nose", "mouth")}
    # swapping eyes or nose cannot move the score of a model that sees only the mouth: skipped, every time
    assert all(not x.kept and x.score_swap == pytest.approx(1.0, abs=1e-6) for r in ("eyes", "nose")
               for x in by_region[r])
    assert all(x.kept for x in by_region["mouth"])
    summary = summarize_swaps(results, [r.name for r in rows])
    area = box_mask(MOUTH, (SIZE, SIZE)).mean()
    assert summary["gradient"]["mass_ratio_mean"] > 2
    assert summary["gradient"]["mass_ratio_mean"] == pytest.approx(1 / area)     # all its mass in the mouth
    assert summary["gradient"]["hit_rate"] == 1.0 and summary["gradient"]["n"] == 3
    assert summary["uniform"]["mass_ratio_mean"] == 1.0                         # exactly chance
    assert summary["uniform"]["hit_rate"] == pytest.approx(area)
    assert summary["outside"]["mass_ratio_mean"] < 1 and summary["outside"]["hit_rate"] == 0.0
    assert summary["gradient"]["per_region"]["eyes"]["n"] == 0
    assert summary["gradient"]["per_region"]["mouth"]["n"] == 3
    # margin 0 keeps every swap; the control (the other swaps' maps, measured in this box) of a map that never
    # moves equals its score
    mouth = [x for x in play_swaps(mouth_model, faces[0], faces[1], rows, margin=0.0) if x.region == "mouth"][0]
    assert mouth.control["outside"] == mouth.ratio["outside"] and mouth.control["uniform"] == 1.0


def test_mass_ratio_and_pointing_by_hand():
    region = np.zeros((10, 10), bool)
    region[2:4, 2:7] = True                                 # 10 % of the image
    m = np.zeros((10, 10))
    m[region] = 1.0
    assert mass_ratio(m, region) == pytest.approx(10.0)
    m[0, 0] = 10.0                                          # half the mass outside, the peak outside
    assert mass_ratio(m, region) == pytest.approx(5.0) and pointing_hit(m, region) == 0.0
    assert mass_ratio(-m, region) != mass_ratio(-m, region)         # all negative: nothing left, NaN
    assert pointing_hit(np.ones((10, 10)), region) == pytest.approx(0.1)
    boxes = region_boxes(TEMPLATE, (SIZE, SIZE))
    masks = [box_mask(b, (SIZE, SIZE)) for b in boxes.values()]
    assert not (masks[0] & masks[1]).any() and not (masks[1] & masks[2]).any()
    eye = np.round(TEMPLATE[0]).astype(int)
    assert masks[0][eye[1], eye[0]] and masks[2][int(round(TEMPLATE[3][1])), int(round(TEMPLATE[3][0]))]


# --- 2. argmax statistics ------------------------------------------------------------------------------------
def test_argmax_statistics_against_hand_computed_references():
    C = np.random.default_rng(0).normal(size=(6, 3, 3)) - 10
    C[:, 1, 2] = 5.0                                        # every channel peaks at one cell
    assert argmax_statistics(argmax_positions(C)) == {"modal_share": 1.0, "cells_used": 1, "entropy_bits": 0.0}
    C = np.zeros((6, 3, 3))
    for i in range(6):
        C[i].flat[i] = 1.0                                  # each channel at its own cell
    s = argmax_statistics(argmax_positions(C))
    assert s["modal_share"] == pytest.approx(1 / 6) and s["cells_used"] == 6
    assert s["entropy_bits"] == pytest.approx(math.log2(6))
    s = argmax_statistics(np.array([[0, 0], [0, 0], [1, 1], [2, 0]]))          # cells used 2, 1, 1 times
    assert s == pytest.approx({"modal_share": 0.5, "cells_used": 3, "entropy_bits": 1.5})
    assert argmax_positions(np.zeros((2, 3, 3))).tolist() == [[0, 0], [0, 0]]  # ties: first index
    assert argmax_positions(torch.zeros(1, 2, 3, 3)).shape == (2, 2)


# --- 3. residual correlation ---------------------------------------------------------------------------------
def test_residual_correlation_against_numpy():
    r = np.zeros((8, 8))
    r[2:5, 2:5] = np.arange(9).reshape(3, 3) + 1
    assert mean_pairwise_correlation(np.stack([r, r, 2 * r])) == pytest.approx(1.0)
    disjoint = np.zeros((2, 8, 8))
    disjoint[0, :3, :3] = 1
    disjoint[1, 5:, 5:] = 1
    value = mean_pairwise_correlation(disjoint)
    assert value < 0 and value == pytest.approx(np.corrcoef(disjoint.reshape(2, -1))[0, 1])
    rng = np.random.default_rng(1)
    stack = rng.random((5, 8, 8)) + np.linspace(0, 1, 64).reshape(8, 8)
    cc = np.corrcoef(stack.reshape(5, -1))
    assert mean_pairwise_correlation(stack) == pytest.approx(cc[np.triu_indices(5, 1)].mean())
    assert pearson(stack[0], stack[3]) == pytest.approx(cc[0, 3])
    with_constant = np.concatenate([stack, np.ones((1, 8, 8))])             # a constant map is left out
    assert mean_pairwise_correlation(with_constant) == pytest.approx(cc[np.triu_indices(5, 1)].mean())
    assert math.isnan(mean_pairwise_correlation(stack[:1]))
    assert psnr_db(np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)) == 0.0


# --- model randomization -------------------------------------------------------------------------------------
def test_randomization_reinitializes_decoder_and_the_last_quarter_of_the_backbone(tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    rnd, names = randomize_model(tiny_model, seed=3)
    assert names and names[-1] == "bn2" and any(n.startswith("layer4") for n in names)
    assert not any(n.startswith(("layer1", "conv1")) for n in names)
    after = rnd.state_dict()
    for k, v in before.items():
        assert torch.equal(tiny_model.state_dict()[k], v)                 # the original is untouched
    changed = {k for k, v in before.items() if v.is_floating_point() and not torch.equal(after[k], v)}
    assert {k for k in before if k.startswith("decoder.") and k.endswith("weight")} <= changed
    assert not any(k.startswith("backbone.layer1") for k in changed)
    again, _ = randomize_model(tiny_model, seed=3)
    assert all(torch.equal(again.state_dict()[k], v) for k, v in after.items())   # seeded
    from xfr_desktop.core.backbones.dlib_resnet import DlibDenseBackbone

    dlib = JointModel(default_spec(family="dlib-resnet", channels=128, input_size=[150, 150]),
                      backbone=DlibDenseBackbone())
    _, names = randomize_model(dlib)
    assert names == ["blocks.10", "blocks.11", "blocks.12", "blocks.13", "head"]


# --- 4. command line -----------------------------------------------------------------------------------------
KEYS = ["argmax_modal_share", "argmax_cells_used", "argmax_entropy_bits", "residual_mean_corr",
        "partner_corr_splus", "partner_corr_h", "partner_corr_n", "reconstruction_psnr_db", "swap_game",
        "sanity_randomized_corr", "sanity_randomized_corr_gradient", "model", "n_pairs", "timings"]


@pytest.mark.slow
def test_cli_on_the_sample_pairs_with_the_bundled_model(samples_dir, tmp_path, capsys):
    from xfr_desktop.cli import main

    out = tmp_path / "out"
    rc = main(["evaluate", "explanations", "--pairs", str(samples_dir / "pairs.csv"), "--root", str(samples_dir),
               "--out", str(out), "--limit", "4", "--threads", "1", "--sanity-pairs", "2", "--randomize-fraction", "1",
               "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    data = json.loads((out / "explanations.json").read_text())
    assert all(k in data for k in KEYS)
    assert data["n_pairs"] == 4 and data["n_images"] == 8 and len(data["model"]["sha256"]) == 64
    assert data["model"]["path"].endswith(".pt")
    assert set(data["swap_game"]) == {"ours", "gradient", "gradcampp", "stylianou", "stylianou-neg", "uniform",
                                      "centre"}
    kept = data["swaps"]["n_kept"]
    assert data["swaps"]["n_swaps"] == 6 and kept >= 1
    assert data["swap_game"]["uniform"]["mass_ratio_mean"] == 1.0 and data["swap_game"]["uniform"]["n"] == kept
    assert 0 < data["argmax_modal_share"] <= 1 and data["argmax_cells_used"] >= 1
    assert -1 <= data["residual_mean_corr"] <= 1 and 5 < data["reconstruction_psnr_db"] < 40
    # the sample list repeats no image across mismatched pairs: the extra seeded partners give every image two
    assert data["partner_corr_n"] == 8 and data["partner"]["n_extra_pairs"] > 0
    assert data["sanity"]["n_pairs"] == 2 and 0 <= data["sanity_randomized_corr"] <= 1
    # --randomize-fraction 1: the whole backbone, its first layer included, was re-initialized
    assert data["sanity"]["fraction"] == 1.0
    assert {"backbone.stem", "backbone.blocks.0", "backbone.head"} <= set(data["sanity"]["reinitialized"])
    for m in ("ours", "gradient", "gradcampp", "stylianou"):
        assert m in data["timings"]["swap_methods_s"]
    md = (out / "explanations.md").read_text()
    assert "| Gradient |" in md and "mass ratio" in md and "argmax modal share" in md
    png = cv2.imread(str(out / "swap_examples.png"))
    assert png is not None and png.shape[0] > 150 and png.shape[1] > 150 * 8


@pytest.mark.parametrize("content, message", [
    ("img_a,img_b,same\nmissing1.png,missing2.png,1\n", "missing"),
    ("left,right,label\n1a.png,1b.png,1\n", "img_a,img_b,same"),
])
def test_cli_bad_pair_file_gives_one_line_and_a_nonzero_exit(tmp_path, capsys, content, message):
    from xfr_desktop.cli import main

    (tmp_path / "bad.csv").write_text(content)
    rc = main(["evaluate", "explanations", "--pairs", str(tmp_path / "bad.csv"), "--root", str(tmp_path),
               "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc != 0 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert main(["evaluate", "explanations", "--pairs", str(tmp_path / "bad.csv"), "--root", str(tmp_path),
                 "--out", str(tmp_path / "o"), "--methods", "ours,lime"]) == 2
    assert "unknown method(s) lime" in capsys.readouterr().err


@pytest.mark.parametrize("fraction", ["0", "1.5", "-0.25"])
def test_cli_randomize_fraction_outside_0_1_is_one_line(samples_dir, tmp_path, capsys, fraction):
    from xfr_desktop.cli import main

    rc = main(["evaluate", "explanations", "--pairs", str(samples_dir / "pairs.csv"), "--root", str(samples_dir),
               "--out", str(tmp_path / "o"), "--randomize-fraction", fraction])
    err = capsys.readouterr().err
    assert rc != 0 and err.strip() == "xfr: error: --randomize-fraction must lie in (0, 1]"
    assert not (tmp_path / "o").exists()


def test_images_without_a_face_are_counted_and_no_usable_pair_is_a_clear_error(tiny_model):
    from xfr_desktop.core.errors import NoFaceError, XfrError
    from xfr_desktop.core.evaluation.explanation_quality import QualityPair, run_explanation_quality

    def load(key):
        raise NoFaceError(f"{key}: no face found")

    with pytest.raises(XfrError, match="no pair with a face in both images .2 images failed: a.jpg: no face"):
        run_explanation_quality(tiny_model, [QualityPair("a.jpg", "b.jpg", False)], load)
