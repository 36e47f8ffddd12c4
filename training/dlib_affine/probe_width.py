"""Is a pointwise model's recognition limited by its per-cell capacity? (issue 22, diagnostic only)

A pointwise model (each cell of C a function of the trunk at that cell) fits its training objective worse than the
dilated one (L_id over the last third of training: 0.29-0.30 against run 9's 0.18-0.20), so it underfits. Two
explanations: the per-cell stages (four residual blocks of width 256) are too small, or the trunk's 128 features at
a cell carry too little. This probe freezes the trunk, caches its features of the training views, of held-out CelebA
and of the LFW pair images, and trains the top alone from the model's own weights in several forms on the same
batches: unchanged, with wider hidden layers (new units start with zero output weights, so every form starts as the
same function) and with extra residual blocks (zero-initialised). Only the recognition loss of ``train_images.py``
is used (rescaled structure target, identity term, spread term); no decoder. If the wider tops fit and recognise
clearly better, width is a lever for the whole network; if not, the trunk's features are the limit. The controls
(``256@mix``, ``256@ctx``): the same per-cell top given a one-cell reach by a 3x3 convolution added to the trunk's
features, or the whole face by a linear map of their mean, zero at the start (so the same function). A layout name
(``dilated``) relays the model's own top instead, which does not start as the same function (its downsampling
block's shortcut averages four cells).

    OMP_NUM_THREADS=1 .venv/bin/python training/dlib_affine/probe_width.py ~/.cache/xfr-runs/gate-bp32/candidate.pt \\
        --chips ~/.cache/xfr-runs/lfw_chips.npy --forms 256 1024 256+2 256@mix 256@ctx --steps 1500
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
from xfr_desktop.core.backbones.dlib_resnet import DENSE_LAYOUTS, N_STRIDED_BLOCKS  # noqa: E402
from xfr_desktop.core.dlib_import import normalize_chips  # noqa: E402
from xfr_desktop.core.evaluation.verify import kfold_accuracy, roc  # noqa: E402
from xfr_desktop.core.fileio import file_sha256  # noqa: E402
from xfr_desktop.core.model import load_model  # noqa: E402

spec = importlib.util.spec_from_file_location("train_images", HERE / "train_images.py")
ti = importlib.util.module_from_spec(spec)   # data, losses, relayout: shared, not copied
spec.loader.exec_module(ti)
pooling = ti._load("probe_pooling", HERE / "probe_pooling.py")   # LFW pairs in its chips file's order


class CellTop(torch.nn.Module):
    """The pointwise top (blocks 10.. and the affine head) as per-cell linear maps with the affines folded in;
    ``width`` widens every block's hidden layer, ``extra`` appends residual blocks. Added units have zero output
    weights, so the function at initialisation is the model's."""

    def __init__(self, bb, width: int, extra: int, mix: str = "", seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        # the controls: a 3x3 convolution of the trunk's features (``mix``: a cell also reads its neighbours) or a
        # linear map of their mean over the cells (``ctx``: every cell reads the whole face) added to them, zero
        # at the start so that the function is the model's (local channels read their own cell alone)
        kernel = {"mix": 3, "ctx": 1}.get(mix)
        self.mode = mix
        self.mix = torch.nn.Conv2d(128, 128, kernel, padding=kernel // 2, bias=False) if kernel else None
        if self.mix is not None:
            self.mix.to(bb.head.weight.dtype)
            torch.nn.init.zeros_(self.mix.weight)
        self.w1, self.b1, self.w2, self.b2 = (torch.nn.ParameterList() for _ in range(4))
        out = None
        for blk in bb.blocks[N_STRIDED_BLOCKS:]:
            assert blk.dilation == -1, "probe_width needs a pointwise model"
            g1, c1 = blk.aff1.weight.detach(), blk.aff1.bias.detach()
            g2, c2 = blk.aff2.weight.detach(), blk.aff2.bias.detach()
            w1 = blk.conv1.weight.detach()[:, :, 1, 1] * g1[:, None]
            b1 = blk.conv1.bias.detach() * g1 + c1
            w2 = blk.conv2.weight.detach()[:, :, 1, 1] * g2[:, None]
            b2 = blk.conv2.bias.detach() * g2 + c2
            self._add(*self._widen(w1, b1, w2, b2, width, gen))
            out = w2.shape[0]
        dt = bb.head.weight.dtype
        for _ in range(extra):
            self._add(*self._widen(torch.zeros(0, out, dtype=dt), torch.zeros(0, dtype=dt),
                                   torch.zeros(out, 0, dtype=dt), torch.zeros(out, dtype=dt), width, gen))
        self.gamma = torch.nn.Parameter(bb.head.weight.detach().clone())
        self.beta = torch.nn.Parameter(bb.head.bias.detach().clone())

    @staticmethod
    def _widen(w1, b1, w2, b2, width, gen):
        extra = max(0, width - w1.shape[0])
        scale = w1.std() if w1.numel() else (2.0 / w2.shape[0]) ** 0.5
        new = torch.randn(extra, w1.shape[1] if w1.numel() else w2.shape[0], generator=gen).to(w2.dtype) * scale
        zeros = w2.new_zeros
        return (torch.cat([w1, new]), torch.cat([b1, zeros(extra)]), torch.cat([w2, zeros(w2.shape[0], extra)], 1), b2)

    def _add(self, w1, b1, w2, b2):
        for lst, t in zip((self.w1, self.b1, self.w2, self.b2), (w1, b1, w2, b2)):
            lst.append(torch.nn.Parameter(t.clone()))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        n, _, h, w = t.shape
        if self.mode == "mix":
            t = t + self.mix(t)
        elif self.mode == "ctx":
            t = t + self.mix(t.mean((2, 3), keepdim=True))
        x = t.permute(0, 2, 3, 1).reshape(n * h * w, -1)
        for w1, b1, w2, b2 in zip(self.w1, self.b1, self.w2, self.b2):
            z = F.linear(F.relu(F.linear(x, w1, b1)), w2, b2)
            x = F.relu(z + F.pad(x, (0, z.shape[1] - x.shape[1])))   # dlib's add_prev: zero-filled channels
        C = x * self.gamma + self.beta
        return C.reshape(n, h, w, -1).permute(0, 3, 1, 2)


def make_top(model, form: str) -> torch.nn.Module:
    """``WIDTH[+EXTRA][@mix|@ctx]``: the per-cell top (``@mix``: reading the neighbouring cells too, ``@ctx``: the
    whole face's mean features too); a layout name (``dilated``, ``near``): the model's own top relaid with its
    unused taps at zero (free to read other cells; not the same function at the start, see the module's note)."""
    if form in DENSE_LAYOUTS:
        top = ti.relayout(model, form).backbone
        return torch.nn.Sequential(*top.blocks[N_STRIDED_BLOCKS:], top.head)
    form, _, mix = form.partition("@")
    width, _, extra = form.partition("+")
    return CellTop(model.backbone, int(width), int(extra or 0), mix)


def trunk_features(bb, batches) -> torch.Tensor:
    out = []
    with torch.inference_mode():
        for x in batches:
            out.append(bb.trunk(x).half())
    return torch.cat(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--cache", default="~/.cache/xfr-runs/joint-cache")
    ap.add_argument("--chips", required=True, help="aligned chips of the LFW pair images (probe_pooling.py's)")
    ap.add_argument("--lfw", default=str(ROOT.parent / "shared" / "data" / "lfw"))
    ap.add_argument("--forms", nargs="+", default=["256", "1024", "256+2"],
                    help="WIDTH[+EXTRA_BLOCKS][@mix|@ctx] or a layout name (make_top)")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-pairs", type=int, default=32)
    ap.add_argument("--contrast", type=float, default=0.1)
    ap.add_argument("--spread", type=float, default=0.02)
    ap.add_argument("--features", default="~/.cache/xfr-runs/probe_width_features.pt")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    model = load_model(args.model, device="cpu").eval()
    bb = model.backbone
    data = ti.Data(Path(args.cache).expanduser())
    _, pa, pb, same, fold = pooling.lfw_pairs(Path(args.lfw))   # the order of probe_pooling.py's chips file

    feats_path = Path(args.features).expanduser()
    model_sha = file_sha256(args.model)
    feats = torch.load(feats_path) if feats_path.is_file() else None
    if feats is None or feats.get("model_sha256") != model_sha:
        t0 = time.time()
        tr = data.train_idx
        views = (0, 2)   # aligned, jittered (the flips are the trained network's business, not the top's)
        train_f = torch.stack([trunk_features(bb, (data.views(tr[s:s + 64], np.full(len(tr[s:s + 64]), v))
                                                   for s in range(0, len(tr), 64))) for v in views], 1)
        val_f = trunk_features(bb, (data.views(data.val_idx[s:s + 64], np.zeros(len(data.val_idx[s:s + 64]), int))
                                    for s in range(0, len(data.val_idx), 64)))
        chips = np.load(Path(args.chips).expanduser(), mmap_mode="r")
        lfw_f = trunk_features(bb, (normalize_chips(np.array(chips[s:s + 64])) for s in range(0, len(chips), 64)))
        feats = {"model_sha256": model_sha, "views": views, "train": train_f, "val": val_f, "lfw": lfw_f}
        torch.save(feats, feats_path)
        print(f"trunk features cached in {time.time() - t0:.0f} s", flush=True)
    views = feats["views"]
    pos = {int(i): k for k, i in enumerate(data.train_idx)}
    by_id: dict[str, list[int]] = {}
    for i in data.train_idx:
        by_id.setdefault(data.items[i]["identity"], []).append(int(i))
    target_cells = ti.affine.cell_target(8, 8, 0.02)
    cfg = {**ti.DEFAULTS, "contrast_weight": args.contrast, "spread_weight": args.spread}   # the rescaled target

    def embed(top, f: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return torch.cat([top(f[s:s + 256].float()).amax((2, 3)) for s in range(0, len(f), 256)])

    def evaluate(top) -> str:
        e_val, e_lfw = embed(top, feats["val"]), embed(top, feats["lfw"])
        _, acc = ti.joint.best_threshold(ti.joint.cosine_scores(e_val.double().numpy(), data.vpairs), data.vsame)
        E = F.normalize(e_lfw.double(), dim=1).numpy()
        scores = np.sum(E[pa] * E[pb], 1)
        k = kfold_accuracy(scores, same, fold)
        return (f"held-out {acc:.4f} | LFW {100 * k['accuracy_mean']:.2f} % ± {100 * k['accuracy_std']:.2f}, "
                f"TAR@1e-3 {100 * roc(scores, same)['tar_at_far_1e-3']:.1f} %")

    for form in args.forms:
        top = make_top(model, form)
        n_par = sum(p.numel() for p in top.parameters())
        opt = torch.optim.Adam(top.parameters(), lr=args.lr)
        rng = np.random.default_rng(1)
        print(f"form {form} ({n_par:,} parameters), step 0: {evaluate(top)}", flush=True)
        t0, run_id = time.time(), []
        for step in range(1, args.steps + 1):
            idx = ti.sample_batch(by_id, data.train_idx, data.items, args.batch_pairs, rng)
            v = rng.integers(0, len(views), len(idx))
            x = feats["train"][[pos[i] for i in idx], v].float()
            l_id, l_sp = ti.recognition_losses(top(x), data, idx, np.asarray(views)[v], cfg, target_cells)
            loss = l_id + l_sp
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run_id.append(l_id.item())
            if step % args.eval_every == 0:
                recent = np.mean(run_id[-args.eval_every:])
                print(f"form {form}, step {step}: train L_id (last {args.eval_every}) {recent:.4f} | "
                      f"{evaluate(top)} | {(time.time() - t0) / step:.3f} s/step", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
