"""The mode and hyperparameters page: what the run trains, for how long, where it writes; a resumed run keeps its
checkpoint's mode, loss and folder."""
from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QLineEdit, QPushButton, QSpinBox

from ...core.errors import XfrError
from ...training_setup import default_model_name, default_run_folder, make_config
from .common import Page, browse_row


def _double(value, lo, hi, decimals, name) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setObjectName(name)
    box.setDecimals(decimals)
    box.setRange(lo, hi)
    box.setValue(value)
    return box


class HyperparametersPage(Page):
    def __init__(self):
        super().__init__("Mode and hyperparameters",
                         "Joint trains recognition and reconstruction together; decoder only keeps the "
                         "recognition part frozen (the explanations change, the scores do not).")
        self.mode_combo = QComboBox()
        self.mode_combo.setObjectName("modeCombo")
        self.mode_combo.addItem("Joint (backbone + decoder)", "joint")
        self.mode_combo.addItem("Decoder only (backbone frozen)", "decoder")
        self.loss_combo = QComboBox()
        self.loss_combo.setObjectName("lossCombo")
        self.loss_combo.addItem("ArcFace on the identities (s = 64, m = 0.5)", "arcface")
        self.loss_combo.addItem("Distillation towards the base model", "distill")
        self.epochs = QSpinBox()
        self.epochs.setObjectName("epochs")
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(10)
        self.max_steps = QSpinBox()
        self.max_steps.setObjectName("maxSteps")
        self.max_steps.setRange(0, 10_000_000)
        self.max_steps.setSpecialValueText("no limit")
        self.batch = QSpinBox()
        self.batch.setObjectName("batchSize")
        self.batch.setRange(2, 4096)
        self.batch.setValue(64)
        self.lr_rec = _double(0.02, 1e-6, 10.0, 5, "lrRecognition")
        self.lr_dec = _double(2e-4, 1e-7, 1.0, 6, "lrDecoder")
        self.recon_weight = _double(1.0, 0.0, 1000.0, 3, "reconWeight")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2 ** 31 - 1)
        self.out_edit = QLineEdit()
        self.out_edit.setObjectName("outPath")
        out_btn = QPushButton("Folder…")
        out_btn.clicked.connect(self.browse_out)
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("modelName")
        form = QFormLayout(self)
        form.addRow("Mode:", self.mode_combo)
        form.addRow("Identity loss:", self.loss_combo)
        form.addRow("Epochs:", self.epochs)
        form.addRow("Stop after steps:", self.max_steps)
        form.addRow("Batch size:", self.batch)
        form.addRow("Recognition learning rate (SGD):", self.lr_rec)
        form.addRow("Decoder learning rate (Adam):", self.lr_dec)
        form.addRow("Reconstruction weight λ:", self.recon_weight)
        form.addRow("Seed:", self.seed)
        form.addRow("Run folder:", browse_row(self.out_edit, out_btn))
        form.addRow("New model's name:", self.name_edit)
        form.addRow(self.error_label)
        self.mode_combo.currentIndexChanged.connect(self.mode_changed)
        self.out_edit.textChanged.connect(self.clear_error)

    @Slot()
    def mode_changed(self) -> None:
        joint = self.mode_combo.currentData() == "joint"
        self.loss_combo.setEnabled(joint and not self.state.resuming)
        self.lr_rec.setEnabled(joint)

    @Slot()
    def browse_out(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Run folder")
        if path:
            self.out_edit.setText(path)

    def initializePage(self) -> None:  # noqa: N802
        if self.state.resuming:
            self._show_resume_settings(self.state.resume)
        else:
            self.mode_combo.setEnabled(True)
            self.mode_changed()
            if not self.out_edit.text():
                store = self.wizard().store
                self.out_edit.setText(str(default_run_folder(store.data_dir if store is not None else None)))
        if not self.name_edit.text():
            self.name_edit.setText(default_model_name(self.state.base_info))
        self.batch.setMaximum(max(2, self.state.n_images) if self.state.n_images else 4096)

    def _show_resume_settings(self, resume) -> None:
        """The checkpoint's mode and loss (fixed), folder, epochs, batch, seed and name."""
        for combo, value in ((self.mode_combo, resume.mode), (self.loss_combo, resume.loss)):
            idx = combo.findData(value)
            if idx >= 0:
                combo.setCurrentIndex(idx)
        self.mode_combo.setEnabled(False)
        self.loss_combo.setEnabled(False)
        self.out_edit.setText(resume.out)
        self.epochs.setValue(resume.epochs)
        if resume.batch_size is not None:
            self.batch.setValue(resume.batch_size)
        self.seed.setValue(resume.seed)
        if resume.name:
            self.name_edit.setText(resume.name)

    def validatePage(self) -> bool:  # noqa: N802
        self.clear_error()
        try:
            self.state.config = make_config(
                self.state, self.out_edit.text(), mode=self.mode_combo.currentData(),
                loss=self.loss_combo.currentData(), epochs=self.epochs.value(),
                max_steps=self.max_steps.value() or None, batch_size=self.batch.value(),
                lr_recognition=self.lr_rec.value(), lr_decoder=self.lr_dec.value(),
                recon_weight=self.recon_weight.value(), seed=self.seed.value(),
                name=self.name_edit.text().strip() or None)
        except XfrError as exc:
            return self.fail(str(exc))
        return True
