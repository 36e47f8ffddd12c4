"""The words for a verification decision: one spelling wherever a result is printed, stored or reported."""
from __future__ import annotations

MATCH = "match"
NON_MATCH = "non-match"


def decision_label(decision: bool) -> str:
    """'match' when the score is at or above the threshold, else 'non-match'."""
    return MATCH if decision else NON_MATCH
