"""Mutation pins for core/evaluative.py (issue 28): what the report says about a likelihood ratio and the model's
decision. Every expected text is written out by hand; every flag and bound is checked in both directions (flag
raised / not raised, LR above / below 1, upper / lower limit, τ above / below the calibrated one)."""
from __future__ import annotations

import math

import pytest

from xfr_desktop.core.evaluative import (case_propositions, format_lr_rounded, lr_statement, model_decision,
                                         result_model_decision, round_significant)

SAME = "the proposition that the two images show the same person"
DIFFERENT = "the proposition that the two images show two different people"


def test_rounding_uses_the_digits_asked_for_and_rounds_bounds_toward_zero():
    assert round_significant(1234.5, 3) == pytest.approx(1230)
    assert round_significant(0.012345, 3) == pytest.approx(0.0123)
    assert round_significant(1250.0, 1) == pytest.approx(1000)
    assert round_significant(1299, down=True) == pytest.approx(1200)     # nearest would be 1,300
    assert round_significant(1250, down=False) == pytest.approx(1200)    # round half to even: 12.5 -> 12
    assert round_significant(1251) == pytest.approx(1300)
    # 0.3 / 10**-1 is 2.9999999999999996 in binary: a bound of exactly 0.3 must stay 0.3, not drop to 0.2
    assert round_significant(0.3, 1, down=True) == pytest.approx(0.3)
    assert round_significant(0.3, 1, down=True) > 0.25


@pytest.mark.parametrize("bad", [0.0, -2.0, math.inf, math.nan, -math.inf])
def test_rounding_refuses_what_is_not_a_positive_finite_lr(bad):
    with pytest.raises(ValueError, match="^a likelihood ratio must be a positive finite number$"):
        round_significant(bad)


def test_formatting_below_and_above_one():
    assert [format_lr_rounded(v) for v in (1.0, 9.94, 9.96, 12.3, 99.6, 123456.0)] == [
        "1", "9.9", "10", "12", "100", "120,000"]
    assert [format_lr_rounded(v) for v in (0.5, 1 / 9.94, 1 / 99.6, 1 / 123456.0)] == [
        "1/2", "1/9.9", "1/100", "1/120,000"]
    assert format_lr_rounded(1 / 3199, down=True) == "1/3,100"
    assert format_lr_rounded(3199, down=True) == "3,100"
    assert format_lr_rounded(3199) == "3,200"


def test_an_lr_of_one_supports_neither_proposition():
    st = lr_statement(1.0)
    assert (st.text, st.supports, st.at_limit, st.equation) == ("1", None, None, "LR = 1")
    assert st.verbal == "no support for either proposition (LR = 1)"
    assert lr_statement(1.0 + 1e-12).supports is None


def test_support_follows_the_side_of_one():
    above, below = lr_statement(2.0), lr_statement(0.5)
    assert (above.supports, above.text, above.value) == ("Hp", "2", 2.0)
    assert (below.supports, below.text, below.value) == ("Hd", "1/2", 0.5)
    assert above.verbal == f"weak support for {SAME}"
    assert below.verbal == f"weak support for {DIFFERENT}"


@pytest.mark.parametrize("bad", [0, -3.0, math.inf, math.nan, {"value": 0.0}, {"value": -1}, {}])
def test_no_statement_for_what_is_not_a_positive_finite_lr(bad):
    assert lr_statement(bad) is None


def test_limits_at_both_ends_with_their_tolerance():
    limits = (1 / 3000, 3000.0)
    upper, lower = lr_statement(3000.0, limits), lr_statement(1 / 3000, limits)
    # within 1e-9 (relative) of a limit counts as at it; the bound is then rounded toward 1 (what holds)
    assert lr_statement(3000.0 * (1 - 5e-10), limits).text == "≥ 2,900 (limit of the calibration)"
    assert lr_statement((1 / 3000) * (1 + 5e-10), limits).text == "≤ 1/2,900 (limit of the calibration)"
    assert (upper.at_limit, upper.supports, upper.text) == ("upper", "Hp", "≥ 3,000 (limit of the calibration)")
    assert (upper.value, lower.value) == (3000.0, 1 / 3000)        # the value as computed, beside its bound
    assert (lower.at_limit, lower.supports, lower.text) == ("lower", "Hd", "≤ 1/3,000 (limit of the calibration)")
    assert upper.verbal == f"at least strong support for {SAME}"
    assert lower.verbal == f"at least strong support for {DIFFERENT}"
    assert (upper.equation, lower.equation) == ("LR ≥ 3,000 (limit of the calibration)",
                                                "LR ≤ 1/3,000 (limit of the calibration)")
    # just inside the limits (by more than the tolerance): a plain value, no bound
    inside_hi, inside_lo = lr_statement(2999.0, limits), lr_statement(1 / 2999.0, limits)
    assert (inside_hi.at_limit, inside_hi.text, inside_hi.verbal) == (None, "3,000", f"strong support for {SAME}")
    assert (inside_lo.at_limit, inside_lo.text) == (None, "1/3,000")
    assert lr_statement(4000.0, limits).at_limit == "upper" and lr_statement(1 / 4000, limits).at_limit == "lower"
    # the tolerance's own edge counts as at the limit, on both sides
    assert lr_statement(3000.0 * (1 - 1e-9), limits).at_limit == "upper"
    assert lr_statement((1 / 3000) * (1 + 1e-9), limits).at_limit == "lower"


def test_limits_given_by_the_caller_win_over_the_stored_ones():
    stored = {"value": 150.0, "limits": [1 / 100, 100]}
    assert lr_statement(stored).at_limit == "upper"
    assert lr_statement(stored, limits=(1 / 5000, 5000)).at_limit is None
    assert lr_statement({"value": 150.0, "limits": []}).at_limit is None
    assert lr_statement({"value": 150.0, "limits": None}).at_limit is None


def test_the_cases_own_propositions_are_named_in_the_verbal_equivalent():
    own = ("The man filmed is the suspect.", "  hd: the man filmed is another man. ")
    assert lr_statement(2.0, propositions=own).verbal == "weak support for Hp: The man filmed is the suspect"
    assert lr_statement(0.5, propositions=own).verbal == "weak support for hd: the man filmed is another man"
    # only the closing full stop goes: a proposition may end in a letter such as "Mr X"
    named_x = ("the man is Mr X.", "the man is not Mr X")
    assert lr_statement(2.0, propositions=named_x).verbal == "weak support for Hp: the man is Mr X"
    assert lr_statement(0.5, propositions=named_x).verbal == "weak support for Hd: the man is not Mr X"
    prefixed = ("HP: A is B", "Hd: A is not B")
    assert lr_statement(2.0, propositions=prefixed).verbal == "weak support for HP: A is B"
    assert lr_statement(0.5, propositions=prefixed).verbal == "weak support for Hd: A is not B"
    defaults = case_propositions(object())
    assert lr_statement(2.0, propositions=defaults).verbal == f"weak support for {SAME}"
    assert lr_statement(0.5, propositions=list(defaults)).verbal == f"weak support for {DIFFERENT}"


def test_case_propositions_of_a_record_without_wording():
    class Blank:
        proposition_prosecution = None
        proposition_defence = "   "

    class Own:
        proposition_prosecution = " Hp: own. "
        proposition_defence = "Hd: other."

    defaults = ("Hp: the two images show the same person.", "Hd: the two images show two different people.")
    assert case_propositions(Blank()) == defaults and case_propositions(object()) == defaults
    assert case_propositions(Own()) == ("Hp: own.", "Hd: other.")


def test_decision_at_the_threshold_itself_is_a_match_and_a_stored_decision_wins():
    assert model_decision(0.5, 0.5).text == "model decision at τ = 0.500: match"
    assert model_decision(0.4999, 0.5).text == "model decision at τ = 0.500: non-match"
    assert model_decision(0.9, 0.5, decision=False).text == "model decision at τ = 0.500: non-match"
    assert model_decision(0.1, 0.5, decision=True).text == "model decision at τ = 0.500: match"
    d = model_decision(0.7, 0.5, calibrated_threshold=0.55)
    assert (d.threshold, d.calibrated_threshold) == (0.5, 0.55)


def test_threshold_flag_in_both_directions_and_within_the_storage_rounding():
    def flags(tau, calibrated):
        return model_decision(0.99, tau, calibrated_threshold=calibrated).flags
    note = ("τ = {:.3f} is not the model's calibrated threshold τ = {:.3f}: the decision at this τ is "
            "exploratory")
    assert flags(0.6, 0.5) == (note.format(0.6, 0.5),)
    assert flags(0.4, 0.5) == (note.format(0.4, 0.5),)
    assert flags(0.5 + 4e-7, 0.5) == () and flags(0.5 - 4e-7, 0.5) == ()   # stored rounded to 6 decimals
    assert flags(0.5 + 6e-7, 0.5) != () and flags(0.5 - 6e-7, 0.5) != ()
    assert flags(0.5, None) == ()
    # a difference of exactly the tolerance (5e-7 - 0.0 is exact in binary) is still the calibrated τ
    assert flags(5e-7, 0.0) == () and flags(0.0, 5e-7) == ()


LR_TEXT = {3000.0: "3,000", 1 / 3000: "1/3,000", 1.5: "1.5", 1 / 1.5: "1/1.5"}


@pytest.mark.parametrize("lr, decision, against", [
    (3000.0, False, True), (3000.0, True, False), (1 / 3000, True, True), (1 / 3000, False, False),
    (1.0, True, False), (1.0, False, False), (None, False, False), (None, True, False),
    (1.5, False, True), (1.5, True, False), (1 / 1.5, True, True), (1 / 1.5, False, False)])
def test_decision_against_the_lr_is_flagged_for_both_signs(lr, decision, against):
    d = model_decision(0.5, 0.5, lr=lr, decision=decision)
    expected = ()
    if against:
        expected = (f"the decision at τ = 0.500 points the other way from the likelihood ratio "
                    f"({LR_TEXT[lr]}); the likelihood ratio is the evaluative result",)
    assert d.flags == expected


def test_a_stored_results_decision_reads_its_parameters():
    class Result:
        score, threshold, decision = 0.7, 0.6, True
        parameters = {"likelihood_ratio": {"value": 0.01}, "model_threshold": "0.5"}

    d = result_model_decision(Result())
    assert d.text == "model decision at τ = 0.600: match" and d.calibrated_threshold == 0.5
    assert d.flags == (
        "τ = 0.600 is not the model's calibrated threshold τ = 0.500: the decision at this τ is exploratory",
        "the decision at τ = 0.600 points the other way from the likelihood ratio (1/100); the likelihood ratio "
        "is the evaluative result")

    class Bare:
        score, threshold, decision, parameters = 0.2, 0.6, False, None

    bare = result_model_decision(Bare())
    assert (bare.text, bare.calibrated_threshold, bare.flags) == ("model decision at τ = 0.600: non-match", None, ())

    class NoLR:
        score, threshold, decision = 0.2, 0.6, None
        parameters = {"likelihood_ratio": None, "model_threshold": 0.6}

    assert result_model_decision(NoLR()).flags == () and result_model_decision(NoLR()).text.endswith("non-match")

    class StoredAgainstScore:       # the stored decision is what was decided, whatever score >= τ says now
        score, threshold, decision = 0.7, 0.6, False

    d = result_model_decision(StoredAgainstScore())      # no parameters attribute at all
    assert (d.text, d.flags) == ("model decision at τ = 0.600: non-match", ())
