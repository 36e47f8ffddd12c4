"""Step 1 of the dlib joint-model recipe: fit the YuNet template for dlib's chip geometry, align every training
image, and cache what the frozen trunk computes (so training only runs the dense top, the 1x1 conv and decoder).

Training images: ../shared/data/celeba-subset and the LFW people who appear in no pair of pairs.txt. Never an
LFW pair person. Output (cache dir): template.json, index.json, chips.npy (N,2,150,150,3 uint8: aligned and
jittered), trunk.npy (N,4,128,8,8 float16: aligned, aligned+flip, jittered, jittered+flip) and teacher.npy
(N,4,128 float32: dlib's original descriptor of the same four chips).

    OMP_NUM_THREADS=2 .venv/bin/python training/dlib_joint/prepare.py --shared ../shared --cache training/dlib_joint/cache
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from xfr_desktop.core.alignment import FaceAligner, warp_points  # noqa: E402
from xfr_desktop.core.dlib_import import (  # noqa: E402
    dlib_dense_backbone, load_dlib_resnet, normalize_chips,
)
from xfr_desktop.core.imageio import load_image  # noqa: E402

log = logging.getLogger("prepare")
HERE = Path(__file__).resolve().parent


def lfw_pair_people(pairs_path: Path) -> set[str]:
    people = set()
    for line in pairs_path.read_text().splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) == 3:
            people.add(parts[0])
        elif len(parts) == 4:
            people.update((parts[0], parts[2]))
    return people


def training_images(shared: Path, cfg: dict) -> list[dict]:
    """[{path, identity, source, split}] -- celeba (30 identities held out as 'val') + LFW non-pair people."""
    rng = np.random.default_rng(cfg["seed"])
    celeba = shared / cfg["celeba_dir"]
    ids = sorted(p.name for p in celeba.iterdir() if p.is_dir())
    held = set(rng.choice(ids, size=cfg["heldout_celeba_identities"], replace=False).tolist())
    items = []
    for ident in ids:
        for f in sorted((celeba / ident).glob("*.jpg")):
            items.append({"path": str(f), "identity": f"celeba/{ident}", "source": "celeba",
                          "split": "val" if ident in held else "train"})
    excluded = lfw_pair_people(shared / cfg["lfw_pairs"])
    lfw = shared / cfg["lfw_dir"]
    for person in sorted(p.name for p in lfw.iterdir() if p.is_dir()):
        if person in excluded:
            continue
        for f in sorted((lfw / person).glob("*.jpg")):
            items.append({"path": str(f), "identity": f"lfw/{person}", "source": "lfw-nonpair", "split": "train"})
    return items


def dlib_chip_transform(details) -> np.ndarray:
    """image -> chip affine of a dlib chip_details (dlib's get_mapping_to_chip)."""
    r, a = details.rect, details.angle
    cx, cy = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2
    c, s = np.cos(a), np.sin(a)

    def rot(x, y):
        return [c * (x - cx) - s * (y - cy) + cx, s * (x - cx) + c * (y - cy) + cy]

    src = np.array([rot(r.left(), r.top()), rot(r.right(), r.top()), rot(r.right(), r.bottom())], np.float32)
    dst = np.array([[0, 0], [details.cols - 1, 0], [details.cols - 1, details.rows - 1]], np.float32)
    return cv2.getAffineTransform(src, dst).astype(np.float64)


def fit_template(items: list[dict], cfg: dict, aligner: FaceAligner) -> dict:
    """Mean of YuNet's landmarks mapped into dlib's 150 px chips (dlib HOG + shape_predictor_5, padding 0.25)."""
    import dlib
    import face_recognition_models as frm

    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    rng = np.random.default_rng(cfg["seed"] + 1)
    chosen = rng.choice(len(items), size=min(cfg["template_fit_images"], len(items)), replace=False)
    pts = []
    for i in chosen:
        img = load_image(items[i]["path"])
        dets = det(img, 1)
        faces = aligner.detect(img)
        if not dets or not faces:
            continue
        d = max(dets, key=lambda r: r.area())
        face = faces[0]
        bx, by, bw, bh = face.box
        if not (d.left() <= bx + bw / 2 <= d.right() and d.top() <= by + bh / 2 <= d.bottom()):
            continue  # the two detectors found different faces
        details = dlib.get_face_chip_details(sp(img, d), size=cfg["chip_size"], padding=0.25)
        pts.append(warp_points(face.landmarks, dlib_chip_transform(details)))
    pts = np.stack(pts)
    mean = pts.mean(0)
    # symmetrize (training flips faces): mirror x about the chip centre and swap right/left points
    mirror = mean[[1, 0, 2, 4, 3]].copy()
    mirror[:, 0] = (cfg["chip_size"] - 1) - mirror[:, 0]
    template = (mean + mirror) / 2
    return {"template": template.round(3).tolist(), "raw_mean": mean.round(3).tolist(),
            "std_px": pts.std(0).round(3).tolist(), "n_images": len(pts)}


def jitter_transform(M: np.ndarray, rng: np.random.Generator, cfg: dict, size: int) -> np.ndarray:
    j = cfg["jitter"]
    s = 1.0 + rng.uniform(-j["scale"], j["scale"])
    a = np.deg2rad(rng.uniform(-j["rotate_deg"], j["rotate_deg"]))
    t = rng.uniform(-j["shift_px"], j["shift_px"], size=2)
    c = (size - 1) / 2
    R = np.array([[s * np.cos(a), -s * np.sin(a)], [s * np.sin(a), s * np.cos(a)]])
    J = np.zeros((2, 3))
    J[:, :2] = R
    J[:, 2] = c - R @ np.array([c, c]) + t
    return np.vstack([J, [0, 0, 1]])[:2] @ np.vstack([M, [0, 0, 1]])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(HERE.parents[2] / "shared"))
    ap.add_argument("--cache", default=str(HERE / "cache"))
    ap.add_argument("--config", default=str(HERE / "config.json"))
    ap.add_argument("--limit", type=int, default=0, help="only the first N images (smoke test)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = json.loads(Path(args.config).read_text())
    shared, cache = Path(args.shared), Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    (cache / ".gitignore").write_text("*\n")
    S = cfg["chip_size"]
    items = training_images(shared, cfg)
    if args.limit:
        items = items[:: max(1, len(items) // args.limit)][: args.limit]
    log.info("%d training images (%d held-out val)", len(items), sum(it["split"] == "val" for it in items))

    t0 = time.time()
    probe = FaceAligner([[0, 0]] * 5, (S, S))
    tpl_path = cache / "template.json"
    if tpl_path.is_file():
        tpl = json.loads(tpl_path.read_text())
    else:
        tpl = fit_template(items, cfg, probe)
        tpl_path.write_text(json.dumps(tpl, indent=1))
    log.info("template from %d images (%.0f s): %s", tpl["n_images"], time.time() - t0, tpl["template"])

    aligner = FaceAligner(tpl["template"], (S, S))
    rng = np.random.default_rng(cfg["seed"] + 2)
    n = len(items)
    chips = np.lib.format.open_memmap(cache / "chips.npy", "w+", np.uint8, (n, 2, S, S, 3))
    keep = np.zeros(n, bool)
    t0 = time.time()
    for i, it in enumerate(items):
        try:
            img = load_image(it["path"])
            face = aligner.align(img)
        except Exception as exc:  # noqa: BLE001 -- a training image without a face is skipped and counted
            log.info("skip %s: %s", it["path"], exc)
            continue
        chips[i, 0] = face.aligned
        chips[i, 1] = aligner.warp(img, jitter_transform(face.transform, rng, cfg, S))
        keep[i] = True
        if i % 1000 == 0:
            log.info("aligned %d/%d (%.0f s)", i, n, time.time() - t0)
    chips.flush()
    log.info("aligned %d of %d images in %.0f s", keep.sum(), n, time.time() - t0)

    ref = load_dlib_resnet(_dat_path())
    dense = dlib_dense_backbone(_dat_path()).eval()
    # the teacher shares the trunk: only its strided 256 stages and fc run on top of the cached features
    trunk = np.lib.format.open_memmap(cache / "trunk.npy", "w+", np.float16, (n, 4, 128, 8, 8))
    teacher = np.zeros((n, 4, 128), np.float32)
    t0 = time.time()
    with torch.inference_mode():
        for s in range(0, n, 64):
            block = np.asarray(chips[s:s + 64])  # (b,2,S,S,3)
            views = np.stack([block[:, 0], block[:, 0, :, ::-1], block[:, 1], block[:, 1, :, ::-1]], 1)
            x = normalize_chips(views.reshape(-1, S, S, 3))
            feats = dense.trunk(x)
            t = feats
            for blk in ref.blocks[10:]:
                t = blk(t)
            teacher[s:s + 64] = ref.fc(t.mean(dim=(2, 3))).numpy().reshape(-1, 4, 128)
            trunk[s:s + 64] = feats.numpy().astype(np.float16).reshape(-1, 4, 128, 8, 8)
    trunk.flush()
    np.save(cache / "teacher.npy", teacher)
    log.info("trunk features and teacher descriptors in %.0f s", time.time() - t0)
    for it, k in zip(items, keep):
        it["ok"] = bool(k)
    (cache / "index.json").write_text(json.dumps({"items": items, "config": cfg, "template": tpl}, indent=0))
    return 0


def _dat_path() -> str:
    import face_recognition_models as frm

    return frm.face_recognition_model_location()


if __name__ == "__main__":
    sys.exit(main())
