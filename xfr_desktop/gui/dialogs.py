"""Dialogs: new case, face picker, About, and error messages that say what happened and what to do.

Every dialog the application opens goes through :func:`present`, which opens it window-modal (never a nested
event loop, so analyses and timers keep running) and then calls the registered dialog hooks. Tests (and
automation) register a hook with :func:`add_dialog_hook` to read and answer dialogs; the dialogs themselves run
their real logic.
"""
from __future__ import annotations

import getpass
import importlib.metadata
import platform
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QListWidget, QListWidgetItem, QMessageBox, QPlainTextEdit, QTabWidget,
                               QTextBrowser, QVBoxLayout, QWidget)

DialogHook = Callable[[QDialog], None]
_dialog_hooks: list[DialogHook] = []


def add_dialog_hook(hook: DialogHook) -> None:
    """``hook(dialog)`` runs right after any application dialog is opened."""
    _dialog_hooks.append(hook)


def remove_dialog_hook(hook: DialogHook) -> None:
    if hook in _dialog_hooks:
        _dialog_hooks.remove(hook)


def present(dialog: QDialog) -> QDialog:
    """Open ``dialog`` window-modal without blocking, then let the hooks see it."""
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    dialog.open()
    for hook in list(_dialog_hooks):
        hook(dialog)
    return dialog


# --- errors ------------------------------------------------------------------------------------------------
ADVICE = {
    "NoFaceError": ("No face was found",
                    "Check that the photo shows a face that is not too small, strongly turned or covered, and import"
                    " another photo if needed. If the photos are already aligned face crops, tick “Photos are"
                    " pre-aligned crops” in the Analysis menu and run again. The case is kept."),
    "FaceIndexError": ("The chosen face does not exist",
                       "Run the analysis again and pick one of the faces shown. The case is kept."),
    "ImageError": ("The file cannot be used as an image",
                   "Open it in an image viewer to check it; if it is damaged, get a fresh copy or re-export it as"
                   " JPEG or PNG and import it again. Nothing else in the case was changed."),
    "ModelFileError": ("The face-recognition model cannot be used",
                       "Choose a valid model file (Analysis ▸ Choose model…) or start the program with"
                       " --model PATH. The case is kept."),
    "StoreError": ("The case database cannot be written or read",
                   "Check that the data folder is writable and the disk is not full, then try again. Work saved"
                   " before is kept."),
}
DEFAULT_ADVICE = ("The analysis stopped unexpectedly",
                  "The case is kept. Try again; if it happens again, send this message to your administrator.")


def advice_for(kind: str) -> tuple[str, str]:
    return ADVICE.get(kind, DEFAULT_ADVICE)


def show_error(parent: QWidget | None, title: str, message: str, what_to_do: str, details: str | None = None
               ) -> QMessageBox:
    box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, parent)
    box.setObjectName("errorDialog")
    box.setInformativeText(what_to_do)
    if details:
        box.setDetailedText(details)
    return present(box)


def show_error_for(parent: QWidget | None, kind: str, message: str) -> QMessageBox:
    """An error dialog for an exception class name and its one-line message."""
    headline, what_to_do = advice_for(kind)
    if kind == "ModelFileError" and "CUDA" in message:
        headline, what_to_do = ("No CUDA device is available",
                                "Start the program with --device cpu (or without --device, to use CUDA only when"
                                " it is there). The case is kept.")
    return show_error(parent, headline, f"{headline}.\n\n{message}", what_to_do)


# --- new case ----------------------------------------------------------------------------------------------
class NewCaseDialog(QDialog):
    """``examiner``: the name to suggest (the examiner's preference, passed in by the window that owns the store);
    the operating-system login when none is set."""

    def __init__(self, parent: QWidget | None = None, suggested_number: str = "", examiner: str | None = None):
        super().__init__(parent)
        self.setWindowTitle("New case")
        self.setObjectName("newCaseDialog")
        self.number = QLineEdit(suggested_number)
        self.number.setPlaceholderText("e.g. 2026-0142 (required)")
        self.title_edit = QLineEdit()
        self.title_edit.setPlaceholderText("short description")
        self.examiner = QLineEdit(examiner or _login())
        self.organisation = QLineEdit()
        self.notes = QPlainTextEdit()
        self.notes.setPlaceholderText("context, exhibit numbers, instructions…")
        self.notes.setMinimumHeight(90)
        form = QFormLayout()
        form.setVerticalSpacing(8)
        form.addRow("Case &number:", self.number)
        form.addRow("&Title:", self.title_edit)
        form.addRow("&Examiner:", self.examiner)
        form.addRow("&Organisation:", self.organisation)
        form.addRow("N&otes:", self.notes)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Create case")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 12)
        layout.setSpacing(12)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self.number.textChanged.connect(self._validate)
        self._validate()
        self.resize(460, 360)

    def _validate(self) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(bool(self.number.text().strip()))

    def values(self) -> dict:
        return {
            "number": self.number.text().strip(), "title": self.title_edit.text().strip(),
            "examiner": self.examiner.text().strip(), "organisation": self.organisation.text().strip(),
            "notes": self.notes.toPlainText().strip(),
        }


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name on some sandboxes
        return ""


# --- several faces -----------------------------------------------------------------------------------------
def _qimage(rgb: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class FacePickerDialog(QDialog):
    """Shows the photo with numbered boxes; the examiner picks the face to compare."""

    def __init__(self, parent: QWidget | None, image: np.ndarray, boxes: list, name: str, side: str):
        super().__init__(parent)
        self.setObjectName("facePickerDialog")
        self.setWindowTitle(f"Several faces in {side.upper()}")
        self.side = side
        self.boxes = boxes
        info = QLabel(f"<b>{name}</b> shows {len(boxes)} faces. Pick the one to compare "
                      f"(1 is the largest).")
        info.setWordWrap(True)
        self.picture = QLabel()
        self.picture.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.picture.setToolTip("Click a face to choose it")
        self._scale = 1.0
        self.picture.setPixmap(self._annotated(image, boxes, 560))
        self.picture.installEventFilter(self)
        self.choices = QListWidget()
        for i, box in enumerate(boxes):
            x, y, w, h = (int(round(v)) for v in box)
            item = QListWidgetItem(f"Face {i + 1}: {w}×{h} px")
            item.setToolTip(f"box at ({x}, {y}) in the photo")
            item.setData(Qt.ItemDataRole.UserRole, i)
            self.choices.addItem(item)
        self.choices.setCurrentRow(0)
        self.choices.setFixedWidth(170)
        self.choices.itemDoubleClicked.connect(self.accept)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Use this face")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        body = QHBoxLayout()
        body.addWidget(self.picture, 1)
        body.addWidget(self.choices)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 12)
        layout.setSpacing(10)
        layout.addWidget(info)
        layout.addLayout(body, 1)
        layout.addWidget(buttons)

    def eventFilter(self, watched, event) -> bool:
        if watched is self.picture and event.type() == QEvent.Type.MouseButtonPress:
            pos = event.position()
            index = self.face_at(pos.x() / self._scale, pos.y() / self._scale)
            if index is not None:
                self.choose(index)
            return True
        return super().eventFilter(watched, event)

    def face_at(self, x: float, y: float) -> int | None:
        """The smallest box containing the photo point (x, y) (boxes may nest), or None."""
        inside = [(float(b[2] * b[3]), i) for i, b in enumerate(self.boxes)
                  if b[0] <= x <= b[0] + b[2] and b[1] <= y <= b[1] + b[3]]
        return min(inside)[1] if inside else None

    def _annotated(self, image: np.ndarray, boxes: list, max_side: int) -> QPixmap:
        pix = QPixmap.fromImage(_qimage(image))
        scale = min(1.0, max_side / max(pix.width(), pix.height()))
        self._scale = scale
        if scale < 1.0:
            pix = pix.scaled(int(pix.width() * scale), int(pix.height() * scale),
                             Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        painter = QPainter(pix)
        font = QFont()
        font.setBold(True)
        font.setPointSize(12)
        painter.setFont(font)
        for i, box in enumerate(boxes):
            x, y, w, h = (float(v) * scale for v in box)
            painter.setPen(QPen(QColor("#4fc3f7"), 3))
            painter.drawRect(int(x), int(y), int(w), int(h))
            painter.fillRect(int(x), int(y) - 20, 22, 20, QColor("#4fc3f7"))
            painter.setPen(QColor("#000000"))
            painter.drawText(int(x) + 5, int(y) - 4, str(i + 1))
        painter.end()
        return pix

    def face_index(self) -> int:
        item = self.choices.currentItem()
        return int(item.data(Qt.ItemDataRole.UserRole)) if item is not None else 0

    def choose(self, index: int) -> None:
        self.choices.setCurrentRow(int(index))


# --- about -------------------------------------------------------------------------------------------------
def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    """Versions of the parts that matter for reproducibility (without importing torch)."""
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import qVersion

    from .. import __version__

    return {
        "XFR Desktop": __version__, "Python": platform.python_version(), "PyTorch": _version("torch"),
        "Qt": qVersion(), "PySide6": pyside_version, "pyqtgraph": _version("pyqtgraph"), "NumPy": _version("numpy"),
        "OpenCV": _version("opencv-python-headless"), "Platform": platform.platform(terse=True),
    }


def model_card_text() -> str:
    from ..core.model import MODELS_DIR
    from ..paths import REPO_ROOT

    for folder in (Path(MODELS_DIR), REPO_ROOT / "models"):
        card = folder / "README.md"
        if card.is_file():
            return card.read_text(encoding="utf-8", errors="replace")
    return "No model card found (models/README.md is missing)."


class AboutDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, model_info: str = ""):
        super().__init__(parent)
        self.setObjectName("aboutDialog")
        self.setWindowTitle("About XFR Desktop")
        head = QLabel(
            "<h2>XFR Desktop</h2><p>Explainable face recognition for forensic examiners: Discriminative Deep"
            " Feature Visualization (Xu, Lu &amp; Ebrahimi) shows which regions make two faces look alike"
            " (S⁺) or different (S⁻) to the model.</p>"
            "<p>Maps explain the model's decision; they are not themselves evidence of identity.</p>")
        head.setWordWrap(True)
        rows = "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{v}</td></tr>" for k, v in versions().items())
        if model_info:
            rows += f"<tr><td><b>Model</b>&nbsp;&nbsp;</td><td>{model_info}</td></tr>"
        self.versions_label = QLabel(f"<table>{rows}</table>")
        self.versions_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.card = QTextBrowser()
        self.card.setOpenExternalLinks(False)
        self.card.setMarkdown(model_card_text())
        tabs = QTabWidget()
        page = QWidget()
        lay = QVBoxLayout(page)
        lay.addWidget(head)
        lay.addWidget(self.versions_label)
        lay.addStretch(1)
        tabs.addTab(page, "About")
        tabs.addTab(self.card, "Model card")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 12)
        layout.addWidget(tabs)
        layout.addWidget(buttons)
        self.resize(620, 520)
