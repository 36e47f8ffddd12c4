"""Small forms of the examiner's workflow: the examiner's name (preferences; every audited action is recorded under
it) and removing a comparison with a recorded reason. Each calls one store method and says what went wrong in
one line inside the dialog, losing nothing that was typed."""
from __future__ import annotations

from PySide6.QtWidgets import QDialogButtonBox, QLabel, QLineEdit, QPlainTextEdit

from ..core.errors import XfrError
from .forms import FormDialog


class _StoreForm(FormDialog):
    """OK applies one store call; its one-line error stays in the dialog, with everything typed."""

    def __init__(self, parent, title: str, ok_text: str):
        super().__init__(parent, title, min_width=460)
        self.ok_buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_buttons.button(QDialogButtonBox.StandardButton.Ok).setText(ok_text)
        self.ok_buttons.accepted.connect(self._apply)
        self.ok_buttons.rejected.connect(self.reject)

    def finish_layout(self) -> None:
        self.finish(self.ok_buttons, self.ok_buttons.button(QDialogButtonBox.StandardButton.Ok))

    def _apply(self) -> None:
        try:
            self.apply()
        except XfrError as exc:
            self.show_error(str(exc))
            return
        self.accept()

    def apply(self) -> None:
        raise NotImplementedError


class PreferencesDialog(_StoreForm):
    """The examiner's name, set once: conclusions, assessments, exports and every other audited action use it."""

    def __init__(self, parent, store):
        super().__init__(parent, "Preferences", "Save")
        self.store = store
        self.name_edit = QLineEdit(store.examiner_name() or "")
        self.name_edit.setPlaceholderText("e.g. A. Examiner")
        self.form.addRow("Examiner's name", self.name_edit)
        note = QLabel("Every action recorded in the audit trail from now on (conclusions, assessments, annotations,"
                      " reviews, exports) is recorded under this name. The change itself is audited.")
        note.setWordWrap(True)
        self.layout_.addWidget(note)
        self.finish_layout()

    def apply(self) -> None:
        name = self.name_edit.text().strip()
        if name != (self.store.examiner_name() or ""):
            self.store.set_examiner_name(name)


class RemoveComparisonDialog(_StoreForm):
    """Withdraw a comparison (e.g. a failed one, or photos imported by mistake): its row and results stay, the
    reason is recorded and the report lists it as removed."""

    def __init__(self, parent, store, comparison_id: int, description: str = ""):
        number = store.get_comparison(comparison_id).number
        super().__init__(parent, f"Remove comparison {number}", "Remove")
        self.store = store
        self.comparison_id = comparison_id
        intro = QLabel(f"<b>{description or f'Comparison {number}'}</b><br>It stays in the case database"
                       " and is listed in the report as removed, with your reason. It can no longer be analysed"
                       " or assessed.")
        intro.setWordWrap(True)
        self.layout_.insertWidget(0, intro)
        self.reason_edit = QPlainTextEdit()
        self.reason_edit.setPlaceholderText("Why is it removed? (required; recorded in the audit trail)")
        self.reason_edit.setFixedHeight(70)
        self.form.addRow("Reason", self.reason_edit)
        self.finish_layout()

    def apply(self) -> None:
        reason = self.reason_edit.toPlainText().strip()
        if not reason:
            raise XfrError("Write why the comparison is removed: the reason is recorded and printed in the report.")
        self.store.remove_comparison(self.comparison_id, reason)
