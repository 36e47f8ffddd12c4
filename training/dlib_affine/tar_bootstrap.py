"""How much of a TAR @ FAR 1e-3 difference on LFW is noise: a paired bootstrap over the 6,000 pairs.

On LFW, FAR 1e-3 is set by the 3 highest of the 3,000 different-person scores, so the figure moves with a handful of
pairs. This resamples the pairs (the same resample for every model, so differences are paired) and reports each
model's TAR at FAR 1e-3 and 1e-2 (``core.evaluation.verify.roc``, the protocol of ``xfr evaluate verify``) with 95 %
intervals, and each model's difference from the first.

    .venv/bin/python training/dlib_affine/tar_bootstrap.py v2=training/dlib_affine/eval_run7/lfw/scores.npz \\
        run8=training/dlib_affine/eval_run8/lfw/scores.npz run9=training/dlib_affine/eval_run9/lfw/scores.npz
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from xfr_desktop.core.evaluation.verify import roc  # noqa: E402

FARS = (1e-3, 1e-2)


def tars(scores: np.ndarray, same: np.ndarray) -> list[float]:
    r = roc(scores, same)
    return [float(r["tar"][r["far"] <= f].max()) for f in FARS]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="NAME=scores.npz of `xfr evaluate verify` (same pair list)")
    ap.add_argument("--n", type=int, default=2000, help="bootstrap resamples")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    runs = {}
    for item in args.models:
        name, _, path = item.partition("=")
        z = np.load(path)
        runs[name] = (z["scores"].astype(np.float64), z["same"].astype(bool))
    same = next(iter(runs.values()))[1]
    if any((s != same).any() for _, s in runs.values()):
        raise SystemExit("the score files do not share one pair list")
    rng = np.random.default_rng(args.seed)
    boot = {name: np.empty((args.n, len(FARS))) for name in runs}
    for b in range(args.n):
        ix = rng.integers(0, len(same), len(same))
        for name, (s, _) in runs.items():
            boot[name][b] = tars(s[ix], same[ix])
    first = next(iter(runs))
    out = {}
    for name, (s, _) in runs.items():
        row = {}
        for j, far in enumerate(FARS):
            lo, hi = np.percentile(boot[name][:, j], [2.5, 97.5])
            row[f"tar_at_far_{far:g}"] = {"value": tars(s, same)[j], "ci95": [float(lo), float(hi)]}
            if name != first:
                d = boot[name][:, j] - boot[first][:, j]
                row[f"tar_at_far_{far:g}"]["minus_" + first] = {
                    "ci95": [float(x) for x in np.percentile(d, [2.5, 97.5])], "share_below_0": float((d < 0).mean())}
        out[name] = row
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
