"""S⁺ and S⁻ of 10 LFW fold-1 pairs (the first 5 matched and 5 mismatched) for several models, to look at (issue 22:
"no hard-edged artifacts, looked at on 10 pairs"). Rows: pair × model; columns: A, S⁺ A, S⁻ A, B, S⁺ B, S⁻ B, one
colour scale per pair and model (the largest |H| of the two faces).

    .venv/bin/python training/dlib_affine/maps_grid.py OUT.jpg MODEL.pt [MODEL.pt ...]
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from xfr_desktop.core.alignment import FaceAligner  # noqa: E402
from xfr_desktop.core.explain import explain_pair  # noqa: E402
from xfr_desktop.core.model import load_model  # noqa: E402
from xfr_desktop.core.pairs import read_pairs  # noqa: E402
from xfr_desktop.core.render import overlay  # noqa: E402

LFW = Path(__file__).resolve().parents[3] / "shared" / "data" / "lfw"


def label(img: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((16, img.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, img], 0)


def main(argv: list[str]) -> int:
    out, paths = Path(argv[0]), argv[1:]
    pairs = read_pairs(LFW / "pairs.txt", LFW / "lfw-deepfunneled", missing="ignore")[:600]
    pick = [p for p in pairs if p.same][:5] + [p for p in pairs if not p.same][:5]
    models = [(Path(m).stem.replace("xfr-dlib-", "")[:22], load_model(m, device="cpu")) for m in paths]
    aligner = FaceAligner.for_model(models[0][1])
    rows = []
    for p in pick:
        a, b = aligner.align_file(p.path_a).aligned, aligner.align_file(p.path_b).aligned
        for name, model in models:
            r = explain_pair(model, a, b)
            vmax = max(float(np.abs(r.a.H).max()), float(np.abs(r.b.H).max()))
            tiles = [label(a, f"{name} s={r.score:.2f}"), label(overlay(a, r.a.S_pos, vmax, kind="S_pos"), "S+ A"),
                     label(overlay(a, r.a.S_neg, vmax, kind="S_neg"), "S- A"), label(b, f"same={p.same}"),
                     label(overlay(b, r.b.S_pos, vmax, kind="S_pos"), "S+ B"),
                     label(overlay(b, r.b.S_neg, vmax, kind="S_neg"), "S- B")]
            rows.append(np.concatenate(tiles, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
