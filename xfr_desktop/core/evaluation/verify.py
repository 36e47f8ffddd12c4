"""Face verification on a pair list: the standard LFW 10-fold protocol, ROC, TAR at FAR 1e-3, EER.

Every image is aligned through the project's pipeline (YuNet -> 5 landmarks -> the model's template) and embedded
once; embeddings are cached by the image's sha256 (and the model's), so a rerun or a second list sharing images
costs nothing. Images in which no face is found are counted; a pair with such an image scores -1 (the lowest
cosine: a non-match) instead of being dropped, so accuracies always cover every pair of the list.

10-fold protocol: for each fold, the threshold that maximizes accuracy on the other nine folds is applied to it;
accuracy_mean/std are over the ten folds. accuracy_at_threshold uses the model's own decision threshold, tuned on
nothing here.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..errors import ImageError, NoFaceError, XfrError
from ..fileio import file_sha256
from ..numbers import json_text

log = logging.getLogger(__name__)
NO_FACE_SCORE = -1.0
CACHE_FORMAT = 1


# --- metrics -----------------------------------------------------------------------------------------------
def best_accuracy_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold (score >= t means match) with the highest accuracy on these pairs (first best if tied)."""
    order = np.argsort(scores, kind="stable")
    sc, sm = np.asarray(scores)[order], np.asarray(same, bool)[order]
    n = len(sc)
    # cut k: pairs [0, k) are called non-matches, [k, n) matches
    neg_below = np.concatenate([[0], np.cumsum(~sm)])
    pos_above = np.concatenate([[0], np.cumsum(sm[::-1])])[::-1]
    correct = neg_below + pos_above
    valid = np.ones(n + 1, bool)
    valid[1:n] = sc[1:] > sc[:-1]  # no cut between equal scores
    correct = np.where(valid, correct, -1)
    k = int(np.argmax(correct))
    if k == 0:
        return float(sc[0] - 1e-6)
    if k == n:
        return float(sc[-1] + 1e-6)
    return float((sc[k - 1] + sc[k]) / 2)


def kfold_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict:
    accs, thrs = [], []
    for k in np.unique(folds):
        test = folds == k
        t = best_accuracy_threshold(scores[~test], same[~test])
        accs.append(float(np.mean((scores[test] >= t) == same[test])))
        thrs.append(t)
    return {"fold_accuracies": accs, "fold_thresholds": thrs,
            "accuracy_mean": float(np.mean(accs)), "accuracy_std": float(np.std(accs))}


def roc(scores: np.ndarray, same: np.ndarray) -> dict:
    """ROC (FAR, TAR), TAR at FAR 1e-3 (the highest TAR with FAR <= 1e-3) and the equal error rate."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], same[order]
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tar = np.r_[0.0, np.cumsum(y)[distinct] / n_pos]
    far = np.r_[0.0, np.cumsum(~y)[distinct] / n_neg]
    thr = np.r_[np.inf, s[distinct]]
    ok = far <= 1e-3
    tar_at = float(tar[ok].max()) if ok.any() else 0.0
    frr = 1.0 - tar
    i = int(np.argmin(np.abs(frr - far)))
    eer = float((frr[i] + far[i]) / 2)
    return {"far": far, "tar": tar, "thresholds": thr, "tar_at_far_1e-3": tar_at, "eer": eer,
            "eer_threshold": float(thr[i])}


class Unreadable(str):
    """The failure reason of an image that could not be read or used at all, as opposed to one without a face:
    counted apart, and never cached (the file may be fixed)."""


# --- embeddings ----------------------------------------------------------------------------------------------
@dataclass
class EmbeddingCache:
    """sha256 of the image -> embedding (or None: no face), stored per model in one .npz."""

    path: Path | None
    model_key: str
    table: dict = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | os.PathLike | None, model_key: str) -> "EmbeddingCache":
        cache = cls(Path(path) if path else None, model_key)
        if cache.path and cache.path.is_file():
            try:
                with np.load(cache.path, allow_pickle=False) as z:
                    if str(z["model_key"]) == model_key and int(z["format"]) == CACHE_FORMAT:
                        for h, e, ok in zip(z["hashes"], z["embeddings"], z["has_face"]):
                            cache.table[str(h)] = e.copy() if ok else None
            except (OSError, ValueError, KeyError) as exc:
                log.warning("ignoring unreadable embedding cache %s (%s)", cache.path, type(exc).__name__)
        return cache

    def save(self) -> None:
        if not self.path or not self.table:
            return
        hashes = sorted(self.table)
        dim = next((len(v) for v in self.table.values() if v is not None), 1)
        emb = np.stack([self.table[h] if self.table[h] is not None else np.zeros(dim, np.float32) for h in hashes])
        has = np.array([self.table[h] is not None for h in hashes])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        np.savez(tmp, model_key=self.model_key, format=CACHE_FORMAT, hashes=np.array(hashes),
                 embeddings=emb.astype(np.float32), has_face=has)
        os.replace(tmp, self.path)


def model_cache_key(model) -> str:
    """Embeddings depend on the recognition weights and the alignment only (not on the decoder), so a model
    whose decoder was retrained keeps its cache."""
    h = hashlib.sha256()
    net = getattr(model, "backbone", None) or getattr(model, "net", None) or model
    for k, v in sorted(net.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    h.update(json.dumps([model.spec.get("template"), list(model.input_size), model.spec.get("normalization"),
                         model.spec.get("landmark_weights")], sort_keys=True).encode())
    return f"{model.spec.get('name', '?')}:{h.hexdigest()[:32]}"


def embed_images(
    model, paths: Sequence[Path], cache: EmbeddingCache | None = None, aligner=None, batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None, prealigned: bool = False,
) -> tuple[dict, dict]:
    """-> ({path: embedding (c,) float32 or None}, {path: reason} for images without a usable face)."""
    from ..alignment import FaceAligner
    from ..imageio import load_image

    if aligner is None:
        aligner = FaceAligner.for_model(model)
    cache = cache or EmbeddingCache(None, model_cache_key(model))
    out: dict = {}
    failures: dict = {}
    hashes = {}
    todo: list[tuple[Path, str]] = []
    for p in paths:
        try:
            h = file_sha256(p)
        except OSError as exc:
            failures[p] = Unreadable(f"cannot read ({exc.strerror or type(exc).__name__})")
            out[p] = None
            continue
        hashes[p] = h
        if h in cache.table:
            out[p] = cache.table[h]
            if out[p] is None:
                failures[p] = "no face (cached)"
        else:
            todo.append((p, h))
    done = len(paths) - len(todo)
    if progress:
        progress(done, len(paths))
    batch: list[tuple[Path, str, np.ndarray]] = []

    def flush():
        if not batch:
            return
        x = torch.cat([model.preprocess(a) for _, _, a in batch])
        with torch.inference_mode():
            _, F = model.embed(x)
        for (p, h, _), e in zip(batch, F.float().cpu().numpy()):
            out[p] = cache.table[h] = e.astype(np.float32)
        batch.clear()

    seen_hash: dict[str, Path] = {}
    for p, h in todo:
        if h in seen_hash:  # the same picture under another name
            continue
        seen_hash[h] = p
        try:
            image = load_image(p)
            face = aligner.align_prealigned(image) if prealigned else aligner.align(image, source=str(p))
            batch.append((p, h, face.aligned))
        except NoFaceError as exc:  # counted, not fatal, and remembered for this model
            out[p] = cache.table[h] = None
            failures[p] = str(exc)
        except ImageError as exc:
            out[p] = None
            failures[p] = Unreadable(str(exc))
        if len(batch) >= batch_size:
            flush()
        done += 1
        if progress:
            progress(done, len(paths))
    flush()
    for p, h in todo:  # duplicates take their twin's result
        if p not in out:
            out[p] = cache.table.get(h)
            if out[p] is None:
                failures[p] = failures.get(seen_hash[h], "no face")
    return out, failures


# --- shards (core/evaluation/sharding.py) ---------------------------------------------------------------------
def embed_shard(model, paths: Sequence[Path], cache_path, batch_size: int = 32, prealigned: bool = False,
                progress: Callable[[int, int], None] | None = None) -> dict:
    """One process's share: the cache entries (image sha256 -> embedding, or None for no face) it computed and
    why its images had no face. The cache file is only read here; rank 0 merges the shares into it."""
    cache = EmbeddingCache.open(cache_path, model_cache_key(model))
    before = set(cache.table)
    _, failures = embed_images(model, paths, cache, batch_size=batch_size, progress=progress, prealigned=prealigned)
    return {"table": {h: e for h, e in cache.table.items() if h not in before},
            "no_face": {str(p): str(r) for p, r in failures.items() if not isinstance(r, Unreadable)}}


def merge_embeddings(model, cache_path, parts: Sequence[dict]) -> dict[str, str]:
    """The shares' embeddings into the cache file; returns their no-face reasons by image path."""
    reasons: dict[str, str] = {}
    if not parts:
        return reasons
    cache = EmbeddingCache.open(cache_path, model_cache_key(model))
    for part in parts:
        cache.table.update(part["table"])
        reasons.update(part["no_face"])
    cache.save()
    return reasons


# --- the whole evaluation -------------------------------------------------------------------------------------
def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def verify_pairs(
    model, pairs, out_dir: str | os.PathLike | None = None, cache_path: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None, batch_size: int = 32, prealigned: bool = False,
    started: float | None = None, no_face_reasons: dict[str, str] | None = None,
) -> dict:
    """Evaluate ``model`` on a PairList (core.pairs.read_pairs). Writes verify.json + roc.png into out_dir.
    A sharded run passes when it ``started`` (time.time()) and the workers' ``no_face_reasons`` by path."""
    t0 = time.time() if started is None else started
    cache = EmbeddingCache.open(cache_path, model_cache_key(model))
    paths = pairs.images
    embs, failures = embed_images(model, paths, cache, batch_size=batch_size, progress=progress,
                                  prealigned=prealigned)
    cache.save()
    for p, reason in failures.items():  # the worker that met the image said why, not just "(cached)"
        if not isinstance(reason, Unreadable) and str(p) in (no_face_reasons or {}):
            failures[p] = no_face_reasons[str(p)]
    scores = np.empty(len(pairs))
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    no_face_pairs = 0
    for i, pr in enumerate(pairs):
        a, b = embs.get(pr.path_a), embs.get(pr.path_b)
        if a is None or b is None:
            scores[i] = NO_FACE_SCORE
            no_face_pairs += 1
        else:
            scores[i] = cosine(a, b)
    warnings = list(getattr(pairs, "warnings", []))
    kf, r = _defined_metrics(scores, same, folds, warnings)
    unreadable = {str(k): v for k, v in failures.items() if isinstance(v, Unreadable)}
    no_face = {str(k): v for k, v in failures.items() if not isinstance(v, Unreadable)}
    thr = float(model.threshold)
    result = {
        "model": model.spec.get("name"), "model_sha256": getattr(model, "sha256", None),
        "model_path": getattr(model, "path", None), "pair_list": getattr(pairs, "source", ""),
        "pair_format": getattr(pairs, "format", ""), "n_pairs": len(pairs), "n_matched": int(same.sum()),
        "n_mismatched": int((~same).sum()), "n_folds": int(len(np.unique(folds))), "n_images": len(paths),
        "n_no_face": len(no_face), "n_unreadable": len(unreadable), "n_pairs_with_no_face": no_face_pairs,
        "no_face_images": dict(list(no_face.items())[:100]),
        "unreadable_images": dict(list(unreadable.items())[:100]), "warnings": warnings,
        "score": "cosine(F_A, F_B)", "no_face_pair_score": NO_FACE_SCORE,
        **kf,
        "threshold": thr, "accuracy_at_threshold": float(np.mean((scores >= thr) == same)),
        **{k: r[k] if r else None for k in ("tar_at_far_1e-3", "eer", "eer_threshold")},
        "seconds": round(time.time() - t0, 1),
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "verify.json").write_text(json_text(result, indent=2))
        np.savez_compressed(out / "scores.npz", scores=scores, same=same, folds=folds)
        if r is not None:
            plot_roc(r, out / "roc.png", title=f"{result['model']}: {percent(kf['accuracy_mean'])} "
                     f"({result['n_folds']}-fold), TAR@FAR1e-3 {r['tar_at_far_1e-3'] * 100:.1f}%, "
                     f"EER {r['eer'] * 100:.2f}%")
    return result


def _defined_metrics(scores: np.ndarray, same: np.ndarray, folds: np.ndarray, warnings: list) -> tuple[dict, dict]:
    """k-fold accuracy and the ROC where they are defined; otherwise None and a warning that says why (a list
    without mismatched pairs once reported TAR@FAR1e-3 100 % and EER 0 %)."""
    kf = {"fold_accuracies": None, "fold_thresholds": None, "accuracy_mean": None, "accuracy_std": None}
    if len(np.unique(folds)) >= 2:
        kf = kfold_accuracy(scores, same, folds)
    else:
        warnings.append("k-fold accuracy needs at least 2 folds: it is undefined for this list")
    if same.all() or not same.any():
        warnings.append(f"the list has no {'mismatched' if same.all() else 'matched'} pairs: TAR@FAR1e-3, EER "
                        "and the ROC need both kinds and are undefined")
        return kf, None
    return kf, roc(scores, same)


def percent(value) -> str:
    return "undefined" if value is None else f"{value * 100:.2f}%"


def plot_roc(r: dict, path: Path, title: str = "") -> None:
    """ROC with a log FAR axis (1e-4 .. 1), drawn with OpenCV (no plotting library at run time)."""
    import cv2

    W, H, m = 720, 520, 60
    img = np.full((H, W, 3), 255, np.uint8)
    x0, y0, x1, y1 = m, 40, W - 20, H - m
    cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), 1)

    def fx(far):
        return x0 + (np.log10(np.clip(far, 1e-4, 1)) + 4) / 4 * (x1 - x0)

    def fy(tar):
        lo = 0.8 if r["tar"][r["far"] >= 1e-4].min(initial=1.0) >= 0.8 else 0.0
        return y1 - (np.clip(tar, lo, 1) - lo) / (1 - lo) * (y1 - y0), lo

    for e in range(-4, 1):
        x = int(fx(10.0 ** e))
        cv2.line(img, (x, y0), (x, y1), (220, 220, 220), 1)
        cv2.putText(img, f"1e{e}", (x - 14, y1 + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    _, lo = fy(np.array([1.0]))
    for k in range(6):
        tar = lo + (1 - lo) * k / 5
        y = int(fy(np.array([tar]))[0][0])
        cv2.line(img, (x0, y), (x1, y), (220, 220, 220), 1)
        cv2.putText(img, f"{tar:.2f}", (8, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    far = np.maximum(r["far"], 1e-4)
    pts = np.stack([fx(far), fy(r["tar"])[0]], 1).astype(np.int32)
    cv2.polylines(img, [pts], False, (200, 80, 0), 2, cv2.LINE_AA)
    cv2.putText(img, "FAR (log)", (W // 2 - 30, H - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "TAR", (8, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, title[:95], (x0, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    if not cv2.imwrite(str(path), img):
        raise XfrError(f"cannot write {path}")
