"""Turn the step-1700 checkpoint of run 2 into the bundled file: add the provenance (weights and threshold as saved).

    .venv/bin/python training/dlib_affine/finalize.py models/xfr-dlib-affine-joint.partial.pt models/xfr-dlib-affine-joint.pt
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from xfr_desktop.core.model import load_model, save_model  # noqa: E402

HERE = Path(__file__).resolve().parent


def _recipe():
    spec = importlib.util.spec_from_file_location("dlib_affine_train", HERE / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def val_history(log: Path) -> list[dict]:
    pat = re.compile(r"\[(.+?)\] val: balanced acc ([\d.]+) at cosine ([\d.]+) .*PSNR ([\d.]+) dB \| modal share "
                     r"([\d.]+), cells ([\d.]+)")
    return [{"tag": m[1], "val_balanced_acc": float(m[2]), "threshold": float(m[3]), "val_psnr_db": float(m[4]),
             "argmax_modal_share": float(m[5]), "argmax_cells_used": float(m[6])}
            for m in pat.finditer(log.read_text())]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    args = ap.parse_args(argv)
    import face_recognition_models as frm

    model = load_model(args.checkpoint, device="cpu")
    run1, run2 = val_history(HERE / "train_run1.log"), val_history(HERE / "train.log")
    model.spec["provenance"] = _recipe().provenance(
        frm.face_recognition_model_location(),
        schedule="run 1: 1,143 steps from dlib's weights (config.json); run 2: from run 1, a new 2,000-step "
                 "schedule with spread_weight 0.25, stopped at step 1,740; this file is its step-1,700 checkpoint",
        config=json.loads((HERE / "config.json").read_text()), run1_history=run1,
        run2_history=[h for h in run2 if h["tag"] != "step 1800"])
    sha = save_model(model, args.out)
    print(f"{args.out} sha256 {sha} threshold {model.threshold}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
