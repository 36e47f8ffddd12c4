"""The Export dialog: wrong passphrase is reported and writes nothing; a signed export is written and audited."""
from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings, Qt  # noqa: E402

from xfr_desktop.report.signing import create_identity  # noqa: E402
from xfr_desktop.report.signature_check import verify_pdf  # noqa: E402
from xfr_desktop.store import open_store  # noqa: E402

PASS = "dialog passphrase"


@pytest.fixture
def isolated_settings(tmp_path):
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    yield


@pytest.fixture
def store_with_case(tmp_path, tiny_model):
    from tests.report.test_report import analysed_case

    with open_store(tmp_path / "data") as store:
        case, *_ = analysed_case(store, tiny_model, tmp_path)
        yield store, case


def test_export_dialog_wrong_passphrase_then_signed_export(qtbot, tmp_path, store_with_case, isolated_settings):
    from xfr_desktop.gui.export_dialog import ExportDialog

    store, case = store_with_case
    p12, pem = create_identity("Dialog Examiner", tmp_path / "ex.p12", PASS)
    dialog = ExportDialog(None, store, case.id)
    qtbot.addWidget(dialog)
    out = tmp_path / "exported.pdf"
    dialog.path_edit.setText(str(out))
    dialog.key_edit.setText(str(p12))
    dialog.passphrase_edit.setText("wrong one")
    dialog.export()
    assert "Wrong passphrase" in dialog.status.text()
    assert not dialog.busy and not out.exists()

    dialog.passphrase_edit.setText(PASS)
    with qtbot.waitSignal(dialog.exported, timeout=60000):
        dialog.export()
    assert out.is_file() and dialog.result.signed
    assert "signed by Dialog Examiner" in dialog.status.text()
    assert dialog.passphrase_edit.text() == ""          # not kept after use
    assert verify_pdf(out, [pem]).ok
    actions = [e.action for e in store.list_audit(case.id)]
    assert actions[-3:] == ["report.exported", "report.signed", "audit.checkpoint"]
    QSettings().sync()
    saved = [f.read_text(errors="replace") for f in (tmp_path / "settings").rglob("*") if f.is_file()]
    assert saved and any(str(p12) in text for text in saved)   # the key file is remembered...
    assert not any(PASS in text for text in saved)             # ...its passphrase never

    # an existing file is not overwritten unless asked
    dialog.export()
    assert "exists" in dialog.status.text()


def test_export_dialog_unsigned_and_missing_key(qtbot, tmp_path, store_with_case, isolated_settings):
    from xfr_desktop.gui.export_dialog import ExportDialog

    store, case = store_with_case
    dialog = ExportDialog(None, store, case.id)
    qtbot.addWidget(dialog)
    out = tmp_path / "plain.pdf"
    dialog.path_edit.setText(str(out))
    dialog.key_edit.setText("")
    dialog.export()
    assert "key file" in dialog.status.text()
    dialog.sign_check.setChecked(False)
    with qtbot.waitSignal(dialog.exported, timeout=60000):
        dialog.export()
    assert out.read_bytes().startswith(b"%PDF-") and not dialog.result.signed
    assert verify_pdf(out, []).status == "unsigned"


def test_export_dialog_enter_after_a_wrong_passphrase_exports(qtbot, tmp_path, store_with_case, isolated_settings,
                                                             monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from xfr_desktop.gui.export_dialog import ExportDialog

    opened = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: opened.append("save") or ("", ""))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: opened.append("open") or ("", ""))
    store, case = store_with_case
    p12, _ = create_identity("Enter Examiner", tmp_path / "ex.p12", PASS)
    dialog = ExportDialog(None, store, case.id)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    out = tmp_path / "enter.pdf"
    dialog.path_edit.setText(str(out))
    dialog.key_edit.setText(str(p12))
    qtbot.keyClicks(dialog.passphrase_edit, "wrong")
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    assert "Wrong passphrase" in dialog.status.text()
    dialog.passphrase_edit.clear()
    qtbot.keyClicks(dialog.passphrase_edit, PASS)
    assert dialog.status.text() == ""                 # the stale red error goes as the examiner types
    with qtbot.waitSignal(dialog.exported, timeout=60_000):
        qtbot.keyClick(dialog.passphrase_edit, Qt.Key.Key_Return)
    assert opened == [] and out.is_file() and dialog.result.signed
