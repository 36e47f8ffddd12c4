"""Verify a signed report: intact, cryptographically valid, covering the whole file (or only harmless later
updates), and made with a certificate that chains to a trusted one. Qt-free.

Every failure, including any exception inside pyHanko, is a :class:`VerificationResult` with ``ok=False`` and a
one-line reason: never a traceback. Bytes outside a signature's byte range (the signature value's own padding) are
not covered by any PDF signature; everything else in the signed revision is.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from ..core.fileio import MAX_PDF, read_bytes
from .signing import quiet_pyhanko_dsa_warning

quiet_pyhanko_dsa_warning()  # before the pyHanko imports below, which stay in functions: they take about a second

# status words (also the CLI's summary); exit codes of `xfr verify-report` (docs/reports.md):
#   0 valid: intact, unmodified, every signer trusted     3 unsigned       4 modified or invalid
#   5 untrusted: intact, but a signer does not chain to a --trust certificate
#   6 not a readable PDF                                  7 intact, but no --trust certificate was given
#   2 other errors (missing file, unreadable certificate)
VALID, UNSIGNED, MODIFIED, INVALID, UNTRUSTED, MALFORMED, ERROR, NO_TRUST = (
    "valid", "unsigned", "modified", "invalid", "untrusted", "malformed", "error", "intact-untrusted")
EXIT_CODES = {VALID: 0, UNSIGNED: 3, MODIFIED: 4, INVALID: 4, UNTRUSTED: 5, MALFORMED: 6, ERROR: 2, NO_TRUST: 7}

# What a certifying signature's DocMDP permission level (ISO 32000 12.8.2.2, /P) lets others do afterwards. This
# report has no form fields besides its signature fields, so level 2 in practice means "only further signatures".
PERMITTED_CHANGES = {1: "no changes allowed", 2: "only further signatures (and form filling) allowed",
                     3: "only further signatures, form filling and annotations allowed"}
# pyHanko's difference analysis (ModificationLevel) of what changed after a signature, in words
LATER_CHANGES = {"NONE": "none", "LTA_UPDATES": "archival updates only", "FORM_FILLING": "form filling",
                 "ANNOTATIONS": "annotations", "OTHER": "other changes", "UNKNOWN": "not analysable"}
SIGNATURES_ONLY = "only further signatures"


@dataclass
class SignatureReport:
    field_name: str
    signer: str
    signing_time: str          # as claimed by the signer (local clock; no timestamp authority)
    coverage: str
    intact: bool
    valid: bool
    trusted: bool
    modification: str
    subfilter: str
    certifying: bool = False   # the first signature certifies the report (DocMDP), later ones co-sign
    permitted_changes: str = ""  # a certifying signature's DocMDP permissions in words (PERMITTED_CHANGES)
    changes_after: str = "not analysable"   # what changed after signing, in words (LATER_CHANGES, SIGNATURES_ONLY)

    @property
    def kind(self) -> str:
        """ "certified" for the certifying signature (it fixes what may change later), else "approval"."""
        return "certified" if self.certifying else "approval"


@dataclass
class VerificationResult:
    ok: bool
    status: str
    message: str
    signatures: list[SignatureReport] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.status, 2)

    def summary_lines(self) -> list[str]:
        lines = [f"{self.status.upper()}: {self.message}"]
        for s in self.signatures:
            role = f"certifying signature ({s.permitted_changes})" if s.certifying else "approval signature"
            lines.append(f"  {role} {s.field_name!r} by {s.signer}; signed at {s.signing_time} (signer's clock, "
                         f"no timestamp authority); coverage {s.coverage}; intact {s.intact}; valid {s.valid}; "
                         f"trusted {s.trusted}; changes after signing: {s.changes_after} ({s.modification})")
        return lines


@contextlib.contextmanager
def _quiet_pyhanko():
    """pyHanko logs expected validation failures (untrusted, self-signed) with tracebacks; the verdict says it."""
    loggers = [logging.getLogger(n) for n in ("pyhanko", "pyhanko_certvalidator")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _load_trust(trust: list[str | os.PathLike] | None):
    from pyhanko.keys import load_certs_from_pemder_data

    certs = []
    for path in trust or []:
        p = Path(path)
        data = read_bytes(p, "trust certificate", ValueError)
        try:
            loaded = list(load_certs_from_pemder_data(data))
        except Exception:  # noqa: BLE001
            loaded = []
        if not loaded:
            raise ValueError(f"{p} holds no PEM or DER certificate")
        certs.extend(loaded)
    return certs


def verify_pdf(pdf: bytes | str | os.PathLike, trust: list[str | os.PathLike] | None = None) -> VerificationResult:
    """Verify every signature of ``pdf`` (bytes or a path) against the ``trust`` certificates (PEM/DER files)."""
    try:
        with _quiet_pyhanko():
            return _verify(pdf, trust)
    except Exception as exc:  # noqa: BLE001 - anything unexpected means "not verified", with a reason
        return VerificationResult(False, INVALID, f"validation failed: {type(exc).__name__}: {str(exc)[:200]}")


def _appended_bytes(sig, data: bytes, reader) -> int:
    """Bytes after the signed range of the last revision's signature that form no revision (readers ignore
    them; we do not)."""
    try:
        if sig.signed_revision != reader.xrefs.total_revisions - 1:
            return 0  # later revisions exist: the difference analysis judges them

        _, _, start2, len2 = (int(v) for v in sig.byte_range)
    except (TypeError, ValueError):
        return 0
    return len(data[start2 + len2:].strip())


def _verify(pdf, trust) -> VerificationResult:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.settings import KeyUsageConstraints
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    if isinstance(pdf, (bytes, bytearray)):
        data, name = bytes(pdf), "the PDF"
    else:
        p = Path(pdf)
        try:
            data = read_bytes(p, "file", ValueError, MAX_PDF)
        except ValueError as exc:
            return VerificationResult(False, ERROR, str(exc))
        name = p.name
    try:
        certs = _load_trust(trust)
    except ValueError as exc:
        return VerificationResult(False, ERROR, str(exc))
    if not data.lstrip()[:5].startswith(b"%PDF-"):
        return VerificationResult(False, MALFORMED, f"{name} is not a PDF file")
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        sigs = list(reader.embedded_signatures)
    except Exception as exc:  # noqa: BLE001
        return VerificationResult(False, MALFORMED, f"{name} is damaged or not a readable PDF "
                                                    f"({type(exc).__name__})")
    if not sigs:
        return VerificationResult(False, UNSIGNED, f"{name} carries no digital signature")
    signed_revisions = {s.signed_revision for s in sigs}

    reports: list[SignatureReport] = []
    verdict: tuple[str, str] | None = None
    for sig in sigs:
        ctx = ValidationContext(trust_roots=certs, allow_fetching=False, revocation_mode="soft-fail")
        usage = KeyUsageConstraints(key_usage={"non_repudiation", "digital_signature"}, match_all_key_usages=False)
        try:
            status = validate_pdf_signature(sig, ctx, key_usage_settings=usage)
        except Exception as exc:  # noqa: BLE001
            reports.append(SignatureReport(str(sig.field_name), "?", "?", "?", False, False, False, "?", "?"))
            verdict = verdict or (INVALID, f"signature {sig.field_name!r} could not be validated "
                                           f"({type(exc).__name__}: {str(exc)[:160]})")
            continue
        try:
            signer = status.signing_cert.subject.human_friendly
        except Exception:  # noqa: BLE001
            signer = "?"
        claimed = sig.self_reported_timestamp
        level = status.modification_level
        mdp = sig.docmdp_level
        rep = SignatureReport(
            field_name=str(sig.field_name), signer=signer,
            signing_time=claimed.isoformat() if claimed else "not stated",
            coverage=status.coverage.name if status.coverage is not None else "UNKNOWN",
            intact=bool(status.intact), valid=bool(status.valid), trusted=bool(status.trusted),
            modification=level.name if level is not None else "UNKNOWN",
            subfilter=str(sig.sig_object.get("/SubFilter", "?")),
            certifying=mdp is not None,
            permitted_changes=PERMITTED_CHANGES.get(int(mdp.value), f"DocMDP level {mdp.value}") if mdp else "",
            changes_after=_changes_in_words(sig, level, signed_revisions, reader),
        )
        reports.append(rep)
        if verdict is not None:
            continue
        if not status.intact:
            verdict = (MODIFIED, f"the signed content of {name} was changed after signing "
                                 f"(digest mismatch in signature {rep.field_name!r})")
        elif not status.valid:
            verdict = (INVALID, f"the cryptographic signature {rep.field_name!r} does not verify")
        elif _appended_bytes(sig, data, reader):
            verdict = (MODIFIED, f"{_appended_bytes(sig, data, reader)} bytes were appended to {name} after the signed "
                                 f"content; they are not covered by the signature")
        elif status.coverage is None or status.coverage < SignatureCoverageLevel.ENTIRE_REVISION:
            verdict = (MODIFIED, f"signature {rep.field_name!r} does not cover its whole revision of {name}")
        elif not _later_changes_allowed(sig, status, level, signed_revisions, reader):
            verdict = (MODIFIED, f"{name} was changed after it was signed (later update: "
                                 f"{level.name if level is not None else 'not analysable'})")
        elif not status.trusted and certs:
            why = status.trust_problem_indic.name if status.trust_problem_indic is not None else "no chain"
            verdict = (UNTRUSTED, f"the signer's certificate ({signer}) is not trusted by the given certificate(s) "
                                  f"({why})")
    verdict = verdict or _metadata_rewritten(reader, signed_revisions, name)
    if verdict is not None:
        return VerificationResult(False, verdict[0], verdict[1], reports)
    who = ", ".join(r.signer for r in reports)
    if not certs:
        return VerificationResult(False, NO_TRUST, f"{name} is intact, but its signer(s) {who} are untrusted: no "
                                                   f"--trust certificate was given to check them against", reports)
    return VerificationResult(True, VALID, f"{name} is intact and signed by {who} (trusted)", reports)


# pyHanko rates any /Info or XMP rewrite an archival ("LTA") update; only these may change in one (every
# incremental writer stamps them), so a new title, author or PDF/A claim after the last signature is a change
_VOLATILE_INFO = {"/ModDate", "/Producer"}
_VOLATILE_XMP = {"{http://ns.adobe.com/xap/1.0/}ModifyDate", "{http://ns.adobe.com/xap/1.0/}MetadataDate",
                 "{http://ns.adobe.com/pdf/1.3/}Producer", "{adobe:ns:meta/}xmptk",
                 "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}about"}
_XMP_FRAME = {"{adobe:ns:meta/}xmpmeta", "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}RDF",
              "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description"}


def _metadata_rewritten(reader, signed_revisions: set[int], name: str) -> tuple[str, str] | None:
    """MODIFIED when a revision after the last signature changed the document information or XMP metadata beyond
    the dates and producer: only signatures, DSS/VRI data and document timestamps are archival updates."""
    last_signed, final = max(signed_revisions), reader.xrefs.total_revisions - 1
    if final == last_signed:
        return None
    before, after = (_metadata_facts(reader.get_historical_resolver(r)) for r in (last_signed, final))
    if before == after:
        return None
    return (MODIFIED, f"the title, author or other metadata of {name} (document information or XMP, PDF/A claim "
                      "included) was changed after the last signature: not an archival update")


def _metadata_facts(resolver) -> tuple[dict, set]:
    info_ref = resolver.trailer_view.get_value_as_reference("/Info", optional=True)
    info = resolver(info_ref) if info_ref is not None else {}
    meta_ref = resolver.root.get_value_as_reference("/Metadata", optional=True)
    xmp = _xmp_facts(resolver(meta_ref).data) if meta_ref is not None else set()
    return {str(k): str(v) for k, v in info.items() if str(k) not in _VOLATILE_INFO}, xmp


def _xmp_facts(xml: bytes) -> set[tuple[str, str]]:
    """(property path, value) pairs, the same whether a property is written as an element or as an attribute of
    rdf:Description (pyHanko rewrites one form into the other); unparsable XMP is a fact of its own."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return {("unparsable XMP", xml.decode("latin-1"))}
    facts: set[tuple[str, str]] = set()

    def walk(element, path: str) -> None:
        inner = path if element.tag in _XMP_FRAME else f"{path}/{element.tag}"
        for key, value in element.attrib.items():
            if key not in _VOLATILE_XMP:
                facts.add((f"{inner}/{key}" if element.tag in _XMP_FRAME else f"{inner}@{key}", value))
        children = list(element)
        if not children and element.tag not in _XMP_FRAME | _VOLATILE_XMP:
            facts.add((inner, (element.text or "").strip()))
        for child in children:
            walk(child, inner)
    walk(root, "")
    return facts


def _changes_in_words(sig, level, signed_revisions: set[int], reader) -> str:
    """What changed after ``sig`` was signed: form filling whose every later revision is a signature's own
    revision is "only further signatures"."""
    name = level.name if level is not None else "UNKNOWN"
    later = range(sig.signed_revision + 1, reader.xrefs.total_revisions)
    if name == "FORM_FILLING" and len(later) and all(r in signed_revisions for r in later):
        return SIGNATURES_ONLY
    return LATER_CHANGES.get(name, name.lower().replace("_", " "))


def _later_changes_allowed(sig, status, level, signed_revisions: set[int], reader) -> bool:
    """Nothing changed after ``sig``, or only harmless archival updates, or only further signatures: every later
    revision is itself a signature's revision (each validated in its own right), and pyHanko's difference
    analysis rates the changes as form filling -- which for this report's fields means signing -- within what the
    certification (DocMDP) allows."""
    from pyhanko.sign.diff_analysis import ModificationLevel

    if status.docmdp_ok is False:
        return False
    if level in (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES):
        return True
    later = range(sig.signed_revision + 1, reader.xrefs.total_revisions)
    return level == ModificationLevel.FORM_FILLING and all(r in signed_revisions for r in later)
