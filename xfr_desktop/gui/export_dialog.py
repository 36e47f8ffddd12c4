"""Export dialog: write the case's PDF report, optionally signed with the examiner's PKCS#12 key file.

The passphrase is only held in the dialog's field while it is open; it is never stored. Building and signing run as
a task (``gui/tasks.py``; the store's methods are thread-safe); the export and the signing are logged to the case's
audit trail by :func:`xfr_desktop.report.export.export_case_report`. Errors (wrong passphrase, unreadable key file,
unwritable folder...) are shown in the dialog, in one line, and nothing is written.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import QCheckBox, QDialogButtonBox, QFileDialog, QLabel, QLineEdit, QPushButton

from .forms import FormDialog, row
from .tasks import TaskRunner

SETTINGS_KEY_FILE = "export/key_file"
SETTINGS_FOLDER = "export/folder"


def remember_key_file(path: str) -> None:
    """The key file the next export dialog offers: the one last used to sign, or created since."""
    QSettings().setValue(SETTINGS_KEY_FILE, path)


class ExportDialog(FormDialog):
    """``ExportDialog(parent, store, case_id)``; emits ``exported(ExportResult)`` after a successful export."""

    exported = Signal(object)

    def __init__(self, parent, store, case_id: int):
        case = store.get_case(case_id)
        super().__init__(parent, f"Export report: case {case.number}")
        self.store = store
        self.case_id = case_id
        self.case = case
        self.result = None
        self._runner: TaskRunner | None = None   # one thread per export, stopped when it ends
        self._task = None
        settings = QSettings()

        self.path_edit = QLineEdit(self._default_path(settings))
        browse_out = QPushButton("Browse…")
        browse_out.clicked.connect(self._browse_output)
        self.overwrite_check = QCheckBox("Overwrite the file if it exists")

        self.sign_check = QCheckBox("Sign the report (PAdES, SHA-256) with my key file")
        self.sign_check.setChecked(True)
        self.key_edit = QLineEdit(str(settings.value(SETTINGS_KEY_FILE, "") or ""))
        self.key_edit.setPlaceholderText("examiner.p12 (none yet? Create…)")
        browse_key = QPushButton("Browse…")
        browse_key.clicked.connect(self._browse_key)
        self.create_key_button = QPushButton("Create…")
        self.create_key_button.setToolTip("Create your signing key (as Tools ▸ Create signing key…)")
        self.create_key_button.clicked.connect(self.create_key)
        self.passphrase_edit = QLineEdit()
        self.passphrase_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase_edit.setPlaceholderText("never stored")
        self.sign_check.toggled.connect(self._sign_toggled)

        form = self.form
        form.addRow("Report file", row(self.path_edit, browse_out))
        form.addRow("", self.overwrite_check)
        form.addRow("", self.sign_check)
        form.addRow("Key file", row(self.key_edit, browse_key, self.create_key_button))
        form.addRow("Passphrase", self.passphrase_edit)
        note = QLabel("The signing time comes from this computer's clock (no timestamp authority is used).")
        note.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.export)
        self.buttons.rejected.connect(self.reject)
        self.layout_.addWidget(note)
        self.finish(self.buttons, self.export_button)   # Enter in any field exports

    # --- helpers -------------------------------------------------------------------------------------------
    def _default_path(self, settings) -> str:
        folder = Path(str(settings.value(SETTINGS_FOLDER, "") or Path.home()))
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in self.case.number) or "case"
        return str(folder / f"report-{safe}.pdf")

    def _browse_output(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save report as", self.path_edit.text(), "PDF files (*.pdf)")
        if path:
            if not path.lower().endswith(".pdf"):
                path += ".pdf"
            self.path_edit.setText(path)
            self.overwrite_check.setChecked(Path(path).exists())  # the file dialog already asked

    def _browse_key(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Examiner key file", self.key_edit.text(),
                                              "PKCS#12 key files (*.p12 *.pfx);;All files (*)")
        if path:
            self.key_edit.setText(path)

    def _sign_toggled(self, on: bool) -> None:
        for widget in (self.key_edit, self.passphrase_edit, self.create_key_button):
            widget.setEnabled(on)

    def create_key(self):
        """The key creation form over this dialog; the key created is the one this dialog then signs with."""
        from .dialogs import present
        from .signing_dialogs import KeyCreationDialog

        dialog = KeyCreationDialog.for_case(self, self.store, self.case_id)
        dialog.key_created.connect(self.offer_key)
        dialog.key_created.connect(remember_key_file)
        return present(dialog)

    def offer_key(self, path: str) -> None:
        self.sign_check.setChecked(True)
        self.key_edit.setText(path)
        self.passphrase_edit.clear()

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done

    # --- export --------------------------------------------------------------------------------------------
    def export(self) -> None:
        """Validate the fields, open the key file (fast: wrong passphrases are reported at once), then build and
        sign in a worker thread."""
        from ..core.errors import XfrError
        from ..report.signing import WrongPassphraseError, load_signing_identity

        if self.busy:
            return
        path = self.path_edit.text().strip()
        if not path:
            self.show_error("Choose where to save the report.")
            return
        if not path.lower().endswith(".pdf"):
            path += ".pdf"
            self.path_edit.setText(path)
        if Path(path).exists() and not self.overwrite_check.isChecked():
            self.show_error(f"{path} exists. Choose another name or tick 'Overwrite the file if it exists'.")
            return
        identity = None
        if self.sign_check.isChecked():
            key = self.key_edit.text().strip()
            if not key:
                self.show_error("Choose your key file (.p12), or untick 'Sign the report'.")
                return
            try:
                identity = load_signing_identity(key, self.passphrase_edit.text())
            except WrongPassphraseError:
                self.show_error(f"Wrong passphrase for key file {Path(key).name}. Nothing was written.")
                self.passphrase_edit.selectAll()
                self.passphrase_edit.setFocus()
                return
            except XfrError as exc:
                self.show_error(f"{exc}. Nothing was written.")
                return
            remember_key_file(key)
        QSettings().setValue(SETTINGS_FOLDER, str(Path(path).parent))
        self.show_info("Building the report…" + (" and signing it…" if identity else ""))
        self.export_button.setEnabled(False)
        self._runner = TaskRunner("xfr-export", self)
        self._task = self._runner.start(
            lambda ctx, args=(self.store, self.case_id, path, identity, self.overwrite_check.isChecked()):
            _export(*args), finished=self._done, failed=self._failed)

    def _stop_thread(self) -> None:
        if self._runner is not None:
            self._runner.shutdown()
            self._runner = None
        self.export_button.setEnabled(True)

    def _done(self, result) -> None:
        self._stop_thread()
        self.result = result
        self.passphrase_edit.clear()
        text = f"Wrote {result.path} ({result.n_pages} pages)"
        if result.signed:
            text += f", signed by {result.signer} at {result.signed_at} (this computer's clock)"
        self.show_info(text + f". SHA-256 {result.sha256}")
        self.exported.emit(result)

    def _failed(self, _kind: str, message: str) -> None:
        self._stop_thread()
        self.show_error(f"{message}. Nothing was written.")

    def reject(self) -> None:
        if self.busy:  # let the export finish: a half-done export must not be abandoned silently
            self.show_info("Please wait: the report is being written…")
            return
        self.passphrase_edit.clear()
        super().reject()


def _export(store, case_id: int, path: str, identity, overwrite: bool):
    from ..report.export import export_case_report

    return export_case_report(store, case_id, path, identity=identity, overwrite=overwrite)
