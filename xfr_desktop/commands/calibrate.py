"""`xfr calibrate`: fit the score-to-likelihood-ratio calibration of a model on a reference pair list."""
from __future__ import annotations

from pathlib import Path

from ..core.numbers import json_text


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate", help="calibrate a model's scores into likelihood ratios on a reference pair list",
        description="Embeds every image of the pair list through the project's pipeline (YuNet, alignment, the "
                    "model), fits logistic-regression calibration of the cosine scores (PAV as a diagnostic) and "
                    "writes <model>.calibration.json next to the model (or into --out), with Cllr, Cllr_min and a "
                    "Tippett plot. Pairs with an image without a detectable face are left out and counted.")
    p.add_argument("--pairs", help="LFW pairs.txt or CSV with columns img_a,img_b,same")
    p.add_argument("--root", help="folder the pair list's images are relative to")
    p.add_argument("--model", help="model file (default: the bundled model)")
    p.add_argument("--out", help="write calibration.json, tippett.png and scores.npz into this folder instead of "
                                 "next to the model")
    p.add_argument("--scores", help="reuse the scores.npz of `xfr evaluate verify` for this model instead of "
                                    "embedding the pairs again")
    p.add_argument("--cache", help="embedding cache file (shared with `xfr evaluate verify`)")
    p.add_argument("--tippett", help="also write the Tippett plot to this PNG (e.g. docs/results/tippett.png)")
    p.add_argument("--reference", help="how to name the reference set in the calibration and in reports, e.g. "
                                       "'LFW View 2' (default: the pair list's or scores file's name; reports add "
                                       "the pair counts)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def reference_scores(model, pairs, cache_path=None, progress=None, batch_size: int = 32):
    """(scores, same, folds) of the pairs whose images both have a face, and how many pairs were left out."""
    import numpy as np

    from ..core.evaluation.verify import EmbeddingCache, cosine, embed_images, model_cache_key

    cache = EmbeddingCache.open(cache_path, model_cache_key(model))
    embs, _failures = embed_images(model, pairs.images, cache, batch_size=batch_size, progress=progress)
    cache.save()
    scores, same, folds, skipped = [], [], [], 0
    for pr in pairs:
        a, b = embs.get(pr.path_a), embs.get(pr.path_b)
        if a is None or b is None:
            skipped += 1
            continue
        scores.append(cosine(a, b))
        same.append(pr.same)
        folds.append(pr.fold)
    return np.asarray(scores, np.float64), np.asarray(same, bool), np.asarray(folds), skipped


def run(args) -> int:
    import numpy as np

    from ..core.calibration import (CalibrationError, calibration_path, cross_validated_cllr, fit_calibration,
                                    save_tippett)
    from ..core.errors import XfrError
    from ..report.calibration_lookup import left_out_words
    from .evaluate_verify import Progress, load_any_model

    if not args.scores and not (args.pairs and args.root):
        raise XfrError("give --pairs FILE and --root DIR (or --scores FILE from `xfr evaluate verify`)")
    model = load_any_model(args.model, device=args.device)
    model_path = Path(model.path)
    extra: dict = {}
    if args.scores:
        try:
            with np.load(args.scores, allow_pickle=False) as z:
                scores, same = np.asarray(z["scores"], np.float64), np.asarray(z["same"], bool)
                folds = np.asarray(z["folds"]) if "folds" in z.files else np.zeros(len(scores), int)
        except (OSError, ValueError, KeyError) as exc:
            raise CalibrationError(f"cannot read scores file {args.scores} ({type(exc).__name__}); expected the "
                                   f"scores.npz of `xfr evaluate verify`") from None
        from ..core.evaluation.verify import NO_FACE_SCORE

        keep = scores != NO_FACE_SCORE  # pairs whose image had no face carry the sentinel, not a real score
        scores, same, folds = scores[keep], same[keep], folds[keep]
        skipped = int((~keep).sum())
        reference = f"pairs scored in {Path(args.scores).name}"
        extra["scores_file"] = str(args.scores)
    else:
        from ..core.pairs import read_pairs

        pairs = read_pairs(args.pairs, args.root, missing="error")
        cache = args.cache or (Path(args.out) / "embeddings.npz" if args.out else None)
        scores, same, folds, skipped = reference_scores(model, pairs, cache, Progress(args.quiet), args.batch_size)
        reference = f"pair list {Path(args.pairs).name}"
        extra["pair_list"] = str(args.pairs)
    extra["n_pairs_left_out_no_face"] = skipped
    # the name alone: the counts are n_genuine and n_impostor, which reports print after it
    reference = (args.reference or reference) + left_out_words(skipped)
    genuine, impostor = scores[same], scores[~same]
    cv = cross_validated_cllr(genuine, impostor, folds[same], folds[~same])
    if cv is not None:
        extra["cllr_cross_validated"] = cv
        extra["n_folds"] = int(len(np.unique(folds)))
    cal = fit_calibration(genuine, impostor, model_sha256=getattr(model, "sha256", None),
                          model_name=model.spec.get("name"), reference=reference, extra=extra)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        cal_file = out / calibration_path(model_path).name
        tippett = out / "tippett.png"
        np.savez_compressed(out / "calibration_scores.npz", scores=scores, same=same, folds=folds)
    else:
        cal_file = calibration_path(model_path)
        tippett = None
    cal.save(cal_file)
    title = f"{model.spec.get('name', model_path.name)} on {reference}"[:90]
    for png in filter(None, [tippett, args.tippett]):
        save_tippett(cal, genuine, impostor, png, title=title)
    lo, hi = cal.log10_lr_bounds
    summary = {"calibration": str(cal_file), "n_genuine": cal.n_genuine, "n_impostor": cal.n_impostor,
               "left_out_no_face": skipped, "slope": round(cal.slope, 4), "intercept": round(cal.intercept, 4),
               "cllr": round(cal.cllr, 4), "cllr_min": round(cal.cllr_min, 4),
               "cllr_cross_validated": None if cv is None else round(cv, 4), "eer": round(cal.eer, 4),
               "lr_range": [10 ** lo, 10 ** hi],
               "lr_at_threshold": cal.describe(model.threshold)[0]}
    print(json_text(summary, indent=2))
    if tippett or args.tippett:
        print("Tippett plot: " + ", ".join(str(p) for p in filter(None, [tippett, args.tippett])))
    return 0
