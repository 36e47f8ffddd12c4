"""The case store: SQLite (SQLAlchemy 2 ORM) + a content-addressed image store + a hash-chained audit trail.

Qt-free and torch-free. Everything lives in one data folder (see :mod:`xfr_desktop.paths`)::

    <data_dir>/xfr.sqlite                      the database (WAL, foreign keys, busy_timeout=5000)
    <data_dir>/images/ab/abcdef....jpg         imported images, named by their SHA-256

Public API (stable; all ids are ints, all times are ISO-8601 UTC strings, all errors are ``StoreError``
(an ``XfrError``) with a one-line message, except unreadable images on import, which raise ``ImageError``)::

    from xfr_desktop.store import open_store, Store, StoreError, pack_arrays, unpack_arrays

    store = open_store(data_dir=None)          # -> Store; data_dir None: $XFR_DATA_DIR or the user data dir.
                                               # Creates/upgrades the database (backup xfr.sqlite.v<N>.bak first).
                                               # Folders 0700, files 0600 (store/private.py).
    open_store(data_dir, create=False)         # for reading: StoreError when there is no database; read-only
                                               # (store.read_only) when the folder or file is not writable
    store.data_dir, store.db_path, store.images_dir           # Paths
    store.close()                              # also usable as `with open_store(d) as store:`
    store.schema_version() -> int              # == SCHEMA_VERSION once open
    with store.session(write=True) as s: ...   # SQLAlchemy Session; commits on exit, rolls back on error.
                                               # One per call/thread; never share a Session between threads.
                                               # Repository methods below open their own short sessions, so
                                               # they are safe to call from any thread (GUI and worker alike).
    # cases
    store.create_case(number, title="", examiner="", organisation="", notes="", actor=None) -> CaseRecord
    store.list_cases(search=None) -> list[CaseRecord]          # most recently modified first;
                                                               # search matches number/title/examiner/org/notes
    store.get_case(case_id) -> CaseRecord                      # StoreError if unknown
    store.find_case(id_or_number: str|int) -> CaseRecord       # by id, else by case number
    store.update_case(case_id, *, number=..., title=..., examiner=..., organisation=..., notes=..., actor=None)
        -> CaseRecord                                          # only the keywords given change; audited
    # images (content-addressed; a case never depends on the original path)
    store.import_image(path, case_id=None, actor=None) -> str  # sha256 hex; idempotent; verifies the copy's hash
    store.image_path(sha256) -> Path                           # StoreError if unknown or missing on disk
    store.get_image(sha256) -> ImageRecord
    store.verify_image(sha256) -> bool                         # re-hashes the stored file
    # comparisons
    store.add_comparison(case_id, sha_a, sha_b, *, face_index_a=0, face_index_b=0, model_sha256=None,
                         model_name=None, parameters=None, status="new", actor=None) -> ComparisonRecord
    store.get_comparison(comparison_id) -> ComparisonRecord
    store.list_comparisons(case_id) -> list[ComparisonRecord]  # oldest first
    store.set_comparison_status(comparison_id, status, message=None) -> None
        # status in COMPARISON_STATUSES = ("new", "running", "done", "failed", "cancelled")
    # results (never overwritten: every save is a new row)
    store.save_result(comparison_id, payload: dict, actor=None) -> ResultRecord
        payload keys: score (float), threshold (float), decision (bool, True = match), parameters (JSON dict:
        threshold, normalization, channels, top_k, ...), model_sha256 (str), timings (JSON dict, optional),
        maps ({"a": {"H","S","S_pos","S_neg","weights": ndarray}, "b": {...}} or npz bytes),
        residuals (bytes, e.g. np.savez_compressed of the compact residuals; optional),
        faces ({"a": {"aligned","reconstruction","landmarks","box": ndarray}, "b": {...}} or npz bytes; optional),
        model_name (optional). Audited as "analysis.saved" (first result, or same parameters) or
        "parameters.saved" (parameters differ from the previous result).
    store.latest_result(comparison_id) -> ResultRecord | None  # with blobs
    store.get_result(result_id) -> ResultRecord                # with blobs
    store.list_results(comparison_id, include_blobs=False) -> list[ResultRecord]   # oldest first
        ResultRecord: id, comparison_id, created_at, score, threshold, decision, decision_label, parameters,
        timings, model_sha256, model_name, maps_npz, residuals_npz, faces_npz (bytes or None);
        .maps() / .faces() -> nested dict of ndarrays (unpack_arrays); .residuals -> bytes | None
    # conclusions (every edit is a new row; the latest is current)
    store.set_conclusion(case_id, text, *, scale=None, notes="", author=None, comparison_id=None)
        -> ConclusionRecord                                    # audited as "conclusion.edited"
    store.latest_conclusion(case_id, comparison_id=None) -> ConclusionRecord | None
        # comparison_id None: the latest *case-level* conclusion (a comparison's note never counts as the case's)
    store.list_conclusions(case_id) -> list[ConclusionRecord]  # oldest first
    # the examiner's workflow (schema 4; store/examination.py). Writes refuse a removed comparison.
    store.actor_name(actor=None, case_id=None) -> str   # who acts: actor, else open_store(examiner=...) (the
                                               # CLI's --examiner), else the preference, else the case's
                                               # examiner, else the OS login; every audited write without an
                                               # actor is recorded under it (the app and the CLI alike)
    store.examiner_name() -> str | None; store.set_examiner_name(name, actor=None)
    store.get_preference(key, default=None) -> str | None; store.set_preference(key, value, actor=None)
    store.set_propositions(case_id, *, prosecution=None, defence=None, actor=None) -> CaseRecord
        # '' = the default wording (core.evaluative); audited as case.updated
    store.remove_comparison(comparison_id, reason, actor=None) -> ComparisonRecord   # row stays; .removed_*
    store.choose_report_result(comparison_id, result_id | None, actor=None) -> ComparisonRecord
    store.report_result(comparison_id, include_blobs=True) -> ResultRecord | None
        # the chosen result, else the first full analysis (ResultRecord.is_full_analysis), else the first result
    store.set_feature_assessment(comparison_id, feature, value, note="", author=None) -> FeatureAssessmentRecord
        # feature: a key of core.morphology.FISWG_FEATURES; value: similar | dissimilar | not_assessable
    store.feature_assessments(comparison_id) -> {feature: FeatureAssessmentRecord}   # current, FISWG order
    store.feature_assessment_history(comparison_id) -> list[FeatureAssessmentRecord] # oldest first
    store.add_annotation(comparison_id, side "a"|"b", kind "point"|"rect", x, y, width=0, height=0, label="",
                         author=None) -> AnnotationRecord      # pixels of the full-resolution decoded photo
    store.remove_annotation(annotation_id, actor=None) -> AnnotationRecord
    store.list_annotations(comparison_id, side=None, include_removed=False) -> list[AnnotationRecord]
    store.record_image_quality(comparison_id, side, data: dict, actor=None) -> ImageQualityRecord
    store.image_quality(comparison_id, side) -> ImageQualityRecord | None   # the latest
    store.add_review(comparison_id, verdict "agree"|"disagree", note="", reviewer=None) -> ReviewRecord
        # ACE-V verification; refused when the reviewer is the case's examiner
    store.list_reviews(comparison_id) -> list[ReviewRecord]   # oldest first
    # model registry
    store.register_model(name, path, *, sha256=None, card=None, activate=False, actor=None) -> ModelRecord
        # sha256 computed from the file when None; registering the same sha256 again updates name/path/card
    store.list_models() -> list[ModelRecord]
    store.get_model(model_id_or_sha256) -> ModelRecord
    store.set_active_model(model_id_or_sha256, actor=None) -> ModelRecord   # exactly one active
    store.active_model() -> ModelRecord | None
    # audit trail (append-only: SQLite triggers forbid UPDATE/DELETE; one hash chain per case, case None = system)
    store.log_event(action, *, case_id=None, object_type=None, object_id=None, details=None, actor=None)
        -> AuditRecord                 # e.g. action="report.exported" / "report.signed", details={"file":..., "sha256":...}
    store.list_audit(case_id=None) -> list[AuditRecord]        # case_id None: every entry; oldest first
    store.verify_audit(case_id=None, *, trusted=None, external=None) -> AuditVerification
        # the chain(s), signed checkpoints (stored and `external`; `trusted`: certificate PEMs they must be signed
        # with), every row's digest against its audit entries, every evidence file's SHA-256 (docs/integrity.md)
        # .ok .n_entries .first_broken (AuditRecord|None) .reason .message (one line) .head .checkpoint
    store.create_checkpoint(case_id, sign, certificate_pem, signer) -> Checkpoint | None   # store/checkpoints.py
    # helpers
    pack_arrays(nested: dict) -> bytes; unpack_arrays(data: bytes) -> nested dict   # np.savez_compressed, no pickle
    default_actor() -> str                                     # the OS user name

Records are frozen dataclasses (detached copies, safe to hand between threads):
    CaseRecord(id, number, title, examiner, organisation, notes, created_at, modified_at, n_comparisons,
               proposition_prosecution, proposition_defence)
    ImageRecord(sha256, original_name, original_path, size, width, height, format, ext, imported_at)
    ComparisonRecord(id, case_id, image_a, image_b, face_index_a, face_index_b, model_sha256, model_name,
                     parameters, status, status_message, created_at, n_results, removed_at, removed_reason,
                     removed_by, report_result_id, number; .removed)
        face_index_a/b are stored 0-based (0 = the largest face); people read them 1-based ("face 1")
        number: the comparison's one number everywhere people read it (app, CLI, report, audit trail): its
        1-based place in its case by creation order, removed comparisons included, so it never changes
    ConclusionRecord(id, case_id, comparison_id, text, scale, notes, author, created_at)
    ModelRecord(id, name, path, sha256, card, active, registered_at)
    FeatureAssessmentRecord(id, comparison_id, feature, value, note, author, created_at)
    AnnotationRecord(id, comparison_id, side, kind, x, y, width, height, label, author, created_at, removed_at,
                     removed_by)
    ImageQualityRecord(id, comparison_id, side, image_sha256, data (dict), created_at)
    ReviewRecord(id, comparison_id, reviewer, verdict, note, created_at)
    AuditRecord(id, time, actor, action, case_id, object_type, object_id, details, prev_hash, hash)
        (details is the canonical JSON text exactly as hashed; .details_dict parses it)

Audit actions logged by the store itself: case.created, case.updated, image.imported, comparison.added,
analysis.saved, parameters.saved, conclusion.edited, model.registered, model.activated, comparison.removed,
comparison.report_result_chosen, feature.assessed, annotation.added, annotation.removed, image_quality.recorded,
review.recorded, preference.changed.
Report/GUI helpers log: report.exported, report.signed (and anything else with log_event).
Schema: ``SCHEMA_VERSION`` (current) with ordered upgrade steps in :mod:`xfr_desktop.store.migrations`;
``migrations.create_database_at_version(path, 1)`` writes an empty v1 database (for "opens an old database" tests:
put it at ``<data_dir>/xfr.sqlite`` and open the store). Thread use: one Store per process is enough; its methods
may be called from the GUI thread and worker threads alike (each call has its own session and transaction).
"""
from __future__ import annotations

from ..core.errors import StoreError
from ..core.arrays import pack_arrays, unpack_arrays
from .audit import AuditVerification, canonical_json, default_actor, entry_hash
from .migrations import SCHEMA_VERSION
from .records import (AnnotationRecord, AuditRecord, CaseRecord, ComparisonRecord, ConclusionRecord,
                      FeatureAssessmentRecord, ImageQualityRecord, ImageRecord, ModelRecord, ResultRecord,
                      ReviewRecord)
from .repository import COMPARISON_STATUSES, Store, open_store

__all__ = [
    "Store", "open_store", "StoreError", "SCHEMA_VERSION", "COMPARISON_STATUSES",
    "CaseRecord", "ImageRecord", "ComparisonRecord", "ResultRecord", "ConclusionRecord", "ModelRecord",
    "AuditRecord", "AuditVerification", "pack_arrays", "unpack_arrays", "canonical_json", "entry_hash",
    "default_actor", "FeatureAssessmentRecord", "AnnotationRecord", "ImageQualityRecord", "ReviewRecord",
]
