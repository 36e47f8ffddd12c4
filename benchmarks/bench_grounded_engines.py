"""Benchmark of Algorithm 1 on a grounded decoder: the literal loop, the batched engine and the mixed
route (what ``engine="fast"`` runs for a decoder with spatial mixing), medians side by side in one run.

    nice -n 19 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_grounded_engines.py [--repeats 5]

The bundled model's geometry (C 256×8×8 -> 150 px) with a SpatialMix added before its decoder; the mixing weights
are the identity plus noise (timings do not depend on the values). C comes from the backbone on a random chip.
Prints one JSON object: medians in ms, speed-ups over the literal loop, and the largest difference to it.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from xfr_desktop.core.algorithm1_engines import compute_residuals  # noqa: E402
from xfr_desktop.core.decoder import build_decoder  # noqa: E402
from xfr_desktop.core.model import load_model  # noqa: E402


def grounded_copy(model) -> torch.nn.Module:
    spec = copy.deepcopy(model.spec["decoder"])
    spec["spatial_mix"] = {"channels": spec["layers"][0]["in"], "size": [8, 8]}
    dec = build_decoder(spec)
    dec.load_state_dict({f"{int(k.split('.')[0]) + 1}.{k.split('.', 1)[1]}": v
                         for k, v in model.decoder.state_dict().items()}, strict=False)
    with torch.no_grad():
        dec[0].weight.add_(torch.randn_like(dec[0].weight) * 0.05)
    return dec.eval()


def interleaved_medians(fns: dict, repeats: int):
    """Median ms of each function, run in rounds (one of each per round) so a change of load hits all alike."""
    times = {k: [] for k in fns}
    outs = {}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            outs[k] = fn()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}, outs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="default: the bundled model")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=32)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    model = load_model(args.model, device="cpu")
    dec = grounded_copy(model)
    chip = np.random.default_rng(0).integers(0, 256, (*model.input_size, 3), dtype=np.uint8)
    with torch.no_grad():
        C = model.backbone(model.preprocess(chip))
    ms, raws = interleaved_medians({e: (lambda e=e: compute_residuals(dec, C, engine=e, chunk=args.chunk))
                                    for e in ("literal", "batched", "fast")}, args.repeats)
    ref = raws["literal"].values
    print(json.dumps({
        "C": list(C.shape[1:]), "image": list(raws["literal"].image_size), "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "repeats": args.repeats,
        "median_ms": {raws[e].engine: round(v, 1) for e, v in ms.items()},
        "speedup_over_literal": {raws[e].engine: round(ms["literal"] / v, 2) for e, v in ms.items()},
        "max_abs_diff_to_literal": {raws[e].engine: float(np.abs(raws[e].values - ref).max()) for e in ms},
        "max_residual": float(ref.max()),
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
