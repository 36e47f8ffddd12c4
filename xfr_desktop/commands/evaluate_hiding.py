"""`xfr evaluate hiding-game`: the paper's hiding game (Table II, Fig. 4) on a pair list, for several explainers.

Writes ``hiding_game.json``, ``hiding_game.png`` and ``hiding_game.md`` to ``--out`` (``deletion.*`` with
``--order most``); maps (npz per pair and method) and per-pair scores are cached under ``--out/cache`` so an
interrupted run resumes where it stopped, and a deletion run on the same ``--out`` reuses the maps.
"""
from __future__ import annotations

from ..core.numbers import cosine_arg, finite_arg

import hashlib
import sys
import time
from pathlib import Path

from ..core.errors import XfrError
from ..core.numbers import json_text
from .evaluate_verify import add_workers_argument

DEFAULT_METHODS = "ours,gradient,gradcampp,stylianou,xface"


def register(evaluate_subparsers) -> None:
    p = evaluate_subparsers.add_parser(
        "hiding-game", help="hiding-game accuracy curves and AUC of explanation methods (paper's Table II)",
        description="For each pair and method, blur each image's least salient p% of pixels and verify the pair "
                    "again; report accuracy per p and the AUC (trapezoid over p in [0, 0.9], x100).")
    p.add_argument("--pairs", required=True, help="LFW pairs.txt or CSV with columns img_a,img_b,same")
    p.add_argument("--root", required=True, help="folder the pair list's images are relative to")
    p.add_argument("--out", required=True, help="output folder (results, plot, table, caches)")
    p.add_argument("--methods", default=DEFAULT_METHODS,
                   help=f"comma-separated (default {DEFAULT_METHODS}; also random, centre, ours-pos, ours-neg, "
                        "stylianou-abs, xface-abs)")
    p.add_argument("--model", help="joint model file (default: the bundled model)")
    p.add_argument("--folds", help="1-based folds to use, e.g. 1 or 1,2 (default: all)")
    p.add_argument("--limit", type=int, help="use at most N pairs, alternating matched and mismatched")
    p.add_argument("--steps", default="0,10,20,30,40,50,60,70,80,90",
                   help="percentages of pixels hidden (default 0,10,...,90)")
    p.add_argument("--seed", type=int, default=0, help="seed for tie-breaking, the random floor and CSV folds")
    p.add_argument("--blur-sigma", type=finite_arg, help="Gaussian blur sigma in pixels (default: face width / 10)")
    p.add_argument("--threshold", type=cosine_arg, help="decision threshold (default: the model's own)")
    p.add_argument("--xface-stride", type=int, default=5, help="xFace occlusion stride in pixels (default 5)")
    p.add_argument("--aligned", action="store_true", help="images are already aligned crops (no detection)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--batch-size", type=int, default=128, help="images per backbone pass (default 128)")
    p.add_argument("--order", choices=["least", "most"], default="least",
                   help="least: the hiding game (hide the least salient pixels first; higher AUC = better map); "
                        "most: deletion (hide the most salient first; lower AUC = better map). Deletion writes "
                        "deletion.json/.png/.md and reuses the maps cached in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_workers_argument(p)
    p.set_defaults(func=run)


def _int_list(text: str, what: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise XfrError(f"{what} must be comma-separated whole numbers, got {text!r}") from None


class ProgressBar:
    """Progress on stderr with rate and time left: a live bar on a terminal, a line every 5% in a log."""

    def __init__(self, enabled: bool = True, width: int = 30):
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.width = width
        self.t0 = time.perf_counter()
        self.computed = 0
        self.last_logged = -1

    def __call__(self, done: int, total: int, info: str) -> None:
        if info == "":
            self.computed += 1
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.t0
        rate = elapsed / self.computed if self.computed else 0.0
        left = rate * (total - done)
        if self.tty:
            filled = int(self.width * done / max(total, 1))
            bar = "#" * filled + "-" * (self.width - filled)
            sys.stderr.write(f"\r[{bar}] {done}/{total} pairs  {rate:.1f} s/pair  ~{left / 60:.0f} min left "
                             f"{info:8s}")
            if done == total:
                sys.stderr.write("\n")
        else:
            step = max(total // 20, 1)
            if done // step == self.last_logged and done != total:
                return
            self.last_logged = done // step
            sys.stderr.write(f"{done}/{total} pairs  {elapsed:.0f} s  {rate:.1f} s/pair  ~{left / 60:.0f} min left\n")
        sys.stderr.flush()


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def build_jobs(pairs, aligner, prealigned: bool, root: Path):
    """PairJob per pair; keys hold the fold, the line and a digest of the two paths relative to ``root`` (so a
    cache made on another machine, with the images elsewhere, still matches)."""
    from ..core.evaluation.hiding_game import PairJob

    jobs = []
    for pair in pairs:
        names = f"{_relative(pair.path_a, root)}|{_relative(pair.path_b, root)}|{pair.same}"
        digest = hashlib.sha1(names.encode()).hexdigest()[:8]
        label = f"line {pair.line} ({pair.path_a.name} / {pair.path_b.name})"

        def load(pair=pair):
            fa = aligner.align_file(pair.path_a, prealigned=prealigned)
            fb = aligner.align_file(pair.path_b, prealigned=prealigned)
            return fa.aligned, fb.aligned

        jobs.append(PairJob(key=f"f{pair.fold + 1:02d}-l{pair.line:05d}-{digest}", same=pair.same, load=load,
                            label=label))
    return jobs


def select_pairs(pairs, folds: list[int] | None, limit: int | None):
    if folds:
        bad = [f for f in folds if f < 1 or f > pairs.n_folds]
        if bad:
            raise XfrError(f"--folds: the pair list has folds 1..{pairs.n_folds}, not {', '.join(map(str, bad))}")
        chosen = [p for p in pairs if p.fold + 1 in folds]
    else:
        chosen = list(pairs)
    if limit is not None:
        if limit < 1:
            raise XfrError("--limit must be at least 1")
        matched = [p for p in chosen if p.same]
        mismatched = [p for p in chosen if not p.same]
        mixed = [p for pair in zip(matched, mismatched) for p in pair]
        rest = matched[len(mismatched):] + mismatched[len(matched):]
        chosen = (mixed + rest)[:limit]
    return chosen


def selected_pairs_and_output(args, root: Path, folds: list[int] | None):
    """The pairs chosen by --folds/--limit from --pairs (PairList) and the created --out folder.

    Only the selected pairs' images must exist (--folds 1 need not fail on fold 7's files)."""
    from ..core.errors import PairListError
    from ..core.pairs import PairList, find_missing, missing_message, read_pairs

    pairs = read_pairs(args.pairs, root, missing="ignore", seed=args.seed)
    chosen = select_pairs(pairs, folds, args.limit)
    if not chosen:
        raise XfrError("no pairs selected")
    selected = PairList(chosen, source=pairs.source, fmt=pairs.format, n_folds=pairs.n_folds)
    selected.missing = find_missing(selected)
    if selected.missing:
        raise PairListError(missing_message(selected))
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise XfrError(f"cannot create output folder {out}: {exc.strerror}") from None
    return selected, out


def run(args) -> int:
    from ..core.alignment import FaceAligner
    from ..core.attribution import XFaceExplainer, XFaceMagnitudeExplainer, parse_methods
    from ..core.evaluation.hiding_game import (HidingGameConfig, merge_shard_rows, merged_timings, run_hiding_game,
                                               shard_results_name, take_shard_rows)
    from ..core.evaluation.sharding import run_sharded, select_gpu, shard_of
    from ..core.model import load_model

    started = time.perf_counter()

    try:
        methods = parse_methods(args.methods)
    except ValueError as exc:
        raise XfrError(str(exc)) from None
    steps = _int_list(args.steps, "--steps")
    folds = _int_list(args.folds, "--folds") if args.folds else None
    root = Path(args.root)
    if not root.is_dir():
        raise XfrError(f"--root {root}: not a folder")
    if args.batch_size < 1:
        raise XfrError("--batch-size must be at least 1")
    if args.xface_stride < 1:
        raise XfrError("--xface-stride must be at least 1")
    selected, out = selected_pairs_and_output(args, root, folds)
    select_gpu()
    model = load_model(args.model, device=args.device)
    if model.device.type == "cuda":  # TF32 would move scores by ~1e-3 and decisions near the threshold
        import torch

        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    aligner = FaceAligner.for_model(model)
    jobs = build_jobs(list(selected), aligner, args.aligned, root)
    explainers = {}
    if "xface" in methods:
        explainers["xface"] = XFaceExplainer(stride=args.xface_stride, batch_size=max(args.batch_size, 64))
    if "xface-abs" in methods:
        explainers["xface-abs"] = XFaceMagnitudeExplainer(stride=args.xface_stride,
                                                          batch_size=max(args.batch_size, 64))
    config = HidingGameConfig(steps=tuple(steps), blur_sigma=args.blur_sigma, seed=args.seed,
                              threshold=args.threshold, batch_size=args.batch_size, order=args.order)
    game_name = "Hiding game" if args.order == "least" else "Deletion (most salient pixels hidden first)"
    bar = ProgressBar(enabled=not args.no_progress)
    print(f"{game_name.lower()}: {len(jobs)} pairs, methods {', '.join(methods)}, model {model.path}",
          file=sys.stderr)

    def work(rank: int, world: int) -> dict:
        part = run_hiding_game(model, shard_of(jobs, rank, world), methods, config, cache_dir=out / "cache",
                               explainers=explainers, progress=bar, results_name=shard_results_name(rank))
        return {"rows": take_shard_rows(out / "cache", rank), "n_resumed_from_cache": part["n_resumed_from_cache"],
                **{k: part["timings"][k] for k in ("maps_s_this_run", "align_s", "hiding_game_verify_s")}}

    def finish(parts: list) -> int:
        merge_shard_rows(out / "cache", parts)
        summary = run_hiding_game(model, jobs, methods, config, cache_dir=out / "cache", explainers=explainers,
                                  progress=None if parts else bar)
        merged_timings(summary, parts, started)
        write_outputs(args, summary, model, out, root, folds)
        return 0

    return run_sharded(work, finish, args.workers, args.argv)


def write_outputs(args, summary: dict, model, out: Path, root: Path, folds) -> None:
    from ..core.evaluation.hiding_game import markdown_table, plot_curves

    stem = "hiding_game" if args.order == "least" else "deletion"
    game_name = "Hiding game" if args.order == "least" else "Deletion (most salient pixels hidden first)"
    summary["pairs_file"] = str(Path(args.pairs))
    summary["root"] = str(root)
    summary["folds"] = folds
    summary["limit"] = args.limit
    (out / f"{stem}.json").write_text(json_text(summary, indent=2) + "\n", encoding="utf-8")
    fold_text = (" fold" + ("s " if len(folds) > 1 else " ") + ",".join(map(str, folds))) if folds else ""
    title = (f"{game_name}: {summary['n_pairs']} pairs of {Path(args.pairs).name}{fold_text}, "
             f"model {model.spec.get('name')}, blur sigma {summary['configuration']['blur_sigma']:g} px")
    plot_curves(summary, out / f"{stem}.png", title)
    header = (f"# {game_name}\n\n{title}. Threshold {summary['model']['threshold']:g}; "
              f"{summary['n_no_face']} pairs without a detectable face left out.\n\n")
    (out / f"{stem}.md").write_text(header + markdown_table(summary), encoding="utf-8")
    print(markdown_table(summary))
    if summary["n_no_face"]:
        print(f"{summary['n_no_face']} pairs left out (no face found / unreadable); see {stem}.json",
              file=sys.stderr)
    print(f"wrote {out / (stem + '.json')}, {out / (stem + '.png')}, {out / (stem + '.md')} "
          f"({summary['timings']['wall_s']:.0f} s)", file=sys.stderr)


def main(argv=None) -> int:
    """Stand-alone entry (``python -m xfr_desktop.commands.evaluate_hiding ...``), same arguments."""
    import argparse

    parser = argparse.ArgumentParser(prog="xfr evaluate")
    sub = parser.add_subparsers(dest="what")
    register(sub)
    args = parser.parse_args(["hiding-game", *(sys.argv[1:] if argv is None else argv)])
    args.argv = ["evaluate", "hiding-game", *(sys.argv[1:] if argv is None else argv)]
    try:
        return int(args.func(args) or 0)
    except XfrError as exc:
        print(f"xfr: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
