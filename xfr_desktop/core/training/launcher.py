"""Run ``xfr train`` in several processes on one workstation (one per GPU) and follow it like an in-process run.

    result = train_in_processes(config, nproc=4, callback=print, cancel_event=ev)

writes the settings to ``<out>/train.toml``, starts ``torchrun --standalone --nproc_per_node N -m xfr_desktop.cli
train --config <out>/train.toml``, relays the step and epoch records rank 0 appends to ``train_log.jsonl`` to
``callback``, turns ``cancel_event`` into a Ctrl-C for every process (they stop after the step and keep a
checkpoint) and reads the result back from the run folder. The training wizard uses it for its "GPUs" setting.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import torch

from .config import CARD_NAME, CHECKPOINT_NAME, LOG_NAME, MODEL_NAME, ProgressCallback, TrainConfig, \
    TrainingError, TrainingProgress, TrainResult

CONFIG_NAME = "train.toml"


def torchrun_command(config_path: str | os.PathLike, nproc: int, python: str = sys.executable) -> list[str]:
    """The command that trains ``config_path``'s run in ``nproc`` processes on this machine (a free port each time:
    ``--standalone``)."""
    return [python, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", str(nproc),
            "-m", "xfr_desktop.cli", "train", "--config", str(config_path), "-q"]


def _progress(record: dict, epochs: int, total: int) -> TrainingProgress | None:
    event = record.get("event")
    if event == "step":
        return TrainingProgress("step", record["step"], total, record.get("epoch", 0), epochs, loss=record["loss"],
                                id_loss=record["id_loss"], recon_loss=record["recon_loss"],
                                steps_per_s=record.get("steps_per_s"))
    if event == "epoch":
        return TrainingProgress("epoch", record["step"], total, record["epoch"], epochs,
                                val_acc=record.get("val_acc"), val_threshold=record.get("val_threshold"))
    if event in ("start", "checkpoint", "cancelled"):
        return TrainingProgress(event, record.get("step", 0), total, 0, epochs,
                                message=f"{record.get('world_size', '?')} processes" if event == "start" else "")
    return None


def read_run(out: str | os.PathLike, name: str = "") -> TrainResult:
    """A finished or cancelled run's result, from its folder (the log rank 0 wrote)."""
    out = Path(out)
    records = [json.loads(line) for line in (out / LOG_NAME).read_text(encoding="utf-8").splitlines() if line]
    last = records[-1] if records else {}
    history = [{k: v for k, v in r.items() if k not in ("event", "time")} for r in records if r["event"] == "epoch"]
    done = last.get("event") == "done"
    card = (out / CARD_NAME).read_text(encoding="utf-8") if done and (out / CARD_NAME).is_file() else ""
    if done:
        name = json.loads(torch.load(out / MODEL_NAME, map_location="cpu", weights_only=True)["spec_json"])["name"]
    return TrainResult(str(out), str(out / CHECKPOINT_NAME), str(out / LOG_NAME), last.get("model") if done else None,
                       last.get("sha256") if done else None, int(last.get("step", 0)), len(history), not done,
                       history, card, name)


def train_in_processes(config: TrainConfig, nproc: int, callback: ProgressCallback | None = None,
                       cancel_event: threading.Event | None = None, env: dict | None = None,
                       timeout_s: float | None = None) -> TrainResult:
    """Train ``config`` in ``nproc`` local processes; ``timeout_s`` ends them all (and raises) when exceeded."""
    out = Path(config.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    log = out / LOG_NAME
    seen = len(log.read_text(encoding="utf-8").splitlines()) if log.is_file() else 0  # a resumed run's old lines
    (out / CONFIG_NAME).write_text(config.to_toml(), encoding="utf-8")
    proc = subprocess.Popen(torchrun_command(out / CONFIG_NAME, nproc), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, env=env)
    tail: deque[str] = deque(maxlen=20)
    reader = threading.Thread(target=lambda: tail.extend(proc.stderr), daemon=True)
    reader.start()
    total, interrupted, started = config.max_steps or 0, False, time.monotonic()
    while True:
        finished = proc.poll() is not None
        if not finished and timeout_s is not None and time.monotonic() - started > timeout_s:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise TrainingError(f"the {nproc}-process run took longer than {timeout_s:.0f} s and was stopped")
        if cancel_event is not None and cancel_event.is_set() and not interrupted:
            os.killpg(proc.pid, signal.SIGINT)  # every process stops after its step; rank 0 keeps a checkpoint
            interrupted = True
        if log.is_file():
            text = log.read_text(encoding="utf-8")
            lines = text.splitlines()[:text.count("\n")]  # whole lines only: rank 0 may be writing the last
            for line in lines[seen:]:
                record = json.loads(line)
                total = record.get("total_steps", total)
                p = _progress(record, config.epochs, total)
                if p is not None and callback is not None:
                    callback(p)
            seen = len(lines)
        if finished:
            break
        time.sleep(0.5)
    reader.join(5)
    stopped = interrupted and log.is_file() and '"event": "cancelled"' in log.read_text(encoding="utf-8")
    if proc.returncode != 0 and not stopped:
        errors = [line.strip() for line in tail if "error" in line.lower()]
        raise TrainingError(f"the {nproc}-process run failed (exit {proc.returncode}): "
                            f"{(errors or list(tail) or ['no output'])[-1][:300]}")
    return read_run(out, config.name or "")
