"""The wizard's first page: the training data (scanned on the training runner) and optional validation pairs."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QComboBox, QFileDialog, QFormLayout, QLabel, QLineEdit, QPushButton

from ...training_setup import DataSummary, scan_training_data
from .common import Page, browse_row


class DatasetPage(Page):
    def __init__(self):
        super().__init__("Training data", "A folder with one sub-folder of photos per person, or insightface "
                                          "RecordIO (train.rec + train.idx). Optionally, validation pairs.")
        self.path_edit = QLineEdit()
        self.path_edit.setObjectName("dataPath")
        self.path_edit.setPlaceholderText("folder of identity sub-folders, or train.rec")
        folder_btn = QPushButton("Folder…")
        folder_btn.clicked.connect(self.browse_folder)
        rec_btn = QPushButton("RecordIO…")
        rec_btn.clicked.connect(self.browse_rec)
        self.aligned_combo = QComboBox()
        self.aligned_combo.setObjectName("alignedCombo")
        self.aligned_combo.addItem("Detect automatically", "auto")
        self.aligned_combo.addItem("Raw photos: detect and align each face", False)
        self.aligned_combo.addItem("Aligned face crops already", True)
        self.val_edit = QLineEdit()
        self.val_edit.setObjectName("valPath")
        self.val_edit.setPlaceholderText("optional: LFW pairs.txt, CSV pairs or insightface .bin")
        val_btn = QPushButton("File…")
        val_btn.clicked.connect(self.browse_val)
        self.val_root_edit = QLineEdit()
        self.val_root_edit.setPlaceholderText("folder the pair list refers to (default: its own folder)")
        self.summary = QLabel()
        self.summary.setObjectName("dataSummary")
        self.summary.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("Data:", browse_row(self.path_edit, folder_btn, rec_btn))
        form.addRow("Images:", self.aligned_combo)
        form.addRow("Validation pairs:", browse_row(self.val_edit, val_btn))
        form.addRow("Pair images folder:", self.val_root_edit)
        form.addRow(self.summary)
        form.addRow(self.error_label)
        self.path_edit.textChanged.connect(self._path_changed)

    @Slot()
    def browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Training data folder")
        if path:
            self.path_edit.setText(path)

    @Slot()
    def browse_rec(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "insightface RecordIO", "", "RecordIO (*.rec)")
        if path:
            self.path_edit.setText(path)

    @Slot()
    def browse_val(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Validation pairs", "", "Pairs (*.txt *.csv *.bin);;All (*)")
        if path:
            self.val_edit.setText(path)

    @property
    def scanning(self) -> bool:
        return self.busy

    @Slot()
    def _path_changed(self) -> None:
        self.clear_error()
        self.forget_answer()

    def validatePage(self) -> bool:  # noqa: N802 - Qt API
        """The data is scanned on a task; Next is answered again once it is known."""
        self.clear_error()
        text = self.path_edit.text().strip()
        if not text:
            return self.fail("Choose the training data: a folder with one sub-folder per person, or train.rec.")
        path = Path(text).expanduser()
        known, summary = self.answer(path, lambda: scan_training_data(path))
        if not known:
            self.summary.setText("Checking the training data…")
            return False
        return self._accept(path, summary)

    def answered(self, summary: DataSummary) -> None:
        self.summary.setText(summary.text)

    def answer_failed(self) -> None:
        self.summary.clear()

    def _accept(self, path: Path, summary: DataSummary) -> bool:
        val = self.val_edit.text().strip()
        if val and not Path(val).expanduser().is_file():
            return self.fail(f"Validation pair file not found: {val}")
        root = self.val_root_edit.text().strip()
        if root and not Path(root).expanduser().is_dir():
            return self.fail(f"Pair images folder not found: {root}")
        st = self.state
        st.data_kind, st.n_images, st.n_identities = summary.kind, summary.n_images, summary.n_identities
        st.data = str(path)
        st.aligned = self.aligned_combo.currentData()
        st.val = str(Path(val).expanduser()) if val else None
        st.val_images_root = str(Path(root).expanduser()) if root else None
        return True
