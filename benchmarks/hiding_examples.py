"""Figures for docs/hiding_game.md: every method's maps on one LFW pair, and what the hiding game does to a face.

    python benchmarks/hiding_examples.py --pairs PAIRS --root DIR --out docs/results [--model PATH] [--index 0]

Writes ``hiding_game_maps.png`` (rows: image A, image B; columns: the face, then each method's map over it) and
``hiding_game_blur.png`` (the face, its fully blurred copy at the default σ, then 30/60/90% of its least salient
pixels, by S, replaced by the blurred copy).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xfr_desktop.core.alignment import FaceAligner  # noqa: E402
from xfr_desktop.core.attribution import get_explainer  # noqa: E402
from xfr_desktop.core.evaluation.hiding_game import (  # noqa: E402
    METHOD_LABELS, blur_face, default_blur_sigma, hidden_versions, tiebreak_keys,
)
from xfr_desktop.core.model import load_model  # noqa: E402
from xfr_desktop.core.pairs import read_pairs  # noqa: E402

METHODS = ("ours", "gradient", "gradcampp", "stylianou", "xface")


def heat(face: np.ndarray, m: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(m, 1), np.percentile(m, 99.5)
    h = np.clip((m - lo) / (hi - lo + 1e-12), 0, 1)
    cm = cv2.applyColorMap((h * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
    return (0.45 * face + 0.55 * cm).astype(np.uint8)


def label(img: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((18, img.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, img], 0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--model")
    ap.add_argument("--index", type=int, default=0, help="which pair of the list (0-based)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    model = load_model(args.model, device=args.device)
    aligner = FaceAligner.for_model(model)
    pair = read_pairs(args.pairs, args.root, missing="ignore")[args.index]
    a = aligner.align_file(pair.path_a).aligned
    b = aligner.align_file(pair.path_b).aligned
    rows = [[label(a, "A")], [label(b, "B")]]
    maps = {}
    for m in METHODS:
        maps[m] = get_explainer(m)(model, a, b)
        rows[0].append(label(heat(a, maps[m][0]), METHOD_LABELS[m]))
        rows[1].append(label(heat(b, maps[m][1]), METHOD_LABELS[m]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grid = np.concatenate([np.concatenate(r, 1) for r in rows], 0)
    cv2.imwrite(str(out / "hiding_game_maps.png"), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    sigma = default_blur_sigma(model.input_size)
    blurred = blur_face(a, sigma)
    steps = hidden_versions(a, blurred, maps["ours"][0], [0.3, 0.6, 0.9], tiebreak_keys(model.input_size, 0))
    tiles = [label(a, "face"), label(blurred, f"blur sigma {sigma:g}px")] + [
        label(s, f"{p}% hidden (S)") for s, p in zip(steps, (30, 60, 90))]
    cv2.imwrite(str(out / "hiding_game_blur.png"), cv2.cvtColor(np.concatenate(tiles, 1), cv2.COLOR_RGB2BGR))
    print(f"pair {pair.path_a.name} / {pair.path_b.name} (same={pair.same}) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
