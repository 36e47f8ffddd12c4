"""Per-pair trust (core/evaluation/pair_trust.py): the deletion check on synthetic models whose answer is known,
and stability under jitter, against references computed here."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from xfr_desktop.core.evaluation import pair_trust as pt

SIZE = 64
REGION = (slice(16, 40), slice(16, 40))        # 3x3 cells of 8 px: the only part the model looks at


class RegionModel(torch.nn.Module):
    """An embedding made of the local contrast of the 3x3 patches of 8 px inside REGION (blurring them lowers it);
    nothing else is seen. ``quantized``: the contrast is rounded to 0.02 steps, so the input gradient is exactly 0
    everywhere while hiding the region still moves the score (a model a gradient map cannot see into)."""

    def __init__(self, quantized: bool = False):
        super().__init__()
        self.quantized = quantized
        self.input_size = (SIZE, SIZE)
        self.template = np.array([[24.0, 28.0], [40.0, 28.0], [32.0, 36.0], [26.0, 44.0], [38.0, 44.0]])
        self.register_buffer("_mean", torch.zeros(1, 3, 1, 1))
        self.register_buffer("_std", torch.full((1, 3, 1, 1), 255.0))
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        arr = np.asarray(images)[None] if np.asarray(images).ndim == 3 else np.asarray(images)
        return (torch.from_numpy(arr.copy()).permute(0, 3, 1, 2).float() - self._mean) / self._std

    def embed(self, x: torch.Tensor):
        g = x.mean(1)
        patches = g[:, REGION[0], REGION[1]].unfold(1, 8, 8).unfold(2, 8, 8)      # (N, 3, 3, 8, 8)
        contrast = (patches - patches.mean((-1, -2), keepdim=True)).pow(2).mean((-1, -2)).add(1e-6).sqrt()
        F = torch.round(contrast * 50) / 50 if self.quantized else contrast
        F = F.flatten(1) - 0.1                   # centred, so that a non-mate can score low
        return F[:, :, None, None], F


def textured_face(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(128, 50, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)


def other_in_region(face: np.ndarray, seed: int) -> np.ndarray:
    """The same face with another texture inside REGION: a non-mate whose difference lies in REGION alone, so
    hiding REGION in both faces is what makes them alike (the score rises)."""
    out = face.copy()
    out[REGION] = textured_face(seed)[REGION]
    return out


def region_map() -> np.ndarray:
    m = np.zeros((SIZE, SIZE), np.float32)
    m[REGION] = 1.0
    return m


def test_cell_rank_orders_cells_by_their_mean_most_salient_first():
    rng = np.random.default_rng(0)
    sal = rng.random((SIZE, SIZE))
    means = sal.reshape(8, 8, 8, 8).mean((1, 3)).ravel()          # 8x8 cells of 8 px, row by row
    assert pt.cell_rank(sal).tolist() == sorted(range(64), key=lambda i: -means[i])
    assert pt.cell_rank(np.zeros((SIZE, SIZE))).tolist() == list(range(64))   # ties: the lower index first


def test_hiding_cells_takes_exactly_those_cells_from_the_blurred_copy():
    face, blurred = textured_face(1), textured_face(2)
    out = pt.hide_cells(face, blurred, [0, 9, 63])
    expected = face.copy()
    for r, c in ((0, 0), (1, 1), (7, 7)):
        expected[r * 8:(r + 1) * 8, c * 8:(c + 1) * 8] = blurred[r * 8:(r + 1) * 8, c * 8:(c + 1) * 8]
    assert np.array_equal(out, expected)


def test_a_map_on_the_region_the_model_uses_beats_a_gradient_that_cannot_see_it():
    model = RegionModel(quantized=True)
    a = textured_face(3)
    b = other_in_region(a, 30)
    result = pt.faithfulness(model, a, b, region_map(), region_map(), threshold=0.99)
    assert not result.match and result.gaps["map"] > 0.05
    assert result.gaps["gradient"] < 0.5 * result.gaps["map"]     # a zero gradient: cells in index order
    assert result.verdict == "better than"
    assert result.normalised is not None and result.normalised > 1.0


def test_a_uniform_map_is_worse_than_a_faithful_gradient_and_the_region_as_good():
    model = RegionModel()
    a = textured_face(4)
    b = other_in_region(a, 40)
    flat = np.ones((SIZE, SIZE), np.float32)
    uniform = pt.faithfulness(model, a, b, flat, flat, threshold=0.99)
    assert uniform.gaps["gradient"] > 0.05                          # the gradient finds the region
    assert uniform.verdict == "worse than"
    same = pt.faithfulness(model, a, b, region_map(), region_map(), threshold=0.99)
    assert same.verdict in ("as well as", "better than") and same.normalised > 0.9   # the region, in its own order
    inverse = pt.faithfulness(model, a, b, 1 - region_map(), 1 - region_map(), threshold=0.99)
    assert inverse.gaps["map"] < -0.05 and inverse.normalised < 0       # ranks the region last


@pytest.mark.parametrize("gaps, verdict, normalised", [
    ({"map": 0.30, "gradient": 0.20, "centre": 0.10}, "better than", 1.5),
    ({"map": 0.21, "gradient": 0.20, "centre": 0.25}, "as well as", 0.84),
    ({"map": 0.10, "gradient": 0.20, "centre": 0.05}, "worse than", 0.5),
    ({"map": 0.012, "gradient": 0.005, "centre": 0.004}, "as well as", None),   # margin floor 0.01; no reference
])
def test_verdict_and_normalised_score_by_hand(gaps, verdict, normalised):
    assert pt.verdict(gaps) == verdict
    assert pt.normalised_score(gaps) == (None if normalised is None else pytest.approx(normalised))


def test_a_non_match_is_judged_by_how_fast_the_score_rises():
    model = RegionModel()
    a, b = textured_face(5), textured_face(6)
    result = pt.faithfulness(model, a, b, region_map(), region_map(), threshold=0.999)
    assert not result.match
    least, most = result.curves["map-least"], result.curves["map-most"]
    expected_gap = float(np.mean(least)) * -1 - float(np.mean(most)) * -1   # oriented: the negative score
    assert result.gaps["map"] == pytest.approx(expected_gap, abs=1e-9)


def test_stability_is_one_without_jitter_for_a_deterministic_map():
    a, b = textured_face(7), textured_face(8)

    def explain(x, y):
        return x.mean(2) - 128.0, y.mean(2) - 128.0

    h_a, h_b = explain(a, b)
    still = pt.stability(explain, a, b, h_a, h_b, draws=3, seed=0, amplitude=0.0)
    assert still.correlation == pytest.approx((1.0, 1.0), abs=1e-12)
    assert all(np.all(g == 1.0) for g in still.agreement)


def test_jittered_maps_are_mapped_back_onto_the_face_as_shown():
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    smooth = (128 + 100 * np.sin(xx / 5.0) * np.cos(yy / 7.0)).astype(np.uint8)
    a = np.repeat(smooth[:, :, None], 3, 2)

    def explain(x, y):
        return x.mean(2) - 128.0, y.mean(2) - 128.0

    h_a, h_b = explain(a, a)
    moved = pt.stability(explain, a, a, h_a, h_b, draws=4, seed=1)
    # without the inverse warp the jittered maps correlate far less with the original
    raw = np.mean([pt.pearson(pt.warp(h_a.astype(np.float32), m), h_a) for m in pt.jitter_matrices(4, 1, a.shape[:2])])
    assert min(moved.correlation) > 0.97 and raw < min(moved.correlation) - 0.05
