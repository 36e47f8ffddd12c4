"""Issue 25, round 3: the leftovers of round 2. A 49-megapixel photo is decoded reduced for detection and
alignment, with the face found in the original's pixels; a registry card is printed only when a signed
checkpoint covers the entry that binds it; a calibration is used only for exactly the model that made the result."""
from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from test_integrity_round2 import RSS_LIMIT_MB, append_entry, report_text_of, sql, xfr  # noqa: F401
from test_integrity_round2 import FORGED_CARD, analysed, key  # noqa: F401  (fixtures)
from xfr_desktop.store import open_store

BIG_SIDE, DETECTOR_SIDE = 7000, 1024     # 49 MP; the side the detector searches a square photo at


# --- 1. memory on huge photos ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def huge_photo(lfw_dir, tmp_path_factory):
    """A real LFW face enlarged to 7000x7000 (49 MP) and the same face at the detector's own size (1024x1024)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("huge")
    face = Image.open(lfw_dir / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg").convert("RGB")
    face.resize((BIG_SIDE, BIG_SIDE), Image.BICUBIC).save(folder / "big.jpg", quality=90)
    face.resize((DETECTOR_SIDE, DETECTOR_SIDE), Image.BICUBIC).save(folder / "reference.jpg", quality=90)
    return folder / "big.jpg", folder / "reference.jpg"


def test_a_huge_jpeg_is_decoded_reduced_and_hashed_whole(huge_photo):
    import hashlib

    from xfr_desktop.core.imageio import image_sha256, load_photo

    photo = load_photo(huge_photo[0])
    assert photo.scale == 2 and photo.pixels.shape == (3500, 3500, 3) and photo.size == (BIG_SIDE, BIG_SIDE)
    assert image_sha256(huge_photo[0]) == hashlib.sha256(huge_photo[0].read_bytes()).hexdigest()


def test_explain_on_a_49_mp_photo_stays_in_bounded_memory_and_boxes_the_face_in_its_pixels(huge_photo, tmp_path):
    """`xfr explain` (no trust check: its own memory is not the photo's) on a 49 MP JPEG: peak resident memory
    under 500 MB (it was 852 MB), and photo A's face box, in A's own pixels, is the box found on the same face at
    1024x1024 (photo B, decoded whole) times 7000/1024, within 3 % of the face's size."""
    from test_hostile_inputs import measured_xfr

    out = tmp_path / "o"
    rc, err, peak = measured_xfr("explain", *huge_photo, "--out", out, "--no-trust-check")
    assert rc == 0, err
    assert peak < RSS_LIMIT_MB, peak
    boxes = json.loads((out / "result.json").read_text())["face_box"]
    big, reference = np.array(boxes["a"]), np.array(boxes["b"]) * BIG_SIDE / DETECTOR_SIDE
    assert np.abs(big - reference).max() < 0.03 * reference[2:].max(), (big, reference)


# --- 2. a registry card re-bound after the last checkpoint -----------------------------------------------------
def registered_card(data, tmp_path) -> None:
    """The app registers the case's model (sha256 ee..ee) with its card, as it does for a model it trained."""
    with open_store(data) as store:
        store.register_model("tiny", tmp_path / "tiny.pt", sha256="ee" * 32, card=FORGED_CARD)


def test_a_registry_card_no_checkpoint_covers_is_shown_with_that_said(analysed, tmp_path):
    data, case = analysed
    registered_card(data, tmp_path)
    text = report_text_of(data, case, tmp_path)
    assert "Recognition accuracy (LFW accuracy): 99.99 %." in text
    assert "but no signed checkpoint covers that entry: only the unsigned chain vouches for the card" in text


def test_a_registry_card_re_bound_after_the_last_checkpoint_is_not_shown(analysed, key, tmp_path):
    """The attack: the card edited with sqlite3 and re-bound by a correctly chained `model.registered` entry
    appended to the system chain after the checkpoint that signed the app's registration."""
    import hashlib

    data, case = analysed
    registered_card(data, tmp_path)
    assert xfr(data, "audit", "checkpoint", "--sign", str(key[0]), "--passphrase-env", "XFR_PW") == 0
    text = report_text_of(data, case, tmp_path)
    assert "Recognition accuracy (LFW accuracy): 99.99 %." in text and "no signed checkpoint covers" not in text
    forged = FORGED_CARD.replace("99.99", "99.98")
    sql(data, f"UPDATE models SET card = '{forged}'")
    append_entry(data, None, "model.registered", "model", "ee" * 32,
                 {"name": "tiny", "sha256": "ee" * 32, "card_sha256": hashlib.sha256(forged.encode()).hexdigest()},
                 actor="Jane Examiner")
    text = report_text_of(data, case, tmp_path)
    assert "99.98" not in text and "99.99" not in text, text
    assert "was registered again after the last signed checkpoint" in text and "recorded another card" in text


# --- 3. a calibration is for exactly the result's model --------------------------------------------------------
@pytest.mark.parametrize("recorded", [None, "ee" * 32], ids=["no model hash", "the model's hash"])
def test_a_calibration_planted_beside_a_registry_path_is_not_used(analysed, tmp_path, recorded):
    """A calibration file beside the path a `models` row names (the row inserted with sqlite3), recording no
    model hash or even the result's own: a registry row's path never finds a calibration, so the report gives
    no likelihood ratio rather than one from a planted file."""
    from xfr_desktop.core.calibration import fit_calibration

    data, case = analysed
    rng = np.random.default_rng(0)
    cal = fit_calibration(rng.normal(0.7, 0.1, 200), rng.normal(0.1, 0.1, 200), model_sha256=recorded)
    cal.save(tmp_path / "planted.calibration.json")
    with sqlite3.connect(data / "xfr.sqlite") as con:
        con.execute("INSERT INTO models (name, path, sha256, card, active, registered_at) VALUES (?, ?, ?, ?, 0, ?)",
                    ("tiny", str(tmp_path / "planted.pt"), "ee" * 32, None, "2030-01-01"))
    text = report_text_of(data, case, tmp_path)
    assert "No calibration is stored for this model, so no likelihood ratio is reported." in text
    assert "LR = P(score | same person)" not in text


def test_a_bundled_calibration_is_used_only_for_its_own_model(monkeypatch):
    """The bundled model's own calibration for its SHA-256; nothing for another hash, nor for no hash."""
    from xfr_desktop.core.calibration import load_calibration_for
    from xfr_desktop.core.fileio import file_sha256
    from xfr_desktop.core.model import default_model_path
    from xfr_desktop.report.report_data import _find_calibration

    sha = file_sha256(default_model_path())
    assert _find_calibration(None, sha).model_sha256 == sha == load_calibration_for(default_model_path()).model_sha256
    assert _find_calibration(None, "ee" * 32) is None and _find_calibration(None, "") is None
