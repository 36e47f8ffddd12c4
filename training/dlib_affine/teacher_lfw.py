"""LFW 10-fold accuracy of the distillation teacher (dlib's own 128-d descriptor) under this project's alignment:
the ceiling a student distilled from it can be expected to reach (issue 22's goal is >= 98.3 %).

The chips are the bundled model's (YuNet -> its template, 150x150), the descriptor is dlib's network as
``../dlib_joint/prepare.py`` computes the teacher (trunk, strided 256 stages, average pool, fc). Scores: cosine of
the raw descriptors, and of the descriptors centred by the training mean of the prepare cache (as the students are
trained); ``--alpha`` subtracts a fraction of that mean. Thresholds for each fold are chosen on the other nine (the LFW View 2 protocol).

    OMP_NUM_THREADS=1 .venv/bin/python training/dlib_affine/teacher_lfw.py --cache ~/.cache/xfr-runs/joint-cache
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from xfr_desktop.core.alignment import FaceAligner  # noqa: E402
from xfr_desktop.core.evaluation.verify import kfold_accuracy, roc  # noqa: E402
from xfr_desktop.core.dlib_import import dlib_dense_backbone, load_dlib_resnet, normalize_chips  # noqa: E402
from xfr_desktop.core.model import load_model  # noqa: E402
from xfr_desktop.core.pairs import read_pairs  # noqa: E402


def teacher_descriptors(chips: np.ndarray, dat: str) -> np.ndarray:
    ref, dense = load_dlib_resnet(dat), dlib_dense_backbone(dat).eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(chips), 64):
            t = dense.trunk(normalize_chips(chips[s:s + 64]))
            for blk in ref.blocks[10:]:
                t = blk(t)
            out.append(ref.fc(t.mean(dim=(2, 3))).double().numpy())
    return np.concatenate(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", required=True, help="the prepare.py cache (its training mean centres the teacher)")
    ap.add_argument("--lfw", default=str(ROOT.parent / "shared" / "data" / "lfw"))
    ap.add_argument("--alpha", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0],
                    help="subtract alpha x the training mean before the cosine")
    args = ap.parse_args(argv)
    lfw = Path(args.lfw)
    pairs = read_pairs(lfw / "pairs.txt", lfw / "lfw-deepfunneled")
    paths = sorted({str(p.path_a) for p in pairs} | {str(p.path_b) for p in pairs})
    index = {p: i for i, p in enumerate(paths)}
    cache = Path(args.cache).expanduser()
    saved = cache / "lfw_teacher.npy"   # the descriptors of the sorted pair images, computed once
    t0 = time.time()
    if saved.is_file():
        D = np.load(saved)
    else:
        aligner = FaceAligner.for_model(load_model(None, device="cpu"))
        chips = np.stack([aligner.align_file(p).aligned for p in paths])
        import face_recognition_models as frm

        D = teacher_descriptors(chips, frm.face_recognition_model_location())
        np.save(saved, D)
    items = json.loads((cache / "index.json").read_text())["items"]
    train = [i for i, it in enumerate(items) if it["ok"] and it["split"] == "train"]
    t_mean = np.load(cache / "teacher.npy")[train].astype(np.float64).mean((0, 1))
    pa = np.array([index[str(p.path_a)] for p in pairs])
    pb = np.array([index[str(p.path_b)] for p in pairs])
    same = np.array([p.same for p in pairs])
    fold = np.array([p.fold for p in pairs])
    for alpha in args.alpha:   # 0: raw descriptors; 1: centred as the students' target
        E = D - alpha * t_mean
        E = E / np.linalg.norm(E, axis=1, keepdims=True)
        scores = np.sum(E[pa] * E[pb], 1)
        k = kfold_accuracy(scores, same, fold)       # the same protocol as `xfr evaluate verify`
        acc, sd, tar = k["accuracy_mean"], k["accuracy_std"], roc(scores, same)["tar_at_far_1e-3"]
        print(f"teacher minus {alpha:g} x training mean: LFW 10-fold accuracy {100 * acc:.2f} % +- {100 * sd:.2f}, "
              f"TAR@FAR1e-3 {100 * tar:.1f} %; "
              f"mean cosine of different-person pairs {scores[~same].mean():.3f}, same-person "
              f"{scores[same].mean():.3f} ({len(pairs)} pairs, {len(paths)} images, {time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
