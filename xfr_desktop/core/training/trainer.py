"""The training loop shared by ``xfr train``, the training wizard and the bundled model's recipe.

    config = TrainConfig.from_toml("run.toml")            # or TrainConfig(data=..., out=..., ...)
    result = Trainer(config, callback=print_progress, pause_event=ev_p, cancel_event=ev_c).run()
    load_model(result.model_path)                          # the fine-tuned joint model

Loss of a step: ``L_id + recon_weight * MSE(decoder(C), x)`` where ``L_id`` is ArcFace on the identity labels or
distillation towards a frozen teacher (by default the base model itself); in ``decoder`` mode the backbone is
frozen and only the reconstruction term trains the decoder. Optimizers follow the paper: SGD (lr 0.02, momentum
0.9, weight decay 5e-4) for the recognition part, Adam (2e-4) for the decoder; mixed precision on CUDA.

The loop has Lightning's shape: :meth:`Trainer.run` sets up, resets, then ``while not self.done: self.advance()``.
One step per :meth:`~Trainer.advance`; :attr:`~Trainer.done` holds every reason to stop (the planned steps
reached, a cancel every process agreed on, a diverged loss) and logs the one that stopped the run.

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
import datetime as _dt
import json
import logging
import math
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from .. import distributed
from ..model import JointModel, file_sha256, load_model, resolve_device, save_model
from .base_model import build_base_model, inspect_base
from .checkpoint import checkpoint_origin, load_torch_file, load_weights, restore_state, write_checkpoint
from .config import (CARD_NAME, CHECKPOINT_NAME, LOG_NAME, MODEL_NAME, ProgressCallback, TrainConfig, TrainingError,
                     TrainingProgress, TrainResult)
from .datasets import DatasetError, FolderDataset, RecordIODataset, ValidationPairs, load_validation_pairs, \
    pairs_from_dataset, recordio_file
from .losses import ArcFaceHead, distillation_loss, reconstruction_loss
from .planning import check_disk_space, global_batch_size, model_card, required_disk_bytes_for_spec
from .validation import evaluate_pairs

log = logging.getLogger(__name__)

MAX_BAD_STEPS = 5   # non-finite losses in a row before the run is called diverged


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
        self.stop_reason: str | None = None
        self._prepared = False
        self.launch = distributed.launch_from_env()
        self._created_group = False

    def _emit(self, progress: TrainingProgress) -> None:
        if self.callback is not None and self.launch.is_main:
            self.callback(progress)

    def _log(self, record: dict) -> None:
        if not self.launch.is_main:
            return
        record = {"time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **record}
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=float) + "\n")

    def _progress(self, event: str, **values) -> TrainingProgress:
        values.setdefault("epoch", self.epoch)
        return TrainingProgress(event, self.step, self.total_steps, epochs=self.config.epochs, **values)

    # .. prepare: each step in the order the seeds and the resume depend on ..
    def prepare(self) -> None:
        self._set_up_device()
        ckpt = self._load_model()
        self._check_decoder_output()
        self._open_data()
        self.out.mkdir(parents=True, exist_ok=True)
        check_disk_space(self.out, required_disk_bytes_for_spec(self.model.spec))
        self._load_teacher(ckpt)   # before any weight changes
        self._build_optimizers()
        if ckpt is not None:
            restore_state(self, ckpt)
        self._wrap_losses()
        self._prepared = True

    def _set_up_device(self) -> None:
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

    def _load_model(self) -> dict | None:
        """The base model, or a checkpoint's model; returns the checkpoint (None for a new run)."""
        self.base_info = inspect_base(self.config.base)
        if self.base_info.kind != "checkpoint":
            self.model = build_base_model(self.base_info)
            self.origin = {"kind": self.base_info.kind, "path": self.base_info.path,
                           "sha256": getattr(self.model, "sha256", None)
                           or (file_sha256(self.base_info.path) if self.base_info.path else None),
                           "name": self.model.spec.get("name"), "teacher": self.config.teacher}
            return None
        ckpt = load_torch_file(Path(self.base_info.checkpoint_path))
        self.model = JointModel(self.base_info.spec)
        load_weights(self.model, ckpt, self.base_info.path)
        self.origin = checkpoint_origin(ckpt)
        return ckpt

    def _check_decoder_output(self) -> None:
        h, w = self.model.input_size
        with torch.no_grad():
            probe = self.model.eval().reconstruct(self.model.embed(torch.zeros(1, 3, h, w))[0])
        if tuple(probe.shape[2:]) != (h, w):
            raise TrainingError(f"the model's decoder outputs {tuple(probe.shape[2:])} but its input is {(h, w)}")

    def _open_data(self) -> None:
        cfg = self.config
        self.dataset = open_training_dataset(cfg, self.model.spec)
        if cfg.mode == "joint" and cfg.loss == "arcface" and self.dataset.n_classes < 2:
            raise DatasetError("ArcFace needs at least 2 identities in the training data")
        self.batch_size = global_batch_size(cfg.batch_size, len(self.dataset), self.launch.world_size)
        self.steps_per_epoch = max(1, len(self.dataset) // self.batch_size)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        if cfg.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.max_steps)

    def _load_teacher(self, ckpt: dict | None) -> None:
        cfg = self.config
        self.teacher = None
        if not (cfg.mode == "joint" and cfg.loss == "distill" and self.teacher_fn is None):
            return
        ref = self.origin.get("teacher")
        if ref:
            self.teacher = load_model(ref, device="cpu")
        elif ckpt is None:
            self.teacher = copy.deepcopy(self.model)
        else:  # a resumed run's teacher is its first base model
            kind, path = self.origin.get("kind"), self.origin.get("path")
            self.teacher = build_base_model(inspect_base(None if kind == "bundled" else path))
        self.teacher.to(self.device).eval().requires_grad_(False)

    def _build_optimizers(self) -> None:
        cfg = self.config
        self.model.to(self.device)
        if self.launch.distributed:  # before the optimizers take the parameters
            distributed.synchronise_batch_norm(self.model, self.device)
        self.head = None
        if cfg.mode == "joint" and cfg.loss == "arcface":
            self.head = ArcFaceHead(int(self.model.spec["channels"]), self.dataset.n_classes,
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

    def _wrap_losses(self) -> None:
        cfg = self.config
        self.losses = _StepLosses(self.model, self.head, cfg.mode, cfg.loss, cfg.distill_structure_weight)
        if self.launch.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.losses = torch.nn.parallel.DistributedDataParallel(self.losses, device_ids=ids)

    def save_checkpoint(self) -> Path:
        if not self.launch.is_main:
            return self.checkpoint_path
        write_checkpoint(self, self.checkpoint_path)
        self._log({"event": "checkpoint", "step": self.step, "path": str(self.checkpoint_path)})
        self._emit(self._progress("checkpoint", message=str(self.checkpoint_path)))
        return self.checkpoint_path

    # .. the loop ..
    def run(self) -> TrainResult:
        try:
            self.setup()
            self.reset()
            while not self.done:
                self.advance()
            return self._stopped()
        finally:
            distributed.stop(self._created_group)

    def setup(self) -> None:
        """Model, data, optimizers (see :meth:`prepare`), validation pairs and the one DataLoader of the run."""
        if not self._prepared:
            self.prepare()
        self._val_pairs = self._validation_pairs()
        self._sampler = _EpochBatches()
        self._loader = torch.utils.data.DataLoader(_BatchSource(self.dataset), batch_sampler=self._sampler,
                                                   num_workers=self.config.workers, collate_fn=_collate,
                                                   persistent_workers=self.config.workers > 0)
        self._batches = None   # the current epoch's batch iterator

    def reset(self) -> None:
        """The run's counters and clocks; logs and reports the start."""
        self._bad_steps = 0
        self._cancelled = False
        self.stop_reason = None
        self._log({"event": "start", "step": self.step, "total_steps": self.total_steps,
                   "steps_per_epoch": self.steps_per_epoch, "n_images": len(self.dataset),
                   "images_per_epoch": self.steps_per_epoch * self.batch_size, "batch_size": self.batch_size,
                   "n_classes": self.dataset.n_classes, "device": str(self.device), "amp": self.use_amp,
                   "world_size": self.launch.world_size, "base": self.base_info.description,
                   "validation": self._val_pairs.source if self._val_pairs else None,
                   "config": self.config.to_dict()})
        self._emit(self._progress("start", message=self._start_message()))
        self._set_train_mode()
        self._t_start, self._paused_s, self._steps_at_start = time.monotonic(), 0.0, self.step
        self._window = (time.monotonic(), self.step)  # for the recent training speed (epoch ends excluded)
        self._acc = {"id": 0.0, "rec": 0.0, "n": 0}

    @property
    def done(self) -> bool:
        """Whether the run stops here, with every reason it can stop; the first reason found is logged."""
        if self.stop_reason is None:
            if self._cancelled:
                reason = "cancel requested"
            elif self._bad_steps >= MAX_BAD_STEPS:
                reason = f"diverged: {MAX_BAD_STEPS} non-finite losses in a row"
            elif self.step >= self.total_steps and self.total_steps < self.config.epochs * self.steps_per_epoch:
                reason = f"max_steps {self.config.max_steps} reached"
            elif self.step >= self.total_steps:
                reason = f"all {self.config.epochs} epoch(s) done"
            else:
                return False
            self.stop_reason = reason
            log.info("training stopped at step %d of %d: %s", self.step, self.total_steps, reason)
        return True

    def advance(self) -> None:
        """One step: the next batch, trained (or skipped when it holds no usable face) and counted; the epoch's end."""
        batch = self._next_batch()
        self._paused_s += self._wait_if_paused()
        cancel, batch = self._agree(self.cancel_event.is_set(), batch)
        if cancel:
            self._cancelled = True
            return
        if batch is None:
            self.step += 1  # nothing usable (faces not found); keep the step count aligned with the data
        else:
            id_l, rec_l, x, recon = self._train_step(*batch)
            if self._bad_steps >= MAX_BAD_STEPS:
                return  # diverged: `done` stops the run before this step counts
            self.step += 1
            self._accumulate(id_l, rec_l)
            if self.step % self.config.log_every == 0 or self.step == self.total_steps:
                self._report_step(x, recon)
        if self.step % self.steps_per_epoch == 0 or self.step >= self.total_steps:
            self._end_epoch()

    def _next_batch(self):
        if self._batches is None:  # an epoch starts, possibly part-way through (a resumed run)
            self.epoch = self.step // self.steps_per_epoch
            self._sampler.batches = self._epoch_batches(self.epoch)[self.step % self.steps_per_epoch:]
            self._batches = iter(self._loader)
        return next(self._batches)

    def _stopped(self) -> TrainResult:
        if self._bad_steps >= MAX_BAD_STEPS:
            raise TrainingError("training diverged (the loss is not finite); lower the learning rate")
        if self._cancelled:
            self.save_checkpoint()
            self._log({"event": "cancelled", "step": self.step})
            self._emit(self._progress("cancelled", message=f"cancelled; checkpoint {self.checkpoint_path}"))
            return TrainResult(str(self.out), str(self.checkpoint_path), str(self.log_path), None, None, self.step,
                               len(self.history), True, list(self.history), name=self.model_name())
        return self._finish()

    # .. inside a step ..
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
        self._emit(self._progress("paused"))
        while self.pause_event.is_set() and not self.cancel_event.is_set():
            self.cancel_event.wait(0.1)
        self._log({"event": "resumed", "step": self.step})
        self._emit(self._progress("resumed"))
        return time.monotonic() - t0

    def _agree(self, cancel: bool, batch):
        """(cancel, batch) as all processes see them: one process's Ctrl-C stops every process, and a step with
        no usable face on some process is skipped by all (one small all-reduce per step; none for one process)."""
        if not self.launch.distributed:
            return cancel, batch
        flags = torch.tensor([float(cancel), float(batch is None)], device=self.device)
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        cancel_any, empty_any = (bool(v) for v in flags.tolist())
        return cancel_any, (None if empty_any else batch)

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
            if self._bad_steps < MAX_BAD_STEPS:
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

    # .. reporting ..
    def _samples(self, x: torch.Tensor, recon: torch.Tensor) -> np.ndarray | None:
        k = min(self.config.samples, len(x))
        if k <= 0:
            return None
        return np.stack([self.model.to_uint8(x[:k]), self.model.to_uint8(recon[:k].float())], axis=1)

    def _start_message(self) -> str:
        used, n = self.steps_per_epoch * self.batch_size, len(self.dataset)
        share = (f", {self.batch_size // self.launch.world_size} per process"
                 if self.launch.distributed else "")
        rest = f" ({n - used} left out per epoch, a new draw each epoch)" if used < n else ""
        return (f"{n} images, {self.dataset.n_classes} identities, {self.device}; each epoch uses {used} images "
                f"in {self.steps_per_epoch} batches of {self.batch_size}{share}{rest}")

    def _accumulate(self, id_l: float, rec_l: float) -> None:
        if math.isfinite(rec_l):
            self._acc["id"] += id_l
            self._acc["rec"] += rec_l
            self._acc["n"] += 1

    def _report_step(self, x, recon) -> None:
        """The mean losses since the last report, the speed and the time left: logged and sent."""
        acc, self._acc = self._acc, {"id": 0.0, "rec": 0.0, "n": 0}
        n = max(acc["n"], 1)
        id_l, rec_l = acc["id"] / n, acc["rec"] / n
        elapsed = max(time.monotonic() - self._t_start - self._paused_s, 1e-6)
        rate = (self.step - self._steps_at_start) / elapsed
        eta = (self.total_steps - self.step) / rate if rate > 0 else None
        now = time.monotonic()
        recent = (self.step - self._window[1]) / max(now - self._window[0], 1e-6)
        self._window = (now, self.step)
        record = {"event": "step", "step": self.step, "epoch": self.epoch,
                  "loss": id_l + self.config.recon_weight * rec_l,
                  "id_loss": id_l, "recon_loss": rec_l, "steps_per_s": rate, "recent_steps_per_s": recent}
        self._log(record)
        self._emit(self._progress("step", loss=record["loss"], id_loss=id_l, recon_loss=rec_l, eta_s=eta,
                                  steps_per_s=rate, samples=self._samples(x, recon)))

    def _end_epoch(self) -> None:
        """Validation (rank 0; the others wait at the next step's collective), the history, a checkpoint."""
        epoch = self.epoch
        metrics: dict = {"epoch": epoch + 1, "step": self.step}
        if self._val_pairs is not None and self.launch.is_main:
            metrics.update(evaluate_pairs(self.model, self._val_pairs))
            self._set_train_mode()
        self.history = [h for h in self.history if h.get("epoch") != epoch + 1] + [metrics]
        self.epoch = epoch + 1
        self._log({"event": "epoch", **metrics})
        self._emit(self._progress("epoch", val_acc=metrics.get("val_acc"), val_threshold=metrics.get("val_threshold")))
        self.save_checkpoint()
        self._batches = None
        self._window = (time.monotonic(), self.step)

    def model_name(self) -> str:
        if self.config.name:
            return self.config.name
        base = self.origin.get("name") or self.model.spec.get("name", "model")
        return f"{base}-ft-{self.config.mode}"

    def _finish(self) -> TrainResult:
        if not self.launch.is_main:  # rank 0 writes the model and its card
            return TrainResult(str(self.out), str(self.checkpoint_path), str(self.log_path), None, None, self.step,
                               len(self.history), False, list(self.history), name=self.model_name())
        final = copy.deepcopy(self.model).cpu().eval()
        final.spec = spec = self._final_spec(final.spec)
        model_path = self.out / MODEL_NAME
        sha = save_model(final, model_path)
        card = model_card(spec, sha, self.history)
        (self.out / CARD_NAME).write_text(card, encoding="utf-8")
        self._log({"event": "done", "step": self.step, "model": str(model_path), "sha256": sha})
        last = self.history[-1] if self.history else {}
        self._emit(self._progress("done", val_acc=last.get("val_acc"), message=str(model_path)))
        return TrainResult(str(self.out), str(self.checkpoint_path), str(self.log_path), str(model_path), sha,
                           self.step, len(self.history), False, list(self.history), card, spec["name"])

    def _final_spec(self, spec: dict) -> dict:
        """The trained model's spec: its name and the run in ``provenance.training``."""
        cfg = self.config
        spec["name"] = self.model_name()
        spec["provenance"] = {
            **{k: v for k, v in spec.get("provenance", {}).items() if k != "training"},
            "training": {
                "tool": "xfr train", "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "base": self.origin, "mode": cfg.mode, "loss": cfg.loss, "steps": self.step,
                "epochs": len(self.history), "data": str(cfg.data), "n_images": len(self.dataset),
                "n_classes": self.dataset.n_classes, "seed": cfg.seed, "device": str(self.device),
                "world_size": self.launch.world_size, "validation": self.history[-1] if self.history else {},
                "config": {k: v for k, v in cfg.to_dict().items() if k not in ("samples",)},
            },
        }
        return spec
