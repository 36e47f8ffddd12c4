"""The calibration behind a report's likelihood ratios, and how the report names it.

A report's LRs come only from the calibration of exactly the result's model (docs/integrity.md): the
``.calibration.json`` beside the bundled model file with the result's SHA-256, recording that same SHA-256.
"""
from __future__ import annotations

import re

from ..core.calibration import CalibrationError, load_calibration_for, verbal_equivalent
from .model_cards import bundled_models_by_sha256

# The set's name as older `xfr calibrate` runs wrote it, with the pair counts in brackets (which the report states
# itself): "scores file scores.npz (6000 pairs, 2 left out (no face found))", "pairs.txt: 6000 pairs".
_LEFT_OUT = r"(?:, (?P<out>\d+) left out \(no face found\))?"
_COUNTED_NAMES = ((re.compile(rf"^scores file (?P<name>\S+) \(\d+ pairs{_LEFT_OUT}\)$"), "pairs scored in {name}"),
                  (re.compile(rf"^(?P<name>[^:]+): \d+ pairs{_LEFT_OUT}$"), "pair list {name}"))


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


def reference_name(reference: str | None) -> str:
    """The reference set's name without pair counts: 'LFW View 2'; an older run's 'scores file scores.npz (6000
    pairs)' reads 'pairs scored in scores.npz'."""
    for pattern, words in _COUNTED_NAMES:
        m = pattern.match(reference or "")
        if m:
            return words.format(name=m["name"]) + left_out_words(int(m["out"] or 0))
    return reference or "a reference set"


def left_out_words(n_pairs: int) -> str:
    """' (no face found in 2 pairs, left out)' after a reference set's name; '' for none."""
    return f" (no face found in {n_pairs:,} pair{'' if n_pairs == 1 else 's'}, left out)" if n_pairs else ""


def calibration_source(about: dict) -> str:
    """What a calibration rests on, in words for a court reader: 'LFW View 2, 6,000 pairs (3,000 same-person,
    3,000 different-person)'."""
    name = reference_name(about.get("reference"))
    if not (about.get("n_genuine") and about.get("n_impostor")):
        return name
    same, different = int(about["n_genuine"]), int(about["n_impostor"])
    return f"{name}, {same + different:,} pairs ({same:,} same-person, {different:,} different-person)"


def calibration_note(about: dict | None) -> str:
    """'logistic-regression calibration on LFW View 2, 6,000 pairs (3,000 same-person, 3,000 different-person),
    Cllr 0.140'; '' when unknown."""
    if not about:
        return ""
    text = f"{about.get('method', 'unknown')} calibration on {calibration_source(about)}"
    if about.get("cllr") is not None:
        text += f", Cllr {float(about['cllr']):.3f}"
    return text
