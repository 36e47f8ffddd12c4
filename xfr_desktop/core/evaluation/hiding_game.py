"""The hiding game (Table II / Fig. 4 of Xu, Lu & Ebrahimi): how well does a saliency map find what the model needs?

For each pair and method, each image's pixels are ranked by the image's own map, ascending; the least salient
p% are replaced by a Gaussian-blurred copy of the image; the modified pair is verified at the model's decision
threshold. Accuracy is measured for p = 0, 10, …, 90% and summarised by the area under the curve: the trapezoid
over p ∈ [0, 0.9] divided by 0.9, in percent (the paper's numbers). A map that ranks what the model uses last
keeps accuracy high as more is hidden.

Details that change the numbers, all recorded in the results:
- Blur: ``cv2.GaussianBlur`` with σ = ``blur_sigma`` px (default: input width / 10, i.e. 15 px for a 150 px face)
  and a (2⌈3σ⌉+1)² kernel, reflected borders. At the default a face is unrecognisable (see docs/hiding_game.md).
- Ties in a map (flat regions, e.g. a Grad-CAM map that is zero over half the face) are broken by a fixed random
  order drawn from ``seed``, the same for every method, pair and step.
- Step 0 is the unmodified pair and is shared by all methods.
- ``order="most"`` plays the deletion variant on the same maps: the most salient p% are hidden first, so a faithful
  map makes the verdicts fail fast (lower AUC = better). It answers the hiding game's blind spot: keeping a
  scattered or central set of pixels can preserve a face whatever the map says.

Qt-free: the CLI (`xfr evaluate hiding-game`) and any GUI use :func:`run_hiding_game`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np
import torch

from ..attribution import Explainer, get_explainer
from ..errors import ImageError, XfrError

log = logging.getLogger(__name__)

DEFAULT_STEPS = tuple(range(0, 100, 10))
# Table II of the paper, LFW column (AUC of the hiding-game accuracy curve, %).
PAPER_LFW_AUC = {"gradcampp": 88.05, "gradient": 89.68, "stylianou": 88.90, "xface": 90.14, "ours": 90.39}
METHOD_LABELS = {"ours": "Ours (S)", "gradient": "Gradient", "gradcampp": "GradCAM++", "stylianou": "Stylianou",
                 "xface": "xFace", "random": "Random", "centre": "Centre prior", "ours-pos": "Ours (S+)",
                 "ours-neg": "Ours (S-)", "stylianou-abs": "Stylianou |map|", "xface-abs": "xFace |map|"}
# BGR colours for the plot
METHOD_COLOURS = {"ours": (40, 40, 220), "gradient": (200, 120, 0), "gradcampp": (0, 160, 0),
                  "stylianou": (180, 0, 180), "xface": (0, 140, 230), "random": (128, 128, 128),
                  "centre": (90, 90, 40), "ours-pos": (120, 60, 220), "ours-neg": (60, 160, 160),
                  "stylianou-abs": (200, 100, 200), "xface-abs": (80, 180, 240)}
RESULTS_FILE = "results.jsonl"
FULLY_BLURRED = "_fully_blurred"   # pseudo-method in the records: the pair with both faces entirely blurred


# --- the game on one image / one pair -----------------------------------------------------------------------
def default_blur_sigma(input_size: Sequence[int]) -> float:
    return float(input_size[1]) / 10.0


def blur_face(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-blurred copy (kernel 2⌈3σ⌉+1, reflected borders) of an (H,W,3) uint8 image."""
    k = 2 * int(np.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(image, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)


def tiebreak_keys(shape: Sequence[int], seed: int) -> np.ndarray:
    """A fixed random secondary sort key per pixel (breaks ties in flat maps the same way for every method)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, 7919]).random(int(shape[0]) * int(shape[1]))


#: "least": hide the least salient pixels first (keep what the map calls important; higher AUC = better map);
#: "most": deletion, hide the most salient first (a faithful map makes the verdicts fail fast; lower AUC = better)
ORDERS = ("least", "most")


def hiding_order(saliency: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Flat pixel indices from least to most salient."""
    sal = np.nan_to_num(np.asarray(saliency, np.float64).ravel(), nan=-np.inf)
    return np.lexsort((tiebreak, sal))


def hidden_versions(image: np.ndarray, blurred: np.ndarray, saliency: np.ndarray, fractions: Sequence[float],
                    tiebreak: np.ndarray, order: str = "least") -> np.ndarray:
    """(len(fractions),H,W,3) uint8: ``image`` with its least (``order="least"``, the hiding game) or most
    (``"most"``, deletion) salient fraction of pixels taken from ``blurred``."""
    H, W = saliency.shape
    order = hiding_order(saliency, tiebreak) if order == "least" else hiding_order(saliency, tiebreak)[::-1]
    out = np.empty((len(fractions), H, W, 3), np.uint8)
    for i, f in enumerate(fractions):
        mask = np.zeros(H * W, bool)
        mask[order[:int(round(f * H * W))]] = True
        out[i] = np.where(mask.reshape(H, W, 1), blurred, image)
    return out


@torch.no_grad()
def embed_batch(model, images: np.ndarray, batch_size: int = 128) -> torch.Tensor:
    """(N,H,W,3) uint8 -> (N,c) L2-normalized embeddings, in float64."""
    out = []
    for start in range(0, len(images), batch_size):
        _, F = model.embed(model.preprocess(images[start:start + batch_size]))
        out.append(torch.nn.functional.normalize(F.double(), dim=1))
    return torch.cat(out)


def play_pair(model, a: np.ndarray, b: np.ndarray, maps: dict[str, tuple[np.ndarray, np.ndarray]],
              steps: Sequence[int], blur_sigma: float, tiebreak: np.ndarray,
              batch_size: int = 128, order: str = "least") -> dict[str, list[float]]:
    """Cosine scores of the modified pair, method -> one per step, plus ``FULLY_BLURRED`` -> [score of the pair
    with both faces entirely blurred] (the floor: what the model sees when nothing is kept). One batch."""
    fractions = [s / 100.0 for s in steps]
    blurred = (blur_face(a, blur_sigma), blur_face(b, blur_sigma))
    nonzero = [f for f in fractions if f > 0]
    images = [a[None], b[None], blurred[0][None], blurred[1][None]]   # step 0 (shared), fully blurred pair
    for method, (map_a, map_b) in maps.items():
        images.append(hidden_versions(a, blurred[0], map_a, nonzero, tiebreak, order))
        images.append(hidden_versions(b, blurred[1], map_b, nonzero, tiebreak, order))
    F = embed_batch(model, np.concatenate(images), batch_size)
    base = float((F[0] * F[1]).sum())
    n = len(nonzero)
    scores: dict[str, list[float]] = {FULLY_BLURRED: [float((F[2] * F[3]).sum())]}
    offset = 4
    for method in maps:
        fa, fb = F[offset:offset + n], F[offset + n:offset + 2 * n]
        offset += 2 * n
        hidden = iter((fa * fb).sum(1).tolist())
        scores[method] = [base if f == 0 else next(hidden) for f in fractions]
    return scores


# --- summary ------------------------------------------------------------------------------------------------
def auc_percent(steps: Sequence[int], accuracy_percent: Sequence[float]) -> float:
    """Trapezoid of accuracy (%) over p (as a fraction), divided by the span of p: 0..100."""
    p = np.asarray(steps, np.float64) / 100.0
    acc = np.asarray(accuracy_percent, np.float64)
    if len(p) == 1:
        return float(acc[0])
    span = p[-1] - p[0]
    area = float(np.sum((acc[1:] + acc[:-1]) * np.diff(p)) / 2.0)
    return area / span


def summarize(records: list[dict], methods: Sequence[str], steps: Sequence[int], threshold: float) -> dict:
    """Accuracy per step and AUC, for all pairs and for matched / mismatched pairs separately."""
    out: dict = {"accuracy": {}, "auc": {}, "accuracy_matched": {}, "auc_matched": {}, "accuracy_mismatched": {},
                 "auc_mismatched": {}, "n_pairs_per_method": {}}
    for m in methods:
        rows = [r for r in records if m in r.get("scores", {})]
        out["n_pairs_per_method"][m] = len(rows)
        if not rows:
            continue
        scores = np.asarray([r["scores"][m] for r in rows], np.float64)          # (n, steps)
        same = np.asarray([bool(r["same"]) for r in rows])[:, None]
        correct = (scores >= threshold) == same
        for suffix, sel in (("", slice(None)), ("_matched", same[:, 0]), ("_mismatched", ~same[:, 0])):
            sub = correct[sel]
            if len(sub) == 0:
                continue
            acc = (100.0 * sub.mean(0)).round(4).tolist()
            out[f"accuracy{suffix}"][m] = acc
            out[f"auc{suffix}"][m] = round(auc_percent(steps, acc), 4)
    return out


def paired_auc_differences(records: list[dict], methods: Sequence[str], steps: Sequence[int], threshold: float,
                           reference: str = "ours", n_boot: int = 2000, seed: int = 0) -> dict:
    """AUC(reference) − AUC(method) for every other method, on the pairs both were played on, with a 95 % paired
    bootstrap interval over those pairs: is a gap between two methods more than the pairs' noise? The AUC is linear
    in the verdicts, so the difference is the mean of the per-pair AUC differences (each pair's verdicts, 0 or 100
    per step, through :func:`auc_percent`)."""
    rows = [r for r in records if reference in r.get("scores", {})]
    rng = np.random.default_rng(seed)

    def per_pair(method: str, both: list[dict]) -> np.ndarray:
        scores = np.asarray([r["scores"][method] for r in both], np.float64)
        same = np.asarray([bool(r["same"]) for r in both])[:, None]
        return np.asarray([auc_percent(steps, row) for row in 100.0 * ((scores >= threshold) == same)])

    out = {}
    for m in methods:
        both = [r for r in rows if m != reference and m in r["scores"]]
        if len(both) < 2:
            continue
        d = per_pair(reference, both) - per_pair(m, both)
        boot = np.asarray([d[rng.integers(0, len(d), len(d))].mean() for _ in range(n_boot)])
        lo, hi = np.percentile(boot, [2.5, 97.5])
        out[m] = {"difference": round(float(d.mean()), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)],
                  "n_pairs": len(d)}
    return out


# --- the run: caching, resume, timings ----------------------------------------------------------------------
@dataclass
class PairJob:
    """One pair to play: a stable key (for caches), the truth, and how to get the aligned faces."""

    key: str
    same: bool
    load: Callable[[], tuple[np.ndarray, np.ndarray]]  # may raise ImageError (NoFaceError): the pair is counted
    label: str = ""


@dataclass
class HidingGameConfig:
    steps: tuple[int, ...] = DEFAULT_STEPS
    blur_sigma: float | None = None      # px; None -> default_blur_sigma(model.input_size)
    seed: int = 0
    threshold: float | None = None       # None -> the model's own
    batch_size: int = 128
    order: str = "least"                 # hide the least salient first (the paper's game) or "most" (deletion)

    def resolve(self, model) -> "HidingGameConfig":
        steps = tuple(int(s) for s in self.steps)
        if not steps or any(s < 0 or s >= 100 for s in steps) or list(steps) != sorted(set(steps)):
            raise XfrError("steps must be increasing percentages from 0 up to 99, e.g. 0,10,20,...,90")
        sigma = default_blur_sigma(model.input_size) if self.blur_sigma is None else float(self.blur_sigma)
        if sigma <= 0:
            raise XfrError("blur sigma must be positive")
        thr = model.threshold if self.threshold is None else float(self.threshold)
        if self.order not in ORDERS:
            raise XfrError(f"order must be one of {', '.join(ORDERS)}, not {self.order!r}")
        return HidingGameConfig(steps=steps, blur_sigma=sigma, seed=int(self.seed), threshold=thr,
                                batch_size=int(self.batch_size), order=self.order)

    def game_dict(self) -> dict:
        """The settings the scores depend on (batch size does not)."""
        d = asdict(self)
        d.pop("batch_size")
        if d["order"] == "least":
            d.pop("order")     # the game as it was before deletion existed: earlier caches stay valid
        d["steps"] = list(self.steps)
        d["blur_kernel"] = 2 * int(np.ceil(3 * self.blur_sigma)) + 1 if self.blur_sigma else None
        return d


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def model_identity(model) -> str:
    """The model file's sha256, or a digest of the weights for a model that was not loaded from a file."""
    if getattr(model, "sha256", None):
        return model.sha256
    h = hashlib.sha256(json.dumps(model.spec, sort_keys=True, default=str).encode())
    for v in model.state_dict().values():
        h.update(v.detach().cpu().numpy().tobytes())
    return h.hexdigest()


@dataclass
class HidingGameRun:
    """Where a run keeps its caches: ``cache_dir/maps/<pair>__<method>-<cfg>.npz`` and ``results.jsonl``."""

    cache_dir: Path
    records: dict[str, dict] = field(default_factory=dict)     # pair key -> {same, scores{method: [...]}}
    no_face: dict[str, str] = field(default_factory=dict)      # pair key -> message
    results_name: str = RESULTS_FILE                           # a shard worker appends to its own file

    def results_path(self) -> Path:
        return self.cache_dir / self.results_name

    def load(self, game_hash: str) -> None:
        for name in dict.fromkeys((RESULTS_FILE, self.results_name)):
            self._load_rows(self.cache_dir / name, game_hash)

    def _load_rows(self, path: Path, game_hash: str) -> None:
        if not path.is_file():
            return
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue                                   # a line cut by an interrupted write
            if row.get("game") != game_hash:
                continue
            if "no_face" in row:
                self.no_face[row["key"]] = row["no_face"]
                continue
            rec = self.records.setdefault(row["key"], {"same": row["same"], "scores": {}, "map_seconds": {}})
            rec["scores"][row["method"]] = row["scores"]
            rec["map_seconds"][row["method"]] = row.get("map_seconds")

    def append(self, row: dict) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(self.results_path(), "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()

    def map_path(self, key: str, method: str, method_hash: str) -> Path:
        return self.cache_dir / "maps" / f"{key}__{method}-{method_hash}.npz"


def _load_maps(path: Path):
    """((map_a, map_b), seconds it took to compute them) or None for a missing / unreadable file."""
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path) as d:
            return (np.asarray(d["map_a"], np.float32), np.asarray(d["map_b"], np.float32)), float(d["seconds"])
    except Exception:  # a half-written or foreign file: recompute
        return None


def _save_maps(path: Path, maps: tuple[np.ndarray, np.ndarray], seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, map_a=maps[0], map_b=maps[1], seconds=np.float64(seconds))
    os.replace(tmp, path)


ProgressFn = Callable[[int, int, str], None]


def run_hiding_game(model, jobs: Iterable[PairJob], methods: Sequence[str], config: HidingGameConfig,
                    cache_dir: str | os.PathLike | None = None, explainers: dict[str, Explainer] | None = None,
                    progress: ProgressFn | None = None, results_name: str = RESULTS_FILE) -> dict:
    """Play the hiding game on ``jobs`` for ``methods``; resumes from ``cache_dir`` when given (a shard worker
    appends its rows to ``results_name`` in it; see :func:`shard_rows`).

    Returns the summary dict written to hiding_game.json by the CLI (without file names).
    """
    t_start = time.perf_counter()
    jobs = list(jobs)
    cfg = config.resolve(model)
    model.eval()
    explainers = dict(explainers or {})
    for m in methods:
        if m not in explainers:
            explainers[m] = get_explainer(m, seed=cfg.seed) if m == "random" else get_explainer(m)
    model_sha = model_identity(model)
    game = {"model": model_sha, **cfg.game_dict()}
    game_hash = _digest(game)
    method_hash = {m: _digest({"model": model_sha, "method": m, "config": explainers[m].config()}) for m in methods}
    run = HidingGameRun(Path(cache_dir) if cache_dir is not None else None, results_name=results_name)
    if run.cache_dir is not None:
        run.load(game_hash)
    tiebreak = tiebreak_keys(model.input_size, cfg.seed)
    timings = {"align_s": 0.0, "game_s": 0.0, "maps_s": {m: 0.0 for m in methods}}
    resumed = 0
    report = progress or (lambda done, total, info: None)
    keys = set()
    for i, job in enumerate(jobs):
        if job.key in keys:
            raise ValueError(f"duplicate pair key {job.key}")
        keys.add(job.key)
        rec = run.records.get(job.key)
        todo = [m for m in methods if rec is None or m not in rec["scores"]]
        if job.key in run.no_face or not todo:
            resumed += 1
            report(i + 1, len(jobs), "cached")
            continue
        t0 = time.perf_counter()
        try:
            a, b = job.load()
        except ImageError as exc:
            run.no_face[job.key] = str(exc)
            if run.cache_dir is not None:
                run.append({"game": game_hash, "key": job.key, "no_face": str(exc)})
            report(i + 1, len(jobs), "no face")
            continue
        timings["align_s"] += time.perf_counter() - t0
        maps, seconds = {}, {}
        for m in todo:
            path = run.map_path(job.key, m, method_hash[m]) if run.cache_dir is not None else None
            cached = _load_maps(path)
            if cached is not None:
                maps[m], seconds[m] = cached
                continue
            t1 = time.perf_counter()
            maps[m] = explainers[m](model, a, b)
            seconds[m] = time.perf_counter() - t1
            timings["maps_s"][m] += seconds[m]
            if path is not None:
                _save_maps(path, maps[m], seconds[m])
        t2 = time.perf_counter()
        scores = play_pair(model, a, b, maps, cfg.steps, cfg.blur_sigma, tiebreak, cfg.batch_size, cfg.order)
        timings["game_s"] += time.perf_counter() - t2
        rec = run.records.setdefault(job.key, {"same": bool(job.same), "scores": {}, "map_seconds": {}})
        for m in todo + ([FULLY_BLURRED] if FULLY_BLURRED not in rec["scores"] else []):
            rec["scores"][m] = scores[m]
            rec["map_seconds"][m] = seconds.get(m)
            if run.cache_dir is not None:
                run.append({"game": game_hash, "key": job.key, "same": bool(job.same), "method": m,
                            "scores": scores[m], "map_seconds": seconds.get(m)})
        report(i + 1, len(jobs), "")
    # Summarise over the pairs of this run only (the cache may hold others).
    wanted = [run.records[j.key] for j in jobs if j.key in run.records and j.key not in run.no_face]
    summary = summarize(wanted, methods, cfg.steps, cfg.threshold)
    summary["ours_minus"] = paired_auc_differences(wanted, methods, cfg.steps, cfg.threshold)
    floor = summarize(wanted, [FULLY_BLURRED], [0], cfg.threshold)
    summary["accuracy_fully_blurred"] = {name: floor[f"accuracy{suffix}"].get(FULLY_BLURRED, [None])[0]
                                         for name, suffix in (("all", ""), ("matched", "_matched"),
                                                              ("mismatched", "_mismatched"))}
    no_face = [(j.label or j.key, run.no_face[j.key]) for j in jobs if j.key in run.no_face]
    n_done = len(wanted)
    summary.update({
        "methods": list(methods),
        "steps": list(cfg.steps),
        "n_pairs_listed": len(jobs),
        "n_pairs": n_done,
        "n_matched": sum(bool(r["same"]) for r in wanted),
        "n_mismatched": sum(not r["same"] for r in wanted),
        "n_no_face": len(no_face),
        "no_face": [f"{label}: {msg}" for label, msg in no_face[:20]],
        "n_resumed_from_cache": resumed,
        "configuration": {**cfg.game_dict(), "batch_size": cfg.batch_size,
                          "methods": {m: {"class": type(explainers[m]).__name__, **explainers[m].config()}
                                      for m in methods},
                          "blur": "cv2.GaussianBlur, kernel 2*ceil(3*sigma)+1, BORDER_REFLECT_101",
                          "ties": "broken by a fixed random pixel order from the seed",
                          "auc": "trapezoid of accuracy (%) over p in [first, last step] / span"},
        "model": {"sha256": model_sha, "path": getattr(model, "path", None), "name": model.spec.get("name"),
                  "input_size": list(model.input_size), "threshold": cfg.threshold,
                  "device": str(model.device)},
        "timings": {
            "wall_s": round(time.perf_counter() - t_start, 2),
            "align_s": round(timings["align_s"], 2),
            "hiding_game_verify_s": round(timings["game_s"], 2),
            "maps_s_this_run": {m: round(v, 2) for m, v in timings["maps_s"].items()},
            "maps_s_per_pair_mean": {
                m: round(float(np.mean([r["map_seconds"][m] for r in wanted if r["map_seconds"].get(m)
                                        is not None] or [float("nan")])), 4) for m in methods},
            "note": "maps_s_per_pair_mean includes pairs whose maps came from the cache (their original time)",
            "torch_threads": torch.get_num_threads(),
        },
        "paper_lfw_auc": PAPER_LFW_AUC,
    })
    return summary


# --- shards (core/evaluation/sharding.py) ---------------------------------------------------------------------
def shard_results_name(rank: int) -> str:
    return f"results.shard-{rank}.jsonl"


def take_shard_rows(cache_dir: str | os.PathLike, rank: int) -> list[str]:
    """The rows a shard worker appended (its file is removed: rank 0 merges them into results.jsonl)."""
    path = Path(cache_dir) / shard_results_name(rank)
    if not path.is_file():
        return []
    rows = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    path.unlink()
    return rows


def merge_shard_rows(cache_dir: str | os.PathLike, parts: Sequence[dict]) -> None:
    rows = [row for part in parts for row in part["rows"]]
    if rows:
        path = Path(cache_dir) / RESULTS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write("".join(row + "\n" for row in rows))


def merged_timings(summary: dict, parts: Sequence[dict], started: float) -> None:
    """A sharded run's summary says what the workers did: the pairs they resumed and the time their maps took."""
    if not parts:
        return
    summary["timings"]["pairs_merged_from_workers"] = summary["n_resumed_from_cache"]
    summary["n_resumed_from_cache"] = sum(p["n_resumed_from_cache"] for p in parts)
    t = summary["timings"]
    t["maps_s_this_run"] = {m: round(sum(p["maps_s_this_run"].get(m, 0.0) for p in parts), 2)
                            for m in t["maps_s_this_run"]}
    for key in ("align_s", "hiding_game_verify_s"):
        t[key] = round(sum(p[key] for p in parts), 2)
    t["wall_s"] = round(time.perf_counter() - started, 2)
    t["processes"] = len(parts)


# --- outputs ------------------------------------------------------------------------------------------------
def markdown_table(summary: dict, paper: dict[str, float] | None = PAPER_LFW_AUC) -> str:
    """AUC per method (all / matched / mismatched) beside the paper's LFW column, then the accuracy curve."""
    methods = [m for m in summary["methods"] if m in summary["auc"]]
    steps = summary["steps"]
    deletion = summary.get("configuration", {}).get("order", "least") == "most"
    if deletion:
        paper = None       # the paper's column is for the hiding game, not for deletion
    lines = (["Deletion: the most salient pixels are hidden first; a lower AUC means a more faithful map.", ""]
             if deletion else [])
    lines += ["| Method | AUC (all) | AUC matched | AUC mismatched | Paper LFW AUC |", "|---|---:|---:|---:|---:|"]
    for m in methods:
        ref = f"{paper[m]:.2f}" if paper and m in paper else "–"
        lines.append(f"| {METHOD_LABELS.get(m, m)} | {summary['auc'][m]:.2f} | "
                     f"{summary['auc_matched'].get(m, float('nan')):.2f} | "
                     f"{summary['auc_mismatched'].get(m, float('nan')):.2f} | {ref} |")
    gaps = summary.get("ours_minus") or {}
    if gaps:
        better = "a negative gap: ours removes the evidence faster" if deletion else "a positive gap: ours keeps more"
        lines += ["", "Ours (S) minus each method, on the same pairs, with a 95 % paired bootstrap interval over the "
                      f"pairs ({better}):", ""]
        lines += [f"- {METHOD_LABELS.get(m, m)}: {g['difference']:+.2f} ({g['ci95'][0]:+.2f} to {g['ci95'][1]:+.2f}; "
                  f"{g['n_pairs']} pairs)" for m, g in gaps.items()]
    floor = summary.get("accuracy_fully_blurred") or {}
    if floor.get("all") is not None:
        lines += ["", f"Both faces entirely blurred (nothing kept): accuracy {floor['all']:.1f}% "
                      f"(matched {floor.get('matched') or 0:.1f}%, mismatched {floor.get('mismatched') or 0:.1f}%)."]
    lines += ["", "| Method | " + " | ".join(f"{s}%" for s in steps) + " |",
              "|---|" + "---:|" * len(steps)]
    for m in methods:
        lines.append(f"| {METHOD_LABELS.get(m, m)} | " + " | ".join(f"{v:.1f}" for v in summary["accuracy"][m])
                     + " |")
    return "\n".join(lines) + "\n"


def plot_curves(summary: dict, path: str | os.PathLike, title: str = "") -> None:
    """Accuracy vs share of hidden pixels (all / matched / mismatched panels), drawn with OpenCV."""
    methods = [m for m in summary["methods"] if m in summary["auc"]]
    steps = np.asarray(summary["steps"], np.float64)
    panels = [("all pairs", "accuracy", "auc"), ("matched", "accuracy_matched", "auc_matched"),
              ("mismatched", "accuracy_mismatched", "auc_mismatched")]
    pw, ph, W = 440, 420, 440 * 3
    H = ph + 60 + 22 * len(methods)
    img = np.full((H, W, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    values = [v for _, acc_key, _ in panels for m in methods for v in summary[acc_key].get(m, [])]
    lo = max(0.0, np.floor((min(values) if values else 0.0) / 10.0) * 10.0)
    for k, (name, acc_key, auc_key) in enumerate(panels):
        x0, y0, x1, y1 = k * pw + 55, 50, (k + 1) * pw - 15, ph - 20
        cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), 1)

        def fx(p):
            return x0 + (p - steps[0]) / max(steps[-1] - steps[0], 1e-9) * (x1 - x0)

        def fy(a):
            return y1 - (a - lo) / max(100.0 - lo, 1e-9) * (y1 - y0)

        for s in steps:
            cv2.line(img, (int(fx(s)), y0), (int(fx(s)), y1), (230, 230, 230), 1)
            cv2.putText(img, f"{int(s)}", (int(fx(s)) - 8, y1 + 15), font, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        for a in np.linspace(lo, 100.0, 6):
            cv2.line(img, (x0, int(fy(a))), (x1, int(fy(a))), (230, 230, 230), 1)
            cv2.putText(img, f"{a:.0f}", (x0 - 30, int(fy(a)) + 4), font, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, f"{name}: accuracy (%) vs hidden pixels (%)", (x0, y0 - 10), font, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
        floor = (summary.get("accuracy_fully_blurred") or {}).get(name.split()[0])
        if floor is not None:
            yf = int(fy(max(floor, lo)))
            for xs in range(x0, x1, 12):
                cv2.line(img, (xs, yf), (min(xs + 6, x1), yf), (110, 110, 110), 1, cv2.LINE_AA)
            cv2.putText(img, "all blurred", (x1 - 80, yf - 4), font, 0.38, (110, 110, 110), 1, cv2.LINE_AA)
        for m in methods:
            acc = summary[acc_key].get(m)
            if not acc:
                continue
            pts = np.stack([fx(steps), fy(np.asarray(acc))], 1).round().astype(np.int32)
            colour = METHOD_COLOURS.get(m, (0, 0, 0))
            cv2.polylines(img, [pts], False, colour, 2, cv2.LINE_AA)
            for p in pts:
                cv2.circle(img, tuple(int(v) for v in p), 3, colour, -1, cv2.LINE_AA)
    cv2.putText(img, title[:150], (10, 20), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for j, m in enumerate(methods):
        y = ph + 30 + 22 * j
        colour = METHOD_COLOURS.get(m, (0, 0, 0))
        cv2.line(img, (60, y - 5), (100, y - 5), colour, 3, cv2.LINE_AA)
        aucs = "  ".join(f"{lab} {summary[key].get(m, float('nan')):.2f}"
                         for lab, key in (("AUC all", "auc"), ("matched", "auc_matched"),
                                          ("mismatched", "auc_mismatched")))
        cv2.putText(img, f"{METHOD_LABELS.get(m, m)}: {aucs}", (110, y), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    if not cv2.imwrite(str(path), img):
        raise XfrError(f"cannot write {path}")
