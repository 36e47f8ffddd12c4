"""The question the main window asks when it is closed during an analysis: Yes cancels the analysis and closes,
No keeps both. The box does not block: the analysis goes on while it is open."""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtWidgets import QDialog, QMessageBox, QWidget

from .dialogs import present

QUIT_QUESTION = "An analysis is running. Quit and cancel it?"


class QuitQuestion(QObject):
    """Asked from the window's ``closeEvent`` through :meth:`may_close`; a later Yes closes the window again."""

    def __init__(self, window: QWidget):
        super().__init__(window)
        self.window = window
        self.confirmed = False     # the examiner agreed to cancel a running analysis by quitting
        self._asking = False       # the box is being opened inside closeEvent (a hook may answer at once)
        self._box: QMessageBox | None = None

    def may_close(self, busy: bool) -> bool:
        """True when the window may close now; False leaves it open with the question asked."""
        if busy and not self.confirmed:
            self._ask()
        return not busy or self.confirmed

    def _ask(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Question, "Quit XFR Desktop", QUIT_QUESTION,
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self.window)
        box.setObjectName("quitDialog")
        box.setInformativeText("Nothing is saved for the running analysis; the case and its earlier results are "
                               "kept.")
        box.setDefaultButton(QMessageBox.StandardButton.No)
        # a bound slot, not a lambda holding the box: the box deletes itself on close (PySide crashed on that)
        self._box = box
        box.finished.connect(self._box_finished)
        self._asking = True
        try:
            present(box)
        finally:
            self._asking = False

    @Slot(int)
    def _box_finished(self, code: int) -> None:
        box, self._box = self._box, None
        # Qt versions differ in the code a Yes click finishes with: ask the box which button it was
        clicked = box.clickedButton() if box is not None else None
        yes = clicked is not None and box.standardButton(clicked) == QMessageBox.StandardButton.Yes
        if (yes or code == QDialog.DialogCode.Accepted) and not self.confirmed:
            self.confirmed = True
            if not self._asking:  # answered later: close once the box has finished its click
                QTimer.singleShot(0, self.window, self.window.close)
