"""The examiner's workflow in the desktop app (issue 14): colour bars, result counts, the channel table's share,
hints for empty maps and failed comparisons, face numbers (pytest-qt, offscreen)."""
from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("torch")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QImage, QPainter  # noqa: E402
from tests.gui.test_gui_app import _analyse, _new_case, _open_window, app_window, pair, recorder, tiny_model  # noqa: E402,F401

from xfr_desktop.core.map_style import lut  # noqa: E402
from xfr_desktop.gui.channels import COL_SHARE  # noqa: E402

SUPERSCRIPTS = str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")


def _drawn_colour_bar(views) -> tuple[list[str], str]:
    """The tick labels the colour bar's axis really paints, and its caption."""
    axis = views.colorbar.axis
    image = QImage(200, 600, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        _, _, texts = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [t[2] for t in texts], axis.labelText


def test_colour_bar_labels_cover_the_data_range_in_one_format(qtbot, app_window, pair):
    w = app_window
    _new_case(w)
    _analyse(qtbot, w, *pair)
    qtbot.waitUntil(lambda: w.record is not None, timeout=5000)
    for mode in ("S", "S_pos", "H"):
        w.state.set_display(mode=mode)
        peak = max(float(np.abs(getattr(getattr(w.result, s), mode)).max()) for s in "ab")
        labels, caption = _drawn_colour_bar(w.views)
        power = re.search(r"×10([⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+)", caption)
        multiplier = 10.0 ** int(power.group(1).translate(SUPERSCRIPTS)) if power else 1.0
        values = [float(t.replace("−", "-")) * multiplier for t in labels]
        assert max(values) == pytest.approx(peak, rel=0.05), (mode, labels, caption, peak)
        if mode == "H":
            assert min(values) == pytest.approx(-peak, rel=0.05)
        decimals = {len(t.split(".")[1]) if "." in t else 0 for t in labels}
        assert len(decimals) == 1 and not any("e" in t for t in labels), labels   # one format
        assert "cosine score per pixel" in caption     # the unit and meaning of the scale
        # the overlay's colours are the kind's, as in the CLI PNGs and the report (no per-widget colour map)
        np.testing.assert_array_equal(w.views.heat["a"].lut[:, :3], lut(mode))


def test_empty_channel_overlay_says_why_and_shows_no_scale(qtbot, app_window, pair):
    w = app_window
    _new_case(w)
    _analyse(qtbot, w, *pair)
    qtbot.waitUntil(lambda: w.record is not None, timeout=5000)
    assert w.views.colorbar.isVisible() and not w.views.map_hint.isVisible()
    w.controls.map_combo.setCurrentIndex(w.controls.map_combo.findData("channel"))  # no channel chosen yet
    assert not w.views.colorbar.isVisible()          # no 0–1 scale for a map that is not there
    assert w.views.map_hint.isVisible() and "Select a channel" in w.views.map_hint.text()
    w.channels.table.selectRow(0)
    assert w.state.display.channel is not None
    assert w.views.colorbar.isVisible() and not w.views.map_hint.isVisible()


def test_saving_a_result_updates_the_comparisons_result_count(qtbot, app_window, pair):
    w = app_window
    _new_case(w)
    outcome = _analyse(qtbot, w, *pair)
    qtbot.waitUntil(lambda: w.record is not None, timeout=5000)
    item = w.cases.comparison_list.currentItem()
    assert "1 result" in item.text() and "2 results" not in item.text()
    w.controls.threshold_spin.setValue(0.25)
    w.save_as_new_result()
    assert len(w.store.list_results(outcome.job.comparison_id)) == 2
    assert "2 results" in w.cases.comparison_list.currentItem().text()
    assert w.record.threshold == pytest.approx(0.25)


def test_channel_share_column_is_what_its_name_says(qtbot, app_window, pair):
    w = app_window
    _new_case(w)
    _analyse(qtbot, w, *pair)
    qtbot.waitUntil(lambda: w.record is not None, timeout=5000)
    model = w.channels.model
    header = model.headerData(COL_SHARE, Qt.Orientation.Horizontal)
    assert "ΣH" not in header and "Σ|wᵢ|" in header
    r = w.result
    weights = np.where(r.selected, np.asarray(r.products, float) - r.threshold / len(r.products), 0.0)
    share = np.abs(weights) / np.abs(weights).sum()    # independent of the table's own arithmetic
    for row in range(model.rowCount()):
        assert model.data(model.index(row, COL_SHARE)) == f"{100 * share[row]:.1f} %"


def test_face_numbers_are_one_based(qtbot, app_window, pair):
    w = app_window
    _new_case(w)
    _analyse(qtbot, w, *pair)
    qtbot.waitUntil(lambda: w.record is not None, timeout=5000)
    from xfr_desktop.gui.control_panel import face_numbers

    assert face_numbers({"face_index_a": 0, "face_index_b": 1}) == "A: face 1 · B: face 2"
    assert w.controls.faces_label.text() == "pre-aligned crops"


def test_failed_comparison_hint_does_not_promise_a_rerun(qtbot, app_window, pair, recorder):
    w = app_window
    _new_case(w)
    with qtbot.waitSignal(w.analysis_failed, timeout=60_000):
        w.import_pair(*pair, prealigned=False)    # synthetic patterns: no face is found
    comp = w.store.get_comparison(w.comparison_id)
    assert comp.status == "failed"
    hint = w.views.empty_label.text()
    assert "Remove comparison" in hint and "same outcome" in hint


# --- item 6: removal with a reason, the examiner's name, signing keys and verification ----------------------
def test_failed_comparison_is_removed_with_a_reason(qtbot, app_window, pair, recorder):
    from xfr_desktop.gui.examination_dialogs import RemoveComparisonDialog

    w = app_window
    _new_case(w)
    with qtbot.waitSignal(w.analysis_failed, timeout=60_000):
        w.import_pair(*pair, prealigned=False)
    comp_id = w.comparison_id
    assert w.act_remove.isEnabled()
    dialog = w.remove_comparison()
    assert isinstance(dialog, RemoveComparisonDialog)
    dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()     # no reason: refused, kept open
    assert "reason" in dialog.status.text() and not w.store.get_comparison(comp_id).removed
    dialog.reason_edit.setPlainText("no face in photo A")
    dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
    comp = w.store.get_comparison(comp_id)
    assert comp.removed and comp.removed_reason == "no face in photo A"
    assert "removed: no face in photo A" in w.cases.comparison_list.currentItem().text()
    assert not w.act_run.isEnabled() and not w.act_remove.isEnabled()
    assert "removed" in w.views.empty_label.text()
    assert [e.action for e in w.store.list_audit(comp.case_id)][-1] == "comparison.removed"


def test_examiner_name_from_preferences_is_used_for_audited_actions(qtbot, app_window, recorder):
    w = app_window
    assert "not set" in w.examiner_label.text()
    dialog = w.show_preferences()
    dialog.name_edit.setText("Dr. Jane Roe")
    dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
    assert w.store.examiner_name() == "Dr. Jane Roe" and "Dr. Jane Roe" in w.examiner_label.text()
    case_id = _new_case(w)                      # the case's own examiner field says "tester"
    w.controls.conclusion_text.setPlainText("Moderate support for different persons.")
    w.controls.save_conclusion()
    assert w.store.latest_conclusion(case_id).author == "Dr. Jane Roe"
    actors = {e.actor for e in w.store.list_audit(case_id)}
    assert actors == {"Dr. Jane Roe"}


def test_key_creation_and_report_verification_dialogs(qtbot, tmp_path):
    from xfr_desktop.gui.signing_dialogs import KeyCreationDialog, VerifyReportDialog
    from xfr_desktop.report.signing import load_signing_identity, sign_pdf

    dialog = KeyCreationDialog(None, name="Ann Examiner", folder=str(tmp_path))
    qtbot.addWidget(dialog)
    dialog.pass_edit.setText("long enough phrase")
    dialog.confirm_edit.setText("another phrase")
    dialog.run()
    assert "differ" in dialog.status.text() and dialog.created is None
    dialog.pass_edit.setText("long enough phrase")
    dialog.confirm_edit.setText("long enough phrase")
    dialog.run()
    p12, pem = dialog.created
    assert load_signing_identity(p12, "long enough phrase").common_name == "Ann Examiner"
    assert dialog.pass_edit.text() == "" and str(pem) in dialog.status.text()

    from reportlab.pdfgen import canvas

    plain = tmp_path / "plain.pdf"
    c = canvas.Canvas(str(plain))
    c.drawString(72, 720, "report")
    c.save()
    signed = tmp_path / "signed.pdf"
    signed.write_bytes(sign_pdf(plain.read_bytes(), load_signing_identity(p12, "long enough phrase")).pdf)
    verify = VerifyReportDialog(None, report=str(signed), trust=str(pem))
    qtbot.addWidget(verify)
    verify.run()
    assert verify.result.ok and verify.table.rowCount() == 1
    assert "Ann Examiner" in verify.table.item(0, 0).text()
    tampered = tmp_path / "tampered.pdf"
    data = bytearray(signed.read_bytes())
    data[data.find(b"report")] = ord("R")
    tampered.write_bytes(bytes(data))
    verify.report_edit.setText(str(tampered))
    verify.run()
    assert not verify.result.ok and "color" in verify.status.styleSheet()


# --- items 2-5: the examiner's own examination ----------------------------------------------------------------
def test_morphology_quality_review_and_propositions_are_recorded(qtbot, app_window, pair):
    from PIL import Image

    from xfr_desktop.core.morphology import FISWG_FEATURES

    w = app_window
    case_id = _new_case(w)
    _analyse(qtbot, w, *pair)
    qtbot.waitUntil(lambda: w.record is not None, timeout=5000)
    panel, comp_id = w.examination, w.comparison_id
    # FISWG features: a choice and a note are stored (audited) and shown back
    row = [k for k, _ in FISWG_FEATURES].index("nose")
    box = panel.value_boxes["nose"]
    box.setCurrentIndex(box.findData("dissimilar"))
    panel.features.item(row, 2).setText("wider alar base in B")
    stored = w.store.feature_assessments(comp_id)["nose"]
    assert (stored.value, stored.note) == ("dissimilar", "wider alar base in B")
    assert "Dissimilar: 1" in panel.feature_summary.text()
    assert "feature.assessed" in [e.action for e in w.store.list_audit(case_id)]
    # photo quality: the size of each photo as the file says (PIL), not as the panel computed it
    for col, path in enumerate(pair):
        width, height = Image.open(path).size
        assert panel.quality.item(0, col).text() == f"{width} × {height} px"
    # a later measurement (an oblong photo with small eyes and GPS) is what the panel shows, with its warning
    w.store.record_image_quality(comp_id, "b", {"width_px": 640, "height_px": 480, "inter_eye_px": 21.4,
                                                "exif": {"make": "Canon", "gps_present": True},
                                                "warnings": ["inter-eye distance 21 px is below 30 px"]})
    panel.show_quality()
    assert panel.quality.item(0, 1).text() == "640 × 480 px" and panel.quality.item(3, 1).text() == "21 px"
    assert panel.quality.item(panel.quality.rowCount() - 1, 1).text() == "present"
    assert "Photo B: inter-eye distance 21 px is below 30 px" in panel.quality_warnings.text()
    # review: the case's examiner cannot verify their own work; a second examiner can
    panel.reviewer_edit.setText("tester")
    panel.record_review()
    assert "Not recorded" in panel.review_status.text() and not w.store.list_reviews(comp_id)
    panel.reviewer_edit.setText("Second Examiner")
    panel.verdict_combo.setCurrentIndex(panel.verdict_combo.findData("disagree"))
    panel.review_note.setPlainText("nose assessment not reproducible")
    panel.record_review()
    (review,) = w.store.list_reviews(comp_id)
    assert (review.reviewer, review.verdict) == ("Second Examiner", "disagree")
    assert "DISAGREES" in panel.reviews.item(0).text()
    # propositions of the case
    panel.hp_edit.setPlainText("Hp: the suspect is the person in the CCTV still.")
    panel.save_propositions()
    assert w.store.get_case(case_id).proposition_prosecution == "Hp: the suspect is the person in the CCTV still."


def test_compare_window_wipe_blend_and_annotations(qtbot, app_window, pair):
    from xfr_desktop.gui.compare_window import wipe

    w = app_window
    _new_case(w)
    _analyse(qtbot, w, *pair)
    qtbot.waitUntil(lambda: w.record is not None, timeout=5000)
    win = w.open_compare()
    qtbot.addWidget(win)
    a, b = w.result.a.aligned, w.result.b.aligned
    win.source_combo.setCurrentIndex(win.source_combo.findData("aligned"))
    win.mode_combo.setCurrentIndex(win.mode_combo.findData("wipe"))
    win.slider.setValue(30)
    shown = win.items["b"].image
    x = round(0.3 * a.shape[1])
    np.testing.assert_array_equal(shown[:, :x], a[:, :x])
    np.testing.assert_array_equal(shown[:, x:], b[:, x:])
    np.testing.assert_array_equal(wipe(a, b, 0.0), b)
    win.mode_combo.setCurrentIndex(win.mode_combo.findData("blend"))
    win.slider.setValue(25)
    assert win.items["b"].opacity() == pytest.approx(0.25)
    # annotations on the full-resolution originals: a point, then a rectangle from two corners
    win.mode_combo.setCurrentIndex(win.mode_combo.findData("side"))
    win.source_combo.setCurrentIndex(win.source_combo.findData("original"))
    win.label_edit.setText("mole")
    win.annotate("a", 30.5, 40.0)
    win.tool_combo.setCurrentIndex(1)
    win.annotate("b", 50, 60)
    assert len(w.store.list_annotations(w.comparison_id)) == 1        # one corner is not a rectangle yet
    win.annotate("b", 20, 90)
    point, rect = w.store.list_annotations(w.comparison_id)
    assert (point.side, point.kind, point.x, point.y, point.label) == ("a", "point", 30.5, 40.0, "mole")
    assert (rect.side, rect.kind, rect.x, rect.y, rect.width, rect.height) == ("b", "rect", 20, 60, 30, 30)
    assert win.annotations.count() == 2
    win.annotations.setCurrentRow(0)
    win.remove_selected()
    assert [r.id for r in w.store.list_annotations(w.comparison_id)] == [rect.id]


def test_originals_are_blended_in_photo_a_frame():
    from xfr_desktop.gui.compare_window import PairImages, b_in_a_frame

    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (50, 60, 3), dtype=np.uint8)
    photo_a = np.kron(small, np.ones((4, 4, 1), np.uint8))           # 200 × 240
    photo_b = np.kron(small, np.ones((8, 8, 1), np.uint8))           # the same scene at twice the size
    images = PairImages(photos={"a": photo_a, "b": photo_b}, aligned={},
                        transforms={"a": np.array([[0.5, 0, 0], [0, 0.5, 0]]),    # both map onto one aligned grid
                                    "b": np.array([[0.25, 0, 0], [0, 0.25, 0]])})
    a, b_warped = b_in_a_frame(images, "original")
    assert b_warped.shape == photo_a.shape
    inner = (slice(8, -8), slice(8, -8))
    assert np.mean(np.abs(b_warped[inner].astype(int) - photo_a[inner].astype(int))) < 2


def test_examiner_chooses_the_result_the_report_uses(qtbot, app_window, pair):
    w = app_window
    _new_case(w)
    outcome = _analyse(qtbot, w, *pair)
    qtbot.waitUntil(lambda: w.record is not None, timeout=5000)
    first = outcome.record.id
    assert w.cases.report_check.isChecked() and "in report" in w.cases.result_combo.currentText()
    w.controls.topk_spin.setValue(3)                     # an exploratory top-3 result, saved after the analysis
    w.save_as_new_result()
    explored = w.record.id
    assert explored != first and not w.cases.report_check.isChecked()   # the default stays the full analysis
    assert w.store.report_result(w.comparison_id, include_blobs=False).id == first
    w.cases.report_check.click()                         # the examiner picks the shown (top-3) result
    assert w.store.report_result(w.comparison_id, include_blobs=False).id == explored
    assert w.cases.report_check.isChecked() and "in report" in w.cases.result_combo.currentText()
    w.cases.report_check.click()                         # and back to the default
    assert w.store.report_result(w.comparison_id, include_blobs=False).id == first


def test_new_case_dialog_suggests_the_examiner_name_from_the_preferences(qtbot, tmp_path, tiny_model, monkeypatch):
    """File ▸ New case… fills in the examiner's name from Edit ▸ Preferences… (kept in the data folder's database),
    and the operating-system login only while none is set."""
    import getpass

    from xfr_desktop.gui import dialogs
    from xfr_desktop.gui.dialogs import NewCaseDialog

    monkeypatch.setattr(getpass, "getuser", lambda: "os-login")
    shown: list[str] = []

    def answer(dialog) -> None:
        if isinstance(dialog, NewCaseDialog):
            shown.append(dialog.examiner.text())
            dialog.number.setText(f"T-{len(shown)}")
            dialog.accept()

    dialogs.add_dialog_hook(answer)
    try:
        for step in ("before", "set", "reopened"):
            window, store = _open_window(qtbot, tmp_path / "data", tiny_model)
            if step == "set":
                prefs = window.show_preferences()
                prefs.name_edit.setText("Dr. Jane Roe")
                prefs.buttons.button(prefs.buttons.StandardButton.Ok).click()
            window.act_new_case.trigger()
            # the answered dialog deletes itself first (closing the window in the same turn crashes PySide)
            qtbot.waitUntil(lambda: window.findChild(NewCaseDialog) is None)
            cases = {c.number: c.examiner for c in store.list_cases()}
            window.close()
            store.close()
    finally:
        dialogs.remove_dialog_hook(answer)
    assert shown == ["os-login", "Dr. Jane Roe", "Dr. Jane Roe"]
    assert cases == {"T-1": "os-login", "T-2": "Dr. Jane Roe", "T-3": "Dr. Jane Roe"}
