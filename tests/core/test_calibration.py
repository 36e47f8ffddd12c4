"""Score-to-LR calibration: logistic regression, PAV diagnostic, Cllr, verbal scale, storage, `xfr calibrate`."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from xfr_desktop.cli import main as xfr_main
from xfr_desktop.core.calibration import (Calibration, CalibrationError, calibration_path, cllr, cllr_min,
                                          fit_calibration, format_lr, likelihood_ratio, load_calibration_for,
                                          render_tippett, save_tippett, verbal_equivalent)


def synthetic_scores(n=1500, seed=0, genuine=(0.55, 0.12), impostor=(0.05, 0.1)):
    rng = np.random.default_rng(seed)
    return rng.normal(*genuine, n), rng.normal(*impostor, n)


@pytest.fixture(scope="module")
def calibration():
    g, i = synthetic_scores()
    return fit_calibration(g, i, model_sha256="ab" * 32, model_name="synthetic", reference="synthetic normals")


def test_lr_increases_with_score_and_crosses_one_between_the_means(calibration):
    scores = np.linspace(-0.3, 0.9, 200)
    llr = calibration.log10_lr(scores)
    assert np.all(np.diff(llr) >= 0)
    assert np.diff(llr).max() > 0
    assert calibration.lr(0.05) < 1 < calibration.lr(0.55)
    # equal variances would put LR = 1 near the midpoint; unequal ones shift it a little
    crossing = scores[np.argmin(np.abs(llr))]
    assert 0.2 < crossing < 0.4


def test_cllr_is_informative_and_at_least_cllr_min(calibration):
    assert 0 < calibration.cllr < 1
    assert calibration.cllr_min <= calibration.cllr + 1e-9
    assert calibration.cllr - calibration.cllr_min < 0.05  # well calibrated on its own data
    assert 0 < calibration.eer < 0.1


def test_uninformative_system_has_cllr_one_and_overlap_gives_high_cllr_min():
    assert cllr(np.zeros(10), np.zeros(10)) == pytest.approx(1.0)
    rng = np.random.default_rng(3)
    g, i = rng.normal(0, 1, 800), rng.normal(0, 1, 800)  # same distribution: nothing to learn
    assert cllr_min(g, i) > 0.9


def test_wrongly_ordered_scores_are_refused():
    g, i = synthetic_scores()
    with pytest.raises(CalibrationError, match="not higher"):
        fit_calibration(i, g)
    with pytest.raises(CalibrationError, match="at least 2"):
        fit_calibration([0.5], [0.1, 0.2])


def test_lrs_are_bounded_by_the_reference_set(calibration):
    assert calibration.lr(5.0) == pytest.approx(calibration.n_impostor)
    assert calibration.lr(-5.0) == pytest.approx(1 / calibration.n_genuine)


def test_verbal_scale_is_enfsi_and_symmetric():
    assert verbal_equivalent(1.0).startswith("no support")
    assert verbal_equivalent(5).startswith("weak support for the proposition that the two images show the same")
    assert verbal_equivalent(50).startswith("moderate support")
    assert verbal_equivalent(500).startswith("moderately strong support")
    assert verbal_equivalent(5000).startswith("strong support")
    assert verbal_equivalent(5e5).startswith("very strong support")
    assert verbal_equivalent(5e6).startswith("extremely strong support")
    assert verbal_equivalent(1 / 5000).startswith("strong support for the proposition that the two images show two")
    with pytest.raises(ValueError):
        verbal_equivalent(0)
    assert format_lr(2500) == "2,500" and format_lr(1 / 320) == "1/320" and format_lr(2.5) == "2.5"


def test_json_round_trip_and_lookup_next_to_the_model(tmp_path, calibration):
    model_file = tmp_path / "m.pt"
    model_file.write_bytes(b"not really a model")
    path = calibration.save(calibration_path(model_file))
    assert path.name == "m.calibration.json"
    loaded = Calibration.load(path)
    assert loaded.slope == pytest.approx(calibration.slope) and loaded.cllr == pytest.approx(calibration.cllr)
    assert load_calibration_for(model_file).model_name == "synthetic"
    lr, verbal = likelihood_ratio(model_file, 0.6)
    assert lr > 1 and "same person" in verbal

    class FakeModel:  # a loaded model carries its file's path and sha256
        path = str(model_file)
        sha256 = "cd" * 32

    with pytest.raises(CalibrationError, match="another model"):
        likelihood_ratio(FakeModel(), 0.6)
    with pytest.raises(CalibrationError, match="no calibration"):
        likelihood_ratio(tmp_path / "other.pt", 0.6)
    path.write_text("{not json")
    with pytest.raises(CalibrationError, match="cannot read"):
        Calibration.load(path)


def test_tippett_plot(tmp_path, calibration):
    g, i = synthetic_scores()
    img = render_tippett(calibration, g, i, title="synthetic")
    assert img.shape == (650, 960, 3) and img.dtype == np.uint8
    assert (img != 255).any(axis=2).mean() > 0.02   # something was drawn
    out = save_tippett(calibration, g, i, tmp_path / "t.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tippett_plot_draws_the_curves_over_a_rising_lr_axis(calibration):
    """Read the figure's pixels (frame 80-930 x 60-530 px; P = 1 at the top): the same-person curve (dark blue)
    starts at P = 1 on the left and falls to 0 on the right, and crosses P = 0.5 right of the different-people
    curve (dark red) -- the x axis runs from small to large LRs."""
    g, i = synthetic_scores()
    img = render_tippett(calibration, g, i).astype(int)
    blue, red = (np.abs(img - colour).sum(axis=2) < 40 for colour in ((200, 90, 30), (40, 40, 210)))
    cols = np.arange(img.shape[1])

    def columns(mask, rows):   # mean column of the curve's pixels in these rows
        hits = mask[rows].any(axis=0)
        assert hits.any()
        return cols[hits].mean()

    near_one, near_zero, half = slice(62, 90), slice(500, 528), slice(293, 298)  # P ~ 1, P ~ 0, P = 0.5
    assert 80 <= columns(blue, near_one) < columns(blue, near_zero) <= 930
    assert 80 <= columns(red, half) < columns(blue, half) <= 930


def test_xfr_calibrate_from_scores_file(tmp_path, tiny_model, capsys):
    from xfr_desktop.core.model import save_model

    model_file = tmp_path / "tiny.pt"
    save_model(tiny_model, model_file)
    g, i = synthetic_scores(n=300, seed=5)
    scores = np.concatenate([g, i, [-1.0]])       # the last pair had no face: left out
    same = np.concatenate([np.ones(300, bool), np.zeros(300, bool), [True]])
    folds = np.arange(len(scores)) % 4
    np.savez(tmp_path / "scores.npz", scores=scores, same=same, folds=folds)
    rc = xfr_main(["calibrate", "--model", str(model_file), "--scores", str(tmp_path / "scores.npz"),
                   "--tippett", str(tmp_path / "tippett.png")])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.split("Tippett plot")[0])
    assert summary["n_genuine"] == 300 and summary["left_out_no_face"] == 1
    assert 0 < summary["cllr"] < 1 and 0 < summary["cllr_cross_validated"] < 1
    cal = Calibration.load(tmp_path / "tiny.calibration.json")
    from xfr_desktop.core.model import file_sha256

    assert cal.model_sha256 == file_sha256(model_file)
    assert (tmp_path / "tippett.png").is_file()
    assert not math.isnan(likelihood_ratio(model_file, 0.5)[0])


def test_xfr_calibrate_needs_pairs_or_scores(capsys):
    assert xfr_main(["calibrate"]) == 2
    assert "--pairs" in capsys.readouterr().err


def test_cross_validated_cllr_is_close_to_but_not_below_the_fit(calibration):
    from xfr_desktop.core.calibration import cross_validated_cllr

    g, i = synthetic_scores()
    folds = np.arange(len(g)) % 5
    cv = cross_validated_cllr(g, i, folds, folds)
    assert 0 < cv < 1
    assert cv >= calibration.cllr - 0.005 and cv - calibration.cllr < 0.02
    assert cross_validated_cllr(g, i, np.zeros(len(g)), np.zeros(len(i))) is None


def test_bundled_calibration_belongs_to_the_bundled_model():
    """A retrained bundled model needs `xfr calibrate` again (see models/README.md)."""
    from xfr_desktop.core.model import default_model_path, file_sha256

    model_path = default_model_path()
    if not model_path.is_file():
        pytest.skip(f"bundled model not present at {model_path}")
    cal_path = calibration_path(model_path)
    assert cal_path.is_file(), f"bundled model has no calibration {cal_path.name}"
    cal = Calibration.load(cal_path)
    assert cal.model_sha256 == file_sha256(model_path), "calibration is for another model file: recalibrate"
    assert cal.n_genuine >= 1000 and cal.n_impostor >= 1000 and 0 < cal.cllr < 1


def test_unequal_reference_sets_give_the_normal_density_ratio():
    """1,000 genuine vs 10,000 impostor scores from two normals with one σ: the true LR is the ratio of the normal
    densities, ln LR(s) = ((s-μi)² - (s-μg)²) / 2σ², whatever the set sizes. Without balanced class weights the
    prior 1:10 leaks into every LR (log10 shifts by -1). The clip bounds are literal: LR ∈ [1/1000, 10000]."""
    mu_g, mu_i, sigma = 0.55, 0.05, 0.1
    rng = np.random.default_rng(5)
    cal = fit_calibration(rng.normal(mu_g, sigma, 1000), rng.normal(mu_i, sigma, 10000))
    assert (cal.n_genuine, cal.n_impostor) == (1000, 10000)
    scores = np.linspace(0.22, 0.42, 6)
    true_log10 = ((scores - mu_i) ** 2 - (scores - mu_g) ** 2) / (2 * sigma ** 2) / math.log(10)
    np.testing.assert_allclose(cal.log10_lr(scores), true_log10, atol=0.25)
    assert cal.lr(0.3) == pytest.approx(1.0, rel=0.6)          # the densities cross halfway between the means
    assert cal.log10_lr_bounds == pytest.approx((-3.0, 4.0))
    assert cal.lr(5.0) == pytest.approx(10000.0) and cal.lr(-5.0) == pytest.approx(1 / 1000)


def test_equal_error_rate_and_tippett_curves_against_direct_counts():
    """EER of N(+1, 1) vs N(-1, 1) is Φ(-1) = 0.1587; Tippett proportions are plain counts of LRs ≥ x on a grid
    that spans the LRs with half a decade to spare on each side (600 points)."""
    from scipy.stats import norm

    from xfr_desktop.core.calibration import equal_error_rate, tippett_curves

    rng = np.random.default_rng(9)
    g, i = rng.normal(1.0, 1.0, 20000), rng.normal(-1.0, 1.0, 5000)
    assert equal_error_rate(g, i) == pytest.approx(norm.cdf(-1.0), abs=0.01)
    assert equal_error_rate([0.6, 0.7, 0.8, 0.9], [0.1, 0.2, 0.3, 0.4]) == 0.0
    lg, li = rng.normal(1.3, 0.8, 300), rng.normal(-1.7, 0.9, 700)
    grid, pg, pi = tippett_curves(lg, li)
    assert len(grid) == 600
    assert grid[0] == math.floor(min(lg.min(), li.min())) - 0.5
    assert grid[-1] == math.ceil(max(lg.max(), li.max())) + 0.5
    np.testing.assert_allclose(pg, [(lg >= x).mean() for x in grid], atol=1e-12)
    np.testing.assert_allclose(pi, [(li >= x).mean() for x in grid], atol=1e-12)
    assert pg[0] == pi[0] == 1.0 and pg[-1] == pi[-1] == 0.0
