"""The training engine shared by ``xfr train``, the training wizard and the bundled model's recipe.

    config = TrainConfig.from_toml("run.toml")            # or TrainConfig(data=..., out=..., ...)
    result = Trainer(config, callback=print_progress, pause_event=ev_p, cancel_event=ev_c).run()
    load_model(result.model_path)                          # the fine-tuned joint model

Loss of a step: ``L_id + recon_weight * MSE(decoder(C), x)`` where ``L_id`` is ArcFace on the identity labels or
distillation towards a frozen teacher (by default the base model itself); in ``decoder`` mode the backbone is
frozen and only the reconstruction term trains the decoder. Optimizers follow the paper: SGD (lr 0.02, momentum
0.9, weight decay 5e-4) for the recognition part, Adam (2e-4) for the decoder; mixed precision on CUDA.

Run folder (``out``)::

    checkpoint.pt      written atomically after every epoch and on cancel; resume with base = the folder
    train_log.jsonl    one JSON object per line: start, step, epoch, checkpoint, paused, done, cancelled
    model.pt           the final model (core.model.save_model format), with the run in spec["provenance"]
    model_card.md      a generated model card

The order of the data and the flips are functions of (seed, epoch, step), so a resumed run continues with the
same step count and, on the same device, the same numbers as an uninterrupted one.

Several processes (``torchrun --nproc_per_node N -m xfr_desktop.cli train ...``, see docs/scale_out.md): the same
run, split. ``batch_size`` stays the global batch; process r trains on its r-th share of every global batch, with
the flips the one-process run would draw, batch norms that use the global batch's statistics and gradients averaged
by DistributedDataParallel, so N processes compute what one would (to float rounding). Rank 0 alone writes the log,
the checkpoints, the model and its card, each recording ``world_size``; a checkpoint resumes under any number of
processes, since it counts global steps.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import json
import logging
import math
import os
import shutil
import threading
import time
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from .. import distributed
from ..errors import ModelFileError, XfrError
from ..evaluation.verify import best_accuracy_threshold
from ..fileio import atomic_write
from ..model import (FORMAT as MODEL_FORMAT, JointModel, default_spec, file_sha256, import_insightface_backbone,
                     load_model, resolve_device, save_model)
from .datasets import DatasetError, FolderDataset, RecordIODataset, ValidationPairs, load_validation_pairs, \
    pairs_from_dataset
from .losses import DISTILL_STRUCTURE_WEIGHT, ArcFaceHead, distillation_loss, reconstruction_loss

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "xfr-train-checkpoint"
CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.pt"
LOG_NAME = "train_log.jsonl"
CARD_NAME = "model_card.md"
MODES = ("decoder", "joint")
LOSSES = ("arcface", "distill")
DECODER_OPTIMIZERS = ("adam", "sgd")


class TrainingError(XfrError):
    """A training run cannot start or go on (bad configuration, base model, disk space, divergence)."""


# --- configuration ------------------------------------------------------------------------------------------
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


# --- progress ---------------------------------------------------------------------------------------------------
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


# --- base models ----------------------------------------------------------------------------------------------
@dataclass
class BaseModelInfo:
    kind: str            # bundled | joint | insightface | checkpoint
    path: str | None
    spec: dict
    description: str
    checkpoint_path: str | None = None


def _torch_load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelFileError(f"model file not found: {path}") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, Exception) as exc:  # noqa: B014
        if isinstance(exc, PermissionError):
            raise ModelFileError(f"cannot read {path}: permission denied") from None
        raise ModelFileError(f"{path} is not a readable PyTorch file (truncated, corrupt or not a checkpoint; "
                             f"{type(exc).__name__})") from None


def _unwrap_state_dict(obj) -> dict | None:
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()) and obj:
        sd = obj
    elif isinstance(obj, dict):
        for key in ("state_dict", "model", "backbone"):
            if isinstance(obj.get(key), dict):
                return _unwrap_state_dict(obj[key])
        return None
    else:
        return None
    prefix = "module."
    if all(k.startswith(prefix) for k in sd):
        sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def insightface_spec(state_dict: dict) -> dict:
    """The joint-model spec that an insightface IResNet state dict fits (depth, widths, input size)."""
    from ..backbones.iresnet import DEPTHS
    from ..decoder import paper_decoder_spec

    if "conv1.weight" not in state_dict or not any(k.startswith("layer4.") for k in state_dict):
        raise ModelFileError("this file is not an insightface IResNet backbone (no conv1/layer1-4 weights); "
                             "XFR fine-tunes IResNet backbones or its own joint models")
    blocks = []
    widths = []
    for i in range(1, 5):
        idx = {int(k.split(".")[1]) for k in state_dict if k.startswith(f"layer{i}.") and k.split(".")[1].isdigit()}
        blocks.append(len(idx))
        w = state_dict.get(f"layer{i}.0.conv1.weight")
        if w is None or w.ndim != 4:
            raise ModelFileError(f"IResNet backbone lacks layer{i}.0.conv1.weight")
        widths.append(int(w.shape[0]))
    depth = next((d for d, b in DEPTHS.items() if b == blocks), None)
    if depth is None:
        raise ModelFileError(f"IResNet with blocks {blocks} matches no known depth ({', '.join(map(str, DEPTHS))})")
    size = 112
    fc = state_dict.get("fc.weight")
    if fc is not None and fc.ndim == 2 and fc.shape[1] % widths[3] == 0:
        side = math.isqrt(fc.shape[1] // widths[3])
        if side * side * widths[3] == fc.shape[1]:
            size = side * 16
    from ..model import ARCFACE_TEMPLATE_112

    template = [[x * size / 112 for x in pt] for pt in ARCFACE_TEMPLATE_112]
    return default_spec(
        name=f"iresnet{depth}-insightface-maxpool-joint", depth=depth, widths=widths, input_size=[size, size],
        template=template, channels=widths[3], decoder=paper_decoder_spec((widths[3], 256, 128, 64, 3)),
    )


def inspect_base(base: str | os.PathLike | None) -> BaseModelInfo:
    """What a base model reference is, without building it; raises ModelFileError with a clear message for a
    missing file, a foreign file or a checkpoint of the wrong family."""
    if base is None or str(base) in ("", "default", "bundled"):
        from ..model import default_model_path

        path = default_model_path()
        if not path.is_file():
            raise ModelFileError(f"the bundled model is missing: {path}")
        m = load_model(None, device="cpu")
        return BaseModelInfo("bundled", None, m.spec, f"bundled model {m.spec.get('name', '')}")
    path = Path(base).expanduser()
    if path.is_dir():
        ck = path / CHECKPOINT_NAME
        if not ck.is_file():
            raise ModelFileError(f"{path} holds no {CHECKPOINT_NAME} of a previous training run")
        path = ck
    if not path.is_file():
        raise ModelFileError(f"base model not found: {path}")
    obj = _torch_load(path)
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        spec = json.loads(obj["spec_json"])
        return BaseModelInfo("checkpoint", str(path), spec,
                             f"checkpoint of {spec.get('name', '?')} at step {obj.get('step')}", str(path))
    if isinstance(obj, dict) and obj.get("format") == MODEL_FORMAT:
        spec = json.loads(obj["spec_json"])
        return BaseModelInfo("joint", str(path), spec, f"joint model {spec.get('name', '?')}")
    sd = _unwrap_state_dict(obj)
    if sd is None:
        raise ModelFileError(f"{path} is neither an XFR model, an XFR checkpoint nor an IResNet state dict")
    spec = insightface_spec(sd)
    return BaseModelInfo("insightface", str(path), spec, f"insightface IResNet-{spec['depth']} backbone")


def build_base_model(info: BaseModelInfo) -> JointModel:
    if info.kind == "bundled":
        return load_model(None, device="cpu")
    if info.kind == "joint":
        return load_model(info.path, device="cpu")
    if info.kind == "insightface":
        sd = _unwrap_state_dict(_torch_load(Path(info.path)))
        return import_insightface_backbone(sd, info.spec)
    raise TrainingError(f"unsupported base kind {info.kind}")


# --- helpers --------------------------------------------------------------------------------------------------
def _atomic_torch_save(payload: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(payload, f))


def model_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.state_dict().values())


def global_batch_size(requested: int, n_images: int, world_size: int) -> int:
    """The global batch a run uses: ``requested``, or every image when there are fewer, rounded down to a multiple
    of the processes so each takes an equal share. An epoch is ``n_images // batch`` whole batches; the rest of
    the shuffled images sit out that epoch (a new draw each epoch), as DistributedSampler's drop_last does."""
    batch = min(requested, n_images)
    batch -= batch % world_size
    if batch < 1:
        raise TrainingError(f"the dataset's {n_images} images cannot give each of the {world_size} processes "
                            f"one image per step; use fewer processes or more images")
    return batch


def check_disk_space(folder, need_bytes: int) -> int:
    """Raise TrainingError when the disk holding ``folder`` has less than ``need_bytes`` free; return free bytes."""
    p = Path(folder).expanduser().resolve()
    probe = p
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need_bytes:
        raise TrainingError(f"not enough disk space in {probe}: {free / 1e6:.0f} MB free, about "
                            f"{need_bytes / 1e6:.0f} MB needed for checkpoints and the model")
    return free


def pair_accuracy(scores: np.ndarray, issame: np.ndarray) -> tuple[float, float]:
    """Best accuracy over all thresholds and that threshold: the evaluation's rule (midpoint between neighbouring
    scores, never between equal ones), so validation during training and `xfr evaluate verify` agree."""
    thr = best_accuracy_threshold(scores, issame)
    return float(np.mean((np.asarray(scores) >= thr) == np.asarray(issame, bool))), thr


def evaluate_pairs(model: JointModel, pairs: ValidationPairs, batch_size: int = 64) -> dict:
    was_training = model.training
    model.eval()
    embs = []
    with torch.no_grad():
        for i in range(0, len(pairs.images), batch_size):
            x = model.preprocess(pairs.images[i:i + batch_size])
            embs.append(torch.nn.functional.normalize(model(x).float(), dim=1).cpu())
    emb = torch.cat(embs).numpy()
    scores = (emb[0::2] * emb[1::2]).sum(axis=1)
    acc, thr = pair_accuracy(scores, pairs.issame)
    at_model = float(((scores >= model.threshold) == pairs.issame).mean())
    model.train(was_training)
    return {"val_acc": acc, "val_threshold": thr, "val_acc_at_model_threshold": at_model, "val_pairs": len(pairs)}


def recordio_file(data: Path) -> Path | None:
    """The insightface RecordIO file ``data`` names (a .rec, or a folder holding train.rec); None for a folder of
    identity sub-folders."""
    if data.suffix == ".rec":
        return data
    return data / "train.rec" if data.is_dir() and (data / "train.rec").is_file() else None


def open_training_dataset(config: TrainConfig, spec: dict):
    data = Path(config.data).expanduser() if config.data else None
    if data is None:
        raise DatasetError("no training data given (a folder per identity, or train.rec)")
    if recordio_file(data) is not None:
        return RecordIODataset(data, spec)
    return FolderDataset(data, spec, aligned=config.aligned, cache_dir=config.cache_dir)


class _BatchSource(torch.utils.data.Dataset):
    """Map-style view that DataLoader workers can call; None faces are dropped in collate."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        return self.dataset[i]


class _EpochBatches:
    """A batch sampler whose batches the trainer sets per epoch, so one DataLoader (and its worker processes)
    serves the whole run."""

    def __init__(self):
        self.batches: list[list[int]] = []

    def __iter__(self):
        return iter(list(self.batches))

    def __len__(self) -> int:
        return len(self.batches)


def _collate(items):
    items = [(img, lab) for img, lab in items if img is not None]
    if not items:
        return None
    return np.stack([img for img, _ in items]), np.array([lab for _, lab in items], dtype=np.int64)


class _StepLosses(nn.Module):
    """A step's (identity loss, reconstruction loss, reconstruction) as one module, so DistributedDataParallel can
    wrap the forward whose gradients it averages."""

    def __init__(self, model: JointModel, head: nn.Module | None, mode: str, loss: str, structure_weight: float):
        super().__init__()
        self.model, self.head = model, head
        self.mode, self.loss, self.structure_weight = mode, loss, structure_weight

    def forward(self, x: torch.Tensor, y: torch.Tensor, teacher_emb: torch.Tensor | None):
        if self.mode == "decoder":
            with torch.no_grad():
                C = self.model.backbone(x)
            id_loss = torch.zeros((), device=x.device)
        else:
            C, emb = self.model.embed(x)
            # distillation's structure term compares the embeddings of one process's share of the batch
            id_loss = self.head(emb, y) if self.head is not None else distillation_loss(emb, teacher_emb,
                                                                                         self.structure_weight)
        recon = self.model.reconstruct(C)
        return id_loss, reconstruction_loss(recon, x), recon


# --- the trainer ----------------------------------------------------------------------------------------------
class Trainer:
    """One training run. ``pause_event`` (set = paused) and ``cancel_event`` (set = stop after the current step,
    write a checkpoint, return) are ``threading.Event``s so a GUI thread can drive the run.

    ``teacher_fn`` (optional): a callable taking an aligned uint8 batch (N,H,W,3) and returning teacher embeddings
    (N,d) for distillation, e.g. the original dlib descriptor; by default the base model, frozen, is the teacher.
    """

    def __init__(self, config: TrainConfig, callback: ProgressCallback | None = None,
                 pause_event: threading.Event | None = None, cancel_event: threading.Event | None = None,
                 teacher_fn: Callable[[np.ndarray], torch.Tensor] | None = None):
        config.validate()
        if not config.out:
            raise TrainingError("no output folder given for the run")
        self.config = config
        self.callback = callback
        self.pause_event = pause_event or threading.Event()
        self.cancel_event = cancel_event or threading.Event()
        self.teacher_fn = teacher_fn
        self.out = Path(config.out).expanduser()
        self.log_path = self.out / LOG_NAME
        self.checkpoint_path = self.out / CHECKPOINT_NAME
        self.history: list[dict] = []
        self.step = 0
        self.epoch = 0
        self._prepared = False
        self.launch = distributed.launch_from_env()
        self._created_group = False

    # .. setup ..
    def _emit(self, progress: TrainingProgress) -> None:
        if self.callback is not None and self.launch.is_main:
            self.callback(progress)

    def _log(self, record: dict) -> None:
        if not self.launch.is_main:
            return
        record = {"time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **record}
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=float) + "\n")

    def prepare(self) -> None:
        cfg = self.config
        self.device = distributed.process_device(self.launch, resolve_device(cfg.device))
        if self.launch.distributed and cfg.batch_size % self.launch.world_size:
            raise TrainingError(f"batch_size {cfg.batch_size} is the global batch: it must be a multiple of the "
                                f"{self.launch.world_size} processes")
        self._created_group = distributed.start(self.launch, self.device)
        self.use_amp = bool(cfg.amp and self.device.type == "cuda")
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick the fastest kernels
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % (2 ** 32))
        self.base_info = inspect_base(cfg.base)
        ckpt = None
        if self.base_info.kind == "checkpoint":
            ckpt = _torch_load(Path(self.base_info.checkpoint_path))
            self.model = JointModel(self.base_info.spec)
            try:
                self.model.backbone.load_state_dict(ckpt["backbone"])
                self.model.decoder.load_state_dict(ckpt["decoder"])
            except (KeyError, RuntimeError) as exc:
                raise ModelFileError(f"checkpoint {self.base_info.path} is damaged: {str(exc).splitlines()[0][:200]}") from None
            self.origin = json.loads(ckpt.get("origin_json", "{}"))
        else:
            self.model = build_base_model(self.base_info)
            self.origin = {"kind": self.base_info.kind, "path": self.base_info.path,
                           "sha256": getattr(self.model, "sha256", None)
                           or (file_sha256(self.base_info.path) if self.base_info.path else None),
                           "name": self.model.spec.get("name"), "teacher": cfg.teacher}
        spec = self.model.spec
        h, w = self.model.input_size
        with torch.no_grad():
            probe = self.model.eval().reconstruct(self.model.embed(torch.zeros(1, 3, h, w))[0])
        if tuple(probe.shape[2:]) != (h, w):
            raise TrainingError(f"the model's decoder outputs {tuple(probe.shape[2:])} but its input is {(h, w)}")

        self.dataset = open_training_dataset(cfg, spec)
        if cfg.mode == "joint" and cfg.loss == "arcface" and self.dataset.n_classes < 2:
            raise DatasetError("ArcFace needs at least 2 identities in the training data")
        self.batch_size = global_batch_size(cfg.batch_size, len(self.dataset), self.launch.world_size)
        self.steps_per_epoch = max(1, len(self.dataset) // self.batch_size)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        if cfg.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.max_steps)

        self.out.mkdir(parents=True, exist_ok=True)
        check_disk_space(self.out, required_disk_bytes_for_spec(self.model.spec))

        # teacher before any weight changes
        self.teacher = None
        if cfg.mode == "joint" and cfg.loss == "distill" and self.teacher_fn is None:
            ref = self.origin.get("teacher")
            if ref:
                self.teacher = load_model(ref, device="cpu")
            elif ckpt is None:
                self.teacher = copy.deepcopy(self.model)
            else:
                kind, path = self.origin.get("kind"), self.origin.get("path")
                info = inspect_base(None if kind == "bundled" else path)
                self.teacher = build_base_model(info)
            self.teacher.to(self.device).eval().requires_grad_(False)

        self.model.to(self.device)
        if self.launch.distributed:  # before the optimizers take the parameters
            distributed.synchronise_batch_norm(self.model, self.device)
        self.head = None
        if cfg.mode == "joint" and cfg.loss == "arcface":
            self.head = ArcFaceHead(int(spec["channels"]), self.dataset.n_classes,
                                    s=cfg.arcface_scale, m=cfg.arcface_margin).to(self.device)
        if cfg.mode == "decoder":
            self.model.backbone.requires_grad_(False)
            rec_params = []
        else:
            self.model.backbone.requires_grad_(True)
            rec_params = list(self.model.backbone.parameters()) + (list(self.head.parameters()) if self.head else [])
        self.opt_rec = torch.optim.SGD(rec_params, lr=cfg.lr_recognition, momentum=cfg.momentum,
                                       weight_decay=cfg.weight_decay) if rec_params else None
        if cfg.decoder_optimizer == "sgd":
            self.opt_dec = torch.optim.SGD(self.model.decoder.parameters(), lr=cfg.lr_decoder, momentum=cfg.momentum)
        else:
            self.opt_dec = torch.optim.Adam(self.model.decoder.parameters(), lr=cfg.lr_decoder)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)

        if ckpt is not None:
            self._restore(ckpt)
        self.losses = _StepLosses(self.model, self.head, cfg.mode, cfg.loss, cfg.distill_structure_weight)
        if self.launch.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.losses = torch.nn.parallel.DistributedDataParallel(self.losses, device_ids=ids)
        self._prepared = True

    def _restore(self, ckpt: dict) -> None:
        cfg = self.config
        saved_mode = ckpt.get("mode")
        if saved_mode != cfg.mode or ckpt.get("loss") != cfg.loss:
            raise TrainingError(f"the checkpoint was trained in mode {saved_mode}/{ckpt.get('loss')}; "
                                f"resume it with the same mode and loss (or start a new run from its model)")
        if self.head is not None:
            if ckpt.get("head") is None or int(ckpt.get("n_classes", -1)) != self.dataset.n_classes:
                raise TrainingError(f"the checkpoint was trained on {ckpt.get('n_classes')} identities; "
                                    f"this dataset has {self.dataset.n_classes}")
            self.head.load_state_dict(ckpt["head"])
        if self.opt_rec is not None and ckpt.get("opt_rec") is not None:
            self.opt_rec.load_state_dict(ckpt["opt_rec"])
        saved_opt = json.loads(ckpt.get("config_json") or "{}").get("decoder_optimizer", "adam")
        if saved_opt != cfg.decoder_optimizer:
            raise TrainingError(f"the checkpoint's decoder was trained with {saved_opt}; resume it with "
                                f"decoder_optimizer = \"{saved_opt}\"")
        self.opt_dec.load_state_dict(ckpt["opt_dec"])
        if ckpt.get("scaler") and self.use_amp:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.step = int(ckpt["step"])
        if int(ckpt.get("steps_per_epoch", self.steps_per_epoch)) != self.steps_per_epoch:
            log.warning("the dataset or batch size changed since the checkpoint; epochs restart at a boundary")
        self.epoch = self.step // self.steps_per_epoch
        self.history = json.loads(ckpt.get("history_json", "[]"))

    # .. state ..
    def save_checkpoint(self) -> Path:
        if not self.launch.is_main:
            return self.checkpoint_path
        payload = {
            "format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
            "spec_json": json.dumps(self.model.spec, sort_keys=True),
            "backbone": {k: v.detach().cpu() for k, v in self.model.backbone.state_dict().items()},
            "decoder": {k: v.detach().cpu() for k, v in self.model.decoder.state_dict().items()},
            "head": {k: v.detach().cpu() for k, v in self.head.state_dict().items()} if self.head else None,
            "opt_rec": self.opt_rec.state_dict() if self.opt_rec else None,
            "opt_dec": self.opt_dec.state_dict(),
            "scaler": self.scaler.state_dict() if self.use_amp else None,
            "step": self.step, "epoch": self.epoch, "steps_per_epoch": self.steps_per_epoch,
            "world_size": self.launch.world_size, "batch_size": self.batch_size,
            "n_classes": self.dataset.n_classes, "mode": self.config.mode, "loss": self.config.loss,
            "config_json": json.dumps(self.config.to_dict(), default=str),
            "origin_json": json.dumps(self.origin), "history_json": json.dumps(self.history),
        }
        _atomic_torch_save(payload, self.checkpoint_path)
        self._log({"event": "checkpoint", "step": self.step, "path": str(self.checkpoint_path)})
        self._emit(TrainingProgress("checkpoint", self.step, self.total_steps, self.epoch, self.config.epochs,
                                    message=str(self.checkpoint_path)))
        return self.checkpoint_path

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        """This process's share of every global batch of ``epoch`` (the whole batch for one process)."""
        g = torch.Generator().manual_seed(self.config.seed * 100003 + epoch)
        perm = torch.randperm(len(self.dataset), generator=g).tolist()
        b = self.batch_size
        lo, hi = self._share()
        return [perm[i * b:(i + 1) * b][lo:hi] for i in range(self.steps_per_epoch)]

    def _share(self) -> tuple[int, int]:
        """[lo, hi) of this process's part of a global batch."""
        n = self.batch_size // self.launch.world_size
        return self.launch.rank * n, (self.launch.rank + 1) * n

    def _validation_pairs(self) -> ValidationPairs | None:
        cfg = self.config
        if not self.launch.is_main:
            return None  # rank 0 validates for all
        if cfg.val:
            return load_validation_pairs(cfg.val, self.model.spec, cfg.val_images_root, cfg.aligned,
                                         cfg.cache_dir, cfg.val_limit)
        return pairs_from_dataset(self.dataset, n_pairs=min(cfg.val_limit or 200, 400), seed=cfg.seed)

    def _wait_if_paused(self) -> float:
        if not self.pause_event.is_set():
            return 0.0
        t0 = time.monotonic()
        self._log({"event": "paused", "step": self.step})
        self._emit(TrainingProgress("paused", self.step, self.total_steps, self.epoch, self.config.epochs))
        while self.pause_event.is_set() and not self.cancel_event.is_set():
            self.cancel_event.wait(0.1)
        self._log({"event": "resumed", "step": self.step})
        self._emit(TrainingProgress("resumed", self.step, self.total_steps, self.epoch, self.config.epochs))
        return time.monotonic() - t0

    def _train_step(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, float, torch.Tensor, torch.Tensor]:
        cfg, model = self.config, self.model
        x = model.preprocess(images).contiguous()  # channels-last input crashes conv backward (torch 2.13 CPU)
        if cfg.augment:  # the flips of the whole global batch, this process's share of them
            g = torch.Generator().manual_seed(cfg.seed * 7919 + self.step)
            lo = self._share()[0]
            flip = (torch.rand(max(self.batch_size, lo + len(x)), generator=g)[lo:lo + len(x)] < 0.5).to(x.device)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        y = torch.from_numpy(labels).to(self.device)
        teacher_emb = None
        if cfg.mode == "joint" and cfg.loss == "distill":
            with torch.no_grad():
                if self.teacher_fn is not None:
                    flipped = images if not cfg.augment else np.where(
                        flip.cpu().numpy()[:, None, None, None], images[:, :, ::-1], images)
                    teacher_emb = torch.as_tensor(self.teacher_fn(np.ascontiguousarray(flipped))).to(self.device)
                else:
                    teacher_emb = self.teacher(x)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
            id_loss, rec_loss, recon = self.losses(x, y, teacher_emb)
            loss = id_loss + cfg.recon_weight * rec_loss
        id_loss, rec_loss, finite = self._across_processes(id_loss, rec_loss, loss)
        if not finite:
            if self.launch.distributed:  # every process must run the backward DDP started; the step is dropped
                loss.backward()
                self._zero_grad()
            self._bad_steps += 1
            if self._bad_steps >= 5:
                raise TrainingError("training diverged (the loss is not finite); lower the learning rate")
            log.warning("skipping a step with a non-finite loss")
            return float("nan"), float("nan"), x, recon
        self._bad_steps = 0
        self._zero_grad()
        self.scaler.scale(loss).backward()
        if self.opt_rec:
            self.scaler.step(self.opt_rec)
        self.scaler.step(self.opt_dec)
        self.scaler.update()
        return id_loss, rec_loss, x, recon

    def _zero_grad(self) -> None:
        if self.opt_rec:
            self.opt_rec.zero_grad(set_to_none=True)
        self.opt_dec.zero_grad(set_to_none=True)

    def _across_processes(self, id_loss, rec_loss, loss) -> tuple[float, float, bool]:
        """The step's losses averaged over the processes, and whether every process's loss is finite (one
        all-reduce, so all of them skip a bad step together)."""
        stats = torch.stack([id_loss.detach().float(), rec_loss.detach().float(),
                             (~torch.isfinite(loss.detach())).float()])
        if self.launch.distributed:
            torch.distributed.all_reduce(stats)
            stats[:2] /= self.launch.world_size
        id_v, rec_v, bad = stats.tolist()
        return id_v, rec_v, bad == 0

    def _set_train_mode(self) -> None:
        self.model.train()
        if self.config.mode == "decoder":
            self.model.backbone.eval()  # frozen: its batch-norm statistics stay as they are

    def _samples(self, x: torch.Tensor, recon: torch.Tensor) -> np.ndarray | None:
        k = min(self.config.samples, len(x))
        if k <= 0:
            return None
        return np.stack([self.model.to_uint8(x[:k]), self.model.to_uint8(recon[:k].float())], axis=1)

    def run(self) -> TrainResult:
        try:
            return self._run()
        finally:
            distributed.stop(self._created_group)

    def _run(self) -> TrainResult:
        if not self._prepared:
            self.prepare()
        cfg = self.config
        self._bad_steps = 0
        val_pairs = self._validation_pairs()
        self._log({"event": "start", "step": self.step, "total_steps": self.total_steps,
                   "steps_per_epoch": self.steps_per_epoch, "n_images": len(self.dataset),
                   "images_per_epoch": self.steps_per_epoch * self.batch_size, "batch_size": self.batch_size,
                   "n_classes": self.dataset.n_classes, "device": str(self.device), "amp": self.use_amp,
                   "world_size": self.launch.world_size, "base": self.base_info.description,
                   "validation": val_pairs.source if val_pairs else None,
                   "config": cfg.to_dict()})
        self._emit(TrainingProgress("start", self.step, self.total_steps, self.epoch, cfg.epochs,
                                    message=self._start_message()))
        self._set_train_mode()
        t_start, paused_s, steps_at_start = time.monotonic(), 0.0, self.step
        self._window = (time.monotonic(), self.step)  # for the recent training speed (epoch ends excluded)
        acc = {"id": 0.0, "rec": 0.0, "n": 0}
        cancelled = False
        sampler = _EpochBatches()
        loader = torch.utils.data.DataLoader(_BatchSource(self.dataset), batch_sampler=sampler,
                                             num_workers=cfg.workers, collate_fn=_collate,
                                             persistent_workers=cfg.workers > 0,
                                             )
        while self.step < self.total_steps:
            epoch = self.step // self.steps_per_epoch
            self.epoch = epoch
            sampler.batches = self._epoch_batches(epoch)[self.step % self.steps_per_epoch:]
            for batch in loader:
                paused_s += self._wait_if_paused()
                cancel, batch = self._agree(self.cancel_event.is_set(), batch)
                if cancel:
                    cancelled = True
                    break
                if batch is None:
                    self.step += 1  # nothing usable (faces not found); keep the step count aligned with the data
                    continue
                id_l, rec_l, x, recon = self._train_step(*batch)
                self.step += 1
                if math.isfinite(rec_l):
                    acc["id"] += id_l
                    acc["rec"] += rec_l
                    acc["n"] += 1
                if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                    self._report_step(acc, x, recon, t_start, paused_s, steps_at_start)
                    acc = {"id": 0.0, "rec": 0.0, "n": 0}
                if self.step >= self.total_steps:
                    break
                if self.step % self.steps_per_epoch == 0:
                    break
            if cancelled:
                break
            epoch_done = self.step % self.steps_per_epoch == 0 or self.step >= self.total_steps
            if epoch_done:
                self._end_epoch(epoch, val_pairs)
                self._window = (time.monotonic(), self.step)
        if cancelled:
            self.save_checkpoint()
            self._log({"event": "cancelled", "step": self.step})
            self._emit(TrainingProgress("cancelled", self.step, self.total_steps, self.epoch, cfg.epochs,
                                        message=f"cancelled; checkpoint {self.checkpoint_path}"))
            return TrainResult(str(self.out), str(self.checkpoint_path), str(self.log_path), None, None, self.step,
                               len(self.history), True, list(self.history), name=self.model_name())
        return self._finish()

    def _start_message(self) -> str:
        used, n = self.steps_per_epoch * self.batch_size, len(self.dataset)
        share = (f", {self.batch_size // self.launch.world_size} per process"
                 if self.launch.distributed else "")
        rest = f" ({n - used} left out per epoch, a new draw each epoch)" if used < n else ""
        return (f"{n} images, {self.dataset.n_classes} identities, {self.device}; each epoch uses {used} images "
                f"in {self.steps_per_epoch} batches of {self.batch_size}{share}{rest}")

    def _agree(self, cancel: bool, batch):
        """(cancel, batch) as all processes see them: one process's Ctrl-C stops every process, and a step with
        no usable face on some process is skipped by all (one small all-reduce per step; none for one process)."""
        if not self.launch.distributed:
            return cancel, batch
        flags = torch.tensor([float(cancel), float(batch is None)], device=self.device)
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        cancel_any, empty_any = (bool(v) for v in flags.tolist())
        return cancel_any, (None if empty_any else batch)

    def _report_step(self, acc, x, recon, t_start, paused_s, steps_at_start) -> None:
        cfg = self.config
        n = max(acc["n"], 1)
        id_l, rec_l = acc["id"] / n, acc["rec"] / n
        elapsed = max(time.monotonic() - t_start - paused_s, 1e-6)
        rate = (self.step - steps_at_start) / elapsed
        eta = (self.total_steps - self.step) / rate if rate > 0 else None
        now = time.monotonic()
        recent = (self.step - self._window[1]) / max(now - self._window[0], 1e-6)
        self._window = (now, self.step)
        record = {"event": "step", "step": self.step, "epoch": self.epoch, "loss": id_l + cfg.recon_weight * rec_l,
                  "id_loss": id_l, "recon_loss": rec_l, "steps_per_s": rate, "recent_steps_per_s": recent}
        self._log(record)
        self._emit(TrainingProgress("step", self.step, self.total_steps, self.epoch, cfg.epochs,
                                    loss=record["loss"], id_loss=id_l, recon_loss=rec_l, eta_s=eta,
                                    steps_per_s=rate, samples=self._samples(x, recon)))

    def _end_epoch(self, epoch: int, val_pairs) -> None:
        metrics: dict = {"epoch": epoch + 1, "step": self.step}
        if val_pairs is not None and self.launch.is_main:  # the others go on and wait at the next step's collective
            metrics.update(evaluate_pairs(self.model, val_pairs))
            self._set_train_mode()
        self.history = [h for h in self.history if h.get("epoch") != epoch + 1] + [metrics]
        self.epoch = epoch + 1
        self._log({"event": "epoch", **metrics})
        self._emit(TrainingProgress("epoch", self.step, self.total_steps, epoch + 1, self.config.epochs,
                                    val_acc=metrics.get("val_acc"), val_threshold=metrics.get("val_threshold")))
        self.save_checkpoint()

    def model_name(self) -> str:
        if self.config.name:
            return self.config.name
        base = self.origin.get("name") or self.model.spec.get("name", "model")
        return f"{base}-ft-{self.config.mode}"

    def _finish(self) -> TrainResult:
        cfg = self.config
        if not self.launch.is_main:  # rank 0 writes the model and its card
            return TrainResult(str(self.out), str(self.checkpoint_path), str(self.log_path), None, None, self.step,
                               len(self.history), False, list(self.history), name=self.model_name())
        final = copy.deepcopy(self.model).cpu().eval()
        spec = final.spec
        last = self.history[-1] if self.history else {}
        spec["name"] = self.model_name()
        spec["provenance"] = {
            **{k: v for k, v in spec.get("provenance", {}).items() if k != "training"},
            "training": {
                "tool": "xfr train", "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "base": self.origin, "mode": cfg.mode, "loss": cfg.loss, "steps": self.step,
                "epochs": len(self.history), "data": str(cfg.data), "n_images": len(self.dataset),
                "n_classes": self.dataset.n_classes, "seed": cfg.seed, "device": str(self.device),
                "world_size": self.launch.world_size,
                "validation": last, "config": {k: v for k, v in cfg.to_dict().items() if k not in ("samples",)},
            },
        }
        final.spec = spec
        model_path = self.out / MODEL_NAME
        sha = save_model(final, model_path)
        card = model_card(spec, sha, self.history)
        (self.out / CARD_NAME).write_text(card, encoding="utf-8")
        self._log({"event": "done", "step": self.step, "model": str(model_path), "sha256": sha})
        self._emit(TrainingProgress("done", self.step, self.total_steps, self.epoch, cfg.epochs,
                                    val_acc=last.get("val_acc"), message=str(model_path)))
        return TrainResult(str(self.out), str(self.checkpoint_path), str(self.log_path), str(model_path), sha,
                           self.step, len(self.history), False, list(self.history), card, spec["name"])


def model_card(spec: dict, sha256: str, history: list[dict]) -> str:
    """A markdown model card for a trained model (stored with it in the model registry)."""
    tr = spec.get("provenance", {}).get("training", {})
    base = tr.get("base", {})
    last = history[-1] if history else {}
    h, w = spec["input_size"]
    lines = [
        f"# {spec.get('name', 'model')}",
        "",
        f"- SHA-256: `{sha256}`",
        f"- Architecture: {spec.get('family')} depth {spec.get('depth')}, input {h}x{w}, "
        f"{spec.get('channels')} channels, max-pool embedding, transposed-convolution decoder",
        f"- Trained: {tr.get('finished', '?')} with `{tr.get('tool', 'xfr train')}` on {tr.get('device', '?')}"
        f" ({tr.get('world_size', 1)} process{'es' if tr.get('world_size', 1) != 1 else ''})",
        f"- Base model: {base.get('name') or base.get('kind', '?')} ({base.get('kind', '?')}"
        + (f", sha256 `{base['sha256'][:16]}…`" if base.get("sha256") else "") + ")",
        f"- Mode: {tr.get('mode')} (loss {tr.get('loss') if tr.get('mode') == 'joint' else 'reconstruction only'}"
        f" + reconstruction MSE), {tr.get('steps')} steps, {tr.get('epochs')} epoch(s), seed {tr.get('seed')}",
        f"- Training data: `{tr.get('data')}`: {tr.get('n_images')} images of {tr.get('n_classes')} identities",
        f"- Decision threshold in the file: {spec.get('threshold')} (cosine); calibrate it on your own data "
        f"before casework",
    ]
    if last.get("val_acc") is not None:
        lines.append(f"- Validation: {last['val_acc'] * 100:.2f}% best-threshold accuracy on {last.get('val_pairs')} "
                     f"pairs (threshold {last.get('val_threshold', float('nan')):.3f}); "
                     f"{last.get('val_acc_at_model_threshold', float('nan')) * 100:.2f}% at the file's threshold")
    if history:
        lines += ["", "| epoch | step | validation accuracy |", "|---|---|---|"]
        for hrow in history:
            acc = hrow.get("val_acc")
            lines.append(f"| {hrow.get('epoch')} | {hrow.get('step')} | "
                         f"{'' if acc is None else f'{acc * 100:.2f}%'} |")
    lines += ["", "Intended use: explaining face comparisons in XFR Desktop; it is not a substitute for an examiner's "
              "judgement. Accuracy on the training images themselves is optimistic."]
    return "\n".join(lines) + "\n"


def estimate_step_seconds(model: JointModel, batch_size: int, device: str | torch.device = "cpu",
                          mode: str = "joint", probe_batch: int = 2) -> float:
    """Seconds per training step (forward + backward), measured on random data; weights are untouched.

    On a CPU a small batch is timed and scaled linearly; on a GPU the real batch is timed (a GPU is not linear
    in the batch size), after a warm-up."""
    device = resolve_device(device)
    probe = copy.deepcopy(model).to(device).train()
    h, w = probe.input_size
    n = probe_batch if device.type == "cpu" else batch_size
    x = torch.randn(n, 3, h, w, device=device)
    times = []
    for _ in range(2 if device.type == "cpu" else 4):
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            if mode == "joint":
                C, emb = probe.embed(x)
            else:
                with torch.no_grad():
                    C, emb = probe.backbone(x), None
            loss = reconstruction_loss(probe.reconstruct(C), x)
            if emb is not None:
                loss = loss + emb.float().pow(2).mean()
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times[1:] if len(times) > 2 else times) * batch_size / n


def planned_steps(n_images: int, batch_size: int, epochs: int, max_steps: int | None = None) -> int:
    """The number of steps a run will take (as the Trainer counts them)."""
    batch = max(1, min(batch_size, n_images))
    total = epochs * max(1, n_images // batch)
    return min(total, max_steps) if max_steps else total


def spec_model_bytes(spec: dict) -> int:
    """Bytes of a model's weights, from its spec alone (built on the meta device: no memory, no time)."""
    with torch.device("meta"):
        return model_bytes(JointModel(spec))


def required_disk_bytes_for_spec(spec: dict) -> int:
    """Checkpoint (weights + optimizer moments) + its temp copy + the final model, with a margin."""
    return int(spec_model_bytes(spec) * 7 + 20e6)
