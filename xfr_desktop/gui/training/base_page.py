"""The base model page: the bundled model, a model file, or a previous run to resume (inspected on the training
runner: it loads the model or the checkpoint)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QButtonGroup, QFileDialog, QLabel, QLineEdit, QPushButton, QRadioButton, QVBoxLayout

from ...training_setup import BaseChoice, choose_base
from .common import Page, browse_row


class BaseModelPage(Page):
    def __init__(self):
        super().__init__("Base model", "The model to start from.")
        self.bundled_radio = QRadioButton("The bundled model")
        self.bundled_radio.setObjectName("baseBundled")
        self.file_radio = QRadioButton("A model file: an XFR model (.pt) or an insightface IResNet backbone.pth")
        self.file_radio.setObjectName("baseFile")
        self.resume_radio = QRadioButton("Resume a previous run (its folder or checkpoint.pt)")
        self.resume_radio.setObjectName("baseResume")
        self.group = QButtonGroup(self)
        for b in (self.bundled_radio, self.file_radio, self.resume_radio):
            self.group.addButton(b)
        self.bundled_radio.setChecked(True)
        self.path_edit = QLineEdit()
        self.path_edit.setObjectName("basePath")
        file_btn = QPushButton("File…")
        file_btn.clicked.connect(self.browse_file)
        dir_btn = QPushButton("Run folder…")
        dir_btn.clicked.connect(self.browse_dir)
        self.summary = QLabel()
        self.summary.setObjectName("baseSummary")
        self.summary.setWordWrap(True)
        lay = QVBoxLayout(self)
        for b in (self.bundled_radio, self.file_radio, self.resume_radio):
            lay.addWidget(b)
        lay.addWidget(browse_row(self.path_edit, file_btn, dir_btn))
        lay.addWidget(self.summary)
        lay.addWidget(self.error_label)
        lay.addStretch(1)
        self.path_edit.textChanged.connect(self.path_typed)
        self.group.buttonClicked.connect(self.clear_error)

    @Slot()
    def path_typed(self) -> None:
        self.clear_error()
        if self.path_edit.text().strip() and self.bundled_radio.isChecked():
            self.file_radio.setChecked(True)

    @Slot()
    def browse_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Base model", "", "PyTorch (*.pt *.pth);;All (*)")
        if path:
            self.path_edit.setText(path)

    @Slot()
    def browse_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Previous run folder")
        if path:
            self.path_edit.setText(path)
            self.resume_radio.setChecked(True)

    def validatePage(self) -> bool:  # noqa: N802
        """The base is inspected on a task (loading the bundled model takes a while); Next is answered again once
        it is known."""
        self.clear_error()
        base = None
        if not self.bundled_radio.isChecked():
            text = self.path_edit.text().strip()
            if not text:
                return self.fail("Choose the model file or the run folder.")
            base = str(Path(text).expanduser())
        known, choice = self.answer(base, lambda: choose_base(base))
        return known and self._accept(base, choice)

    def answer_failed(self) -> None:
        self.summary.clear()

    def _accept(self, base: str | None, choice: BaseChoice) -> bool:
        info = choice.info
        if self.resume_radio.isChecked() and info.kind != "checkpoint":
            return self.fail(f"{base} is a {info.description}, not a training checkpoint; choose “A model file” to "
                             "start a new run from it.")
        if self.file_radio.isChecked() and info.kind == "checkpoint":
            return self.fail("This is a training checkpoint; choose “Resume a previous run” to continue it.")
        self.state.use_base(base, choice)
        h, w = info.spec["input_size"]
        self.summary.setText(f"{info.description}: input {h}x{w}, {info.spec.get('channels')} channels.")
        return True
