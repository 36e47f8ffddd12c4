"""Optional likelihood ratio for the score panel: uses ``xfr_desktop.core.calibration.likelihood_ratio`` once the
reports issue provides it; until then (or when the model carries no calibration) there is none to show."""
from __future__ import annotations

import logging
import math

log = logging.getLogger(__name__)


def likelihood_ratio_for(model, score: float) -> dict | None:
    """``{"value": LR, "verbal": str | None}`` (JSON-able, stored with the result) or None."""
    try:
        from ..core.calibration import likelihood_ratio
    except ImportError:
        return None
    try:
        value = likelihood_ratio(model, float(score))
    except Exception as exc:  # no calibration for this model: show none rather than fail the analysis
        log.info("no likelihood ratio: %s", exc)
        return None
    if value is None:
        return None
    verbal = None
    if isinstance(value, (tuple, list)) and len(value) == 2:  # (LR, verbal equivalent)
        value, verbal = value
    elif not isinstance(value, (int, float)):
        verbal = getattr(value, "verbal", None) or getattr(value, "verbal_equivalent", None)
        for attr in ("value", "lr", "likelihood_ratio"):
            if hasattr(value, attr):
                value = getattr(value, attr)
                break
        if isinstance(value, dict):
            verbal = value.get("verbal", verbal)
            value = value.get("value", value.get("lr"))
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value):
        return None
    return {"value": value, "verbal": None if verbal is None else str(verbal)}


def format_likelihood_ratio(lr: dict | None) -> str:
    if not lr:
        return "—"
    value = lr.get("value")
    if value is None:
        return "—"
    try:
        from ..core.calibration import format_lr

        text = format_lr(float(value))
    except Exception:  # formatting only
        text = f"{value:.3g}" if 1e-3 <= value < 1e4 else f"{value:.2e}"
    return f"{text} ({lr['verbal']})" if lr.get("verbal") else text
