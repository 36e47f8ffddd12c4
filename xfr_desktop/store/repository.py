"""The repository: every operation the app, the CLI and the report need, as plain methods on :class:`Store`.

Each method runs in its own short transaction (so it is safe from any thread) and writes its audit entry in
that same transaction: a change and its audit entry are saved together or not at all.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, undefer

from ..core.arrays import as_npz_bytes
from ..core.errors import StoreError, XfrError
from ..core.numbers import finite_float
from . import audit, checkpoints, integrity, liveness
from .integrity import ROW_KEY, row_digest
from .audit import AuditVerification, utc_now
from .db import Database
from .examination import EXAMINER_NAME, ExaminationRepository
from .imagestore import ImageStore, evidence_sha256, file_sha256
from .records import (AuditRecord, CaseRecord, ComparisonRecord, ConclusionRecord, ImageRecord, ModelRecord,
                      ResultRecord)
from .schema import AuditLog, Case, Comparison, Conclusion, Image, Model, Result

COMPARISON_STATUSES = ("new", "running", "done", "failed", "cancelled", "interrupted")
CASE_FIELDS = ("number", "title", "examiner", "organisation", "notes")


def _loads(text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _dumps(value: dict | None) -> str:
    return audit.stored_json(value)


class Store(Database, ExaminationRepository):
    """The case database, image store and audit trail of one data folder. See the package docstring."""

    def __init__(self, data_dir: str | os.PathLike | None = None, *, create: bool = True,
                 examiner: str | None = None):
        self._examiner: str | None = None
        self.acting_examiner = (examiner or "").strip() or None   # who acts, ahead of the preference (CLI)
        super().__init__(data_dir, create=create)
        self._examiner = self.get_preference(EXAMINER_NAME)
        self.images = ImageStore(self.images_dir)
        if not self.read_only:
            self.images.remove_stale_temp_files()
            self.mark_interrupted()

    def __repr__(self) -> str:
        return f"Store({str(self.data_dir)!r})"

    # --- cases ----------------------------------------------------------------------------------------------
    def create_case(self, number: str, title: str = "", examiner: str = "", organisation: str = "", notes: str = "",
                    actor: str | None = None) -> CaseRecord:
        """A new case; `number` (the lab's case number) must be unique and not blank."""
        number = (number or "").strip()
        if not number:
            raise StoreError("a case needs a case number")
        with self.session() as s:
            if s.scalar(select(Case.id).where(Case.number == number)) is not None:
                raise StoreError(f"case number {number!r} already exists")
            now = utc_now()
            case = Case(number=number, title=title or "", examiner=examiner or "", organisation=organisation or "",
                        notes=notes or "", created_at=now, modified_at=now)
            s.add(case)
            s.flush()
            audit.append(s, "case.created", case_id=case.id, object_type="case", object_id=case.id,
                         details={**{f: getattr(case, f) for f in CASE_FIELDS}, ROW_KEY: row_digest(case)},
                         actor=self.actor_name(actor, case.id, s))
            return self._case_record(s, case)

    def list_cases(self, search: str | None = None) -> list[CaseRecord]:
        """Cases, most recently modified first; `search` matches number, title, examiner, organisation or notes."""
        counts = (select(Comparison.case_id, func.count(Comparison.id).label("n"))
                  .group_by(Comparison.case_id).subquery())
        query = (select(Case, func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.case_id == Case.id)
                 .order_by(Case.modified_at.desc(), Case.id.desc()))
        if search and search.strip():
            literal = search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{literal}%"
            query = query.where(or_(*(getattr(Case, f).ilike(pattern, escape="\\") for f in CASE_FIELDS)))
        with self.session(write=False) as s:
            return [self._case_record(s, case, n) for case, n in s.execute(query)]

    def get_case(self, case_id: int) -> CaseRecord:
        with self.session(write=False) as s:
            return self._case_record(s, self._case(s, case_id))

    def find_case(self, id_or_number: str | int) -> CaseRecord:
        """A case by its id or, failing that, by its case number."""
        with self.session(write=False) as s:
            text = str(id_or_number).strip()
            case = s.get(Case, int(text)) if text.isdigit() else None
            if case is None:
                case = s.scalar(select(Case).where(Case.number == text))
            if case is None:
                raise StoreError(f"no case with id or number {text!r}")
            return self._case_record(s, case)

    def update_case(self, case_id: int, *, actor: str | None = None, **changes: str) -> CaseRecord:
        """Change any of number, title, examiner, organisation, notes; logs old and new values."""
        unknown = set(changes) - set(CASE_FIELDS)
        if unknown:
            raise StoreError(f"cannot change {', '.join(sorted(unknown))} of a case")
        return self._update_case_fields(case_id, changes, actor)

    def _update_case_fields(self, case_id: int, changes: dict, actor: str | None) -> CaseRecord:
        with self.session() as s:
            case = self._case(s, case_id)
            if "number" in changes:
                changes["number"] = (changes["number"] or "").strip()
                if not changes["number"]:
                    raise StoreError("a case needs a case number")
                clash = s.scalar(select(Case.id).where(Case.number == changes["number"], Case.id != case.id))
                if clash is not None:
                    raise StoreError(f"case number {changes['number']!r} already exists")
            diff = {f: {"old": getattr(case, f), "new": v or ""} for f, v in changes.items()
                    if getattr(case, f) != (v or "")}
            if diff:
                for f, change in diff.items():
                    setattr(case, f, change["new"])
                case.modified_at = utc_now()
                s.flush()
                audit.append(s, "case.updated", case_id=case.id, object_type="case", object_id=case.id,
                             details={**diff, ROW_KEY: row_digest(case)}, actor=self.actor_name(actor, case.id, s))
            return self._case_record(s, case)

    # --- images ---------------------------------------------------------------------------------------------
    def import_image(self, path: str | os.PathLike, case_id: int | None = None, actor: str | None = None) -> str:
        """Copy an image into the content-addressed store and record it; returns its SHA-256 (hex).

        Importing the same bytes again is harmless (same sha256, the first record is kept) but is logged again.
        ImageError when the file is not a readable image; StoreError when the store cannot be written.
        """
        source = Path(path)
        if case_id is not None:
            self.get_case(case_id)  # fail before copying anything
        stored = self.images.add(source)
        with self.session() as s:
            image = s.get(Image, stored.sha256)
            if image is None:
                image = Image(sha256=stored.sha256, original_name=source.name, original_path=str(source.resolve()),
                              size=stored.size, width=stored.width, height=stored.height, format=stored.format,
                              ext=stored.ext, imported_at=utc_now())
                s.add(image)
                s.flush()
            if case_id is not None:
                self._touch(s, case_id)
            audit.append(s, "image.imported", case_id=case_id, object_type="image", object_id=stored.sha256,
                         details={"sha256": stored.sha256, "original_name": source.name,
                                  "original_path": str(source.resolve()), "size": stored.size,
                                  "width": stored.width, "height": stored.height, ROW_KEY: row_digest(image)},
                         actor=self.actor_name(actor, case_id, s))
        return stored.sha256

    def get_image(self, sha256: str) -> ImageRecord:
        with self.session(write=False) as s:
            image = s.get(Image, sha256)
            if image is None:
                raise StoreError(f"no image {sha256[:12]}… in the store")
            return _image_record(image)

    def image_path(self, sha256: str) -> Path:
        """Where the stored copy of an imported image lies."""
        return self.images.find(sha256, self.get_image(sha256).ext)

    def verify_image(self, sha256: str) -> bool:
        """True when the stored file still hashes to its name."""
        try:
            return evidence_sha256(self.image_path(sha256)) == sha256
        except (OSError, StoreError):
            return False

    # --- comparisons ----------------------------------------------------------------------------------------
    def add_comparison(self, case_id: int, sha_a: str, sha_b: str, *, face_index_a: int = 0, face_index_b: int = 0,
                       model_sha256: str | None = None, model_name: str | None = None,
                       parameters: dict | None = None, status: str = "new",
                       actor: str | None = None) -> ComparisonRecord:
        """A pair of imported images (and which face in each) to analyse in a case."""
        _check_status(status)
        with self.session() as s:
            self._case(s, case_id)
            for sha in (sha_a, sha_b):
                if s.get(Image, sha) is None:
                    raise StoreError(f"image {str(sha)[:12]}… has not been imported")
            comparison = Comparison(case_id=case_id, image_a=sha_a, image_b=sha_b, face_index_a=int(face_index_a),
                                    face_index_b=int(face_index_b), model_sha256=model_sha256, model_name=model_name,
                                    parameters=_dumps(parameters), status=status, created_at=utc_now())
            s.add(comparison)
            s.flush()
            self._touch(s, case_id)
            record = self._comparison_with_count(s, comparison)
            audit.append(s, "comparison.added", case_id=case_id, object_type="comparison", object_id=comparison.id,
                         details={"number": record.number, "image_a": sha_a, "image_b": sha_b,
                                  "face_index_a": int(face_index_a),
                                  "face_index_b": int(face_index_b), "model_sha256": model_sha256,
                                  "model_name": model_name, "parameters": parameters or {},
                                  ROW_KEY: row_digest(comparison)}, actor=self.actor_name(actor, case_id, s))
            return record

    def get_comparison(self, comparison_id: int) -> ComparisonRecord:
        with self.session(write=False) as s:
            return self._comparison_with_count(s, self._comparison(s, comparison_id))

    def list_comparisons(self, case_id: int) -> list[ComparisonRecord]:
        with self.session(write=False) as s:
            self._case(s, case_id)
            rows = s.scalars(select(Comparison).where(Comparison.case_id == case_id).order_by(Comparison.id)).all()
            return [_comparison_record(c, self._n_results(s, c.id), n) for n, c in enumerate(rows, start=1)]

    def set_comparison_status(self, comparison_id: int, status: str, message: str | None = None) -> None:
        """Record where an analysis stands (not audited: results and their saving are)."""
        _check_status(status)
        if status == "running" and message is None:  # who runs it: a later open can tell if it was killed
            message = liveness.running_here()
        with self.session() as s:
            comparison = self._comparison(s, comparison_id)
            comparison.status = status
            comparison.status_message = message

    def mark_interrupted(self) -> list[int]:
        """Comparisons left 'running' by a process that is gone (killed, crashed, power cut) become 'interrupted',
        each audited on its case's chain. One running in a live process, or on another computer, is left alone."""
        with self.session(write=False) as s:
            running = s.execute(select(Comparison.id, Comparison.status_message)
                                .where(Comparison.status == "running")).all()
        gone = [cid for cid, message in running if not liveness.still_running(message)]
        if not gone:
            return []
        with self.session() as s:
            for comparison in s.scalars(select(Comparison).where(Comparison.id.in_(gone),
                                                                 Comparison.status == "running")):
                was = comparison.status_message or "no process recorded"
                comparison.status, comparison.status_message = "interrupted", f"the analysis stopped ({was})"
                audit.append(s, "comparison.interrupted", case_id=comparison.case_id, object_type="comparison",
                             object_id=comparison.id, details={"was": was},
                             actor="xfr")
        return gone

    # --- results --------------------------------------------------------------------------------------------
    def save_result(self, comparison_id: int, payload: dict, actor: str | None = None) -> ResultRecord:
        """Store a new result row (never overwrites). See the package docstring for the payload keys."""
        if not isinstance(payload, dict):
            raise StoreError("a result must be a dict (see xfr_desktop.store)")
        missing = [k for k in ("score", "threshold", "decision") if payload.get(k) is None]
        if missing:
            raise StoreError(f"a result needs {', '.join(missing)}")
        try:  # a NaN score or threshold decides nothing: it must never become evidence
            score, threshold = (finite_float(payload[k], f"a result's {k}") for k in ("score", "threshold"))
        except XfrError as exc:
            raise StoreError(str(exc)) from None
        parameters = dict(payload.get("parameters") or {})
        parameters_json = _dumps(parameters)
        # Pack blobs before opening the transaction: the write lock is held only for the insert.
        maps = as_npz_bytes(payload.get("maps"))
        residuals = as_npz_bytes(payload.get("residuals"))
        faces = as_npz_bytes(payload.get("faces"))
        timings_json = _dumps(payload.get("timings"))
        with self.session() as s:
            comparison = self._comparison(s, comparison_id)
            previous = s.scalar(select(Result.parameters).where(Result.comparison_id == comparison_id)
                                .order_by(Result.id.desc()).limit(1))
            result = Result(comparison_id=comparison_id, created_at=utc_now(), parameters=parameters_json,
                            score=score, threshold=threshold, decision=bool(payload["decision"]),
                            model_sha256=payload.get("model_sha256") or comparison.model_sha256,
                            model_name=payload.get("model_name") or comparison.model_name,
                            timings=timings_json, maps_npz=maps, residuals_npz=residuals, faces_npz=faces)
            s.add(result)
            s.flush()
            self._touch(s, comparison.case_id)
            action = "parameters.saved" if previous is not None and previous != parameters_json else "analysis.saved"
            audit.append(s, action, case_id=comparison.case_id, object_type="result", object_id=result.id,
                         details={"comparison_id": comparison_id, "score": score, "threshold": threshold,
                                  "decision": "match" if result.decision else "non-match",
                                  "parameters": parameters, "model_sha256": result.model_sha256,
                                  "previous_parameters": _loads(previous) if action == "parameters.saved" else None,
                                  ROW_KEY: row_digest(result)}, actor=self.actor_name(actor, comparison.case_id, s))
            return _result_record(result, with_blobs=True)

    def latest_result(self, comparison_id: int) -> ResultRecord | None:
        """The newest result of a comparison, blobs included (None when it was never analysed)."""
        with self.session(write=False) as s:
            self._comparison(s, comparison_id)
            result = s.scalar(select(Result).options(undefer("*")).where(Result.comparison_id == comparison_id)
                              .order_by(Result.id.desc()).limit(1))
            return _result_record(result, with_blobs=True) if result is not None else None

    def get_result(self, result_id: int) -> ResultRecord:
        with self.session(write=False) as s:
            result = s.scalar(select(Result).options(undefer("*")).where(Result.id == result_id))
            if result is None:
                raise StoreError(f"no result {result_id}")
            return _result_record(result, with_blobs=True)

    def list_results(self, comparison_id: int, include_blobs: bool = False) -> list[ResultRecord]:
        """Every result of a comparison, oldest first (blobs only when asked: they are large)."""
        with self.session(write=False) as s:
            self._comparison(s, comparison_id)
            query = select(Result).where(Result.comparison_id == comparison_id).order_by(Result.id)
            if include_blobs:
                query = query.options(undefer("*"))
            return [_result_record(r, with_blobs=include_blobs) for r in s.scalars(query)]

    # --- conclusions ----------------------------------------------------------------------------------------
    def set_conclusion(self, case_id: int, text: str, *, scale: str | None = None, notes: str = "",
                       author: str | None = None, comparison_id: int | None = None) -> ConclusionRecord:
        """Record the examiner's conclusion (a new row each edit; the latest is current)."""
        with self.session() as s:
            self._case(s, case_id)
            if comparison_id is not None and self._comparison(s, comparison_id).case_id != case_id:
                raise StoreError(f"comparison {comparison_id} does not belong to case {case_id}")
            author = self.actor_name(author, case_id, s)
            conclusion = Conclusion(case_id=case_id, comparison_id=comparison_id, text=text or "", scale=scale,
                                    notes=notes or "", author=author, created_at=utc_now())
            s.add(conclusion)
            s.flush()
            self._touch(s, case_id)
            audit.append(s, "conclusion.edited", case_id=case_id, object_type="conclusion", object_id=conclusion.id,
                         details={"comparison_id": comparison_id, "text": conclusion.text, "scale": scale,
                                  "notes": conclusion.notes, ROW_KEY: row_digest(conclusion)}, actor=author)
            return _conclusion_record(conclusion)

    def latest_conclusion(self, case_id: int, comparison_id: int | None = None) -> ConclusionRecord | None:
        """The current case-level conclusion (or that of one comparison when `comparison_id` is given): a note on
        one comparison is never the case's conclusion."""
        with self.session(write=False) as s:
            self._case(s, case_id)
            query = select(Conclusion).where(Conclusion.case_id == case_id)
            query = query.where(Conclusion.comparison_id.is_(None) if comparison_id is None
                                else Conclusion.comparison_id == comparison_id)
            row = s.scalar(query.order_by(Conclusion.id.desc()).limit(1))
            return _conclusion_record(row) if row is not None else None

    def list_conclusions(self, case_id: int) -> list[ConclusionRecord]:
        with self.session(write=False) as s:
            self._case(s, case_id)
            rows = s.scalars(select(Conclusion).where(Conclusion.case_id == case_id).order_by(Conclusion.id))
            return [_conclusion_record(r) for r in rows]

    # --- models ---------------------------------------------------------------------------------------------
    def register_model(self, name: str, path: str | os.PathLike, *, sha256: str | None = None,
                       card: str | None = None, activate: bool = False, actor: str | None = None) -> ModelRecord:
        """Add a model file to the registry (or update name/path/card of the same sha256)."""
        path = Path(path)
        if sha256 is None:
            try:
                sha256 = file_sha256(path)
            except OSError as exc:
                raise StoreError(f"cannot read the model file {path}: {exc.strerror or exc}") from exc
        with self.session() as s:
            model = s.scalar(select(Model).where(Model.sha256 == sha256))
            if model is None:
                model = Model(name=name, path=str(path), sha256=sha256, card=card, active=False,
                              registered_at=utc_now())
                s.add(model)
            else:
                model.name, model.path = name, str(path)
                if card is not None:
                    model.card = card
            s.flush()
            audit.append(s, "model.registered", object_type="model", object_id=sha256,
                         details={"name": name, "path": str(path), "sha256": sha256, **_card_digest(model.card)},
                         actor=self.actor_name(actor))
            if activate:
                self._activate(s, model, self.actor_name(actor))
            return _model_record(model)

    def list_models(self) -> list[ModelRecord]:
        with self.session(write=False) as s:
            return [_model_record(m) for m in s.scalars(select(Model).order_by(Model.id))]

    def get_model(self, model_id_or_sha256: int | str) -> ModelRecord:
        with self.session(write=False) as s:
            return _model_record(self._model(s, model_id_or_sha256))

    def set_active_model(self, model_id_or_sha256: int | str, actor: str | None = None) -> ModelRecord:
        """Make one registered model the active one (the others become inactive)."""
        with self.session() as s:
            model = self._model(s, model_id_or_sha256)
            self._activate(s, model, self.actor_name(actor))
            return _model_record(model)

    def active_model(self) -> ModelRecord | None:
        with self.session(write=False) as s:
            model = s.scalar(select(Model).where(Model.active.is_(True)).order_by(Model.id.desc()).limit(1))
            return _model_record(model) if model is not None else None

    # --- audit ----------------------------------------------------------------------------------------------
    def log_event(self, action: str, *, case_id: int | None = None, object_type: str | None = None,
                  object_id: str | int | None = None, details: dict | None = None,
                  actor: str | None = None) -> AuditRecord:
        """Append an entry to the audit trail (e.g. "report.exported", "report.signed") in its own transaction."""
        with self.session() as s:
            if case_id is not None:
                self._case(s, case_id)
            return audit.append(s, action, case_id=case_id, object_type=object_type, object_id=object_id,
                                details=details, actor=self.actor_name(actor, case_id, s))

    def list_audit(self, case_id: int | None = None) -> list[AuditRecord]:
        """Entries oldest first: one case's chain, or every entry when `case_id` is None."""
        with self.session(write=False) as s:
            query = select(AuditLog).order_by(AuditLog.id)
            if case_id is not None:
                query = query.where(AuditLog.case_id == case_id)
            return [audit.to_record(r) for r in s.scalars(query)]

    def verify_audit(self, case_id: int | None = None, *, trusted: list[bytes] | None = None,
                     external: list | None = None) -> AuditVerification:
        """Everything a report rests on, first problem named: the hash chain(s), the signed checkpoints (and the
        `external` ones, e.g. from files), the rows against the digests their entries recorded, and the evidence
        files against their SHA-256. `trusted`: certificates (PEM) checkpoints must be signed with."""
        with self.session(write=False) as s:
            if case_id is not None:
                self._case(s, case_id)
            chain = audit.verify(s, case_id)
            if not chain.ok:
                return chain
            every = case_id is None
            points = checkpoints.stored(s, case_id, every) + [
                c for c in external or [] if every or c.case_id == case_id]
            problem = (checkpoints.check(s, points, trusted) or checkpoints.check_announced(s, case_id, every)
                       or integrity.check_rows(s, case_id) or integrity.check_files(s, case_id, self.images_dir))
            if problem:
                return replace(chain, ok=False, reason=problem)
            newest = max(points, key=lambda c: c.last_entry_id, default=None)
            return replace(chain, checkpoint=newest.describe() if newest else "",
                           adopted=tuple(integrity.adoptions(s, case_id)))

    def create_checkpoint(self, case_id: int | None, sign, certificate_pem: bytes, signer: str):
        """Sign the head of a chain (case_id None: the system chain) with `sign(bytes) -> signature`, after
        verifying it: a checkpoint must never vouch for data that already fails. None for an empty chain."""
        self._check_before_signing(case_id)
        with self.session() as s:
            return checkpoints.create(s, case_id, sign, certificate_pem, signer)

    def log_events(self, case_id: int, events: list[tuple[str, str, dict]], *, actor: str | None = None,
                   checkpoint: tuple | None = None, before_commit=None) -> None:
        """Entries (action, report name, details) of one case in ONE transaction, then a checkpoint of the new head
        (`checkpoint` = (sign, certificate_pem, signer)) and `before_commit()` (a report's rename): a process
        killed anywhere in between leaves no entry naming a file that was never written."""
        if checkpoint is not None:
            self._check_before_signing(case_id)
        with self.session() as s:
            self._case(s, case_id)
            who = self.actor_name(actor, case_id, s)
            for action, name, details in events:
                audit.append(s, action, case_id=case_id, object_type="report", object_id=name, details=details,
                             actor=who)
            if checkpoint is not None:
                checkpoints.create(s, case_id, *checkpoint)
            if before_commit is not None:
                before_commit()

    def _check_before_signing(self, case_id: int | None) -> None:
        verification = self.verify_audit(case_id)
        if not verification.ok:
            raise StoreError(f"not signing a checkpoint over data that fails verification: {verification.message}")

    def _after_upgrade(self, conn, from_version: int) -> None:
        if from_version < 3:  # rows saved before entries carried digests: bind them as they are now
            with Session(bind=conn) as s:
                integrity.adopt_existing_rows(s)
                s.flush()

    # --- helpers --------------------------------------------------------------------------------------------
    @staticmethod
    def _case(s: Session, case_id: int) -> Case:
        case = s.get(Case, int(case_id)) if str(case_id).strip().lstrip("-").isdigit() else None
        if case is None:
            raise StoreError(f"no case with id {case_id}")
        return case

    @staticmethod
    def _comparison(s: Session, comparison_id: int) -> Comparison:
        comparison = s.get(Comparison, int(comparison_id))
        if comparison is None:
            raise StoreError(f"no comparison with id {comparison_id}")
        return comparison

    @staticmethod
    def _model(s: Session, key: int | str) -> Model:
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit() and len(key) < 20):
            model = s.get(Model, int(key))
        else:
            model = s.scalar(select(Model).where(Model.sha256 == str(key)))
        if model is None:
            raise StoreError(f"no registered model {key}")
        return model

    @staticmethod
    def _n_results(s: Session, comparison_id: int) -> int:
        return int(s.scalar(select(func.count(Result.id)).where(Result.comparison_id == comparison_id)) or 0)

    @classmethod
    def _comparison_with_count(cls, s: Session, comparison: Comparison) -> ComparisonRecord:
        # rows are never deleted (a removal only marks them), so the position by id never changes
        number = s.scalar(select(func.count(Comparison.id)).where(Comparison.case_id == comparison.case_id,
                                                                 Comparison.id <= comparison.id))
        return _comparison_record(comparison, cls._n_results(s, comparison.id), int(number or 0))

    @staticmethod
    def _touch(s: Session, case_id: int) -> None:
        s.execute(update(Case).where(Case.id == case_id).values(modified_at=utc_now()))

    @staticmethod
    def _activate(s: Session, model: Model, actor: str | None) -> None:
        s.execute(update(Model).where(Model.id != model.id).values(active=False))
        model.active = True
        s.flush()
        audit.append(s, "model.activated", object_type="model", object_id=model.sha256,
                     details={"name": model.name, "sha256": model.sha256}, actor=actor)

    @staticmethod
    def _case_record(s: Session, case: Case, n_comparisons: int | None = None) -> CaseRecord:
        if n_comparisons is None:
            n_comparisons = s.scalar(select(func.count(Comparison.id)).where(Comparison.case_id == case.id)) or 0
        return CaseRecord(id=case.id, number=case.number, title=case.title, examiner=case.examiner,
                          organisation=case.organisation, notes=case.notes, created_at=case.created_at,
                          modified_at=case.modified_at, n_comparisons=int(n_comparisons),
                          proposition_prosecution=case.proposition_prosecution or "",
                          proposition_defence=case.proposition_defence or "")


def open_store(data_dir: str | os.PathLike | None = None, *, create: bool = True,
               examiner: str | None = None) -> Store:
    """Open (creating or upgrading) the store in `data_dir`, $XFR_DATA_DIR or the user data folder.
    ``create=False`` for reading: StoreError when there is no database, read-only when it cannot be written.
    ``examiner``: the name audited actions are recorded under, ahead of the preference (``xfr --examiner``)."""
    return Store(data_dir, create=create, examiner=examiner)


def _check_status(status: str) -> None:
    if status not in COMPARISON_STATUSES:
        raise StoreError(f"unknown comparison status {status!r} (one of {', '.join(COMPARISON_STATUSES)})")


def _image_record(image: Image) -> ImageRecord:
    return ImageRecord(sha256=image.sha256, original_name=image.original_name, original_path=image.original_path,
                       size=image.size, width=image.width, height=image.height, format=image.format, ext=image.ext,
                       imported_at=image.imported_at)


def _comparison_record(c: Comparison, n_results: int, number: int) -> ComparisonRecord:
    return ComparisonRecord(id=c.id, case_id=c.case_id, image_a=c.image_a, image_b=c.image_b,
                            face_index_a=c.face_index_a, face_index_b=c.face_index_b, model_sha256=c.model_sha256,
                            model_name=c.model_name, parameters=_loads(c.parameters), status=c.status,
                            status_message=c.status_message, created_at=c.created_at, n_results=n_results,
                            removed_at=c.removed_at, removed_reason=c.removed_reason, removed_by=c.removed_by,
                            report_result_id=c.report_result_id, number=number)


def _result_record(r: Result, with_blobs: bool) -> ResultRecord:
    blobs = dict(maps_npz=r.maps_npz, residuals_npz=r.residuals_npz, faces_npz=r.faces_npz) if with_blobs else {}
    return ResultRecord(id=r.id, comparison_id=r.comparison_id, created_at=r.created_at, score=r.score,
                        threshold=r.threshold, decision=bool(r.decision), parameters=_loads(r.parameters),
                        timings=_loads(r.timings), model_sha256=r.model_sha256, model_name=r.model_name, **blobs)


def _conclusion_record(c: Conclusion) -> ConclusionRecord:
    return ConclusionRecord(id=c.id, case_id=c.case_id, comparison_id=c.comparison_id, text=c.text, scale=c.scale,
                            notes=c.notes, author=c.author, created_at=c.created_at)


def _card_digest(card: str | None) -> dict:
    """The registered card's SHA-256: only a card an entry records is shown in a report."""
    return {"card_sha256": hashlib.sha256(card.encode("utf-8")).hexdigest()} if isinstance(card, str) else {}


def _model_record(m: Model) -> ModelRecord:
    return ModelRecord(id=m.id, name=m.name, path=m.path, sha256=m.sha256, card=m.card, active=bool(m.active),
                       registered_at=m.registered_at)
