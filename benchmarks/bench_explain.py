"""Benchmark of Algorithm 1's engines, measured side by side in one run.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_explain.py [--depth 50] [--repeats 5] [--threads 2]

Prints backbone time, literal-loop / batched / fast engine time per image, the whole pair with `explain_pair`,
recombination time (threshold slider), the fast engine's max relative error against a float64 literal
reference, and peak memory. Random weights (the timings do not depend on them); IResNet-50 and the paper's
4-layer decoder at 112×112 by default.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import statistics
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from xfr_desktop.core import JointModel, default_spec, explain_pair  # noqa: E402
from xfr_desktop.core.engines import compute_residuals  # noqa: E402
from xfr_desktop.core.explain import ResidualStack  # noqa: E402


def timed(fn, repeats):
    times = []
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3, out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dense(raw, size):
    return ResidualStack(raw.values, raw.offsets, size, np.zeros(len(raw.values))).dense().astype(np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depth", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--literal-repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    model = JointModel(default_spec(depth=args.depth)).eval().to(dev)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    rss0 = peak_rss_mb()

    with torch.no_grad():
        x = model.preprocess(np.stack([a, b]))
        model.embed(x)  # warm-up
        t_backbone, (C, _) = timed(lambda: model.embed(x), args.repeats)
        C1 = C[:1].contiguous()
        compute_residuals(model.decoder, C1, engine="fast")  # warm-up
        t_fast, fast = timed(lambda: compute_residuals(model.decoder, C1, engine="fast"), args.repeats)
        rss_fast = peak_rss_mb()
        t_pair, result = timed(lambda: explain_pair(model, a, b), args.repeats)
        t_recombine, _ = timed(lambda: result.recombine(threshold=result.threshold + 0.05), args.repeats)
        t_batched, _ = timed(lambda: compute_residuals(model.decoder, C1, engine="batched"), 1)
        t_literal, literal = timed(lambda: compute_residuals(model.decoder, C1, engine="literal"),
                                   args.literal_repeats)
        # float64 reference: the literal loop on a float64 copy
        model64 = copy.deepcopy(model).double()
        ref = compute_residuals(model64.decoder, C1.double(), engine="literal")
    size = tuple(fast.R0.shape[2:])
    ref_dense = dense(ref, size)
    scale = ref_dense.reshape(len(ref_dense), -1).max(1)
    live = scale > 0
    err_fast = (np.abs(dense(fast, size) - ref_dense).reshape(len(ref_dense), -1).max(1)[live] / scale[live]).max()
    err_lit = (np.abs(dense(literal, size) - ref_dense).reshape(len(ref_dense), -1).max(1)[live] / scale[live]).max()
    # The explanation map itself: H of image A with the pair's weights, from sum-normalized residuals.
    weights = result.a.weights.astype(np.float64)

    def heatmap(d):
        sums = d.reshape(len(d), -1).sum(1)
        norm = np.divide(d, sums[:, None, None], out=np.zeros_like(d), where=sums[:, None, None] > 0)
        return np.tensordot(weights, norm, axes=1)

    H_ref = heatmap(ref_dense)
    err_H = float(np.abs(heatmap(dense(fast, size)) - H_ref).max() / np.abs(H_ref).max())
    figures = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
                   f"{args.threads} threads, device {args.device}",
        "model": f"iresnet{args.depth} + 4-layer decoder, 512 channels, 112x112",
        "backbone_pair_ms": t_backbone,
        "literal_per_image_ms": t_literal,
        "batched_per_image_ms": t_batched,
        "fast_per_image_ms": t_fast,
        "explain_pair_ms": t_pair,
        "recombine_ms": t_recombine,
        "speedup_fast_vs_literal": t_literal / t_fast,
        "max_rel_error_fast_vs_float64": float(err_fast),
        "max_rel_error_float32_literal_vs_float64": float(err_lit),
        "max_rel_error_H_fast_vs_float64": err_H,
        "peak_rss_mb_after_fast": rss_fast,
        "peak_rss_mb_start": rss0,
    }
    print(f"# {figures['machine']}; {figures['model']}; medians of {args.repeats} (literal: {args.literal_repeats})")
    print(f"backbone, both images (batch 2)       {t_backbone:9.1f} ms")
    print(f"literal loop, per image               {t_literal:9.1f} ms")
    print(f"batched full passes, per image        {t_batched:9.1f} ms")
    print(f"fast engine, per image                {t_fast:9.1f} ms")
    print(f"explain_pair, whole pair (2 backbone passes + 2 images)  {t_pair:9.1f} ms")
    print(f"recombine (threshold change)          {t_recombine:9.1f} ms")
    print(f"speed-up fast vs literal              {t_literal / t_fast:9.1f} x")
    print(f"max relative error fast vs float64    {err_fast:9.2e}   (worst channel; float32 literal: {err_lit:.2e})")
    print(f"max relative error of the map H       {err_H:9.2e}   (fast engine vs float64 literal)")
    print(f"peak RSS: {rss0:.0f} MB at start, {rss_fast:.0f} MB after the fast engine")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
