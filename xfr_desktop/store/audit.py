"""The tamper-evident audit trail: an append-only table in which every entry stores
``hash = sha256(prev_hash || canonical entry)``, one chain per case (case_id NULL = the system chain).

SQLite triggers refuse UPDATE and DELETE on the table; the hash chain catches changes made behind the app's back
(someone dropping the triggers or editing the file): :func:`verify` names the first entry that does not fit.
Limit: removing the *newest* entries of a chain, or rewriting it with this module's own hash function, leaves a
valid-looking chain; signed checkpoints (:mod:`.checkpoints`) detect both up to the last checkpoint, and
:mod:`.integrity` binds the case rows and evidence files to the entries (docs/integrity.md).
"""
from __future__ import annotations

import getpass
import hashlib
import json
import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePath

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core.errors import StoreError
from .records import AuditRecord
from .schema import AuditLog

GENESIS_HASH = "0" * 64


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in the environment (containers): still log something
        return os.environ.get("USER") or "unknown"


def _jsonable(value):
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def to_plain(value, keep_nonfinite: bool = False):
    """JSON-ready copy: numpy scalars/arrays -> Python, keys -> str, NaN/inf -> "NaN"/"Infinity"/"-Infinity"
    (unless `keep_nonfinite`), so a stray infinity never stops a result or an audit entry from being saved."""
    if isinstance(value, dict):
        return {str(k): to_plain(v, keep_nonfinite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v, keep_nonfinite) for v in value]
    if hasattr(value, "tolist") and callable(value.tolist) and not isinstance(value, (str, bytes)):  # numpy
        return to_plain(value.tolist(), keep_nonfinite)
    if isinstance(value, float) and not math.isfinite(value) and not keep_nonfinite:
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def canonical_json(value) -> str:
    """Deterministic JSON: sorted keys, no spaces, UTF-8 text, strictly valid (non-finite numbers as strings)."""
    try:
        return json.dumps(to_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False, default=_jsonable)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"audit details cannot be recorded as JSON: {exc}") from exc


def stored_json(value) -> str:
    """JSON for parameters/timings columns: like canonical_json but NaN/inf stay numbers (json.loads reads them)."""
    try:
        return json.dumps(to_plain(value or {}, keep_nonfinite=True), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False, default=_jsonable)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"parameters cannot be stored as JSON: {exc}") from exc


def entry_hash(prev_hash: str, time: str, actor: str, action: str, case_id: int | None, object_type: str | None,
               object_id: str | None, details: str) -> str:
    """sha256(prev_hash || canonical JSON of the entry); `details` is the stored canonical JSON text."""
    entry = {"time": time, "actor": actor, "action": action, "case_id": case_id, "object_type": object_type,
             "object_id": object_id, "details": details}
    return hashlib.sha256((prev_hash + canonical_json(entry)).encode("utf-8")).hexdigest()


def to_record(row: AuditLog) -> AuditRecord:
    return AuditRecord(id=row.id, time=row.time, actor=row.actor, action=row.action, case_id=row.case_id,
                       object_type=row.object_type, object_id=row.object_id, details=row.details,
                       prev_hash=row.prev_hash, hash=row.hash)


def _chain_filter(case_id: int | None):
    return AuditLog.case_id.is_(None) if case_id is None else AuditLog.case_id == case_id


def append(session: Session, action: str, *, case_id: int | None = None, object_type: str | None = None,
           object_id: str | int | None = None, details: dict | None = None, actor: str | None = None) -> AuditRecord:
    """Append an entry inside the caller's (write) transaction, so it commits or rolls back with the change."""
    if not action:
        raise StoreError("an audit entry needs an action")
    head = session.scalar(select(AuditLog.hash).where(_chain_filter(case_id)).order_by(AuditLog.id.desc()).limit(1))
    prev_hash = head or GENESIS_HASH
    row = AuditLog(time=utc_now(), actor=actor or default_actor(), action=action,
                   case_id=None if case_id is None else int(case_id), object_type=object_type,
                   object_id=None if object_id is None else str(object_id),
                   details=canonical_json(details or {}), prev_hash=prev_hash)
    row.hash = entry_hash(prev_hash, row.time, row.actor, row.action, row.case_id, row.object_type, row.object_id,
                          row.details)
    session.add(row)
    session.flush()
    return to_record(row)


@dataclass(frozen=True)
class AuditVerification:
    ok: bool
    n_entries: int
    first_broken: AuditRecord | None = None
    reason: str = ""
    case_id: int | None = None
    head: str = ""                    # hash of the newest entry of the verified chain ("" when empty or all)
    checkpoint: str = ""              # the newest signed checkpoint that held, described; "" when none
    adopted: tuple[int, ...] = ()     # the schema upgrade's integrity.adopted entries in scope

    @property
    def message(self) -> str:
        scope = f" for case {self.case_id}" if self.case_id is not None else ""
        if self.ok:
            signed = f"; last {self.checkpoint}" if self.checkpoint else ""
            adopted = (f"; rows older than schema 3 adopted at the schema upgrade by entry "
                       f"{', '.join(f'#{i}' for i in self.adopted)} (attested as they were then, not as first saved)"
                       if self.adopted else "")
            return f"chain intact{scope}: {self.n_entries} entries{signed}{adopted}"
        entry = self.first_broken
        if entry is None:  # a row, file or checkpoint that does not fit the (intact) chain
            return f"verification failed{scope}: {self.reason}"
        return (f"chain broken{scope} at entry #{entry.id} ({entry.time}, {entry.action}"
                f"{', case ' + str(entry.case_id) if entry.case_id is not None else ''}): {self.reason}")


def verify(session: Session, case_id: int | None = None) -> AuditVerification:
    """Recompute the chain(s) (all when `case_id` is None) and report the first entry that does not fit."""
    query = select(AuditLog).order_by(AuditLog.id)
    if case_id is not None:
        query = query.where(AuditLog.case_id == case_id)
    heads: dict[int | None, tuple[int, str]] = {}
    n = 0
    for row in session.scalars(query):
        n += 1
        chain = row.case_id
        previous = heads.get(chain)
        expected_prev = previous[1] if previous else GENESIS_HASH
        if row.prev_hash != expected_prev:
            where = f"entry #{previous[0]}" if previous else "the start of the chain"
            return AuditVerification(False, n, to_record(row), f"its link to {where} does not match (an entry "
                                     "before it was removed, inserted or rewritten)", case_id)
        recomputed = entry_hash(row.prev_hash, row.time, row.actor, row.action, row.case_id, row.object_type,
                                row.object_id, row.details)
        if recomputed != row.hash:
            return AuditVerification(False, n, to_record(row), "its content does not match its hash (the entry was "
                                     "altered)", case_id)
        heads[chain] = (row.id, row.hash)
    head = heads[case_id][1] if case_id is not None and case_id in heads else ""
    return AuditVerification(True, n, None, "", case_id, head)
