"""Numbers from users and files: finite or refused with one line, and JSON that stays JSON.

NaN compares false with everything, so a NaN threshold silently made every pair a non-match and an infinite one
every pair a match; Python's json writes them as bare NaN/Infinity, which is not JSON.
"""
from __future__ import annotations

import argparse
import json
import math

from .errors import XfrError


def finite_float(value, what: str) -> float:
    """`value` as a finite float, or XfrError naming `what`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise XfrError(f"{what} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise XfrError(f"{what} must be a finite number, not {number}")
    return number


def finite_arg(text: str) -> float:
    """argparse ``type=``: a finite float, else a usage error (exit 2) saying so."""
    try:
        return finite_float(text, "the value")
    except XfrError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cosine_arg(text: str) -> float:
    """argparse ``type=``: a threshold on a cosine score, so finite and in [-1, 1]; else a usage error (exit 2)."""
    value = finite_arg(text)
    if not -1.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a threshold on the cosine score must be between -1 and 1, not {text}")
    return value


def _counted_from_one(text: str, rule: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{rule}, not {number}")
    return number


def face_number_arg(text: str) -> int:
    """argparse ``type=``: a face number counted from 1 (1 = the largest face in the photo)."""
    return _counted_from_one(text, "face numbers start at 1 (1 = the largest face)")


def positive_int_arg(text: str) -> int:
    """argparse ``type=``: a whole number from 1 (a comparison's number, a result's id)."""
    return _counted_from_one(text, "numbers start at 1")


def without_nonfinite(value):
    """Copy with every NaN/infinity replaced by None (null), numpy values made plain Python."""
    if isinstance(value, dict):
        return {k: without_nonfinite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_nonfinite(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_text(value, **kwargs) -> str:
    """Strictly valid JSON: non-finite numbers become null (an output must parse anywhere)."""
    return json.dumps(without_nonfinite(value), allow_nan=False, **kwargs)
