"""The explanation-ready dlib joint model: C = per-channel affine of the last dense stage (no channel mixing).

Why (../shared/notes/explanation-model.md): the bundled model's 1x1 convolution mixes the 256 dense
channels into 128 channels that all peak on one cell of the 8x8 map, so Algorithm 1's residuals coincide and the
maps do not depend on the partner. Here C' = gamma * x + beta with x = output of dense block 13 (256x8x8), i.e. a
folded batch norm as the paper's BN'd conv map, F = global max pool of C' (256-d), cosine score.

Initialisation: dlib's weights; gamma = 1/sigma, beta = -mu/sigma with mu, sigma the mean and standard deviation of
each channel's spatial maximum over training chips (so F is centred: the common direction of the embedding goes).
Step (on the trunk features cached by ../dlib_joint/prepare.py; the trunk through the 128 stage stays frozen):
  L_id     = w_struct * MSE(pairwise cosines of F, pairwise cosines of the *centred* dlib descriptors)
  L_spread = w_spread * (log 64 - entropy of the channel-averaged soft argmax of C' over the 64 cells)
             (keeps the channels' maxima spread over the face: fitting the teacher alone pulls them together)
  L_rec    = MSE(decoder(C'), chip) in the input normalization;   L = L_id + L_spread + lambda * L_rec.
Batches hold pairs of images of one identity (two views each) so the structure term sees mates.
Adam for the dense stages (small rate: the head scales their gradients by 1/sigma) and for the decoder, one
warm-up + cosine schedule. The decision threshold comes from pairs of the 30 held-out CelebA identities.

    OMP_NUM_THREADS=2 .venv/bin/python training/dlib_affine/train.py --cache training/dlib_joint/cache \\
        --out models/xfr-dlib-affine-joint.pt
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from xfr_desktop.core.dlib_import import (  # noqa: E402
    DLIB_MEAN_RGB, dlib_decoder_spec, dlib_joint_spec, joint_model_from_dlib, normalize_chips,
)
from xfr_desktop.core.evaluation.explanation_quality import argmax_positions, argmax_statistics  # noqa: E402
from xfr_desktop.core.model import JointModel, file_sha256, load_model, save_model  # noqa: E402
from xfr_desktop.core.training.losses import reconstruction_loss  # noqa: E402

log = logging.getLogger("train")
HERE = Path(__file__).resolve().parent


def _joint_recipe():
    """The dlib_joint recipe's validation helpers (threshold search, held-out pairs), shared, not copied."""
    spec = importlib.util.spec_from_file_location("dlib_joint_train", HERE.parent / "dlib_joint" / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def provenance(dat_path: str, **extra) -> dict:
    """The model file's provenance (spec["provenance"]), plus the run's own entries."""
    return {
        "backbone": "dlib_face_recognition_resnet_model_v1.dat (Davis E. King, dlib; CC0 / public domain), "
                    "imported with xfr_desktop.core.dlib_import",
        "source_file_sha256": file_sha256(dat_path),
        "modification": "last two downsampling stages dense (stride 1, dilation 2/4); fc removed; C = per-channel "
                        "affine (folded batch norm) of the last dense stage (256x8x8); F = global max pool of C",
        "training": "training/dlib_affine (train.py, config.json, train_run1.log, train.log); cache from "
                    "training/dlib_joint/prepare.py",
        "training_data": "CelebA subset (295 identities, non-commercial research licence) + LFW people in no "
                         "pair of pairs.txt (1,468 people)",
        "threshold_source": "balanced accuracy on pairs of 30 held-out CelebA identities (no LFW)",
        **extra,
    }


def structure_loss(student: torch.Tensor, teacher_centred: torch.Tensor) -> torch.Tensor:
    s = F.normalize(student.float(), dim=1)
    t = F.normalize(teacher_centred.float(), dim=1)
    return F.mse_loss(s @ s.t(), t @ t.t())


def rescaled_structure_loss(student: torch.Tensor, teacher_raw: torch.Tensor, c: float) -> torch.Tensor:
    """MSE(pairwise cosines of F, (pairwise cosines of the *raw* descriptors - c) / (1 - c)), c = their mean cosine
    over training images. The target ranks pairs as dlib's raw descriptor does (LFW 98.48 % under this project's
    alignment, where the centred descriptor scores 97.63 %: dlib's metric is Euclidean and centring before a cosine
    changes the ranking) while different people still average a cosine near 0 (pair-specific channel weights).
    Its nearest Gram matrix of unit vectors scores 98.25 % on LFW (`teacher_lfw.py`)."""
    s = F.normalize(student.float(), dim=1)
    t = F.normalize(teacher_raw.float(), dim=1)
    return F.mse_loss(s @ s.t(), (t @ t.t() - c) / (1 - c))


def mean_raw_cosine(teacher: torch.Tensor, idx: np.ndarray, n: int = 4000, seed: int = 0) -> float:
    """Mean cosine between the raw descriptors of ``n`` random training views (distinct pairs)."""
    views = teacher[idx].reshape(-1, teacher.shape[-1])
    pick = torch.from_numpy(np.random.default_rng(seed).choice(len(views), min(n, len(views)), replace=False))
    t = F.normalize(views[pick].float(), dim=1)
    g = t @ t.t()
    return float((g.sum() - g.diagonal().sum()) / (len(t) * (len(t) - 1)))


def cell_target(h: int, w: int, border_weight: float) -> torch.Tensor:
    """Where the channels' maxima should go: uniform over the inner cells, ``border_weight`` as much on the border
    cells (channels peaking there read the chip edge and background); 1.0 = uniform over all cells."""
    q = torch.full((h, w), float(border_weight))
    q[1:-1, 1:-1] = 1.0
    return (q / q.sum()).reshape(-1)


def spread_loss(C: torch.Tensor, beta: float, target: torch.Tensor) -> torch.Tensor:
    """KL(p || target), p = mean over channels of softmax(beta * C_i) over cells, averaged over the batch. With a
    uniform target this is log(cells) - entropy(p)."""
    n, c = C.shape[:2]
    p = torch.softmax(beta * C.reshape(n, c, -1), dim=-1).mean(1)  # (n, cells)
    return (p * (torch.log(p + 1e-12) - torch.log(target))).sum(1).mean()


def locality_loss(bb, feats: torch.Tensor, n_img: int, n_ch: int, sigma: float, gen: torch.Generator) -> torch.Tensor:
    """Mean share of |dF_i/d trunk| (summed over trunk channels) lying away from channel i's argmax cell, weighted
    by 1 - exp(-d^2 / 2 sigma^2) (d in cells), for ``n_ch`` random channels of the first ``n_img`` images: pulls
    each channel's maximum towards depending on the trunk cells around it (the bundled model's channels are not local)."""
    t = feats[:n_img].detach().repeat_interleave(n_ch, 0).requires_grad_(True)
    C = bb.top(t)
    rows = torch.arange(len(t))
    ch = torch.randint(0, C.shape[1], (len(t),), generator=gen)
    flat = C[rows, ch].flatten(1)
    F_sel, pos = flat.max(1)
    (g,) = torch.autograd.grad(F_sel.sum(), t, create_graph=True)
    m = g.abs().sum(1).flatten(1)
    m = m / (m.sum(1, keepdim=True) + 1e-8)
    h, w = C.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    cells = torch.stack([yy.flatten(), xx.flatten()], 1).float()                  # (h*w, 2)
    at = torch.stack([pos // w, pos % w], 1).float()                                # (R, 2)
    d2 = ((cells[None] - at[:, None]) ** 2).sum(-1)
    return (m * (1 - torch.exp(-d2 / (2 * sigma ** 2)))).sum(1).mean()


def argmax_stats(C: torch.Tensor) -> tuple[float, float]:
    """Mean modal share and mean number of cells used by the channels' maxima (``xfr evaluate explanations``)."""
    stats = [argmax_statistics(argmax_positions(c)) for c in C]
    return float(np.mean([s["modal_share"] for s in stats])), float(np.mean([s["cells_used"] for s in stats]))


def identity_batches(items, train_idx, bs_pairs, rng):
    """Yield arrays of 2*bs_pairs image indices: consecutive entries are two images of one identity (the same
    image twice when the identity has one), in random order over one epoch of anchors."""
    by_id: dict[str, list[int]] = {}
    for i in train_idx:
        by_id.setdefault(items[i]["identity"], []).append(int(i))
    anchors = rng.permutation(train_idx)
    for s in range(0, len(anchors) - bs_pairs + 1, bs_pairs):
        out = []
        for a in anchors[s:s + bs_pairs]:
            mates = by_id[items[a]["identity"]]
            b = a if len(mates) == 1 else mates[rng.integers(len(mates))]
            out += [int(a), int(b)]
        yield np.asarray(out)


def init_head_from_stats(bb, trunk, idx):
    """gamma = 1/sigma, beta = -mu/sigma of each channel's spatial maximum at the dense stage's output."""
    with torch.inference_mode():
        maxima = []
        for s in range(0, len(idx), 128):
            t = trunk[idx[s:s + 128], 0].float()
            for blk in bb.blocks[10:]:
                t = blk(t)
            maxima.append(t.amax((2, 3)))
        m = torch.cat(maxima)
    mu, sigma = m.mean(0), m.std(0).clamp_min(1e-3)
    bb.head.weight.data = 1.0 / sigma
    bb.head.bias.data = -mu / sigma
    return mu, sigma


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=str(HERE.parent / "dlib_joint" / "cache"))
    ap.add_argument("--config", default=str(HERE / "config.json"))
    ap.add_argument("--out", default=str(HERE.parents[1] / "models" / "xfr-dlib-affine-joint.pt"))
    ap.add_argument("--max-steps", type=int, default=0, help="stop after N steps (probes)")
    ap.add_argument("--init", help="continue from this model file (a second schedule) instead of dlib's weights")
    ap.add_argument("--set", action="append", default=[], help="override a config key: key=json")
    ap.add_argument("--time-budget-min", type=float, default=0,
                    help="shorten the schedule so training ends within this many minutes (measured after 10 steps)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = json.loads(Path(args.config).read_text())
    for kv in args.set:
        k, _, v = kv.partition("=")
        try:
            cfg[k] = json.loads(v)
        except json.JSONDecodeError:
            ap.error(f"--set {kv}: expected key=JSON value, e.g. spread_weight=0.25")
    log.info("config %s", json.dumps(cfg))
    recipe = _joint_recipe()
    cache = Path(args.cache)
    index = json.loads((cache / "index.json").read_text())
    items = index["items"]
    torch.manual_seed(cfg["seed"])
    rng = np.random.default_rng(cfg["seed"] + 3)
    gen = torch.Generator().manual_seed(cfg["seed"] + 5)
    ok = np.array([it["ok"] for it in items])
    train_idx = np.array([i for i, it in enumerate(items) if ok[i] and it["split"] == "train"])
    val_idx = np.array([i for i, it in enumerate(items) if ok[i] and it["split"] == "val"])
    trunk = torch.from_numpy(np.load(cache / "trunk.npy"))  # (N,4,128,8,8) float16
    teacher = torch.from_numpy(np.load(cache / "teacher.npy"))  # (N,4,128)
    t_mean = teacher[train_idx].float().mean((0, 1))
    rescaled = cfg.get("structure_target", "centred") == "rescaled"
    c_raw = mean_raw_cosine(teacher, train_idx) if rescaled else None
    if rescaled:
        log.info("structure target: raw teacher cosines rescaled by their mean c = %.4f", c_raw)
    chips = np.load(cache / "chips.npy", mmap_mode="r")  # (N,2,S,S,3) uint8
    log.info("train %d images, val %d images (held-out identities)", len(train_idx), len(val_idx))

    import face_recognition_models as frm

    dat = frm.face_recognition_model_location()
    spec = dlib_joint_spec(template=index["template"]["template"], name="dlib-resnet-affine-joint",
                           channels=256, head="affine", decoder=dlib_decoder_spec(tuple(cfg["decoder_channels"])),
                           explain={"nonpositive_channels": "include"}, dense=cfg.get("dense", "dilated"))
    if args.init:
        model = load_model(args.init, device="cpu").train()
        previous = model.spec.get("provenance", {})
        if model.spec.get("dense", "dilated") != spec["dense"]:  # same weights, another layout: new head stats
            relaid = JointModel({**model.spec, "dense": spec["dense"]})
            relaid.load_state_dict(model.state_dict())
            model = relaid.train()
            init_head_from_stats(model.backbone, trunk, train_idx[rng.permutation(len(train_idx))[:2400]])
        bb, dec = model.backbone, model.decoder
    else:
        previous = {}
        ref = joint_model_from_dlib(dat, dlib_joint_spec())  # dlib's weights in the dense layout
        model = JointModel(spec)
        own = {k: v for k, v in ref.backbone.state_dict().items() if not k.startswith("head.")}
        model.backbone.load_state_dict(own, strict=False)
        bb, dec = model.backbone, model.decoder
        init_head_from_stats(bb, trunk, train_idx[rng.permutation(len(train_idx))[:2400]])
    for p in bb.parameters():
        p.requires_grad_(False)
    rec_params = [p for m in (*bb.blocks[10:], bb.head) for p in m.parameters()]
    for p in rec_params:
        p.requires_grad_(True)
    opt_rec = torch.optim.Adam(rec_params, lr=cfg["rec_lr"])
    opt_dec = torch.optim.Adam(dec.parameters(), lr=cfg["dec_lr"])
    bs_pairs = cfg["batch_pairs"]
    sched = {"total": int(cfg["steps"]) if not args.max_steps else min(int(cfg["steps"]), args.max_steps)}
    sched["warmup"] = min(100, sched["total"] // 10)

    def lr_factor(step):
        total, warmup = sched["total"], sched["warmup"]
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    mean = torch.tensor(DLIB_MEAN_RGB).view(1, 3, 1, 1)
    target_cells = cell_target(8, 8, cfg.get("spread_border_weight", 1.0))
    vpairs, vsame = recipe.val_pairs([items[i]["identity"] for i in val_idx], cfg["seed"])

    def evaluate(tag):
        model.eval()
        with torch.inference_mode():
            embs, psnr, Cs = [], [], []
            for s in range(0, len(val_idx), 128):
                C = bb.top(trunk[val_idx[s:s + 128], 0].float())
                embs.append(C.amax((2, 3)))
                Cs.append(C)
                tgt = normalize_chips(np.asarray(chips[val_idx[s:s + 128], 0]))
                mse = ((dec(C).clamp(-1, 1) - tgt) * 256 / 255).pow(2).mean((1, 2, 3))
                psnr.append(10 * torch.log10(1.0 / mse))
            emb = torch.cat(embs).numpy()
            modal, cells = argmax_stats(torch.cat(Cs)[:200])
        thr, acc = recipe.best_threshold(recipe.cosine_scores(emb, vpairs), vsame)
        tc = (teacher[val_idx, 0] - t_mean).numpy()
        tthr, tacc = recipe.best_threshold(recipe.cosine_scores(tc, vpairs), vsame)
        _, racc = recipe.best_threshold(recipe.cosine_scores(teacher[val_idx, 0].numpy(), vpairs), vsame)
        out = {"tag": tag, "val_balanced_acc": acc, "threshold": thr, "teacher_centred_val_balanced_acc": tacc,
               "teacher_raw_val_balanced_acc": racc,
               "val_psnr_db": float(torch.cat(psnr).mean()), "argmax_modal_share": modal,
               "argmax_cells_used": cells}
        log.info("[%s] val: balanced acc %.4f at cosine %.4f (centred teacher %.4f, raw %.4f) | PSNR %.2f dB | "
                 "modal share %.3f, cells %.1f", tag, acc, thr, tacc, racc, out["val_psnr_db"], modal, cells)
        model.train()
        bb.eval()
        return out

    history = [evaluate("init")]
    model.train()
    bb.eval()
    step, t0 = 0, time.time()
    log.info("%d steps of %d pairs x 2 views, warm-up %d", sched["total"], bs_pairs, sched["warmup"])
    rec_rows = slice(0, None, max(1, 2 * bs_pairs // cfg["rec_samples"]))  # the decoder's share of the batch
    while step < sched["total"]:
        for idx in identity_batches(items, train_idx, bs_pairs, rng):
            if step >= sched["total"]:
                break
            view = torch.from_numpy(rng.integers(0, 4, len(idx)))
            feats = trunk[idx, view].float()
            tgt_desc = teacher[idx, view].float() - t_mean
            imgs = np.asarray(chips[idx])[np.arange(len(idx)), view.numpy() // 2]
            flip = (view.numpy() % 2) == 1
            imgs[flip] = imgs[flip][:, :, ::-1]
            target = (torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float() - mean) / 256.0
            for opt, base in ((opt_rec, cfg["rec_lr"]), (opt_dec, cfg["dec_lr"])):
                for g in opt.param_groups:
                    g["lr"] = base * lr_factor(step)
            C = bb.top(feats)
            if rescaled:
                l_id = cfg["structure_weight"] * rescaled_structure_loss(C.amax((2, 3)), teacher[idx, view], c_raw)
            else:
                l_id = cfg["structure_weight"] * structure_loss(C.amax((2, 3)), tgt_desc)
            l_sp = cfg["spread_weight"] * spread_loss(C, cfg["spread_beta"], target_cells)
            l_rec = reconstruction_loss(dec(C[rec_rows]), target[rec_rows])
            loss = l_id + l_sp + cfg["lambda_rec"] * l_rec
            l_loc = torch.zeros(())
            if cfg.get("locality_weight", 0):
                l_loc = cfg["locality_weight"] * locality_loss(
                    bb, feats, cfg.get("locality_images", 8), cfg.get("locality_channels", 16),
                    cfg.get("locality_sigma", 1.0), gen)
                loss = loss + l_loc
            opt_rec.zero_grad(set_to_none=True)
            opt_dec.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(rec_params, cfg["clip_norm"])
            opt_rec.step()
            opt_dec.step()
            step += 1
            if step == 10 and args.time_budget_min:
                fit = int(args.time_budget_min * 60 / ((time.time() - t0) / step))
                if fit < sched["total"]:
                    sched["total"] = max(fit, 20)
                    sched["warmup"] = min(100, sched["total"] // 10)
                    log.info("time budget %.0f min: schedule shortened to %d steps", args.time_budget_min,
                             sched["total"])
            total = sched["total"]
            if step % 20 == 0 or step == 1:
                el = time.time() - t0
                log.info("step %d/%d  L_id %.4f  L_spread %.4f  L_rec %.5f  L_loc %.4f  %.2f s/step  eta %.0f min",
                         step, total, l_id.item(), l_sp.item(), l_rec.item(), l_loc.item(), el / step,
                         el / step * (total - step) / 60)
            if step % cfg["eval_every"] == 0 or step == sched["total"]:
                history.append(evaluate(f"step {step}"))
                model.spec["threshold"] = round(history[-1]["threshold"], 4)
                save_model(model, Path(args.out).with_suffix(".partial.pt"))
    final = history[-1]
    model.spec["threshold"] = round(final["threshold"], 4)
    model.spec["provenance"] = provenance(
        dat, steps=step, batch=f"{bs_pairs} identity pairs x 2 views", history=history, config=cfg)
    if previous:
        model.spec["provenance"]["continued_from"] = {k: previous.get(k) for k in ("steps", "config", "history")}
    sha = save_model(model, args.out)
    Path(args.out).with_suffix(".partial.pt").unlink(missing_ok=True)
    log.info("saved %s sha256 %s (threshold %.4f) in %.1f min", args.out, sha, model.spec["threshold"],
             (time.time() - t0) / 60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
