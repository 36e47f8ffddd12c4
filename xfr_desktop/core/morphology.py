"""The morphological comparison an examiner records feature by feature (FISWG "Facial Image Comparison Feature
List for Morphological Analysis", v2.0, 2018, its top-level components), kept apart from the model's explanation.

Each feature of a comparison is assessed as similar, dissimilar or not assessable (e.g. hidden, too blurred),
with a free-text note. Keys are stored in the database; labels are what people read. Qt-free, no other layer.
"""
from __future__ import annotations

from .errors import XfrError

# (key, label) in the order FISWG lists the components; keys never change once released (they are stored).
FISWG_FEATURES: tuple[tuple[str, str], ...] = (
    ("skin", "Skin"),
    ("face_outline", "Face/head outline"),
    ("face_composition", "Face/head composition (proportions)"),
    ("hair", "Hair"),
    ("forehead", "Forehead"),
    ("eyebrows", "Eyebrows"),
    ("eyes", "Eyes"),
    ("cheeks", "Cheeks"),
    ("nose", "Nose"),
    ("ears", "Ears"),
    ("mouth", "Mouth"),
    ("chin_jawline", "Chin/jawline"),
    ("neck", "Neck"),
    ("facial_hair", "Facial hair"),
    ("facial_lines", "Facial lines (wrinkles, creases)"),
    ("scars", "Scars"),
    ("facial_marks", "Facial marks (moles, freckles, blemishes)"),
    ("tattoos", "Tattoos"),
    ("alterations", "Other (piercings, alterations)"),
)
FEATURE_LABELS = dict(FISWG_FEATURES)

SIMILAR, DISSIMILAR, NOT_ASSESSABLE = "similar", "dissimilar", "not_assessable"
ASSESSMENT_VALUES: tuple[tuple[str, str], ...] = (
    (SIMILAR, "Similar"), (DISSIMILAR, "Dissimilar"), (NOT_ASSESSABLE, "Not assessable"))
VALUE_LABELS = dict(ASSESSMENT_VALUES)


def check_assessment(feature: str, value: str) -> None:
    """XfrError with one line when `feature` or `value` is not one of the stored keys."""
    if feature not in FEATURE_LABELS:
        raise XfrError(f"unknown facial feature {feature!r} (one of {', '.join(FEATURE_LABELS)})")
    if value not in VALUE_LABELS:
        raise XfrError(f"unknown assessment {value!r} (one of {', '.join(VALUE_LABELS)})")


def assessment_summary(values: dict[str, str]) -> dict[str, int]:
    """How many features were assessed as each value (``values``: feature key -> value key), every value listed."""
    return {key: sum(1 for v in values.values() if v == key) for key, _ in ASSESSMENT_VALUES}
