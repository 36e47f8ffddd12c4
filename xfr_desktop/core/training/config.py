"""A training run's settings (:class:`TrainConfig`, the ``[train]`` table of a TOML file), what the trainer reports
while it runs (:class:`TrainingProgress`) and what it returns (:class:`TrainResult`).

Importing this module loads no torch: the training wizard assembles and checks a config on the GUI thread.

Run folder (``out``)::

    checkpoint.pt      written atomically after every epoch and on cancel; resume with base = the folder
    train_log.jsonl    one JSON object per line: start, step, epoch, checkpoint, paused, done, cancelled
    model.pt           the final model (core.model.save_model format), with the run in spec["provenance"]
    model_card.md      a generated model card
"""
from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import XfrError

CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.pt"
LOG_NAME = "train_log.jsonl"
CARD_NAME = "model_card.md"
MODES = ("decoder", "joint")
LOSSES = ("arcface", "distill")
DECODER_OPTIMIZERS = ("adam", "sgd")
# the weight of distillation's pairwise-cosine term that trained the bundled model (see losses.distillation_loss)
DISTILL_STRUCTURE_WEIGHT = 20.0


class TrainingError(XfrError):
    """A training run cannot start or go on (bad configuration, base model, disk space, divergence)."""


@dataclass
class TrainConfig:
    data: str = ""                     # identity folder, or train.rec (or a folder holding train.rec + train.idx)
    out: str = ""                      # run folder
    base: str | None = None            # None: bundled model; a joint model .pt, an insightface backbone.pth,
                                       # or a checkpoint / run folder to resume
    mode: str = "joint"                # decoder | joint
    loss: str = "arcface"              # arcface | distill (joint mode)
    epochs: int = 1
    max_steps: int | None = None       # total steps of the run (counting steps done before a resume)
    batch_size: int = 64
    lr_recognition: float = 0.02       # SGD for backbone (+ ArcFace head)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_decoder: float = 2e-4           # Adam for the decoder
    decoder_optimizer: str = "adam"    # adam (the paper) | sgd (momentum as above; its step is a linear function of
                                       # the gradient, so float rounding is never amplified into a whole step)
    recon_weight: float = 1.0          # lambda
    arcface_scale: float = 64.0
    arcface_margin: float = 0.5
    teacher: str | None = None         # distillation teacher model file (default: the base model, frozen)
    distill_structure_weight: float = DISTILL_STRUCTURE_WEIGHT   # weight of the pairwise-cosine term
    val: str | None = None             # pairs.txt, CSV pairs or insightface .bin; None: pairs from the training set
    val_images_root: str | None = None
    val_limit: int | None = None       # use at most this many validation pairs
    aligned: Any = "auto"              # True: pre-aligned crops; False: align photos; "auto"
    cache_dir: str | None = None       # alignment cache (default: <data>/.xfr-align-cache)
    augment: bool = True               # random horizontal flips
    seed: int = 0
    device: str = "auto"               # auto | cpu | cuda | cuda:N
    amp: bool = True                   # mixed precision (CUDA only)
    workers: int = 0                   # data-loading processes
    log_every: int = 10
    samples: int = 0                   # sample reconstructions sent with each logged step (for the GUI)
    name: str | None = None            # the new model's name

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict, base_dir: Path | None = None) -> "TrainConfig":
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise TrainingError(f"unknown training setting(s): {', '.join(unknown)}; known: {', '.join(cls.field_names())}")
        values = dict(values)
        if base_dir is not None:  # paths in a TOML file are relative to that file
            for key in ("data", "out", "base", "teacher", "val", "val_images_root", "cache_dir"):
                v = values.get(key)
                if key == "base" and v in ("default", "bundled"):
                    continue
                if isinstance(v, str) and v and not Path(v).expanduser().is_absolute():
                    values[key] = str(base_dir / v)
        cfg = cls(**values)
        cfg.validate()
        return cfg

    @classmethod
    def from_toml(cls, path) -> "TrainConfig":
        path = Path(path)
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except FileNotFoundError:
            raise TrainingError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise TrainingError(f"{path} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise TrainingError(f"cannot read config {path}: {exc.strerror or exc}") from None
        values = doc.get("train", doc)
        if not isinstance(values, dict):
            raise TrainingError(f"{path}: [train] must be a table")
        return cls.from_dict(values, base_dir=path.resolve().parent)

    def replace(self, **changes) -> "TrainConfig":
        cfg = dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
        cfg.validate()
        return cfg

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        lines = ["[train]"]
        for k, v in self.to_dict().items():
            if v is None:
                continue
            lines.append(f"{k} = {json.dumps(v)}")  # JSON scalars are valid TOML scalars
        return "\n".join(lines) + "\n"

    def validate(self) -> None:
        def bad(msg):
            raise TrainingError(msg)

        if self.mode not in MODES:
            bad(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.loss not in LOSSES:
            bad(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.decoder_optimizer not in DECODER_OPTIMIZERS:
            bad(f"decoder_optimizer must be one of {', '.join(DECODER_OPTIMIZERS)}, not {self.decoder_optimizer!r}")
        for key in ("epochs", "batch_size", "log_every"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                bad(f"{key} must be a whole number >= 1, not {v!r}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            bad(f"max_steps must be a whole number >= 1, not {self.max_steps!r}")
        if self.val_limit is not None and (not isinstance(self.val_limit, int) or self.val_limit < 1):
            bad(f"val_limit must be a whole number >= 1, not {self.val_limit!r}")
        for key in ("lr_recognition", "lr_decoder", "momentum", "weight_decay", "recon_weight",
                    "arcface_scale", "arcface_margin", "distill_structure_weight"):
            v = getattr(self, key)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                bad(f"{key} must be a number >= 0, not {v!r}")
        if self.lr_decoder <= 0 or (self.mode == "joint" and self.lr_recognition <= 0):
            bad("learning rates must be above 0")
        if self.aligned not in (True, False, "auto"):
            bad(f"aligned must be true, false or \"auto\", not {self.aligned!r}")
        if not isinstance(self.seed, int):
            bad(f"seed must be a whole number, not {self.seed!r}")
        if self.workers < 0 or self.samples < 0:
            bad("workers and samples must be >= 0")


@dataclass
class TrainingProgress:
    """What the engine tells its callback. ``event``: start, step, epoch, checkpoint, paused, resumed, done,
    cancelled. Losses are the mean since the last logged step."""

    event: str
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    epochs: int = 0
    loss: float | None = None
    id_loss: float | None = None
    recon_loss: float | None = None
    val_acc: float | None = None
    val_threshold: float | None = None
    eta_s: float | None = None
    steps_per_s: float | None = None
    samples: np.ndarray | None = None  # (k, 2, H, W, 3) uint8: input, reconstruction
    message: str = ""

    @property
    def fraction(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0


ProgressCallback = Callable[[TrainingProgress], None]


@dataclass
class TrainResult:
    out_dir: str
    checkpoint_path: str | None
    log_path: str
    model_path: str | None          # None when cancelled
    model_sha256: str | None
    steps: int
    epochs_done: int
    cancelled: bool
    history: list[dict] = field(default_factory=list)   # one dict per finished epoch
    card: str = ""
    name: str = ""
