"""Smoke test of `xfr train` in 2 processes on CUDA (run on a GPU machine; benchmarks/gpu_session.sh runs it).

    python benchmarks/ddp_smoke.py [--device cuda] [--steps 4]     -> $OUT/ddp_smoke.json (or ./ddp_smoke.json)

Trains the tests' tiny model (tests/training/test_training.py) for a few steps in one process and in two (through the
wizard's launcher, torchrun --standalone) with the same global batch, and records the largest weight difference,
the backend and what rank 0 wrote. With two or more GPUs the processes use NCCL and SyncBatchNorm; with one GPU,
NCCL refuses two processes on one device, so they share it over gloo (XFR_DIST_BACKEND=gloo, the all-reduced batch
norm). Mixed precision is off; cuDNN's algorithm choice and TF32 still make GPU runs differ in the 4th digit, so
the check is loose (1e-2); tests/training/test_distributed_training.py holds the CPU to 1e-4.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import torch  # noqa: E402

from test_training import make_identity_folder, small_spec  # noqa: E402
from xfr_desktop.core.model import JointModel, load_model, save_model  # noqa: E402
from xfr_desktop.core.training.config import CHECKPOINT_NAME, TrainConfig  # noqa: E402
from xfr_desktop.core.training.launcher import train_in_processes  # noqa: E402
from xfr_desktop.core.training.trainer import Trainer  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=4)
    args = p.parse_args()
    out: dict = {"torch": torch.__version__, "device": args.device,
                 "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0}
    env = dict(os.environ, PYTHONPATH=str(REPO), XFR_DIST_TIMEOUT_S="120")
    if args.device == "cuda" and out["gpus"] < 2:
        env["XFR_DIST_BACKEND"] = "gloo"
    out["backend"] = env.get("XFR_DIST_BACKEND") or ("nccl" if args.device == "cuda" else "gloo")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        torch.manual_seed(0)
        save_model(JointModel(small_spec()), work / "base.pt")
        make_identity_folder(work / "data")

        def cfg(name):
            return TrainConfig(data=str(work / "data"), out=str(work / name), base=str(work / "base.pt"),
                               batch_size=4, epochs=2, max_steps=args.steps, log_every=1, device=args.device,
                               amp=False, val_limit=8)

        t0 = time.perf_counter()
        Trainer(cfg("one")).run()
        out["one_process_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        two = train_in_processes(cfg("two"), 2, env=env, timeout_s=400)
        out["two_processes_s"] = round(time.perf_counter() - t0, 2)
        a = load_model(work / "one" / "model.pt", device="cpu").state_dict()
        b = load_model(two.model_path, device="cpu").state_dict()
        diffs = {k: float((a[k].float() - b[k].float()).abs().max()) for k in a if a[k].is_floating_point()}
        worst = max(diffs, key=diffs.get)
        log = [json.loads(line) for line in (work / "two" / "train_log.jsonl").read_text().splitlines()]
        out.update({
            "steps": two.steps, "max_weight_diff": diffs[worst], "max_weight_diff_at": worst,
            "log_starts": sum(r["event"] == "start" for r in log), "log_world_size": log[0].get("world_size"),
            "checkpoint_world_size": torch.load(work / "two" / CHECKPOINT_NAME, weights_only=True)["world_size"],
        })
    out["ok"] = (out["steps"] == args.steps and out["log_starts"] == 1 and out["log_world_size"] == 2
                 and out["checkpoint_world_size"] == 2 and out["max_weight_diff"] < 1e-2)
    print(json.dumps(out, indent=1))
    (Path(os.environ.get("OUT", ".")) / "ddp_smoke.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
