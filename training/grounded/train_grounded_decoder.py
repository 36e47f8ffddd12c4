"""Train a grounded decoder (per-channel spatial mixing before the transposed convolutions) so
each channel's Algorithm-1 residual sits where the channel reads the face.

Decoder only; the backbone of the model stays frozen (embeddings, scores and threshold unchanged). Loss per step:
reconstruction MSE + λ·(1 − Pearson(r_i, g_i)), g_i = blurred |∂C_i,max/∂x| (colour-summed, σ 4 px, sum 1)
and r_i = the residual of zeroing C[i]'s first-index maximum, decoded, colour-summed, blurred and normalised alike.
Batch-norm statistics stay frozen (the decoder runs in eval mode). See training/grounded/README.md.

    nohup nice -n 19 env OMP_NUM_THREADS=1 .venv/bin/python training/grounded/train_grounded_decoder.py \\
        --run-dir ~/.cache/xfr-runs/grounded-l002 --lam 0.02 --per-id-train 20 \\
        >> ~/.cache/xfr-runs/grounded-l002/train.log 2>&1 &
    .venv/bin/python training/grounded/train_grounded_decoder.py --run-dir ~/.cache/xfr-runs/grounded-l002 \\
        --export CANDIDATE.pt
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as Fn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from xfr_desktop.core.decoder import build_decoder  # noqa: E402
from xfr_desktop.core.fileio import atomic_write  # noqa: E402
from xfr_desktop.core.model import JointModel, load_model, save_model  # noqa: E402
from xfr_desktop.core.training.datasets import FaceChipLoader  # noqa: E402
from xfr_desktop.core.training.losses import reconstruction_loss  # noqa: E402

log = logging.getLogger("grounded")
ROOT = Path(__file__).resolve().parents[2]
RUNS = Path.home() / ".cache" / "xfr-runs"
SIGMA = 4.0


# --- data ------------------------------------------------------------------------------------------------------
def split_files(celeba: Path, heldout: int, per_id_heldout: int, per_id_train: int, seed: int):
    """(train paths, held-out paths): held-out chips come from identities that training never sees."""
    rng = np.random.default_rng(seed)
    ids = sorted(p.name for p in celeba.iterdir() if p.is_dir())
    rng.shuffle(ids)
    train, held = [], []
    for ident in ids:
        files = sorted(str(f) for f in (celeba / ident).glob("*.jpg"))
        if len(held) < heldout:
            held += files[:min(per_id_heldout, heldout - len(held))]
        else:
            train += files[:per_id_train]
    return train, held


def gaussian_blur(maps: torch.Tensor, sigma: float = SIGMA) -> torch.Tensor:
    """(n,H,W) -> the same blurred (zero padding, separable kernel of radius 3σ)."""
    r = int(3 * sigma)
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=maps.dtype) / sigma) ** 2)
    k = (k / k.sum()).to(maps.device)
    x = Fn.conv2d(maps[:, None], k.view(1, 1, 1, -1), padding=(0, r))
    return Fn.conv2d(x, k.view(1, 1, -1, 1), padding=(r, 0))[:, 0]


def blur_normalise(maps: torch.Tensor) -> torch.Tensor:
    b = gaussian_blur(maps)
    return b / (b.sum((1, 2), keepdim=True) + 1e-12)


def gradient_targets(model, x: torch.Tensor, chans: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """C (n,c,h,w) and g (n,k,H,W): blurred, normalised colour-summed |∂C[n,chans[n,j]].max / ∂x[n]|."""
    x = x.clone().requires_grad_(True)
    C = model.backbone(x)
    g = []
    for j in range(chans.shape[1]):
        picked = C[torch.arange(len(C)), chans[:, j]].flatten(1).amax(1).sum()   # chips are independent (eval)
        (grad,) = torch.autograd.grad(picked, x, retain_graph=j + 1 < chans.shape[1])
        g.append(blur_normalise(grad.abs().sum(1)))
    return C.detach(), torch.stack(g, 1)


def pick_channels(C: torch.Tensor, k: int, rng) -> torch.Tensor:
    """k random channels with max > 0 per chip (fewer positive channels: repeats)."""
    pos = (C.flatten(2).amax(2) > 0).numpy()
    return torch.tensor(np.stack([rng.choice(np.flatnonzero(p) if p.any() else np.arange(len(p)), k,
                                             replace=p.sum() < k) for p in pos]))


def build_cache(model, files: list[str], folder: Path, k: int, seed: int) -> dict:
    """Aligned chips, C, channels and targets of ``files``, in resumable shards of 64 chips (aligned PNGs are
    cached beside ``folder``'s parent by the product's loader)."""
    folder.mkdir(parents=True, exist_ok=True)
    loader = FaceChipLoader(model.spec, aligned=False, cache_dir=folder.parent.parent / "align")
    for s in range(0, len(files), 64):
        shard = folder / f"shard{s // 64:04d}.pt"
        if shard.is_file():
            continue
        t0 = time.time()
        chips = [loader(f) for f in files[s:s + 64]]
        chips = np.stack([c for c in chips if c is not None])
        x = model.preprocess(chips)
        with torch.no_grad():
            C = model.backbone(x)
        chans = pick_channels(C, k, np.random.default_rng(seed + s))
        C, g = gradient_targets(model, x, chans)
        part = {"chips": torch.from_numpy(chips), "C": C, "chans": chans, "g": g.half() * g.shape[-2] * g.shape[-1]}
        atomic_write(shard, lambda f: torch.save(part, f))
        log.info("cache %s: %d chips in %.0f s", shard, len(chips), time.time() - t0)
    parts = [torch.load(p, weights_only=True) for p in sorted(folder.glob("shard*.pt"))]
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


# --- the decoder -------------------------------------------------------------------------------------------------
def grounded_decoder(model):
    """The model's decoder with a SpatialMix (identity) in front: (spec, module) reconstructing exactly as before."""
    spec = copy.deepcopy(model.spec["decoder"])
    with torch.no_grad():
        h, w = model.backbone(torch.zeros(1, 3, *model.input_size)).shape[2:]
    spec["spatial_mix"] = {"channels": int(spec["layers"][0]["in"]), "size": [int(h), int(w)]}
    dec = build_decoder(spec)
    old = model.decoder.state_dict()
    shifted = {f"{int(key.split('.', 1)[0]) + 1}.{key.split('.', 1)[1]}": v for key, v in old.items()}
    missing, unexpected = dec.load_state_dict(shifted, strict=False)
    assert missing == ["0.weight"] and not unexpected, (missing, unexpected)
    return spec, dec


def residual_maps(dec, C: torch.Tensor, chans: torch.Tensor):
    """(R0, r): R0 = dec(C); r (n,k,H,W) = blurred, normalised |R0 − dec(C with C[i]'s first argmax zeroed)|."""
    n, k = chans.shape
    R0 = dec(C)
    Ck = C[torch.arange(n)[:, None], chans]                                    # (n,k,h,w)
    onehot = Fn.one_hot(Ck.flatten(2).argmax(2), Ck[0, 0].numel()).view_as(Ck).to(C.dtype)
    Cm = C[:, None].repeat(1, k, 1, 1, 1)
    sel = Fn.one_hot(chans, C.shape[1]).to(C.dtype)[:, :, :, None, None]      # (n,k,c,1,1)
    Cm = Cm - sel * (Ck * onehot)[:, :, None]
    Rm = dec(Cm.flatten(0, 1))
    diff = (Rm - R0.repeat_interleave(k, 0)).abs().sum(1)
    return R0, blur_normalise(diff).view(n, k, *diff.shape[1:])


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.flatten(-2), b.flatten(-2)
    a, b = a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True)
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + 1e-12)


def evaluate(model, dec, held: dict) -> dict:
    corr, mse = [], []
    with torch.no_grad():
        for s in range(0, len(held["C"]), 32):
            C, chans = held["C"][s:s + 32], held["chans"][s:s + 32]
            R0, r = residual_maps(dec, C, chans)
            corr.append(pearson(r, held["g"][s:s + 32].float()).flatten())
            target = model.preprocess(held["chips"][s:s + 32].numpy())
            mse.append(((R0.clamp(-1, 1) - target) * 256 / 255).pow(2).mean((1, 2, 3)))
    corr = torch.cat(corr)
    return {"corr_mean": round(float(corr.mean()), 4), "share_gt_0.5": round(float((corr > 0.5).float().mean()), 4),
            "psnr_db": round(float((10 * torch.log10(1 / torch.cat(mse))).mean()), 3), "maps": len(corr)}


# --- the run -----------------------------------------------------------------------------------------------------
def train_step(model, dec, opt, train: dict, args, rng) -> tuple[float, float]:
    pick = torch.from_numpy(rng.choice(len(train["C"]), args.batch, replace=False))
    cols = torch.from_numpy(np.stack([rng.choice(train["chans"].shape[1], args.channels_per_step, replace=False)
                                      for _ in range(args.batch)]))
    chans = train["chans"][pick].gather(1, cols)
    g = train["g"][pick].float()[torch.arange(args.batch)[:, None], cols]
    R0, r = residual_maps(dec, train["C"][pick], chans)
    rec = reconstruction_loss(R0, model.preprocess(train["chips"][pick].numpy()))
    corr = pearson(r, g).mean()
    loss = rec + args.lam * (1 - corr)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(rec.detach()), float(corr.detach())


def save_checkpoint(path: Path, dec, opt, state: dict) -> None:
    payload = {"decoder": dec.state_dict(), "opt": opt.state_dict(), **state}
    atomic_write(path, lambda f: torch.save(payload, f))


def export(model, spec, dec, ckpt: dict, out: str) -> str:
    """A JointModel file: the backbone unchanged, the grounded decoder (loadable by ``xfr explain --model``)."""
    new = JointModel({**model.spec, "decoder": spec}, backbone=model.backbone, decoder=dec)
    prov = dict(new.spec.get("provenance", {}))
    prov["grounded_decoder"] = {"script": "training/grounded/train_grounded_decoder.py", "step": ckpt["step"],
                                "lam": ckpt["args"]["lam"], "last_eval": ckpt.get("last_eval"),
                                "base_model_sha256": model.sha256}
    new.spec["provenance"] = prov
    return save_model(new.eval(), out)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "xfr-dlib-affine-joint.pt"))
    ap.add_argument("--celeba", default=str(ROOT.parent / "shared" / "data" / "celeba-subset"))
    ap.add_argument("--run-dir", default=str(RUNS / "grounded-l002"))
    ap.add_argument("--cache", default=str(RUNS / "cache"))
    ap.add_argument("--lam", type=float, default=0.02, help="weight of 1 − Pearson (0: the fine-tune control)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--channels-per-chip", type=int, default=4)
    ap.add_argument("--channels-per-step", type=int, default=2)
    ap.add_argument("--heldout", type=int, default=300)
    ap.add_argument("--per-id-train", type=int, default=20, help="training chips per identity")
    ap.add_argument("--minutes", type=float, default=0, help="stop after this many minutes of this process (0: never)")
    ap.add_argument("--checkpoint-min", type=float, default=3)
    ap.add_argument("--eval-min", type=float, default=10)
    ap.add_argument("--seed", type=int, default=20261205)
    ap.add_argument("--export", metavar="MODEL.pt", help="write the latest checkpoint as a joint model file and exit")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.manual_seed(args.seed)
    run = Path(args.run_dir).expanduser()
    run.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model, device="cpu")
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    spec, dec = grounded_decoder(model)
    dec.eval()   # frozen batch-norm statistics: the residual passes must not move them
    ckpt_path = run / "checkpoint.pt"
    ckpt = torch.load(ckpt_path, weights_only=False) if ckpt_path.is_file() else None
    if ckpt is not None:
        if not args.export and ckpt["args"]["lam"] != args.lam:   # one run directory, one λ
            raise SystemExit(f"{run} holds a run with --lam {ckpt['args']['lam']}; use another --run-dir")
        dec.load_state_dict(ckpt["decoder"])
    if args.export:
        if ckpt is None:
            raise SystemExit(f"no checkpoint in {run}")
        log.info("exported %s sha256 %s", args.export, export(model, spec, dec, ckpt, args.export))
        return 0
    key = hashlib.sha256(json.dumps([model.sha256, args.heldout, args.per_id_train, args.channels_per_chip,
                                     args.seed]).encode()).hexdigest()[:12]
    train_files, held_files = split_files(Path(args.celeba), args.heldout, 5, args.per_id_train, args.seed)
    cache = Path(args.cache).expanduser() / f"grounded-{key}"
    held = build_cache(model, held_files, cache / "heldout", args.channels_per_chip, args.seed)
    train = build_cache(model, train_files, cache / "train", args.channels_per_chip, args.seed + 1)
    log.info("%d training chips, %d held-out chips", len(train["C"]), len(held["C"]))
    run_loop(model, spec, dec, ckpt, train, held, args, run)
    return 0


def run_loop(model, spec, dec, ckpt, train, held, args, run: Path) -> None:
    opt = torch.optim.Adam(dec.parameters(), lr=args.lr)
    step, trained_s = 0, 0.0
    rng = np.random.default_rng(args.seed)
    if ckpt is not None:
        opt.load_state_dict(ckpt["opt"])
        step, trained_s, rng.bit_generator.state = ckpt["step"], ckpt["trained_s"], ckpt["rng"]
        log.info("resumed at step %d (%.0f min trained)", step, trained_s / 60)
    else:
        _log_eval(run, {"step": 0, "trained_min": 0.0, **evaluate(model, dec, held)})
    t0, last_ckpt, last_eval, recent = time.time(), time.time(), time.time(), []
    last = ckpt.get("last_eval") if ckpt else None
    while not args.minutes or time.time() - t0 < args.minutes * 60:
        recent.append(train_step(model, dec, opt, train, args, rng))
        step += 1
        now = time.time()
        if now - last_eval >= args.eval_min * 60:
            rec, corr = np.mean(recent, 0)
            last = {"step": step, "trained_min": round((trained_s + now - t0) / 60, 1), "train_mse": round(rec, 5),
                    "train_corr": round(corr, 4), **evaluate(model, dec, held)}
            _log_eval(run, last)
            recent, last_eval = [], time.time()
        if now - last_ckpt >= args.checkpoint_min * 60:
            state = {"step": step, "trained_s": trained_s + now - t0, "rng": rng.bit_generator.state,
                     "args": vars(args), "spec": spec, "last_eval": last}
            save_checkpoint(run / "checkpoint.pt", dec, opt, state)
            last_ckpt = time.time()
            log.info("checkpoint at step %d", step)


def _log_eval(run: Path, row: dict) -> None:
    row = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **row}
    with open(run / "eval.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    log.info("eval %s", json.dumps(row))


if __name__ == "__main__":
    sys.exit(main())
