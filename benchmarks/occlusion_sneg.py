"""Does S⁻ sit on the occluder? Synthetic occluders on matched LFW pairs (docs/hiding_game.md, section 'Occlusion').

For each matched pair, a synthetic occluder (``mask`` or ``sunglasses``, see core/evaluation/occlusion.py) is
painted on the aligned face A; the pair (A occluded, B) is explained with Algorithm 1 and the share of S⁻ mass
(and of S⁺, S) inside the occluder is compared with the occluder's share of the image area. The same region's S⁻
share on the unoccluded pair is the control.

    python benchmarks/occlusion_sneg.py --pairs PAIRS --root DIR --out DIR [--model PATH] [--folds 2] [--limit 100]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xfr_desktop.core.alignment import FaceAligner  # noqa: E402
from xfr_desktop.core.errors import ImageError  # noqa: E402
from xfr_desktop.core.evaluation.occlusion import OCCLUDERS, mass_share, paste_occluder  # noqa: E402
from xfr_desktop.core.explain import explain_pair  # noqa: E402
from xfr_desktop.core.model import load_model  # noqa: E402
from xfr_desktop.core.pairs import read_pairs  # noqa: E402


def overlay(face: np.ndarray, heat: np.ndarray) -> np.ndarray:
    h = heat / heat.max() if heat.max() > 0 else heat
    cm = cv2.applyColorMap((h * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
    return (0.5 * face + 0.5 * cm).astype(np.uint8)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--model")
    ap.add_argument("--folds", default="2", help="1-based folds to draw matched pairs from (default 2)")
    ap.add_argument("--limit", type=int, default=100, help="matched pairs to use (default 100)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model, device=args.device)
    if model.device.type == "cuda":
        import torch

        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    aligner = FaceAligner.for_model(model)
    folds = {int(f) for f in args.folds.split(",")}
    pairs = [p for p in read_pairs(args.pairs, args.root, missing="ignore") if p.same and p.fold + 1 in folds][: args.limit]
    template = model.template
    rows, n_no_face, examples = [], 0, []
    t0 = time.perf_counter()
    for i, pair in enumerate(pairs):
        try:
            a = aligner.align_file(pair.path_a).aligned
            b = aligner.align_file(pair.path_b).aligned
        except ImageError:
            n_no_face += 1
            continue
        base = explain_pair(model, a, b)
        row = {"pair": f"{pair.path_a.name}|{pair.path_b.name}", "score": base.score}
        for kind in OCCLUDERS:
            occluded, region = paste_occluder(a, kind, template)
            ex = explain_pair(model, occluded, b)
            row[kind] = {
                "area_share": float(region.mean()),
                "s_neg_share": mass_share(ex.a.S_neg, region),
                "s_pos_share": mass_share(ex.a.S_pos, region),
                "s_share": mass_share(ex.a.S, region),
                "control_s_neg_share": mass_share(base.a.S_neg, region),
                "score": ex.score,
                "decision_kept": bool(ex.decision) == bool(base.decision),
            }
            if len(examples) < 4 and kind == OCCLUDERS[len(examples) % 2]:
                examples.append(np.concatenate([occluded, overlay(occluded, ex.a.S_neg),
                                                overlay(occluded, ex.a.S_pos), b], 1))
        rows.append(row)
        print(f"{i + 1}/{len(pairs)} pairs  {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    summary = {"n_pairs": len(rows), "n_no_face": n_no_face, "model_sha256": model.sha256,
               "threshold": model.threshold, "wall_s": round(time.perf_counter() - t0, 1), "occluders": {}}
    for kind in OCCLUDERS:
        get = lambda key: np.asarray([r[kind][key] for r in rows], np.float64)  # noqa: E731
        s_neg, area, control = get("s_neg_share"), get("area_share"), get("control_s_neg_share")
        ok = np.isfinite(s_neg) & np.isfinite(control)
        summary["occluders"][kind] = {
            "area_share_mean": float(area.mean()),
            "s_neg_share_mean": float(np.nanmean(s_neg)),
            "s_neg_share_median": float(np.nanmedian(s_neg)),
            "s_pos_share_mean": float(np.nanmean(get("s_pos_share"))),
            "s_share_mean": float(np.nanmean(get("s_share"))),
            "control_s_neg_share_mean": float(np.nanmean(control)),
            "pairs_s_neg_share_above_area": float(np.mean(s_neg[ok] > area[ok])),
            "pairs_s_neg_share_above_control": float(np.mean(s_neg[ok] > control[ok])),
            "score_mean_occluded": float(get("score").mean()),
            "score_mean_clean": float(np.mean([r["score"] for r in rows])),
            "decision_kept": float(np.mean([r[kind]["decision_kept"] for r in rows])),
        }
    (out / "occlusion.json").write_text(json.dumps({"summary": summary, "pairs": rows}, indent=1) + "\n")
    if examples:
        cv2.imwrite(str(out / "occlusion_examples.png"), cv2.cvtColor(np.concatenate(examples, 0),
                                                                      cv2.COLOR_RGB2BGR))
    lines = ["| Occluder | area share | S⁻ share | S⁺ share | S share | S⁻ share, no occluder (control) |"
             " pairs S⁻ > area | pairs S⁻ > control | score clean → occluded |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for kind, s in summary["occluders"].items():
        lines.append(f"| {kind} | {s['area_share_mean']:.3f} | {s['s_neg_share_mean']:.3f} | "
                     f"{s['s_pos_share_mean']:.3f} | {s['s_share_mean']:.3f} | {s['control_s_neg_share_mean']:.3f}"
                     f" | {100 * s['pairs_s_neg_share_above_area']:.0f}% | "
                     f"{100 * s['pairs_s_neg_share_above_control']:.0f}% | {s['score_mean_clean']:.3f} → "
                     f"{s['score_mean_occluded']:.3f} |")
    (out / "occlusion.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
