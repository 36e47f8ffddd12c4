"""Mutation pins for core/evaluation/explanation_quality.py (issue 28): every function called directly, in-process,
on small hand-made arrays (Pearson, PSNR, mass ratio, pointing computed here from their definitions; argmax
statistics counted by hand; region boxes worked out from the template by hand; the feathered blend at literal
pixels; summaries of literal lists; the markdown's literal lines) and on the ``tiny_model`` fixture (swap game,
model randomization). The driver ``run_explanation_quality`` is pinned in test_explanation_quality_pins_run.py."""
from __future__ import annotations

import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn

from xfr_desktop.core.attribution import Explainer
from xfr_desktop.core.evaluation.explanation_quality import (
    DEFAULT_METHODS, REGION_LABELS, REGIONS, ROW_LABELS, QualityConfig, SwapResult, SwapRow, _Identities, _mean,
    _median, _reinit, _round, argmax_positions, argmax_statistics, box_mask, image_statistics, markdown_report,
    mass_ratio, mean_pairwise_correlation, pearson, play_swaps, plot_swap_examples, pointing_hit, psnr_db,
    randomize_model, region_boxes, summarize_swaps, swap_maps, swap_region, swap_rows,
)

ARCFACE_112 = [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]


def _pearson_by_hand(x, y):
    x = [float(v) for v in np.ravel(x)]
    y = [float(v) for v in np.ravel(y)]
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy)


# --- argmax statistics -----------------------------------------------------------------------------------------
def test_argmax_positions_are_row_col_of_each_channels_maximum_numpy_and_torch():
    C = np.zeros((3, 2, 4))
    C[0, 1, 3] = 5.0        # row 1, col 3
    C[1, 0, 2] = 1.0        # row 0, col 2
    C[2, 1, 0] = 2.0        # row 1, col 0
    C[2, 0, 1] = 2.0        # tie: the first index (row 0, col 1) wins
    assert argmax_positions(C).tolist() == [[1, 3], [0, 2], [0, 1]]
    assert argmax_positions(torch.tensor(C)).tolist() == [[1, 3], [0, 2], [0, 1]]
    assert argmax_positions(torch.tensor(C)[None]).tolist() == [[1, 3], [0, 2], [0, 1]]
    assert isinstance(argmax_positions(C), np.ndarray)
    # a tensor is used as it is (numpy could not take one that requires grad)
    assert argmax_positions(torch.tensor(C, requires_grad=True)).tolist() == [[1, 3], [0, 2], [0, 1]]


def test_argmax_statistics_counted_by_hand():
    """Cells (0,0) x3, (1,2) x1: modal share 3/4, 2 cells, entropy -(3/4 log2 3/4 + 1/4 log2 1/4)."""
    s = argmax_statistics(np.array([[0, 0], [1, 2], [0, 0], [0, 0]]))
    assert s["modal_share"] == pytest.approx(0.75, abs=1e-15)
    assert s["cells_used"] == 2 and type(s["cells_used"]) is int
    assert s["entropy_bits"] == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)), abs=1e-12)
    flat = argmax_statistics([0, 0, 1, 2, 0, 0, 0, 0])          # a flat list of (row, col) pairs
    assert flat["cells_used"] == 2 and flat["modal_share"] == 0.75
    one = argmax_statistics(np.array([[2, 2], [2, 2]]))
    assert one == {"modal_share": 1.0, "cells_used": 1, "entropy_bits": 0.0}
    assert math.copysign(1.0, one["entropy_bits"]) == 1.0         # +0.0, not -0.0
    with pytest.raises(ValueError, match="^no channels$"):
        argmax_statistics(np.zeros((0, 2)))


# --- correlations, PSNR ------------------------------------------------------------------------------------------
def test_pearson_against_the_definition():
    x = np.array([[1.0, 2.0], [4.0, 3.0]])
    y = np.array([[2.0, 1.0], [7.0, 9.0]])
    assert pearson(x, y) == pytest.approx(_pearson_by_hand(x, y), abs=1e-12)
    assert pearson(x, -x) == pytest.approx(-1.0, abs=1e-12)
    assert math.isnan(pearson(x, np.full((2, 2), 3.0)))         # a constant map


def test_mean_pairwise_correlation_against_the_definition():
    rows = np.array([[1.0, 2.0, 3.0, 5.0], [2.0, 1.0, 0.0, 4.0], [0.0, 3.0, 1.0, 1.0]])
    expected = (_pearson_by_hand(rows[0], rows[1]) + _pearson_by_hand(rows[0], rows[2])
                + _pearson_by_hand(rows[1], rows[2])) / 3
    assert mean_pairwise_correlation(rows) == pytest.approx(expected, abs=1e-12)
    assert mean_pairwise_correlation(rows.reshape(3, 2, 2)) == pytest.approx(expected, abs=1e-12)
    # a constant row (first or last) is left out, not counted as 0
    with_const = np.vstack([np.full((1, 4), 7.0), rows[:2], np.zeros((1, 4))])
    assert mean_pairwise_correlation(with_const) == pytest.approx(_pearson_by_hand(rows[0], rows[1]), abs=1e-12)
    # integer input is not truncated
    ints = np.array([[1, 2, 4], [1, 3, 2]])
    assert mean_pairwise_correlation(ints) == pytest.approx(_pearson_by_hand(ints[0], ints[1]), abs=1e-12)
    assert math.isnan(mean_pairwise_correlation(rows[:1]))
    assert math.isnan(mean_pairwise_correlation(np.vstack([rows[:1], np.ones((1, 4))])))
    two = mean_pairwise_correlation(rows[:2])
    assert two == pytest.approx(_pearson_by_hand(rows[0], rows[1]), abs=1e-12) and type(two) is float


def test_psnr_of_uint8_images_from_its_definition():
    a = np.array([[[0, 0, 0]]], np.uint8)
    b = np.array([[[10, 10, 10]]], np.uint8)                  # a - b does not wrap around in uint8
    assert psnr_db(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 100), abs=1e-12)
    c = np.array([[[0, 20, 0]]], np.uint8)                    # MSE 400 / 3
    assert psnr_db(a, c) == pytest.approx(10 * math.log10(255 ** 2 * 3 / 400), abs=1e-12)
    assert psnr_db(b, b) == math.inf


def _side(argmax, contributing, residuals, aligned, reconstruction):
    return SimpleNamespace(argmax=np.asarray(argmax), contributing=np.asarray(contributing),
                           residuals=SimpleNamespace(dense=lambda: np.asarray(residuals, np.float32)),
                           aligned=aligned, reconstruction=reconstruction)


def test_image_statistics_of_one_side():
    res = np.zeros((4, 2, 2))
    res[0] = [[1, 2], [3, 4]]
    res[1] = [[9, 9], [9, 9]]          # dead channel: not used
    res[2] = [[4, 1], [2, 2]]
    res[3] = [[0, 1], [5, 1]]
    aligned = np.zeros((1, 1, 3), np.uint8)
    rec = np.full((1, 1, 3), 10, np.uint8)
    s = image_statistics(_side([[0, 0], [0, 0], [1, 1], [0, 1]], [True, False, True, True], res, aligned, rec))
    expected = (_pearson_by_hand(res[0], res[2]) + _pearson_by_hand(res[0], res[3])
                + _pearson_by_hand(res[2], res[3])) / 3
    assert s["argmax_modal_share"] == 0.5 and s["argmax_cells_used"] == 3
    assert s["argmax_entropy_bits"] == pytest.approx(1.5, abs=1e-12)
    assert s["residual_mean_corr"] == pytest.approx(expected, abs=1e-6)
    assert s["live_channels"] == 3 and type(s["live_channels"]) is int
    assert s["reconstruction_psnr_db"] == pytest.approx(10 * math.log10(255 ** 2 / 100), abs=1e-12)
    assert set(s) == {"argmax_modal_share", "argmax_cells_used", "argmax_entropy_bits", "residual_mean_corr",
                      "live_channels", "reconstruction_psnr_db"}
    two = image_statistics(_side([[0, 0]] * 4, [True, False, True, False], res, aligned, rec))
    assert two["residual_mean_corr"] == pytest.approx(_pearson_by_hand(res[0], res[2]), abs=1e-6)
    assert two["live_channels"] == 2
    # one or no live channel: no pair to correlate, NaN (this crashed on numpy's reshape of an empty stack)
    one = image_statistics(_side([[0, 0]] * 4, [False, False, True, False], res, aligned, rec))
    assert math.isnan(one["residual_mean_corr"]) and one["live_channels"] == 1
    none = image_statistics(_side([[0, 0]] * 4, [False] * 4, res, aligned, rec))
    assert math.isnan(none["residual_mean_corr"]) and none["live_channels"] == 0
    assert math.isnan(mean_pairwise_correlation(np.zeros((0, 3, 3))))


# --- region boxes, masks, swaps --------------------------------------------------------------------------------
def test_region_boxes_on_the_arcface_template_worked_out_by_hand():
    """d = |(73.5318, 51.5014) - (38.2946, 51.6963)| = 35.2377, eye line 51.5989, mouth line 92.2848:
    eyes 38.2946 - 15.857 .. 73.5318 + 15.857, 51.5989 - 19.381 .. + 8.809; nose 56.0252 -+ 12.333, 60.408 ..
    71.7366 + 6.343; mouth 41.5493 - 8.809 .. 70.7299 + 8.809, max(83.475, 78.079) .. 92.2848 + 10.571."""
    assert region_boxes(ARCFACE_112, (112, 112)) == {"eyes": (22, 32, 89, 60), "nose": (44, 60, 68, 78),
                                                     "mouth": (33, 83, 80, 103)}
    assert list(region_boxes(ARCFACE_112, (112, 112))) == ["eyes", "nose", "mouth"]


SIMPLE = [[10, 20], [30, 20], [20, 35], [12, 50], [28, 50]]      # d = 20


def test_region_boxes_of_a_simple_template_and_their_clamping():
    """d = 20: eyes 10-9 .. 30+9, 20-11 .. 20+5; nose 20-+7, 25 .. 35+3.6; mouth 12-5 .. 28+5, max(45, 38.6) .. 56."""
    assert region_boxes(SIMPLE, (60, 40)) == {"eyes": (1, 9, 39, 25), "nose": (13, 25, 27, 39),
                                              "mouth": (7, 45, 33, 56)}
    # the eye line is the mean of the two eyes' rows; mirrored eyes give the same box
    tilted = [[10, 19], [30, 21], [20, 35], [28, 50], [12, 50]]
    d = math.hypot(20, 2)
    assert region_boxes(tilted, (60, 40))["eyes"] == (round(10 - 0.45 * d), round(20 - 0.55 * d),
                                                     round(30 + 0.45 * d), round(20 + 0.25 * d))
    mirrored = [[30, 20], [10, 20], [20, 35], [28, 50], [12, 50]]
    assert region_boxes(mirrored, (60, 40)) == region_boxes(SIMPLE, (60, 40))
    # a high mouth line: the mouth box starts at the nose box's bottom (38.6 -> 39), not at 42 - 5 = 37
    high_mouth = [[10, 20], [30, 20], [20, 35], [12, 42], [28, 42]]
    assert region_boxes(high_mouth, (60, 40))["mouth"] == (7, 39, 33, 48)
    # mouth corners at different heights: the mouth line is their mean (51)
    uneven = [[10, 20], [30, 20], [20, 35], [12, 49], [28, 53]]
    assert region_boxes(uneven, (60, 40))["mouth"] == (7, 46, 33, 57)
    # one pixel in from every edge: x0 and y0 at least 1, x1 at most W - 1, y1 at most H - 1 (H, W order)
    shifted = [[x - 1, y - 9] for x, y in SIMPLE]               # eyes from (0, 0)
    assert region_boxes(shifted, (60, 40))["eyes"] == (1, 1, 38, 16)
    assert region_boxes(SIMPLE, (55, 38)) == {"eyes": (1, 9, 37, 25), "nose": (13, 25, 27, 39),
                                              "mouth": (7, 45, 33, 54)}
    assert region_boxes(SIMPLE, (60, 16))["nose"] == (13, 25, 15, 39)      # 2 px wide still fits
    assert region_boxes(SIMPLE, (48, 40))["mouth"] == (7, 45, 33, 47)      # 2 px high still fits
    with pytest.raises(ValueError, match=r"^the mouth box .* does not fit a 40x47 face$"):
        region_boxes(SIMPLE, (47, 40))
    assert region_boxes(np.asarray(SIMPLE, np.int64), [60.0, 40.0])["eyes"] == (1, 9, 39, 25)


def test_a_box_narrower_or_lower_than_2_px_does_not_fit():
    with pytest.raises(ValueError, match=r"^the nose box \(.*13\.0.*25\.0.*27\.0.*38\.6.*\) does not fit a 15x60 face$"):
        region_boxes(SIMPLE, (60, 15))
    with pytest.raises(ValueError, match=r"^the nose box .* does not fit a 40x26 face$"):
        region_boxes(SIMPLE, (26, 40))         # nose rows 25 .. 25


def test_box_mask_is_true_inside_the_box_x1_y1_exclusive():
    m = box_mask((1, 2, 3, 5), (6, 4))
    assert m.dtype == bool and m.shape == (6, 4)
    assert m.astype(int).tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0],
                                      [0, 0, 0, 0]]
    assert box_mask((0, 0, 1, 1), (np.int64(2), 2.0)).astype(int).tolist() == [[1, 0], [0, 0]]


def _gauss_weights(k, sigma):
    w = [math.exp(-((i - (k - 1) / 2) ** 2) / (2 * sigma * sigma)) for i in range(k)]
    return [v / sum(w) for v in w]


def test_alpha_fallback_blends_with_a_feathered_mask_at_literal_pixels(monkeypatch):
    """feather 1: the 12 px box (4..15) eroded once (5..14), Gaussian 7 taps, sigma 1; A = 100, B = 200."""
    def broken(*args):
        raise cv2.error("no")

    monkeypatch.setattr(cv2, "seamlessClone", broken)
    a = np.full((20, 20, 3), 100, np.uint8)
    b = np.full((20, 20, 3), 200, np.uint8)
    out, how = swap_region(a, b, (4, 4, 16, 16), feather=1.0)
    assert how == "alpha" and out.dtype == np.uint8
    w = _gauss_weights(7, 1.0)

    def g(t):                  # the 1-D blur of the eroded box's indicator (rows / cols 5..14)
        return sum(w[j] for j in range(7) if 5 <= t + j - 3 < 15)

    expected = np.full((20, 20), 100.0)
    for y in range(4, 16):
        for x in range(4, 16):
            expected[y, x] = round(100 + 100 * g(y) * g(x))
    np.testing.assert_array_equal(out[..., 0], expected)
    np.testing.assert_array_equal(out[..., 2], expected)
    assert out[4, 4, 0] == 109 and out[5, 10, 1] == 170 and out[10, 10, 0] == 200 and out[3, 10, 0] == 100
    # feather 0.5: 5 taps (2 * ceil(1.5) + 1), eroded once, sigma 0.5
    out, _ = swap_region(a, b, (4, 4, 16, 16), feather=0.5)
    w = _gauss_weights(5, 0.5)

    def g5(t):
        return sum(w[j] for j in range(5) if 5 <= t + j - 2 < 15)

    assert out[4, 4, 0] == round(100 + 100 * g5(4) * g5(4))
    assert out[5, 10, 0] == round(100 + 100 * g5(5) * g5(10))
    # feather 2: eroded twice (6..13), 13 taps
    out, _ = swap_region(a, b, (4, 4, 16, 16), feather=2.0)
    w = _gauss_weights(13, 2.0)

    def g13(t):
        return sum(w[j] for j in range(13) if 6 <= t + j - 6 < 14)

    assert out[4, 4, 0] == round(100 + 100 * g13(4) * g13(4))
    assert out[6, 10, 0] == round(100 + 100 * g13(6) * g13(10))
    assert out[10, 10, 0] == round(100 + 100 * g13(10) * g13(10))
    full = np.full((20, 20), 100.0)
    for y in range(4, 16):
        for x in range(4, 16):
            full[y, x] = round(100 + 100 * g13(y) * g13(x))
    np.testing.assert_array_equal(out[..., 1], full)
    np.testing.assert_array_equal(swap_region(a, b, (4, 4, 16, 16))[0], out)      # 2 px is the default


def test_alpha_fallback_without_faking_opencv_on_a_thin_box():
    """OpenCV refuses to clone a 2 px wide box; feather 0 copies B's pixels into it unchanged."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    out, how = swap_region(a, b, (4, 4, 6, 16), feather=0.0)
    assert how == "alpha"
    expected = a.copy()
    expected[4:16, 4:6] = b[4:16, 4:6]
    np.testing.assert_array_equal(out, expected)


def test_seamless_clone_keeps_a_outside_the_box_and_puts_b_inside():
    a = np.zeros((40, 40, 3), np.uint8)
    a[:, :, 0] = np.arange(40, dtype=np.uint8)[None, :] * 3
    b = np.full((40, 40, 3), 90, np.uint8)
    b[15:25, 15:25] = [200, 10, 60]
    b[20:22, 10:30, 1] = 250                        # a bar across the box, to carry over
    out, how = swap_region(a, b, (10, 12, 30, 28))
    assert how == "seamless" and out.dtype == np.uint8
    inside = np.zeros((40, 40), bool)
    inside[12:28, 10:30] = True
    np.testing.assert_array_equal(out[~inside], a[~inside])
    assert out[20:22, 12:28, 1].mean() > out[24:27, 12:28, 1].mean() + 100      # B's bar, not A's flat green
    # B's detail sits where it is in B (same place; an off-centre clone would shift the bar)
    rows = out[13:27, 20, 1].astype(int)
    assert 20 - 13 <= int(np.argmax(rows)) <= 21 - 13
    # colour channels are not swapped (RGB in, RGB out)
    assert out[17, 17, 0] > out[17, 17, 2]


def test_seamless_clone_takes_bs_gradients_not_the_stronger_of_both():
    """NORMAL_CLONE: a flat B over a noisy A gives a smooth box (MIXED_CLONE would keep A's noise)."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    b = np.full((40, 40, 3), 120, np.uint8)
    out, how = swap_region(a, b, (10, 12, 30, 28))
    assert how == "seamless"
    centre = out[16:24, 16:24].astype(float)
    assert centre.std() < 0.3 * a[16:24, 16:24].std()


def test_seamless_clone_puts_bs_box_at_the_same_place():
    """A bright dot of B at (19, 17) lands on (19, 17) of A' for even and odd box sizes (the clone's centre is the
    box's centre, x0 + (x1 - x0) // 2, y0 + (y1 - y0) // 2)."""
    a = np.full((40, 40, 3), 100, np.uint8)
    b = a.copy()
    b[19, 17] = 250
    for box in [(10, 12, 30, 28), (9, 11, 30, 28), (10, 12, 31, 29)]:
        out, how = swap_region(a, b, box)
        assert how == "seamless"
        assert np.unravel_index(int(out[..., 0].argmax()), (40, 40)) == (19, 17), box
        assert out[19, 17, 0] > 200


def test_seamless_swap_is_opencvs_normal_clone_of_the_box_at_its_centre_in_bgr():
    """A' = A outside the box; inside, OpenCV's NORMAL_CLONE of B (BGR order, box mask, centre x0 + (x1 - x0) // 2,
    y0 + (y1 - y0) // 2), back to RGB. (seamlessClone writes into the mask it is given: it gets a copy here.)"""
    rng = np.random.default_rng(7)
    a = cv2.GaussianBlur(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8), (0, 0), 2)
    b = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    b[..., 0] //= 3                                          # channels that differ, so an RGB/BGR mix-up shows
    for box in [(10, 12, 30, 28), (9, 11, 40, 30)]:
        x0, y0, x1, y1 = box
        mask = np.zeros((40, 48), np.uint8)
        mask[y0:y1, x0:x1] = 255
        ref = cv2.seamlessClone(np.ascontiguousarray(b[..., ::-1]), np.ascontiguousarray(a[..., ::-1]), mask.copy(),
                                (x0 + (x1 - x0) // 2, y0 + (y1 - y0) // 2), cv2.NORMAL_CLONE)[..., ::-1]
        expected = np.where(mask[..., None] > 0, ref, a)
        out, how = swap_region(a, b, box)
        assert how == "seamless" and out.dtype == np.uint8
        np.testing.assert_array_equal(out, expected)
    flat = np.zeros((40, 48, 3), np.uint8)
    flat[:] = (30, 120, 220)
    dotted = flat.copy()
    dotted[20, 20] = (250, 0, 0)
    out, _ = swap_region(flat, dotted, (10, 12, 30, 28))
    assert np.abs(out[14, 12].astype(int) - (30, 120, 220)).max() <= 2        # A's colour, not reversed


def test_mass_ratio_from_its_definition():
    region = np.zeros((4, 5), bool)
    region[1:3, 1:3] = True                  # 4 of 20 pixels
    m = np.zeros((4, 5))
    m[1, 1] = 3.0
    m[0, 0] = 1.0
    m[3, 4] = -5.0                           # negative: clipped, no mass
    assert mass_ratio(m, region) == pytest.approx((3 / 4) / (4 / 20), abs=1e-12)
    assert mass_ratio(np.ones((4, 5)), region) == 1.0
    assert math.isnan(mass_ratio(-np.ones((4, 5)), region))


def test_pointing_hit_from_its_definition():
    region = np.zeros((4, 5), bool)
    region[1:3, 1:3] = True
    m = np.zeros((4, 5))
    m[2, 2] = 1.0
    assert pointing_hit(m, region) == 1.0
    m[0, 0] = 2.0
    assert pointing_hit(m, region) == 0.0
    m[1, 1] = 2.0
    m[2, 1] = 2.0                            # 3 tied peaks, 2 inside
    assert pointing_hit(m, region) == pytest.approx(2 / 3, abs=1e-15)
    neg = np.full((4, 5), -1.0)
    neg[1, 2] = -0.5                         # the peak of a map that is negative everywhere does not count
    assert math.isnan(pointing_hit(neg, region))
    assert math.isnan(pointing_hit(np.zeros((4, 5)), region))
    tiny = np.zeros((4, 5))
    tiny[3, 4] = 1e-300
    assert pointing_hit(tiny, region) == 0.0
    assert pointing_hit(np.ones((4, 5)), region) == pytest.approx(4 / 20, abs=1e-15)
    mixed = -np.ones((4, 5))
    mixed[1, 1] = 0.5
    assert pointing_hit(mixed, region) == 1.0          # negatives clipped to 0, not to the peak


# --- rows and maps of the game -------------------------------------------------------------------------------
class CountingSigned(Explainer):
    """A signed map on B: +1 on the left half, -2 on the right half; counts its calls."""

    name = "counting"
    signed = True

    def __init__(self):
        self.calls = 0

    def explain_maps(self, model, a, b):
        self.calls += 1
        h, w = model.input_size
        m = np.ones((h, w), np.float32)
        m[:, w // 2:] = -2.0
        return m, m


class DiffExplainer(Explainer):
    """The map of B: 1 where B differs from A (the swapped pixels), 0 elsewhere."""

    name = "diff"

    def explain_maps(self, model, a, b):
        d = (a != b).any(-1).astype(np.float32)
        return d, d


def test_swap_rows_names_signs_and_references():
    rows = swap_rows(["ours", "gradient", "stylianou"])
    assert [(r.name, r.sign) for r in rows] == [("ours", 1.0), ("gradient", 1.0), ("stylianou", 1.0),
                                                ("stylianou-neg", -1.0), ("uniform", 1.0), ("centre", 1.0)]
    assert rows[0].explainer.name == "ours-neg" and rows[1].explainer.name == "gradient"
    assert rows[2].explainer is rows[3].explainer and rows[2].explainer.name == "stylianou"
    assert rows[4].explainer is None and rows[5].explainer.name == "centre"
    mine = CountingSigned()
    centre = DiffExplainer()
    rows = swap_rows(("x",), {"x": mine, "centre": centre})
    assert [(r.name, r.explainer, r.sign) for r in rows] == [("x", mine, 1.0), ("x-neg", mine, -1.0),
                                                             ("uniform", None, 1.0), ("centre", centre, 1.0)]
    assert [r.name for r in swap_rows([])] == ["uniform", "centre"]
    assert SwapRow("n", None).sign == 1.0


def test_swap_maps_run_each_explainer_once_and_clip_its_signs(tiny_model):
    mine = CountingSigned()
    rows = [SwapRow("x", mine), SwapRow("x-neg", mine, -1.0), SwapRow("uniform", None)]
    a = np.zeros((112, 112, 3), np.uint8)
    seconds = {"x-neg": 5.0}
    maps = swap_maps(tiny_model, a, a, rows, seconds)
    assert mine.calls == 1 and list(maps) == ["x", "x-neg", "uniform"]
    assert set(np.unique(maps["x"][:, :56])) == {1.0} and set(np.unique(maps["x"][:, 56:])) == {0.0}
    assert set(np.unique(maps["x-neg"][:, :56])) == {0.0} and set(np.unique(maps["x-neg"][:, 56:])) == {2.0}
    assert maps["uniform"].dtype == np.float32 and maps["uniform"].shape == (112, 112)
    assert (maps["uniform"] == 1.0).all()
    assert set(seconds) == {"x", "x-neg"} and 0.0 < seconds["x"] < 1.0 and seconds["x-neg"] == 5.0
    seconds = {"x": 100.0}
    swap_maps(tiny_model, a, a, rows, seconds)
    assert 100.0 < seconds["x"] < 101.0
    assert list(swap_maps(tiny_model, a, a, rows[:1])) == ["x"]            # no timing dict: fine


def _faces():
    """Two smooth synthetic 'faces' of 112 px (blurred noise), different enough for the tiny model."""
    rng = np.random.default_rng(5)
    out = []
    for _ in range(2):
        img = cv2.GaussianBlur(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8), (0, 0), 3)
        out.append(cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX))
    return out


def _score(model, x, y):
    with torch.no_grad():
        _, F = model.embed(model.preprocess(np.stack([x, y])))
    F = F.double()
    return float(F[0] @ F[1] / (F[0].norm() * F[1].norm()))


def test_play_swaps_scores_margin_maps_and_controls(tiny_model):
    a, b = _faces()
    rows = [SwapRow("diff", DiffExplainer()), SwapRow("uniform", None)]
    results = play_swaps(tiny_model, a, b, rows, margin=0.0, keep_maps=True)
    boxes = {"eyes": (22, 32, 89, 60), "nose": (44, 60, 68, 78), "mouth": (33, 83, 80, 103)}   # the template's
    assert [(r.region, r.box, r.kept, r.blend) for r in results] == [(k, v, True, "seamless") for k, v in boxes.items()]
    score_ab = _score(tiny_model, a, b)
    for r in results:
        a_prime, _ = swap_region(a, b, r.box)
        assert r.score_pair == pytest.approx(score_ab, abs=1e-9)
        assert r.score_swap == pytest.approx(_score(tiny_model, a, a_prime), abs=1e-9)
        area = (r.box[2] - r.box[0]) * (r.box[3] - r.box[1]) / 112 ** 2
        assert r.ratio == pytest.approx({"diff": 1 / area, "uniform": 1.0}, abs=1e-9)        # all inside
        assert r.hit["diff"] == 1.0 and r.hit["uniform"] == pytest.approx(area, abs=1e-12)
        # the control: the other swaps' diff maps have no mass in this box (the boxes do not overlap)
        assert r.control == {"diff": 0.0, "uniform": 1.0}
        np.testing.assert_array_equal(r.a, a)
        np.testing.assert_array_equal(r.a_prime, a_prime)
        assert set(r.maps) == {"diff", "uniform"}
        np.testing.assert_array_equal(r.maps["diff"] > 0, (a_prime != a).any(-1))
        assert r.pair == ""
    # the margin at the exact distance 1 - s(A, A') keeps the swap; a hair more skips it (no maps, no numbers)
    eyes = results[0]
    at = play_swaps(tiny_model, a, b, rows, margin=1.0 - eyes.score_swap)
    assert at[0].kept
    above = play_swaps(tiny_model, a, b, rows, margin=np.nextafter(1.0 - eyes.score_swap, 2.0))
    assert not above[0].kept and above[0].ratio == {} and above[0].hit == {} and above[0].control == {}
    assert above[0].maps is None and above[0].a is None
    # without keep_maps the maps are not kept
    plain = play_swaps(tiny_model, a, b, rows, margin=0.0)
    assert all(r.maps is None and r.a is None and r.a_prime is None for r in plain)
    assert [r.ratio for r in plain] == [r.ratio for r in results]
    # only one kept swap: no other maps, no control
    one = play_swaps(tiny_model, a, b, rows, margin=0.0, boxes={"mouth": boxes["mouth"]})
    assert len(one) == 1 and one[0].kept and one[0].control == {}


def test_play_swaps_with_given_embeddings_and_boxes_and_a_timing_dict(tiny_model):
    a, b = _faces()
    rows = [SwapRow("diff", DiffExplainer()), SwapRow("uniform", None)]
    with torch.no_grad():
        _, F = tiny_model.embed(tiny_model.preprocess(np.stack([a, b])))
    E = torch.nn.functional.normalize(F, dim=1)            # float32, as a caller may pass them
    boxes = {"nose": (44, 60, 68, 78), "mouth": (33, 83, 80, 103)}
    seconds = {}
    given = play_swaps(tiny_model, a, b, rows, 0.0, boxes, seconds, embeddings=E)
    assert [r.region for r in given] == ["nose", "mouth"] and set(seconds) == {"diff"}
    assert given[0].score_pair == pytest.approx(_score(tiny_model, a, b), abs=1e-6)
    for r in given:
        assert r.score_swap == pytest.approx(_score(tiny_model, a, swap_region(a, b, r.box)[0]), abs=1e-6)
        assert r.control == {"diff": 0.0, "uniform": 1.0}


def test_controls_average_the_other_swaps_maps_in_this_box(tiny_model):
    """A map that is the left half of the image whatever the swap: its control in a box is its own ratio there."""
    class LeftHalf(Explainer):
        name = "left"

        def explain_maps(self, model, a, b):
            m = np.zeros(model.input_size, np.float32)
            m[:, :56] = 1.0
            return m, m

    a, b = _faces()
    rows = [SwapRow("left", LeftHalf())]
    boxes = {"eyes": (22, 32, 89, 60), "nose": (44, 60, 68, 78), "mouth": (33, 83, 80, 103)}
    for r in play_swaps(tiny_model, a, b, rows, 0.0, boxes):
        x0, y0, x1, y1 = r.box
        share_in = (y1 - y0) * (min(x1, 56) - x0) / (112 * 56)
        area = (x1 - x0) * (y1 - y0) / 112 ** 2
        assert r.ratio["left"] == pytest.approx(share_in / area, abs=1e-12)
        assert r.control["left"] == pytest.approx(share_in / area, abs=1e-12)


# --- summaries ----------------------------------------------------------------------------------------------
def test_mean_and_median_leave_out_none_and_non_finite_values():
    assert _mean([1.0, None, 2.0, float("nan"), 6.0, float("inf")]) == 3.0
    assert _median([5.0, None, 1.0, float("nan"), 2.0, 10.0]) == 3.5
    assert _median([3.0, 1.0, 2.0]) == 2.0
    assert _mean([]) is None and _median([None, float("nan")]) is None
    assert _mean(iter([1, 2])) == 1.5 and type(_mean([1, 2])) is float and type(_median([1, 2])) is float
    assert _round(None) is None and _round(float("nan")) is None and _round(float("-inf")) is None
    assert _round(1.23456789) == 1.234568 and _round(np.float32(2.5)) == 2.5 and type(_round(np.int64(2))) is float


def _swap(region, kept, ratio=None, hit=None, control=None):
    return SwapResult(region, (0, 0, 1, 1), 0.5, 0.9, kept, "seamless", ratio or {}, hit or {}, control or {})


def test_summarize_swaps_means_medians_and_counts_of_literal_results():
    nan = float("nan")
    results = [
        _swap("eyes", True, {"m": 2.0}, {"m": 1.0}, {"m": 1.0}),
        _swap("eyes", True, {"m": 4.0}, {"m": 0.0}, {"m": 3.0}),
        _swap("nose", True, {"m": nan}, {"m": nan}, {}),                   # an empty map
        _swap("mouth", True, {"m": 9.0}, {"m": 0.5}, {"m": 5.0}),
        _swap("mouth", False),                                             # skipped: not counted at all
    ]
    s = summarize_swaps(results, ["m"])
    assert list(s) == ["m"]
    m = s["m"]
    assert m["mass_ratio_mean"] == 5.0 and m["mass_ratio_median"] == 4.0
    assert m["hit_rate"] == 0.5 and m["n"] == 3 and m["n_empty_map"] == 1 and type(m["n"]) is int
    assert m["control_mass_ratio_mean"] == 3.0
    assert list(m["per_region"]) == ["eyes", "nose", "mouth"]
    assert m["per_region"]["eyes"] == {"mass_ratio_mean": 3.0, "mass_ratio_median": 3.0, "hit_rate": 0.5, "n": 2,
                                       "n_empty_map": 0, "control_mass_ratio_mean": 2.0}
    assert m["per_region"]["nose"] == {"mass_ratio_mean": None, "mass_ratio_median": None, "hit_rate": None,
                                       "n": 0, "n_empty_map": 1, "control_mass_ratio_mean": None}
    assert m["per_region"]["mouth"] == {"mass_ratio_mean": 9.0, "mass_ratio_median": 9.0, "hit_rate": 0.5, "n": 1,
                                        "n_empty_map": 0, "control_mass_ratio_mean": 5.0}
    two = summarize_swaps(results[:2], ["m", "m"])
    assert two["m"]["n"] == 2
    assert summarize_swaps([], ["a", "b"])["b"]["n"] == 0


def _summary():
    block = {"mass_ratio_mean": 1.23456, "mass_ratio_median": 1.5, "hit_rate": 0.5, "n": 3, "n_empty_map": 1,
             "control_mass_ratio_mean": 0.75}
    region = {"mass_ratio_mean": 2.0, "control_mass_ratio_mean": 0.3333, "hit_rate": 1.0, "n": 2}
    empty = {"mass_ratio_mean": None, "mass_ratio_median": None, "hit_rate": None, "n": 0, "n_empty_map": 0,
             "control_mass_ratio_mean": None}
    return {
        "argmax_modal_share": 0.12345, "argmax_cells_used": 7.5, "argmax_entropy_bits": 2.999, "n_images": 8,
        "residual_mean_corr": -0.5, "partner_corr_splus": 0.66666, "partner_corr_h": 0.25, "partner_corr_n": 4,
        "reconstruction_psnr_db": 21.456, "sanity_randomized_corr": 0.3333, "sanity": {"n_pairs": 2},
        "sanity_randomized_corr_gradient": 1.0,
        "swaps": {"n_kept": 5, "n_swaps": 9, "margin": 0.02, "n_skipped_per_region": {"eyes": 1, "nose": 2, "mouth": 1},
                  "rows": ["gradient", "my-method", "uniform"]},
        "swap_game": {"gradient": {**block, "per_region": {"eyes": region, "nose": region, "mouth": region}},
                      "my-method": {**block, "n": 0, "per_region": {"eyes": region, "nose": region,
                                                                    "mouth": {**region, "n": 0}}},
                      "uniform": {**empty, "per_region": {"eyes": region, "nose": {**region, "mass_ratio_mean": None,
                                                                                  "hit_rate": None, "n": 0},
                                                          "mouth": region}}},
    }


def test_markdown_report_literal_lines():
    lines = markdown_report(_summary()).split("\n")
    assert lines[:11] == [
        "| Measure | Value | Over |",
        "|---|---:|---|",
        "| argmax modal share | 0.123 | 8 images |",
        "| argmax cells used | 7.50 | 8 images |",
        "| argmax entropy (bits) | 3.00 | 8 images |",
        "| residual mean correlation | -0.500 | 8 images |",
        "| partner correlation S+ | 0.667 | 4 images |",
        "| partner correlation H | 0.250 | 4 images |",
        "| reconstruction PSNR (dB) | 21.46 | 8 images |",
        "| randomized model, mean abs corr of H (ours) | 0.333 | 2 pairs |",
        "| randomized model, mean abs corr (Gradient) | 1.000 | 2 pairs |",
    ]
    with_fraction = _summary()
    with_fraction["sanity"]["fraction"] = 0.25
    assert markdown_report(with_fraction).split("\n")[9:11] == [
        "| randomized model, mean abs corr of H (ours) | 0.333 | 2 pairs; decoder + last 25% of the backbone "
        "re-initialized |",
        "| randomized model, mean abs corr (Gradient) | 1.000 | 2 pairs; decoder + last 25% of the backbone "
        "re-initialized |"]
    assert lines[11:15] == [
        "",
        "Region-swap game: 5 of 9 swaps kept (score of (A, A') at most 1 - 0.02); skipped per region: "
        "eyes + brows 1, nose 2, mouth 1.",
        "",
        "| Method | mass ratio mean | median | hit rate | n | empty maps | control | eyes + brows: ratio / control / "
        "hit (n) | nose: ratio / control / hit (n) | mouth: ratio / control / hit (n) |",
    ]
    assert lines[15] == "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    assert lines[16] == ("| Gradient | 1.23 | 1.50 | 0.50 | 3 | 1 | 0.75 | 2.00 / 0.33 / 1.00 (2) | "
                         "2.00 / 0.33 / 1.00 (2) | 2.00 / 0.33 / 1.00 (2) |")
    assert lines[17] == ("| my-method | 1.23 | 1.50 | 0.50 | 0 | 1 | 0.75 | 2.00 / 0.33 / 1.00 (2) | "
                         "2.00 / 0.33 / 1.00 (2) | 2.00 / 0.33 / 1.00 (0) |")
    assert lines[18] == ("| uniform map (reference) | – | – | – | 0 | 0 | – | 2.00 / 0.33 / 1.00 (2) | "
                         "– / 0.33 / – (0) | 2.00 / 0.33 / 1.00 (2) |")
    assert lines[19:] == [
        "",
        "Mass ratio: share of the map's mass inside the swapped region / the region's share of the image (1 = chance). "
        "Hit: the map's peak inside the region. Control: the mass ratio in the same box of the maps made for the "
        "pair's swaps of the other regions (a map that follows the swap beats its control; a map that always sits "
        "there does not). Empty maps (nothing left after clipping negatives) are counted, not scored.",
        "",
    ]
    s = _summary()
    s["swaps"]["margin"] = 0.015
    assert "at most 1 - 0.015)" in markdown_report(s)


def test_labels_and_defaults():
    assert REGIONS == ("eyes", "nose", "mouth")
    assert REGION_LABELS == {"eyes": "eyes + brows", "nose": "nose", "mouth": "mouth"}
    assert DEFAULT_METHODS == ("ours", "gradient", "gradcampp", "stylianou")
    assert ROW_LABELS["ours"] == "Ours (S- on A')" and ROW_LABELS["uniform"] == "uniform map (reference)"
    assert ROW_LABELS["stylianou-neg"] == "Stylianou, negative part" and ROW_LABELS["xface-neg"] == \
        "xFace, negative part" and ROW_LABELS["centre"] == "centre prior (reference)"
    c = QualityConfig()
    assert (c.methods, c.seed, c.swap_margin, c.extra_partner_images, c.extra_partners_per_image, c.sanity_pairs,
            c.randomize_fraction, c.examples, c.xface_stride, c.batch_size) == (
        ("ours", "gradient", "gradcampp", "stylianou"), 0, 0.02, 20, 2, 10, 0.25, 4, 5, 64)


# --- the figure ---------------------------------------------------------------------------------------------
def test_display_max_is_the_99th_percentile_of_the_positive_pixels():
    from xfr_desktop.core.evaluation.explanation_quality import _display_max

    m = np.concatenate([np.arange(1, 101, dtype=np.float64), np.zeros(300), -np.ones(50)])
    assert _display_max(m) == pytest.approx(99.01, abs=1e-9)          # rank 0.99 * 99 = 98.01 of 1..100
    m = np.concatenate([np.arange(1, 101) / 200.0, np.zeros(10)])    # positives below 1 count
    assert _display_max(m) == pytest.approx(99.01 / 200, abs=1e-12)
    assert _display_max(np.zeros((3, 3))) is None and _display_max(-np.ones(4)) is None
    assert type(_display_max(np.ones(2, np.float32))) is float


def _read_rgb(path):
    return cv2.imread(str(path))[:, :, ::-1]


def test_figure_without_examples_says_so(tmp_path):
    plot_swap_examples([_swap("eyes", True)], ["m"], tmp_path / "f.png")
    img = _read_rgb(tmp_path / "f.png")
    assert img.shape == (60, 520, 3)
    dark = np.argwhere(img.min(-1) < 128)
    assert len(dark) > 200 and dark[:, 1].min() >= 8 and 20 <= dark[:, 0].min() and dark[:, 0].max() <= 38
    assert (img[0] == 255).all() and (img[:, -1] == 255).all()


def test_figure_layout_tiles_and_boxes(tmp_path):
    a = np.full((20, 30, 3), 40, np.uint8)
    ap = np.full((20, 30, 3), 80, np.uint8)
    m = np.zeros((20, 30), np.float32)
    m[5, 5] = 1.0
    ex = []
    for region in ("mouth", "eyes"):              # drawn in region order: eyes first
        r = _swap(region, True, {"m": 1.5, "uniform": 1.0})
        r.box = (2, 3, 12, 9) if region == "eyes" else (4, 10, 20, 18)
        r.maps, r.a, r.a_prime = {"m": m, "uniform": np.ones((20, 30))}, a, ap
        ex.append(r)
    plot_swap_examples(ex + [_swap("nose", True)], ["m", "uniform"], tmp_path / "f.png")
    img = _read_rgb(tmp_path / "f.png")
    # head 34, each example 20 + 18 + 4 high; columns A, A', m (uniform left out), each 30 + 4 wide, 4 px margin
    assert img.shape == (34 + 2 * 42, 3 * 34 + 4, 3)
    # first example (eyes) at y = 34: A untouched at x = 4, A' at x = 38 with the green box's corner at (2, 3)
    np.testing.assert_array_equal(img[34:54, 4:34], a)
    assert img[34 + 3, 38 + 2].tolist() == [0, 255, 0] and img[34 + 8, 38 + 11].tolist() == [0, 255, 0]
    assert img[34 + 4, 38 + 3].tolist() == [80, 80, 80] and img[34 + 9, 38 + 12].tolist() == [80, 80, 80]
    assert img[34 + 3, 72 + 2].tolist() == [0, 255, 0]                     # the map's tile has the box too
    # second example (mouth) below it, its own box
    assert img[76 + 10, 38 + 4].tolist() == [0, 255, 0] and img[76 + 17, 38 + 19].tolist() == [0, 255, 0]
    np.testing.assert_array_equal(img[76:96, 4:34], a)
    # text under the tiles and in the head
    assert (img[54:72, 4:34].min(-1) < 128).any() and (img[54:72, 72:102].min(-1) < 128).any()
    assert (img[10:30, 4:34].min(-1) < 128).any() and (img[10:30, 72:102].min(-1) < 128).any()
    # scale 2: tiles twice the size, box corners scaled
    plot_swap_examples(ex, ["m"], tmp_path / "g.png", scale=2)
    img = _read_rgb(tmp_path / "g.png")
    assert img.shape == (34 + 2 * (40 + 22), 3 * 64 + 4, 3)
    assert img[34 + 6, 68 + 4].tolist() == [0, 255, 0] and img[34 + 17, 68 + 23].tolist() == [0, 255, 0]
    np.testing.assert_array_equal(img[34:74, 4:64], np.full((40, 60, 3), 40, np.uint8))


def _expected_figure(examples, labels, maps, scale):
    """The figure drawn here with its layout written out: head 34 px, 4 px gaps, 18 px of text under each row."""
    from xfr_desktop.core.render import overlay

    font, black, green = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0), (0, 255, 0)
    th, tw = examples[0][0].shape[0] * scale, examples[0][0].shape[1] * scale
    cols = 2 + len(labels)
    canvas = np.full((34 + len(examples) * (th + 22), cols * (tw + 4) + 4, 3), 255, np.uint8)
    for j, t in enumerate(["A", "A' (swapped)"] + labels):
        cv2.putText(canvas, t, (4 + j * (tw + 4) + 2, 24), font, 0.36, black, 1, cv2.LINE_AA)
    for i, (a, ap, box, ratios, text) in enumerate(examples):
        y = 34 + i * (th + 22)
        tiles = [a, ap] + [overlay(ap, m, float(np.percentile(m[m > 0], 99))) for m in maps]
        for j, tile in enumerate(tiles):
            img = cv2.resize(tile, (tw, th), interpolation=cv2.INTER_NEAREST) if scale > 1 else tile.copy()
            if j:
                cv2.rectangle(img, (box[0] * scale, box[1] * scale), (box[2] * scale - 1, box[3] * scale - 1),
                              green, 1)
            canvas[y:y + th, 4 + j * (tw + 4):4 + j * (tw + 4) + tw] = img
            if j >= 2:
                cv2.putText(canvas, ratios[j - 2], (4 + j * (tw + 4) + 2, y + th + 13), font, 0.36, black, 1,
                            cv2.LINE_AA)
        cv2.putText(canvas, text, (6, y + th + 13), font, 0.36, black, 1, cv2.LINE_AA)
    return canvas


def test_figure_pixel_for_pixel_against_a_drawing_written_out_here(tmp_path):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (20, 60, 3), dtype=np.uint8)
    ap = rng.integers(0, 256, (20, 60, 3), dtype=np.uint8)
    m1 = np.zeros((20, 60), np.float32)
    m1[2:9, 3:20] = rng.random((7, 17))
    m2 = rng.random((20, 60)).astype(np.float32) - 0.5
    rows = ["a-method-with-a-long-name", "ours", "gradient", "uniform"]
    maps = {"ours": m1, "gradient": m2, "a-method-with-a-long-name": m1 * 3, "uniform": np.ones((20, 60))}
    mouth = _swap("mouth", True, {"ours": 1.234, "gradient": 0.5, "a-method-with-a-long-name": 12.0, "uniform": 1})
    mouth.box, mouth.score_swap = (4, 10, 20, 18), 0.98765
    eyes = _swap("eyes", True, {"ours": 2.0, "gradient": 0.125, "a-method-with-a-long-name": 0.0, "uniform": 1})
    eyes.box, eyes.score_swap = (2, 3, 12, 9), 0.5
    for r in (mouth, eyes):
        r.maps, r.a, r.a_prime = maps, a, ap
    labels = ["a-method-with-a-long-n", "Ours (S-)", "Gradient"]          # uniform left out, names cut at 22
    plain = [m1 * 3, m1, m2]
    for scale in (1, 2):
        plot_swap_examples([mouth, _swap("nose", False), eyes], rows, tmp_path / "f.png", scale=scale)
        expected = _expected_figure([(a, ap, eyes.box, ["ratio 0.00", "ratio 2.00", "ratio 0.12"],
                                      "eyes + brows, s 0.500"),
                                     (a, ap, mouth.box, ["ratio 12.00", "ratio 1.23", "ratio 0.50"],
                                      "mouth, s 0.988")], labels, plain, scale)
        np.testing.assert_array_equal(_read_rgb(tmp_path / "f.png"), expected)
    # one example; the other labels
    rows = ["stylianou-neg", "xface-neg", "centre", "xface"]
    maps = {n: m1 for n in rows}
    eyes.maps, eyes.ratio = maps, {n: 1.0 for n in rows}
    plot_swap_examples([eyes], rows, tmp_path / "g.png")
    expected = _expected_figure([(a, ap, eyes.box, ["ratio 1.00"] * 4, "eyes + brows, s 0.500")],
                                ["Stylianou (-)", "xFace (-)", "centre prior", "xFace"], [m1] * 4, 1)
    np.testing.assert_array_equal(_read_rgb(tmp_path / "g.png"), expected)
    # no example at all: one line of text
    plot_swap_examples([], rows, tmp_path / "h.png")
    blank = np.full((60, 520, 3), 255, np.uint8)
    cv2.putText(blank, "no swap moved the score by the margin: nothing to show", (8, 35), cv2.FONT_HERSHEY_SIMPLEX,
                0.45, (0, 0, 0), 1, cv2.LINE_AA)
    np.testing.assert_array_equal(_read_rgb(tmp_path / "h.png"), blank)


# --- model randomization -------------------------------------------------------------------------------------
class Affine(nn.Module):
    """A parameter holder without reset_parameters (as dlib's affine layers)."""

    def __init__(self, n):
        super().__init__()
        self.weight = nn.Parameter(torch.full((n,), 3.0))
        self.bias = nn.Parameter(torch.full((n,), 3.0))
        self.mix = nn.Parameter(torch.full((n, 400), 3.0))


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3)
        self.act = nn.ReLU()                                     # no parameters: not a unit
        self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), nn.Linear(2, 2),
                                     nn.Linear(2, 2)])
        self.layers = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
        self.head = nn.BatchNorm1d(2)


class Joint(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.backbone = Backbone()
        self.decoder = nn.Sequential(nn.Linear(2, 2), Affine(2000))
        with torch.no_grad():                                   # not the values a reset gives
            for m in self.modules():
                if isinstance(m, nn.BatchNorm1d):
                    m.running_mean.fill_(0.5)
                    m.running_var.fill_(2.0)
                    m.weight.fill_(1.5)
                    m.bias.fill_(0.2)


def _changed(before, after):
    return sorted(k for k in before if not torch.equal(before[k], after[k]))


def test_randomize_model_picks_the_shortest_run_of_last_units_holding_the_fraction():
    """Units stem, blocks.0 (2 holders), blocks.1, blocks.2, layers.0, head: 7 holders."""
    model = Joint().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cases = {0.1: ["head"],                                     # 1 >= 0.7
             1 / 7: ["head"],                                   # 1 >= 1: enough
             0.25: ["layers.0", "head"],                        # 2 >= 1.75
             3 / 7: ["blocks.2", "layers.0", "head"],           # 3 >= 3
             4 / 7: ["blocks.1", "blocks.2", "layers.0", "head"],   # 4 >= 4
             5 / 7: ["blocks.0", "blocks.1", "blocks.2", "layers.0", "head"],   # 4 < 5: blocks.0 (2 holders)
             1.0: ["stem", "blocks.0", "blocks.1", "blocks.2", "layers.0", "head"],
             0.0: []}
    for fraction, names in cases.items():
        rnd, got = randomize_model(model, fraction, seed=0)
        expected_names = names
        assert got == expected_names, fraction
        prefixes = {"stem": "backbone.stem.", "blocks.0": "backbone.blocks.0.", "blocks.1": "backbone.blocks.1.",
                    "blocks.2": "backbone.blocks.2.", "layers.0": "backbone.layers.0.", "head": "backbone.head."}
        changed = _changed(before, rnd.state_dict())
        expected = [k for k in before if k.startswith("decoder.")
                    or any(k.startswith(prefixes[n]) for n in expected_names)]
        expected = [k for k in expected if not k.endswith("num_batches_tracked")]
        assert changed == sorted(expected), fraction
        assert rnd.training is False and rnd is not model
    assert model.training is True                               # the original is untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_reinit_resets_or_jitters_by_hand_rules():
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(3)
    with torch.no_grad():
        bn.running_mean.fill_(5.0)
        bn.running_var.fill_(7.0)
        bn.weight.fill_(2.0)
    _reinit(bn)
    assert bn.running_mean.tolist() == [0.0] * 3 and bn.running_var.tolist() == [1.0] * 3
    assert bn.weight.tolist() == [1.0] * 3
    aff = Affine(20000)
    _reinit(aff)
    w, b, mix = aff.weight.detach(), aff.bias.detach(), aff.mix.detach()
    assert abs(w.mean().item() - 1.0) < 0.005 and abs(w.std().item() - 0.1) < 0.005
    assert abs(b.mean().item()) < 0.005 and abs(b.std().item() - 0.1) < 0.005
    bound = 1 / math.sqrt(400)                      # Kaiming-uniform with a = sqrt(5): U(-1/sqrt(fan_in), ...)
    assert mix.abs().max().item() <= bound and mix.abs().max().item() > 0.99 * bound
    assert abs(mix.std().item() - bound / math.sqrt(3)) < 0.001


def test_reinit_draws_jitter_and_kaiming_bounds_in_parameter_order_and_leaves_children_alone():
    """weight = 1 + 0.1 N(0, 1), bias = 0.1 N(0, 1), 2-D: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn in that order."""
    aff = Affine(50)
    aff.child = nn.Linear(3, 3)
    child_before = aff.child.weight.detach().clone()
    torch.manual_seed(11)
    _reinit(aff)
    torch.manual_seed(11)
    w = 1.0 + 0.1 * torch.randn(50)
    b = 0.1 * torch.randn(50)
    mix = torch.empty(50, 400).uniform_(-1 / math.sqrt(400), 1 / math.sqrt(400))
    assert torch.allclose(aff.weight.detach(), w, atol=1e-6, rtol=0)
    assert torch.allclose(aff.bias.detach(), b, atol=1e-6, rtol=0)
    assert torch.allclose(aff.mix.detach(), mix, atol=1e-6, rtol=0)
    assert torch.equal(aff.child.weight.detach(), child_before)


def test_randomize_model_is_seeded_and_leaves_the_global_generator_alone():
    model = Joint()
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    r1, _ = randomize_model(model, 0.25, seed=4)
    assert torch.equal(torch.rand(3), expected_next)
    r2, _ = randomize_model(model, 0.25, seed=4)
    r3, _ = randomize_model(model, 0.25, seed=5)
    r0, _ = randomize_model(model, 0.25)
    r00, _ = randomize_model(model, 0.25, seed=0)
    s1, s2, s3 = r1.state_dict(), r2.state_dict(), r3.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not torch.equal(s1["decoder.1.mix"], s3["decoder.1.mix"])
    assert torch.equal(r0.state_dict()["decoder.1.mix"], r00.state_dict()["decoder.1.mix"])
    # the default fraction is a quarter: 2 of 7 holders
    assert randomize_model(model)[1] == ["layers.0", "head"]


def test_randomize_the_tiny_model_counts_its_units(tiny_model):
    """iresnet-18 units: conv1, bn1, prelu, layer1.0-1, layer2.0-1, layer3.0-1, layer4.0-1, bn2 (+ fc, features)."""
    from xfr_desktop.core.evaluation.explanation_quality import _holders, _units

    units = [(n, len(_holders(u))) for n, u in _units(tiny_model.backbone) if _holders(u)]
    names = [n for n, _ in units]
    total = sum(c for _, c in units)
    need = 0.25 * total
    chosen, count = [], 0
    for n, c in reversed(units):
        if count >= need:
            break
        chosen.append(n)
        count += c
    _, got = randomize_model(tiny_model)
    assert got == chosen[::-1] and got[-1] == names[-1]
    assert "layer1.0" in names and "layer4.1" in names


def test_units_expand_lists_and_holders_hold_parameters_directly():
    from xfr_desktop.core.evaluation.explanation_quality import _holders, _units

    bb = Backbone()
    assert [n for n, _ in _units(bb)] == ["stem", "act", "blocks.0", "blocks.1", "blocks.2", "layers.0", "layers.1",
                                          "head"]
    assert [type(m).__name__ for m in _holders(bb.blocks[0])] == ["Linear", "Linear"]
    assert _holders(nn.ReLU()) == [] and len(_holders(bb)) == 7


def test_identities_union_find_over_a_base():
    ids = _Identities(lambda key: key.split("/")[0])
    assert ids.find("A/1.jpg") == "A" and ids.find("A/2.jpg") == "A"
    ids.join("A/1.jpg", "B/1.jpg")
    assert ids.find("B/7.jpg") == "A"
    ids.join("C/1", "B/2")
    assert ids.find("A/3") == ids.find("C/9") == "C" and ids.find("D/1") == "D"
    ids.join("A/1", "C/1")                          # already one: nothing changes
    assert ids.parent == {"B": "A", "A": "C"}
    plain = _Identities(None)
    assert plain.find("x") == "x"
    plain.join("x", "y")
    assert plain.find("y") == "x" and plain.parent == {"y": "x"}
