"""Step 2 of the dlib joint-model recipe: joint training L = L_id + lambda * L_rec on cached trunk features.

The trunk through the 128 stage is frozen (its outputs were cached by prepare.py for four views of every training
chip), so a step runs only the dense 256 stages, the 1x1 conv (C = 128x8x8) and the decoder:
  L_id  = distillation_loss(F, dlib descriptor of the same view)  (1 - cos + pairwise cosine-structure MSE),
          F = global max pool of C  (xfr_desktop.core.training.losses)
  L_rec = MSE(decoder(C), chip) in the model's input normalization.
Optimizers as in the paper: SGD (lr 0.02, momentum 0.9) for the recognition part, Adam (2e-4) for the decoder,
both on one warm-up + cosine schedule. The decision threshold is chosen on pairs of the 30 held-out CelebA
identities (training data; never LFW pairs).

    OMP_NUM_THREADS=2 .venv/bin/python training/dlib_joint/train.py --cache training/dlib_joint/cache \
        --out models/xfr-dlib-maxpool-joint.pt
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
from xfr_desktop.core.dlib_import import (  # noqa: E402
    DLIB_MEAN_RGB, dlib_joint_spec, joint_model_from_dlib, normalize_chips,
)
from xfr_desktop.core.model import file_sha256, save_model  # noqa: E402
from xfr_desktop.core.training.losses import distillation_loss, reconstruction_loss  # noqa: E402

log = logging.getLogger("train")
HERE = Path(__file__).resolve().parent


def best_threshold(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """Threshold maximizing balanced accuracy (mean of TPR and TNR) -> (threshold, balanced accuracy)."""
    order = np.sort(np.unique(scores))
    cands = np.concatenate([[order[0] - 1e-6], (order[:-1] + order[1:]) / 2, [order[-1] + 1e-6]])
    if len(cands) > 4000:
        cands = np.quantile(scores, np.linspace(0, 1, 4001))
    pos, neg = scores[same], scores[~same]
    best = (0.0, -1.0)
    for t in cands:
        acc = 0.5 * ((pos >= t).mean() + (neg < t).mean())
        if acc > best[1]:
            best = (float(t), float(acc))
    return best


def val_pairs(identities: list[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """All same-identity pairs and 5x as many random different-identity pairs (indices into the val list)."""
    ids = np.asarray(identities)
    pos = [(i, j) for i in range(len(ids)) for j in range(i + 1, len(ids)) if ids[i] == ids[j]]
    rng = np.random.default_rng(seed)
    neg = []
    while len(neg) < 5 * len(pos):
        i, j = rng.integers(0, len(ids), 2)
        if ids[i] != ids[j]:
            neg.append((int(i), int(j)))
    pairs = np.array(pos + neg, dtype=np.int64).reshape(-1, 2)
    same = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
    return pairs, same


def cosine_scores(emb: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    return (e[pairs[:, 0]] * e[pairs[:, 1]]).sum(1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=str(HERE / "cache"))
    ap.add_argument("--config", default=str(HERE / "config.json"))
    ap.add_argument("--out", default=str(HERE.parents[1] / "models" / "xfr-dlib-maxpool-joint.pt"))
    ap.add_argument("--epochs", type=float, default=None, help="override the config (fractions allowed)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after N steps (timing runs)")
    ap.add_argument("--time-budget-min", type=float, default=0,
                    help="shorten the schedule so training ends within this many minutes (measured after 10 steps)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = json.loads(Path(args.config).read_text())
    cache = Path(args.cache)
    index = json.loads((cache / "index.json").read_text())
    items = index["items"]
    torch.manual_seed(cfg["seed"])
    rng = np.random.default_rng(cfg["seed"] + 3)

    ok = np.array([it["ok"] for it in items])
    train_idx = np.array([i for i, it in enumerate(items) if ok[i] and it["split"] == "train"])
    val_idx = np.array([i for i, it in enumerate(items) if ok[i] and it["split"] == "val"])
    trunk = torch.from_numpy(np.load(cache / "trunk.npy"))  # (N,4,128,8,8) float16, in RAM
    teacher = torch.from_numpy(np.load(cache / "teacher.npy"))  # (N,4,128)
    chips = np.load(cache / "chips.npy", mmap_mode="r")  # (N,2,S,S,3) uint8
    log.info("train %d images, val %d images (held-out identities)", len(train_idx), len(val_idx))

    import face_recognition_models as frm

    dat = frm.face_recognition_model_location()
    spec = dlib_joint_spec(template=index["template"]["template"])
    spec["decoder"]["layers"] = [dict(l) for l in spec["decoder"]["layers"]]
    for layer, (a, b) in zip(spec["decoder"]["layers"], zip(cfg["decoder_channels"][:-1], cfg["decoder_channels"][1:])):
        layer["in"], layer["out"] = a, b
    model = joint_model_from_dlib(dat, spec)
    bb, dec = model.backbone, model.decoder
    for p in bb.parameters():
        p.requires_grad_(False)
    rec_params = [p for m in (*bb.blocks[10:], bb.head) for p in m.parameters()]
    for p in rec_params:
        p.requires_grad_(True)
    sgd = torch.optim.SGD(rec_params, lr=cfg["sgd"]["lr"], momentum=cfg["sgd"]["momentum"],
                          weight_decay=cfg["sgd"]["weight_decay"])
    adam = torch.optim.Adam(dec.parameters(), lr=cfg["adam"]["lr"])
    bs = cfg["batch_size"]
    epochs = args.epochs if args.epochs is not None else cfg["epochs"]
    steps_per_epoch = len(train_idx) // bs
    total = max(1, int(epochs * steps_per_epoch))
    if args.max_steps:
        total = min(total, args.max_steps)
    sched = {"total": total, "warmup": min(100, total // 10)}

    def lr_factor(step):
        warmup, total = sched["warmup"], sched["total"]
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    mean = torch.tensor(DLIB_MEAN_RGB).view(1, 3, 1, 1)
    vpairs, vsame = val_pairs([items[i]["identity"] for i in val_idx], cfg["seed"])

    def evaluate(tag):
        model.eval()
        with torch.inference_mode():
            feats = trunk[val_idx, 0].float()
            embs, psnr = [], []
            for s in range(0, len(val_idx), 128):
                C = bb.top(feats[s:s + 128])
                embs.append(C.amax((2, 3)))
                rec = dec(C)
                tgt = normalize_chips(np.asarray(chips[val_idx[s:s + 128], 0]))
                mse = ((rec.clamp(-1, 1) - tgt) * 256 / 255).pow(2).mean((1, 2, 3))  # in [0,1] pixel units
                psnr.append(10 * torch.log10(1.0 / mse))
            emb = torch.cat(embs).numpy()
        t = teacher[val_idx, 0].numpy()
        cos_t = float(np.mean((emb * t).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(t, axis=1)))
        if vsame.any():
            thr, acc = best_threshold(cosine_scores(emb, vpairs), vsame)
            tthr, tacc = best_threshold(cosine_scores(t, vpairs), vsame)
        else:  # tiny smoke-test caches have no same-identity pair
            thr, acc, tthr, tacc = 0.5, float("nan"), 0.5, float("nan")
        log.info("[%s] val: cos(F, teacher) %.4f | balanced acc %.4f at cosine %.4f (teacher %.4f at %.4f) | "
                 "PSNR %.2f dB", tag, cos_t, acc, thr, tacc, tthr, float(torch.cat(psnr).mean()))
        model.train()
        bb.eval()  # no batch norm in the backbone; keep it in eval for clarity
        return {"cos_teacher": cos_t, "val_balanced_acc": acc, "threshold": thr, "teacher_val_balanced_acc": tacc,
                "teacher_threshold": tthr, "val_psnr_db": float(torch.cat(psnr).mean())}

    history = [evaluate("init")]
    model.train()
    bb.eval()
    step, t0 = 0, time.time()
    log.info("%d steps of batch %d (%.2f epochs), warm-up %d", total, bs, total / steps_per_epoch, sched["warmup"])
    while step < sched["total"]:
        perm = rng.permutation(train_idx)
        for s in range(0, len(perm) - bs + 1, bs):
            if step >= sched["total"]:
                break
            idx = np.sort(perm[s:s + bs])
            view = torch.from_numpy(rng.integers(0, 4, len(idx)))
            feats = trunk[idx, view].float()
            tgt_desc = teacher[idx, view]
            imgs = np.asarray(chips[idx])[np.arange(len(idx)), view.numpy() // 2]
            flip = (view.numpy() % 2) == 1
            imgs[flip] = imgs[flip][:, :, ::-1]
            target = (torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float() - mean) / 256.0
            for opt, base in ((sgd, cfg["sgd"]["lr"]), (adam, cfg["adam"]["lr"])):
                for g in opt.param_groups:
                    g["lr"] = base * lr_factor(step)
            C = bb.top(feats)
            Fm = C.amax((2, 3))
            l_id = distillation_loss(Fm, tgt_desc, cfg["structure_weight"])
            l_rec = reconstruction_loss(dec(C), target)
            loss = l_id + cfg["lambda_rec"] * l_rec
            sgd.zero_grad(set_to_none=True)
            adam.zero_grad(set_to_none=True)
            loss.backward()
            sgd.step()
            adam.step()
            step += 1
            if step == 10 and args.time_budget_min:
                fit = int(args.time_budget_min * 60 / ((time.time() - t0) / step))
                if fit < sched["total"]:
                    sched["total"] = max(fit, 20)
                    sched["warmup"] = min(100, sched["total"] // 10)
                    log.info("time budget %.0f min: schedule shortened to %d steps (%.2f epochs)",
                             args.time_budget_min, sched["total"], sched["total"] / steps_per_epoch)
            total = sched["total"]
            if step % 20 == 0 or step == 1:
                el = time.time() - t0
                log.info("step %d/%d  L_id %.4f  L_rec %.5f  %.2f s/step  eta %.0f min", step, total,
                         l_id.item(), l_rec.item(), el / step, el / step * (total - step) / 60)
            if step % steps_per_epoch == 0 or step == total:
                history.append(evaluate(f"step {step}"))
                spec_now = dict(model.spec)
                spec_now["threshold"] = round(history[-1]["threshold"], 4)
                model.spec = spec_now
                save_model(model, Path(args.out).with_suffix(".partial.pt"))
    final = history[-1]
    model.spec["threshold"] = round(final["threshold"], 4)
    model.spec["provenance"] = {
        "backbone": "dlib_face_recognition_resnet_model_v1.dat (Davis E. King, dlib; CC0 / public domain), "
                    "imported with xfr_desktop.core.dlib_import",
        "source_file_sha256": file_sha256(dat),
        "modification": "last two downsampling stages dense (stride 1, dilation 2/4); fc -> 1x1 conv; "
                        "F = global max pool of C (128x8x8)",
        "training": "training/dlib_joint (prepare.py, train.py, config.json, train.log)",
        "training_data": "CelebA subset (295 identities, non-commercial research licence) + LFW people in no "
                         "pair of pairs.txt (1,468 people)",
        "threshold_source": "balanced accuracy on pairs of 30 held-out CelebA identities (no LFW)",
        "steps": step, "batch_size": bs, "history": history,
    }
    sha = save_model(model, args.out)
    Path(args.out).with_suffix(".partial.pt").unlink(missing_ok=True)
    log.info("saved %s sha256 %s (threshold %.4f) in %.1f min", args.out, sha, model.spec["threshold"],
             (time.time() - t0) / 60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
