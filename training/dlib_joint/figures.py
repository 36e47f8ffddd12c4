"""Step 4 of the recipe: reconstruction quality on LFW chips (mean PSNR) and the model card's grid figure.

    OMP_NUM_THREADS=2 .venv/bin/python training/dlib_joint/figures.py --lfw ../shared/data/lfw/lfw-deepfunneled \
        --n 500 --grid docs/results/model_reconstructions.png

LFW images are only evaluated here (the model never trained on LFW pair people). PSNR is over the whole 150x150
chip in 8-bit pixel units, reconstruction clipped to the valid range.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from xfr_desktop.core.alignment import FaceAligner  # noqa: E402
from xfr_desktop.core.errors import ImageError  # noqa: E402
from xfr_desktop.core.imageio import load_image  # noqa: E402
from xfr_desktop.core.model import load_model  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lfw", required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--grid", default="docs/results/model_reconstructions.png")
    ap.add_argument("--grid-faces", type=int, default=8)
    args = ap.parse_args(argv)
    model = load_model(args.model, device="cpu")
    aligner = FaceAligner.for_model(model)
    people = sorted(p for p in Path(args.lfw).iterdir() if p.is_dir())
    rng = np.random.default_rng(0)
    picks = rng.choice(len(people), size=min(args.n, len(people)), replace=False)
    chips = []
    for i in picks:
        f = sorted(people[i].glob("*.jpg"))[0]
        try:
            chips.append(aligner.align(load_image(f)).aligned)
        except ImageError:
            continue
    chips = np.stack(chips)
    recs = []
    with torch.inference_mode():
        for s in range(0, len(chips), 64):
            C, _ = model.embed(model.preprocess(chips[s:s + 64]))
            recs.append(model.to_uint8(model.reconstruct(C)))
    recs = np.concatenate(recs)
    mse = ((chips.astype(np.float64) - recs.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))
    psnr = 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-12))
    result = {"n_chips": int(len(chips)), "psnr_mean_db": float(psnr.mean()), "psnr_std_db": float(psnr.std()),
              "psnr_median_db": float(np.median(psnr))}
    print(json.dumps(result))
    k = args.grid_faces
    top = np.concatenate(list(chips[:k]), axis=1)
    bottom = np.concatenate(list(recs[:k]), axis=1)
    grid = np.concatenate([top, bottom], axis=0)
    Path(args.grid).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.grid, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    Path(args.grid).with_suffix(".json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
