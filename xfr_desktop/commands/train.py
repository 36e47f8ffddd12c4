"""`xfr train`: fine-tune the joint model (recognition + reconstruction) from a TOML config or flags."""
from __future__ import annotations

import signal
import sys
import threading
import time

from ..core.numbers import finite_arg


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="fine-tune a joint model on your own data",
        description="Fine-tune the joint model (backbone + decoder). Settings come from --config FILE.toml "
                    "(keys as in the [train] table, see the docs) and flags, which override the file. "
                    "Ctrl-C stops after the current step and saves a checkpoint; resume with --resume OUT.",
    )
    p.add_argument("--config", metavar="FILE.toml", help="training settings ([train] table)")
    p.add_argument("--data", metavar="DIR", help="a folder per identity, or train.rec (+ train.idx)")
    p.add_argument("--out", metavar="DIR", help="run folder: checkpoint.pt, train_log.jsonl, model.pt")
    p.add_argument("--base", metavar="MODEL",
                   help="base model: an XFR model file, an insightface backbone.pth, or a run folder / "
                        "checkpoint to resume (default: the bundled model)")
    p.add_argument("--resume", metavar="DIR", help="resume the run in DIR (same as --base DIR --out DIR)")
    p.add_argument("--mode", choices=["decoder", "joint"], help="train the decoder only, or everything (default joint)")
    p.add_argument("--loss", choices=["arcface", "distill"], help="identity loss in joint mode (default arcface)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--max-steps", type=int, help="stop after this many steps in all")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr-recognition", type=finite_arg, help="SGD learning rate of the backbone (default 0.02)")
    p.add_argument("--lr-decoder", type=finite_arg, help="Adam learning rate of the decoder (default 2e-4)")
    p.add_argument("--decoder-optimizer", choices=["adam", "sgd"], help="the decoder's optimizer (default adam)")
    p.add_argument("--recon-weight", type=finite_arg, help="lambda of the reconstruction loss (default 1)")
    p.add_argument("--val", metavar="FILE", help="validation pairs: LFW pairs.txt, CSV pairs or insightface .bin")
    p.add_argument("--val-images", metavar="DIR", help="image folder the validation pair list refers to")
    p.add_argument("--val-limit", type=int, metavar="N", help="use at most N validation pairs, spread over the set")
    p.add_argument("--aligned", choices=["auto", "yes", "no"], help="are the images aligned crops already?")
    p.add_argument("--teacher", metavar="MODEL", help="distillation teacher (default: the base model)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--workers", type=int, help="data-loading processes (default 0)")
    p.add_argument("--seed", type=int)
    p.add_argument("--name", help="name of the new model")
    p.add_argument("--print-config", action="store_true", help="print the effective settings as TOML and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def build_config(args):
    from ..core.training.config import TrainConfig, TrainingError

    cfg = TrainConfig.from_toml(args.config) if args.config else TrainConfig()
    aligned = {"auto": "auto", "yes": True, "no": False}.get(args.aligned) if args.aligned else None
    base, out = args.base, args.out
    if args.resume:
        base, out = args.resume, out or args.resume
    cfg = cfg.replace(
        data=args.data, out=out, base=base, mode=args.mode, loss=args.loss, epochs=args.epochs,
        max_steps=args.max_steps, batch_size=args.batch_size, lr_recognition=args.lr_recognition,
        lr_decoder=args.lr_decoder, decoder_optimizer=args.decoder_optimizer, recon_weight=args.recon_weight,
        val=args.val, val_images_root=args.val_images, val_limit=args.val_limit,
        aligned=aligned, teacher=args.teacher, device=args.device, workers=args.workers, seed=args.seed,
        name=args.name,
    )
    if not args.print_config:
        if not cfg.data:
            raise TrainingError("no training data: give --data DIR or data = \"...\" in the config")
        if not cfg.out:
            raise TrainingError("no run folder: give --out DIR or out = \"...\" in the config")
    return cfg


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class ProgressPrinter:
    """A one-line progress bar on stderr (a plain line per event when stderr is not a terminal)."""

    def __init__(self, stream=None, quiet: bool = False, width: int = 28):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.val_acc = None
        self._last_plain = 0.0

    def __call__(self, p) -> None:
        if p.val_acc is not None:
            self.val_acc = p.val_acc
        if self.quiet:
            return
        if p.event == "step":
            filled = int(self.width * p.fraction)
            bar = "#" * filled + "." * (self.width - filled)
            val = f" val {self.val_acc * 100:.1f}%" if self.val_acc is not None else ""
            line = (f"[{bar}] {p.fraction * 100:3.0f}% step {p.step}/{p.total_steps} epoch {p.epoch + 1}/{p.epochs}"
                    f" loss {p.loss:.4f} (id {p.id_loss:.4f} rec {p.recon_loss:.4f}){val} ETA {_fmt_time(p.eta_s)}")
            if self.tty:
                self.stream.write("\r" + line + "\033[K")
            elif time.monotonic() - self._last_plain > 5 or p.step == p.total_steps:
                self.stream.write(line + "\n")
                self._last_plain = time.monotonic()
        elif p.event == "epoch" and p.val_acc is not None:
            self._line(f"epoch {p.epoch}: validation accuracy {p.val_acc * 100:.2f}%")
        elif p.event in ("start", "paused", "resumed"):
            self._line(f"{p.event}: {p.message}" if p.message else p.event)
        self.stream.flush()

    def _line(self, text: str) -> None:
        self.stream.write(("\r\033[K" if self.tty else "") + text + "\n")


def run(args) -> int:
    from ..core.distributed import launch_from_env
    from ..core.training.trainer import Trainer

    cfg = build_config(args)
    if args.print_config:
        sys.stdout.write(cfg.to_toml())
        return 0
    cancel = threading.Event()
    trainer = Trainer(cfg, callback=ProgressPrinter(quiet=args.quiet), cancel_event=cancel)

    def on_sigint(signum, frame):
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        sys.stderr.write("\nstopping after this step and saving a checkpoint (Ctrl-C again to abort)...\n")

    previous = signal.signal(signal.SIGINT, on_sigint) if threading.current_thread() is threading.main_thread() else None
    try:
        result = trainer.run()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if not launch_from_env().is_main:
        return 0  # under torchrun, rank 0 alone reports (the others hold no model file)
    if result.cancelled:
        print(f"cancelled at step {result.steps}; checkpoint: {result.checkpoint_path}\n"
              f"resume with: xfr train --resume {result.out_dir}" + (f" --config {args.config}" if args.config else ""))
        return 130
    last = result.history[-1] if result.history else {}
    acc = f", validation accuracy {last['val_acc'] * 100:.2f}%" if last.get("val_acc") is not None else ""
    print(f"trained {result.steps} steps{acc}\nmodel: {result.model_path} (sha256 {result.model_sha256})\n"
          f"log: {result.log_path}\nuse it with: xfr explain --model {result.model_path} ...")
    return 0
