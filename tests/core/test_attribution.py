"""Attribution methods: one call shape, finite maps of the model's input size, method-specific facts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from xfr_desktop.core.attribution import (
    EXPLAINERS, PAPER_METHODS, CentreExplainer, GradCamPlusPlusExplainer, GradientExplainer, OursExplainer,
    RandomExplainer, StylianouExplainer, XFaceExplainer, get_explainer, parse_methods,
)
from xfr_desktop.core.attribution.xface import patch_positions
from xfr_desktop.core.explain import explain_pair


def _faces(model, seed=0):
    """Two smooth random 'faces' (low-frequency colour fields) at the model's input size."""
    import cv2

    rng = np.random.default_rng(seed)
    H, W = model.input_size
    out = []
    for _ in range(2):
        small = rng.integers(0, 256, (H // 8, W // 8, 3), dtype=np.uint8)
        out.append(cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC))
    return out


def _fast(name):
    """Explainers as registered, but xFace with few patches so the test stays fast."""
    if name in ("xface", "xface-abs"):
        return get_explainer(name, sizes=(28, 56), stride=28)
    return get_explainer(name)


@pytest.mark.parametrize("name", list(EXPLAINERS))
def test_every_method_returns_finite_maps_of_input_size(tiny_model, name):
    a, b = _faces(tiny_model)
    map_a, map_b = _fast(name)(tiny_model, a, b)
    for m in (map_a, map_b):
        assert m.shape == tiny_model.input_size
        assert m.dtype == np.float32
        assert np.isfinite(m).all()
    if name not in ("centre", "ours-neg"):
        assert map_a.std() > 0 and map_b.std() > 0, "a map that is constant ranks nothing"


def test_registry_holds_the_paper_methods_and_floors():
    assert set(PAPER_METHODS) | {"random", "centre"} <= set(EXPLAINERS)
    for name, cls in EXPLAINERS.items():
        assert cls.name == name
    with pytest.raises(ValueError, match="known: ours"):
        get_explainer("lime")
    assert parse_methods(" ours, gradient,ours ") == ["ours", "gradient"]
    with pytest.raises(ValueError, match="unknown attribution method"):
        parse_methods("ours,nonsense")


def test_wrong_image_shape_is_refused(tiny_model):
    a, b = _faces(tiny_model)
    with pytest.raises(ValueError, match="aligned RGB uint8"):
        GradientExplainer()(tiny_model, a[:50], b)


def test_ours_is_S_of_explain_pair(tiny_model):
    a, b = _faces(tiny_model)
    ref = explain_pair(tiny_model, a, b)
    map_a, map_b = OursExplainer()(tiny_model, a, b)
    np.testing.assert_allclose(map_a, ref.a.S, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(map_b, ref.b.S, rtol=1e-6, atol=1e-9)
    pos_a, _ = get_explainer("ours-pos")(tiny_model, a, b)
    neg_a, _ = get_explainer("ours-neg")(tiny_model, a, b)
    np.testing.assert_allclose(pos_a + neg_a, ref.a.S, rtol=1e-5, atol=1e-9)


def test_gradient_matches_a_finite_difference(tiny_model):
    tiny_model = tiny_model.double()
    a, b = _faces(tiny_model, seed=1)
    map_a, _ = GradientExplainer()(tiny_model, a, b)
    y, x = np.unravel_index(np.argmax(map_a), map_a.shape)

    def score(img):
        with torch.no_grad():
            t = torch.from_numpy(np.stack([img, b.astype(np.float64)])).permute(0, 3, 1, 2)
            _, F = tiny_model.embed((t - tiny_model._mean) / tiny_model._std)
            return float(torch.nn.functional.cosine_similarity(F[0:1], F[1:2])[0])

    h = 1e-3
    grads = []
    for ch in range(3):
        plus, minus = a.astype(np.float64), a.astype(np.float64)
        plus[y, x, ch] += h
        minus[y, x, ch] -= h
        grads.append((score(plus) - score(minus)) / (2 * h))
    assert max(abs(g) for g in grads) == pytest.approx(float(map_a[y, x]), rel=1e-3)


def test_stylianou_grid_decomposes_the_score(tiny_model):
    a, b = _faces(tiny_model, seed=2)
    grids, score = StylianouExplainer().similarity_grids(tiny_model, a, b)
    assert float(grids[0].sum()) == pytest.approx(score, abs=1e-9)
    assert float(grids[1].sum()) == pytest.approx(score, abs=1e-9)
    c = tiny_model.spec["channels"]
    assert int((grids[0] != 0).sum()) <= c      # one location per channel at most


def test_magnitude_variants_are_the_absolute_signed_maps(tiny_model):
    a, b = _faces(tiny_model, seed=5)
    signed = StylianouExplainer()(tiny_model, a, b)
    magnitude = get_explainer("stylianou-abs")(tiny_model, a, b)
    np.testing.assert_array_equal(magnitude[0], np.abs(signed[0]))
    np.testing.assert_array_equal(magnitude[1], np.abs(signed[1]))
    assert get_explainer("xface-abs", stride=9).config()["stride"] == 9


def test_gradcampp_is_non_negative(tiny_model):
    a, b = _faces(tiny_model, seed=3)
    map_a, map_b = GradCamPlusPlusExplainer()(tiny_model, a, b)
    assert map_a.min() >= 0 and map_b.min() >= 0


def test_xface_patches_cover_every_pixel_and_find_the_only_informative_region(tiny_model):
    assert patch_positions(112, 7, 5)[-1] == 105 and patch_positions(112, 7, 5)[:3] == [0, 5, 10]
    xf = XFaceExplainer()
    cover = np.zeros((112, 112), int)
    for s, y, x in xf.patches(112, 112):
        cover[y:y + s, x:x + s] += 1
    assert cover.min() > 0
    assert len(xf.patches(112, 112)) == sum(len(patch_positions(112, s, 5)) ** 2 for s in (7, 14, 28))


def test_random_floor_is_deterministic_per_seed_and_centre_peaks_at_the_template(tiny_model):
    a, b = _faces(tiny_model)
    r1 = RandomExplainer(seed=3)(tiny_model, a, b)
    r2 = RandomExplainer(seed=3)(tiny_model, a, b)
    r3 = RandomExplainer(seed=4)(tiny_model, a, b)
    np.testing.assert_array_equal(r1[0], r2[0])
    assert not np.array_equal(r1[0], r3[0])
    centre, _ = CentreExplainer()(tiny_model, a, b)
    y, x = np.unravel_index(np.argmax(centre), centre.shape)
    cx, cy = tiny_model.template.mean(axis=0)
    assert abs(x - cx) <= 1 and abs(y - cy) <= 1


def test_xface_matches_a_plain_loop_over_patches(tiny_model):
    """The batched implementation equals the definition: one occluded image at a time, mean Δ/area per pixel."""
    from xfr_desktop.core.attribution.base import gaussian_smooth

    a, b = _faces(tiny_model, seed=4)
    xf = XFaceExplainer(sizes=(20, 40), stride=24, batch_size=7)
    map_a, map_b = xf(tiny_model, a, b)

    def score(img_a, img_b):
        with torch.no_grad():
            _, F = tiny_model.embed(tiny_model.preprocess(np.stack([img_a, img_b])))
        return float(torch.nn.functional.cosine_similarity(F[0:1], F[1:2])[0])

    s0 = score(a, b)
    H, W = tiny_model.input_size
    per_size = []
    for size in xf.sizes:
        total, count = np.zeros((H, W)), np.zeros((H, W))
        for s, y, x in xf.patches(H, W):
            if s != size:
                continue
            occluded = a.copy()
            occluded[y:y + s, x:x + s] = 0
            total[y:y + s, x:x + s] += (s0 - score(occluded, b)) / (s * s)
            count[y:y + s, x:x + s] += 1
        per_size.append(total / np.maximum(count, 1))
    expected = gaussian_smooth(np.mean(per_size, axis=0), xf.smooth_sigma)
    np.testing.assert_allclose(map_a, expected, rtol=1e-3, atol=1e-5 * np.abs(expected).max())
    assert map_b.shape == (H, W)
