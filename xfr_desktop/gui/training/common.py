"""What every page of the training wizard shares: the page base class (its error line, and Next answered after
work on the training runner) and small widgets and formats."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget, QWizardPage

from ...training_setup import TrainingSetup

CPU_WARN_SECONDS = 30 * 60


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    if seconds < 10:
        return f"{seconds:.2g} s"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    h, rem = divmod(seconds, 3600)
    m = rem // 60
    return f"{h} h {m:02d} min" if h else f"{m} min"


def error_label() -> QLabel:
    label = QLabel()
    label.setObjectName("errorLabel")
    label.setWordWrap(True)
    label.setStyleSheet("color: #e57373;")
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def browse_row(edit: QLineEdit, *buttons: QPushButton) -> QWidget:
    row = QWidget()
    lay = QHBoxLayout(row)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(edit, 1)
    for b in buttons:
        lay.addWidget(b)
    return row


def qpixmap(rgb: np.ndarray, scale: int = 1) -> QPixmap:
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    img = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    pix = QPixmap.fromImage(img)
    return pix.scaled(w * scale, h * scale) if scale != 1 else pix


class Page(QWizardPage):
    """A wizard page with an error line. :meth:`answer` lets ``validatePage`` wait for work on the training
    runner (reading files, loading a model) without blocking the GUI thread."""

    def __init__(self, title: str, subtitle: str = ""):
        super().__init__()
        self.setTitle(title)
        if subtitle:
            self.setSubTitle(subtitle)
        self.error_label = error_label()
        self._task = None
        self._answer: tuple | None = None     # (key, value) of the last task, until Next uses it

    @property
    def state(self) -> TrainingSetup:
        return self.wizard().state

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done

    def fail(self, message: str) -> bool:
        self.error_label.setText(message)
        return False

    def clear_error(self) -> None:
        self.error_label.clear()

    def forget_answer(self) -> None:
        self._answer = None

    def answer(self, key, work: Callable[[], object]) -> tuple[bool, object]:
        """(True, value) when ``work``'s value for ``key`` has come (taken once: the input may change before the
        next Next); else (False, None) after starting it, and Next is pressed again when it comes."""
        if self._answer is not None and self._answer[0] == key:
            value, self._answer = self._answer[1], None
            return True, value
        if not self.busy:
            self._task = self.wizard().controller.runner.start(
                lambda ctx: work(), finished=lambda value: self._answered(key, value), failed=self._failed)
        return False, None

    def _answered(self, key, value) -> None:
        self._answer = (key, value)
        self.answered(value)
        if self.wizard().currentPage() is self:
            self.wizard().next()

    def _failed(self, _kind: str, message: str) -> None:
        self.answer_failed()
        self.fail(message)

    def answered(self, value) -> None:
        """Show what the work found (before Next uses it)."""

    def answer_failed(self) -> None:
        """Clear what the page showed of earlier work."""
