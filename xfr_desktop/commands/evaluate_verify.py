"""`xfr evaluate verify`: verification accuracy on an LFW pairs.txt or a CSV pair list (10-fold protocol)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ..core.numbers import cosine_arg


def register(evaluate_subparsers) -> None:
    p = evaluate_subparsers.add_parser(
        "verify", help="10-fold verification accuracy, ROC, TAR@FAR1e-3 and EER on a pair list",
        description="Aligns every image with YuNet onto the model's template, embeds it (cached by image sha256) "
                    "and scores pairs by cosine. Writes DIR/verify.json, DIR/roc.png and DIR/scores.npz.")
    p.add_argument("--pairs", required=True, help="LFW pairs.txt or CSV with columns img_a,img_b,same")
    p.add_argument("--root", required=True, help="folder the pair list's images are relative to")
    p.add_argument("--model", help="model file (.pt; default: the bundled model) or dlib's original network "
                                   "(.dat; evaluated through the same alignment as the bundled model)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--cache", help="embedding cache file (default: OUT/embeddings.npz)")
    p.add_argument("--aligned", action="store_true", help="images are already aligned crops (no detection)")
    p.add_argument("--folds", type=int, default=10, help="folds for CSV lists (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the CSV fold split (default 0)")
    p.add_argument("--threshold", type=cosine_arg, help="decision threshold for accuracy_at_threshold "
                                                  "(default: the model's own)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_workers_argument(p)
    p.set_defaults(func=run)


def add_workers_argument(p) -> None:
    p.add_argument("--workers", type=int, metavar="N",
                   help="split the pairs across N local processes and merge their results (under torchrun the "
                        "launch's processes share them instead; docs/scale_out.md)")


def load_any_model(path: str | None, device=None):
    """A .pt joint model, or dlib's .dat network wrapped with the bundled model's alignment and threshold."""
    from ..core.model import load_model, resolve_device

    if path is None or not str(path).lower().endswith(".dat"):
        return load_model(path, device=device)
    from ..core.dlib_import import DlibReferenceModel, dlib_joint_spec, load_dlib_resnet
    from ..core.errors import ModelFileError
    from ..core.model import file_sha256

    spec = dlib_joint_spec()
    try:
        joint = load_model(None, device="cpu")
        if joint.spec.get("family") == "dlib-resnet":
            spec = dict(joint.spec)
            hist = spec.get("provenance", {}).get("history") or [{}]
            spec["threshold"] = hist[-1].get("teacher_threshold", spec["threshold"])
    except ModelFileError:
        pass  # no bundled model: the built-in template and a nominal threshold
    net = load_dlib_resnet(path)
    model = DlibReferenceModel(net, spec).to(resolve_device(device))
    model.sha256 = file_sha256(path)
    model.path = str(path)
    return model


class Progress:
    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.t0 = time.time()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        now = time.time()
        if done < total and now - self.last < 0.5:
            return
        self.last = now
        frac = done / max(total, 1)
        bar = "#" * int(28 * frac)
        rate = done / max(now - self.t0, 1e-9)
        eta = (total - done) / rate if rate > 0 else 0
        end = "\n" if done >= total or not sys.stderr.isatty() else ""
        sys.stderr.write(f"\rembedding images [{bar:<28}] {done}/{total} eta {eta:4.0f}s{end}")
        sys.stderr.flush()


def run(args) -> int:
    from ..core.evaluation.sharding import run_sharded, select_gpu, shard_of
    from ..core.evaluation.verify import embed_shard, merge_embeddings, verify_pairs
    from ..core.pairs import read_pairs

    started = time.time()
    pairs = read_pairs(args.pairs, args.root, missing="error", n_folds=args.folds, seed=args.seed)
    select_gpu()
    model = load_any_model(args.model, device=args.device)
    if args.threshold is not None:
        model.spec = {**model.spec, "threshold": float(args.threshold)}
    out = Path(args.out)
    cache = args.cache or (out / "embeddings.npz")

    def work(rank: int, world: int):
        return embed_shard(model, shard_of(pairs.images, rank, world), cache, batch_size=args.batch_size,
                           prealigned=args.aligned, progress=Progress(args.quiet))

    def finish(parts: list) -> int:
        reasons = merge_embeddings(model, cache, parts)
        res = verify_pairs(model, pairs, out, cache_path=cache, progress=Progress(args.quiet or bool(parts)),
                           batch_size=args.batch_size, prealigned=args.aligned, started=started,
                           no_face_reasons=reasons)
        if res["n_pairs_with_no_face"] >= res["n_pairs"]:  # every accuracy would be a constant's
            from ..core.errors import XfrError

            raise XfrError(f"no pair could be scored: every pair has an unreadable image or one without a face "
                           f"({res['n_unreadable']} unreadable, {res['n_no_face']} without a face; "
                           f"{out / 'verify.json'} lists them)")
        report(res, out)
        return 0

    return run_sharded(work, finish, args.workers, args.argv)


def report(res: dict, out: Path) -> None:
    from ..core.evaluation.verify import percent

    for warning in res["warnings"]:
        print(f"xfr: warning: {warning}", file=sys.stderr)
    spread = f" ± {res['accuracy_std'] * 100:.2f}" if res["accuracy_std"] is not None else ""
    print(f"{res['model']}: {res['n_pairs']} pairs ({res['n_folds']} folds), accuracy "
          f"{percent(res['accuracy_mean'])}{spread}, at threshold {res['threshold']:.4f}: "
          f"{percent(res['accuracy_at_threshold'])}, TAR@FAR1e-3 {percent(res['tar_at_far_1e-3'])}, "
          f"EER {percent(res['eer'])}, images without a face: {res['n_no_face']}, unreadable: "
          f"{res['n_unreadable']}")
    wrote = [out / "verify.json"] + ([out / "roc.png"] if res["eer"] is not None else [])
    print(f"wrote {' and '.join(map(str, wrote))}")
