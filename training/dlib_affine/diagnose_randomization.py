"""Diagnosis: why the model-randomization check (Adebayo et al.) stays above 0.3 on some models.

`xfr evaluate explanations` re-initializes the decoder and the last quarter of the backbone and reports the mean
|Pearson| between the trained and the randomized model's maps (H of Algorithm 1; the Gradient map beside it). Here
the same check (``randomization_correlations``) runs with a cascade of fractions up to the whole backbone, beside a
control that needs no randomization: the |Pearson| between the trained model's maps of *different* images (each
image against the next one's, aligned faces). A map that follows the learned model falls towards that control as
more of the model is randomized; the part of the correlation at or below the control is what any two maps of
aligned faces share (the face's layout), not a sign that the maps ignore the model.

    OMP_NUM_THREADS=2 .venv/bin/python training/dlib_affine/diagnose_randomization.py --pairs 10 \\
        --model models/xfr-dlib-affine-joint.pt --out DIR
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from xfr_desktop.commands.evaluate_hiding import select_pairs  # noqa: E402
from xfr_desktop.core.alignment import FaceAligner  # noqa: E402
from xfr_desktop.core.attribution import get_explainer  # noqa: E402
from xfr_desktop.core.evaluation.explanation_quality import pearson, randomization_correlations  # noqa: E402
from xfr_desktop.core.explain import explain_pair  # noqa: E402
from xfr_desktop.core.model import load_model  # noqa: E402
from xfr_desktop.core.pairs import read_pairs  # noqa: E402


def fold1_alternating(lfw: Path, n: int) -> list:
    """The pairs ``xfr evaluate explanations --folds 1 --limit N`` takes first (matched and mismatched alternating):
    its randomization check uses the first 10 of them."""
    return select_pairs(read_pairs(lfw / "pairs.txt", lfw / "lfw-deepfunneled"), [1], n)


def between_images(maps: list[np.ndarray]) -> float:
    """Mean |Pearson| of each image's map with the next image's (cyclic): what maps of different faces share."""
    return float(np.mean([abs(pearson(maps[i], maps[(i + 1) % len(maps)])) for i in range(len(maps))]))


def diagnose(model_path: str, lfw: Path, n: int, fractions: list[float], seed: int) -> dict:
    model = load_model(model_path, device="cpu").eval()
    aligner = FaceAligner.for_model(model)
    grad = get_explainer("gradient")
    faces, gradient = [], []
    for p in fold1_alternating(lfw, n):
        a, b = (aligner.align_file(path).aligned for path in (p.path_a, p.path_b))
        ex = explain_pair(model, a, b)
        faces.append((a, b, (ex.a.H, ex.b.H)))
        gradient += list(grad(model, a, b))
    rows = []
    for fraction in fractions:
        t0 = time.time()
        corr, units = randomization_correlations(model, faces, fraction, seed)
        rows.append({"fraction": fraction, "units": units, "ours": float(np.mean(corr["ours"])),
                     "gradient": float(np.mean(corr["gradient"])), "seconds": round(time.time() - t0, 1)})
        print(f"{Path(model_path).name}  fraction {fraction:.2f}  ours {rows[-1]['ours']:.3f}  "
              f"Gradient {rows[-1]['gradient']:.3f}  ({units[0]}..{units[-1]}, {len(units)} units)", flush=True)
    trained_h = [h for *_, pair_h in faces for h in pair_h]
    control = {"ours": between_images(trained_h), "gradient": between_images(gradient)}
    print(f"{Path(model_path).name}  different images, trained model: ours {control['ours']:.3f}  "
          f"Gradient {control['gradient']:.3f}", flush=True)
    return {"model": str(model_path), "n_pairs": len(faces), "seed": seed, "cascade": rows,
            "different_images": control}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, help="model file (repeatable)")
    ap.add_argument("--lfw", default="../shared/data/lfw")
    ap.add_argument("--pairs", type=int, default=10, help="first pairs of fold 1, alternating (10, as evaluate.sh)")
    ap.add_argument("--fractions", default="0.25,0.5,0.75,1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    fractions = [float(f) for f in args.fractions.split(",")]
    results = [diagnose(m, Path(args.lfw), args.pairs, fractions, args.seed) for m in args.model]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "diagnose_randomization.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
