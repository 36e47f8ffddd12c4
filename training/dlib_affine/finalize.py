"""Turn the step-1700 checkpoint of run 2 into the bundled file: add the provenance (weights and threshold as saved).

    .venv/bin/python training/dlib_affine/finalize.py models/xfr-dlib-affine-joint.partial.pt models/xfr-dlib-affine-joint.pt
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from xfr_desktop.core.model import file_sha256, load_model, save_model  # noqa: E402

HERE = Path(__file__).resolve().parent


def val_history(log: Path) -> list[dict]:
    pat = re.compile(r"\[(.+?)\] val: balanced acc ([\d.]+) at cosine ([\d.]+) .*PSNR ([\d.]+) dB \| modal share "
                     r"([\d.]+), cells ([\d.]+)")
    return [{"tag": m[1], "val_balanced_acc": float(m[2]), "threshold": float(m[3]), "val_psnr_db": float(m[4]),
             "argmax_modal_share": float(m[5]), "argmax_cells_used": float(m[6])}
            for m in pat.finditer(log.read_text())]


def main(src: str, dst: str) -> int:
    import face_recognition_models as frm

    model = load_model(src, device="cpu")
    run1, run2 = val_history(HERE / "train_run1.log"), val_history(HERE / "train.log")
    cfg = json.loads((HERE / "config.json").read_text())
    model.spec["provenance"] = {
        "backbone": "dlib_face_recognition_resnet_model_v1.dat (Davis E. King, dlib; CC0 / public domain), "
                    "imported with xfr_desktop.core.dlib_import",
        "source_file_sha256": file_sha256(frm.face_recognition_model_location()),
        "modification": "last two downsampling stages dense (stride 1, dilation 2/4); fc removed; C = per-channel "
                        "affine (folded batch norm) of the last dense stage (256x8x8); F = global max pool of C",
        "training": "training/dlib_affine (train.py, config.json, train_run1.log, train.log); cache from "
                    "training/dlib_joint/prepare.py",
        "training_data": "CelebA subset (295 identities, non-commercial research licence) + LFW people in no "
                         "pair of pairs.txt (1,468 people)",
        "threshold_source": "balanced accuracy on pairs of 30 held-out CelebA identities (no LFW)",
        "schedule": "run 1: 1,143 steps from dlib's weights (config.json); run 2: from run 1, a new 2,000-step "
                    "schedule with spread_weight 0.25, stopped at step 1,740; this file is its step-1,700 checkpoint",
        "config": cfg, "run1_history": run1, "run2_history": [h for h in run2 if h["tag"] != "step 1800"],
    }
    sha = save_model(model, dst)
    print(f"{dst} sha256 {sha} threshold {model.threshold}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
