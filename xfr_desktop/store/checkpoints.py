"""Signed checkpoints of the audit chain heads: the key the hash chain lacks.

The chain's hash function is public, so anyone who can write the database can rewrite history and recompute every
hash, drop the newest entries, or empty the log, and the chain alone still looks intact. A checkpoint is the
examiner's signature (the private key of their ``.p12``, see ``xfr keys create``) over one chain's head: its last
entry id, the number of entries up to it and that entry's hash. Verification then demands that the chain still
holds exactly that entry at that position. Entries written *after* the last checkpoint are protected only by the
unkeyed chain (docs/integrity.md lists what is and is not detected).

Checkpoints are kept in the append-only ``audit_checkpoints`` table and announced by an ``audit.checkpoint`` entry;
:func:`export_checkpoints` gives the same signed statement as JSON to keep outside the data folder.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..core.errors import StoreError
from .audit import canonical_json, utc_now
from .schema import AuditCheckpoint, AuditLog

Signer = Callable[[bytes], bytes]


@dataclass(frozen=True)
class Checkpoint:
    case_id: int | None
    last_entry_id: int
    n_entries: int
    head_hash: str
    created_at: str
    signer: str
    certificate_pem: str
    signature: str  # hex
    id: int | None = None

    def payload(self) -> bytes:
        """The signed bytes: canonical JSON of what the checkpoint states."""
        return canonical_json({"case_id": self.case_id, "last_entry_id": self.last_entry_id,
                               "n_entries": self.n_entries, "head_hash": self.head_hash,
                               "created_at": self.created_at, "signer": self.signer}).encode("utf-8")

    def describe(self) -> str:
        where = f"#{self.id}" if self.id is not None else "from file"
        return f"checkpoint {where} (entry #{self.last_entry_id}, signed by {self.signer} at {self.created_at})"


def _chain(case_id: int | None):
    return AuditLog.case_id.is_(None) if case_id is None else AuditLog.case_id == case_id


def create(s: Session, case_id: int | None, sign: Signer, certificate_pem: bytes, signer: str) -> Checkpoint | None:
    """Sign the current head of one chain, store it and log ``audit.checkpoint``; None for an empty chain."""
    from . import audit

    head = s.scalar(select(AuditLog).where(_chain(case_id)).order_by(AuditLog.id.desc()).limit(1))
    if head is None:
        return None
    n = int(s.scalar(select(func.count(AuditLog.id)).where(_chain(case_id))) or 0)
    unsigned = Checkpoint(case_id, head.id, n, head.hash, utc_now(), signer, certificate_pem.decode("ascii"), "")
    row = AuditCheckpoint(**{**vars(unsigned), "signature": sign(unsigned.payload()).hex(), "id": None})
    s.add(row)
    s.flush()
    audit.append(s, "audit.checkpoint", case_id=case_id, object_type="checkpoint", object_id=row.id,
                 details={"last_entry_id": head.id, "n_entries": n, "head_hash": head.hash, "signer": signer},
                 actor=signer)
    return _record(row)


def _record(row: AuditCheckpoint) -> Checkpoint:
    return Checkpoint(row.case_id, row.last_entry_id, row.n_entries, row.head_hash, row.created_at, row.signer,
                      row.certificate_pem, row.signature, row.id)


def stored(s: Session, case_id: int | None = None, all_chains: bool = True) -> list[Checkpoint]:
    query = select(AuditCheckpoint).order_by(AuditCheckpoint.id)
    if not all_chains:
        query = query.where(AuditCheckpoint.case_id.is_(None) if case_id is None
                            else AuditCheckpoint.case_id == case_id)
    return [_record(r) for r in s.scalars(query)]


FILE_FORMAT = "xfr-audit-checkpoints/1"


def export_checkpoints(points: list[Checkpoint]) -> str:
    """The signed statements as JSON, to keep outside the data folder (`xfr audit verify --checkpoint FILE`)."""
    return json.dumps({"format": FILE_FORMAT, "checkpoints": [vars(cp) for cp in points]}, indent=2,
                      ensure_ascii=False)


def load_checkpoint_file(path) -> list[Checkpoint]:
    from ..core.fileio import MAX_CHECKPOINT_FILE, read_bytes

    text = read_bytes(path, "the checkpoint file", StoreError, MAX_CHECKPOINT_FILE)
    try:
        data = json.loads(text.decode("utf-8"))
        if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
            raise ValueError("not an XFR audit checkpoint file")
        return [_checked(Checkpoint(**{**cp, "id": None})) for cp in data["checkpoints"]]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise StoreError(f"cannot read the checkpoint file {path}: {exc}") from None


def _checked(cp: Checkpoint) -> Checkpoint:
    """A checkpoint read from a file has the types a stored one has (a hostile file must not reach SQL or hex)."""
    ints = (cp.last_entry_id, cp.n_entries) + (() if cp.case_id is None else (cp.case_id,))
    texts = (cp.head_hash, cp.created_at, cp.signer, cp.certificate_pem, cp.signature)
    if not all(type(v) is int for v in ints) or not all(isinstance(v, str) for v in texts):
        raise ValueError("a checkpoint has a field of the wrong type")
    return cp


def check(s: Session, checkpoints: list[Checkpoint], trusted: list[bytes] | None) -> str | None:
    """The first checkpoint whose signature fails, whose signer is not trusted, or whose head the chain no longer
    holds, as a one-line reason; None when all hold. Trusted signers demanded of no checkpoint at all fail."""
    if trusted is not None and not checkpoints:
        return "nothing signed to check: no checkpoint covers this data, so no --trust certificate vouches for it"
    for cp in checkpoints:
        problem = _signature_problem(cp, trusted) or _position_problem(s, cp)
        if problem:
            return problem
    return None


def _signature_problem(cp: Checkpoint, trusted: list[bytes] | None) -> str | None:
    try:
        signature = bytes.fromhex(cp.signature)
        certificate = cp.certificate_pem.encode("ascii")
    except (ValueError, UnicodeError):
        signature, certificate = b"", b""
    if not verify_signature(certificate, cp.payload(), signature):
        return f"the signature of {cp.describe()} is not valid (the checkpoint was altered)"
    if trusted is not None and certificate_fingerprint(cp.certificate_pem.encode("ascii")) not in {
            certificate_fingerprint(t) for t in trusted}:
        return f"{cp.describe()} is signed by a certificate that is not among the --trust certificates"
    return None


def _position_problem(s: Session, cp: Checkpoint) -> str | None:
    chain = "the system chain" if cp.case_id is None else f"case {cp.case_id}"
    entry = s.get(AuditLog, cp.last_entry_id)
    if entry is None or entry.case_id != cp.case_id:
        return (f"the audit trail of {chain} no longer holds entry #{cp.last_entry_id}, which {cp.describe()} "
                "covers: entries were deleted")
    if entry.hash != cp.head_hash:
        return f"entry #{entry.id} of {chain} is not the one {cp.describe()} covers: the chain was rewritten"
    n = int(s.scalar(select(func.count(AuditLog.id)).where(_chain(cp.case_id), AuditLog.id <= entry.id)) or 0)
    if n != cp.n_entries:
        return (f"{chain} holds {n} entries up to #{entry.id} but {cp.describe()} covers {cp.n_entries}: "
                "entries were removed or inserted")
    return None


def signed_through(s: Session, case_id: int | None) -> int:
    """The newest entry of one chain (None: the system chain) that a stored checkpoint covers, its signature valid
    and the chains intact up to it: entries up to it cannot be changed unnoticed. 0 when none is covered."""
    from . import audit

    if not audit.verify(s, None).ok:
        return 0
    held = [cp.last_entry_id for cp in stored(s, case_id, all_chains=False) if check(s, [cp], None) is None]
    return max(held, default=0)


def check_announced(s: Session, case_id: int | None, all_chains: bool) -> str | None:
    """Every ``audit.checkpoint`` entry must still have its checkpoint (deleting checkpoints is noticed)."""
    query = select(AuditLog).where(AuditLog.action == "audit.checkpoint").order_by(AuditLog.id)
    if not all_chains:
        query = query.where(_chain(case_id))
    for entry in s.scalars(query):
        row = s.get(AuditCheckpoint, int(entry.object_id)) if (entry.object_id or "").isdigit() else None
        if row is None or row.head_hash != _head_hash(entry.details):
            return f"audit entry #{entry.id} records checkpoint {entry.object_id}, which is missing or altered"
    return None


def _head_hash(details: str) -> str | None:
    try:
        value = json.loads(details)
    except ValueError:
        return None
    return value.get("head_hash") if isinstance(value, dict) else None


def certificate_fingerprint(pem: bytes) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        return x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256()).hex()
    except ValueError:  # DER (verify-report accepts both)
        return x509.load_der_x509_certificate(pem).fingerprint(hashes.SHA256()).hex()


def verify_signature(certificate_pem: bytes, data: bytes, signature: bytes) -> bool:
    """ECDSA or RSA (PKCS#1 v1.5), SHA-256: the two key kinds a .p12 from `xfr keys create` or a lab PKI holds."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    try:
        key = x509.load_pem_x509_certificate(certificate_pem).public_key()
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
