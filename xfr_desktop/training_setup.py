"""Setting up a training run, without Qt: the training wizard's checks and choices as plain functions.

    summary = scan_training_data(path)                          # the data: how many images and identities
    base = choose_base(path_or_none)                            # the base model, resume settings, disk needed
    config = make_config(setup, out, mode=..., epochs=..., ...) # the TrainConfig the run will use
    result = run_training(config, gpus, callback, pause_event, cancel_event)

Importing this module loads no torch (the wizard imports it on the GUI thread). The functions that read files,
build or time a model, or train (``scan_training_data``, ``choose_base``, ``list_devices``, ``estimate_step``,
``run_training``) import what they need when called, and the wizard calls them on a task (``gui/tasks.py``), as
``analysis.py`` does for an analysis. The rest (``make_config``, ``planned_run_steps``) is quick and runs anywhere.
"""
from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass
from pathlib import Path

from .core.errors import XfrError
from .core.training.config import CHECKPOINT_NAME, TrainConfig, TrainingError
from .core.training.planning import check_disk_space, planned_steps

log = logging.getLogger(__name__)

MIN_IDENTITIES = 2
MIN_IMAGES = 4
SAMPLES_SHOWN = 4        # sample reconstructions sent with each logged step


@dataclass
class DataSummary:
    kind: str              # "folder" or "recordio"
    n_images: int
    n_identities: int      # 0 for RecordIO: counted when training starts
    text: str


@dataclass
class BaseChoice:
    """A base model reference, inspected: what it is, a checkpoint's settings to resume with, the disk it needs."""

    info: object           # core.training.base_model.BaseModelInfo
    resume: object         # core.training.checkpoint.ResumeSettings, for a checkpoint; else None
    disk_bytes: int        # checkpoints + the final model of a run from it


@dataclass
class TrainingSetup:
    """What the wizard's pages have settled, in plain data (read by later pages and the run), and the run's end."""

    data: str = ""
    data_kind: str = ""              # folder | recordio
    n_images: int = 0
    n_identities: int = 0
    aligned: object = "auto"
    val: str | None = None
    val_images_root: str | None = None
    base: str | None = None
    base_info: object = None         # BaseModelInfo
    resume: object = None            # ResumeSettings when the base is a checkpoint
    disk_bytes: int = 0
    config: TrainConfig | None = None
    device: str = "cpu"
    gpus: int = 1                    # > 1: one process per GPU (torchrun), see core/training/launcher.py
    estimate_s: float | None = None
    result: object = None            # TrainResult
    error: str | None = None
    registered: object = None        # store ModelRecord

    @property
    def resuming(self) -> bool:
        return self.resume is not None

    def use_base(self, base: str | None, choice: BaseChoice) -> None:
        self.base, self.base_info = base, choice.info
        self.resume, self.disk_bytes = choice.resume, choice.disk_bytes


# --- the data --------------------------------------------------------------------------------------------------
def scan_training_data(path: Path) -> DataSummary:
    """Check the training data the examiner chose (reads a few files: seconds on a slow disk, hence a task)."""
    from .core.training.datasets import DatasetError, recordio_file, scan_identity_folder

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
    from .core.training.datasets import read_image

    problems = []
    for p in paths:
        try:
            read_image(p)
        except XfrError as exc:
            problems.append(str(exc))
    return problems


def _scan_recordio(rec: Path) -> DataSummary:
    from .core.training.datasets import RecordIOReader, unpack_record_payload

    reader = RecordIOReader(rec)
    try:
        keys = sorted(reader.offsets)
        unpack_record_payload(reader.read(keys[-1]), f"record {keys[-1]}")  # last record readable
    finally:
        reader.close()
    return DataSummary("recordio", len(keys), 0,
                       f"RecordIO with {len(keys)} records (identities are counted when training starts).")


# --- the base model -------------------------------------------------------------------------------------------
def choose_base(base: str | None) -> BaseChoice:
    """Inspect a base model (None: the bundled one, which this loads); a checkpoint's resume settings come with
    it. ModelFileError with a message for people for a missing, foreign or broken file."""
    from .core.training.base_model import inspect_base
    from .core.training.checkpoint import read_resume_settings
    from .core.training.planning import required_disk_bytes_for_spec

    info = inspect_base(base)
    resume = read_resume_settings(info.checkpoint_path) if info.kind == "checkpoint" else None
    return BaseChoice(info, resume, required_disk_bytes_for_spec(info.spec))


def default_model_name(base_info) -> str:
    base_name = base_info.spec.get("name", "model") if base_info is not None else "model"
    return f"{base_name}-ft-{_dt.date.today():%Y%m%d}"


def default_run_folder(data_dir: str | None) -> Path:
    """A new folder under the case database's ``training`` folder (or ~/xfr-training without one)."""
    root = Path(data_dir) / "training" if data_dir is not None else Path.home() / "xfr-training"
    return root / _dt.datetime.now().strftime("run-%Y%m%d-%H%M%S")


# --- the settings ---------------------------------------------------------------------------------------------
def make_config(setup: TrainingSetup, out: str, **settings) -> TrainConfig:
    """The run's TrainConfig: the data and base settled earlier, the run folder ``out`` and the hyperparameter
    page's ``settings`` (TrainConfig fields). TrainingError with a message for people when the folder cannot take
    the run (a file, a previous run not being resumed, too little disk space) or a setting is out of range."""
    out = out.strip()
    if not out:
        raise TrainingError("Choose a run folder for the checkpoints, the log and the new model.")
    folder = Path(out).expanduser()
    if folder.exists() and not folder.is_dir():
        raise TrainingError(f"The run folder is a file: {folder}")
    if (folder / CHECKPOINT_NAME).exists() and not setup.resuming:
        raise TrainingError(f"{folder} holds a previous run; choose another folder, or go back and resume it.")
    try:
        check_disk_space(folder, setup.disk_bytes)
    except OSError as exc:
        raise TrainingError(f"The run folder cannot be used: {exc.strerror or exc}") from None
    steps = planned_steps(setup.n_images or 1000, settings["batch_size"], settings["epochs"],
                          settings.get("max_steps"))
    config = TrainConfig(data=setup.data, out=str(folder), base=setup.base, aligned=setup.aligned, val=setup.val,
                         val_images_root=setup.val_images_root, samples=SAMPLES_SHOWN,
                         log_every=max(1, min(10, steps // 50)), **settings)
    config.validate()
    return config


def planned_run_steps(setup: TrainingSetup) -> int:
    """The steps the settled run will take (RecordIO, not counted yet: 100 batches an epoch)."""
    cfg = setup.config
    n = setup.n_images or cfg.batch_size * 100
    return planned_steps(n, cfg.batch_size, cfg.epochs, cfg.max_steps)


# --- the machine and the run ----------------------------------------------------------------------------------
def list_devices() -> list[tuple[str, str]]:
    """(label, device) for each CUDA device, then the CPU."""
    import torch

    n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [(f"CUDA {i}: {torch.cuda.get_device_name(i)}", f"cuda:{i}") for i in range(n_cuda)] + [("CPU", "cpu")]


def estimate_step(device: str, spec: dict, batch_size: int, mode: str) -> float:
    """Seconds per training step on ``device`` (a few seconds to measure on a CPU); nan when it cannot be timed."""
    try:
        from .core.model import JointModel
        from .core.training.planning import estimate_step_seconds

        return float(estimate_step_seconds(JointModel(spec), batch_size, device, mode))  # random weights time the same
    except Exception as exc:  # noqa: BLE001 - an estimate must not stop the wizard
        log.warning("time estimate failed: %s", exc)
        return float("nan")


def run_training(config: TrainConfig, gpus: int, callback, pause_event, cancel_event):
    """Train ``config`` in this process, or in one process per GPU when ``gpus`` > 1 (pausing does not apply
    there, cancelling does); returns the TrainResult."""
    if gpus > 1:
        from .core.training.launcher import train_in_processes

        return train_in_processes(config, gpus, callback=callback, cancel_event=cancel_event)
    from .core.training.trainer import Trainer

    try:
        return Trainer(config, callback=callback, pause_event=pause_event, cancel_event=cancel_event).run()
    except MemoryError:  # the one failure whose remedy the wizard knows
        raise TrainingError("out of memory: lower the batch size") from None
