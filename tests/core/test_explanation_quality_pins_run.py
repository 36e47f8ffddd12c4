"""Mutation pins for the driver ``run_explanation_quality`` (issue 28): one run of the tiny model on four LFW chips
(three usable pairs, an unreadable image, a pair of one image with itself), every number of the summary checked
against a recomputation here (argmax cells counted with a Counter, PSNR and Pearson from their formulas, partner
and randomization correlations from explain_pair's maps), the seeded extra partners drawn by hand, and the sharded
run (two workers + rank 0) against the single process. Each test runs the driver itself (mutmut credits a function
only to the test that called it). The model is the tiny model's spec at 64 px (a quarter of the pixels: every
mutant of the driver runs these tests) and cheap checks come before the recomputations."""
from __future__ import annotations

import math
from collections import Counter

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import make_tiny_model, make_tiny_spec
from xfr_desktop.core.attribution import get_explainer
from xfr_desktop.core.errors import ImageError, XfrError
from xfr_desktop.core.evaluation.explanation_quality import (
    QualityConfig, QualityPair, randomize_model, run_explanation_quality, swap_region,
)
from xfr_desktop.core.explain import explain_pair
from xfr_desktop.core.model import ARCFACE_TEMPLATE_112

A1, A4 = "Abel_Pacheco/Abel_Pacheco_0001.jpg", "Abel_Pacheco/Abel_Pacheco_0004.jpg"
AJ, AE = "AJ_Cook/AJ_Cook_0001.jpg", "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"
PAIRS = [QualityPair(A1, A4, True), QualityPair(A1, AJ, False, "first"), QualityPair("Nobody/x.jpg", AE, False),
         QualityPair(AE, AJ, False), QualityPair(AE, AE, True),
         QualityPair("Abel_Pacheco/Abel_Pacheco_0002.jpg", "Nobody/y.jpg", True)]     # A2 loads, in no usable pair
MARGIN = 2e-5          # between the model's swap scores: some swaps kept, some skipped
CONFIG = QualityConfig(methods=(), sanity_pairs=1, extra_partner_images=2, extra_partners_per_image=1,
                       swap_margin=MARGIN, examples=2)
# the ArcFace boxes at 64 px (d = 20.136): eyes 21.88 - 9.06 .. 42.02 + 9.06, 29.48 - 11.07 .. + 5.03; nose
# 32.01 -+ 7.05, 34.52 .. 40.99 + 3.62; mouth 23.74 - 5.03 .. 40.42 + 5.03, max(52.73 - 5.03, 44.61) .. 52.73 + 6.04
BOXES = {"eyes": (13, 18, 51, 35), "nose": (25, 35, 39, 45), "mouth": (19, 48, 45, 59)}
S = 64


def _model():
    spec = make_tiny_spec()
    spec["input_size"] = [S, S]
    spec["template"] = (np.asarray(ARCFACE_TEMPLATE_112) * S / 112).tolist()
    return make_tiny_model(spec)


@pytest.fixture
def chips(lfw_dir):
    cache = {}

    def load(key):
        if key.startswith("Nobody"):
            raise ImageError(f"{key}: unreadable")
        if key not in cache:
            img = cv2.imread(str(lfw_dir / key))[:, :, ::-1]
            cache[key] = np.ascontiguousarray(cv2.resize(img[70:180, 70:180], (S, S), interpolation=cv2.INTER_AREA))
        return cache[key]

    return load


def _identity(key):
    return key.split("/")[0]


def _extra_plan(listed, order, person, seed, n_images, per_image):
    """The extra non-mate partners as docs/hiding_game.md states the rule: for each of the first ``n_images``
    images, ``per_image`` partners drawn without replacement (numpy Generator seeded [seed mod 2^32, 12]) from the
    other people's images it is not yet paired with; a drawn pair counts for both images."""
    rng = np.random.default_rng([seed % 2 ** 32, 12])
    paired = {k: set() for k in order}
    for a, b in listed:
        paired[a].add(b)
        paired[b].add(a)
    extra = []
    for key in order[:n_images]:
        candidates = [k for k in order if person(k) != person(key) and k not in paired[key]]
        n = min(per_image, len(candidates))
        if n:
            for j in sorted(rng.choice(len(candidates), size=n, replace=False).tolist()):
                extra.append((key, candidates[j]))
                paired[key].add(candidates[j])
                paired[candidates[j]].add(key)
    return extra


def _corr(x, y):
    return float(np.corrcoef(np.ravel(x).astype(np.float64), np.ravel(y).astype(np.float64))[0, 1])


def _score(model, x, y):
    with torch.no_grad():
        _, F = model.embed(model.preprocess(np.stack([x, y])))
    F = F.double()
    return float(F[0] @ F[1] / (F[0].norm() * F[1].norm()))


def _image_stats_by_hand(side):
    counts = Counter(map(tuple, side.argmax.tolist()))
    n = sum(counts.values())
    live = [i for i, c in enumerate(side.contributing) if c]
    R = side.residuals.dense()[live].reshape(len(live), -1).astype(np.float64)
    R = R[R.std(axis=1) > 0]
    cc = np.corrcoef(R)
    diff = side.aligned.astype(np.float64) - side.reconstruction.astype(np.float64)
    return {"argmax_modal_share": max(counts.values()) / n, "argmax_cells_used": float(len(counts)),
            "argmax_entropy_bits": -sum(c / n * math.log2(c / n) for c in counts.values()),
            "residual_mean_corr": float(cc[np.triu_indices(len(R), 1)].mean()), "live_channels": float(len(live)),
            "reconstruction_psnr_db": 10 * math.log10(255 ** 2 / float((diff ** 2).mean()))}


def _run(chips):
    model = _model().train()            # the run puts the model in eval mode itself
    calls = []
    summary, swaps = run_explanation_quality(model, PAIRS, chips, CONFIG, identity=_identity,
                                             progress=lambda *a: calls.append(a))
    return model.eval(), summary, swaps, calls


def _extra_by_hand():
    """A1 has only AE left (A4 is the same person, AJ its partner already); A4 draws one of AJ, AE."""
    rng = np.random.default_rng([0, 12])
    rng.choice(1, size=1, replace=False)
    j = int(rng.choice(2, size=1, replace=False)[0])
    return [[A1, AE], [A4, [AJ, AE][j]]]


def test_the_run_on_four_lfw_chips_counts_plan_swaps_and_layout(chips):
    """The checks that need no explanation recomputed (every mutant of the driver runs this test first)."""
    model, summary, swaps, calls = _run(chips)
    img = {k: chips(k) for k in (A1, A4, AJ, AE)}
    # pairs, images, failures
    assert (summary["n_pairs"], summary["n_pairs_listed"], summary["n_matched"], summary["n_mismatched"],
            summary["n_images"], summary["n_no_face"]) == (3, 6, 1, 2, 4, 2)
    assert summary["no_face"] == ["Nobody/x.jpg: Nobody/x.jpg: unreadable", "Nobody/y.jpg: Nobody/y.jpg: unreadable"]
    assert calls == [("align", i, 7) for i in range(1, 8)] + [("pairs", i, 3) for i in range(1, 4)] + [
        ("extra partners", 1, 2), ("extra partners", 2, 2), ("swaps", 1, 2), ("swaps", 2, 2),
        ("randomized model", 1, 1)]
    extra = _extra_by_hand()
    part = summary["partner"]
    assert part["extra_pairs"] == extra and part["n_extra_pairs"] == 2
    assert (part["extra_partner_images"], part["extra_partners_per_image"]) == (2, 1)
    # configuration, model, timings
    assert summary["configuration"] == {
        "methods": [], "seed": 0, "swap_margin": MARGIN, "sanity_pairs": 1, "xface_stride": 5,
        "explain": "explain_pair defaults (engine fast, sum normalization, model threshold)"}
    m = summary["model"]
    assert (m["path"], m["name"], m["input_size"], m["threshold"], m["device"]) == (
        None, "tiny-test-model", [S, S], 0.3, "cpu")
    assert len(m["sha256"]) == 64 and int(m["sha256"], 16) >= 0
    t = summary["timings"]
    assert set(t) == {"align_s", "embed_s", "ours_pairs_s", "swap_game_s", "sanity_s", "swap_methods_s",
                      "swap_methods_s_per_swap", "ours_s_per_pair", "wall_s", "torch_threads"}
    assert t["torch_threads"] == torch.get_num_threads() and t["wall_s"] > 0
    assert t["wall_s"] >= t["ours_pairs_s"] + t["sanity_s"] - 0.02 and t["ours_pairs_s"] > 0.02
    assert t["ours_s_per_pair"] == pytest.approx(t["ours_pairs_s"] / 5, abs=0.002)      # 3 listed + 2 extra
    assert all(round(v, 2) == v for k, v in t.items() if k.endswith("_s") and not isinstance(v, dict))
    assert round(t["ours_s_per_pair"], 4) == t["ours_s_per_pair"]
    stages = [t[k] for k in ("align_s", "embed_s", "ours_pairs_s", "swap_game_s", "sanity_s")]
    assert all(0 <= v <= t["wall_s"] for v in stages) and sum(stages) <= t["wall_s"] + 0.05
    assert set(t["swap_methods_s"]) == {"centre"} and set(t["swap_methods_s_per_swap"]) == {"centre"}
    # the swap game on the two mismatched pairs, all regions, scores from the model here
    sw = summary["swaps"]
    assert sw["boxes"] == {k: list(v) for k, v in BOXES.items()}
    assert sw["area_share"] == pytest.approx({"eyes": 38 * 17 / S ** 2, "nose": 14 * 10 / S ** 2,
                                              "mouth": 26 * 11 / S ** 2}, abs=1e-15)
    assert sw["rows"] == ["uniform", "centre"] and sw["margin"] == MARGIN and sw["n_swaps"] == 6
    expected_swaps = []
    for label, ka, kb in [("first", A1, AJ), (f"{AE} / {AJ}", AE, AJ)]:
        s_ab = _score(model, img[ka], img[kb])
        for region, box in BOXES.items():
            s = _score(model, img[ka], swap_region(img[ka], img[kb], box)[0])
            expected_swaps.append((label, region, round(s_ab, 6), round(s, 6), 1.0 - s >= MARGIN, "seamless"))
    got = [(r["pair"], r["region"], r["score_pair"], r["score_swap"], r["kept"], r["blend"]) for r in sw["per_swap"]]
    assert [g[:2] + g[4:] for g in got] == [e[:2] + e[4:] for e in expected_swaps]
    for g, e in zip(got, expected_swaps):
        assert g[2:4] == pytest.approx(e[2:4], abs=2e-6)
        assert round(g[2], 6) == g[2] and round(g[3], 6) == g[3]
    kept = [e[4] for e in expected_swaps]
    assert 0 < sum(kept) < 6 and sw["n_kept"] == sum(kept) and sw["n_alpha_fallback"] == 0
    assert sw["n_kept_per_region"] == {r: sum(k for e, k in zip(expected_swaps, kept) if e[1] == r) for r in BOXES}
    assert sw["n_skipped_per_region"] == {r: sum(not k for e, k in zip(expected_swaps, kept) if e[1] == r)
                                          for r in BOXES}
    assert t["swap_methods_s_per_swap"]["centre"] == pytest.approx(t["swap_methods_s"]["centre"] / sum(kept),
                                                                   abs=0.006)
    for r, e in zip(sw["per_swap"], expected_swaps):
        if e[4]:
            area = sw["area_share"][e[1]]
            assert r["mass_ratio"]["uniform"] == 1.0 and r["hit"]["uniform"] == pytest.approx(area, abs=1e-6)
            assert r["hit"]["uniform"] == round(r["hit"]["uniform"], 6)
            assert set(r["mass_ratio"]) == set(r["hit"]) == {"uniform", "centre"}
            assert r["mass_ratio"]["centre"] == round(r["mass_ratio"]["centre"], 6) > 0
            others = sum(x[4] for x in expected_swaps if x[0] == e[0]) - 1      # the pair's other kept swaps
            if others:
                assert r["control_mass_ratio"]["uniform"] == 1.0
                assert r["control_mass_ratio"]["centre"] == round(r["control_mass_ratio"]["centre"], 6) > 0
            else:
                assert r["control_mass_ratio"] == {}
        else:
            assert r["mass_ratio"] == {} and r["hit"] == {} and r["control_mass_ratio"] == {}
    game = summary["swap_game"]
    assert list(game) == ["uniform", "centre"] and game["uniform"]["n"] == sum(kept)
    assert game["uniform"]["mass_ratio_mean"] == 1.0
    # the figure's examples: per pair, its first kept swap of a least-shown region while fewer than 2 are shown
    assert [(r.pair, r.region) for r in swaps] == [(e[0], e[1]) for e in expected_swaps]
    shown = [(r.pair, r.region) for r in swaps if r.maps is not None]
    assert all(r.a is not None and r.a_prime is not None for r in swaps if r.maps is not None)
    assert all(r.a is None and r.a_prime is None for r in swaps if r.maps is None)
    counts, expected_shown = {r: 0 for r in BOXES}, []
    for p in ("first", f"{AE} / {AJ}"):
        for e in expected_swaps:
            if e[0] == p and e[4] and sum(counts.values()) < 2 and counts[e[1]] <= min(counts.values()):
                counts[e[1]] += 1
                expected_shown.append((e[0], e[1]))
                break
    assert shown == expected_shown and len(shown) >= 1


def test_the_run_on_four_lfw_chips_against_numbers_recomputed_from_explain_pair(chips):
    model, summary, swaps, calls = _run(chips)
    img = {k: chips(k) for k in (A1, A4, AJ, AE)}
    extra = _extra_by_hand()
    part = summary["partner"]
    # per-image statistics (the image's first pair), recomputed from explain_pair's side of that image
    ex = {(ka, kb): explain_pair(model, img[ka], img[kb]) for ka, kb in [(A1, A4), (A1, AJ), (AE, AJ)] + extra}
    first_side = {A1: ex[(A1, A4)].a, A4: ex[(A1, A4)].b, AJ: ex[(A1, AJ)].b, AE: ex[(AE, AJ)].a}
    assert list(summary["per_image"]) == [A1, A4, AJ, AE]
    for key, side in first_side.items():
        assert summary["per_image"][key] == pytest.approx(_image_stats_by_hand(side), abs=2e-6), key
        assert all(round(v, 6) == v for v in summary["per_image"][key].values())
    for name in ("argmax_modal_share", "argmax_cells_used", "argmax_entropy_bits", "residual_mean_corr",
                 "reconstruction_psnr_db"):
        expected = sum(_image_stats_by_hand(s)[name] for s in first_side.values()) / 4
        assert summary[name] == pytest.approx(expected, abs=1e-9), name
    # partner correlation: images with two or more non-mate partners, S+ and H of that image per partner
    sides = {}                                          # image -> [its side in each mismatched pair]
    for (ka, kb), e in ex.items():
        if _identity(ka) != _identity(kb):
            sides.setdefault(ka, []).append(e.a)
            sides.setdefault(kb, []).append(e.b)
    images = [k for k in (A1, A4, AJ, AE) if len(sides.get(k, [])) >= 2]
    assert part["images"] == images and summary["partner_corr_n"] == len(images)

    def mean_corr(maps):
        return float(np.mean([_corr(maps[i], maps[j]) for i in range(len(maps)) for j in range(i + 1, len(maps))]))

    splus = [mean_corr([s.S_pos for s in sides[k]]) for k in images]
    h = [mean_corr([s.H for s in sides[k]]) for k in images]
    assert part["corr_splus"] == pytest.approx(splus, abs=1e-6) and part["corr_h"] == pytest.approx(h, abs=1e-6)
    assert summary["partner_corr_splus"] == pytest.approx(np.mean(splus), abs=1e-6)
    assert summary["partner_corr_h"] == pytest.approx(np.mean(h), abs=1e-6)
    # model randomization on the first usable pair: |Pearson| of H (ours) and of the gradient maps
    rnd, units = randomize_model(model, 0.25, 0)
    grad = get_explainer("gradient")
    h_rnd = explain_pair(rnd, img[A1], img[A4])
    ours = [abs(_corr(ex[(A1, A4)].a.H, h_rnd.a.H)), abs(_corr(ex[(A1, A4)].b.H, h_rnd.b.H))]
    gradient = [abs(_corr(x, y)) for x, y in zip(grad(model, img[A1], img[A4]), grad(rnd, img[A1], img[A4]))]
    san = summary["sanity"]
    assert san["n_pairs"] == 1 and san["fraction"] == 0.25
    assert san["ours_abs_corr"] == pytest.approx(ours, abs=1e-6)
    assert san["gradient_abs_corr"] == pytest.approx(gradient, abs=1e-6)
    assert summary["sanity_randomized_corr"] == pytest.approx(np.mean(ours), abs=1e-6)
    assert summary["sanity_randomized_corr_gradient"] == pytest.approx(np.mean(gradient), abs=1e-6)
    assert san["reinitialized"] == ["decoder (all)", "backbone.layer4.0", "backbone.layer4.1", "backbone.bn2"]


def test_the_sharded_run_gives_the_single_process_numbers(chips, monkeypatch):
    """No identity function: the matched pair makes A1 and A4 one person. A pair listed twice (either way round) is
    explained once and leaves the randomization check; a reversed mismatched pair plays its own swaps."""
    import xfr_desktop.core.evaluation.explanation_quality as eq

    model = _model()
    pairs = [QualityPair(A1, A4, True), QualityPair(A4, A1, True), QualityPair(A1, AJ, False),
             QualityPair(AE, AJ, False), QualityPair(AJ, A1, False)]
    config = QualityConfig(methods=(), sanity_pairs=2, extra_partner_images=3, extra_partners_per_image=1,
                           swap_margin=MARGIN, examples=2)
    single, single_swaps = run_explanation_quality(model, pairs, chips, config)
    assert (single["n_pairs"], single["n_matched"], single["n_mismatched"], single["n_images"]) == (5, 2, 3, 4)
    assert single["swaps"]["n_swaps"] == 9 and single["sanity"]["n_pairs"] == 1
    assert len(single["sanity"]["ours_abs_corr"]) == 2
    listed = [(A1, A4), (A1, AJ), (AE, AJ)]
    extra = _extra_plan(listed, [A1, A4, AJ, AE], lambda k: "abel" if k in (A1, A4) else k, 0, 3, 1)
    assert [tuple(e) for e in single["partner"]["extra_pairs"]] == extra
    parts = []
    for rank in (0, 1):
        part, nothing = run_explanation_quality(model, pairs, chips, config, share=(rank, 2))
        assert nothing == [] and set(part) == {"pairs", "swaps", "swap_seconds"}
        parts.append(part)
    # the n-th planned pair to worker n mod 2 (a pair seen before is not planned again); every worker plans the
    # same extra partners, whether it explains the pairs they depend on or not
    planned = listed + extra
    assert list(parts[0]["pairs"]) == planned[0::2] and list(parts[1]["pairs"]) == planned[1::2]
    assert all(set(rec) == {"seconds", "stats", "maps"} and rec["seconds"] > 0 for p in parts
               for rec in p["pairs"].values())
    assert list(parts[0]["swaps"]) == [(A1, AJ), (AJ, A1)] and list(parts[1]["swaps"]) == [(AE, AJ)]
    assert all(len(v) == 3 for p in parts for v in p["swaps"].values())
    assert all(r.maps is None for p in parts for v in p["swaps"].values() for r in v)
    third, _ = run_explanation_quality(model, pairs, chips, config, share=(2, 3))
    assert list(third["pairs"]) == planned[2::3] and list(third["swaps"]) == [(AJ, A1)]
    # rank 0 adds the workers' swap timings (set here) to its own, explains only the randomized model's pair and
    # replays only the swaps of the figure's examples
    parts[0]["swap_seconds"], parts[1]["swap_seconds"] = {"centre": 3.0}, {"centre": 4.0}
    explained, cloned = [], []
    real_explain, real_clone = eq.explain_pair, cv2.seamlessClone
    monkeypatch.setattr(eq, "explain_pair", lambda *a, **k: explained.append(1) or real_explain(*a, **k))
    monkeypatch.setattr(cv2, "seamlessClone", lambda *a: cloned.append(1) or real_clone(*a))
    merged, merged_swaps = run_explanation_quality(model, pairs, chips, config, done_by_workers=parts)
    monkeypatch.undo()
    shown_pairs = {r.pair for r in single_swaps if r.maps is not None}
    replayed = 0
    for p in [x for x in pairs if not x.same]:                        # pairs played until 2 examples are shown
        replayed += 1
        if len(shown_pairs & {r.pair for r in single_swaps[:3 * replayed]}) >= 2:
            break
    assert len(explained) == 1 and len(cloned) == 3 * replayed
    for key in single:
        if key != "timings":
            assert merged[key] == single[key], key
    assert [(r.region, r.maps is None) for r in merged_swaps] == [(r.region, r.maps is None) for r in single_swaps]
    own = merged["timings"]["swap_game_s"]
    assert 7.0 <= merged["timings"]["swap_methods_s"]["centre"] <= 7.0 + own + 0.01
    assert merged["timings"]["ours_pairs_s"] == round(sum(rec["seconds"] for p in parts
                                                          for rec in p["pairs"].values()), 2)


def test_identities_and_the_seeded_plan_of_extra_partners(chips):
    """The identity function makes A1 and A4 one person though no listed pair joins them; seed -60 (taken mod 2^32)
    draws two partners for each of the first three images."""
    model = _model()
    p1, p2 = "Akhmed_Zakayev/Akhmed_Zakayev_0001.jpg", "Amber_Tamblyn/Amber_Tamblyn_0001.jpg"
    pairs = [QualityPair(A1, AJ, False), QualityPair(A4, AE, False), QualityPair(p1, p2, False)]
    config = QualityConfig(methods=(), sanity_pairs=2, extra_partner_images=3, extra_partners_per_image=2,
                           swap_margin=-1.0, examples=2, seed=-60)
    summary, swaps = run_explanation_quality(model, pairs, chips, config, identity=_identity)
    # every swap kept; the figure shows one swap per pair, regions in turn: eyes of the first, nose of the second
    assert [(r.pair, r.region) for r in swaps if r.maps is not None] == [(f"{A1} / {AJ}", "eyes"),
                                                                         (f"{A4} / {AE}", "nose")]
    order = [A1, AJ, A4, AE, p1, p2]
    expected = _extra_plan([(A1, AJ), (A4, AE), (p1, p2)], order, _identity, -60, 3, 2)
    assert expected == [(A1, p1), (A1, p2), (AJ, A4), (AJ, p2), (A4, p1), (A4, p2)]
    assert [tuple(e) for e in summary["partner"]["extra_pairs"]] == expected
    assert summary["configuration"]["seed"] == -60 and summary["swaps"]["n_kept"] == 9
    # the randomization check: two pairs, both images each, the model re-initialized with the run's seed
    san = summary["sanity"]
    assert san["n_pairs"] == 2 and len(san["ours_abs_corr"]) == 4 and len(san["gradient_abs_corr"]) == 4
    rnd, _ = randomize_model(model, 0.25, -60)
    a, b = chips(A1), chips(AJ)
    trained, again = explain_pair(model, a, b), explain_pair(rnd, a, b)
    assert san["ours_abs_corr"][:2] == pytest.approx([abs(_corr(trained.a.H, again.a.H)),
                                                      abs(_corr(trained.b.H, again.b.H))], abs=1e-6)


def test_no_usable_pair_is_a_clear_error_and_other_load_errors_propagate(tiny_model):
    img = np.zeros((112, 112, 3), np.uint8)
    with pytest.raises(XfrError, match=r"^no pair with a face in both images \(0 images failed\)$"):
        run_explanation_quality(tiny_model, [QualityPair("a", "a", False)], lambda key: img)

    def broken(key):
        if key == "b":
            raise ImageError("b is broken")
        raise ValueError("not an image error")

    with pytest.raises(XfrError, match=r"^no pair with a face in both images \(1 images failed: b is broken\)$"):
        run_explanation_quality(tiny_model, [QualityPair("b", "b", True)], broken)
    with pytest.raises(ValueError, match="not an image error"):
        run_explanation_quality(tiny_model, [QualityPair("c", "b", True)], broken)


def test_xface_rows_use_the_configured_stride_and_no_sanity_pairs_give_no_numbers(chips):
    from xfr_desktop.core.attribution.xface import XFaceExplainer

    model = _model()
    config = QualityConfig(methods=("xface",), sanity_pairs=0, extra_partner_images=1, extra_partners_per_image=1,
                           swap_margin=0.0, examples=0, xface_stride=60)
    z1, z2 = "Akhmed_Zakayev/Akhmed_Zakayev_0001.jpg", "Akhmed_Zakayev/Akhmed_Zakayev_0002.jpg"
    summary, swaps = run_explanation_quality(model, [QualityPair(A1, AJ, False), QualityPair(z1, z2, True)], chips,
                                             config)
    # A1's extra partner is z1 or z2, images of a matched pair only (no partner entry before the draw)
    assert summary["n_images"] == 4 and summary["partner"]["images"] == [A1]
    assert [e[0] for e in summary["partner"]["extra_pairs"]] == [A1]
    assert summary["partner"]["extra_pairs"][0][1] in (z1, z2)
    assert summary["swaps"]["rows"] == ["xface", "xface-neg", "uniform", "centre"]
    assert summary["configuration"]["xface_stride"] == 60 and summary["configuration"]["methods"] == ["xface"]
    assert set(summary["timings"]["swap_methods_s"]) == {"xface", "centre"}
    assert all(r.maps is None for r in swaps)                    # no examples asked for
    kept = [r for r in swaps if r.kept]
    assert kept and summary["partner"]["n_extra_pairs"] == 1 and summary["partner_corr_n"] == 1
    a, b = chips(A1), chips(AJ)
    for r in kept:
        raw = XFaceExplainer(stride=60)(model, a, swap_region(a, b, r.box)[0])[1].astype(np.float64)
        inside = np.zeros((S, S), bool)
        inside[r.box[1]:r.box[3], r.box[0]:r.box[2]] = True
        for name, m in (("xface", np.clip(raw, 0, None)), ("xface-neg", np.clip(-raw, 0, None))):
            expected = m[inside].sum() / m.sum() / inside.mean() if m.sum() > 0 else None
            got = r.ratio[name]
            assert (got != got and expected is None) or got == pytest.approx(expected, abs=1e-9), name
    san = summary["sanity"]
    assert san["n_pairs"] == 0 and san["ours_abs_corr"] == [] and summary["sanity_randomized_corr"] is None


def test_failures_listed_up_to_20_alpha_fallbacks_counted_and_the_models_path(chips, monkeypatch):
    """22 unreadable images: all counted, the first 20 listed; OpenCV refusing every clone: each swap an alpha
    blend, counted; a model loaded from a file names it."""
    def refuse(*args):
        raise cv2.error("refused")

    monkeypatch.setattr(cv2, "seamlessClone", refuse)
    model = _model()
    model.path = "/models/tiny.pt"
    pairs = [QualityPair(f"Nobody/{i:02d}.jpg", A1, False) for i in range(22)] + [QualityPair(A1, AJ, False)]
    config = QualityConfig(methods=(), sanity_pairs=0, extra_partner_images=0, swap_margin=-1.0, examples=0)
    import time

    t0 = time.perf_counter()
    summary, swaps = run_explanation_quality(model, pairs, chips, config)
    elapsed = time.perf_counter() - t0
    assert summary["n_no_face"] == 22 and summary["n_pairs"] == 1
    # timings: seconds rounded to 2 digits (per swap and per pair to 4), one pair: its time is the per-pair time
    t = summary["timings"]
    assert 0 < t["wall_s"] <= elapsed + 0.01
    for k, v in list(t.items()) + [(f"swap {k}", v) for k, v in t["swap_methods_s"].items()]:
        if not isinstance(v, dict) and k != "torch_threads":
            assert type(v) is float and round(v, 4 if k == "ours_s_per_pair" else 2) == v, k
    per_swap = t["swap_methods_s_per_swap"]["centre"]
    assert type(per_swap) is float and round(per_swap, 4) == per_swap
    assert per_swap == pytest.approx(t["swap_methods_s"]["centre"] / 3, abs=0.0051)
    assert t["ours_pairs_s"] >= 0.02 and abs(t["ours_s_per_pair"] - t["ours_pairs_s"]) <= 0.0051
    assert summary["no_face"] == [f"Nobody/{i:02d}.jpg: Nobody/{i:02d}.jpg: unreadable" for i in range(20)]
    assert [r.blend for r in swaps] == ["alpha"] * 3 and summary["swaps"]["n_alpha_fallback"] == 3
    assert summary["model"]["path"] == "/models/tiny.pt"
