"""Binds the case facts to the audit chain: every audit entry that records a case, image, comparison, result or
conclusion carries ``row_sha256``, the SHA-256 of that row's canonical content (for images the row's key is also
the SHA-256 of the evidence file). :func:`check_rows` recomputes them from the rows and the files.

Why this exists: the hash chain alone only protects the audit entries; a forger who edits ``results.score`` or
swaps a file under ``images/`` leaves the chain intact. With the digests, such an edit no longer matches the entry
that recorded the row, and a row that no entry records (inserted behind the app's back) is reported as well.

Rules: results, conclusions, images, feature assessments, image-quality records and reviews never change after
they are saved, so *every* entry naming one must match it; a case can be edited (``case.updated``), a comparison
removed or given a report result, an annotation removed, so for those the *latest* entry must match. Columns added
in schema 4 to older kinds (propositions, removal, report result) join the digest only once they hold a value, so
digests recorded before schema 4 still match.
"""
from __future__ import annotations

import hashlib
import json

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, undefer

from .audit import canonical_json
from .imagestore import file_sha256
from .schema import (Annotation, AuditLog, Case, Comparison, Conclusion, FeatureAssessment, Image, ImageQuality,
                     Result, Review)

ROW_KEY = "row_sha256"
ADOPT_KEY = "rows"          # the migration's entry: {"<type>:<id>": digest} for rows older than the binding
MUTABLE_TYPES = {"case", "comparison", "annotation"}

_FIELDS = {
    "case": ("number", "title", "examiner", "organisation", "notes", "created_at"),
    "image": ("sha256", "original_name", "original_path", "size", "width", "height", "format", "ext",
              "imported_at"),
    "comparison": ("case_id", "image_a", "image_b", "face_index_a", "face_index_b", "model_sha256", "model_name",
                   "parameters", "created_at"),
    "result": ("comparison_id", "created_at", "parameters", "score", "threshold", "model_sha256", "model_name",
               "timings"),
    "conclusion": ("case_id", "comparison_id", "text", "scale", "notes", "author", "created_at"),
    "feature_assessment": ("comparison_id", "feature", "value", "note", "author", "created_at"),
    "annotation": ("comparison_id", "side", "kind", "x", "y", "width", "height", "label", "author", "created_at",
                   "removed_at", "removed_by"),
    "image_quality": ("comparison_id", "side", "image_sha256", "data", "created_at"),
    "review": ("comparison_id", "reviewer", "verdict", "note", "created_at"),
}
# schema-4 columns of older kinds: in the digest only when set (see the module docstring)
_LATER_FIELDS = {
    "case": ("proposition_prosecution", "proposition_defence"),
    "comparison": ("removed_at", "removed_reason", "removed_by", "report_result_id"),
}
_BLOBS = ("maps_npz", "residuals_npz", "faces_npz")
_KIND = {Case: "case", Image: "image", Comparison: "comparison", Result: "result", Conclusion: "conclusion",
         FeatureAssessment: "feature_assessment", Annotation: "annotation", ImageQuality: "image_quality",
         Review: "review"}
_PER_COMPARISON = (FeatureAssessment, Annotation, ImageQuality, Review)


def kind_of(row) -> str:
    return _KIND[type(row)]


def row_key(row) -> str:
    """``"<type>:<id>"``, the object an audit entry names (images are named by their SHA-256)."""
    return f"{kind_of(row)}:{row.sha256 if isinstance(row, Image) else row.id}"


def row_digest(row) -> str:
    """SHA-256 of the row's canonical content: the columns that state a fact (not status or modified_at)."""
    kind = kind_of(row)
    content = {"type": kind, **{f: getattr(row, f) for f in _FIELDS[kind]}}
    content.update({f: getattr(row, f) for f in _LATER_FIELDS.get(kind, ()) if getattr(row, f)})
    if kind == "result":
        content["decision"] = bool(row.decision)
        content.update({b: _blob_sha(getattr(row, b)) for b in _BLOBS})
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def _blob_sha(blob: bytes | None) -> str | None:
    return None if blob is None else hashlib.sha256(blob).hexdigest()


def _bindings(entries) -> dict[str, list[tuple[int, str]]]:
    """``"<type>:<id>"`` -> [(entry id, recorded digest)] in chain order, from both kinds of binding entries."""
    found: dict[str, list[tuple[int, str]]] = {}
    for entry in entries:
        details = _details(entry.details)
        if isinstance(details.get(ROW_KEY), str) and entry.object_type in _FIELDS:
            found.setdefault(f"{entry.object_type}:{entry.object_id}", []).append((entry.id, details[ROW_KEY]))
        for key, digest in (details.get(ADOPT_KEY) or {}).items() if entry.action == "integrity.adopted" else ():
            found.setdefault(key, []).append((entry.id, digest))
    return found


def _details(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def rows_in_scope(s: Session, case_id: int | None) -> list:
    """The rows a case's report rests on (every row when `case_id` is None), in a stable order."""
    if case_id is None:
        cases = list(s.scalars(select(Case).order_by(Case.id)))
        comparisons = list(s.scalars(select(Comparison).order_by(Comparison.id)))
        images = list(s.scalars(select(Image).order_by(Image.imported_at, Image.sha256)))
    else:
        cases = [s.get(Case, case_id)]
        comparisons = list(s.scalars(select(Comparison).where(Comparison.case_id == case_id).order_by(Comparison.id)))
        shas = {c.image_a for c in comparisons} | {c.image_b for c in comparisons}
        images = list(s.scalars(select(Image).where(Image.sha256.in_(shas)).order_by(Image.sha256)))
    ids = [c.id for c in comparisons]
    results = list(s.scalars(select(Result).options(undefer("*")).where(Result.comparison_id.in_(ids))
                             .order_by(Result.id)))
    conclusions = select(Conclusion).order_by(Conclusion.id)
    if case_id is not None:
        conclusions = conclusions.where(Conclusion.case_id == case_id)
    examination = [row for kind in _PER_COMPARISON
                   for row in s.scalars(select(kind).where(kind.comparison_id.in_(ids)).order_by(kind.id))]
    return ([c for c in cases if c is not None] + images + comparisons + results + list(s.scalars(conclusions))
            + examination)


def check_rows(s: Session, case_id: int | None) -> str | None:
    """The first row whose content differs from what the audit trail recorded (or that it never recorded), as a
    one-line reason; None when every row in scope matches."""
    rows = rows_in_scope(s, case_id)
    query = select(AuditLog).order_by(AuditLog.id)
    if case_id is not None:  # images are shared between cases: their entries may lie on another chain
        query = query.where(or_(AuditLog.case_id == case_id, AuditLog.case_id.is_(None),
                                AuditLog.object_type == "image"))
    bindings = _bindings(s.scalars(query))
    for row in rows:
        problem = _check_row(row, bindings.get(row_key(row), []))
        if problem:
            return problem
    return None


def _check_row(row, recorded: list[tuple[int, str]]) -> str | None:
    name = _describe(row)
    if not recorded:
        return f"{name} is not recorded in the audit trail (added behind the app's back, or its entry was removed)"
    digest = row_digest(row)
    checked = recorded[-1:] if kind_of(row) in MUTABLE_TYPES else recorded
    for entry_id, expected in checked:
        if expected != digest:
            return f"{name} differs from what audit entry #{entry_id} recorded (the row was changed after it was saved)"
    return None


def _describe(row) -> str:
    kind = kind_of(row)
    return f"image {row.sha256[:12]}…" if kind == "image" else f"{kind} {row.id}"


def check_files(s: Session, case_id: int | None, images_dir) -> str | None:
    """The first evidence file that is missing or no longer hashes to its recorded SHA-256."""
    from pathlib import Path

    for row in rows_in_scope(s, case_id):
        if not isinstance(row, Image):
            continue
        path = Path(images_dir) / row.sha256[:2] / f"{row.sha256}{row.ext}"
        try:
            actual = file_sha256(path)
        except OSError:
            return f"the evidence file {path} of image {row.sha256[:12]}… is missing or unreadable"
        if actual != row.sha256:
            return (f"the evidence file {path} does not match its recorded SHA-256 {row.sha256[:12]}… "
                    "(replaced or damaged)")
    return None


def adopt_existing_rows(s: Session) -> None:
    """For the upgrade to schema 3: record the digest of every row that no entry binds yet, one
    ``integrity.adopted`` entry per case chain (and one on the system chain for images outside any case).
    It attests the rows as they were at the upgrade, not as they were first saved (see docs/integrity.md)."""
    from . import audit

    bindings = _bindings(s.scalars(select(AuditLog).order_by(AuditLog.id)))
    per_chain: dict[int | None, dict[str, str]] = {}
    for row in rows_in_scope(s, None):
        if row_key(row) not in bindings:
            per_chain.setdefault(_chain_of(s, row), {})[row_key(row)] = row_digest(row)
    for chain, rows in per_chain.items():
        audit.append(s, "integrity.adopted", case_id=chain, details={ADOPT_KEY: rows}, actor="xfr-upgrade")


def _chain_of(s: Session, row) -> int | None:
    if isinstance(row, (Case,)):
        return row.id
    if isinstance(row, (Comparison, Conclusion)):
        return row.case_id
    if isinstance(row, (Result, *_PER_COMPARISON)):
        return s.get(Comparison, row.comparison_id).case_id
    return None  # images: shared between cases, checked from any chain
