"""The review page: the settings as the equivalent command and TOML, saved on request; Start begins the run."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QFileDialog, QPlainTextEdit, QPushButton, QVBoxLayout, QWizard

from .common import Page, fmt_duration


class ReviewPage(Page):
    def __init__(self):
        super().__init__("Review", "Training starts when you click Start.")
        self.text = QPlainTextEdit()
        self.text.setObjectName("reviewText")
        self.text.setReadOnly(True)
        save_btn = QPushButton("Save settings as TOML…")
        save_btn.clicked.connect(self.save_toml)
        lay = QVBoxLayout(self)
        lay.addWidget(self.text)
        lay.addWidget(save_btn, 0, Qt.AlignmentFlag.AlignLeft)
        lay.addWidget(self.error_label)
        self.setCommitPage(True)
        self.setButtonText(QWizard.WizardButton.CommitButton, "Start training")

    def initializePage(self) -> None:  # noqa: N802
        st = self.state
        data = (f"{st.n_images} images of {st.n_identities} identities" if st.data_kind == "folder"
                else f"RecordIO, {st.n_images} records")
        lines = [
            f"Data: {st.data} ({data})",
            f"Validation: {st.val or 'pairs drawn from the training images (optimistic)'}",
            f"Base model: {st.base_info.description}",
            f"Device: {st.device}" + (f" and {st.gpus - 1} more GPU(s), one process each" if st.gpus > 1 else "")
            + f"; estimated time: {fmt_duration(st.estimate_s)}" + (" (one GPU)" if st.gpus > 1 else ""),
            "",
            "Equivalent command:  " + (f"torchrun --standalone --nproc_per_node {st.gpus} -m xfr_desktop.cli train "
                                       "--config settings.toml" if st.gpus > 1 else "xfr train --config settings.toml"),
            "",
            st.config.to_toml(),
        ]
        self.text.setPlainText("\n".join(lines))

    @Slot()
    def save_toml(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save settings", "train.toml", "TOML (*.toml)")
        if path:
            try:
                Path(path).write_text(self.state.config.to_toml(), encoding="utf-8")
            except OSError as exc:
                self.fail(f"Cannot save {path}: {exc.strerror or exc}")
