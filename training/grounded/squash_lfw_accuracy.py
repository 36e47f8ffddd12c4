"""LFW 10-fold accuracy and TAR@FAR1e-3 of a model's embedding F and of F″ = tanh(k·F/s_i), s_i = each channel's
standard deviation of F over CelebA-subset chips (the grounded run's cache). F″ is the max pool of tanh(k·C/s_i), a
monotone per-channel squashing of C that keeps every channel's argmax (and so every Algorithm-1 residual).

    OMP_NUM_THREADS=1 .venv/bin/python training/grounded/squash_lfw_accuracy.py embed MODEL.pt OUT.npz
    OMP_NUM_THREADS=1 .venv/bin/python training/grounded/squash_lfw_accuracy.py stats CACHE_DIR STATS.pt [N_SHARDS]
    OMP_NUM_THREADS=1 .venv/bin/python training/grounded/squash_lfw_accuracy.py accuracy OUT.npz STATS.pt 0 1 2 4 100
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from xfr_desktop.core.alignment import FaceAligner  # noqa: E402
from xfr_desktop.core.model import load_model  # noqa: E402
from xfr_desktop.core.pairs import read_pairs  # noqa: E402


def embed(model_path: str, out: str) -> None:
    """Raw embeddings F of every image in LFW's pairs.txt, with the pair index arrays."""
    lfw = ROOT.parent / "shared" / "data" / "lfw"
    pairs = read_pairs(lfw / "pairs.txt", lfw / "lfw-deepfunneled")
    paths = sorted({str(p.path_a) for p in pairs} | {str(p.path_b) for p in pairs})
    index = {p: i for i, p in enumerate(paths)}
    model = load_model(model_path, device="cpu").eval()
    aligner = FaceAligner.for_model(model)
    F, t0 = [], time.time()
    for s in range(0, len(paths), 64):
        chips = np.stack([aligner.align_file(p).aligned for p in paths[s:s + 64]])
        with torch.no_grad():
            F.append(model.embed(model.preprocess(chips))[1].double().numpy())
        print(s + len(chips), len(paths), round(time.time() - t0), flush=True)
    np.savez(out, F=np.concatenate(F), pa=[index[str(p.path_a)] for p in pairs],
             pb=[index[str(p.path_b)] for p in pairs], same=[p.same for p in pairs], fold=[p.fold for p in pairs])


def stats(cache: str, out: str, shards: str = "0") -> None:
    """Per-channel mean and std of F = max pool of the cached C (the grounded run's training shards; the first
    ``shards`` of them when not 0)."""
    files = sorted(Path(cache).glob("shard*.pt"))
    parts = [torch.load(p, weights_only=True)["C"] for p in files[: int(shards) or len(files)]]
    F = torch.cat(parts).float().amax((2, 3))
    torch.save({"mean": F.mean(0), "std": F.std(0), "n": len(F)}, out)
    print(f"{len(F)} chips, {F.shape[1]} channels")


def _best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    cand = np.unique(scores)[:: max(1, len(scores) // 2000)]
    return float(max((np.mean((scores >= t) == same), t) for t in cand)[1])


def accuracy(npz: str, stats_file: str, ks: list[str]) -> None:
    d = np.load(npz)
    s = torch.load(stats_file)["std"].double().numpy()
    same, fold = d["same"], d["fold"]
    for k in ks:
        G = d["F"] if float(k) == 0 else np.tanh(float(k) * d["F"] / s)
        G = G / np.linalg.norm(G, axis=1, keepdims=True)
        sc = (G[d["pa"]] * G[d["pb"]]).sum(1)
        accs, taus = [], []
        for f in np.unique(fold):  # threshold chosen on the other nine folds
            t = _best_threshold(sc[fold != f], same[fold != f])
            taus.append(t)
            accs.append(np.mean((sc[fold == f] >= t) == same[fold == f]))
        neg = np.sort(sc[~same])[::-1]
        tar = np.mean(sc[same] > neg[int(len(neg) * 1e-3)])
        print(f"k {k:>5}: accuracy {100 * np.mean(accs):.2f} % ± {100 * np.std(accs):.2f}, "
              f"median threshold {np.median(taus):.4f}, TAR@FAR1e-3 {100 * tar:.1f} %")


if __name__ == "__main__":
    cmd, *rest = sys.argv[1:]
    {"embed": lambda: embed(*rest), "stats": lambda: stats(*rest),
     "accuracy": lambda: accuracy(rest[0], rest[1], rest[2:])}[cmd]()
