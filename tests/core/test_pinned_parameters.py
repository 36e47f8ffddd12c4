"""Protocol and security parameters that reports and published figures depend on, pinned with literal values.

A change to any of these changes what a signed report, a stored result or a figure in docs/ means: it must be a
deliberate change of this file too (with the docs and figures it affects), never a side effect.
"""
from __future__ import annotations

import io

import numpy as np
import pytest


# --- the hiding game (docs/hiding_game.md, the LFW tables) --------------------------------------------------------
def test_hiding_game_protocol():
    from xfr_desktop.core.evaluation.hiding_game import (DEFAULT_STEPS, PAPER_LFW_AUC, HidingGameConfig,
                                                         blur_face, default_blur_sigma)

    assert DEFAULT_STEPS == (0, 10, 20, 30, 40, 50, 60, 70, 80, 90)
    assert default_blur_sigma((150, 150)) == 15.0 and default_blur_sigma((112, 112)) == pytest.approx(11.2)
    cfg = HidingGameConfig()
    assert (cfg.steps, cfg.blur_sigma, cfg.order) == (DEFAULT_STEPS, None, "least")
    # the blur: a (2⌈3σ⌉+1)² Gaussian with reflected borders, identical to OpenCV's with those settings
    img = np.random.default_rng(0).integers(0, 256, (150, 150, 3), dtype=np.uint8)
    import cv2

    expected = cv2.GaussianBlur(img, (91, 91), 15.0, sigmaY=15.0, borderType=cv2.BORDER_REFLECT_101)
    np.testing.assert_array_equal(blur_face(img, 15.0), expected)
    # Table II of the paper (LFW column), the reference our figures are compared with
    assert PAPER_LFW_AUC == {"gradcampp": 88.05, "gradient": 89.68, "stylianou": 88.90, "xface": 90.14,
                             "ours": 90.39}


# --- LFW verification protocol --------------------------------------------------------------------------------------
def test_lfw_view2_protocol_ten_folds_of_300_plus_300(lfw_pairs_file, lfw_dir):
    from xfr_desktop.core.pairs import read_pairs

    pairs = read_pairs(lfw_pairs_file, root=lfw_dir)
    assert len(pairs) == 6000 and pairs.n_folds == 10
    for k in range(10):
        fold = [p for p in pairs if p.fold == k]
        assert sum(p.same for p in fold) == 300 and sum(not p.same for p in fold) == 300


def test_verification_defaults_of_the_cli():
    from xfr_desktop.cli import build_parser

    args = build_parser().parse_args(["evaluate", "verify", "--pairs", "p", "--root", "r", "--out", "o"])
    assert (args.folds, args.seed) == (10, 0)


# --- likelihood ratios (docs/reports.md) ----------------------------------------------------------------------------
def test_verbal_scale_bands_are_the_enfsi_2015_bands():
    from xfr_desktop.core.calibration import VERBAL_SCALE, verbal_equivalent

    assert VERBAL_SCALE == ((1e6, "extremely strong support"), (1e4, "very strong support"),
                            (1e3, "strong support"), (1e2, "moderately strong support"), (1e1, "moderate support"),
                            (1.0, "weak support"))
    # a band starts at its lower bound, symmetric for 1/LR
    assert verbal_equivalent(10.0).startswith("moderate support for the proposition that the two images show "
                                              "the same person")
    assert verbal_equivalent(9.99).startswith("weak support")
    assert verbal_equivalent(1 / 10.0).startswith("moderate support for the proposition that the two images "
                                                  "show two different people")
    assert verbal_equivalent(1e6).startswith("extremely strong") and verbal_equivalent(999_999).startswith("very")


def test_lr_limits_are_the_reference_set_sizes():
    from xfr_desktop.core.calibration import Calibration

    cal = Calibration(slope=100.0, intercept=0.0, n_genuine=250, n_impostor=4000, cllr=0, cllr_min=0, eer=0,
                      score_min=-1, score_max=1)
    assert cal.lr(1.0) == pytest.approx(4000.0) and cal.lr(-1.0) == pytest.approx(1 / 250)
    assert cal.lr(0.0) == 1.0


# --- hashes and signatures ------------------------------------------------------------------------------------------
def test_content_addresses_and_audit_links_are_sha256(tmp_path):
    import hashlib

    from PIL import Image

    from xfr_desktop.store import open_store
    from xfr_desktop.store.audit import GENESIS_HASH, entry_hash

    assert GENESIS_HASH == "0" * 64
    assert entry_hash("0" * 64, "t", "a", "x", None, None, None, "{}") == hashlib.sha256(
        ('0' * 64 + '{"action":"x","actor":"a","case_id":null,"details":"{}","object_id":null,'
         '"object_type":null,"time":"t"}').encode()).hexdigest()
    Image.fromarray(np.full((4, 4, 3), 9, np.uint8)).save(tmp_path / "a.png")
    with open_store(tmp_path / "data") as store:
        sha = store.import_image(tmp_path / "a.png")
    assert sha == hashlib.sha256((tmp_path / "a.png").read_bytes()).hexdigest()


def test_report_signature_is_pades_sha256_with_a_p256_key(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from pyhanko.pdf_utils.reader import PdfFileReader
    from reportlab.pdfgen import canvas

    from xfr_desktop.report.signing import (MIN_PASSPHRASE, create_identity, load_signing_identity,
                                            sign_pdf)

    assert MIN_PASSPHRASE == 8
    p12, _pem = create_identity("Pinned Examiner", tmp_path / "pin.p12", "pinned passphrase")
    identity = load_signing_identity(p12, "pinned passphrase")
    assert isinstance(identity.private_key, ec.EllipticCurvePrivateKey)
    assert identity.private_key.curve.name == "secp256r1"
    cert = x509.load_pem_x509_certificate(identity.certificate_pem)
    assert cert.signature_hash_algorithm.name == "sha256"
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 5 * 365
    critical = {ext.oid._name: ext.critical for ext in cert.extensions}
    assert critical == {"basicConstraints": True, "keyUsage": True, "subjectKeyIdentifier": False}
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment and not usage.key_cert_sign
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.drawString(72, 720, "pinned")
    c.save()
    signed = sign_pdf(buf.getvalue(), identity).pdf
    (sig,) = PdfFileReader(io.BytesIO(signed)).embedded_signatures
    assert sig.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"          # PAdES baseline
    assert sig.md_algorithm == "sha256"
