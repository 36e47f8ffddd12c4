"""Where the time of one pair goes (`explain_pair`: backbone, residuals, recombination, the rest) and the two ways
of running a pair's residuals: face by face (the CPU's grouped engine) or both faces as one batch (the GPU's
path), medians of interleaved rounds in one run, with the results compared.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_pair.py [--device cpu|cuda] [--rounds 7] [--out FILE.json]

Uses the bundled model on the sample case's first pair (docs/scale_out.md has the figures measured here).
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

from xfr_desktop.core.alignment import FaceAligner  # noqa: E402
from xfr_desktop.core.algorithm1_engines import compute_residuals_pair  # noqa: E402
from xfr_desktop.core.explain import explain_pair  # noqa: E402
from xfr_desktop.core.model import load_model  # noqa: E402


def timed(fn, device) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) * 1e3


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(None, device=args.device)
    aligner = FaceAligner.for_model(model)
    samples = REPO / "resources" / "samples"
    pair = json.loads((samples / "case.json").read_text())["pairs"][0]
    a, b = (aligner.align_file(samples / pair[k]).aligned for k in ("image_a", "image_b"))
    with torch.no_grad():
        C = model.embed(model.preprocess(np.stack([a, b])))[0]
        per_face, one_batch = (compute_residuals_pair(model.decoder, C, one_batch=flag) for flag in (False, True))
    worst = max(float(np.abs(x.values - y.values).max() / np.abs(x.values).max()) for x, y in zip(per_face, one_batch))
    rounds = {"explain_pair": [], "residuals_face_by_face": [], "residuals_one_batch": [], "stages": []}
    explain_pair(model, a, b)  # warm-up
    for _ in range(args.rounds):
        result = {}
        rounds["explain_pair"].append(timed(lambda: result.setdefault("r", explain_pair(model, a, b)), args.device))
        rounds["stages"].append(result["r"].timings_ms)
        with torch.no_grad():
            rounds["residuals_face_by_face"].append(timed(lambda: compute_residuals_pair(
                model.decoder, C, one_batch=False), args.device))
            rounds["residuals_one_batch"].append(timed(lambda: compute_residuals_pair(
                model.decoder, C, one_batch=True), args.device))
    stages = {k: statistics.median(s.get(k, 0.0) for s in rounds["stages"]) for k in rounds["stages"][0]}
    outside = statistics.median(s["total"] - s["backbone"] - sum(v for k, v in s.items() if k.startswith("residuals"))
                                for s in rounds["stages"])
    out = {
        "device": args.device, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "model": model.spec.get("name"), "channels": int(C.shape[1]), "rounds": args.rounds,
        "median_ms": {k: round(statistics.median(v), 1) for k, v in rounds.items() if k != "stages"},
        "explain_pair_stages_median_ms": {k: round(v, 1) for k, v in stages.items()},
        "outside_backbone_and_residuals_ms": round(outside, 1),  # median over rounds of total - those stages
        "one_batch_vs_face_by_face_max_rel_diff": worst,
    }
    print(json.dumps(out, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
