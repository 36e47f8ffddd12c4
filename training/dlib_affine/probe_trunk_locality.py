"""Diagnosis: the locality ceiling of the frozen trunk.

train.py trains only the dense stages and the head on cached trunk features (the stem and the strided blocks
through the 128 stage stay dlib's). A channel of C can be no more local in pixels than the trunk features it reads.
For every cell (u, v) of the 8x8 trunk map and one random trunk channel j, g = Σ_colour |∂T_j(u,v)/∂x|; reported
is the share of g's mass within one cell (150/8 px) of the cell's centre over that disc's area share (1 = chance),
the same measure as diagnose_locality.py's ``grad_near_argmax`` for the embedding channels.

    OMP_NUM_THREADS=1 .venv/bin/python training/dlib_affine/probe_trunk_locality.py --images 12 --out DIR
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from diagnose_locality import probe_args, write_summary  # noqa: E402  (the script's own folder is on sys.path)
from diagnose_swap import mismatched_fold2  # noqa: E402


def near_ratio(g: np.ndarray, cy: float, cx: float, cell: float) -> float:
    H, W = g.shape
    yy, xx = np.mgrid[0:H, 0:W]
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= cell ** 2
    return float((g[disc].sum() / g.sum()) / disc.mean())


def trunk_locality(model, img: np.ndarray, gen: torch.Generator) -> dict:
    bb = model.backbone
    x0 = model.preprocess(img)
    with torch.no_grad():
        t = bb.trunk(x0)
    c, h, w = t.shape[1:]
    n = h * w
    x = x0.repeat(n, 1, 1, 1).requires_grad_(True)
    T = bb.trunk(x)
    rows = torch.arange(n)
    ch = torch.randint(0, c, (n,), generator=gen)
    T[rows, ch, rows // w, rows % w].sum().backward()
    g = x.grad.abs().sum(1).numpy()
    cell = x0.shape[-2] / h
    per_cell = [near_ratio(g[k], (k // w + 0.5) * cell, (k % w + 0.5) * cell, cell) for k in range(n) if g[k].sum() > 0]
    inner = [r for k, r in enumerate(per_cell) if 1 <= k // w < h - 1 and 1 <= k % w < w - 1]
    return {"trunk_near_cell": float(np.mean(per_cell)), "trunk_near_cell_inner": float(np.mean(inner)),
            "cells": len(per_cell)}


def main(argv=None) -> int:
    args = probe_args(argv)
    model, faces = mismatched_fold2(args.model, args.lfw, args.images)
    gen = torch.Generator().manual_seed(12)
    t0, rows = time.time(), []
    for a, _ in faces:
        rows.append(trunk_locality(model, a, gen))
        print(json.dumps(rows[-1]), flush=True)
    write_summary(rows, args, t0, "probe_trunk_locality.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
