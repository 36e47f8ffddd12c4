"""A training run's checkpoint, the one module that knows its keys: written after every epoch and on cancel,
restored on resume, described for the base-model choice and read for the wizard's resume settings.

The checkpoint counts global steps, so it resumes under any number of processes.
"""
from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ModelFileError
from ..fileio import atomic_write
from .config import TrainingError

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "xfr-train-checkpoint"
CHECKPOINT_VERSION = 1


def load_torch_file(path: Path):
    """A PyTorch file's content (tensors and plain data only), or a one-line ModelFileError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelFileError(f"model file not found: {path}") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, Exception) as exc:  # noqa: B014
        if isinstance(exc, PermissionError):
            raise ModelFileError(f"cannot read {path}: permission denied") from None
        raise ModelFileError(f"{path} is not a readable PyTorch file (truncated, corrupt or not a checkpoint; "
                             f"{type(exc).__name__})") from None


def is_checkpoint(obj) -> bool:
    return isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT


def checkpoint_spec(ckpt: dict) -> dict:
    return json.loads(ckpt["spec_json"])


def describe_checkpoint(ckpt: dict) -> str:
    return f"checkpoint of {checkpoint_spec(ckpt).get('name', '?')} at step {ckpt.get('step')}"


def checkpoint_origin(ckpt: dict) -> dict:
    """Where the run's first weights came from (kind, path, sha256, name, teacher)."""
    return json.loads(ckpt.get("origin_json", "{}"))


def load_weights(model, ckpt: dict, path) -> None:
    """The checkpoint's backbone and decoder into ``model`` (built from :func:`checkpoint_spec`)."""
    try:
        model.backbone.load_state_dict(ckpt["backbone"])
        model.decoder.load_state_dict(ckpt["decoder"])
    except (KeyError, RuntimeError) as exc:
        raise ModelFileError(f"checkpoint {path} is damaged: {str(exc).splitlines()[0][:200]}") from None


def _cpu(module) -> dict:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def write_checkpoint(trainer, path: Path) -> None:
    """The trainer's whole state, written atomically (a crash leaves the previous checkpoint)."""
    payload = {
        "format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
        "spec_json": json.dumps(trainer.model.spec, sort_keys=True),
        "backbone": _cpu(trainer.model.backbone), "decoder": _cpu(trainer.model.decoder),
        "head": _cpu(trainer.head) if trainer.head else None,
        "opt_rec": trainer.opt_rec.state_dict() if trainer.opt_rec else None,
        "opt_dec": trainer.opt_dec.state_dict(),
        "scaler": trainer.scaler.state_dict() if trainer.use_amp else None,
        "step": trainer.step, "epoch": trainer.epoch, "steps_per_epoch": trainer.steps_per_epoch,
        "world_size": trainer.launch.world_size, "batch_size": trainer.batch_size,
        "n_classes": trainer.dataset.n_classes, "mode": trainer.config.mode, "loss": trainer.config.loss,
        "config_json": json.dumps(trainer.config.to_dict(), default=str),
        "origin_json": json.dumps(trainer.origin), "history_json": json.dumps(trainer.history),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(payload, f))


def restore_state(trainer, ckpt: dict) -> None:
    """The head, optimizers, scaler, step and history of a resumed run; refuses a checkpoint the run's settings
    cannot continue (another mode, loss, number of identities or decoder optimizer)."""
    cfg = trainer.config
    saved_mode = ckpt.get("mode")
    if saved_mode != cfg.mode or ckpt.get("loss") != cfg.loss:
        raise TrainingError(f"the checkpoint was trained in mode {saved_mode}/{ckpt.get('loss')}; "
                            f"resume it with the same mode and loss (or start a new run from its model)")
    if trainer.head is not None:
        if ckpt.get("head") is None or int(ckpt.get("n_classes", -1)) != trainer.dataset.n_classes:
            raise TrainingError(f"the checkpoint was trained on {ckpt.get('n_classes')} identities; "
                                f"this dataset has {trainer.dataset.n_classes}")
        trainer.head.load_state_dict(ckpt["head"])
    if trainer.opt_rec is not None and ckpt.get("opt_rec") is not None:
        trainer.opt_rec.load_state_dict(ckpt["opt_rec"])
    saved_opt = json.loads(ckpt.get("config_json") or "{}").get("decoder_optimizer", "adam")
    if saved_opt != cfg.decoder_optimizer:
        raise TrainingError(f"the checkpoint's decoder was trained with {saved_opt}; resume it with "
                            f"decoder_optimizer = \"{saved_opt}\"")
    trainer.opt_dec.load_state_dict(ckpt["opt_dec"])
    if ckpt.get("scaler") and trainer.use_amp:
        trainer.scaler.load_state_dict(ckpt["scaler"])
    trainer.step = int(ckpt["step"])
    if int(ckpt.get("steps_per_epoch", trainer.steps_per_epoch)) != trainer.steps_per_epoch:
        log.warning("the dataset or batch size changed since the checkpoint; epochs restart at a boundary")
    trainer.epoch = trainer.step // trainer.steps_per_epoch
    trainer.history = json.loads(ckpt.get("history_json", "[]"))


@dataclass(frozen=True)
class ResumeSettings:
    """What a resumed run keeps (mode, loss, run folder) and the settings it ran with (offered again)."""

    mode: str | None
    loss: str | None
    out: str                   # the run folder: the checkpoint's own
    epochs: int                # the saved number, at least one more than the epochs done
    batch_size: int | None     # None: not recorded
    seed: int
    name: str | None


def read_resume_settings(checkpoint_path) -> ResumeSettings:
    path = Path(checkpoint_path)
    ckpt = load_torch_file(path)
    saved = json.loads(ckpt.get("config_json", "{}"))
    batch = saved.get("batch_size")
    return ResumeSettings(
        mode=ckpt.get("mode"), loss=ckpt.get("loss"), out=str(path.parent),
        epochs=max(int(saved.get("epochs", 1)), int(ckpt.get("epoch", 0)) + 1),
        batch_size=None if batch is None else int(batch), seed=int(saved.get("seed", 0)),
        name=saved.get("name") or None)
