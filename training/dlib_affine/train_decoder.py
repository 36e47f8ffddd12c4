"""Step 2b of the recipe: a decoder-only phase on the frozen affine model (reconstruction PSNR matters: the
channels' residuals that Algorithm 1 reads come from this decoder).

Every recognition weight stays as it is (embeddings, scores, threshold, LFW figures unchanged). C is computed once
for all four cached views (aligned / jittered chip, each also mirrored) of every training image, so a step costs
only the decoder. ``--decoder-channels`` starts a fresh (e.g. wider) decoder instead of continuing the model's own.

    OMP_NUM_THREADS=1 .venv/bin/python training/dlib_affine/train_decoder.py --model models/xfr-dlib-affine-joint.pt \\
        --out CANDIDATE.pt --minutes 60 [--decoder-channels 256,256,128,64,3]
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
from xfr_desktop.core.decoder import build_decoder  # noqa: E402
from xfr_desktop.core.dlib_import import DLIB_MEAN_RGB, dlib_decoder_spec  # noqa: E402
from xfr_desktop.core.model import load_model, save_model  # noqa: E402
from xfr_desktop.core.training.losses import reconstruction_loss  # noqa: E402

log = logging.getLogger("train_decoder")
HERE = Path(__file__).resolve().parent


def load_cache(cache: Path):
    items = json.loads((cache / "index.json").read_text())["items"]
    train_idx = np.array([i for i, it in enumerate(items) if it["ok"] and it["split"] == "train"])
    val_idx = np.array([i for i, it in enumerate(items) if it["ok"] and it["split"] == "val"])
    return train_idx, val_idx, np.load(cache / "trunk.npy", mmap_mode="r"), np.load(cache / "chips.npy",
                                                                                      mmap_mode="r")


def targets(chips, idx, view, mean):
    """The chips of ``view`` (0/1: chip 0, 2/3: chip 1; odd = mirrored) in the decoder's normalization."""
    imgs = np.asarray(chips[idx])[np.arange(len(idx)), view // 2]
    flip = view % 2 == 1
    imgs[flip] = imgs[flip][:, :, ::-1]
    return (torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float() - mean) / 256.0


def compute_c(bb, trunk, idx, views=4):
    """C (float16) of every view of ``idx``: (n, views, channels, 8, 8)."""
    out = None
    with torch.inference_mode():
        for s in range(0, len(idx), 128):
            for v in range(views):
                C = bb.top(torch.from_numpy(np.asarray(trunk[idx[s:s + 128], v]).astype(np.float32)))
                if out is None:
                    out = torch.empty(len(idx), views, *C.shape[1:], dtype=torch.float16)
                out[s:s + len(C), v] = C.half()
    return out


def psnr_db(dec, c_val, chips, val_idx, mean) -> float:
    dec.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(val_idx), 128):
            idx = val_idx[s:s + 128]
            target = targets(chips, idx, np.zeros(len(idx), int), mean)
            mse = ((dec(c_val[s:s + 128, 0].float()).clamp(-1, 1) - target) * 256 / 255).pow(2).mean((1, 2, 3))
            out.append(10 * torch.log10(1.0 / mse))
    dec.train()
    return float(torch.cat(out).mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", default=str(HERE.parent / "dlib_joint" / "cache"))
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=20261130)
    ap.add_argument("--decoder-channels", help="comma-separated, e.g. 256,256,128,64,3: a fresh decoder")
    ap.add_argument("--eval-every-min", type=float, default=5)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    log.info("args %s", json.dumps(vars(args)))
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train_idx, val_idx, trunk, chips = load_cache(Path(args.cache))
    model = load_model(args.model, device="cpu")
    bb = model.backbone.eval()
    for p in bb.parameters():
        p.requires_grad_(False)
    if args.decoder_channels:
        spec = dlib_decoder_spec(tuple(int(c) for c in args.decoder_channels.split(",")))
        model.decoder = build_decoder(spec)
        model.spec["decoder"] = spec
    dec = model.decoder.train()
    mean = torch.tensor(DLIB_MEAN_RGB).view(1, 3, 1, 1)
    t_c = time.time()
    c_train, c_val = compute_c(bb, trunk, train_idx), compute_c(bb, trunk, val_idx, views=1)
    log.info("C of %d training images x 4 views in %.0f s", len(train_idx), time.time() - t_c)
    before = psnr_db(dec, c_val, chips, val_idx, mean)
    log.info("val PSNR before %.2f dB", before)
    opt = torch.optim.Adam(dec.parameters(), lr=args.lr)
    t0, step, budget, est_total = time.time(), 0, args.minutes * 60, None
    warmup_steps = 200 if args.decoder_channels else 100  # a fresh decoder warms up longer
    next_eval, history = args.eval_every_min * 60, []
    while time.time() - t0 < budget:
        pick = rng.choice(len(train_idx), args.batch, replace=False)
        view = rng.integers(0, 4, args.batch)
        C = c_train[pick, view].float()
        target = targets(chips, train_idx[pick], view, mean)
        if step == 10:
            est_total = int(budget / ((time.time() - t0) / step))
        frac = min(step / est_total, 1.0) if est_total else 0.0
        warm = min(1.0, (step + 1) / warmup_steps)
        for g in opt.param_groups:
            g["lr"] = args.lr * warm * 0.5 * (1 + math.cos(math.pi * frac))
        loss = reconstruction_loss(dec(C), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            log.info("step %d  L_rec %.5f  %.2f s/step", step, loss.item(), (time.time() - t0) / step)
        if time.time() - t0 >= next_eval:
            next_eval += args.eval_every_min * 60
            history.append({"step": step, "val_psnr_db": round(psnr_db(dec, c_val, chips, val_idx, mean), 3)})
            log.info("[step %d] val PSNR %.2f dB", step, history[-1]["val_psnr_db"])
            save_model(model, Path(args.out).with_suffix(".partial.pt"))
    after = psnr_db(dec, c_val, chips, val_idx, mean)
    log.info("val PSNR after %.2f dB (%d decoder-only steps)", after, step)
    dec.eval()
    prov = dict(model.spec.get("provenance", {}))
    prov["decoder_phase"] = {
        "steps": step, "batch_size": args.batch, "optimizer": f"Adam {args.lr:g}, warm-up + cosine",
        "fresh_decoder": args.decoder_channels or None, "views": "4 (aligned/jittered chip, each mirrored)",
        "val_psnr_db_before": round(before, 2), "val_psnr_db_after": round(after, 2), "history": history,
        "script": "training/dlib_affine/train_decoder.py"}
    model.spec["provenance"] = prov
    sha = save_model(model, args.out)
    Path(args.out).with_suffix(".partial.pt").unlink(missing_ok=True)
    log.info("saved %s sha256 %s", args.out, sha)
    return 0


if __name__ == "__main__":
    sys.exit(main())
