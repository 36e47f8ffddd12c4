"""Issue 25, round 3: the leftovers of round 2. A 50-megapixel photo is decoded reduced for detection, alignment
and display, with the face found, drawn and annotated in the original's pixels; a registry card is printed only
when a signed checkpoint covers the entry that binds it; a calibration is used only for exactly the model that
made the result; the schema upgrade's adoption is stated in the report.

One analysed store per module, copied for each test that changes it; the command line runs in-process except
where peak memory is measured."""
from __future__ import annotations

import io
import json
import shutil
import sqlite3
from types import SimpleNamespace

import numpy as np
import pytest

from tests.security.test_forged_bindings_and_hostile_files import RSS_LIMIT_MB, append_entry, report_text_of, sql, xfr  # noqa: F401
from tests.security.test_forged_bindings_and_hostile_files import FORGED_CARD, key  # noqa: F401  (fixtures)
from xfr_desktop.store import open_store

# 50.4 MP: above the 16 MP detection works at and the 50 MP a photo is shown at, so both decode it at 1/2
BIG_SIDE, REFERENCE_SIDE = 7100, 1024   # the reference: the same face at the detector's own size, decoded whole
SHOWN_SIDE = BIG_SIDE // 2


@pytest.fixture(scope="module")
def model():
    from tests.conftest import make_tiny_model, make_tiny_spec

    return make_tiny_model(make_tiny_spec())


def copied(source, tmp_path):
    """A copy of a module's data folder for one test (the original stays as the fixture made it)."""
    shutil.copytree(source, tmp_path / "data")
    return tmp_path / "data"


# --- 1. huge photos: memory, and the face where it is ------------------------------------------------------------
@pytest.fixture(scope="module")
def huge_photo(lfw_dir, tmp_path_factory):
    """A real LFW face enlarged to 7100x7100 (50.4 MP) and the same face at 1024x1024."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("huge")
    face = Image.open(lfw_dir / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg").convert("RGB")
    face.resize((BIG_SIDE, BIG_SIDE), Image.BICUBIC).save(folder / "big.jpg", quality=90)
    face.resize((REFERENCE_SIDE, REFERENCE_SIDE), Image.BICUBIC).save(folder / "reference.jpg", quality=90)
    return folder / "big.jpg", folder / "reference.jpg"


def test_a_huge_jpeg_is_decoded_reduced_and_hashed_whole(huge_photo):
    import hashlib

    from xfr_desktop.core.imageio import image_sha256, load_photo

    photo = load_photo(huge_photo[0])
    assert photo.scale == 2 and photo.pixels.shape == (SHOWN_SIDE, SHOWN_SIDE, 3) and photo.size == (BIG_SIDE,) * 2
    assert image_sha256(huge_photo[0]) == hashlib.sha256(huge_photo[0].read_bytes()).hexdigest()


def near(found, expected, tolerance=0.03) -> bool:
    """Boxes (x, y, w, h) that agree within ``tolerance`` of the expected face's size."""
    found, expected = np.asarray(found, float), np.asarray(expected, float)
    return bool(np.abs(found - expected).max() < tolerance * expected[2:].max())


def test_explain_on_a_50_mp_photo_stays_in_bounded_memory_and_boxes_the_face_in_its_pixels(huge_photo, tmp_path):
    """`xfr explain` (no trust check: its own memory is not the photo's) on a 50 MP JPEG, in a child process of
    its own: peak resident memory under 500 MB (on a 49 MP one it was 852 MB), and photo A's face box, in A's own
    pixels, is the box found on the same face at 1024x1024 (photo B, decoded whole) times 7100/1024, within 3 %
    of the face's size."""
    from tests.security.test_hostile_inputs import measured_xfr

    out = tmp_path / "o"
    rc, err, peak = measured_xfr("explain", *huge_photo, "--out", out, "--no-trust-check")
    assert rc == 0, err
    assert peak < RSS_LIMIT_MB, peak
    boxes = json.loads((out / "result.json").read_text())["face_box"]
    big, reference = np.array(boxes["a"]), np.array(boxes["b"]) * BIG_SIDE / REFERENCE_SIDE
    assert near(big, reference), (big, reference)


@pytest.fixture(scope="module")
def huge_case(huge_photo, model, tmp_path_factory):
    """A case comparing the 50 MP photo (A) with the 1024x1024 one (B), analysed in a real store (detection,
    alignment; no trust check): the data folder, the case, the result id and B's face box in B's pixels."""
    from xfr_desktop.analysis import analyse_comparison, plan_analysis

    data = tmp_path_factory.mktemp("huge_case") / "data"
    with open_store(data) as store:
        case = store.create_case("2026-0500", title="Huge photo", examiner="Ann Examiner")
        sha_a, sha_b = (store.import_image(p, case_id=case.id) for p in huge_photo)
        comp = store.add_comparison(case.id, sha_a, sha_b)
        outcome = analyse_comparison(store, plan_analysis(store, comp.id, trust_jitter=None), model)
    return data, case, outcome.record.id, np.asarray(outcome.faces_extra["b"]["box"], float)


def green_boxes(pdf: bytes) -> list[np.ndarray]:
    """(x, y, w, h) of the face box drawn (pure green, 0/200/0) on each photo in the report, in its pixels."""
    import pypdf

    boxes = []
    for page in pypdf.PdfReader(io.BytesIO(pdf)).pages:
        for image in page.images:
            rgb = np.asarray(image.image.convert("RGB"))
            ys, xs = np.nonzero(np.all(rgb == (0, 200, 0), axis=2))
            if xs.size > 100:
                boxes.append(np.array([xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()], float))
    return boxes


def test_the_report_draws_the_face_box_on_the_face_of_a_photo_decoded_reduced(huge_case, tmp_path):
    """Both photos are printed 480 px wide; the box drawn on A (decoded at 1/2 for display, its box stored in
    its own 7100 px) lands where B's box (decoded whole) lands: B's stored box times 480/1024, within 3 %."""
    data, case, _, box_b = huge_case
    out = tmp_path / "huge.pdf"
    assert xfr(data, "report", "--case", case.number, "--out", str(out)) == 0
    drawn = green_boxes(out.read_bytes())
    expected = box_b * 480 / REFERENCE_SIDE
    assert len(drawn) == 2 and all(near(box, expected) for box in drawn), (drawn, expected)


def test_the_app_draws_and_annotates_a_photo_shown_reduced_in_the_originals_pixels(huge_case, qtbot, tmp_path):
    """The app shows A at 3550 px: its face box is drawn where B's face is (times 3550/1024), the compare window
    names A's own size and the reduction, and a click at the face's centre on the shown photo is stored as an
    annotation at that centre in A's own 7100 px."""
    from xfr_desktop.gui.main_window import MainWindow

    source, _, result_id, box_b = huge_case
    store = open_store(copied(source, tmp_path))
    window = MainWindow(store)
    qtbot.addWidget(window)
    try:
        window.show_record(store.get_result(result_id))
        assert window.views.sources["a"].photo.shape == (SHOWN_SIDE, SHOWN_SIDE, 3)
        rect = window.views.photo_overlays["a"]["box"].rect()
        drawn, expected = np.array([rect.x(), rect.y(), rect.width(), rect.height()]), box_b * SHOWN_SIDE / 1024
        assert near(drawn, expected), (drawn, expected)
        centre = expected[:2] + expected[2:] / 2
        compare = window.open_compare()
        assert compare.titles["a"] == f"A — {BIG_SIDE} × {BIG_SIDE} px, shown at 1/2 ({SHOWN_SIDE} × {SHOWN_SIDE})"
        compare.annotate("a", *centre)
        [note] = store.list_annotations(store.get_result(result_id).comparison_id)
        assert np.allclose((note.x, note.y), centre * 2), (note, centre)
    finally:
        window.close()
        store.close()


# --- 2. a registry card re-bound after the last checkpoint -----------------------------------------------------
@pytest.fixture(scope="module")
def stored_case(model, tmp_path_factory):
    """The analysed case of test_report (two photos, a result, a conclusion), made once per module."""
    from tests.report.test_report import analysed_case

    folder = tmp_path_factory.mktemp("stored_case")
    with open_store(folder / "data") as store:
        case = analysed_case(store, model, folder)[0]
    return folder / "data", case


@pytest.fixture
def analysed(stored_case, tmp_path):
    """A copy of the analysed case for one test: (data folder, case)."""
    return copied(stored_case[0], tmp_path), stored_case[1]


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
    from xfr_desktop.report.calibration_lookup import find_calibration

    sha = file_sha256(default_model_path())
    assert find_calibration(sha).model_sha256 == sha == load_calibration_for(default_model_path()).model_sha256
    assert find_calibration("ee" * 32) is None and find_calibration("") is None


# --- 4. the schema upgrade's adoption, in the report -----------------------------------------------------------
def test_the_upgrades_adoption_is_stated_in_the_report(model, tmp_path):
    """A schema-1 database (test_store_migrations) whose result the old version saved readable: opening it
    upgrades it and adopts its rows by `integrity.adopted` entries; the report's audit statement says so in
    `audit verify`'s words and its audit trail lists the entry."""
    from tests.report.test_report import faces
    from tests.store.test_store_migrations import make_v1_database
    from xfr_desktop.core.explain import explain_pair
    from xfr_desktop.core.serialize import result_payload

    data = tmp_path / "data"
    make_v1_database(data / "xfr.sqlite")
    saved = result_payload(explain_pair(model, *faces(0)), model_sha256="m" * 64, model_name="old model")
    with sqlite3.connect(data / "xfr.sqlite") as con:
        con.execute("UPDATE results SET parameters = ?, maps_npz = ?, residuals_npz = ?",
                    (json.dumps(saved["parameters"]), saved["maps"], saved["residuals"]))
    with open_store(data):
        pass
    text = report_text_of(data, SimpleNamespace(number="OLD-1"), tmp_path)
    assert ("rows older than schema 3 adopted at the schema upgrade by entry #3, #4 (attested as they were then, "
            "not as first saved)") in text, text
    assert "xfr-upgrade · integrity.adopted" in text, text
