"""Diagnosis: is the region-swap game limited by the model's residuals or by Algorithm 1's weights?

For (A, A′) (A′ = A with one region of B), Algorithm 1 weights channel i's residual on A′ by p_i − T
(p_i = F̂_A[i]·F̂_A′[i], T = τ/c) and S⁻ = ReLU(−H). The same residuals are combined here with other weights,
*for diagnosis only* (the product keeps Algorithm 1):
  paper      S⁻ of Algorithm 1 (the product's map)
  t0         ReLU(−Σ p_i r_i): Algorithm 1 with T = 0 (only channels that vote against the match)
  changed    Σ |F̂_A[i] − F̂_A′[i]| r_i: each residual weighted by how much the swap moved its channel
  lost       Σ ReLU(F̂_A′[i]² − p_i) r_i: the contribution each channel lost against A′ matched with itself
If ``changed`` localizes the swapped region (mass ratio >= 2) while ``paper`` does not, the residuals carry the
answer and the weighting w = p − T (which gives every weak channel a negative weight everywhere) hides it.

    OMP_NUM_THREADS=1 .venv/bin/python training/dlib_affine/diagnose_swap.py --pairs 40 --out DIR
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from xfr_desktop.core.alignment import FaceAligner  # noqa: E402
from xfr_desktop.core.attribution.base import Explainer  # noqa: E402
from xfr_desktop.core.evaluation.explanation_quality import (  # noqa: E402
    play_swaps, summarize_swaps, swap_rows,
)
from xfr_desktop.core.explain import explain_pair  # noqa: E402
from xfr_desktop.core.model import load_model  # noqa: E402
from xfr_desktop.core.pairs import read_pairs  # noqa: E402


class Reweighted(Explainer):
    """A′'s residuals (side b) of Algorithm 1 combined with other channel weights."""

    def __init__(self, name: str):
        self.name = name

    def explain_maps(self, model, a, b):
        ex = explain_pair(model, a, b)
        fa = ex.a.embedding / np.linalg.norm(ex.a.embedding)
        fb = ex.b.embedding / np.linalg.norm(ex.b.embedding)
        p, sel = ex.products, ex.selected
        if self.name == "t0":
            m = np.maximum(-ex.b.residuals.combine(np.where(sel, p, 0.0)), 0)
        elif self.name == "changed":
            m = ex.b.residuals.combine(np.where(sel, np.abs(fa - fb), 0.0))
        elif self.name == "lost":
            m = ex.b.residuals.combine(np.where(sel, np.maximum(fb * fb - p, 0.0), 0.0))
        else:
            raise ValueError(self.name)
        return m, m


def mismatched_fold2(model_path: str, lfw: str, n: int):
    """The model and the first ``n`` mismatched pairs of LFW fold 2 as aligned faces (a, b), lazily.

    Fold 2: ``read_pairs`` numbers folds from 0 and this reads index 1. Every swap figure of this script in the
    cards was measured on these pairs (they were called fold 1 until 2026-12-06); kept for comparability."""
    root = Path(lfw)
    pairs = [p for p in read_pairs(root / "pairs.txt", root / "lfw-deepfunneled") if p.fold == 1 and not p.same]
    model = load_model(model_path, device="cpu").eval()
    aligner = FaceAligner.for_model(model)
    faces = ((aligner.align_file(p.path_a).aligned, aligner.align_file(p.path_b).aligned) for p in pairs[:n])
    return model, faces


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/xfr-dlib-affine-joint.pt")
    ap.add_argument("--lfw", default="../shared/data/lfw")
    ap.add_argument("--pairs", type=int, default=40, help="mismatched pairs of LFW fold 2 (40)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    model, faces = mismatched_fold2(args.model, args.lfw, args.pairs)
    names = ["t0", "changed", "lost"]
    rows = swap_rows(["ours", "gradient"] + names, {n: Reweighted(n) for n in names})
    t0, results = time.time(), []
    for a, b in faces:
        results += play_swaps(model, a, b, rows, margin=0.02)
    summary = summarize_swaps(results, [r.name for r in rows])
    summary["seconds"] = round(time.time() - t0, 1)
    summary["model"] = str(args.model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "diagnose_swap.json").write_text(json.dumps(summary, indent=1, default=float))
    for name, row in summary.items():
        if isinstance(row, dict):
            regions = " | ".join(f"{k} {v['mass_ratio_mean'] or 0:.2f}/{v['control_mass_ratio_mean'] or 0:.2f}"
                                 for k, v in row["per_region"].items())
            print(f"{name:10s} ratio {row['mass_ratio_mean'] or 0:.2f} hit {row['hit_rate'] or 0:.2f} "
                  f"control {row['control_mass_ratio_mean'] or 0:.2f} n {row['n']} | {regions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
