"""The training wizard: dataset -> base model -> mode and hyperparameters -> device -> review -> run -> result.

Each page checks its input in ``validatePage`` and shows what is wrong in red on the page itself (empty or
unreadable folders, too few identities or images, a checkpoint of the wrong family, too little disk space).
The run uses :class:`xfr_desktop.core.training.engine.Trainer` on a task (``gui/tasks.py``), as do the
dataset scan and the step-time estimates; the GUI thread sets the pause and cancel ``threading.Event``s directly
and receives progress through queued signals. The finished model is registered in the store with its model card
and made active on request.

Open it with :func:`open_training_wizard` (window-modal, non-blocking).
"""
from __future__ import annotations

import datetime as _dt
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGridLayout, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit,
                               QProgressBar, QPushButton, QRadioButton, QSpinBox, QTextBrowser, QVBoxLayout,
                               QWidget, QWizard, QWizardPage)

from ..core.errors import XfrError
from .tasks import TaskRunner

log = logging.getLogger(__name__)

MIN_IDENTITIES = 2
MIN_IMAGES = 4
CPU_WARN_SECONDS = 30 * 60


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "unknown"
    if seconds < 10:
        return f"{seconds:.2g} s"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    h, rem = divmod(seconds, 3600)
    m = rem // 60
    return f"{h} h {m:02d} min" if h else f"{m} min"


def _error_label() -> QLabel:
    label = QLabel()
    label.setObjectName("errorLabel")
    label.setWordWrap(True)
    label.setStyleSheet("color: #e57373;")
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def _browse_row(edit: QLineEdit, *buttons: QPushButton) -> QWidget:
    row = QWidget()
    lay = QHBoxLayout(row)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(edit, 1)
    for b in buttons:
        lay.addWidget(b)
    return row


def _qpixmap(rgb: np.ndarray, scale: int = 1) -> QPixmap:
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    img = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    pix = QPixmap.fromImage(img)
    return pix.scaled(w * scale, h * scale) if scale != 1 else pix


@dataclass
class WizardState:
    """What the pages have settled, in plain data (read by later pages and the worker)."""

    data: str = ""
    data_kind: str = ""              # folder | recordio
    n_images: int = 0
    n_identities: int = 0
    aligned: object = "auto"
    val: str | None = None
    val_images_root: str | None = None
    base: str | None = None
    base_info: object = None         # engine.BaseModelInfo
    config: object = None            # engine.TrainConfig (set by the hyperparameter page)
    device: str = "cpu"
    gpus: int = 1                    # > 1: one process per GPU (torchrun), see core/training/launcher.py
    estimate_s: float | None = None
    result: object = None            # engine.TrainResult
    error: str | None = None
    registered: object = None        # store ModelRecord
    history: list = field(default_factory=list)


# --- background work ----------------------------------------------------------------------------------------
class TrainingController(QObject):
    """Runs the trainer and step-time estimates on the ``xfr-training`` task runner (lives on the GUI thread).

    The GUI thread sets the pause Event directly; cancelling sets the task's cancel Event, which the trainer polls.
    """

    progress = Signal(object)        # TrainingProgress
    result = Signal(object)          # TrainResult (cancelled or finished)
    error = Signal(str, str)         # exception class name, one-line message
    estimated = Signal(str, float, int)   # device, seconds per step (nan if it failed), request number

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.runner = TaskRunner("xfr-training", self)
        self.pause_event = threading.Event()
        self._run = None

    @property
    def running(self) -> bool:
        return self._run is not None and not self._run.done

    def start(self, config, gpus: int = 1) -> None:
        self.pause_event.clear()
        self._run = self.runner.start(lambda ctx: self._train(config, ctx, gpus), progress=self.progress,
                                      finished=self.result, failed=self.error)

    def _train(self, config, ctx, gpus: int = 1):
        from ..core.training.engine import Trainer, TrainingError

        if gpus > 1:  # one process per GPU; pausing does not apply, cancelling does
            from ..core.training.launcher import train_in_processes

            return train_in_processes(config, gpus, callback=ctx.progress, cancel_event=ctx.cancel_event)
        try:
            return Trainer(config, callback=ctx.progress, pause_event=self.pause_event,
                           cancel_event=ctx.cancel_event).run()
        except MemoryError:  # the one failure whose remedy the wizard knows
            raise TrainingError("out of memory: lower the batch size") from None

    def request_estimate(self, device: str, spec: dict, batch_size: int, mode: str, request: int) -> None:
        """Time a training step on ``device`` (a few seconds on a CPU) off the GUI thread; the answer comes as
        :attr:`estimated` (queued behind a running training, which never happens from the device page)."""
        self.runner.start(lambda ctx: _estimate_step(device, spec, batch_size, mode),
                          finished=lambda seconds: self.estimated.emit(device, seconds, request))

    def set_paused(self, paused: bool) -> None:
        (self.pause_event.set if paused else self.pause_event.clear)()

    def cancel(self) -> None:
        if self._run is not None:
            self._run.cancel()
        self.pause_event.clear()

    def shutdown(self, wait_ms: int = 120000) -> None:
        """Cancel a run (it writes its checkpoint) and stop the thread."""
        self.pause_event.clear()
        self.runner.shutdown(wait_ms)


def _estimate_step(device: str, spec: dict, batch_size: int, mode: str) -> float:
    try:
        from ..core.model import JointModel
        from ..core.training.engine import estimate_step_seconds

        return float(estimate_step_seconds(JointModel(spec), batch_size, device, mode))  # random weights time the same
    except Exception as exc:  # noqa: BLE001 - an estimate must not stop the wizard
        log.warning("time estimate failed: %s", exc)
        return float("nan")


@dataclass
class DataSummary:
    kind: str              # "folder" or "recordio"
    n_images: int
    n_identities: int      # 0 for RecordIO: counted when training starts
    text: str


def scan_training_data(path: Path) -> DataSummary:
    """Check the training data the examiner chose (reads a few files: seconds on a slow disk, hence a task)."""
    from ..core.training.datasets import DatasetError, scan_identity_folder
    from ..core.training.engine import recordio_file

    rec = recordio_file(path)
    if rec is not None:
        return _scan_recordio(rec)
    scan = scan_identity_folder(path, MIN_IDENTITIES, MIN_IMAGES)
    problems = _unreadable(p for p, _ in scan.files[:3])
    if len(problems) == len(scan.files[:3]):
        raise DatasetError("None of the first images can be read: " + "; ".join(problems))
    singles = sum(1 for n in scan.per_class.values() if n < 2)
    note = f" ({singles} with a single image)" if singles else ""
    return DataSummary("folder", scan.n_images, len(scan.classes),
                       f"{scan.n_images} images of {len(scan.classes)} identities{note}.")


def _unreadable(paths) -> list[str]:
    from ..core.training.datasets import read_image

    problems = []
    for p in paths:
        try:
            read_image(p)
        except XfrError as exc:
            problems.append(str(exc))
    return problems


def _scan_recordio(rec: Path) -> DataSummary:
    from ..core.training.datasets import RecordIOReader, unpack_record_payload

    reader = RecordIOReader(rec)
    try:
        keys = sorted(reader.offsets)
        unpack_record_payload(reader.read(keys[-1]), f"record {keys[-1]}")  # last record readable
    finally:
        reader.close()
    return DataSummary("recordio", len(keys), 0,
                       f"RecordIO with {len(keys)} records (identities are counted when training starts).")


# --- pages --------------------------------------------------------------------------------------------------
class _Page(QWizardPage):
    def __init__(self, title: str, subtitle: str = ""):
        super().__init__()
        self.setTitle(title)
        if subtitle:
            self.setSubTitle(subtitle)
        self.error_label = _error_label()

    @property
    def state(self) -> WizardState:
        return self.wizard().state

    def fail(self, message: str) -> bool:
        self.error_label.setText(message)
        return False

    def clear_error(self) -> None:
        self.error_label.clear()


class DatasetPage(_Page):
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
        form.addRow("Data:", _browse_row(self.path_edit, folder_btn, rec_btn))
        form.addRow("Images:", self.aligned_combo)
        form.addRow("Validation pairs:", _browse_row(self.val_edit, val_btn))
        form.addRow("Pair images folder:", self.val_root_edit)
        form.addRow(self.summary)
        form.addRow(self.error_label)
        self.path_edit.textChanged.connect(self._path_changed)
        self._scan_task = None
        self._scanned: tuple[Path, DataSummary] | None = None   # the last scan, until Next uses it

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
        return self._scan_task is not None and not self._scan_task.done

    @Slot()
    def _path_changed(self) -> None:
        self.clear_error()
        self._scanned = None

    def validatePage(self) -> bool:  # noqa: N802 - Qt API
        """The data is scanned on a task; Next is answered again (by :meth:`_scan_done`) once it is known."""
        self.clear_error()
        text = self.path_edit.text().strip()
        if not text:
            return self.fail("Choose the training data: a folder with one sub-folder per person, or train.rec.")
        path = Path(text).expanduser()
        if self._scanned is None or self._scanned[0] != path:
            if not self.scanning:
                self.summary.setText("Checking the training data…")
                self._scan_task = self.wizard().controller.runner.start(
                    lambda ctx: scan_training_data(path), finished=lambda s: self._scan_done(path, s),
                    failed=self._scan_failed)
            return False
        summary, self._scanned = self._scanned[1], None   # scanned once per Next: the folder may change
        return self._accept(path, summary)

    def _scan_done(self, path: Path, summary: DataSummary) -> None:
        self._scanned = (path, summary)
        self.summary.setText(summary.text)
        if self.wizard().currentPage() is self:
            self.wizard().next()

    @Slot(str, str)
    def _scan_failed(self, _kind: str, message: str) -> None:
        self.summary.clear()
        self.fail(message)

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


class BaseModelPage(_Page):
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
        lay.addWidget(_browse_row(self.path_edit, file_btn, dir_btn))
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
        from ..core.training.engine import inspect_base

        self.clear_error()
        base = None
        if not self.bundled_radio.isChecked():
            text = self.path_edit.text().strip()
            if not text:
                return self.fail("Choose the model file or the run folder.")
            base = str(Path(text).expanduser())
        try:
            info = inspect_base(base)
        except XfrError as exc:
            self.summary.clear()
            return self.fail(str(exc))
        if self.resume_radio.isChecked() and info.kind != "checkpoint":
            return self.fail(f"{base} is a {info.description}, not a training checkpoint; choose “A model file” to "
                             "start a new run from it.")
        if self.file_radio.isChecked() and info.kind == "checkpoint":
            return self.fail("This is a training checkpoint; choose “Resume a previous run” to continue it.")
        self.state.base, self.state.base_info = base, info
        h, w = info.spec["input_size"]
        self.summary.setText(f"{info.description}: input {h}x{w}, {info.spec.get('channels')} channels.")
        return True


class HyperparametersPage(_Page):
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
        self.lr_rec = self._double(0.02, 1e-6, 10.0, 5, "lrRecognition")
        self.lr_dec = self._double(2e-4, 1e-7, 1.0, 6, "lrDecoder")
        self.recon_weight = self._double(1.0, 0.0, 1000.0, 3, "reconWeight")
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
        form.addRow("Run folder:", _browse_row(self.out_edit, out_btn))
        form.addRow("New model's name:", self.name_edit)
        form.addRow(self.error_label)
        self.mode_combo.currentIndexChanged.connect(self.mode_changed)
        self.out_edit.textChanged.connect(self.clear_error)

    def _double(self, value, lo, hi, decimals, name) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setObjectName(name)
        box.setDecimals(decimals)
        box.setRange(lo, hi)
        box.setValue(value)
        return box

    @Slot()
    def mode_changed(self) -> None:
        joint = self.mode_combo.currentData() == "joint"
        self.loss_combo.setEnabled(joint and not self._resuming())
        self.lr_rec.setEnabled(joint)

    def _resuming(self) -> bool:
        info = self.state.base_info
        return info is not None and info.kind == "checkpoint"

    @Slot()
    def browse_out(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Run folder")
        if path:
            self.out_edit.setText(path)

    def _default_out(self) -> Path:
        store = self.wizard().store
        root = Path(store.data_dir) / "training" if store is not None else Path.home() / "xfr-training"
        return root / _dt.datetime.now().strftime("run-%Y%m%d-%H%M%S")

    def initializePage(self) -> None:  # noqa: N802
        info = self.state.base_info
        if self._resuming():
            import json

            import torch

            ck = torch.load(info.checkpoint_path, map_location="cpu", weights_only=True)
            saved = json.loads(ck.get("config_json", "{}"))
            for combo, value in ((self.mode_combo, ck.get("mode")), (self.loss_combo, ck.get("loss"))):
                idx = combo.findData(value)
                if idx >= 0:
                    combo.setCurrentIndex(idx)
            self.mode_combo.setEnabled(False)
            self.loss_combo.setEnabled(False)
            self.out_edit.setText(str(Path(info.checkpoint_path).parent))
            self.epochs.setValue(max(int(saved.get("epochs", 1)), int(ck.get("epoch", 0)) + 1))
            self.batch.setValue(int(saved.get("batch_size", self.batch.value())))
            self.seed.setValue(int(saved.get("seed", 0)))
            if saved.get("name"):
                self.name_edit.setText(saved["name"])
        else:
            self.mode_combo.setEnabled(True)
            self.mode_changed()
            if not self.out_edit.text():
                self.out_edit.setText(str(self._default_out()))
        if not self.name_edit.text():
            base_name = info.spec.get("name", "model") if info is not None else "model"
            self.name_edit.setText(f"{base_name}-ft-{_dt.date.today():%Y%m%d}")
        self.batch.setMaximum(max(2, self.state.n_images) if self.state.n_images else 4096)

    def validatePage(self) -> bool:  # noqa: N802
        from ..core.training.engine import (CHECKPOINT_NAME, TrainConfig, TrainingError, check_disk_space,
                                            planned_steps, required_disk_bytes_for_spec)

        self.clear_error()
        st = self.state
        out_text = self.out_edit.text().strip()
        if not out_text:
            return self.fail("Choose a run folder for the checkpoints, the log and the new model.")
        out = Path(out_text).expanduser()
        if out.exists() and not out.is_dir():
            return self.fail(f"The run folder is a file: {out}")
        if (out / CHECKPOINT_NAME).exists() and not self._resuming():
            return self.fail(f"{out} holds a previous run; choose another folder, or go back and resume it.")
        try:
            check_disk_space(out, required_disk_bytes_for_spec(st.base_info.spec))
            config = TrainConfig(
                data=st.data, out=str(out), base=st.base, mode=self.mode_combo.currentData(),
                loss=self.loss_combo.currentData(), epochs=self.epochs.value(),
                max_steps=self.max_steps.value() or None, batch_size=self.batch.value(),
                lr_recognition=self.lr_rec.value(), lr_decoder=self.lr_dec.value(),
                recon_weight=self.recon_weight.value(), seed=self.seed.value(), aligned=st.aligned,
                val=st.val, val_images_root=st.val_images_root, name=self.name_edit.text().strip() or None,
                samples=4,
                log_every=max(1, min(10, planned_steps(st.n_images or 1000, self.batch.value(),
                                                       self.epochs.value(), self.max_steps.value() or None) // 50)),
            )
            config.validate()
        except (TrainingError, XfrError) as exc:
            return self.fail(str(exc))
        except OSError as exc:
            return self.fail(f"The run folder cannot be used: {exc.strerror or exc}")
        st.config = config
        return True


class DevicePage(_Page):
    def __init__(self):
        super().__init__("Device", "Where the training runs.")
        self.device_combo = QComboBox()
        self.device_combo.setObjectName("deviceCombo")
        self.gpus_spin = QSpinBox()  # shown when more than one CUDA device is present
        self.gpus_spin.setObjectName("gpuCount")
        self.gpus_spin.setToolTip("Train in one process per GPU (torchrun); the batch size is the total over GPUs")
        self.amp_check = QCheckBox("Mixed precision (faster on CUDA)")
        self.amp_check.setChecked(True)
        self.estimate_label = QLabel()
        self.estimate_label.setObjectName("estimateLabel")
        self.estimate_label.setWordWrap(True)
        self.warning_label = QLabel()
        self.warning_label.setObjectName("cpuWarning")
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet("color: #ffb74d;")
        form = QFormLayout(self)
        form.addRow("Device:", self.device_combo)
        form.addRow("GPUs:", self.gpus_spin)
        self._form = form
        form.addRow(self.amp_check)
        form.addRow(self.estimate_label)
        form.addRow(self.warning_label)
        form.addRow(self.error_label)
        self.device_combo.currentIndexChanged.connect(self.device_changed)
        self._estimates: dict[str, float] = {}
        self._requested: set[str] = set()
        self._request = 0          # answers to requests made before the page was last entered are stale
        self._listening = False

    def initializePage(self) -> None:  # noqa: N802
        import torch

        if not self._listening:
            self.wizard().controller.estimated.connect(self._estimated)
            self._listening = True
        self.device_combo.blockSignals(True)
        self.device_combo.clear()
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                self.device_combo.addItem(f"CUDA {i}: {torch.cuda.get_device_name(i)}", f"cuda:{i}")
        self.device_combo.addItem("CPU", "cpu")
        self.device_combo.blockSignals(False)
        n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        self.gpus_spin.setRange(1, max(n_gpus, 1))
        self.gpus_spin.setValue(1)
        self._form.setRowVisible(self.gpus_spin, n_gpus > 1)
        self._estimates.clear()
        self._requested.clear()
        self._request += 1
        self.device_changed()

    def total_steps(self) -> int:
        from ..core.training.engine import planned_steps

        cfg = self.state.config
        n = self.state.n_images or cfg.batch_size * 100
        return planned_steps(n, cfg.batch_size, cfg.epochs, cfg.max_steps)

    @Slot()
    def device_changed(self) -> None:
        device = self.device_combo.currentData()
        if device is None:
            return
        self.amp_check.setEnabled(device.startswith("cuda"))
        self.gpus_spin.setEnabled(device.startswith("cuda"))
        if device in self._estimates:
            self._show_estimate(device)
            return
        if device not in self._requested:
            # timed on the training worker's thread (idle until a run starts): the page stays responsive
            self._requested.add(device)
            cfg = self.state.config
            self.wizard().controller.request_estimate(device, self.state.base_info.spec, cfg.batch_size, cfg.mode,
                                                      self._request)
        self.state.estimate_s = None
        self.estimate_label.setText(f"Estimating the training time on {self.device_combo.currentText()}…")
        self.warning_label.clear()

    @Slot(str, float, int)
    def _estimated(self, device: str, seconds: float, request: int) -> None:
        if request != self._request:
            return
        self._estimates[device] = seconds
        if self.device_combo.currentData() == device:
            self._show_estimate(device)

    def _show_estimate(self, device: str) -> None:
        steps = self.total_steps()
        total = self._estimates[device] * steps
        self.state.estimate_s = total if np.isfinite(total) else None
        self.estimate_label.setText(f"Estimated training time: about {_fmt_duration(total)} for {steps} steps "
                                    f"({_fmt_duration(self._estimates[device])} per step, validation not counted).")
        if device == "cpu":
            slow = np.isfinite(total) and total > CPU_WARN_SECONDS
            self.warning_label.setText(
                "Training on the CPU is slow" + (f" (about {_fmt_duration(total)} here)" if slow else "") +
                ". A CUDA GPU is recommended; you can pause or cancel the run and resume it later.")
        else:
            self.warning_label.clear()

    def validatePage(self) -> bool:  # noqa: N802
        device = self.device_combo.currentData()
        if device is None:
            return self.fail("No device available.")
        gpus = self.gpus_spin.value() if device.startswith("cuda") and self.gpus_spin.isVisibleTo(self) else 1
        if gpus > 1 and self.state.config.batch_size % gpus:
            return self.fail(f"The batch size ({self.state.config.batch_size}) is shared by the GPUs: make it a "
                             f"multiple of {gpus}.")
        self.state.device, self.state.gpus = device, gpus
        # each process takes the GPU of its rank: the run names the device type only
        self.state.config = self.state.config.replace(device="cuda" if gpus > 1 else device,
                                                      amp=self.amp_check.isChecked())
        return True


class ReviewPage(_Page):
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
            + f"; estimated time: {_fmt_duration(st.estimate_s)}" + (" (one GPU)" if st.gpus > 1 else ""),
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


class RunPage(_Page):
    def __init__(self):
        super().__init__("Training", "Live curves; pause or cancel at any time (a checkpoint is kept).")
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("runProgress")
        self.status_label = QLabel("Starting…")
        self.status_label.setObjectName("runStatus")
        self.eta_label = QLabel()
        self.eta_label.setObjectName("etaLabel")
        self.pause_btn = QPushButton("Pause")
        self.pause_btn.setObjectName("pauseButton")
        self.pause_btn.setCheckable(True)
        self.pause_btn.toggled.connect(self.pause_toggled)
        self.cancel_btn = QPushButton("Cancel run")
        self.cancel_btn.setObjectName("cancelButton")
        self.cancel_btn.clicked.connect(self.cancel_run)
        self.loss_plot = pg.PlotWidget(title="Loss")
        self.loss_plot.addLegend()
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.setLogMode(y=True)  # ArcFace (~10) and reconstruction (~0.1) on one readable axis
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen("#4fc3f7", width=2), name="total")
        self.recon_curve = self.loss_plot.plot([], [], pen=pg.mkPen("#ffb74d", width=2), name="reconstruction")
        self.val_plot = pg.PlotWidget(title="Validation accuracy")
        self.val_plot.setLabel("bottom", "epoch")
        self.val_plot.setYRange(0.4, 1.0)
        self.val_curve = self.val_plot.plot([], [], pen=pg.mkPen("#81c784", width=2), symbol="o")
        self.sample_labels = [QLabel() for _ in range(8)]
        samples = QWidget()
        grid = QGridLayout(samples)
        grid.addWidget(QLabel("input"), 0, 0)
        grid.addWidget(QLabel("reconstruction"), 1, 0)
        for i, lab in enumerate(self.sample_labels):
            grid.addWidget(lab, i % 2, 1 + i // 2)
        buttons = QHBoxLayout()
        buttons.addWidget(self.pause_btn)
        buttons.addWidget(self.cancel_btn)
        buttons.addStretch(1)
        buttons.addWidget(self.eta_label)
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot, 2)
        plots.addWidget(self.val_plot, 1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.progress_bar)
        lay.addWidget(self.status_label)
        lay.addLayout(plots, 1)
        lay.addWidget(samples)
        lay.addLayout(buttons)
        lay.addWidget(self.error_label)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.recons: list[float] = []
        self.val_epochs: list[int] = []
        self.val_accs: list[float] = []
        self.finished = False

    def initializePage(self) -> None:  # noqa: N802
        wiz = self.wizard()
        self.finished = False
        self.state.result, self.state.error = None, None
        self.pause_btn.setEnabled(True)
        self.cancel_btn.setEnabled(True)
        ctl = wiz.controller
        ctl.progress.connect(self.on_progress, Qt.ConnectionType.UniqueConnection)
        ctl.result.connect(self.on_result, Qt.ConnectionType.UniqueConnection)
        ctl.error.connect(self.on_error, Qt.ConnectionType.UniqueConnection)
        self.pause_btn.setEnabled(self.state.gpus == 1)  # a multi-process run can be cancelled, not paused
        ctl.start(self.state.config, self.state.gpus)

    def isComplete(self) -> bool:  # noqa: N802
        return self.finished

    @Slot(bool)
    def pause_toggled(self, paused: bool) -> None:
        self.wizard().controller.set_paused(paused)
        self.pause_btn.setText("Resume" if paused else "Pause")
        if paused:
            self.status_label.setText("Pausing after this step…")

    @Slot()
    def cancel_run(self) -> None:
        self.cancel_btn.setEnabled(False)
        self.pause_btn.setEnabled(False)
        self.status_label.setText("Cancelling after this step and saving a checkpoint…")
        self.wizard().controller.cancel()

    @Slot(object)
    def on_progress(self, p) -> None:
        if p.total_steps:
            self.progress_bar.setMaximum(p.total_steps)
            self.progress_bar.setValue(p.step)
        if p.event == "step":
            self.steps.append(p.step)
            self.losses.append(p.loss)
            self.recons.append(p.recon_loss)
            self.loss_curve.setData(self.steps, self.losses)
            self.recon_curve.setData(self.steps, self.recons)
            self.eta_label.setText(f"ETA {_fmt_duration(p.eta_s)}")
            self.status_label.setText(f"Step {p.step} of {p.total_steps}, epoch {p.epoch + 1} of {p.epochs}: "
                                      f"loss {p.loss:.4f}, reconstruction {p.recon_loss:.4f}")
            if p.samples is not None:
                for i, pair in enumerate(p.samples[:4]):
                    for j in range(2):
                        self.sample_labels[2 * i + j].setPixmap(_qpixmap(pair[j], 2 if pair[j].shape[0] < 64 else 1))
        elif p.event == "epoch" and p.val_acc is not None:
            self.val_epochs.append(p.epoch)
            self.val_accs.append(p.val_acc)
            self.val_curve.setData(self.val_epochs, self.val_accs)
        elif p.event == "paused":
            self.status_label.setText(f"Paused at step {p.step}.")
        elif p.event == "start":
            self.status_label.setText(f"Training: {p.message}")

    @Slot(object)
    def on_result(self, result) -> None:
        self.state.result = result
        self.status_label.setText(f"Cancelled at step {result.steps}; the checkpoint is kept." if result.cancelled
                                  else f"Finished: {result.steps} steps.")
        self._end()

    @Slot(str, str)
    def on_error(self, kind: str, message: str) -> None:
        self.state.error = message
        self.fail(f"Training stopped: {message}")
        self.status_label.setText("Training stopped with an error.")
        self._end()

    def _end(self) -> None:
        self.finished = True
        self.pause_btn.setEnabled(False)
        self.cancel_btn.setEnabled(False)
        self.completeChanged.emit()


class ResultPage(_Page):
    def __init__(self):
        super().__init__("Result")
        self.summary = QLabel()
        self.summary.setObjectName("resultSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.card_view = QTextBrowser()
        self.card_view.setObjectName("modelCard")
        self.activate_btn = QPushButton("Make it the active model")
        self.activate_btn.setObjectName("activateButton")
        self.activate_btn.clicked.connect(self.activate)
        lay = QVBoxLayout(self)
        lay.addWidget(self.summary)
        lay.addWidget(self.card_view, 1)
        lay.addWidget(self.activate_btn, 0, Qt.AlignmentFlag.AlignLeft)
        lay.addWidget(self.error_label)
        self.setFinalPage(True)

    def initializePage(self) -> None:  # noqa: N802
        st = self.state
        self.clear_error()
        self.activate_btn.setEnabled(False)
        self.card_view.clear()
        if st.error:
            self.summary.setText(f"The run stopped with an error: {st.error}\nNothing was registered.")
            return
        res = st.result
        if res is None:
            self.summary.setText("No result.")
            return
        if res.cancelled:
            self.summary.setText(
                f"The run was cancelled at step {res.steps}. Its checkpoint is kept at {res.checkpoint_path}: "
                "open the wizard again and choose “Resume a previous run” with that folder to continue.")
            return
        self.card_view.setMarkdown(res.card)
        store = self.wizard().store
        if store is None:
            self.summary.setText(f"New model: {res.model_path}\n(no case database open: not registered)")
            return
        try:
            st.registered = store.register_model(res.name, res.model_path, sha256=res.model_sha256, card=res.card)
        except XfrError as exc:
            self.summary.setText(f"New model: {res.model_path}")
            self.fail(f"The model could not be registered: {exc}")
            return
        self.summary.setText(f"New model “{res.name}” registered in the model list.\nFile: {res.model_path}\n"
                             f"SHA-256: {res.model_sha256}")
        self.activate_btn.setEnabled(True)

    @Slot()
    def activate(self) -> None:
        st = self.state
        try:
            self.wizard().store.set_active_model(st.registered.id)
        except XfrError as exc:
            self.fail(f"The model could not be made active: {exc}")
            return
        self.activate_btn.setEnabled(False)
        self.activate_btn.setText("Active model")
        self.wizard().model_activated.emit(st.registered.sha256)


# --- the wizard ---------------------------------------------------------------------------------------------
class TrainingWizard(QWizard):
    model_activated = Signal(str)   # sha256 of the model made active

    PAGE_NAMES = ("dataset", "base", "hyper", "device", "review", "run", "result")

    def __init__(self, parent: QWidget | None = None, store=None):
        super().__init__(parent)
        self.setObjectName("trainingWizard")
        self.setWindowTitle("Training wizard")
        self.store = store
        self.state = WizardState()
        self.controller = TrainingController(self)
        self.pages = {
            "dataset": DatasetPage(), "base": BaseModelPage(), "hyper": HyperparametersPage(),
            "device": DevicePage(), "review": ReviewPage(), "run": RunPage(), "result": ResultPage(),
        }
        self.page_ids = {name: self.addPage(page) for name, page in self.pages.items()}
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage, True)
        self.setOption(QWizard.WizardOption.NoCancelButtonOnLastPage, True)
        self.resize(900, 720)
        self._close_when_done = False
        self.controller.result.connect(self._run_ended)
        self.controller.error.connect(self._run_ended)
        self.finished.connect(self.shutdown)

    def page_named(self, name: str) -> QWizardPage:
        return self.pages[name]

    def current_name(self) -> str:
        return next((n for n, i in self.page_ids.items() if i == self.currentId()), "")

    def reject(self) -> None:
        """Closing during a run cancels it; the wizard closes once the checkpoint is written."""
        if self.controller.running:
            self._close_when_done = True
            self.pages["run"].cancel_run()
            return
        super().reject()

    @Slot()
    def _run_ended(self, *args) -> None:
        if self._close_when_done:
            self._close_when_done = False
            # Close only after the run page has recorded the result: its slot is queued behind this one.
            QTimer.singleShot(0, self._close_now)

    @Slot()
    def _close_now(self) -> None:
        super().reject()

    @Slot()
    def shutdown(self) -> None:
        self.controller.shutdown()


def open_training_wizard(parent: QWidget | None, store) -> TrainingWizard:
    """Open the wizard window-modal without blocking (the desktop's Tools menu calls this)."""
    from .dialogs import present

    wizard = TrainingWizard(parent, store)
    present(wizard)
    return wizard
