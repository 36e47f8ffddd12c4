"""Does the per-pair faithfulness check (core/evaluation/pair_trust.py) agree with the hiding game in aggregate?

On the first N pairs of LFW fold 1 (half matched, half not), for the map on screen (S of Algorithm 1) and the
Gradient map: the per-pair gap of pair_trust (cells, most- vs least-salient-first) and the per-pair deletion game
of `xfr evaluate hiding-game --order most` (pixels, the score's oriented mean over the steps 0-90 %). Prints the
Spearman correlation across pairs of the two measures for each map, and both measures' mean for each map (does
each rank the two maps as the other does?).

    OMP_NUM_THREADS=2 python benchmarks/validate_pair_trust.py --pairs 60 [--model PATH] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from xfr_desktop.core.alignment import FaceAligner  # noqa: E402
from xfr_desktop.core.attribution import GradientExplainer  # noqa: E402
from xfr_desktop.core.evaluation import pair_trust  # noqa: E402
from xfr_desktop.core.evaluation.hiding_game import (DEFAULT_STEPS, default_blur_sigma, play_pair,  # noqa: E402
                                                     tiebreak_keys)
from xfr_desktop.core.explain import explain_pair  # noqa: E402
from xfr_desktop.core.model import load_model  # noqa: E402
from xfr_desktop.core.pairs import read_pairs  # noqa: E402


def spearman(x, y) -> float:
    rx, ry = (np.argsort(np.argsort(v)).astype(float) for v in (x, y))
    return float(np.corrcoef(rx, ry)[0, 1])


def fold1_pairs(lfw: Path, n: int):
    # read_pairs numbers folds from 0
    pairs = [p for p in read_pairs(lfw / "pairs.txt", lfw / "lfw-deepfunneled") if p.fold == 0]
    same, diff = [p for p in pairs if p.same], [p for p in pairs if not p.same]
    return same[:n // 2] + diff[:n - n // 2]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=60)
    ap.add_argument("--model")
    ap.add_argument("--lfw", default=str(REPO.parent / "shared" / "data" / "lfw"))
    ap.add_argument("--out")
    args = ap.parse_args()
    model = load_model(args.model, device="cpu").eval()
    aligner = FaceAligner.for_model(model)
    tiebreak = tiebreak_keys(model.input_size, 0)
    rows, t0 = [], time.time()
    for p in fold1_pairs(Path(args.lfw), args.pairs):
        a, b = aligner.align_file(p.path_a).aligned, aligner.align_file(p.path_b).aligned
        ex = explain_pair(model, a, b)
        maps = {"ours": (ex.a.S, ex.b.S), "gradient": GradientExplainer()(model, a, b)}
        game = play_pair(model, a, b, maps, DEFAULT_STEPS, default_blur_sigma(model.input_size), tiebreak,
                         order="most")
        match = ex.score >= ex.threshold
        row = {"same": p.same, "score": ex.score}
        for name, (ma, mb) in maps.items():
            faith = pair_trust.faithfulness(model, a, b, ma, mb, ex.threshold)
            row[f"{name}_gap"] = faith.gaps["map"]
            row[f"{name}_deletion"] = pair_trust.oriented_area(game[name], match)   # lower = more faithful
        rows.append(row)
    summary = {"pairs": len(rows), "seconds": round(time.time() - t0, 1), "model": model.spec.get("name")}
    for name in ("ours", "gradient"):
        gap = [r[f"{name}_gap"] for r in rows]
        deletion = [r[f"{name}_deletion"] for r in rows]
        summary[name] = {"mean_gap": float(np.mean(gap)), "mean_deletion": float(np.mean(deletion)),
                         "spearman_gap_vs_minus_deletion": spearman(gap, [-d for d in deletion])}
    summary["same_ranking"] = bool((summary["ours"]["mean_gap"] > summary["gradient"]["mean_gap"])
                                   == (summary["ours"]["mean_deletion"] < summary["gradient"]["mean_deletion"]))
    print(json.dumps(summary, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
