"""Mutation pins for core/calibration.py (issue 28), from the seeded sample's survivors: the pool-adjacent-violators
LRs of a four-score set worked out by hand, and the one-line refusal of scores that point the wrong way."""
from __future__ import annotations

import math

import numpy as np
import pytest

from xfr_desktop.core.calibration import CalibrationError, fit_calibration, pav_log10_lr


def test_pav_lrs_of_a_small_set_by_hand():
    # sorted: 0.1 (impostor), 0.2 (genuine), 0.5 (impostor), 0.8 (genuine); the increasing fit pools the middle two
    # to 1/2, so log10 LR = log10(p / (1 - p)) - log10(2 / 2): -inf, 0, 0, +inf
    g, i = pav_log10_lr([0.2, 0.8], [0.1, 0.5])
    assert g.tolist() == [0.0, math.inf] and i.tolist() == [-math.inf, 0.0]


def test_scores_that_point_the_wrong_way_are_refused_in_one_line():
    rng = np.random.default_rng(0)
    with pytest.raises(CalibrationError) as err:
        fit_calibration(rng.normal(0.1, 0.05, 200), rng.normal(0.6, 0.05, 200))
    assert str(err.value) == ("genuine scores are not higher than impostor scores; the model or the pair list is "
                              "wrong")


# --- full-set survivors (issue 28): metrics, verbal scale, file format, lookups -----------------------------------
# References are written out here: Cllr from Brümmer's formula term by term, PAV and EER by counting, literal
# strings and file text, a logistic fit by scipy's minimizer of the weighted log loss.
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import stat  # noqa: E402
import warnings  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

from xfr_desktop.core.calibration import (Calibration, calibration_path, cllr,  # noqa: E402
                                          cross_validated_cllr, equal_error_rate, format_lr, likelihood_ratio,
                                          load_calibration_for, stored_likelihood_ratio, verbal_equivalent)

LN10 = math.log(10)
SAME = "for the proposition that the two images show the same person"
DIFFERENT = "for the proposition that the two images show two different people"


def cllr_by_hand(log10_genuine, log10_impostor):
    """Cllr = ½ [mean over genuine of log2(1 + 1/LR) + mean over impostor of log2(1 + LR)]."""
    cg = sum(math.log2(1 + 10 ** -x) for x in log10_genuine) / len(log10_genuine)
    ci = sum(math.log2(1 + 10 ** x) for x in log10_impostor) / len(log10_impostor)
    return 0.5 * (cg + ci)


def literal_calibration(**changes):
    fields = dict(slope=2.5, intercept=-1.25, n_genuine=3, n_impostor=4, cllr=0.5, cllr_min=0.25, eer=0.125,
                  score_min=-0.5, score_max=0.75, model_sha256="ab" * 32, model_name="m", reference="Müller set",
                  created_at="2026-01-02T03:04:05+00:00", software_version="9.9", extra={"n_no_face": 2})
    fields.update(changes)
    return Calibration(**fields)


LITERAL_FILE = """{
  "cllr": 0.5,
  "cllr_min": 0.25,
  "created_at": "2026-01-02T03:04:05+00:00",
  "eer": 0.125,
  "extra": {
    "n_no_face": 2
  },
  "format": "xfr-calibration",
  "format_version": 1,
  "intercept": -1.25,
  "method": "logistic-regression",
  "model_name": "m",
  "model_sha256": "abababababababababababababababababababababababababababababababab",
  "n_genuine": 3,
  "n_impostor": 4,
  "reference": "M\\u00fcller set",
  "score_max": 0.75,
  "score_min": -0.5,
  "slope": 2.5,
  "software_version": "9.9"
}
"""


# --- the mapping --------------------------------------------------------------------------------------------------
def test_log10_lr_is_the_line_over_ln10_a_float_for_one_score_and_float64_for_float32_scores():
    cal = literal_calibration(slope=2 * LN10, intercept=0.0, n_genuine=1000, n_impostor=1000)
    # ln LR = 2 ln10 · 0.5 = ln 10, so log10 LR = 1 (and -0.5 for s = -0.25)
    one = cal.log10_lr(0.5)
    assert type(one) is float and one == pytest.approx(1.0, abs=1e-12)
    many = cal.log10_lr(np.array([0.5, -0.25], np.float32))
    assert many.dtype == np.float64
    np.testing.assert_allclose(many, [1.0, -0.5], rtol=0, atol=1e-12)


# --- Cllr -------------------------------------------------------------------------------------------------------------
def test_cllr_of_three_and_two_lrs_by_hand():
    """LRs 100, 1, 1/10 (same person) and 1/100, 10 (different people):
    ½ [(log2 1.01 + log2 2 + log2 11) / 3 + (log2 1.01 + log2 11) / 2] = 1.6140779..."""
    expected = 0.5 * ((math.log2(1.01) + 1.0 + math.log2(11)) / 3 + (math.log2(1.01) + math.log2(11)) / 2)
    assert expected == pytest.approx(1.6140779, abs=1e-7)
    assert cllr([2.0, 0.0, -1.0], [-2.0, 1.0]) == pytest.approx(expected, rel=1e-13)
    assert cllr_by_hand([2.0, 0.0, -1.0], [-2.0, 1.0]) == pytest.approx(expected, rel=1e-13)


def test_cllr_computes_in_float64_for_float32_lrs():
    """float32 inputs that are exact (2, 0.5, -1, 1.5) give the float64 value, not a float32 rounding of it."""
    expected = cllr_by_hand([2.0, 0.5], [-1.0, 1.5])
    assert cllr(np.array([2.0, 0.5], np.float32), np.array([-1.0, 1.5], np.float32)) == pytest.approx(
        expected, rel=1e-13)


def test_cllr_of_one_lr_each_and_refusal_of_an_empty_side():
    # one genuine LR 10, one impostor LR 1/10: ½ (log2 1.1 + log2 1.1) = log2 1.1
    assert cllr([1.0], [-1.0]) == pytest.approx(math.log2(1.1), rel=1e-13)
    for g, i in (([], [0.0]), ([0.0], []), ([], [])):
        with pytest.raises(CalibrationError) as err:
            cllr(g, i)
        assert str(err.value) == "Cllr needs both genuine and impostor scores"


# --- PAV and EER ------------------------------------------------------------------------------------------------------
def test_pav_lrs_of_unequal_sets_by_hand_without_warnings():
    # sorted: 0.1 i, 0.3 g, 0.5 i, 0.7 i, 0.9 g; labels 0 1 0 0 1 -> the increasing fit pools (1, 0, 0) to 1/3.
    # The pooled bin holds 1 of 2 genuine and 2 of 3 impostor scores: LR = (1/2) / (2/3) = 3/4; the ends are 0 and
    # +inf (0 of 3 impostors above 0.9, 0 of 2 genuine below 0.1). No divide-by-zero warning for the infinities.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g, i = pav_log10_lr([0.3, 0.9], [0.1, 0.5, 0.7])
    np.testing.assert_allclose(g, [math.log10(0.75), math.inf], rtol=1e-12)
    np.testing.assert_allclose(i, [-math.inf, math.log10(0.75), math.log10(0.75)], rtol=1e-12)


def test_equal_error_rate_is_where_the_two_rates_meet_not_their_smallest_sum():
    """genuine 0.5 0.6 0.7 0.8, impostor 0.1 0.2 0.3 0.55. At threshold 0.55 one genuine score (0.5) is below and
    one impostor score (0.55) at or above: FRR = FAR = 1/4, the EER. (At 0.5 FRR + FAR = 0 + 1/4 is smaller, and
    their mean 1/8 is not an equal error rate.)"""
    assert equal_error_rate([0.5, 0.6, 0.7, 0.8], [0.1, 0.2, 0.3, 0.55]) == 0.25


# --- verbal scale and numbers -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("lr, words", [
    (1.5, "weak support"), (2.0, "weak support"), (9.99, "weak support"),
    (10.0, "moderate support"), (99.9, "moderate support"),
    (100.0, "moderately strong support"), (999.9, "moderately strong support"),
    (1000.0, "strong support"), (9999.0, "strong support"),
    (10000.0, "very strong support"), (999999.0, "very strong support"),
    (1e6, "extremely strong support"), (1e9, "extremely strong support"),
])
def test_verbal_scale_at_and_below_each_band_start_both_ways(lr, words):
    assert verbal_equivalent(lr) == f"{words} {SAME}"
    assert verbal_equivalent(1.0 / lr) == f"{words} {DIFFERENT}"


def test_verbal_equivalent_names_the_case_propositions_and_lr_one():
    hp, hd = "the suspect is the man in B", "the man in B is the suspect's brother"
    assert verbal_equivalent(50, (hp, hd)) == "moderate support for the suspect is the man in B"
    assert verbal_equivalent(1.5, (hp, hd)) == "weak support for the suspect is the man in B"
    assert verbal_equivalent(1 / 50, (hp, hd)) == "moderate support for the man in B is the suspect's brother"
    assert verbal_equivalent(1.0) == "no support for either proposition (LR = 1)"
    assert verbal_equivalent(1.0 + 1e-10) == "no support for either proposition (LR = 1)"
    for bad in (0.0, -2.0, math.nan):
        with pytest.raises(ValueError) as err:
            verbal_equivalent(bad)
        assert str(err.value) == "a likelihood ratio must be positive"


@pytest.mark.parametrize("lr, text", [
    (1.0, "1"), (1.5, "1.5"), (2.5, "2.5"), (100.0, "100"), (2500.0, "2,500"), (1234567.0, "1,234,567"),
    (0.5, "1/2"), (0.4, "1/2.5"), (1 / 320, "1/320"), (1 / 2500, "1/2,500"),
])
def test_format_lr_literal_strings(lr, text):
    assert format_lr(lr) == text


# --- the file -----------------------------------------------------------------------------------------------------------
def test_to_dict_and_saved_file_are_literal_sorted_indented_ascii_json(tmp_path):
    cal = literal_calibration()
    assert cal.to_dict() == json.loads(LITERAL_FILE)
    path = cal.save(tmp_path / "m.calibration.json")
    assert path == tmp_path / "m.calibration.json"
    assert path.read_bytes() == LITERAL_FILE.encode("ascii")


def test_save_creates_folders_renames_a_temp_file_beside_the_target_and_makes_it_readable(tmp_path, monkeypatch):
    moves = []
    real_replace = os.replace

    def spy(src, dst):        # records the rename, then does it
        moves.append((os.fspath(src), os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    target = tmp_path / "a" / "b" / "m.calibration.json"
    literal_calibration().save(target)
    ((src, dst),) = moves
    assert dst == str(target)
    assert os.path.dirname(src) == str(target.parent)
    name = os.path.basename(src)
    assert name.startswith("m.calibration.json") and name.endswith(".tmp") and name != "m.calibration.json.tmp"
    assert [p.name for p in target.parent.iterdir()] == ["m.calibration.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_save_that_cannot_rename_leaves_no_temp_file(tmp_path):
    target = tmp_path / "m.calibration.json"
    target.mkdir()                                # a folder in the way: the rename fails
    with pytest.raises(IsADirectoryError):
        literal_calibration().save(target)
    assert [p.name for p in tmp_path.iterdir()] == ["m.calibration.json"] and not any(target.iterdir())


def test_load_errors_are_one_line_naming_the_file(tmp_path):
    missing = tmp_path / "gone.calibration.json"
    with pytest.raises(CalibrationError) as err:
        Calibration.load(missing)
    assert str(err.value) == f"calibration file not found: {missing}"
    damaged = tmp_path / "damaged.calibration.json"
    damaged.write_text("{not json")
    with pytest.raises(CalibrationError) as err:
        Calibration.load(damaged)
    assert str(err.value) == f"cannot read calibration file {damaged} (JSONDecodeError)"
    foreign = tmp_path / "foreign.calibration.json"
    foreign.write_text('{"format": "something else"}')
    with pytest.raises(CalibrationError) as err:
        Calibration.load(foreign)
    assert str(err.value) == f"{foreign} is not an XFR calibration file"


def test_from_dict_accepts_a_file_without_format_version_and_ignores_unknown_keys():
    data = json.loads(LITERAL_FILE)
    del data["format_version"]
    data["comment"] = "added by hand"
    cal = Calibration.from_dict(data)
    assert (cal.slope, cal.intercept, cal.n_impostor, cal.reference) == (2.5, -1.25, 4, "Müller set")


@pytest.mark.parametrize("change, message", [
    ({"format": "xfr-report"}, "calibration is not an XFR calibration file"),
    ({"format_version": 2}, "calibration was written by a newer XFR Desktop"),
    ({"slope": math.nan}, "calibration holds non-finite parameters"),
    ({"intercept": math.inf}, "calibration holds non-finite parameters"),
    ({"slope": None}, "calibration is incomplete or malformed (not a number: slope)"),
    ({"intercept": "abc"}, "calibration is incomplete or malformed (not a number: intercept)"),
    # numbers stored as text or true/false used to load and fail later, mid-analysis (TypeError)
    ({"slope": "1.5"}, "calibration is incomplete or malformed (not a number: slope)"),
    ({"slope": True}, "calibration is incomplete or malformed (not a number: slope)"),
    ({"cllr": "0.2", "eer": None}, "calibration is incomplete or malformed (not a number: cllr, eer)"),
    ({"score_min": [0]}, "calibration is incomplete or malformed (not a number: score_min)"),
    ({"cllr_min": False, "score_max": {}}, "calibration is incomplete or malformed (not a number: cllr_min, score_max)"),
    ({"n_genuine": "3"}, "calibration is incomplete or malformed (not a number: n_genuine)"),
    ({"n_impostor": 4.0}, "calibration is incomplete or malformed (not a number: n_impostor)"),
    ({"n_impostor": True}, "calibration is incomplete or malformed (not a number: n_impostor)"),
])
def test_from_dict_refuses_each_bad_field_in_one_line(change, message):
    data = json.loads(LITERAL_FILE)
    data.update(change)
    with pytest.raises(CalibrationError) as err:
        Calibration.from_dict(data)
    assert str(err.value) == message


def test_from_dict_refuses_a_missing_field_and_a_non_object():
    data = json.loads(LITERAL_FILE)
    del data["eer"]
    with pytest.raises(CalibrationError) as err:
        Calibration.from_dict(data, source="x.calibration.json")
    text = str(err.value)
    assert text.startswith("x.calibration.json is incomplete or malformed (") and "'eer'" in text
    assert "\n" not in text
    with pytest.raises(CalibrationError) as err:
        Calibration.from_dict([1, 2], source="x.calibration.json")
    assert str(err.value) == "x.calibration.json is not an XFR calibration file"


# --- fitting --------------------------------------------------------------------------------------------------------------
def test_fit_with_two_scores_each_drops_missing_scores_and_records_where_it_came_from():
    from xfr_desktop import __version__

    before = datetime.now(timezone.utc).replace(microsecond=0)
    cal = fit_calibration([0.7, None, 0.9, math.nan], [0.1, 0.3, None], model_sha256="ab" * 32, model_name="m",
                          reference="two pairs", extra={"n_no_face": 3})
    after = datetime.now(timezone.utc)
    assert (cal.n_genuine, cal.n_impostor, cal.score_min, cal.score_max) == (2, 2, 0.1, 0.9)
    assert (cal.model_sha256, cal.model_name, cal.reference, cal.extra) == ("ab" * 32, "m", "two pairs",
                                                                            {"n_no_face": 3})
    assert cal.software_version == __version__ and cal.method == "logistic-regression"
    assert len(cal.created_at) == 25 and cal.created_at.endswith("+00:00")   # 2026-01-02T03:04:05+00:00
    assert before <= datetime.fromisoformat(cal.created_at) <= after
    bare = fit_calibration([0.7, 0.9], [0.1, 0.3])
    assert (bare.reference, bare.extra, bare.model_name, bare.model_sha256) == ("", {}, None, None)


def test_fit_of_weakly_separated_scores_is_the_weighted_logistic_optimum():
    """A slope below 1 is a valid (weak) calibration. Reference: scipy minimizes Σ log(1 + exp(-t (a s + b)))
    (t = ±1, equal class sizes so equal weights) + a² / 2C with C = 1e6, written out here."""
    from scipy.optimize import minimize

    g, i = np.array([-0.9, 0.1, 0.8]), np.array([-0.8, -0.1, 0.7])
    s, t = np.concatenate([g, i]), np.concatenate([np.ones(3), -np.ones(3)])

    def loss(p):
        return np.logaddexp(0.0, -t * (p[0] * s + p[1])).sum() + p[0] ** 2 / 2e6

    ref = minimize(loss, [0.0, 0.0], method="BFGS", options={"gtol": 1e-10}).x
    cal = fit_calibration(g, i)
    assert 0 < ref[0] < 1
    assert (cal.slope, cal.intercept) == pytest.approx((ref[0], ref[1]), abs=1e-3)


def test_identical_scores_are_refused_zero_slope_is_not_a_calibration():
    with pytest.raises(CalibrationError, match="not higher"):
        fit_calibration([0.5, 0.5], [0.5, 0.5])


def cross_validated_cllr_by_hand(g, i, fg, fi):
    """Each fold scored by a logistic regression fitted (sklearn, balanced, C = 1e6) on the other folds only, its
    log10 LRs clipped to [-log10 n_genuine, log10 n_impostor] of that fit; Cllr by hand."""
    from sklearn.linear_model import LogisticRegression

    lg, li = np.zeros(g.size), np.zeros(i.size)
    for k in np.unique(np.concatenate([fg, fi])):
        gt, it = g[fg != k], i[fi != k]
        m = LogisticRegression(C=1e6, class_weight="balanced", max_iter=1000).fit(
            np.concatenate([gt, it])[:, None], np.concatenate([np.ones(gt.size), np.zeros(it.size)]))
        a, b = m.coef_[0, 0], m.intercept_[0]
        lg[fg == k] = np.clip((a * g[fg == k] + b) / LN10, -math.log10(gt.size), math.log10(it.size))
        li[fi == k] = np.clip((a * i[fi == k] + b) / LN10, -math.log10(gt.size), math.log10(it.size))
    return cllr_by_hand(lg.tolist(), li.tolist())


def test_two_fold_cross_validated_cllr_against_fits_written_out():
    """Two folds are enough; each is scored by a fit on the other only. float32 scores give the value of their
    float64 copies (the LRs are kept in float64)."""
    g = np.array([0.62, 0.35, 0.71, 0.48, 0.55, 0.80, 0.41, 0.66])
    i = np.array([0.12, 0.33, 0.05, 0.45, 0.21, 0.08, 0.29])
    fg, fi = np.array([0, 1, 0, 1, 0, 1, 0, 1]), np.array([0, 1, 0, 1, 0, 1, 1])
    assert cross_validated_cllr(g, i, fg, fi) == pytest.approx(cross_validated_cllr_by_hand(g, i, fg, fi), rel=1e-12)
    g32, i32 = g.astype(np.float32), i.astype(np.float32)
    assert cross_validated_cllr(g32, i32, fg, fi) == pytest.approx(
        cross_validated_cllr_by_hand(g32.astype(np.float64), i32.astype(np.float64), fg, fi), rel=1e-12)


# --- lookups next to the model ----------------------------------------------------------------------------------------------
class ModelFile:
    def __init__(self, path, sha256=None):
        self.path, self.sha256 = str(path), sha256


def test_lookup_errors_name_the_file_and_both_hashes(tmp_path):
    cal_path = literal_calibration().save(calibration_path(tmp_path / "m.pt"))
    with pytest.raises(CalibrationError) as err:
        load_calibration_for(ModelFile(tmp_path / "m.pt", "cd" * 32))
    assert str(err.value) == (f"{cal_path} was computed for another model file (sha256 abababababab…, the model is "
                              f"cdcdcdcdcdcd…); run `xfr calibrate` again")
    other = tmp_path / "other.pt"
    with pytest.raises(CalibrationError) as err:
        likelihood_ratio(ModelFile(other), 0.5)
    assert str(err.value) == (f"model {other} has no calibration (other.calibration.json); "
                              f"run `xfr calibrate --pairs FILE --root DIR --model {other}`")


def test_stored_likelihood_ratio_literal_record(tmp_path):
    """slope 5 ln10, intercept 0: score 0.5 gives log10 LR 2.5, LR 316.23 (moderately strong); limits 1/250, 4000."""
    literal_calibration(slope=5 * LN10, intercept=0.0, n_genuine=250, n_impostor=4000, cllr=0.2,
                        reference="ref").save(calibration_path(tmp_path / "m.pt"))
    record = stored_likelihood_ratio(ModelFile(tmp_path / "m.pt"), 0.5)
    assert record == {
        "value": pytest.approx(316.227766, rel=1e-8),
        "verbal": f"moderately strong support {SAME}",
        "limits": [pytest.approx(0.004, rel=1e-12), pytest.approx(4000.0, rel=1e-12)],
        "calibration": {"method": "logistic-regression", "reference": "ref", "n_genuine": 250, "n_impostor": 4000,
                        "cllr": 0.2, "created_at": "2026-01-02T03:04:05+00:00"},
    }
    assert type(record["value"]) is float and type(record["verbal"]) is str
    assert stored_likelihood_ratio(tmp_path / "m.pt", 0.5)["value"] == pytest.approx(316.227766, rel=1e-8)


def test_stored_likelihood_ratio_is_none_and_logged_when_unusable(tmp_path, caplog):
    assert stored_likelihood_ratio(ModelFile(tmp_path / "none.pt"), 0.5) is None
    literal_calibration().save(calibration_path(tmp_path / "m.pt"))
    with caplog.at_level(logging.INFO, logger="xfr_desktop.core.calibration"):
        assert stored_likelihood_ratio(ModelFile(tmp_path / "m.pt"), math.nan) is None
        cal_path = calibration_path(tmp_path / "m.pt")
        cal_path.write_text("{not json")
        assert stored_likelihood_ratio(ModelFile(tmp_path / "m.pt"), 0.5) is None
    assert [r.getMessage() for r in caplog.records if r.name == "xfr_desktop.core.calibration"] == [
        "no likelihood ratio: a likelihood ratio must be positive",
        f"no likelihood ratio: cannot read calibration file {cal_path} (JSONDecodeError)"]
