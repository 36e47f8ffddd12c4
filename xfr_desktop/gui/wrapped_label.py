"""A word-wrapped label that is always drawn as high as its text needs at its width.

QFormLayout does not always give a wrapped label its height-for-width (depending on the font and on the order of
the layout's events, a three-line label was drawn two lines high); every layout honours a minimum height, so the
label keeps its minimum height equal to the height its text needs at its current width.
"""
from __future__ import annotations

from PySide6.QtWidgets import QLabel, QWidget


class WrappedLabel(QLabel):
    def __init__(self, text: str = "", parent: QWidget | None = None):
        super().__init__(text, parent)
        self.setWordWrap(True)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        super().setText(text)
        self._fit()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        need = self.heightForWidth(self.width())
        if need > 0 and need != self.minimumHeight():
            self.setMinimumHeight(need)   # the layout runs again with the new minimum
