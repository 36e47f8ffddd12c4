"""The case's audit trail as the report's Appendix B prints it: each entry's details as readable lines, comparisons
and the case named by their numbers (as everywhere in the report), and the chain's verification in words.
"""
from __future__ import annotations

import json
from dataclasses import replace


def detail_pairs(details) -> list[tuple[str, str]]:
    """An audit entry's details as readable ``(key, value)`` lines: nested keys dotted (``parameters.top_k``),
    lists of plain values comma-separated, nothing cut. Text that is not a JSON object stays one line."""
    if isinstance(details, str):
        try:
            details = json.loads(details) if details.strip() else {}
        except ValueError:
            return [("", details)]
    out: list[tuple[str, str]] = []

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            if not value:
                out.append((prefix, "—"))
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
            for i, sub in enumerate(value):
                walk(f"{prefix}[{i + 1}]", sub)
        elif isinstance(value, list):
            out.append((prefix, ", ".join("—" if v is None else str(v) for v in value) or "—"))
        else:
            out.append((prefix, "—" if value is None or value == "" else str(value)))

    walk("", details)
    return out


def audit_rows(records, numbers: dict[str, int], case_number: str = "") -> list[dict]:
    """The audit entries as the appendix prints them; a comparison is named by its number (``numbers``: database
    id → number) and the case by its case number, as everywhere else in the report, not by their database ids."""
    rows = []
    for r in records:
        object_id = "" if r.object_id is None else str(r.object_id)
        if r.object_type == "comparison" and object_id in numbers:
            object_id = str(numbers[object_id])
        elif r.object_type == "case" and case_number:
            object_id = case_number
        details = [("comparison", str(numbers[value])) if key == "comparison_id" and value in numbers
                   else (key, value) for key, value in detail_pairs(r.details)]
        rows.append({"id": r.id, "time": r.time, "actor": r.actor, "action": r.action,
                     "object": f"{r.object_type or ''} {object_id}".strip(), "details": details, "hash": r.hash})
    return rows


def audit_status(verification) -> str:
    """The case's chain verification in words, without the case's database id (the report names the case by its
    number at the top of every page)."""
    return replace(verification, case_id=None).message
