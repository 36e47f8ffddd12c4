"""Signing-key creation and signed-report verification in the app (what `xfr keys create` and `xfr verify-report`
do on the command line): thin forms over :func:`~xfr_desktop.report.signing.create_identity` and
:func:`~xfr_desktop.report.signature_check.verify_pdf`. Pass-phrases live only in the fields while a dialog is open.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QDialogButtonBox, QFileDialog, QLabel, QLineEdit, QPushButton, QTableWidget, QTableWidgetItem

from .forms import FormDialog, row

MIN_PASSPHRASE = 8


def _browse(edit: QLineEdit, chooser) -> QPushButton:
    button = QPushButton("Browse…")
    button.setAutoDefault(False)   # Enter in a field must run the dialog's action, not open a file dialog
    button.clicked.connect(lambda: (path := chooser(edit.text())) and edit.setText(path))
    return button


class _ActionDialog(FormDialog):
    """A form with one action button (Enter presses it) and Close."""

    def __init__(self, parent, title: str, action: str):
        super().__init__(parent, title)
        self.action_buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.action_button = self.action_buttons.addButton(action, QDialogButtonBox.ButtonRole.ActionRole)
        self.action_button.clicked.connect(self.run)
        self.action_buttons.rejected.connect(self.reject)

    def finish_layout(self) -> None:
        self.finish(self.action_buttons, self.action_button)

    def run(self) -> None:
        raise NotImplementedError


class KeyCreationDialog(_ActionDialog):
    """A self-signed examiner identity: FILE.p12 (key and certificate, pass-phrase protected) and FILE.pem."""

    def __init__(self, parent, name: str = "", organisation: str = "", folder: str | None = None):
        super().__init__(parent, "Create a signing key", "Create key")
        self.created: tuple[Path, Path] | None = None
        self.name_edit = QLineEdit(name)
        self.org_edit = QLineEdit(organisation)
        self.email_edit = QLineEdit()
        safe = "".join(ch if ch.isalnum() else "-" for ch in name.strip().lower()).strip("-") or "examiner"
        self.path_edit = QLineEdit(str(Path(folder or Path.home()) / f"{safe}.p12"))
        self.pass_edit, self.confirm_edit = QLineEdit(), QLineEdit()
        for edit in (self.pass_edit, self.confirm_edit):
            edit.setEchoMode(QLineEdit.EchoMode.Password)
            edit.setPlaceholderText("never stored")
        self.form.addRow("Your name", self.name_edit)
        self.form.addRow("Organisation", self.org_edit)
        self.form.addRow("E-mail", self.email_edit)
        self.form.addRow("Key file", row(self.path_edit, _browse(self.path_edit, self._choose)))
        self.form.addRow("Pass-phrase", self.pass_edit)
        self.form.addRow("Again", self.confirm_edit)
        note = QLabel("The certificate (.pem, written next to the key file) is what others use to check your"
                      " reports. Keep the key file and its pass-phrase to yourself.")
        note.setWordWrap(True)
        self.layout_.addWidget(note)
        self.finish_layout()

    def _choose(self, current: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self, "Key file", current, "PKCS#12 key files (*.p12)")
        return path if not path or path.lower().endswith(".p12") else path + ".p12"

    def run(self) -> None:
        from ..core.errors import XfrError
        from ..report.signing import create_identity, load_signing_identity

        path = self.path_edit.text().strip()
        if not self.name_edit.text().strip():
            return self.show_error("Enter your name: it is the certificate's name and appears on signed reports.")
        if not path:
            return self.show_error("Choose where to write the key file.")
        if len(self.pass_edit.text()) < MIN_PASSPHRASE:
            return self.show_error(f"Choose a pass-phrase of at least {MIN_PASSPHRASE} characters.")
        if self.pass_edit.text() != self.confirm_edit.text():
            return self.show_error("The two pass-phrases differ. Type them again.")
        if Path(path).exists():
            return self.show_error(f"{path} exists; choose another file name (an existing key is never replaced).")
        try:
            p12, pem = create_identity(self.name_edit.text(), path, self.pass_edit.text(),
                                       organisation=self.org_edit.text().strip(), email=self.email_edit.text().strip())
            ident = load_signing_identity(p12, self.pass_edit.text())   # proves the file opens with what was typed
        except XfrError as exc:
            return self.show_error(f"{exc}. Nothing was written.")
        finally:
            self.pass_edit.clear()
            self.confirm_edit.clear()
        self.created = (p12, pem)
        self.show_info(f"Wrote {p12} (key) and {pem} (certificate). Valid until {ident.not_after:%Y-%m-%d};"
                       f" certificate SHA-256 {ident.fingerprint_sha256}.")
        self.action_button.setEnabled(False)


STATUS_TEXT = {"valid": "Every signature is intact, covers the whole document and comes from a trusted certificate.",
               "unsigned": "The file carries no digital signature.",
               "untrusted": "The document is intact, but a signer's certificate is not among those you trust."}


class VerifyReportDialog(_ActionDialog):
    """Checks a signed report against the certificates the examiner trusts; one row per signature."""

    def __init__(self, parent, report: str = "", trust: str = ""):
        super().__init__(parent, "Verify a signed report", "Verify")
        self.result = None
        self.report_edit = QLineEdit(report)
        self.trust_edit = QLineEdit(trust)
        self.trust_edit.setPlaceholderText("certificate(s) you trust, .pem; separate several with ;")
        self.form.addRow("Report (PDF)", row(self.report_edit, _browse(self.report_edit, self._choose_report)))
        self.form.addRow("Trusted certificates", row(self.trust_edit, _browse(self.trust_edit, self._choose_trust)))
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["Signer", "Signed at (signer's clock)", "Intact", "Trusted",
                                              "Changes after signing"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.layout_.addWidget(self.table)
        self.finish_layout()

    def _choose_report(self, current: str) -> str:
        return QFileDialog.getOpenFileName(self, "Signed report", current, "PDF files (*.pdf)")[0]

    def _choose_trust(self, current: str) -> str:
        paths, _ = QFileDialog.getOpenFileNames(self, "Trusted certificates", current,
                                                "Certificates (*.pem *.crt *.cer *.der);;All files (*)")
        return ";".join(paths)

    def run(self) -> None:
        from ..report.signature_check import verify_pdf

        report = self.report_edit.text().strip()
        if not report:
            return self.show_error("Choose the report to check.")
        trust = [t.strip() for t in self.trust_edit.text().split(";") if t.strip()]
        if not trust:
            return self.show_error("Choose the certificate(s) you trust: the signer's .pem file, or your lab's CA.")
        result = self.result = verify_pdf(report, trust)
        self.table.setRowCount(len(result.signatures))
        for line, sig in enumerate(result.signatures):
            cells = (sig.signer, sig.signing_time, "yes" if sig.intact and sig.valid else "NO",
                     "yes" if sig.trusted else "no", sig.modification)
            for col, text in enumerate(cells):
                self.table.setItem(line, col, QTableWidgetItem(str(text)))
        text = f"{result.message} {STATUS_TEXT.get(result.status, '')}".strip()
        self.show_info(text) if result.ok else self.show_error(text)
