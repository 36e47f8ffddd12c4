"""Evaluative reporting (core/evaluative.py) against an analytic likelihood ratio: scores normal under both
propositions with one σ, so ln LR(s) = ((μp − μd)·s − (μp² − μd²)/2) / σ², computed here by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from xfr_desktop.core.calibration import Calibration, fit_calibration
from xfr_desktop.core.evaluative import (DEFAULT_DEFENCE, DEFAULT_PROSECUTION, case_propositions,
                                         format_lr_rounded, lr_statement, model_decision, round_significant)

MU_P, MU_D, SIGMA = 0.6, 0.1, 0.1


def normal_density_ratio(s: float, sigma: float = SIGMA) -> float:
    def density(x, mu):
        return math.exp(-((x - mu) ** 2) / (2 * sigma ** 2)) / (sigma * math.sqrt(2 * math.pi))
    return density(s, MU_P) / density(s, MU_D)


def analytic_calibration(n=3000) -> Calibration:
    slope = (MU_P - MU_D) / SIGMA ** 2
    intercept = -(MU_P ** 2 - MU_D ** 2) / (2 * SIGMA ** 2)
    return Calibration(slope=slope, intercept=intercept, n_genuine=n, n_impostor=n, cllr=0.1, cllr_min=0.1,
                       eer=0.01, score_min=-1, score_max=1)


def stored(cal: Calibration, score: float) -> dict:
    lo, hi = cal.log10_lr_bounds
    return {"value": float(cal.lr(score)), "limits": [10 ** lo, 10 ** hi]}


def test_the_analytic_lr_is_stated_to_two_significant_digits():
    cal = analytic_calibration()
    assert normal_density_ratio(0.5) == pytest.approx(math.exp(7.5))   # 1,808.04…
    assert float(cal.lr(0.5)) == pytest.approx(normal_density_ratio(0.5), rel=1e-9)
    assert lr_statement(stored(cal, 0.5)).text == "1,800"
    assert lr_statement(stored(cal, 0.4)).text == "12"                # e^2.5 = 12.18
    assert lr_statement(stored(cal, 0.2)).text == "1/1,800"           # e^-7.5
    assert lr_statement(stored(cal, 0.35)).text == "1"                # e^0 = 1 … exactly at s = 0.35
    strong = lr_statement(stored(cal, 0.5))
    assert strong.at_limit is None and strong.supports == "Hp"
    assert strong.verbal == "strong support for the proposition that the two images show the same person"
    assert lr_statement(stored(cal, 0.2)).supports == "Hd"


def test_an_lr_at_the_calibrations_limit_is_stated_as_a_bound():
    cal = analytic_calibration()
    assert normal_density_ratio(0.7) > 1e7                             # the model would say far more …
    high = lr_statement(stored(cal, 0.7))                              # … the reference set supports 3,000
    assert high.text == "≥ 3,000 (limit of the calibration)" and high.at_limit == "upper"
    assert high.verbal.startswith("at least strong support for the proposition that the two images show the same")
    low = lr_statement(stored(cal, 0.0))
    assert low.text == "≤ 1/3,000 (limit of the calibration)" and low.at_limit == "lower"
    assert (high.equation, low.equation) == ("LR ≥ 3,000 (limit of the calibration)",
                                             "LR ≤ 1/3,000 (limit of the calibration)")
    assert lr_statement(12.0).equation == "LR = 12"
    odd = analytic_calibration(n=3190)                                 # a bound is rounded toward what holds
    assert lr_statement(stored(odd, 0.9)).text == "≥ 3,100 (limit of the calibration)"
    assert lr_statement(stored(odd, 0.0)).text == "≤ 1/3,100 (limit of the calibration)"
    assert lr_statement({"value": float(cal.lr(0.7))}).at_limit is None   # no limits known: no claim
    assert lr_statement(None) is None and lr_statement({"value": None}) is None


def test_a_calibration_fitted_on_normal_scores_recovers_the_analytic_lr():
    # σ = 0.2: enough overlap that the logistic fit is well determined (at σ = 0.1 the classes barely overlap
    # and the fitted slope of one sample is 8 % off)
    rng = np.random.default_rng(0)
    genuine, impostor = rng.normal(MU_P, 0.2, 20000), rng.normal(MU_D, 0.2, 20000)
    cal = fit_calibration(genuine, impostor)
    for s in (0.2, 0.35, 0.5):
        assert math.log(float(cal.lr(s))) == pytest.approx(math.log(normal_density_ratio(s, 0.2)), abs=0.1)


def test_rounding_to_two_significant_digits():
    assert [round_significant(v) for v in (1234, 0.0456, 99.6, 3137)] == pytest.approx([1200, 0.046, 100, 3100])
    assert round_significant(3199, down=True) == 3100 and round_significant(3000, down=True) == 3000
    assert [format_lr_rounded(v) for v in (2.54, 12.2, 1234.5, 1 / 81.3, 1 / 1234.5)] == [
        "2.5", "12", "1,200", "1/81", "1/1,200"]
    with pytest.raises(ValueError):
        round_significant(0.0)


def test_model_decision_is_flagged_off_its_calibrated_threshold_and_against_the_lr():
    # defect 2: τ = 0.98 gave NON-MATCH next to "LR 3,000, strong support … same person"
    off = model_decision(0.62, 0.98, calibrated_threshold=0.55, lr=3000.0)
    assert off.text == "model decision at τ = 0.980: non-match"
    assert len(off.flags) == 2 and "not the model's calibrated threshold τ = 0.550" in off.flags[0]
    assert "points the other way from the likelihood ratio (3,000)" in off.flags[1]
    calibrated = model_decision(0.62, 0.55, calibrated_threshold=0.55, lr=3000.0)
    assert calibrated.text == "model decision at τ = 0.550: match" and calibrated.flags == ()


def test_case_propositions_default_and_custom():
    class Case:
        proposition_prosecution = ""
        proposition_defence = "  The man in B is the suspect's brother. "
    hp, hd = case_propositions(Case())
    assert hp == DEFAULT_PROSECUTION == "Hp: the two images show the same person."
    assert hd == "The man in B is the suspect's brother." and hd != DEFAULT_DEFENCE


def test_a_stored_likelihood_ratio_carries_its_limits_and_calibration(tmp_path):
    from xfr_desktop.core.calibration import calibration_path, stored_likelihood_ratio

    cal = analytic_calibration(n=2500)
    cal.reference = "normal scores"
    cal.save(calibration_path(tmp_path / "m.pt"))

    class Model:
        path, sha256 = str(tmp_path / "m.pt"), None

    lr = stored_likelihood_ratio(Model(), 0.9)
    assert lr["limits"] == pytest.approx([1 / 2500, 2500]) and lr["value"] == pytest.approx(2500)
    assert lr["calibration"]["reference"] == "normal scores" and lr["calibration"]["n_impostor"] == 2500
    assert lr_statement(lr).text == "≥ 2,500 (limit of the calibration)"
