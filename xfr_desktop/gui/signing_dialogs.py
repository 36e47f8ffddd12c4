"""Signing-key creation, signed-report verification and the reviewer's co-signature in the app (what `xfr keys
create`, `xfr verify-report` and `xfr cosign-report` do on the command line): thin forms over
:func:`~xfr_desktop.report.signing.create_identity`, :func:`~xfr_desktop.report.signature_check.verify_pdf` and
:func:`~xfr_desktop.report.export.cosign_report`. Pass-phrases live only in the fields while a dialog is open.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QDialogButtonBox, QFileDialog, QHeaderView, QLabel, QLineEdit, QPushButton, QTableWidget,
                               QTableWidgetItem)

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
    """A self-signed examiner identity: FILE.p12 (key and certificate, pass-phrase protected) and FILE.pem; emits
    ``key_created(str)`` with the key file's path (the export dialog offers it)."""

    key_created = Signal(str)

    @classmethod
    def for_case(cls, parent, store, case_id: int | None) -> "KeyCreationDialog":
        """Filled with the examiner's name (the preference, else the case's examiner) and the case's organisation."""
        case = store.get_case(case_id) if case_id is not None else None
        return cls(parent, name=store.examiner_name() or (case.examiner if case else ""),
                   organisation=case.organisation if case else "")

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
        from ..report.signing import create_identity, identity_paths, load_signing_identity

        path = self.path_edit.text().strip()
        if not self.name_edit.text().strip():
            return self.show_error("Enter your name: it is the certificate's name and appears on signed reports.")
        if not path:
            return self.show_error("Choose where to write the key file.")
        if len(self.pass_edit.text()) < MIN_PASSPHRASE:
            return self.show_error(f"Choose a pass-phrase of at least {MIN_PASSPHRASE} characters.")
        if self.pass_edit.text() != self.confirm_edit.text():
            return self.show_error("The two pass-phrases differ. Type them again.")
        try:
            identity_paths(path, overwrite=None)   # the key file and its certificate: before the pass-phrases go
        except XfrError as exc:
            return self.show_error(f"{exc}.")
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
        self.key_created.emit(str(p12))


# the verdict in plain words, by verify_pdf's status; other statuses show verify_pdf's own one-line reason
VERDICT_TEXT = {
    "valid": "Valid: every signature is intact, nothing was changed after signing except further signatures, and "
             "every signer's certificate is one you trust.",
    "intact-untrusted": "Intact, but the signers are not checked: nothing was changed after signing except further "
                        "signatures, yet without a certificate you trust nobody can say who signed. Add the signers' "
                        ".pem files (or your lab's CA) and verify again.",
    "untrusted": "Intact, but not trusted: a signer's certificate is not among those you chose.",
    "unsigned": "Not signed: the file carries no digital signature.",
}
COLUMNS = ("Signer", "Signed at (signer's clock)", "Kind", "Intact", "Trusted", "Changed after signing")


class VerifyReportDialog(_ActionDialog):
    """Checks a signed report, against the certificates the examiner trusts when given; one row per signature
    (the examiner's certifying signature, a reviewer's approval signature)."""

    def __init__(self, parent, report: str = "", trust: str = ""):
        super().__init__(parent, "Verify a signed report", "Verify")
        self.setMinimumWidth(860)
        self.result = None
        self.report_edit = QLineEdit(report)
        self.trust_edit = QLineEdit(trust)
        self.trust_edit.setPlaceholderText("optional: certificate(s) you trust, .pem; separate several with ;")
        self.form.addRow("Report (PDF)", row(self.report_edit, _browse(self.report_edit, self._choose_report)))
        self.form.addRow("Trusted certificates", row(self.trust_edit, _browse(self.trust_edit, self._choose_trust)))
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)   # the signer's name wraps
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(True)
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
        from ..report.signature_check import NO_TRUST, verify_pdf

        report = self.report_edit.text().strip()
        if not report:
            return self.show_error("Choose the report to check.")
        trust = [t.strip() for t in self.trust_edit.text().split(";") if t.strip()]
        result = self.result = verify_pdf(report, trust)
        self.table.setRowCount(len(result.signatures))
        for line, sig in enumerate(result.signatures):
            kind = f"certified: {sig.permitted_changes}" if sig.certifying else "approval"
            trusted = "yes" if sig.trusted else ("not checked" if result.status == NO_TRUST else "NO")
            cells = (sig.signer, sig.signing_time, kind, "yes" if sig.intact and sig.valid else "NO", trusted,
                     sig.changes_after)
            for col, text in enumerate(cells):
                self.table.setItem(line, col, QTableWidgetItem(str(text)))
        self.table.resizeRowsToContents()
        verdict = VERDICT_TEXT.get(result.status)
        text = verdict if result.status in ("valid", NO_TRUST) else f"{verdict or 'Not valid:'} {result.message}."
        if result.ok:
            self.show_info(text)
        else:
            self.show_warning(text) if result.status == NO_TRUST else self.show_error(text)


class CosignReportDialog(_ActionDialog):
    """The reviewer's co-signature (ACE-V) on a report its examiner signed: what `xfr cosign-report --case` does,
    through :func:`~xfr_desktop.report.export.cosign_report`; logged to the open case as ``report.cosigned``."""

    def __init__(self, parent, store=None, case_id: int | None = None, report: str = ""):
        super().__init__(parent, "Co-sign a report (reviewer)", "Co-sign")
        self.setMinimumWidth(680)
        self.store, self.case_id, self.outcome = store, case_id, None
        self.report_edit = QLineEdit(report)
        self.key_edit = QLineEdit()
        self.key_edit.setPlaceholderText("the reviewer's key file, .p12 (Tools ▸ Create signing key…)")
        self.pass_edit = QLineEdit()
        self.pass_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.pass_edit.setPlaceholderText("never stored")
        self.out_edit = QLineEdit(self._default_out(report))
        self.form.addRow("Signed report (PDF)", row(self.report_edit, _browse(self.report_edit, self._choose_report)))
        self.form.addRow("Reviewer's key file", row(self.key_edit, _browse(self.key_edit, self._choose_key)))
        self.form.addRow("Pass-phrase", self.pass_edit)
        self.form.addRow("Co-signed report", row(self.out_edit, _browse(self.out_edit, self._choose_out)))
        where = (f"The co-signature is recorded in case {store.get_case(case_id).number}'s audit trail."
                 if case_id is not None else "No case is open: the co-signature is not recorded in any audit trail.")
        note = QLabel(f"{where} The signing time comes from this computer's clock (no timestamp authority).")
        note.setWordWrap(True)
        self.layout_.addWidget(note)
        self.finish_layout()

    @staticmethod
    def _default_out(report: str) -> str:
        path = Path(report.strip()) if report.strip() else None
        return str(path.with_name(f"{path.stem}-cosigned.pdf")) if path else ""

    def _choose_report(self, current: str) -> str:
        path = QFileDialog.getOpenFileName(self, "Signed report", current, "PDF files (*.pdf)")[0]
        if path and not self.out_edit.text():
            self.out_edit.setText(self._default_out(path))
        return path

    def _choose_key(self, current: str) -> str:
        return QFileDialog.getOpenFileName(self, "Reviewer's key file", current, "PKCS#12 key files (*.p12 *.pfx)")[0]

    def _choose_out(self, current: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self, "Save the co-signed report as", current, "PDF files (*.pdf)")
        return path if not path or path.lower().endswith(".pdf") else path + ".pdf"

    def run(self) -> None:
        from ..core.errors import XfrError
        from ..report.export import check_cosign, cosign_report
        from ..report.signing import load_signing_identity

        report, key, out = (e.text().strip() for e in (self.report_edit, self.key_edit, self.out_edit))
        if report and not out:   # next to the signed report, never over it
            out = self._default_out(report)
            self.out_edit.setText(out)
        missing = [what for what, value in (("the signed report", report), ("the reviewer's key file", key),
                                            ("where to write the co-signed report", out)) if not value]
        if missing:
            return self.show_error(f"Choose {', '.join(missing)}.")
        try:
            check_cosign(report, out, overwrite=None)   # refusals that need no key keep the pass-phrase typed
        except (XfrError, OSError) as exc:
            return self.show_error(f"{exc}. Nothing was written.")
        try:
            identity = load_signing_identity(key, self.pass_edit.text())
            self.outcome = cosign_report(report, out, identity, store=self.store, case_id=self.case_id)
        except (XfrError, OSError) as exc:
            return self.show_error(f"{exc}. Nothing was written.")
        finally:
            self.pass_edit.clear()
        signed = self.outcome.signed
        logged = " and recorded it in the case's audit trail" if self.outcome.recorded else ""
        self.show_info(f"Wrote {self.outcome.path}{logged}: co-signed by {signed.signer} at {signed.signed_at} (this "
                       f"computer's clock).")
        self.action_button.setEnabled(False)
