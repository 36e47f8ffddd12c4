"""`xfr explain IMG_A IMG_B --out DIR`: verify a pair and explain the decision with Algorithm 1."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ..core.fileio import owner_only
from ..core.numbers import cosine_arg, face_number_arg
from ..core.trust_display import DEFAULT_JITTER

MAX_JITTER = 32


def register(subparsers) -> None:
    p = subparsers.add_parser("explain", help="verify two face images and write the explanation maps",
                              description="Detect, align, verify and explain a pair of face images.")
    p.add_argument("image_a", help="first image (A)")
    p.add_argument("image_b", help="second image (B)")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--model", help="joint model file (default: the bundled model)")
    p.add_argument("--threshold", type=cosine_arg, help="decision threshold on the cosine score (default: the model's)")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    p.add_argument("--aligned", action="store_true", help="inputs are pre-aligned face crops: skip detection")
    p.add_argument("--channels", type=int, metavar="K", help="explain with the K strongest channels only (top-k)")
    p.add_argument("--face-a", type=face_number_arg, metavar="K",
                   help="which detected face of A (1 = the largest); needed when A shows several")
    p.add_argument("--face-b", type=face_number_arg, metavar="K",
                   help="which detected face of B (1 = the largest); needed when B shows several")
    p.add_argument("--normalization", choices=["sum", "max"], default="sum",
                   help="residual normalization: sum (maps decompose score - threshold) or max")
    p.add_argument("--engine", choices=["fast", "batched", "literal"], default="fast")
    p.add_argument("--trust-jitter", type=_draws_arg, default=DEFAULT_JITTER, metavar="N",
                   help="jitter draws of the map's stability check (default 3; 0 = faithfulness only)")
    p.add_argument("--no-trust-check", action="store_true",
                   help="skip the per-pair check of how far to trust the map (faithfulness, stability)")
    p.set_defaults(func=run)


def _draws_arg(text: str) -> int:
    """argparse ``type=``: 0 to MAX_JITTER draws (each one is a full explanation of the pair)."""
    import argparse

    try:
        draws = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if not 0 <= draws <= MAX_JITTER:
        raise argparse.ArgumentTypeError(f"from 0 to {MAX_JITTER} draws, not {draws}")
    return draws


@owner_only  # face crops, maps and result.json: 0600 in a new 0700 folder
def run(args) -> int:
    from ..core.imageio import check_image_file

    for label, path in (("A", args.image_a), ("B", args.image_b)):  # before torch and the model: a bad file is
        check_image_file(path, f"{label} ({Path(path).name})")      # refused at once
    from ..core.alignment import FaceAligner
    from ..core.explain import explain_pair
    from ..core.imageio import image_sha256
    from ..core.model import load_model
    from ..core.trust_display import cli_line

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    model = load_model(args.model, device=None if args.device == "auto" else args.device)
    timings["load_model"] = (time.perf_counter() - t0) * 1e3

    out = Path(args.out)
    t1 = time.perf_counter()
    indices = _chosen_faces(args, out)
    aligner = FaceAligner.for_model(model)
    faces = [aligner.align_file(path, face_index=index, prealigned=args.aligned)
             for path, index in zip((args.image_a, args.image_b), indices)]
    timings["align"] = (time.perf_counter() - t1) * 1e3
    warnings = prealigned_warnings(aligner, faces, [args.image_a, args.image_b]) if args.aligned else []

    result = explain_pair(model, faces[0].aligned, faces[1].aligned, threshold=args.threshold,
                          top_k=args.channels, normalization=args.normalization, engine=args.engine)
    timings.update(result.timings_ms)
    t2 = time.perf_counter()
    trust = None if args.no_trust_check else pair_trust(model, faces, result, args.trust_jitter)
    timings["trust"] = (time.perf_counter() - t2) * 1e3
    timings["total"] = (time.perf_counter() - t0) * 1e3

    out.mkdir(parents=True, exist_ok=True)
    write_outputs(out, result, faces, model, [args.image_a, args.image_b],
                  [image_sha256(args.image_a), image_sha256(args.image_b)], timings, warnings, trust)
    for warning in warnings:
        print(f"xfr: warning: {warning}", file=sys.stderr)
    print(evidence_line(evidence_summary(model, result), result))
    print(cli_line(trust))
    print(f"faces: A face {faces[0].face_index + 1} of {faces[0].n_faces}, B face {faces[1].face_index + 1} of "
          f"{faces[1].n_faces}")
    print(f"outputs: {out.resolve()}")
    return 0


def pair_trust(model, faces, result, jitter: int) -> dict:
    """The per-pair trust record (core.evaluation.pair_trust), as the app stores it with a result."""
    from ..core.evaluation.pair_trust import assess_pair, trust_summary

    return trust_summary(*assess_pair(model, faces[0].aligned, faces[1].aligned, result, jitter=jitter))


def _chosen_faces(args, out: Path) -> list[int]:
    """0-based face indices; a photo with several faces needs --face-a/--face-b (the contact sheet goes to out)."""
    if args.aligned:
        return [0, 0]
    from ..core.face_choice import choose_face

    return [choose_face(path, number, name=f"{label} ({Path(path).name})", option=f"--face-{label.lower()} K",
                        sheet_dir=out)
            for label, path, number in (("A", args.image_a, args.face_a), ("B", args.image_b, args.face_b))]


def evidence_line(evidence: dict, result) -> str:
    """'LR 3.2 (weak support …); model decision at τ = 0.300: match (score 0.4120)': the likelihood ratio first,
    as the app and the report lead with it."""
    lr = evidence["likelihood_ratio"]
    head = f"LR {lr['text']} ({lr['verbal_equivalent']})" if lr else "no likelihood ratio (no calibration)"
    return f"{head}; {evidence['model_decision']['text']} (score {result.score:.4f})"


def evidence_summary(model, result) -> dict:
    """The likelihood ratio (None without a calibration) and the model decision, as result.json states them."""
    from ..core.calibration import stored_likelihood_ratio
    from ..core.evaluative import lr_statement, model_decision

    lr = stored_likelihood_ratio(model, result.score)
    statement = lr_statement(lr)
    decision = model_decision(result.score, result.threshold, model.threshold,
                              None if lr is None else lr["value"], decision=result.decision)
    likelihood = None if statement is None else {
        "value": lr["value"], "text": statement.text, "verbal_equivalent": statement.verbal,
        "at_limit": statement.at_limit, "limits": lr["limits"], "calibration": lr["calibration"]}
    return {"likelihood_ratio": likelihood,
            "model_decision": {"text": decision.text, "threshold": decision.threshold,
                               "calibrated_threshold": decision.calibrated_threshold, "flags": list(decision.flags)}}


def prealigned_warnings(aligner, faces, paths) -> list[str]:
    """--aligned skips detection, so any picture of the right shape would be scored as a face: one detector pass
    on each crop flags those that hold none (a warning: a very tight crop can defeat the detector)."""
    return [f"{path}: no face found in the crop given as aligned; the score may be meaningless"
            for face, path in zip(faces, paths) if not aligner.detect(face.aligned, source=str(path))]


def write_outputs(out: Path, result, faces, model, paths, hashes, timings, warnings=(), trust=None) -> None:
    """result.json, maps.npz and PNG overlays (S, S+, S-, H, aligned face, reconstruction) for both sides.
    ``trust``: the per-pair trust record (``faithfulness``, ``stability``: null when not checked)."""
    import numpy as np

    from ..core.fileio import atomic_write
    from ..core.numbers import json_text
    from ..core.map_style import colour_levels
    from ..core.render import overlay_with_colorbar, save_png

    info = {
        "score": result.score,
        "threshold": result.threshold,
        "decision": result.decision_label,
        "margin": result.score - result.threshold,
        "faces_found": {"a": faces[0].n_faces, "b": faces[1].n_faces},
        "face_number": {"a": faces[0].face_index + 1, "b": faces[1].face_index + 1},   # 1 = the largest
        "face_box": {side: None if f.box is None else [round(float(v), 1) for v in f.box]   # x, y, w, h in the
                     for side, f in zip("ab", faces)},                                   # photo's own pixels
        "normalization": result.normalization,
        "channels_used": int(result.selected.sum()),
        "top_k": result.top_k,
        "engine": result.engine,
        "device": result.device,
        "timings_ms": {k: round(v, 2) for k, v in timings.items()},
        "model": {"name": model.spec.get("name"), "path": model.path},
        "model_sha256": model.sha256,
        "inputs": {side: {"path": str(Path(p).resolve()), "sha256": h}
                   for side, p, h in zip("ab", paths, hashes)},
        "warnings": list(warnings),
        **evidence_summary(model, result),
        "faithfulness": (trust or {}).get("faithfulness"),
        "stability": (trust or {}).get("stability"),
    }
    arrays = {}
    for side_name in "ab":
        side = getattr(result, side_name)
        for key in ("H", "S", "S_pos", "S_neg", "weights"):
            arrays[f"{side_name}_{key}"] = getattr(side, key)
    atomic_write(out / "maps.npz", lambda f: np.savez_compressed(f, **arrays))
    for kind in ("S", "S_pos", "S_neg", "H"):
        _, vmax = colour_levels([getattr(result.a, kind), getattr(result.b, kind)], kind)  # one scale for A, B
        for side_name in "ab":
            side = getattr(result, side_name)
            img = overlay_with_colorbar(side.aligned, getattr(side, kind), vmax, kind=kind,
                                        normalization=result.normalization)
            save_png(out / f"{side_name}_{kind}.png", img)
    for side_name in "ab":
        side = getattr(result, side_name)
        save_png(out / f"{side_name}_aligned.png", side.aligned)
        save_png(out / f"{side_name}_reconstruction.png", side.reconstruction)
    atomic_write(out / "result.json", lambda f: f.write(json_text(info, indent=2).encode()))
