"""Step 3 (optional) of the recipe: more decoder training with the recognition part frozen.

The joint phase (train.py) is short on a CPU and the decoder is its slowest learner. This phase keeps every
recognition weight (so embeddings, scores and LFW figures are unchanged) and trains only the decoder on the same
cached views for a fixed wall-clock budget, then rewrites the model file.

    OMP_NUM_THREADS=2 .venv/bin/python training/dlib_joint/refine_decoder.py --model models/xfr-dlib-maxpool-joint.pt \
        --minutes 12
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from xfr_desktop.core.dlib_import import DLIB_MEAN_RGB  # noqa: E402
from xfr_desktop.core.model import load_model, save_model  # noqa: E402
from xfr_desktop.core.training.losses import reconstruction_loss  # noqa: E402

log = logging.getLogger("refine")
HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--cache", default=str(HERE / "cache"))
    ap.add_argument("--config", default=str(HERE / "config.json"))
    ap.add_argument("--minutes", type=float, default=12)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = json.loads(Path(args.config).read_text())
    cache = Path(args.cache)
    items = json.loads((cache / "index.json").read_text())["items"]
    train_idx = np.array([i for i, it in enumerate(items) if it["ok"] and it["split"] == "train"])
    val_idx = np.array([i for i, it in enumerate(items) if it["ok"] and it["split"] == "val"])
    trunk = np.load(cache / "trunk.npy", mmap_mode="r")
    chips = np.load(cache / "chips.npy", mmap_mode="r")
    model = load_model(args.model, device="cpu")
    bb, dec = model.backbone.eval(), model.decoder
    for p in bb.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(dec.parameters(), lr=args.lr)
    mean = torch.tensor(DLIB_MEAN_RGB).view(1, 3, 1, 1)
    rng = np.random.default_rng(cfg["seed"] + 7)
    bs = cfg["batch_size"]

    def batch(idx, view):
        feats = torch.from_numpy(np.asarray(trunk[idx, view]).astype(np.float32))
        imgs = np.asarray(chips[idx])[np.arange(len(idx)), view // 2]
        flip = view % 2 == 1
        imgs[flip] = imgs[flip][:, :, ::-1]
        target = (torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float() - mean) / 256.0
        with torch.no_grad():
            C = bb.top(feats)
        return C, target

    def val_psnr():
        dec.eval()
        out = []
        with torch.inference_mode():
            for s in range(0, len(val_idx), 128):
                idx = val_idx[s:s + 128]
                C, target = batch(idx, np.zeros(len(idx), int))
                mse = ((dec(C).clamp(-1, 1) - target) * 256 / 255).pow(2).mean((1, 2, 3))
                out.append(10 * torch.log10(1.0 / mse))
        dec.train()
        return float(torch.cat(out).mean())

    # C of two views (aligned, flipped) of every training chip, computed once: steps then cost only the decoder
    t_c = time.time()
    c_cache = torch.empty(len(train_idx), 2, bb.head.out_channels, 8, 8)
    with torch.inference_mode():
        for s in range(0, len(train_idx), 128):
            idx = train_idx[s:s + 128]
            for v in (0, 1):
                feats = torch.from_numpy(np.asarray(trunk[idx, v]).astype(np.float32))
                c_cache[s:s + 128, v] = bb.top(feats)
    log.info("cached C of %d training chips x 2 views in %.0f s", len(train_idx), time.time() - t_c)
    pos = {int(i): k for k, i in enumerate(train_idx)}

    def train_batch(idx, view):
        C = c_cache[[pos[int(i)] for i in idx], view]
        imgs = np.asarray(chips[idx])[:, 0]
        flip = view == 1
        imgs[flip] = imgs[flip][:, :, ::-1]
        target = (torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float() - mean) / 256.0
        return C, target

    before = val_psnr()
    log.info("val PSNR before %.2f dB", before)
    t0, step, budget = time.time(), 0, args.minutes * 60
    est_total = None
    dec.train()
    while time.time() - t0 < budget:
        idx = np.sort(rng.choice(train_idx, bs, replace=False))
        view = rng.integers(0, 2, bs)
        C, target = train_batch(idx, view)
        if step == 10:
            est_total = int(budget / ((time.time() - t0) / step))
        frac = step / est_total if est_total else 0.0
        for g in opt.param_groups:
            g["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        loss = reconstruction_loss(dec(C), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 25 == 0:
            log.info("step %d  L_rec %.5f  %.2f s/step", step, loss.item(), (time.time() - t0) / step)
    after = val_psnr()
    log.info("val PSNR after %.2f dB (%d decoder-only steps)", after, step)
    if after <= before:
        log.info("no improvement; model file left as it was")
        return 0
    dec.eval()
    prov = dict(model.spec.get("provenance", {}))
    prov["decoder_refinement"] = {"steps": step, "batch_size": bs, "optimizer": f"Adam {args.lr:g}, cosine",
                                  "val_psnr_db_before": round(before, 2), "val_psnr_db_after": round(after, 2),
                                  "script": "training/dlib_joint/refine_decoder.py"}
    model.spec["provenance"] = prov
    sha = save_model(model, args.model)
    log.info("saved %s sha256 %s", args.model, sha)
    return 0


if __name__ == "__main__":
    sys.exit(main())
