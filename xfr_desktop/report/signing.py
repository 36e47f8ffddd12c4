"""PAdES baseline B-B signatures (SHA-256) with an examiner identity from a PKCS#12 file, and self-signed identities.

The visible signature box on the report's last page is drawn by reportlab (embedded DejaVu font) as a one-page PDF
and imported by pyHanko as the signature's static appearance, so the signed report references no non-embedded
font. No timestamp authority is reachable offline: the signing time comes from this computer's clock and the
appearance says so. Qt-free.
"""
from __future__ import annotations

import binascii
import io
import os
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from reportlab.lib import colors
from reportlab.pdfgen import canvas

from ..core.errors import XfrError
from ..core.fileio import check_new_file, read_bytes
from .pdfa import BODY_FONT, BOLD_FONT, register_fonts, write_atomically

SIGNATURE_FIELD = "XFRSignature"          # the examiner's (certifying) signature
REVIEW_FIELD = "XFRReviewSignature"        # the reviewer's co-signature
DEFAULT_BOX = (51.0, 60.0, 311.0, 130.0)
MIN_PASSPHRASE = 8   # used when the caller does not know where the report reserved it


def quiet_pyhanko_dsa_warning() -> None:
    """Before pyHanko is imported: it imports cryptography's deprecated DSA classes, a third-party deprecation we
    cannot fix, and every signing or verifying command would print it."""
    from cryptography.utils import CryptographyDeprecationWarning

    warnings.filterwarnings("ignore", message="DSA is deprecated", category=CryptographyDeprecationWarning,
                            module=r"pyhanko(_certvalidator)?\.")


quiet_pyhanko_dsa_warning()
# pyHanko and cryptography's key classes are imported in the functions that use them: they take about a second to
# load, which rendering an unsigned report should not pay.


class SigningError(XfrError):
    """A key file cannot be used (wrong passphrase, not PKCS#12, expired...) or the PDF cannot be signed."""


class WrongPassphraseError(SigningError):
    """The passphrase does not open the PKCS#12 file."""


@dataclass
class SigningIdentity:
    signer: object            # pyhanko SimpleSigner
    common_name: str
    subject: str
    certificate_pem: bytes
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    private_key: object = None  # cryptography key: signs audit checkpoints (store/checkpoints.py)

    def sign_bytes(self, data: bytes) -> bytes:
        """ECDSA or RSA PKCS#1 v1.5 over SHA-256, whichever the key is (store.checkpoints verifies both)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding

        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            return self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))
        return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())


# --- passphrases --------------------------------------------------------------------------------------------
def read_passphrase(passphrase_file: str | None = None, passphrase_env: str | None = None) -> str | None:
    """A passphrase from a file (first line, newline stripped) or an environment variable; None if neither given."""
    if passphrase_file and passphrase_env:
        raise SigningError("give either --passphrase-file or --passphrase-env, not both")
    if passphrase_file:
        data = read_bytes(passphrase_file, "passphrase file", SigningError)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SigningError(f"cannot read passphrase file {passphrase_file} (not UTF-8 text)") from None
        lines = text.splitlines()
        return lines[0] if lines else ""
    if passphrase_env:
        value = os.environ.get(passphrase_env)
        if value is None:
            raise SigningError(f"environment variable {passphrase_env} is not set")
        return value
    return None


# --- identities ---------------------------------------------------------------------------------------------
def load_signing_identity(p12_path: str | os.PathLike, passphrase: str | bytes | None) -> SigningIdentity:
    """Open a PKCS#12 key file. Wrong passphrase, foreign files and unusable certificates get one-line messages."""
    from asn1crypto import pkcs12 as asn1_pkcs12
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12
    from pyhanko.keys.internal import (translate_pyca_cryptography_cert_to_asn1,
                                       translate_pyca_cryptography_key_to_asn1)
    from pyhanko.sign.signers import SimpleSigner
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    path = Path(p12_path)
    data = read_bytes(path, "key file", SigningError)
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, passphrase or None)
    except (ValueError, TypeError):
        # cryptography says "invalid password or PKCS12 data": tell the two apart by parsing the structure
        try:
            asn1_pkcs12.Pfx.load(data).native  # noqa: B018 - parse fully
            structure_ok = True
        except Exception:  # noqa: BLE001
            structure_ok = False
        if structure_ok:
            raise WrongPassphraseError(f"wrong passphrase for key file {path.name}") from None
        raise SigningError(f"{path.name} is not a PKCS#12 key file (.p12/.pfx)") from None
    if key is None or cert is None:
        raise SigningError(f"{path.name} holds no private key and certificate pair")
    now = datetime.now(timezone.utc)
    if cert.not_valid_after_utc < now:
        raise SigningError(f"the certificate in {path.name} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    if cert.not_valid_before_utc > now + timedelta(minutes=5):
        raise SigningError(f"the certificate in {path.name} is not valid before "
                           f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC (check this computer's clock)")
    registry = SimpleCertificateStore()
    registry.register_multiple([translate_pyca_cryptography_cert_to_asn1(c) for c in extra or []])
    signer = SimpleSigner(signing_cert=translate_pyca_cryptography_cert_to_asn1(cert),
                          signing_key=translate_pyca_cryptography_key_to_asn1(key), cert_registry=registry)
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return SigningIdentity(
        signer=signer, common_name=str(cns[0].value) if cns else cert.subject.rfc4514_string(),
        subject=cert.subject.rfc4514_string(), certificate_pem=cert.public_bytes(serialization.Encoding.PEM),
        not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(), private_key=key,
    )


def identity_paths(p12_path: str | os.PathLike, overwrite: bool | None = False) -> tuple[Path, Path]:
    """The key file and the certificate beside it (``NAME.p12`` -> ``NAME.pem``), once both may be written
    (``overwrite``: as :func:`~xfr_desktop.core.fileio.check_new_file`)."""
    p12_path = Path(p12_path)
    return tuple(check_new_file(p, overwrite, SigningError) for p in (p12_path, p12_path.with_suffix(".pem")))


def create_identity(name: str, p12_path: str | os.PathLike, passphrase: str, *, organisation: str = "",
                    email: str = "", years: int = 5, overwrite: bool = False) -> tuple[Path, Path]:
    """A self-signed examiner identity: PKCS#12 (key + certificate, passphrase-encrypted) and the certificate as PEM.

    Returns (p12 path, PEM path). The PEM lies next to the key file (``NAME.p12`` -> ``NAME.pem``); it is what
    others pass to ``xfr verify-report --trust``.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    name = (name or "").strip()
    if not name:
        raise SigningError("an identity needs a name (--name)")
    if not passphrase:
        raise SigningError("an empty passphrase is not allowed: the key file would be unprotected")
    if len(passphrase) < MIN_PASSPHRASE:  # the .p12 can be copied and attacked offline at leisure
        raise SigningError(f"the passphrase is too short: use at least {MIN_PASSPHRASE} characters (a few words)")
    p12_path, pem_path = identity_paths(p12_path, overwrite)
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, name)]
    if organisation:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    if email:
        attrs.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, email))
    subject = x509.Name(attrs)
    now = datetime.now(timezone.utc) - timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    p12 = pkcs12.serialize_key_and_certificates(
        name.encode("utf-8"), key, cert, None, serialization.BestAvailableEncryption(passphrase.encode("utf-8")))

    write_atomically(p12_path, p12)
    try:
        os.chmod(p12_path, 0o600)
    except OSError:
        pass
    write_atomically(pem_path, cert.public_bytes(serialization.Encoding.PEM))
    return p12_path, pem_path


# --- the appearance -----------------------------------------------------------------------------------------
def _appearance_pdf(identity: SigningIdentity, signed_at_local: str, size: tuple[float, float],
                    headline: str = "Digitally signed (PAdES, SHA-256)") -> bytes:
    """A one-page PDF the size of the signature box, drawn with the report's embedded font."""

    register_fonts()
    w, h = size
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(w, h), initialFontName=BODY_FONT)
    c.setFillColor(colors.white)
    c.setStrokeColor(colors.HexColor("#1a3b6b"))
    c.rect(0.5, 0.5, w - 1, h - 1, fill=1, stroke=1)
    c.setFillColor(colors.HexColor("#1a3b6b"))
    c.setFont(BOLD_FONT, 8.5)
    c.drawString(6, h - 14, headline)
    c.setFillColor(colors.black)
    c.setFont(BODY_FONT, 7.5)
    c.drawString(6, h - 27, f"by {identity.common_name}"[:70])
    c.drawString(6, h - 39, f"at {signed_at_local}")
    c.setFont(BODY_FONT, 6.3)
    c.drawString(6, h - 51, "time from the signing computer's clock; no timestamp authority")
    c.drawString(6, h - 61, f"certificate SHA-256 {identity.fingerprint_sha256[:32]}…")
    c.showPage()
    c.save()
    return buf.getvalue()


def _static_style(appearance_pdf: bytes):
    from pyhanko.pdf_utils.content import ImportedPdfPage
    from pyhanko.pdf_utils.layout import Margins, SimpleBoxLayoutRule, AxisAlignment
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.stamp import StaticStampStyle

    class ImportedPdfBytes(ImportedPdfPage):
        """pyHanko imports pages from a file name; ours is in memory."""

        def render(self) -> bytes:
            from pyhanko.pdf_utils.layout import BoxConstraints

            w = self._ensure_writer
            xobj = w.import_page_as_xobject(PdfFileReader(io.BytesIO(appearance_pdf)), page_ix=0)
            name = b"/Import" + binascii.hexlify(uuid.uuid4().bytes)
            self.resources.xobject[name.decode("ascii")] = xobj
            x1, y1, x2, y2 = xobj.get_object()["/BBox"]
            self.box = BoxConstraints(width=abs(x1 - x2), height=abs(y1 - y2))
            return name + b" Do"

    return StaticStampStyle(background=ImportedPdfBytes("<memory>"), border_width=0, background_opacity=1.0,
                            background_layout=SimpleBoxLayoutRule(x_align=AxisAlignment.ALIGN_MID,
                                                                  y_align=AxisAlignment.ALIGN_MID,
                                                                  margins=Margins.uniform(0)))


def _align_producer(writer) -> None:
    """pyHanko writes its own name as the XMP producer but appends it to the Info producer; PDF/A wants the two
    equal, so the signing revision's Info dictionary names pyHanko alone (it produced that revision)."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.metadata.model import VENDOR

    old = writer.prev.trailer_view.get("/Info")
    info = generic.DictionaryObject()
    if old is not None:
        for key, value in old.get_object().items():
            info[key] = value
    info[generic.NameObject("/Producer")] = generic.TextStringObject(VENDOR)
    writer.set_info(info)


@dataclass
class SignedReport:
    pdf: bytes
    signer: str
    signed_at: str            # local clock, ISO-8601 with offset
    fingerprint_sha256: str


def _signer_class():
    """pyHanko's signer, kept at PDF 1.7: it would raise the document to PDF 2.0 for an ECDSA P-256 key (ISO 32002),
    while the report is PDF/A-2b, a PDF 1.7-based level; PAdES in PDF 1.7 is declared by the ESIC extension."""
    from pyhanko.sign import signers
    from pyhanko.sign.signers import constants

    class Pdf17Signer(signers.PdfSigner):
        def register_extensions(self, pdf_out, *, md_algorithm):
            pdf_out.ensure_output_version(version=(1, 7))
            pdf_out.register_extension(constants.ESIC_EXTENSION_1)

    return Pdf17Signer


def _sign(pdf: bytes, identity: SigningIdentity, *, field: str, box, certify: bool, reason: str,
          location: str | None, headline: str, reserve_review_box=None) -> SignedReport:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    signed_at = datetime.now().astimezone().replace(microsecond=0)
    meta = signers.PdfSignatureMetadata(
        field_name=field, md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES, reason=reason,
        location=location, name=identity.common_name, certify=certify,
        docmdp_permissions=fields.MDPPerm.FILL_FORMS)   # level 2: later signatures (the reviewer's) stay valid
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        _align_producer(writer)
        if reserve_review_box is not None:   # an empty field for the reviewer, inside the certified revision
            fields.append_signature_field(writer, fields.SigFieldSpec(
                sig_field_name=REVIEW_FIELD, on_page=-1, box=tuple(float(v) for v in reserve_review_box)))
        if box is None:   # the existing field
            box = _field_box(writer, field)
        appearance = _appearance_pdf(identity, signed_at.isoformat(), (box[2] - box[0], box[3] - box[1]), headline)
        spec = None if _has_field(writer, field) else fields.SigFieldSpec(sig_field_name=field, on_page=-1, box=box)
        pdf_signer = _signer_class()(meta, signer=identity.signer, stamp_style=_static_style(appearance),
                                     new_field_spec=spec)
        out = pdf_signer.sign_pdf(writer, output=io.BytesIO())
    except XfrError:
        raise
    except Exception as exc:  # noqa: BLE001 - one line for people
        raise SigningError(f"the report could not be signed ({type(exc).__name__}: {str(exc)[:200]})") from None
    return SignedReport(pdf=out.getvalue(), signer=identity.common_name, signed_at=signed_at.isoformat(),
                        fingerprint_sha256=identity.fingerprint_sha256)


def _has_field(writer, name: str) -> bool:
    from pyhanko.sign.fields import enumerate_sig_fields

    return any(fn == name for fn, _, _ in enumerate_sig_fields(writer.prev, filled_status=None))


def _field_box(writer, name: str) -> tuple[float, float, float, float]:
    from pyhanko.sign.fields import enumerate_sig_fields

    for fn, _, ref in enumerate_sig_fields(writer.prev, filled_status=None):
        if fn == name:
            x1, y1, x2, y2 = (float(v) for v in ref.get_object()["/Rect"])
            return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)
    raise SigningError(f"the report has no {name} signature field")


def sign_pdf(pdf: bytes, identity: SigningIdentity, *, box: tuple[float, float, float, float] | None = None,
             reason: str = "XFR Desktop case report", location: str | None = None,
             review_box: tuple[float, float, float, float] | None = None) -> SignedReport:
    """The examiner's signature (PAdES B-B, SHA-256), visible on the last page inside ``box`` (points). It
    *certifies* the report allowing further signatures (DocMDP level 2), and reserves an empty field at
    ``review_box`` for the reviewer's co-signature (:func:`cosign_pdf`)."""
    return _sign(pdf, identity, field=SIGNATURE_FIELD, box=tuple(float(v) for v in (box or DEFAULT_BOX)),
                 certify=True, reason=reason, location=location, headline="Digitally signed (PAdES, SHA-256)",
                 reserve_review_box=review_box)


def cosign_pdf(pdf: bytes, identity: SigningIdentity, *, reason: str = "ACE-V verification of the case report",
               location: str | None = None) -> SignedReport:
    """The reviewer's signature, added to a signed report as an incremental update in the field the examiner's
    signature reserved; the examiner's signature stays valid."""
    check_cosignable(pdf)
    return _sign(pdf, identity, field=REVIEW_FIELD, box=None, certify=False, reason=reason, location=location,
                 headline="Co-signed by the reviewer (PAdES, SHA-256)")


def check_cosignable(pdf: bytes) -> None:
    """Refuse what no reviewer's key can co-sign: not a PDF, not signed by its examiner, no reviewer's field (an
    older report), or co-signed already."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.fields import enumerate_sig_fields

    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        found = {name: filled for name, filled, _ in enumerate_sig_fields(reader, filled_status=None)}
    except Exception:  # noqa: BLE001
        raise SigningError("the file is not a readable PDF") from None
    if not found.get(SIGNATURE_FIELD):
        raise SigningError("only a report signed by its examiner can be co-signed (xfr report --sign first)")
    if REVIEW_FIELD not in found:
        raise SigningError("this report has no reviewer's signature field (it was signed by an older version)")
    if found[REVIEW_FIELD]:
        raise SigningError("this report is already co-signed by a reviewer")
