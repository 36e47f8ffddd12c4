"""The calibration behind a report's likelihood ratios, and how the report names it.

A report's LRs come only from the calibration of exactly the result's model (docs/integrity.md): the
``.calibration.json`` beside the bundled model file with the result's SHA-256, recording that same SHA-256.
"""
from __future__ import annotations

from ..core.calibration import CalibrationError, load_calibration_for, verbal_equivalent
from .model_cards import bundled_models_by_sha256


def find_calibration(model_sha256: str | None, explicit=None):
    """The calibration for the model that produced a result: explicit, else the one beside the bundled model file
    whose SHA-256 is the result's, and only when it records exactly that SHA-256 (a registry row's path never
    finds one: anyone who can write the data folder can set it)."""
    if explicit is not None:
        return explicit
    path = bundled_models_by_sha256().get(model_sha256 or "")
    if not path:
        return None
    try:
        cal = load_calibration_for(path)
    except (CalibrationError, ValueError):
        return None
    return cal if cal is not None and cal.model_sha256 == model_sha256 else None


def stored_lr(parameters) -> tuple[float, str] | None:
    """The LR the app showed when the result was saved (``parameters["likelihood_ratio"]``), if any."""
    stored = (parameters or {}).get("likelihood_ratio")
    if not isinstance(stored, dict):
        return None
    try:
        value = float(stored.get("value"))
        return value, str(stored.get("verbal") or verbal_equivalent(value))
    except (TypeError, ValueError):
        return None


def calibration_summary(cal) -> dict | None:
    """What the report states about a calibration (Appendix A), or None for none."""
    if cal is None:
        return None
    return {"method": cal.method, "n_genuine": cal.n_genuine, "n_impostor": cal.n_impostor, "cllr": cal.cllr,
            "cllr_min": cal.cllr_min, "eer": cal.eer, "reference": cal.reference,
            "bounds": [10 ** b for b in cal.log10_lr_bounds]}


def calibration_note(about: dict | None) -> str:
    """'logistic-regression calibration on LFW (3,000 same-person and 3,000 different-people comparisons),
    Cllr 0.138'; '' when unknown."""
    if not about:
        return ""
    text = f"{about.get('method', 'unknown')} calibration on {about.get('reference') or 'a reference set'}"
    if about.get("n_genuine") and about.get("n_impostor"):
        text += (f" ({int(about['n_genuine']):,} same-person and {int(about['n_impostor']):,} different-people "
                 f"comparisons)")
    if about.get("cllr") is not None:
        text += f", Cllr {float(about['cllr']):.3f}"
    return text
