"""Export a case's report: build, optionally sign, write atomically, and log both steps to the case's audit trail;
co-sign a signed report (the reviewer, ACE-V) and log that too.

Shared by ``xfr report`` / ``xfr cosign-report`` and the desktop app's Export and Co-sign dialogs. Nothing is written
when building or signing fails.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..core.fileio import MAX_PDF, check_new_file, read_bytes, with_path
from .building import render_report
from .from_store import build_report_for_case
from .pdfa import write_atomically
from .report_data import ReportError
from .signing import SigningError, check_cosignable, cosign_pdf, sign_pdf


@dataclass
class ExportResult:
    path: Path
    sha256: str               # of the file written (signed when signed)
    n_pages: int
    signed: bool
    signer: str = ""
    signed_at: str = ""       # local clock
    unsigned_sha256: str = ""
    recorded: bool = True     # False: the data folder was read-only, the export is not in the audit trail


def export_case_report(store, case_id: int, out_path: str | os.PathLike, *, identity=None, actor: str | None = None,
                       overwrite: bool = False) -> ExportResult:
    """Build the report of ``case_id`` into ``out_path``; sign it with ``identity`` (a SigningIdentity) if given.

    Audit: ``report.exported`` (file, sha256 of the unsigned report, pages) and, when signed, ``report.signed``
    (file, sha256 of the signed file, signer, certificate fingerprint, signing time from the local clock).
    """
    out_path = check_new_file(out_path, overwrite, ReportError)
    case = store.get_case(case_id)
    # audited under store.actor_name (the acting examiner, the preference, else the case's examiner)
    data = build_report_for_case(store, case.id)
    rendered = render_report(data, for_signing=identity is not None)
    pdf, signed = rendered.pdf, None
    if identity is not None:
        signed = sign_pdf(pdf, identity, box=rendered.signature_box, review_box=rendered.review_box,
                          location=case.organisation or None)
        pdf = signed.pdf
    final_sha = hashlib.sha256(pdf).hexdigest()
    # the file appears only once the audit trail has recorded it (and never when the logging fails)
    fd, tmp_name = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(pdf)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise with_path(exc, out_path) from exc
        recorded = not getattr(store, "read_only", False)  # a read-only data folder can still be reported on
        if recorded:
            _record_export(store, case.id, out_path, rendered, data, signed, identity, actor, tmp)
        else:
            os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ExportResult(path=out_path, sha256=final_sha, n_pages=rendered.n_pages, signed=signed is not None,
                        signer=signed.signer if signed else "", signed_at=signed.signed_at if signed else "",
                        unsigned_sha256=rendered.sha256, recorded=recorded)


def _record_export(store, case_id, out_path: Path, rendered, data, signed, identity, actor, tmp: Path) -> None:
    """report.exported (and report.signed with a checkpoint of the new head) in one transaction whose last step
    renames the file into place: the entries and the file appear together or not at all."""
    file = str(out_path.resolve())
    events = [("report.exported", out_path.name, {
        "file": file, "sha256_unsigned": rendered.sha256, "pages": rendered.n_pages,
        "comparisons": len(data.comparisons), "results": [c.result_id for c in data.comparisons]})]
    checkpoint = None
    if signed is not None:
        events.append(("report.signed", out_path.name, {
            "file": file, "sha256": hashlib.sha256(signed.pdf).hexdigest(), "signer": signed.signer,
            "certificate_sha256": signed.fingerprint_sha256, "signing_time_local_clock": signed.signed_at,
            "format": "PAdES B-B, SHA-256"}))
        # the key that signs the report also signs the chain head: later rewrites are then detectable
        checkpoint = (identity.sign_bytes, identity.certificate_pem, signed.signer)
    renamed = []
    try:
        store.log_events(case_id, events, actor=actor, checkpoint=checkpoint,
                         before_commit=lambda: renamed.append(os.replace(tmp, out_path)))
    except BaseException:
        if renamed:  # the commit failed after the rename: no file without its entries
            out_path.unlink(missing_ok=True)
        raise


@dataclass
class CosignResult:
    path: Path
    signed: object            # the SignedReport: signer, signed_at (local clock), fingerprint_sha256
    recorded: bool            # logged to the case's audit trail as report.cosigned


def cosign_report(report: str | os.PathLike, out_path: str | os.PathLike, identity, *, store=None,
                  case_id: int | None = None, overwrite: bool = False) -> CosignResult:
    """Add the reviewer's co-signature (``identity``) to the signed report file ``report``, write it to
    ``out_path`` and, given a store and a case, log it there as ``report.cosigned``. Nothing is written on error."""
    out_path = Path(out_path)
    signed = cosign_pdf(check_cosign(report, out_path, overwrite), identity)
    if case_id is not None:
        store.get_case(case_id)       # an unknown case fails before anything is written
    write_atomically(out_path, signed.pdf)
    recorded = case_id is not None and record_cosignature(store, case_id, out_path, signed)
    return CosignResult(out_path, signed, recorded)


def check_cosign(report: str | os.PathLike, out_path: str | os.PathLike, overwrite: bool | None = False) -> bytes:
    """The bytes of ``report`` once everything a co-signature needs but the reviewer's key holds: ``out_path`` may
    be written (``overwrite``: as :func:`~xfr_desktop.core.fileio.check_new_file`) and is another file, and
    ``report`` is a readable PDF signed by its examiner, not yet co-signed."""
    out_path = check_new_file(out_path, overwrite, SigningError)
    if Path(report).resolve() == out_path.resolve():
        raise SigningError("write the co-signed report to a new file: the examiner's signed report stays as it is")
    pdf = read_bytes(Path(report), "report", SigningError, MAX_PDF)
    check_cosignable(pdf)
    return pdf


def record_cosignature(store, case_id: int, path: str | os.PathLike, signed) -> bool:
    """Log a reviewer's co-signature of the case's report (``report.cosigned``: file, sha256, signer, certificate
    fingerprint, local signing time) under the reviewer's name. False when the data folder is read-only."""
    if getattr(store, "read_only", False):
        return False
    path = Path(path)
    store.log_event("report.cosigned", case_id=case_id, object_type="report", object_id=path.name,
                    details={"file": str(path.resolve()), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                             "signer": signed.signer, "certificate_sha256": signed.fingerprint_sha256,
                             "signing_time_local_clock": signed.signed_at, "format": "PAdES B-B, SHA-256"},
                    actor=signed.signer)
    return True
