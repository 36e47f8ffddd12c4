"""`xfr evaluate explanations`: measurements of explanation quality on a pair list.

Writes ``explanations.json`` (every number), ``explanations.md`` (tables) and ``swap_examples.png`` (maps of a few
region swaps per method, the swapped box drawn) to ``--out``. The measurements are in
``core/evaluation/explanation_quality.py`` and docs/hiding_game.md.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..core.errors import XfrError
from .evaluate_hiding import _int_list, _relative, selected_pairs_and_output
from .evaluate_verify import add_workers_argument

DEFAULT_METHODS = "ours,gradient,gradcampp,stylianou"
SWAP_METHODS = ("ours", "gradient", "gradcampp", "stylianou", "xface")


def register(evaluate_subparsers) -> None:
    p = evaluate_subparsers.add_parser(
        "explanations", help="explanation quality: argmax spread, residual and partner correlation, PSNR, "
                             "region-swap game, model randomization",
        description="Measure how pair-specific and how faithful the explanations are: statistics of the conv map's "
                    "maxima, correlation of Algorithm 1's residuals and of maps across non-mate partners, the "
                    "decoder's PSNR, a region-swap game with ground truth and a model-randomization check.")
    p.add_argument("--pairs", required=True, help="LFW pairs.txt or CSV with columns img_a,img_b,same")
    p.add_argument("--root", required=True, help="folder the pair list's images are relative to")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", help="joint model file (default: the bundled model)")
    p.add_argument("--methods", default=DEFAULT_METHODS,
                   help=f"swap-game methods, comma-separated from {', '.join(SWAP_METHODS)} (default "
                        f"{DEFAULT_METHODS}); the other measurements are of ours (Algorithm 1)")
    p.add_argument("--folds", help="1-based folds to use, e.g. 1 (default: all)")
    p.add_argument("--limit", type=int, help="use at most N pairs, alternating matched and mismatched")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0, help="seed for the extra non-mate partners and CSV folds")
    p.add_argument("--swap-margin", type=float, default=0.02,
                   help="a swap counts when the score of (A, A') is at most 1 - margin (default 0.02)")
    p.add_argument("--sanity-pairs", type=int, default=10, help="pairs for the model-randomization check (10)")
    p.add_argument("--randomize-fraction", type=float, default=0.25,
                   help="share of the backbone (its last units) re-initialized with the decoder for the "
                        "model-randomization check (default 0.25; 1 = the whole backbone)")
    p.add_argument("--xface-stride", type=int, default=5, help="xFace occlusion stride in pixels (default 5)")
    p.add_argument("--aligned", action="store_true", help="images are already aligned crops (no detection)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    add_workers_argument(p)
    p.set_defaults(func=run)


class StageProgress:
    """One line on stderr per stage every 10 % (and at its end)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.t0 = time.perf_counter()
        self.last = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        step = max(total // 10, 1)
        if done != total and done % step:
            return
        print(f"{stage}: {done}/{total}  {time.perf_counter() - self.t0:.0f} s", file=sys.stderr, flush=True)


def run(args) -> int:
    from ..core.alignment import FaceAligner
    from ..core.evaluation.explanation_quality import (
        QualityConfig, QualityPair, run_explanation_quality,
    )
    from ..core.evaluation.sharding import run_sharded, select_gpu
    from ..core.model import load_model

    methods = list(dict.fromkeys(m.strip() for m in args.methods.split(",") if m.strip()))
    unknown = [m for m in methods if m not in SWAP_METHODS]
    if not methods or unknown:
        raise XfrError(f"--methods: unknown method(s) {', '.join(unknown) or '(none)'}; known: "
                       f"{', '.join(SWAP_METHODS)}")
    folds = _int_list(args.folds, "--folds") if args.folds else None
    for name in ("threads", "sanity_pairs", "xface_stride"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "sanity_pairs" else 1):
            raise XfrError(f"--{name.replace('_', '-')} must be at least {0 if name == 'sanity_pairs' else 1}")
    if not 0 <= args.swap_margin < 1:
        raise XfrError("--swap-margin must lie in [0, 1)")
    if not 0 < args.randomize_fraction <= 1:
        raise XfrError("--randomize-fraction must lie in (0, 1]")
    root = Path(args.root)
    if not root.is_dir():
        raise XfrError(f"--root {root}: not a folder")
    selected, out = selected_pairs_and_output(args, root, folds)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    select_gpu()
    model = load_model(args.model, device=args.device)
    if model.device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    aligner = FaceAligner.for_model(model)
    paths = {}
    jobs = []
    for pair in selected:
        keys = []
        for path in (pair.path_a, pair.path_b):
            key = _relative(path, root)
            paths[key] = path
            keys.append(key)
        jobs.append(QualityPair(keys[0], keys[1], pair.same,
                                f"line {pair.line} ({pair.path_a.name} / {pair.path_b.name})"))

    def load(key):
        return aligner.align_file(paths[key], prealigned=args.aligned).aligned

    # LFW: a person is a folder; CSV lists: only matched pairs say who is who
    identity = (lambda key: paths[key].parent.name) if selected.format == "lfw" else None
    config = QualityConfig(methods=tuple(methods), seed=args.seed, swap_margin=args.swap_margin,
                           sanity_pairs=args.sanity_pairs, randomize_fraction=args.randomize_fraction,
                           xface_stride=args.xface_stride)
    print(f"explanation quality: {len(jobs)} pairs, swap-game methods {', '.join(methods)}, model {model.path}",
          file=sys.stderr)

    def work(rank: int, world: int) -> dict:
        return run_explanation_quality(model, jobs, load, config, identity, StageProgress(not args.no_progress),
                                       share=(rank, world))[0]

    def finish(parts: list) -> int:
        summary, swaps = run_explanation_quality(model, jobs, load, config, identity,
                                                 StageProgress(not args.no_progress), done_by_workers=parts)
        if parts:
            summary["timings"]["processes"] = len(parts)
        write_outputs(args, summary, swaps, model, out, folds)
        return 0

    return run_sharded(work, finish, args.workers, args.argv)


def write_outputs(args, summary: dict, swaps: list, model, out: Path, folds) -> None:
    from ..core.evaluation.explanation_quality import markdown_report, plot_swap_examples

    root = Path(args.root)
    summary.update({"pairs_file": str(Path(args.pairs)), "root": str(root), "folds": folds, "limit": args.limit})
    (out / "explanations.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    fold_text = (" fold" + ("s " if len(folds) > 1 else " ") + ",".join(map(str, folds))) if folds else ""
    title = (f"{summary['n_pairs']} pairs ({summary['n_matched']} matched, {summary['n_mismatched']} mismatched) "
             f"of {Path(args.pairs).name}{fold_text}, model {model.spec.get('name')} "
             f"(sha256 {summary['model']['sha256'][:12]}), {summary['n_no_face']} images without a face")
    md = f"# Explanation quality\n\n{title}.\n\n" + markdown_report(summary)
    (out / "explanations.md").write_text(md, encoding="utf-8")
    plot_swap_examples(swaps, summary["swaps"]["rows"], out / "swap_examples.png")
    print(markdown_report(summary))
    print(f"wrote {out / 'explanations.json'}, {out / 'explanations.md'}, {out / 'swap_examples.png'} "
          f"({summary['timings']['wall_s']:.0f} s)", file=sys.stderr)
