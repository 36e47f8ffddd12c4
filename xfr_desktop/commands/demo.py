"""`xfr demo`: explain every pair of the bundled sample case with the bundled model (no display needed)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..core.numbers import json_text
from ..paths import RESOURCES_DIR

SAMPLES_DIR = RESOURCES_DIR / "samples"


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="explain the bundled sample case's pairs and write the outputs")
    p.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    p.add_argument("--model", help="joint model file (default: the bundled model)")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..core.alignment import FaceAligner
    from ..core.explain import explain_pair
    from ..core.imageio import image_sha256
    from ..core.model import load_model
    from .explain import write_outputs

    case = json.loads((SAMPLES_DIR / "case.json").read_text())
    model = load_model(args.model, device=None if args.device == "auto" else args.device)
    aligner = FaceAligner.for_model(model)
    out = Path(args.out)
    rows = []
    for pair in case["pairs"]:
        paths = [SAMPLES_DIR / pair["image_a"], SAMPLES_DIR / pair["image_b"]]
        t0 = time.perf_counter()
        faces = [aligner.align_file(p) for p in paths]
        result = explain_pair(model, faces[0].aligned, faces[1].aligned)
        timings = dict(result.timings_ms, total=(time.perf_counter() - t0) * 1e3)
        pair_dir = out / pair["id"]
        pair_dir.mkdir(parents=True, exist_ok=True)
        write_outputs(pair_dir, result, faces, model, paths, [image_sha256(p) for p in paths], timings)
        expected = pair.get("expected")
        correct = expected is None or (expected == "same") == result.decision
        rows.append((pair["id"], pair.get("label", ""), result.score, result.decision_label, expected, correct))
        print(f"{pair['id']}: {result.decision_label:9s} score {result.score:+.3f} "
              f"(threshold {result.threshold:.3f}; expected {expected}) {'ok' if correct else 'WRONG'} "
              f"- {pair.get('label', '')} [{timings['total']:.0f} ms]")
    summary = [dict(zip(("id", "label", "score", "decision", "expected", "correct"), r)) for r in rows]
    (out / "summary.json").write_text(json_text(summary, indent=2))
    print(f"outputs: {out.resolve()} (one folder per pair: result.json, maps.npz, PNG overlays)")
    return 0
