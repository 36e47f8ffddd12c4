"""Issue 22: the mean of several checkpoints of one training line as a model file ("weight averaging").

Checkpoints taken late in a cosine schedule, or the ends of runs continued one from another, lie in one basin of the
loss; their element-wise mean often recognises better than any of them, at no training cost. Every source must be a
``train_images.py`` checkpoint (``checkpoint.pt`` or a copy) in the same layout; the first one's ``init`` and
configuration build the model. The threshold comes from a fresh held-out evaluation of the mean (the same CelebA
pairs as training's), never from LFW. Buffers that count (``num_batches_tracked``) are taken from the first source.

    .venv/bin/python training/dlib_affine/average_weights.py CK1.pt CK2.pt ... --out MODEL.pt
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("train_images", HERE / "train_images.py")
ti = importlib.util.module_from_spec(spec)   # data, layout, evaluation, model writing: shared, not copied
spec.loader.exec_module(ti)
log = logging.getLogger("average_weights")


def mean_state(states: list[dict]) -> dict:
    """Element-wise mean of floating-point tensors; other tensors from the first state. Keys must agree."""
    keys = list(states[0])
    for i, st in enumerate(states[1:], 2):
        if list(st) != keys:
            raise ValueError(f"source {i} has other weights than source 1 (another layout?)")
    return {k: torch.stack([st[k].double() for st in states]).mean(0).to(states[0][k].dtype)
            if states[0][k].is_floating_point() else states[0][k].clone() for k in keys}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="train_images.py checkpoints of one layout")
    ap.add_argument("--cache", default="~/.cache/xfr-runs/joint-cache")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cks = [torch.load(p, map_location="cpu", weights_only=False) for p in args.checkpoints]
    layouts = {ck["config"].get("dense", "dilated") for ck in cks}
    if len(layouts) > 1:
        raise SystemExit(f"the checkpoints are in different layouts: {sorted(layouts)}")
    first = cks[0]
    state = mean_state([ck["model"] for ck in cks])
    model = ti.adapt(ti.load_model(first["init"], device="cpu"), first["config"])
    model.load_state_dict(state)
    evaluation = ti.evaluate(model, ti.Data(Path(args.cache).expanduser()), f"mean of {len(cks)}")
    sources = [{"file": str(p), "step": ck["step"], "init": Path(ck["init"]).name,
                "last_held_out": ck["history"][-1]["val_balanced_acc"]} for p, ck in zip(args.checkpoints, cks)]
    ti.write_model(first["init"], first["config"], state, [evaluation], max(ck["step"] for ck in cks), args.out,
                   "training/dlib_affine/average_weights.py (element-wise mean of train_images.py checkpoints)",
                   averaged=sources)
    return 0


if __name__ == "__main__":
    sys.exit(main())
