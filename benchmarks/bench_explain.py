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
from xfr_desktop.core.algorithm1_engines import compute_residuals  # noqa: E402
from xfr_desktop.core.explain import ResidualStack  # noqa: E402


def timed(fn, repeats):
    times = []
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3, out


def conv_gflop(module: torch.nn.Module, x: torch.Tensor) -> float:
    """GFLOP (2 per multiply-add) of the convolutions of one forward pass of module on x."""
    total = [0]

    def hook(m, inp, out):
        total[0] += 2 * out.numel() * m.weight[0].numel()

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        module(x)
    for h in handles:
        h.remove()
    return total[0] / 1e9


def engine_gflop(decoder: torch.nn.Module, C: torch.Tensor) -> float:
    """GFLOP of the fast engine's transposed convolutions for C (1,c,h,w): each channel's change window
    through every layer after the first (the first is a kernel slice), cropped at the borders as the engine
    crops it."""
    from xfr_desktop.core.algorithm1_engines import _change_plan, _crop_plan, channel_maxima, flatten_decoder

    plan = _change_plan(flatten_decoder(decoder), C.dtype)
    _, pos, _ = channel_maxima(C)
    total = 0
    for r, q in pos.tolist():
        h = w = None
        for (kind, m, _, _), (crop, _) in zip(plan, _crop_plan(plan, C.shape[2:], (r, q))):
            if kind != "convT":
                continue
            if h is not None:
                total += 2 * h * w * m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            h, w = crop[1] - crop[0], crop[3] - crop[2]
    return total / 1e9


def sgemm_gflops(repeats: int) -> float:
    """This machine's float32 matrix-product rate now (4096², median), the ceiling for both parts."""
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    t, _ = timed(lambda: a @ b, repeats)
    return 2 * 4096 ** 3 / (t / 1e3) / 1e9


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
        # The literal loop and the fast engine side by side: each round is one literal run followed at once by
        # `repeats` fast runs, so a change of load on this shared machine hits both; the speed-up is the median
        # of the rounds' ratios.
        lit_times, fast_times, ratios = [], [], []
        for _ in range(args.literal_repeats):
            t_lit_round, literal = timed(lambda: compute_residuals(model.decoder, C1, engine="literal"), 1)
            t_fast_round, fast = timed(lambda: compute_residuals(model.decoder, C1, engine="fast"), args.repeats)
            lit_times.append(t_lit_round)
            fast_times.append(t_fast_round)
            ratios.append(t_lit_round / t_fast_round)
        t_literal, t_fast, speedup = (statistics.median(v) for v in (lit_times, fast_times, ratios))
        rss_fast = peak_rss_mb()
        t_pair, result = timed(lambda: explain_pair(model, a, b), args.repeats)
        t_recombine, _ = timed(lambda: result.recombine(threshold=result.threshold + 0.05), args.repeats)
        t_batched, _ = timed(lambda: compute_residuals(model.decoder, C1, engine="batched"), 1)
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
    gflop_backbone = conv_gflop(model.backbone, x)
    gflop_engine = engine_gflop(model.decoder, C1)
    gemm_rate = sgemm_gflops(args.repeats)
    floor_pair = (gflop_backbone + 2 * gflop_engine) / gemm_rate * 1e3
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
        "speedup_fast_vs_literal": speedup,
        "speedup_per_round": ratios,
        "max_rel_error_fast_vs_float64": float(err_fast),
        "max_rel_error_float32_literal_vs_float64": float(err_lit),
        "max_rel_error_H_fast_vs_float64": err_H,
        "backbone_gflop_pair": gflop_backbone,
        "engine_gflop_per_image": gflop_engine,
        "sgemm_gflops": gemm_rate,
        "pair_floor_at_sgemm_rate_ms": floor_pair,
        "peak_rss_mb_after_fast": rss_fast,
        "peak_rss_mb_start": rss0,
    }
    print(f"# {figures['machine']}; {figures['model']}; medians of {args.repeats} (literal: {args.literal_repeats} "
          f"rounds, each one literal run and {args.repeats} fast runs)")
    print(f"backbone, both images (batch 2)       {t_backbone:9.1f} ms")
    print(f"literal loop, per image               {t_literal:9.1f} ms")
    print(f"batched full passes, per image        {t_batched:9.1f} ms")
    print(f"fast engine, per image                {t_fast:9.1f} ms")
    print(f"explain_pair, whole pair (2 backbone passes + 2 images)  {t_pair:9.1f} ms")
    print(f"recombine (threshold change)          {t_recombine:9.1f} ms")
    print(f"speed-up fast vs literal              {speedup:9.1f} x   (median of {len(ratios)} rounds: "
          f"{', '.join(f'{r:.1f}' for r in ratios)})")
    print(f"max relative error fast vs float64    {err_fast:9.2e}   (worst channel; float32 literal: {err_lit:.2e})")
    print(f"max relative error of the map H       {err_H:9.2e}   (fast engine vs float64 literal)")
    print(f"work: backbone {gflop_backbone:.1f} GFLOP for the pair, fast engine {gflop_engine:.1f} GFLOP per image; "
          f"float32 matrix product here {gemm_rate:.0f} GFLOP/s")
    print(f"pair at that rate with no other cost  {floor_pair:9.1f} ms   (the floor of this formulation)")
    print(f"peak RSS: {rss0:.0f} MB at start, {rss_fast:.0f} MB after the fast engine")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
