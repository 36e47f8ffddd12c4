"""What xFace costs for one LFW fold on this machine, measured: the work, the rate, and the time it implies.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_xface_fold.py [--pairs ../shared/data/lfw/pairs.txt]

xFace (as specified: squares of 7, 14 and 28 px at stride 5, fill 0) needs one backbone pass per occluded image.
A pass's embedding does not depend on the other face, so a fold needs at least (distinct images) × (patches per
image) passes however the pairs are scheduled. This prints that count, the backbone's FLOPs per pass (counted by
torch's FlopCounterMode), the batched backbone rate measured now, this machine's float32 matrix-product rate
measured now, and the hours both rates imply for the fold.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from xfr_desktop.core import load_model  # noqa: E402
from xfr_desktop.core.attribution.xface import XFaceExplainer  # noqa: E402
from xfr_desktop.core.pairs import read_pairs  # noqa: E402

SHARED_LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw"


def median_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", default=str(SHARED_LFW / "pairs.txt"))
    ap.add_argument("--root", default=str(SHARED_LFW / "lfw-deepfunneled"))
    ap.add_argument("--fold", type=int, default=1, help="1-based, as in `xfr evaluate hiding-game --folds`")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    pairs = read_pairs(args.pairs, root=args.root)
    folds = sorted({p.fold for p in pairs})
    fold = folds[args.fold - 1]
    images = {path for p in pairs if p.fold == fold for path in (p.path_a, p.path_b)}
    n_pairs = sum(p.fold == fold for p in pairs)

    model = load_model()
    H, W = model.input_size
    patches = len(XFaceExplainer().patches(H, W))
    x = torch.randn(args.batch, 3, H, W)
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            model.embed(x[:1])
        gflop = counter.get_total_flops() / 1e9
        per_pass = median_seconds(lambda: model.embed(x), args.repeats) / args.batch
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    sgemm = 2 * 4096 ** 3 / median_seconds(lambda: a @ b, args.repeats) / 1e9

    passes = len(images) * patches
    print(f"# {os.cpu_count()} cpus, torch {torch.__version__}, {args.threads} threads; model {model.spec.get('name', '')}"
          f" {H}x{W}")
    print(f"fold {args.fold}: {n_pairs} pairs, {len(images)} distinct images; xFace patches per image {patches}")
    print(f"backbone: {gflop:.2f} GFLOP per pass; batched ({args.batch}) {per_pass * 1e3:.1f} ms per pass "
          f"({gflop / per_pass:.0f} GFLOP/s); float32 matrix product {sgemm:.0f} GFLOP/s")
    print(f"xFace for the fold: {passes:,} passes, {passes * gflop / 1e3:.0f} TFLOP -> "
          f"{passes * per_pass / 3600:.2f} h at the batched rate, "
          f"{passes * gflop / sgemm / 3600:.2f} h at the matrix-product rate")


if __name__ == "__main__":
    main()
