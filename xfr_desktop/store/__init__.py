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
    store.list_conclusions(case_id) -> list[ConclusionRecord]  # oldest first
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
    CaseRecord(id, number, title, examiner, organisation, notes, created_at, modified_at, n_comparisons)
    ImageRecord(sha256, original_name, original_path, size, width, height, format, ext, imported_at)
    ComparisonRecord(id, case_id, image_a, image_b, face_index_a, face_index_b, model_sha256, model_name,
                     parameters, status, status_message, created_at, n_results)
    ConclusionRecord(id, case_id, comparison_id, text, scale, notes, author, created_at)
    ModelRecord(id, name, path, sha256, card, active, registered_at)
    AuditRecord(id, time, actor, action, case_id, object_type, object_id, details, prev_hash, hash)
        (details is the canonical JSON text exactly as hashed; .details_dict parses it)

Audit actions logged by the store itself: case.created, case.updated, image.imported, comparison.added,
analysis.saved, parameters.saved, conclusion.edited, model.registered, model.activated.
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
from .records import (AuditRecord, CaseRecord, ComparisonRecord, ConclusionRecord, ImageRecord, ModelRecord,
                      ResultRecord)
from .repository import COMPARISON_STATUSES, Store, open_store

__all__ = [
    "Store", "open_store", "StoreError", "SCHEMA_VERSION", "COMPARISON_STATUSES",
    "CaseRecord", "ImageRecord", "ComparisonRecord", "ResultRecord", "ConclusionRecord", "ModelRecord",
    "AuditRecord", "AuditVerification", "pack_arrays", "unpack_arrays", "canonical_json", "entry_hash",
    "default_actor",
]
