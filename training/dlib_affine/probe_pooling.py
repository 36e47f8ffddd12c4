"""Is the global max pool what limits a pointwise model's recognition? (issue 22, diagnostic only)

The product's embedding is F = max over the 8x8 cells of C (Algorithm 1 needs it). This scores LFW View 2 with the
same conv map C pooled other ways — the mean over cells, the mean of each channel's 4 largest cells — for each model
given, through the protocol of `xfr evaluate verify` (YuNet -> the model's template, cosine, 10 folds, thresholds
from the other nine). If another pooling of the same C recognises much better, C holds identity that the max pool
drops; if not, the local channels themselves carry too little.

    OMP_NUM_THREADS=1 .venv/bin/python training/dlib_affine/probe_pooling.py models/xfr-dlib-affine-joint.pt \\
        ~/.cache/xfr-runs/pointwise-spread002/xfr-dlib-pointwise-joint.pt --chips ~/.cache/xfr-runs/lfw_chips.npy
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from xfr_desktop.core.alignment import FaceAligner  # noqa: E402
from xfr_desktop.core.dlib_import import normalize_chips  # noqa: E402
from xfr_desktop.core.evaluation.verify import kfold_accuracy, roc  # noqa: E402
from xfr_desktop.core.model import load_model  # noqa: E402
from xfr_desktop.core.pairs import read_pairs  # noqa: E402

POOLINGS = {
    "max (the product's F)": lambda C: C.amax((2, 3)),
    "mean over the 64 cells": lambda C: C.mean((2, 3)),
    "mean of each channel's 4 largest cells": lambda C: C.flatten(2).topk(4, dim=2).values.mean(2),
}


def lfw_pairs(lfw: Path):
    """LFW View 2: the sorted pair images (the order of the chips file), each pair's two indices into them, same
    person or not, fold."""
    pairs = read_pairs(lfw / "pairs.txt", lfw / "lfw-deepfunneled")
    paths = sorted({str(p.path_a) for p in pairs} | {str(p.path_b) for p in pairs})
    index = {p: i for i, p in enumerate(paths)}
    pa = np.array([index[str(p.path_a)] for p in pairs])
    pb = np.array([index[str(p.path_b)] for p in pairs])
    return paths, pa, pb, np.array([p.same for p in pairs]), np.array([p.fold for p in pairs])


def chips_for(paths: list[str], model, saved: Path) -> np.ndarray:
    """Aligned 150x150 chips of the pair images, computed once (the dlib models share one template)."""
    if saved.is_file():
        return np.load(saved, mmap_mode="r")
    aligner = FaceAligner.for_model(model)
    chips = np.stack([aligner.align_file(p).aligned for p in paths])
    np.save(saved, chips)
    return chips


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--lfw", default=str(ROOT.parent / "shared" / "data" / "lfw"))
    ap.add_argument("--chips", required=True, help="where the aligned chips of the pair images are kept (.npy)")
    args = ap.parse_args(argv)
    paths, pa, pb, same, fold = lfw_pairs(Path(args.lfw))
    for path in args.models:
        t0 = time.time()
        model = load_model(path, device="cpu")
        chips = chips_for(paths, model, Path(args.chips).expanduser())
        pooled = {name: [] for name in POOLINGS}
        with torch.inference_mode():
            for s in range(0, len(chips), 64):
                C = model.backbone(normalize_chips(np.array(chips[s:s + 64])))
                for name, pool in POOLINGS.items():
                    pooled[name].append(pool(C).double().numpy())
        for name, parts in pooled.items():
            E = np.concatenate(parts)
            E = E / np.linalg.norm(E, axis=1, keepdims=True)
            scores = np.sum(E[pa] * E[pb], 1)
            k = kfold_accuracy(scores, same, fold)
            print(f"{model.spec.get('name')} ({Path(path).name}), {name}: LFW {100 * k['accuracy_mean']:.2f} % "
                  f"± {100 * k['accuracy_std']:.2f}, TAR@FAR1e-3 {100 * roc(scores, same)['tar_at_far_1e-3']:.1f} % "
                  f"({time.time() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
