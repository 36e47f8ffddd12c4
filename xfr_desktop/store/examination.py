"""The examiner's own work on a comparison, stored beside the model's results (schema 4): FISWG feature assessments,
annotations on the full-resolution photos, image quality and provenance, ACE-V reviews, the case's propositions,
removing a comparison, the result a report uses, and the preferences of the data folder.

A mixin of :class:`~xfr_desktop.store.repository.Store` (it uses the Store's sessions and lookups). Every write
is audited in its own transaction with the actor (the examiner's name from the preferences unless given) and,
for case facts, the digest of the row it records (:mod:`.integrity`).

The examiner's name lives in the database (table ``preferences``), not in a settings file: it travels with the
case database it signs actions in, it is written in the same transactional way, and every change of it is itself
an audited action ("preference.changed" on the system chain), so nobody can silently act under another name.
"""
from __future__ import annotations

import json
import math

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core.errors import StoreError, XfrError
from ..core.morphology import FISWG_FEATURES, check_assessment
from . import audit
from .audit import utc_now
from .integrity import ROW_KEY, row_digest
from .records import (AnnotationRecord, ComparisonRecord, FeatureAssessmentRecord, ImageQualityRecord,
                      ResultRecord, ReviewRecord)
from .schema import Annotation, Case, Comparison, FeatureAssessment, ImageQuality, Preference, Result, Review

SIDES = ("a", "b")
ANNOTATION_KINDS = ("point", "rect")
REVIEW_VERDICTS = ("agree", "disagree")
EXAMINER_NAME = "examiner_name"
MAX_TEXT = 20_000          # characters of one note, label, reason or proposition


def _text(value: str | None, what: str) -> str:
    text = (value or "").strip()
    if len(text) > MAX_TEXT:
        raise StoreError(f"{what} is longer than {MAX_TEXT:,} characters")
    return text


class ExaminationRepository:
    """Methods of the Store for the examiner's workflow (see the module docstring and the package docstring)."""

    # --- who acts --------------------------------------------------------------------------------------------
    def actor_name(self, actor: str | None = None, case_id: int | None = None, session: Session | None = None) -> str:
        """Who an audited action is recorded under -- the one resolution the app and the CLI share: `actor`, else
        the name this store was opened with (the CLI's ``--examiner``), else the examiner's name from the
        preferences, else the examiner of case `case_id` (read in `session` when given), and only then the
        operating-system login."""
        named = (actor or "").strip() or self.acting_examiner or self._examiner
        if named:
            return named
        if case_id is not None:
            if session is None:
                with self.session(write=False) as s:
                    return self.actor_name(None, case_id, s)
            case = session.get(Case, int(case_id))
            if case is not None and (case.examiner or "").strip():
                return case.examiner.strip()
        return audit.default_actor()

    def examiner_name(self) -> str | None:
        """The examiner's name set in the preferences (None when never set)."""
        return self.get_preference(EXAMINER_NAME)

    def set_examiner_name(self, name: str, actor: str | None = None) -> None:
        """Set the name every later audited action of this data folder is recorded under."""
        name = _text(name, "the examiner's name")
        if not name:
            raise StoreError("the examiner's name cannot be blank")
        self.set_preference(EXAMINER_NAME, name, actor=actor)
        self._examiner = name

    def get_preference(self, key: str, default: str | None = None) -> str | None:
        with self.session(write=False) as s:
            row = s.get(Preference, key)
            return row.value if row is not None else default

    def set_preference(self, key: str, value: str, actor: str | None = None) -> None:
        """Store a preference of this data folder; audited on the system chain with old and new value."""
        with self.session() as s:
            row = s.get(Preference, key)
            old = row.value if row is not None else None
            if old == value:
                return
            if row is None:
                s.add(Preference(key=key, value=value, updated_at=utc_now()))
            else:
                row.value, row.updated_at = value, utc_now()
            audit.append(s, "preference.changed", object_type="preference", object_id=key,
                         details={"key": key, "old": old, "new": value}, actor=self.actor_name(actor))

    # --- propositions, removal, the report's result ------------------------------------------------------------
    def set_propositions(self, case_id: int, *, prosecution: str | None = None, defence: str | None = None,
                         actor: str | None = None):
        """Change the case's propositions ('' restores the default wording); audited as "case.updated"."""
        changes = {}
        if prosecution is not None:
            changes["proposition_prosecution"] = _text(prosecution, "the prosecution proposition")
        if defence is not None:
            changes["proposition_defence"] = _text(defence, "the defence proposition")
        return self._update_case_fields(case_id, changes, actor)

    def remove_comparison(self, comparison_id: int, reason: str, actor: str | None = None) -> ComparisonRecord:
        """Withdraw a comparison with a recorded reason: its row and results stay and the report lists it as
        removed; it can no longer be analysed or assessed."""
        reason = _text(reason, "the reason")
        if not reason:
            raise StoreError("removing a comparison needs a reason")
        with self.session() as s:
            comparison = self._live_comparison(s, comparison_id)
            actor = self.actor_name(actor, comparison.case_id, s)
            comparison.removed_at, comparison.removed_reason, comparison.removed_by = utc_now(), reason, actor
            s.flush()
            self._touch(s, comparison.case_id)
            audit.append(s, "comparison.removed", case_id=comparison.case_id, object_type="comparison",
                         object_id=comparison.id, details={"reason": reason, ROW_KEY: row_digest(comparison)},
                         actor=actor)
            return self._comparison_with_count(s, comparison)

    def choose_report_result(self, comparison_id: int, result_id: int | None,
                             actor: str | None = None) -> ComparisonRecord:
        """The result reports use for this comparison (None: back to the default, the first full analysis)."""
        with self.session() as s:
            comparison = self._live_comparison(s, comparison_id)
            if result_id is not None:
                result = s.get(Result, int(result_id))
                if result is None or result.comparison_id != comparison.id:
                    raise StoreError(f"result {result_id} is not a result of comparison {comparison_id}")
                result_id = result.id
            if comparison.report_result_id == result_id:
                return self._comparison_with_count(s, comparison)
            previous, comparison.report_result_id = comparison.report_result_id, result_id
            s.flush()
            audit.append(s, "comparison.report_result_chosen", case_id=comparison.case_id,
                         object_type="comparison", object_id=comparison.id,
                         details={"result_id": result_id, "previous_result_id": previous,
                                  ROW_KEY: row_digest(comparison)}, actor=self.actor_name(actor, comparison.case_id, s))
            return self._comparison_with_count(s, comparison)

    def report_result(self, comparison_id: int, include_blobs: bool = True) -> ResultRecord | None:
        """The result a report shows for a comparison: the chosen one, else the first full analysis (no channel
        subset, no top-k, not a recombination), else the first result; None when it was never analysed."""
        comparison = self.get_comparison(comparison_id)
        if comparison.report_result_id is not None:
            return self.get_result(comparison.report_result_id) if include_blobs else next(
                r for r in self.list_results(comparison_id) if r.id == comparison.report_result_id)
        results = self.list_results(comparison_id)
        chosen = next((r for r in results if r.is_full_analysis), results[0] if results else None)
        if chosen is None or not include_blobs:
            return chosen
        return self.get_result(chosen.id)

    # --- FISWG feature assessments -----------------------------------------------------------------------------
    def set_feature_assessment(self, comparison_id: int, feature: str, value: str, note: str = "",
                               author: str | None = None) -> FeatureAssessmentRecord:
        """Record one feature's assessment (a new row each time; the latest per feature is current)."""
        try:
            check_assessment(feature, value)
        except XfrError as exc:
            raise StoreError(str(exc)) from None
        note = _text(note, "the note")
        with self.session() as s:
            comparison = self._live_comparison(s, comparison_id)
            author = self.actor_name(author, comparison.case_id, s)
            row = FeatureAssessment(comparison_id=comparison.id, feature=feature, value=value, note=note,
                                    author=author, created_at=utc_now())
            self._add_audited(s, row, comparison, "feature.assessed",
                              {"feature": feature, "value": value, "note": note}, author)
            return _assessment_record(row)

    def feature_assessments(self, comparison_id: int) -> dict[str, FeatureAssessmentRecord]:
        """The current assessment of each assessed feature, in FISWG order (unassessed features are absent)."""
        latest = {r.feature: r for r in self.feature_assessment_history(comparison_id)}
        return {key: latest[key] for key, _ in FISWG_FEATURES if key in latest}

    def feature_assessment_history(self, comparison_id: int) -> list[FeatureAssessmentRecord]:
        """Every assessment ever recorded for the comparison, oldest first."""
        return [_assessment_record(r) for r in self._rows(FeatureAssessment, comparison_id)]

    # --- annotations -------------------------------------------------------------------------------------------
    def add_annotation(self, comparison_id: int, side: str, kind: str, x: float, y: float, width: float = 0.0,
                       height: float = 0.0, label: str = "", author: str | None = None) -> AnnotationRecord:
        """A point (width = height = 0) or rectangle in pixels of photo A or B at full resolution."""
        if side not in SIDES or kind not in ANNOTATION_KINDS:
            raise StoreError(f"an annotation is a {' or '.join(ANNOTATION_KINDS)} on side {' or '.join(SIDES)}")
        x, y, width, height = (float(v) for v in (x, y, width, height))
        if not all(math.isfinite(v) for v in (x, y, width, height)) or x < 0 or y < 0:
            raise StoreError("an annotation's position must be finite pixel coordinates inside the photo")
        if kind == "point":
            width = height = 0.0
        elif width <= 0 or height <= 0:
            raise StoreError("a rectangle annotation needs a positive width and height")
        label = _text(label, "the label")
        with self.session() as s:
            comparison = self._live_comparison(s, comparison_id)
            author = self.actor_name(author, comparison.case_id, s)
            self._check_inside_photo(s, comparison, side, x + width, y + height)
            row = Annotation(comparison_id=comparison.id, side=side, kind=kind, x=x, y=y, width=width,
                             height=height, label=label, author=author, created_at=utc_now())
            self._add_audited(s, row, comparison, "annotation.added",
                              {"side": side, "kind": kind, "x": x, "y": y, "width": width, "height": height,
                               "label": label}, author)
            return _annotation_record(row)

    def remove_annotation(self, annotation_id: int, actor: str | None = None) -> AnnotationRecord:
        """Mark an annotation removed (the row stays, audited)."""
        with self.session() as s:
            row = s.get(Annotation, int(annotation_id))
            if row is None or row.removed_at is not None:
                raise StoreError(f"no annotation {annotation_id} to remove")
            comparison = self._live_comparison(s, row.comparison_id)
            actor = self.actor_name(actor, comparison.case_id, s)
            row.removed_at, row.removed_by = utc_now(), actor
            s.flush()
            audit.append(s, "annotation.removed", case_id=comparison.case_id, object_type="annotation",
                         object_id=row.id, details={ROW_KEY: row_digest(row)}, actor=actor)
            return _annotation_record(row)

    def list_annotations(self, comparison_id: int, side: str | None = None,
                         include_removed: bool = False) -> list[AnnotationRecord]:
        rows = [_annotation_record(r) for r in self._rows(Annotation, comparison_id)]
        return [r for r in rows if (side is None or r.side == side) and (include_removed or r.removed_at is None)]

    # --- image quality and provenance --------------------------------------------------------------------------
    def record_image_quality(self, comparison_id: int, side: str, data: dict,
                             actor: str | None = None) -> ImageQualityRecord:
        """Store the quality and provenance measured on photo `side` of a comparison (JSON; latest is current)."""
        if side not in SIDES or not isinstance(data, dict):
            raise StoreError("image quality is a dict recorded for side 'a' or 'b'")
        text = audit.canonical_json(data)
        with self.session() as s:
            comparison = self._comparison(s, comparison_id)
            sha = comparison.image_a if side == "a" else comparison.image_b
            row = ImageQuality(comparison_id=comparison.id, side=side, image_sha256=sha, data=text,
                               created_at=utc_now())
            self._add_audited(s, row, comparison, "image_quality.recorded", {"side": side, "image": sha},
                              self.actor_name(actor, comparison.case_id, s))
            return _quality_record(row)

    def image_quality(self, comparison_id: int, side: str) -> ImageQualityRecord | None:
        rows = [r for r in self._rows(ImageQuality, comparison_id) if r.side == side]
        return _quality_record(rows[-1]) if rows else None

    # --- ACE-V verification ------------------------------------------------------------------------------------
    def add_review(self, comparison_id: int, verdict: str, note: str = "",
                   reviewer: str | None = None) -> ReviewRecord:
        """A second examiner's verification: agree or disagree with the comparison's examination, with a note."""
        if verdict not in REVIEW_VERDICTS:
            raise StoreError(f"a review's verdict is {' or '.join(REVIEW_VERDICTS)}, not {verdict!r}")
        note = _text(note, "the note")
        with self.session() as s:
            comparison = self._live_comparison(s, comparison_id)
            reviewer = self.actor_name(reviewer, comparison.case_id, s)
            examiner = (self._case(s, comparison.case_id).examiner or "").strip()
            if examiner and examiner.casefold() == reviewer.casefold():
                raise StoreError(f"{reviewer} is the case's examiner: verification needs a second examiner")
            row = Review(comparison_id=comparison.id, reviewer=reviewer, verdict=verdict, note=note,
                         created_at=utc_now())
            self._add_audited(s, row, comparison, "review.recorded", {"verdict": verdict, "note": note}, reviewer)
            return _review_record(row)

    def list_reviews(self, comparison_id: int) -> list[ReviewRecord]:
        """Every review of the comparison, oldest first (a reviewer's latest is their current verdict)."""
        return [_review_record(r) for r in self._rows(Review, comparison_id)]

    # --- helpers -----------------------------------------------------------------------------------------------
    def _rows(self, kind, comparison_id: int) -> list:
        with self.session(write=False) as s:
            self._comparison(s, comparison_id)
            return list(s.scalars(select(kind).where(kind.comparison_id == comparison_id).order_by(kind.id)))

    def _live_comparison(self, s: Session, comparison_id: int) -> Comparison:
        comparison = self._comparison(s, comparison_id)
        if comparison.removed_at is not None:
            raise StoreError(f"comparison {comparison_id} was removed ({comparison.removed_reason})")
        return comparison

    def _add_audited(self, s: Session, row, comparison: Comparison, action: str, details: dict, actor: str):
        s.add(row)
        s.flush()
        self._touch(s, comparison.case_id)
        audit.append(s, action, case_id=comparison.case_id, object_type=_object_type(row), object_id=row.id,
                     details={"comparison_id": comparison.id, **details, ROW_KEY: row_digest(row)}, actor=actor)

    def _check_inside_photo(self, s: Session, comparison: Comparison, side: str, right: float, bottom: float):
        from .schema import Image

        image = s.get(Image, comparison.image_a if side == "a" else comparison.image_b)
        extent = max(image.width or 0, image.height or 0)  # either way round: EXIF orientation may swap them
        if extent and max(right, bottom) > extent:
            raise StoreError(f"the annotation reaches outside photo {side.upper()} ({image.width}×{image.height} px)")


def _object_type(row) -> str:
    from .integrity import kind_of

    return kind_of(row)


def _assessment_record(r: FeatureAssessment) -> FeatureAssessmentRecord:
    return FeatureAssessmentRecord(id=r.id, comparison_id=r.comparison_id, feature=r.feature, value=r.value,
                                   note=r.note, author=r.author, created_at=r.created_at)


def _annotation_record(r: Annotation) -> AnnotationRecord:
    return AnnotationRecord(id=r.id, comparison_id=r.comparison_id, side=r.side, kind=r.kind, x=r.x, y=r.y,
                            width=r.width, height=r.height, label=r.label, author=r.author,
                            created_at=r.created_at, removed_at=r.removed_at, removed_by=r.removed_by)


def _quality_record(r: ImageQuality) -> ImageQualityRecord:
    return ImageQualityRecord(id=r.id, comparison_id=r.comparison_id, side=r.side, image_sha256=r.image_sha256,
                              data=json.loads(r.data), created_at=r.created_at)


def _review_record(r: Review) -> ReviewRecord:
    return ReviewRecord(id=r.id, comparison_id=r.comparison_id, reviewer=r.reviewer, verdict=r.verdict,
                        note=r.note, created_at=r.created_at)
