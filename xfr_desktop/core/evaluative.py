"""Evaluative reporting: the likelihood ratio as a report states it, the propositions it weighs, and the model's
thresholded decision kept apart from it (ENFSI Guideline for Evaluative Reporting in Forensic Science, 2015).

- LRs are rounded to two significant digits; below 1 they read as a fraction ("1/1,200").
- An LR at the calibration's limit (the reference set cannot support more: [1/n_genuine, n_impostor]) is stated
  as a bound, "≥ 3,000 (limit of the calibration)" or "≤ 1/3,000 (limit of the calibration)", and its verbal
  equivalent as "at least …".
- The decision of the model at a threshold τ is "model decision at τ = …", flagged when τ is not the model's
  calibrated threshold or when it points the other way from the LR.

Qt-free; used by the report, the desktop and the command line alike.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .calibration import PROPOSITION_DIFFERENT, PROPOSITION_SAME, verbal_equivalent
from .decision import decision_label

DEFAULT_PROSECUTION = f"Hp: {PROPOSITION_SAME}."
DEFAULT_DEFENCE = f"Hd: {PROPOSITION_DIFFERENT}."
LIMIT_NOTE = "limit of the calibration"
THRESHOLD_TOLERANCE = 5e-7   # thresholds are stored rounded to 6 decimals


def case_propositions(case) -> tuple[str, str]:
    """(prosecution, defence) of a case record: its own wording, or the defaults where it has none."""
    hp = (getattr(case, "proposition_prosecution", "") or "").strip() or DEFAULT_PROSECUTION
    hd = (getattr(case, "proposition_defence", "") or "").strip() or DEFAULT_DEFENCE
    return hp, hd


def round_significant(value: float, digits: int = 2, *, down: bool = False) -> float:
    """`value` (> 0) rounded to `digits` significant digits; ``down`` rounds toward zero (for stated bounds)."""
    if not (value > 0) or not math.isfinite(value):
        raise ValueError("a likelihood ratio must be a positive finite number")
    exponent = math.floor(math.log10(value)) - digits + 1
    scaled = value / 10.0 ** exponent
    scaled = math.floor(scaled + 1e-9) if down else round(scaled)
    return scaled * 10.0 ** exponent


def format_lr_rounded(lr: float, *, down: bool = False) -> str:
    """'1,200' / '2.5' / '1/81' / '1/1,200': two significant digits, below 1 as a fraction of the rounded 1/LR."""
    if lr >= 1:
        return _plain(round_significant(lr, down=down))
    return "1/" + _plain(round_significant(1.0 / lr, down=down))


def _plain(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.2g}"


@dataclass(frozen=True)
class LRStatement:
    value: float            # the LR as computed (clipped at the calibration's limits)
    text: str               # "1,200", "1/81", "≥ 3,000 (limit of the calibration)"
    verbal: str             # ENFSI verbal equivalent ("at least …" at a limit)
    at_limit: str | None    # "upper" | "lower" | None
    supports: str | None    # "Hp" | "Hd" | None (LR = 1)

    @property
    def equation(self) -> str:
        """"LR = 1,200", or at a limit "LR ≥ 3,000 (limit of the calibration)" (never "LR = ≥ …")."""
        return f"LR {self.text}" if self.at_limit else f"LR = {self.text}"


def lr_statement(lr: float | dict | None, limits: tuple[float, float] | None = None,
                 propositions: tuple[str, str] | None = None) -> LRStatement | None:
    """How a report states a likelihood ratio. ``lr``: a value or a stored ``{"value", "limits"?}``; ``limits``
    (lower, upper) LR values of the calibration, when the stored dict does not carry them; ``propositions``: the
    case's (:func:`case_propositions`), which the verbal equivalent names. None when no LR."""
    if isinstance(lr, dict):
        limits = limits or (tuple(lr["limits"]) if lr.get("limits") else None)
        lr = lr.get("value")
    if lr is None or not (float(lr) > 0) or not math.isfinite(float(lr)):
        return None
    value = float(lr)
    at_limit = _at_limit(value, limits)
    supports = None if math.isclose(value, 1.0, rel_tol=1e-9) else ("Hp" if value > 1 else "Hd")
    verbal = verbal_equivalent(value, _named_propositions(propositions))
    if at_limit is None:
        return LRStatement(value, format_lr_rounded(value), verbal, None, supports)
    bound = "≥" if at_limit == "upper" else "≤"
    text = f"{bound} {format_lr_rounded(value, down=True)} ({LIMIT_NOTE})"
    return LRStatement(value, text, "at least " + verbal, at_limit, supports)


def labelled_propositions(propositions: tuple[str, str]) -> tuple[str, str]:
    """("Hp: …", "Hd: …"): each proposition under the label the verbal equivalents name it by."""
    hp, hd = (text.strip() if text.strip()[:2].lower() == label.lower() else f"{label}: {text.strip()}"
              for label, text in zip(("Hp", "Hd"), propositions))
    return hp, hd


def _named_propositions(propositions: tuple[str, str] | None) -> tuple[str, str] | None:
    """The case's own propositions as the verbal scale names them ("Hp: the man filmed is the suspect"); None
    for the default pair, which keeps its plain wording."""
    if propositions is None or tuple(propositions) == (DEFAULT_PROSECUTION, DEFAULT_DEFENCE):
        return None
    hp, hd = labelled_propositions(propositions)
    return hp.rstrip("."), hd.rstrip(".")


def _at_limit(value: float, limits) -> str | None:
    if not limits:
        return None
    lower, upper = (float(v) for v in limits)
    if value >= upper * (1 - 1e-9):
        return "upper"
    if value <= lower * (1 + 1e-9):
        return "lower"
    return None


@dataclass(frozen=True)
class ModelDecision:
    text: str                        # "model decision at τ = 0.980: non-match"
    threshold: float
    calibrated_threshold: float | None
    flags: tuple[str, ...]           # one line each: τ not the calibrated one, decision against the LR


def model_decision(score: float, threshold: float, calibrated_threshold: float | None = None,
                   lr: float | None = None, decision: bool | None = None) -> ModelDecision:
    """The model's thresholded decision as the technical section states it, with what a reader must know.
    ``decision``: the stored one (default: score ≥ τ)."""
    decision = float(score) >= float(threshold) if decision is None else bool(decision)
    text = f"model decision at τ = {threshold:.3f}: {decision_label(decision)}"
    flags = []
    if calibrated_threshold is not None and abs(threshold - calibrated_threshold) > THRESHOLD_TOLERANCE:
        flags.append(f"τ = {threshold:.3f} is not the model's calibrated threshold τ = {calibrated_threshold:.3f}: "
                     "the decision at this τ is exploratory")
    if lr is not None and not math.isclose(lr, 1.0, rel_tol=1e-9) and (lr > 1) != decision:
        flags.append(f"the decision at τ = {threshold:.3f} points the other way from the likelihood ratio "
                     f"({format_lr_rounded(lr)}); the likelihood ratio is the evaluative result")
    return ModelDecision(text, float(threshold), calibrated_threshold, tuple(flags))


def result_model_decision(result) -> ModelDecision:
    """:func:`model_decision` of a stored result (its score, τ, the model's τ and LR from its parameters)."""
    params = getattr(result, "parameters", None) or {}
    lr = (params.get("likelihood_ratio") or {}).get("value")
    calibrated = params.get("model_threshold")
    return model_decision(result.score, result.threshold, None if calibrated is None else float(calibrated), lr,
                          decision=result.decision)
