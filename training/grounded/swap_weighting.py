"""The region-swap game (A, A′ = A with one region of B) on LFW fold-2 mismatched pairs, for diagnosis: Algorithm 1's
S⁻ on A′ from one explain_pair's residuals, with the channel weights p_i − τ_k/c computed from (i) the model's F
(k = 0, the product's map) and (ii) F″ = tanh(k·F/s_i) (see squash_lfw_accuracy.py: a monotone per-channel squashing
of C keeps every argmax, so the residuals are exactly those of a model whose last map is tanh(k·C/s)); non-positive
channels excluded ("excl") or included ("incl", the bundled model's setting).

    OMP_NUM_THREADS=1 .venv/bin/python training/grounded/swap_weighting.py MODEL.pt 40 OUT.json STATS.pt \
        '{"0": 0.3466, "1": 0.3306, "2": 0.3061, "4": 0.2872, "100": 0.2422}'
(the JSON maps k to its threshold τ_k; k = 0 takes the model's own.)
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "training" / "dlib_affine")]
from diagnose_swap import mismatched_fold2  # noqa: E402
from xfr_desktop.core.attribution.base import Explainer  # noqa: E402
from xfr_desktop.core.evaluation.explanation_quality import play_swaps, summarize_swaps, swap_rows  # noqa: E402
from xfr_desktop.core.explain import explain_pair  # noqa: E402


class Squashed(Explainer):
    """S⁻ of Algorithm 1 on side b with the weights of F″ = tanh(k·F/s); one explain_pair shared by all k."""
    _last: dict = {}

    def __init__(self, k: str, mode: str, tau: float, s: np.ndarray):
        self.k, self.mode, self.tau, self.s, self.name = float(k), mode, tau, s, f"k{k}-{mode}"

    def explain_maps(self, model, a, b):
        key = (a.tobytes(), b.tobytes())
        if key not in self._last:
            self._last.clear()
            self._last[key] = explain_pair(model, a, b, nonpositive="include")
        ex = self._last[key]
        fa, fb = ex.a.embedding, ex.b.embedding
        if self.k:
            fa, fb = np.tanh(self.k * fa / self.s), np.tanh(self.k * fb / self.s)
        p = fa / np.linalg.norm(fa) * fb / np.linalg.norm(fb)
        live = (fa > 0) & (fb > 0) if self.mode == "excl" else (fa != 0) & (fb != 0)
        sel = live & (ex.a.residuals.raw_sums > 0) & (ex.b.residuals.raw_sums > 0)
        m = np.maximum(-ex.b.residuals.combine(np.where(sel, p - self.tau / len(p), 0.0)), 0)
        return m, m


def main(model_path: str, n: str, out: str, stats_file: str, taus: str) -> None:
    torch.set_num_threads(1)
    s = torch.load(stats_file)["std"].double().numpy()
    ws = {f"k{k}-{m}": Squashed(k, m, t, s) for k, t in json.loads(taus).items() for m in ("excl", "incl")}
    model, faces = mismatched_fold2(model_path, str(ROOT.parent / "shared" / "data" / "lfw"), int(n))
    rows = swap_rows(["ours", "gradient"] + list(ws), ws)
    t0, results = time.time(), []
    for i, (a, b) in enumerate(faces):
        results += play_swaps(model, a, b, rows, margin=0.02)
        print(i, round(time.time() - t0), flush=True)
    summary = summarize_swaps(results, [r.name for r in rows])
    Path(out).write_text(json.dumps(summary, indent=1, default=float))
    for name, row in summary.items():
        print(f"{name:12s} ratio {row['mass_ratio_mean'] or 0:.2f} hit {row['hit_rate'] or 0:.2f} "
              f"control {row['control_mass_ratio_mean'] or 0:.2f} n {row['n']}")


if __name__ == "__main__":
    main(*sys.argv[1:])
