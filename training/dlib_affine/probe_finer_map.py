"""Probe, no training: does a finer conv map make the channels local, and what does max pooling it cost?

dlib's network in the dense form from block ``--dense-from`` on (10: the bundled layout, C on the 8x8 grid of the
128 stage; 7: the 128 stage dense too, C on the 64 stage's finer grid), C' = the last block's output standardized
per channel by the mean and standard deviation of its spatial maximum over training chips (the bundled model's
initialisation), F' = max pool of C'. Reported:
  val_balanced_acc       held-out CelebA pairs (30 identities), cosine of F', best threshold (as train.py)
  grad_near_argmax_px19  share of the input-gradient mass of F'_i within 150/8 px of channel i's argmax, over chance
  grad_near_argmax_cell  the same within one cell of the map's own grid
  modal_share, cells     where the channels' maxima sit (fraction of cells used for the finer grid)

    OMP_NUM_THREADS=2 .venv/bin/python training/dlib_affine/probe_finer_map.py --dense-from 7 --out DIR
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import xfr_desktop.core.backbones.dlib_resnet as dlib_resnet  # noqa: E402
from xfr_desktop.core.dlib_import import dlib_joint_spec, joint_model_from_dlib, normalize_chips  # noqa: E402
from xfr_desktop.core.evaluation.explanation_quality import argmax_positions, argmax_statistics  # noqa: E402

HERE = Path(__file__).resolve().parent


def dense_net(dense_from: int):
    """dlib's weights with every block from ``dense_from`` on in the dense form; returns f(x) -> last block's map."""
    import face_recognition_models as frm

    dlib_resnet.N_STRIDED_BLOCKS = dense_from       # read by make_blocks, trunk() and top() at call time
    bb = joint_model_from_dlib(frm.face_recognition_model_location(), dlib_joint_spec()).backbone.eval()

    def features(x):
        x = bb.stem(x)
        for blk in bb.blocks:
            x = blk(x)
        return x
    return features


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dense-from", type=int, default=7)
    ap.add_argument("--cache", default=str(HERE.parent / "dlib_joint" / "cache"))
    ap.add_argument("--lfw", default="../shared/data/lfw")
    ap.add_argument("--images", type=int, default=8, help="LFW faces for the locality measure")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    t0 = time.time()
    torch.manual_seed(0)
    features = dense_net(args.dense_from)
    spec = importlib.util.spec_from_file_location("dlib_joint_train", HERE.parent / "dlib_joint" / "train.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    items = json.loads((Path(args.cache) / "index.json").read_text())["items"]
    chips = np.load(Path(args.cache) / "chips.npy", mmap_mode="r")
    train = [i for i, it in enumerate(items) if it["ok"] and it["split"] == "train"]
    val = np.array([i for i, it in enumerate(items) if it["ok"] and it["split"] == "val"])
    rng = np.random.default_rng(0)

    def maxima(idx):
        out = []
        with torch.inference_mode():
            for s in range(0, len(idx), 64):
                out.append(features(normalize_chips(np.asarray(chips[np.sort(idx[s:s + 64]), 0]))).amax((2, 3)))
        return torch.cat(out)

    m = maxima(rng.choice(train, 600, replace=False))
    mu, sigma = m.mean(0), m.std(0).clamp_min(1e-3)
    emb = ((maxima(val) - mu) / sigma).numpy()
    vpairs, vsame = recipe.val_pairs([items[i]["identity"] for i in val], 20261129)
    thr, acc = recipe.best_threshold(recipe.cosine_scores(emb, vpairs), vsame)

    sys.path.insert(0, str(HERE))
    from diagnose_swap import mismatched_fold2

    _, faces = mismatched_fold2("models/xfr-dlib-affine-joint.pt", args.lfw, args.images)
    near_px, near_cell, stats = [], [], []
    for a, _b in faces:
        x0 = normalize_chips(a[None])
        with torch.no_grad():
            C = (features(x0) - mu[:, None, None]) / sigma[:, None, None]
        grid = C.shape[-1]
        stats.append(argmax_statistics(argmax_positions(C[0])))
        arg = argmax_positions(C[0])
        grads = []
        for s in range(0, C.shape[1], 32):
            n = min(32, C.shape[1] - s)
            x = x0.repeat(n, 1, 1, 1).requires_grad_(True)
            Fp = ((features(x) - mu[:, None, None]) / sigma[:, None, None]).amax((2, 3))
            Fp[torch.arange(n), torch.arange(s, s + n)].sum().backward()
            grads.append(x.grad.abs().sum(1).numpy())
        g = np.concatenate(grads)
        yy, xx = np.mgrid[0:150, 0:150]
        for radius, sink in ((150 / 8, near_px), (150 / grid, near_cell)):
            vals = []
            for i in range(len(g)):
                if g[i].sum() <= 0:
                    continue
                cy, cx = (arg[i] + 0.5) * 150 / grid
                disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
                vals.append(g[i][disc].sum() / g[i].sum() / disc.mean())
            sink.append(float(np.mean(vals)))
    summary = {"dense_from": args.dense_from, "grid": int(grid), "val_balanced_acc": acc, "threshold": thr,
               "grad_near_argmax_px19": float(np.mean(near_px)), "grad_near_argmax_cell": float(np.mean(near_cell)),
               "modal_share": float(np.mean([s["modal_share"] for s in stats])),
               "cells_used_fraction": float(np.mean([s["cells_used"] for s in stats])) / grid ** 2,
               "images": len(near_px), "seconds": round(time.time() - t0, 1)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"probe_dense_from_{args.dense_from}.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
