"""The shape every small form dialog of the app shares: fields, a status line (red for an error, which goes as soon
as the examiner edits a field), and a button box whose one default button Enter triggers (Qt would otherwise make
the first "Browse…" the default, so Enter opened a file dialog)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit,
                               QPushButton, QVBoxLayout, QWidget)

ERROR_STYLE = "color: #b00020;"
WARNING_STYLE = "color: #a34f00;"


def row(*widgets) -> QWidget:
    """Widgets side by side, for one form row (a field and its Browse… button)."""
    holder = QWidget()
    lay = QHBoxLayout(holder)
    lay.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        lay.addWidget(widget)
    return holder


class FormDialog(QDialog):
    def __init__(self, parent, title: str, min_width: int = 560):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(min_width)
        self.form = QFormLayout()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.layout_ = QVBoxLayout(self)
        self.layout_.addLayout(self.form)

    def finish(self, buttons: QDialogButtonBox, default: QPushButton) -> None:
        """Status line and buttons at the bottom; ``default`` is what Enter presses."""
        self.buttons = buttons
        self.layout_.addWidget(self.status)
        self.layout_.addWidget(buttons)
        for button in self.findChildren(QPushButton):
            button.setAutoDefault(False)
        default.setDefault(True)
        for edit in self.findChildren(QLineEdit):
            edit.textEdited.connect(self.clear_error)
        for edit in self.findChildren(QPlainTextEdit):
            edit.textChanged.connect(self.clear_error)

    def show_error(self, message: str) -> None:
        self.status.setStyleSheet(ERROR_STYLE)
        self.status.setText(message)

    def show_warning(self, message: str) -> None:
        """Not a failure, but something the examiner must not overlook (orange)."""
        self.status.setStyleSheet(WARNING_STYLE)
        self.status.setText(message)

    def show_info(self, message: str) -> None:
        self.status.setStyleSheet("")
        self.status.setText(message)

    def clear_error(self, *_) -> None:
        """A corrected field makes the last error stale."""
        if self.status.styleSheet():
            self.show_info("")
