"""Tools ▸ Verify signed report… and Tools ▸ Co-sign report… (issue 14): verification without a trusted
certificate, every signature of a co-signed report in words, and the reviewer's co-signature audited in the case.
Real PDFs, real keys, real signatures (pyHanko), real dialogs (pytest-qt, offscreen)."""
from __future__ import annotations

import hashlib

import pytest

pytest.importorskip("pytestqt")

from tests.gui.test_report_dialog import isolated_settings  # noqa: E402,F401
from xfr_desktop.report.signature_check import verify_pdf  # noqa: E402
from xfr_desktop.report.signing import create_identity, load_signing_identity, sign_pdf  # noqa: E402

PASS = "correct horse battery"


@pytest.fixture
def keys(tmp_path):
    return {who: create_identity(name, tmp_path / f"{who}.p12", PASS, organisation="Lab")
            for who, name in (("jane", "Jane Examiner"), ("rex", "Rex Reviewer"))}


@pytest.fixture
def signed(tmp_path, keys):
    """A one-page PDF certified by the examiner, with the reviewer's field reserved (as `xfr report --sign`)."""
    from reportlab.pdfgen import canvas

    plain = tmp_path / "plain.pdf"
    c = canvas.Canvas(str(plain))
    c.drawString(72, 720, "case report")
    c.save()
    path = tmp_path / "signed.pdf"
    path.write_bytes(sign_pdf(plain.read_bytes(), load_signing_identity(keys["jane"][0], PASS),
                              box=(72, 72, 272, 142), review_box=(300, 72, 500, 142)).pdf)
    return path


def _cosign(qtbot, signed, keys, out, store=None, case_id=None, passphrase=PASS):
    from xfr_desktop.gui.signing_dialogs import CosignReportDialog

    dialog = CosignReportDialog(None, store, case_id, report=str(signed))
    qtbot.addWidget(dialog)
    dialog.key_edit.setText(str(keys["rex"][0]))
    dialog.pass_edit.setText(passphrase)
    dialog.out_edit.setText(str(out))
    dialog.action_button.click()
    return dialog


def _rows(table) -> list[list[str]]:
    return [[table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())]


def test_verify_dialog_without_trust_lists_every_signature_in_words(qtbot, tmp_path, signed, keys):
    from xfr_desktop.gui.signing_dialogs import VerifyReportDialog
    from xfr_desktop.report.signing import cosign_pdf

    cosigned = tmp_path / "cosigned.pdf"
    cosigned.write_bytes(cosign_pdf(signed.read_bytes(), load_signing_identity(keys["rex"][0], PASS)).pdf)
    dialog = VerifyReportDialog(None, report=str(cosigned))           # no trusted certificate: still checked
    qtbot.addWidget(dialog)
    dialog.action_button.click()
    assert dialog.result is not None and dialog.result.status == "intact-untrusted"
    rows = _rows(dialog.table)
    assert len(rows) == 2
    examiner, reviewer = rows
    assert "Jane Examiner" in examiner[0] and "Rex Reviewer" in reviewer[0]
    assert examiner[2] == "certified: only further signatures (and form filling) allowed"
    assert reviewer[2] == "approval"
    assert [r[3] for r in rows] == ["yes", "yes"] and [r[4] for r in rows] == ["not checked", "not checked"]
    assert examiner[5] == "only further signatures" and reviewer[5] == "none"
    assert all(r[1][:4].isdigit() for r in rows)                      # signing times
    assert not any("FORM_FILLING" in cell or "_" in cell for row in rows for cell in row[2:])
    text = dialog.status.text()
    assert text.startswith("Intact, but the signers are not checked") and "--trust" not in text
    assert "#b00020" not in dialog.status.styleSheet()                # a warning, not a failure

    dialog.trust_edit.setText(f"{keys['jane'][1]};{keys['rex'][1]}")
    dialog.action_button.click()
    assert dialog.result.ok and [r[4] for r in _rows(dialog.table)] == ["yes", "yes"]
    assert dialog.status.text().startswith("Valid")
    dialog.trust_edit.setText(str(keys["jane"][1]))                   # the reviewer is not trusted
    dialog.action_button.click()
    assert dialog.result.status == "untrusted" and [r[4] for r in _rows(dialog.table)] == ["yes", "NO"]
    assert "#b00020" in dialog.status.styleSheet()


def test_cosign_dialog_signs_writes_and_audits_in_the_case(qtbot, tmp_path, signed, keys):
    from xfr_desktop.store import open_store

    out = tmp_path / "cosigned.pdf"
    with open_store(tmp_path / "data") as store:
        case = store.create_case("CS-1", examiner="Jane Examiner")
        wrong = _cosign(qtbot, signed, keys, out, store, case.id, passphrase="not the phrase")
        assert "#b00020" in wrong.status.styleSheet() and "Nothing was written" in wrong.status.text()
        assert not out.exists() and wrong.pass_edit.text() == ""
        dialog = _cosign(qtbot, signed, keys, out, store, case.id)
        assert dialog.outcome is not None and dialog.outcome.recorded, dialog.status.text()
        result = verify_pdf(out, [keys["jane"][1], keys["rex"][1]])
        assert result.ok and [s.certifying for s in result.signatures] == [True, False]
        events = [e for e in store.list_audit(case.id) if e.action == "report.cosigned"]
        assert len(events) == 1 and events[0].actor == "Rex Reviewer"
        assert events[0].details_dict["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
        again = _cosign(qtbot, signed, keys, out, store, case.id)        # never overwrites
        assert "exists" in again.status.text() and len(
            [e for e in store.list_audit(case.id) if e.action == "report.cosigned"]) == 1
    unsigned = tmp_path / "plain.pdf"
    refused = _cosign(qtbot, unsigned, keys, tmp_path / "x.pdf")
    assert "signed by its examiner" in refused.status.text() and not (tmp_path / "x.pdf").exists()


def test_tools_menu_offers_co_signing_for_the_open_case(qtbot, tmp_path):
    from PySide6.QtWidgets import QLabel, QMenu

    from xfr_desktop.gui.main_window import MainWindow
    from xfr_desktop.store import open_store

    store = open_store(tmp_path / "data")
    try:
        window = MainWindow(store)
        qtbot.addWidget(window)
        case = store.create_case("CS-2", examiner="Jane Examiner")
        window.select_case(case.id)
        tools = next(m for m in window.menuBar().findChildren(QMenu) if m.title() == "&Tools")
        assert window.act_cosign in tools.actions()
        dialog = window.cosign_report()
        assert dialog.case_id == case.id and dialog.store is store
        assert any("CS-2" in label.text() for label in dialog.findChildren(QLabel))
        dialog.close()
        window.close()
    finally:
        store.close()


def test_refusals_that_need_no_key_keep_the_typed_passphrases(qtbot, tmp_path, signed, keys):
    """An existing output file is refused before the key is opened: the pass-phrase stays typed, and the dialogs
    (which never overwrite) do not suggest overwriting."""
    from xfr_desktop.gui.signing_dialogs import KeyCreationDialog

    out = tmp_path / "taken.pdf"
    out.write_bytes(b"an earlier co-signed report")
    dialog = _cosign(qtbot, signed, keys, out)
    text = dialog.status.text()
    assert f"{out} exists" in text and "overwrit" not in text and dialog.pass_edit.text() == PASS, text
    assert out.read_bytes() == b"an earlier co-signed report"

    pem = tmp_path / "new.pem"
    pem.write_text("someone else's certificate")       # the certificate beside the new key file
    keydialog = KeyCreationDialog(None, name="Ann Examiner", folder=str(tmp_path))
    qtbot.addWidget(keydialog)
    keydialog.path_edit.setText(str(tmp_path / "new.p12"))
    keydialog.pass_edit.setText("long enough phrase")
    keydialog.confirm_edit.setText("long enough phrase")
    keydialog.run()
    text = keydialog.status.text()
    assert f"{pem} exists" in text and "overwrit" not in text and keydialog.created is None, text
    assert keydialog.pass_edit.text() == keydialog.confirm_edit.text() == "long enough phrase"
    assert not (tmp_path / "new.p12").exists() and pem.read_text() == "someone else's certificate"


def _create_key(dialog, path) -> None:
    """Fill the key creation form as the examiner would and press Create key."""
    dialog.path_edit.setText(str(path))
    dialog.pass_edit.setText(PASS)
    dialog.confirm_edit.setText(PASS)
    dialog.action_button.click()
    assert dialog.created is not None, dialog.status.text()


def test_the_export_dialog_offers_the_key_just_created(qtbot, tmp_path, isolated_settings):
    """Tools ▸ Create signing key…, then File ▸ Export report…: the new key is the one offered; a key created with
    the export dialog's own Create… button is offered at once (issue 24)."""
    from PySide6.QtCore import Qt

    from xfr_desktop.gui.main_window import MainWindow
    from xfr_desktop.gui.signing_dialogs import KeyCreationDialog
    from xfr_desktop.store import open_store

    store = open_store(tmp_path / "data")
    try:
        window = MainWindow(store)
        qtbot.addWidget(window)
        case = store.create_case("CS-3", examiner="Jane Examiner", organisation="Lab")
        window.select_case(case.id)
        assert window.act_export.isEnabled()
        _create_key(window.create_signing_key(), tmp_path / "jane.p12")
        export = window.export_report()
        assert export.sign_check.isChecked() and export.key_edit.text() == str(tmp_path / "jane.p12")
        ident = load_signing_identity(export.key_edit.text(), PASS)     # the real key, as created
        assert ident.common_name == "Jane Examiner"

        export.show()
        qtbot.waitExposed(export)
        qtbot.mouseClick(export.create_key_button, Qt.MouseButton.LeftButton)
        created = export.findChildren(KeyCreationDialog)
        assert len(created) == 1 and created[0].name_edit.text() == "Jane Examiner"
        _create_key(created[0], tmp_path / "jane-2.p12")
        assert export.key_edit.text() == str(tmp_path / "jane-2.p12")
        export.close()
        assert window.export_report().key_edit.text() == str(tmp_path / "jane-2.p12")   # and the next time
    finally:
        window.close()
        store.close()
