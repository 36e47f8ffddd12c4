"""Binds the case facts to the audit chain: every audit entry that records a case, image, comparison, result or
conclusion carries ``row_sha256``, the SHA-256 of that row's canonical content (for images the row's key is also
the SHA-256 of the evidence file). :func:`check_rows` recomputes them from the rows and the files.

Why this exists: the hash chain alone only protects the audit entries; a forger who edits ``results.score`` or
swaps a file under ``images/`` leaves the chain intact. With the digests, such an edit no longer matches the entry
that recorded the row, and a row that no entry records (inserted behind the app's back) is reported as well.

Rules: results, conclusions, images, feature assessments, image-quality records and reviews never change after
they are saved, so *every* entry naming one must match it; a case can be edited (``case.updated``), a comparison
removed or given a report result, an annotation removed, so for those the *latest* entry must match, and the
*first* must match the fields that never change (a comparison's images, faces, model; an annotation's place).
Columns added in schema 4 to older kinds (propositions, removal, report result) join the digest only once they
hold a value, so digests recorded before schema 4 still match.

Entries are checked against rows too: the app never deletes a row, so every row an entry binds must still exist.
A case's rows are bound only by that case's own chain (images, shared between cases, by any chain), and an
``integrity.adopted`` entry binds only when the schema upgrade wrote it: once per chain, before any entry that
carries a digest (a later one is a forgery, named as such).
"""
from __future__ import annotations

import hashlib
import json

from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from .audit import canonical_json
from .imagestore import evidence_sha256
from .schema import (Annotation, AuditLog, Case, Comparison, Conclusion, FeatureAssessment, Image, ImageQuality,
                     Result, Review)

ROW_KEY = "row_sha256"
ADOPT_KEY = "rows"          # the migration's entry: {"<type>:<id>": digest} for rows older than the binding
ADOPT_ACTION = "integrity.adopted"
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
# what the app may change in a mutable row; the rest is as its first entry recorded it (a case: all may change)
_CHANGEABLE = {"comparison": _LATER_FIELDS["comparison"], "annotation": ("removed_at", "removed_by")}
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


def row_digest(row, fixed_only: bool = False) -> str:
    """SHA-256 of the row's canonical content: the columns that state a fact (not status or modified_at).
    `fixed_only`: as if the changeable fields were still unset, i.e. the digest its first entry recorded."""
    kind = kind_of(row)
    dropped = _CHANGEABLE.get(kind, ()) if fixed_only else ()
    content = {"type": kind, **{f: None if f in dropped else getattr(row, f) for f in _FIELDS[kind]}}
    content.update({f: getattr(row, f) for f in _LATER_FIELDS.get(kind, ()) if getattr(row, f) and f not in dropped})
    if kind == "result":
        content["decision"] = bool(row.decision)
        content.update({b: _blob_sha(getattr(row, b)) for b in _BLOBS})
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def _blob_sha(blob: bytes | None) -> str | None:
    return None if blob is None else hashlib.sha256(blob).hexdigest()


class _Bindings:
    """Which entries bind which row (``"<type>:<id>"`` -> [(entry id, recorded digest, chain)] in chain order),
    and the ``integrity.adopted`` entries the upgrade did not write ([(entry id, chain)])."""

    def __init__(self, entries):
        self.rows: dict[str, list[tuple[int, str, int | None]]] = {}
        self.forged_adoptions: list[tuple[int, int | None]] = []
        self.adoptions: list[tuple[int, int | None]] = []     # the upgrade's own
        digests_seen, adopted = False, set()
        for entry in entries:
            details = _details(entry.details)
            if entry.action == ADOPT_ACTION:
                if digests_seen or entry.case_id in adopted:  # the upgrade writes one per chain, before any digest
                    self.forged_adoptions.append((entry.id, entry.case_id))
                else:
                    self.adoptions.append((entry.id, entry.case_id))
                    for key, digest in _adopted_rows(details):
                        self.rows.setdefault(key, []).append((entry.id, digest, entry.case_id))
                adopted.add(entry.case_id)
            elif isinstance(details.get(ROW_KEY), str) and entry.object_type in _FIELDS:
                digests_seen = True
                key = f"{entry.object_type}:{entry.object_id}"
                self.rows.setdefault(key, []).append((entry.id, details[ROW_KEY], entry.case_id))

    def of(self, key: str, chain: int | None, any_chain: bool) -> list[tuple[int, str]]:
        """The bindings of a row whose own chain is `chain` (images: `any_chain`, they are shared)."""
        return [(i, d) for i, d, c in self.rows.get(key, []) if any_chain or c == chain]


def _adopted_rows(details: dict) -> list[tuple[str, str]]:
    rows = details.get(ADOPT_KEY)
    return [(k, v) for k, v in rows.items() if isinstance(v, str)] if isinstance(rows, dict) else []


def _bindings(entries) -> dict[str, list[tuple[int, str]]]:
    """``"<type>:<id>"`` -> [(entry id, recorded digest)] in chain order, whatever the chain (for the upgrade)."""
    return {k: [(i, d) for i, d, _ in v] for k, v in _Bindings(entries).rows.items()}


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
    """The first row whose content differs from what the audit trail recorded (or that it never recorded), the
    first forged adoption and the first bound row that no longer exists, as a one-line reason; None when all fit."""
    rows = rows_in_scope(s, case_id)
    bindings = _Bindings(s.scalars(select(AuditLog).order_by(AuditLog.id)))  # the upgrade's order is global
    chains = {r.id: r.case_id for r in rows if isinstance(r, Comparison)}
    problem = _forged_adoption(bindings, case_id)
    for row in rows:
        recorded = bindings.of(row_key(row), _own_chain(row, chains), isinstance(row, Image))
        problem = problem or _check_row(row, recorded)
    return problem or _missing_row(s, bindings, {row_key(r) for r in rows}, case_id)


def adoptions(s: Session, case_id: int | None) -> list[int]:
    """The upgrade's ``integrity.adopted`` entries in scope: the rows they bind are attested as they were at the
    upgrade, not as first saved, and a report says so."""
    bindings = _Bindings(s.scalars(select(AuditLog).order_by(AuditLog.id)))
    return [i for i, chain in bindings.adoptions if case_id is None or chain in (case_id, None)]


def _own_chain(row, comparison_chains: dict[int, int]) -> int | None:
    if isinstance(row, Case):
        return row.id
    if isinstance(row, (Comparison, Conclusion)):
        return row.case_id
    if isinstance(row, Image):
        return None
    return comparison_chains.get(row.comparison_id)


def _forged_adoption(bindings: _Bindings, case_id: int | None) -> str | None:
    for entry_id, chain in bindings.forged_adoptions:
        if case_id is None or chain in (case_id, None):
            return (f"audit entry #{entry_id} ({ADOPT_ACTION}) was not written by the schema upgrade: rows are "
                    "adopted once per chain, before any entry records a digest")
    return None


def _missing_row(s: Session, bindings: _Bindings, present: set[str], case_id: int | None) -> str | None:
    """The app never deletes a row: one bound by an entry of the chain(s) in scope must still exist, and still be in
    scope (only an image may exist out of it: one imported but in no comparison)."""
    for key, recorded in bindings.rows.items():
        entry_id = next((i for i, _, chain in recorded if case_id is None or chain == case_id), None)
        kind, _, ident = key.partition(":")
        if entry_id is None or key in present or (kind == "image" and _exists(s, key)):
            continue
        name = f"image {ident[:12]}…" if kind == "image" else f"{kind} {ident}"
        if _exists(s, key):  # e.g. a conclusion moved to another case, a result to another comparison
            return f"{name} no longer belongs where audit entry #{entry_id} recorded it (moved behind the app's back)"
        return f"{name} is missing: audit entry #{entry_id} recorded it and the app never deletes rows (deleted " \
               "behind the app's back)"
    return None


def _exists(s: Session, key: str) -> bool:
    kind, _, ident = key.partition(":")
    model = next((m for m, k in _KIND.items() if k == kind), None)
    if model is None:
        return False
    if model is not Image:
        if not ident.isdigit():
            return False
        ident = int(ident)
    return s.get(model, ident) is not None


def _check_row(row, recorded: list[tuple[int, str]]) -> str | None:
    name = _describe(row)
    if not recorded:
        return f"{name} is not recorded in the audit trail (added behind the app's back, or its entry was removed)"
    digest = row_digest(row)
    kind = kind_of(row)
    checked = recorded[-1:] if kind in MUTABLE_TYPES else recorded
    for entry_id, expected in checked:
        if expected != digest:
            return f"{name} differs from what audit entry #{entry_id} recorded (the row was changed after it was saved)"
    first_id, first = recorded[0]
    if kind in _CHANGEABLE and first != row_digest(row, fixed_only=True):
        return (f"{name} differs from what audit entry #{first_id} recorded when it was added (fields that never "
                "change were changed and re-bound)")
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
            actual = evidence_sha256(path)
        except OSError as exc:  # a link or a FIFO put in its place is refused, not followed or waited on
            return (f"the evidence file {path} of image {row.sha256[:12]}… is missing, unreadable or not a regular "
                    f"file ({exc.strerror or exc})")
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
