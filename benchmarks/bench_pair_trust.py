"""What the per-pair trust check (core/evaluation/pair_trust.py) adds to one pair: the faithfulness check and the
stability check for each jitter count, beside `explain_pair` itself; medians of interleaved rounds in one run.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_pair_trust.py [--rounds 5] [--jitter 2,3,4] [--model PATH]

Uses the bundled model (or --model) on the sample case's first pair. The budget (issue: <= 3 s extra per pair on 2
CPU cores) is faithfulness + stability at the default jitter count.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from xfr_desktop.core.alignment import FaceAligner  # noqa: E402
from xfr_desktop.core.evaluation import pair_trust  # noqa: E402
from xfr_desktop.core.explain import explain_pair  # noqa: E402
from xfr_desktop.core.model import load_model  # noqa: E402


def seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--jitter", default="2,3,4")
    p.add_argument("--model")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model, device="cpu")
    samples = REPO / "resources" / "samples"
    pair = json.loads((samples / "case.json").read_text())["pairs"][0]
    aligner = FaceAligner.for_model(model)
    a, b = (aligner.align_file(samples / pair[k]).aligned for k in ("image_a", "image_b"))
    ex = explain_pair(model, a, b)   # warm-up, and the maps the checks judge

    def explain_h(x, y):
        e = explain_pair(model, x, y)
        return e.a.H, e.b.H

    draws = [int(d) for d in args.jitter.split(",")]
    times: dict[str, list[float]] = {"explain_pair": [], "faithfulness": [], **{f"stability_{d}": [] for d in draws}}
    for _ in range(args.rounds):
        times["explain_pair"].append(seconds(lambda: explain_pair(model, a, b)))
        times["faithfulness"].append(seconds(lambda: pair_trust.faithfulness(model, a, b, ex.a.S, ex.b.S,
                                                                             ex.threshold)))
        for d in draws:
            times[f"stability_{d}"].append(seconds(lambda: pair_trust.stability(explain_h, a, b, ex.a.H, ex.b.H, d)))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"# {model.spec.get('name')}; {args.threads} threads; medians of {args.rounds} interleaved rounds (s)")
    for k, v in med.items():
        print(f"{k:22s} {v:7.2f}")
    for d in draws:
        extra = med["faithfulness"] + med[f"stability_{d}"]
        print(f"extra per pair, {d} jitter draws: {extra:.2f} s ({extra / med['explain_pair']:.1f}x explain_pair)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
