"""Diagnosis: does a channel's residual (where Algorithm 1 puts the channel) cover the pixels that drive
the channel?

For each image and channel i: g_i = Σ_colour |∂F_i/∂x| (the pixels that move the embedding channel F_i = max C_i)
and r_i = Algorithm 1's normalized residual of channel i. Reported, averaged over channels and images:
  grad_in_residual_top10  share of g_i's mass on the 10 % of pixels where r_i is largest, / 0.10 (1 = chance)
  grad_near_argmax        share of g_i's mass within one cell (150/8 px) of the channel's argmax cell centre,
                          / that disc's area share (1 = chance)
  corr_grad_residual      Pearson correlation of g_i and r_i
Low values mean the channel's maximum sits at one place while it is driven by pixels elsewhere (a large, dilated
receptive field): no weighting of the residuals can then point at the pixels that changed the score.

    OMP_NUM_THREADS=1 .venv/bin/python training/dlib_affine/diagnose_locality.py --images 12 --out DIR
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from xfr_desktop.core.evaluation.explanation_quality import pearson  # noqa: E402
from xfr_desktop.core.explain import explain_pair  # noqa: E402
from diagnose_swap import mismatched_fold2  # noqa: E402  (the script's own folder is on sys.path)


def channel_gradients(model, img: np.ndarray, chunk: int = 64) -> np.ndarray:
    """(c, H, W): Σ_colour |∂F_i/∂x| for every channel i, by a batch of copies (copy i back-propagates F_i)."""
    x0 = model.preprocess(img)
    out = []
    with torch.no_grad():
        c = model.embed(x0)[1].shape[1]
    for s in range(0, c, chunk):
        n = min(chunk, c - s)
        x = x0.repeat(n, 1, 1, 1).requires_grad_(True)
        F = model.embed(x)[1]
        F[torch.arange(n), torch.arange(s, s + n)].sum().backward()
        out.append(x.grad.abs().sum(1).numpy())
    return np.concatenate(out)


def locality(grads: np.ndarray, residuals: np.ndarray, argmax: np.ndarray, grid: int) -> dict:
    H, W = grads.shape[1:]
    yy, xx = np.mgrid[0:H, 0:W]
    cell = H / grid
    top, near, corr = [], [], []
    for i in range(len(grads)):
        g, r = grads[i], residuals[i]
        if g.sum() <= 0 or r.max() <= 0:
            continue
        g = g / g.sum()
        mask = r >= np.quantile(r, 0.9)
        top.append(g[mask].sum() / mask.mean())
        cy, cx = (argmax[i] + 0.5) * cell
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= cell ** 2
        near.append(g[disc].sum() / disc.mean())
        corr.append(pearson(g.ravel(), r.ravel()))
    return {"grad_in_residual_top10": float(np.mean(top)), "grad_near_argmax": float(np.mean(near)),
            "corr_grad_residual": float(np.nanmean(corr)), "channels": len(top)}


def main(argv=None) -> int:
    args = probe_args(argv)
    model, faces = mismatched_fold2(args.model, args.lfw, args.images)
    t0, rows = time.time(), []
    for a, b in faces:
        ex = explain_pair(model, a, b)
        grid = model.embed(model.preprocess(a))[0].shape[-1]
        rows.append(locality(channel_gradients(model, a), ex.a.residuals.dense(), ex.a.argmax, grid))
        print(json.dumps(rows[-1]), flush=True)
    write_summary(rows, args, t0, "diagnose_locality.json")
    return 0


def probe_args(argv):
    """--model, --lfw, --images, --out: the options every locality probe takes."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/xfr-dlib-affine-joint.pt")
    ap.add_argument("--lfw", default="../shared/data/lfw")
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--out", required=True)
    return ap.parse_args(argv)


def write_summary(rows: list[dict], args, t0: float, name: str) -> None:
    """Means over images of every per-image figure, with the model and the time, as ``args.out/name``."""
    summary = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    summary.update(images=len(rows), model=str(args.model), seconds=round(time.time() - t0, 1))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(json.dumps({"summary": summary, "per_image": rows}, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
