"""Measurements of explanation quality: how pair-specific, how faithful, how model-dependent?

All numbers come from one pass over a pair list (`xfr evaluate explanations`, docs/hiding_game.md):

- **Argmax statistics** of the conv map C per image: the share of channels whose spatial maximum sits on the most
  used cell of C's grid (``argmax_modal_share``), the number of distinct cells holding some channel's maximum
  (``argmax_cells_used``) and the entropy of that distribution in bits (``argmax_entropy_bits``). Algorithm 1
  changes C only at the maxima, so channels that peak on one cell give residuals that coincide.
- **Residual correlation**: the mean pairwise Pearson correlation of Algorithm 1's normalized per-channel
  residuals of one image (live channels only: ``SideExplanation.contributing``).
- **Partner correlation**: for an image explained against two or more different non-mates, the mean Pearson
  correlation of its S⁺ (and H) maps between partners. Low = the map depends on the partner (pair-specific).
- **Reconstruction PSNR** of the decoder's R0 against the aligned chip (8-bit pixels).
- **Region-swap game**: for a pair of different people (A, B), A′ = A with one facial region (eyes and brows, nose,
  mouth; boxes from the model's landmark template) replaced by B's, blended with Poisson cloning. In the pair
  (A, A′) the only difference is the swapped region, so a map of dissimilarity on A′ should sit there. Mass ratio
  = (share of the map's mass inside the region) / (region's share of the image): 1 is chance (a uniform map gives
  exactly 1). Pointing = the map's peak inside the region (ties shared). Swaps that move the score of (A, A′) by
  less than a margin are skipped and counted: the model does not see them.
- **Model randomization** (Adebayo et al., 2018): the decoder and the last quarter of the backbone re-initialized;
  the mean |Pearson| correlation of the maps before and after (low = the map depends on the trained weights).

Qt-free; the CLI is `xfr_desktop/commands/evaluate_explanations.py`.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
import torch.nn as nn

from ..attribution import Explainer, XFaceExplainer, get_explainer
from ..algorithm1_engines import channel_maxima
from ..errors import ImageError, XfrError
from ..explain import explain_pair
from ..render import overlay, save_png
from .hiding_game import METHOD_LABELS, embed_batch, model_identity
from .occlusion import mass_share

REGIONS = ("eyes", "nose", "mouth")
REGION_LABELS = {"eyes": "eyes + brows", "nose": "nose", "mouth": "mouth"}
DEFAULT_METHODS = ("ours", "gradient", "gradcampp", "stylianou")
ROW_LABELS = {**METHOD_LABELS, "ours": "Ours (S- on A')", "stylianou-neg": "Stylianou, negative part",
              "xface-neg": "xFace, negative part", "uniform": "uniform map (reference)",
              "centre": "centre prior (reference)"}

ProgressFn = Callable[[str, int, int], None]


# --- per-image statistics -----------------------------------------------------------------------------------
def argmax_positions(C) -> np.ndarray:
    """(c, h, w) conv map (numpy or torch) -> (c, 2) row, col of each channel's maximum (first index on ties),
    the positions Algorithm 1 modifies (``algorithm1_engines.channel_maxima``)."""
    t = torch.as_tensor(np.asarray(C) if not isinstance(C, torch.Tensor) else C)
    _, pos, _ = channel_maxima(t[None] if t.ndim == 3 else t)
    return pos.cpu().numpy()


def argmax_statistics(argmax: np.ndarray) -> dict[str, float]:
    """How the channels' maxima spread over C's grid, from (c, 2) positions.

    ``modal_share``: share of channels whose maximum sits on the most used cell (1/c .. 1); ``cells_used``: number
    of distinct cells holding some channel's maximum; ``entropy_bits``: entropy of the cell distribution.
    """
    pos = np.asarray(argmax).reshape(-1, 2)
    if len(pos) == 0:
        raise ValueError("no channels")
    _, counts = np.unique(pos, axis=0, return_counts=True)
    p = counts / counts.sum()
    return {"modal_share": float(counts.max() / counts.sum()), "cells_used": int(len(counts)),
            "entropy_bits": float(-(p * np.log2(p)).sum()) + 0.0}


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two maps (flattened); NaN when either is constant."""
    return mean_pairwise_correlation(np.stack([np.ravel(x), np.ravel(y)]))


def mean_pairwise_correlation(maps: np.ndarray) -> float:
    """Mean Pearson correlation over all pairs of rows of ``maps`` (n, ...) (the upper triangle of
    ``numpy.corrcoef``); constant rows are left out; NaN when fewer than two rows remain."""
    if len(maps) < 2:       # (numpy cannot reshape an empty stack to (0, -1))
        return float("nan")
    X = np.asarray(maps, np.float64).reshape(len(maps), -1)
    X = X - X.mean(axis=1, keepdims=True)
    norms = np.sqrt((X * X).sum(axis=1))
    X = X[norms > 0] / norms[norms > 0, None]
    n = len(X)
    if n < 2:
        return float("nan")
    G = X @ X.T
    return float(G[np.triu_indices(n, k=1)].mean())


def psnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (peak 255); inf when identical."""
    diff = np.asarray(reference, np.float64) - np.asarray(test, np.float64)
    mse = float(np.mean(diff * diff))
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0 ** 2 / mse))


def image_statistics(side) -> dict[str, float]:
    """The per-image numbers from one side of a :class:`PairExplanation` (they do not depend on the partner:
    residuals, maxima and the reconstruction come from the image's own C)."""
    stats = argmax_statistics(side.argmax)
    live = np.flatnonzero(side.contributing)
    residuals = side.residuals.dense()[live] if len(live) >= 2 else np.zeros((0, 1))
    return {"argmax_modal_share": stats["modal_share"], "argmax_cells_used": stats["cells_used"],
            "argmax_entropy_bits": stats["entropy_bits"],
            "residual_mean_corr": mean_pairwise_correlation(residuals), "live_channels": int(len(live)),
            "reconstruction_psnr_db": psnr_db(side.aligned, side.reconstruction)}


# --- the region-swap game -----------------------------------------------------------------------------------
def region_boxes(template: np.ndarray, size: Sequence[int]) -> dict[str, tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) pixel boxes (x1, y1 exclusive) of eyes+brows, nose and mouth on the aligned face.

    From the template's five landmarks (right eye, left eye, nose tip, mouth corners) with d = the eye distance:
    eyes+brows x from the right eye − 0.45d to the left eye + 0.45d, y from the eye line − 0.55d (brows) to
    + 0.25d; nose x the tip ± 0.35d, y from the eye box's bottom to the tip + 0.18d (nostrils); mouth x from the
    corners ∓ 0.25d, y from the nose box's bottom (or the mouth line − 0.25d, the lower) to the mouth line + 0.3d.
    The boxes do not overlap. On the bundled 150 px template: 103×43, 37×28 and 73×30 px (19.7 %, 4.6 % and
    9.7 % of the chip).
    """
    H, W = (int(v) for v in size)
    eye_r, eye_l, nose, mouth_r, mouth_l = np.asarray(template, np.float64)
    d = float(np.linalg.norm(eye_l - eye_r))
    eye_y = (eye_r[1] + eye_l[1]) / 2
    mouth_y = (mouth_r[1] + mouth_l[1]) / 2
    raw = {
        "eyes": (min(eye_r[0], eye_l[0]) - 0.45 * d, eye_y - 0.55 * d, max(eye_r[0], eye_l[0]) + 0.45 * d,
                 eye_y + 0.25 * d),
        "nose": (nose[0] - 0.35 * d, eye_y + 0.25 * d, nose[0] + 0.35 * d, nose[1] + 0.18 * d),
        "mouth": (min(mouth_r[0], mouth_l[0]) - 0.25 * d, max(mouth_y - 0.25 * d, nose[1] + 0.18 * d),
                  max(mouth_r[0], mouth_l[0]) + 0.25 * d, mouth_y + 0.3 * d),
    }
    boxes = {}
    for name, (x0, y0, x1, y1) in raw.items():
        bx0, by0 = max(int(round(x0)), 1), max(int(round(y0)), 1)
        bx1, by1 = min(int(round(x1)), W - 1), min(int(round(y1)), H - 1)
        if bx1 - bx0 < 2 or by1 - by0 < 2:
            raise ValueError(f"the {name} box {raw[name]} does not fit a {W}x{H} face")
        boxes[name] = (bx0, by0, bx1, by1)
    return boxes


def box_mask(box: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """(H, W) bool, True inside the box (x1, y1 exclusive)."""
    x0, y0, x1, y1 = box
    mask = np.zeros(tuple(int(v) for v in size), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def swap_region(a: np.ndarray, b: np.ndarray, box: Sequence[int], feather: float = 2.0) -> tuple[np.ndarray, str]:
    """A′: ``a`` with the box taken from ``b`` (same place: the faces are aligned), Poisson-blended
    (``cv2.seamlessClone``, NORMAL_CLONE, box mask). Pixels outside the box stay ``a``'s exactly. If cloning fails,
    an alpha blend with a mask feathered inside the box (Gaussian σ = ``feather`` px). Returns (A′, how)."""
    x0, y0, x1, y1 = (int(v) for v in box)
    inside = box_mask(box, a.shape[:2])
    try:
        mask = inside.astype(np.uint8) * 255
        # the centre of the mask's bounding box, where OpenCV puts the source's box: the same place in dst
        centre = (x0 + (x1 - x0) // 2, y0 + (y1 - y0) // 2)
        cloned = cv2.seamlessClone(np.ascontiguousarray(b[:, :, ::-1]), np.ascontiguousarray(a[:, :, ::-1]),
                                   mask, centre, cv2.NORMAL_CLONE)[:, :, ::-1]
        how = "seamless"
    except cv2.error:
        k = 2 * int(np.ceil(3 * feather)) + 1
        eroded = cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=int(np.ceil(feather)))
        alpha = cv2.GaussianBlur(eroded.astype(np.float32), (k, k), feather)[..., None]
        cloned = np.round(alpha * b + (1 - alpha) * a).astype(np.uint8)
        how = "alpha"
    return np.where(inside[..., None], cloned, a).astype(np.uint8), how


def mass_ratio(saliency: np.ndarray, region: np.ndarray) -> float:
    """Share of the map's (non-negative) mass inside ``region`` over the region's share of the image: 1 = chance,
    exactly 1 for a uniform map; NaN for an all-zero map."""
    return mass_share(saliency, region) / (int(region.sum()) / region.size)


def pointing_hit(saliency: np.ndarray, region: np.ndarray) -> float:
    """1 when the map's peak lies inside ``region``, 0 outside; with ties, the share of the tied peak pixels inside
    (a uniform map scores the region's area share). NaN for an all-zero map (after clipping negatives)."""
    s = np.clip(np.asarray(saliency, np.float64), 0, None)
    top = s.max()
    if not top > 0:
        return float("nan")
    peaks = s == top
    return float(peaks[region].sum() / peaks.sum())


@dataclass
class SwapRow:
    """One row of the game: a method's map on A′ turned into a non-negative dissimilarity map."""

    name: str
    explainer: Explainer | None     # None: the uniform reference
    sign: float = 1.0               # -1: the negative part of a signed map


def swap_rows(methods: Sequence[str], explainers: dict[str, Explainer] | None = None) -> list[SwapRow]:
    """The rows for ``methods``: ``ours`` plays with S⁻ (``ours-neg``); every other method with its map as the
    hiding game uses it, clipped at 0, plus, for signed maps (Stylianou, xFace), the negative part as its own row
    (``<name>-neg``: the evidence against the match); then the uniform and centre-prior references."""
    explainers = dict(explainers or {})
    rows = []
    for m in methods:
        ex = explainers.get(m) or get_explainer("ours-neg" if m == "ours" else m)
        rows.append(SwapRow(m, ex))
        if ex.signed:
            rows.append(SwapRow(f"{m}-neg", ex, -1.0))
    rows += [SwapRow("uniform", None), SwapRow("centre", explainers.get("centre") or get_explainer("centre"))]
    return rows


def swap_maps(model, a: np.ndarray, a_prime: np.ndarray, rows: Sequence[SwapRow],
              seconds: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """Each row's non-negative map on A′ in the pair (A, A′); each explainer runs once (its signed rows share it).
    ``seconds`` accumulates the time per explainer name."""
    maps: dict[str, np.ndarray] = {}
    raw: dict[int, np.ndarray] = {}
    for row in rows:
        if row.explainer is None:
            maps[row.name] = np.ones(model.input_size, np.float32)
            continue
        key = id(row.explainer)
        if key not in raw:
            t0 = time.perf_counter()
            raw[key] = row.explainer(model, a, a_prime)[1]
            if seconds is not None:
                seconds[row.name] = seconds.get(row.name, 0.0) + time.perf_counter() - t0
        maps[row.name] = np.clip(row.sign * raw[key], 0, None)
    return maps


@dataclass
class SwapResult:
    region: str
    box: tuple[int, int, int, int]
    score_pair: float        # s(A, B)
    score_swap: float        # s(A, A′)
    kept: bool
    blend: str
    ratio: dict[str, float] = field(default_factory=dict)
    hit: dict[str, float] = field(default_factory=dict)
    #: the control: mean mass ratio in this box of the maps made for the pair's other (kept) swaps, where this
    #: region was not touched; a map that follows the swap scores well above it
    control: dict[str, float] = field(default_factory=dict)
    maps: dict[str, np.ndarray] | None = None        # kept only for the figure
    a: np.ndarray | None = None
    a_prime: np.ndarray | None = None
    pair: str = ""


def play_swaps(model, a: np.ndarray, b: np.ndarray, rows: Sequence[SwapRow], margin: float,
               boxes: dict[str, tuple] | None = None, seconds: dict[str, float] | None = None,
               keep_maps: bool = False, embeddings: torch.Tensor | None = None) -> list[SwapResult]:
    """The swap game for one pair of different people: one swap per region; a swap whose score s(A, A′) is more
    than 1 − ``margin`` (the model barely sees it) is returned with ``kept=False`` and no maps. ``embeddings``:
    A's and B's normalized embeddings (2, c) when already computed (``embed_batch``)."""
    boxes = boxes or region_boxes(model.template, model.input_size)
    swapped = {r: swap_region(a, b, box) for r, box in boxes.items()}
    if embeddings is None:
        F = embed_batch(model, np.stack([a, b] + [swapped[r][0] for r in boxes]))
    else:
        F = torch.cat([embeddings.to(torch.float64), embed_batch(model, np.stack([swapped[r][0] for r in boxes]))])
    score_pair = float(F[0] @ F[1])
    out, all_maps = [], {}
    for k, (region, box) in enumerate(boxes.items()):
        a_prime, how = swapped[region]
        score = float(F[0] @ F[2 + k])
        res = SwapResult(region, tuple(box), score_pair, score, 1.0 - score >= margin, how)
        if res.kept:
            mask = box_mask(box, model.input_size)
            maps = all_maps[region] = swap_maps(model, a, a_prime, rows, seconds)
            res.ratio = {name: mass_ratio(m, mask) for name, m in maps.items()}
            res.hit = {name: pointing_hit(m, mask) for name, m in maps.items()}
            if keep_maps:
                res.maps, res.a, res.a_prime = maps, a, a_prime
        out.append(res)
    for res in out:
        others = [maps for region, maps in all_maps.items() if region != res.region]
        if res.kept and others:
            mask = box_mask(res.box, model.input_size)
            res.control = {name: _mean(mass_ratio(m[name], mask) for m in others) for name in res.ratio}
    return out


def _mean(values) -> float | None:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    return float(v.mean()) if len(v) else None


def _median(values) -> float | None:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    return float(np.median(v)) if len(v) else None


def summarize_swaps(results: Sequence[SwapResult], rows: Sequence[str]) -> dict:
    """Per row: mean / median mass ratio, hit rate, n (swaps with a non-empty map), n_empty, and per region."""
    kept = [r for r in results if r.kept]
    out = {}
    for name in rows:
        def block(sel):
            ratios = [r.ratio[name] for r in sel]
            hits = [r.hit[name] for r in sel]
            n = int(sum(np.isfinite(x) for x in ratios))
            return {"mass_ratio_mean": _mean(ratios), "mass_ratio_median": _median(ratios),
                    "hit_rate": _mean(hits), "n": n, "n_empty_map": len(sel) - n,
                    "control_mass_ratio_mean": _mean(r.control.get(name) for r in sel)}

        entry = block(kept)
        entry["per_region"] = {reg: block([r for r in kept if r.region == reg]) for reg in REGIONS}
        out[name] = entry
    return out


# --- model randomization (Adebayo et al.) -------------------------------------------------------------------
def _units(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """Top-level children, with ModuleList / Sequential children expanded into their items (blocks)."""
    units = []
    for name, child in module.named_children():
        if isinstance(child, (nn.ModuleList, nn.Sequential)):
            units += [(f"{name}.{n}", c) for n, c in child.named_children()]
        else:
            units.append((name, child))
    return units


def _holders(module: nn.Module) -> list[nn.Module]:
    """Sub-modules that hold parameters directly."""
    return [m for m in module.modules() if any(True for _ in m.parameters(recurse=False))]


def _reinit(module: nn.Module) -> None:
    """``reset_parameters`` where the module has one (BatchNorm also resets its running statistics); otherwise
    1-D weights to 1 and biases to 0, both with N(0, 0.1) jitter (dlib's Affine), and other tensors
    Kaiming-uniform as a convolution's default."""
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
        return
    with torch.no_grad():
        for name, p in module.named_parameters(recurse=False):
            if p.ndim >= 2:
                nn.init.kaiming_uniform_(p, a=5 ** 0.5)
            else:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(p))


def randomize_model(model, fraction: float = 0.25, seed: int = 0):
    """A deep copy with every parameter of the decoder and of the last ``fraction`` of the backbone
    re-initialized; returns (copy, names of the re-initialized backbone units).

    The backbone is cut into units (top-level children, blocks of a ModuleList / Sequential counted one each) and
    the shortest run of last units holding at least ``fraction`` of the backbone's parameter-holding modules is
    re-initialized. For the bundled dlib model that is ``blocks.10``–``blocks.13`` and ``head``; for IResNet-50 the
    last layer group, the last blocks of ``layer3`` and ``bn2``.
    """
    rnd = copy.deepcopy(model)
    units = [(n, u) for n, u in _units(rnd.backbone) if _holders(u)]
    total = sum(len(_holders(u)) for _, u in units)
    chosen, count = [], 0
    for name, unit in reversed(units):
        if count >= fraction * total:
            break
        chosen.append((name, unit))
        count += len(_holders(unit))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in _holders(rnd.decoder) + [m for _, u in chosen for m in _holders(u)]:
            _reinit(m)
    return rnd.eval(), [name for name, _ in reversed(chosen)]


def randomization_correlations(model, faces: Sequence[tuple[np.ndarray, np.ndarray, tuple]], fraction: float,
                               seed: int, progress: Callable[[int, int], None] | None = None
                               ) -> tuple[dict[str, list[float]], list[str]]:
    """|Pearson| between the trained and the randomized model's maps, two per pair: H of Algorithm 1 ("ours") and
    the gradient map. ``faces`` holds (a, b, (H_a, H_b) of the trained model); returns ({"ours", "gradient"}: one
    value per image, the names of the re-initialized backbone units)."""
    rnd, units = randomize_model(model, fraction, seed)
    grad = get_explainer("gradient")
    corr: dict[str, list[float]] = {"ours": [], "gradient": []}
    for i, (a, b, trained) in enumerate(faces):
        h_rnd = explain_pair(rnd, a, b)
        corr["ours"] += [abs(pearson(x, y)) for x, y in zip(trained, (h_rnd.a.H, h_rnd.b.H))]
        corr["gradient"] += [abs(pearson(x, y)) for x, y in zip(grad(model, a, b), grad(rnd, a, b))]
        if progress:
            progress(i + 1, len(faces))
    return corr, units


# --- the run ------------------------------------------------------------------------------------------------
@dataclass
class QualityPair:
    key_a: str
    key_b: str
    same: bool
    label: str = ""


@dataclass
class QualityConfig:
    methods: tuple[str, ...] = DEFAULT_METHODS
    seed: int = 0
    #: a swap counts when it lowers the score of (A, A′) from 1 by at least this much (cosine units)
    swap_margin: float = 0.02
    extra_partner_images: int = 20
    extra_partners_per_image: int = 2
    sanity_pairs: int = 10
    randomize_fraction: float = 0.25
    examples: int = 4
    xface_stride: int = 5
    batch_size: int = 64


class _Identities:
    """Union-find over image keys: a base identity (e.g. the LFW folder) joined by the matched pairs."""

    def __init__(self, base: Callable[[str], str] | None):
        self.base = base or (lambda key: key)
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        root = self.base(key)
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        return root

    def join(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def run_explanation_quality(model, pairs: Sequence[QualityPair], load: Callable[[str], np.ndarray],
                            config: QualityConfig = QualityConfig(),
                            identity: Callable[[str], str] | None = None,
                            progress: ProgressFn | None = None, share: tuple[int, int] | None = None,
                            done_by_workers: Sequence[dict] = ()) -> tuple[dict, list[SwapResult]]:
    """All measurements on ``pairs``; ``load(key)`` gives an aligned face (ImageError: the pairs that need it are
    left out and counted). ``identity(key)`` names the person where the list says so (LFW folders); matched pairs
    join identities too. Returns (summary for explanations.json, swap results kept for the figure).

    Sharded (core/evaluation/sharding.py): with ``share`` = (rank, world) a worker runs Algorithm 1 and the swap
    game on its share of the planned pairs only and returns ({"pairs", "swaps", "swap_seconds"}, []); rank 0 passes
    the workers' parts as ``done_by_workers`` and computes only what they left (the figure's few example swaps)."""
    t_start = time.perf_counter()
    report = progress or (lambda stage, done, total: None)
    model.eval()
    timings: dict[str, float] = {}

    # images: aligned once, embedded once
    t0 = time.perf_counter()
    images: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    keys = list(dict.fromkeys(k for p in pairs for k in (p.key_a, p.key_b)))
    for i, key in enumerate(keys):
        try:
            images[key] = load(key)
        except ImageError as exc:
            failed[key] = str(exc)
        report("align", i + 1, len(keys))
    timings["align_s"] = time.perf_counter() - t0
    usable = [p for p in pairs if p.key_a in images and p.key_b in images and p.key_a != p.key_b]
    if not usable:
        example = next(iter(failed.values()), "")
        raise XfrError(f"no pair with a face in both images ({len(failed)} images failed{': ' if example else ''}"
                       f"{example})")
    order = [k for k in keys if k in images and any(k in (p.key_a, p.key_b) for p in usable)]
    t0 = time.perf_counter()
    embedded = embed_batch(model, np.stack([images[k] for k in order]), config.batch_size)
    row_of = {k: i for i, k in enumerate(order)}
    timings["embed_s"] = time.perf_counter() - t0
    ids = _Identities(identity)
    for p in usable:
        if p.same:
            ids.join(p.key_a, p.key_b)

    # Algorithm 1 on every pair of the list (+ extra non-mate partners), each pair once
    per_image: dict[str, dict] = {}
    partner_maps: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    done: set[tuple[str, str]] = set()
    timings["ours_pairs_s"] = 0.0
    known = {k: v for part in done_by_workers for k, v in part["pairs"].items()}
    mine: dict[tuple[str, str], dict] = {}                      # a worker's records, for rank 0
    sanity_keys = [(p.key_a, p.key_b) for p in usable[:config.sanity_pairs]]

    def explain(ka: str, kb: str, mismatched: bool) -> dict | None:
        """Algorithm 1 on (ka, kb) unless that pair (either way round) was explained already (or, in a worker,
        belongs to another share: the n-th planned pair goes to worker n mod world)."""
        if (ka, kb) in done or (kb, ka) in done:
            return None
        done.add((ka, kb))
        rec = known.get((ka, kb))
        if rec is None and share is not None and (len(done) - 1) % share[1] != share[0]:
            if mismatched:  # the plan of extra partners needs the keys only
                partner_maps.setdefault(ka, {}).setdefault(kb, None)
                partner_maps.setdefault(kb, {}).setdefault(ka, None)
            return None
        if rec is None:
            t1 = time.perf_counter()
            ex = explain_pair(model, images[ka], images[kb])
            rec = {"seconds": time.perf_counter() - t1, "stats": (image_statistics(ex.a), image_statistics(ex.b)),
                   "maps": tuple((s.S_pos, s.H) if mismatched or (ka, kb) in sanity_keys else None
                                 for s in (ex.a, ex.b))}
            mine[(ka, kb)] = rec
        timings["ours_pairs_s"] += rec["seconds"]
        for key, stats, maps, other in ((ka, rec["stats"][0], rec["maps"][0], kb),
                                        (kb, rec["stats"][1], rec["maps"][1], ka)):
            if key not in per_image:
                per_image[key] = stats
            if mismatched:
                partner_maps.setdefault(key, {})[other] = maps
        return rec

    trained_h = {}
    for i, p in enumerate(usable):
        rec = explain(p.key_a, p.key_b, not p.same)
        if rec is not None and (p.key_a, p.key_b) in sanity_keys:
            trained_h[(p.key_a, p.key_b)] = (rec["maps"][0][1], rec["maps"][1][1])
        report("pairs", i + 1, len(usable))
    sanity_keys = [k for k in dict.fromkeys(sanity_keys) if k in trained_h]

    # extra non-mate partners: pairs.txt rarely repeats an image across its mismatched pairs
    rng = np.random.default_rng([int(config.seed) & 0xFFFFFFFF, 12])
    first = order[:min(config.extra_partner_images, len(order))]
    extra = []
    for key in first:
        taken = set(partner_maps.get(key, {}))
        candidates = [k for k in order if ids.find(k) != ids.find(key) and k not in taken]
        n = min(config.extra_partners_per_image, len(candidates))
        for j in sorted(rng.choice(len(candidates), size=n, replace=False).tolist()) if n else []:
            extra.append((key, candidates[j]))
            partner_maps.setdefault(key, {}).setdefault(candidates[j], None)    # reserved both ways: not
            partner_maps.setdefault(candidates[j], {}).setdefault(key, None)    # drawn twice
    for i, (ka, kb) in enumerate(extra):
        explain(ka, kb, True)
        report("extra partners", i + 1, len(extra))

    partner = {"splus": [], "h": [], "images": []}  # (in a worker: meaningless, its maps are partial)
    for key in order:
        maps = [m for m in partner_maps.get(key, {}).values() if m is not None]
        if len(maps) < 2:
            continue
        partner["images"].append(key)
        for j, name in enumerate(("splus", "h")):
            partner[name].append(mean_pairwise_correlation(np.stack([m[j] for m in maps])))

    # the region-swap game on the list's mismatched pairs
    rows = swap_rows(config.methods, {"xface": XFaceExplainer(stride=config.xface_stride)}
                     if "xface" in config.methods else None)
    row_names = [r.name for r in rows]
    boxes = region_boxes(model.template, model.input_size)
    swap_seconds: dict[str, float] = {}
    for part in done_by_workers:
        for k, v in part["swap_seconds"].items():
            swap_seconds[k] = swap_seconds.get(k, 0.0) + v
    known_swaps = {k: v for part in done_by_workers for k, v in part["swaps"].items()}
    swaps: list[SwapResult] = []
    mismatched = [p for p in usable if not p.same]
    t0 = time.perf_counter()
    shown = {reg: 0 for reg in REGIONS}      # figure examples: regions in turn, one swap per pair
    if share is not None:  # a worker: its share of the swap games (no figure maps), then back to rank 0
        mine_swaps = {(p.key_a, p.key_b): play_swaps(
            model, images[p.key_a], images[p.key_b], rows, config.swap_margin, boxes, swap_seconds, keep_maps=False,
            embeddings=embedded[[row_of[p.key_a], row_of[p.key_b]]]) for p in mismatched[share[0]::share[1]]}
        return {"pairs": mine, "swaps": mine_swaps, "swap_seconds": swap_seconds}, []
    for i, p in enumerate(mismatched):
        keep = sum(shown.values()) < config.examples
        results = None if keep else known_swaps.get((p.key_a, p.key_b))
        if results is None:
            results = play_swaps(model, images[p.key_a], images[p.key_b], rows, config.swap_margin, boxes,
                                 swap_seconds, keep_maps=keep, embeddings=embedded[[row_of[p.key_a], row_of[p.key_b]]])
        pair_shown = False
        for r in results:
            r.pair = p.label or f"{p.key_a} / {p.key_b}"
            if r.maps is not None:
                if pair_shown or sum(shown.values()) >= config.examples or shown[r.region] > min(shown.values()):
                    r.maps = r.a = r.a_prime = None
                else:
                    shown[r.region] += 1
                    pair_shown = True
        swaps += results
        report("swaps", i + 1, len(mismatched))
    timings["swap_game_s"] = time.perf_counter() - t0
    n_kept = sum(r.kept for r in swaps)

    # model randomization
    t0 = time.perf_counter()
    corr, reinit_units = randomization_correlations(
        model, [(images[ka], images[kb], trained_h[(ka, kb)]) for ka, kb in sanity_keys],
        config.randomize_fraction, config.seed, lambda done, total: report("randomized model", done, total))
    timings["sanity_s"] = time.perf_counter() - t0

    def stat(name):
        return _mean(v[name] for v in per_image.values())

    n_swaps = len(swaps)
    summary = {
        "argmax_modal_share": stat("argmax_modal_share"),
        "argmax_cells_used": stat("argmax_cells_used"),
        "argmax_entropy_bits": stat("argmax_entropy_bits"),
        "residual_mean_corr": stat("residual_mean_corr"),
        "partner_corr_splus": _mean(partner["splus"]),
        "partner_corr_h": _mean(partner["h"]),
        "partner_corr_n": len(partner["images"]),
        "reconstruction_psnr_db": stat("reconstruction_psnr_db"),
        "swap_game": summarize_swaps(swaps, row_names),
        "sanity_randomized_corr": _mean(corr["ours"]),
        "sanity_randomized_corr_gradient": _mean(corr["gradient"]),
        "n_pairs": len(usable),
        "n_pairs_listed": len(pairs),
        "n_matched": sum(p.same for p in usable),
        "n_mismatched": len(mismatched),
        "n_images": len(order),
        "n_no_face": len(failed),
        "no_face": [f"{k}: {v}" for k, v in list(failed.items())[:20]],
        "swaps": {
            "n_swaps": n_swaps, "n_kept": n_kept,
            "n_skipped_per_region": {reg: sum(1 for r in swaps if r.region == reg and not r.kept) for reg in REGIONS},
            "n_kept_per_region": {reg: sum(1 for r in swaps if r.region == reg and r.kept) for reg in REGIONS},
            "n_alpha_fallback": sum(r.blend == "alpha" for r in swaps),
            "margin": config.swap_margin,
            "boxes": {reg: list(box) for reg, box in boxes.items()},
            "area_share": {reg: float(box_mask(box, model.input_size).mean()) for reg, box in boxes.items()},
            "rows": row_names,
            "per_swap": [{"pair": r.pair, "region": r.region, "score_pair": round(r.score_pair, 6),
                          "score_swap": round(r.score_swap, 6), "kept": r.kept, "blend": r.blend,
                          "mass_ratio": {k: _round(v) for k, v in r.ratio.items()},
                          "hit": {k: _round(v) for k, v in r.hit.items()},
                          "control_mass_ratio": {k: _round(v) for k, v in r.control.items()}} for r in swaps],
        },
        "partner": {"images": partner["images"], "corr_splus": partner["splus"], "corr_h": partner["h"],
                    "n_extra_pairs": len(extra), "extra_pairs": [list(e) for e in extra],
                    "extra_partner_images": len(first), "extra_partners_per_image": config.extra_partners_per_image},
        "sanity": {"n_pairs": len(sanity_keys), "ours_abs_corr": corr["ours"], "gradient_abs_corr": corr["gradient"],
                   "reinitialized": ["decoder (all)"] + [f"backbone.{n}" for n in reinit_units],
                   "fraction": config.randomize_fraction},
        "per_image": {k: {m: _round(v) for m, v in s.items()} for k, s in per_image.items()},
        "configuration": {"methods": list(config.methods), "seed": config.seed, "swap_margin": config.swap_margin,
                          "sanity_pairs": config.sanity_pairs, "xface_stride": config.xface_stride,
                          "explain": "explain_pair defaults (engine fast, sum normalization, model threshold)"},
        "model": {"path": getattr(model, "path", None), "sha256": model_identity(model),
                  "name": model.spec.get("name"), "input_size": list(model.input_size),
                  "threshold": model.threshold, "device": str(model.device)},
        "timings": {
            **{k: round(v, 2) for k, v in timings.items()},
            "swap_methods_s": {k: round(v, 2) for k, v in swap_seconds.items()},
            "swap_methods_s_per_swap": {k: round(v / max(n_kept, 1), 4) for k, v in swap_seconds.items()},
            "ours_s_per_pair": round(timings["ours_pairs_s"] / max(len(usable) + len(extra), 1), 4),
            "wall_s": round(time.perf_counter() - t_start, 2),
            "torch_threads": torch.get_num_threads(),
        },
    }
    return summary, swaps


def _round(v):
    return None if v is None or not np.isfinite(v) else round(float(v), 6)


# --- outputs ------------------------------------------------------------------------------------------------
def _fmt(v, digits=3):
    return "–" if v is None else f"{v:.{digits}f}"


def markdown_report(summary: dict) -> str:
    """The numbers of explanations.json as markdown tables."""
    s = summary
    fraction = s["sanity"].get("fraction")   # absent in files written before 2026-12-06
    rnd = f"{s['sanity']['n_pairs']} pairs" + ("" if fraction is None else
                                               f"; decoder + last {fraction:.0%} of the backbone re-initialized")
    lines = ["| Measure | Value | Over |", "|---|---:|---|",
             f"| argmax modal share | {_fmt(s['argmax_modal_share'])} | {s['n_images']} images |",
             f"| argmax cells used | {_fmt(s['argmax_cells_used'], 2)} | {s['n_images']} images |",
             f"| argmax entropy (bits) | {_fmt(s['argmax_entropy_bits'], 2)} | {s['n_images']} images |",
             f"| residual mean correlation | {_fmt(s['residual_mean_corr'])} | {s['n_images']} images |",
             f"| partner correlation S+ | {_fmt(s['partner_corr_splus'])} | {s['partner_corr_n']} images |",
             f"| partner correlation H | {_fmt(s['partner_corr_h'])} | {s['partner_corr_n']} images |",
             f"| reconstruction PSNR (dB) | {_fmt(s['reconstruction_psnr_db'], 2)} | {s['n_images']} images |",
             f"| randomized model, mean abs corr of H (ours) | {_fmt(s['sanity_randomized_corr'])} | {rnd} |",
             f"| randomized model, mean abs corr (Gradient) | {_fmt(s['sanity_randomized_corr_gradient'])} | "
             f"{rnd} |"]
    sw = s["swaps"]
    lines += ["", f"Region-swap game: {sw['n_kept']} of {sw['n_swaps']} swaps kept (score of (A, A') at most "
                  f"1 - {sw['margin']:g}); skipped per region: "
              + ", ".join(f"{REGION_LABELS[r]} {sw['n_skipped_per_region'][r]}" for r in REGIONS) + ".", "",
              "| Method | mass ratio mean | median | hit rate | n | empty maps | control | " + " | ".join(
                  f"{REGION_LABELS[r]}: ratio / control / hit (n)" for r in REGIONS) + " |",
              "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(REGIONS)]
    for name in sw["rows"]:
        g = s["swap_game"][name]
        regs = " | ".join(f"{_fmt(g['per_region'][r]['mass_ratio_mean'], 2)} / "
                          f"{_fmt(g['per_region'][r]['control_mass_ratio_mean'], 2)} / "
                          f"{_fmt(g['per_region'][r]['hit_rate'], 2)} ({g['per_region'][r]['n']})" for r in REGIONS)
        lines.append(f"| {ROW_LABELS.get(name, name)} | {_fmt(g['mass_ratio_mean'], 2)} | "
                     f"{_fmt(g['mass_ratio_median'], 2)} | {_fmt(g['hit_rate'], 2)} | {g['n']} | {g['n_empty_map']} | "
                     f"{_fmt(g['control_mass_ratio_mean'], 2)} | {regs} |")
    lines += ["", "Mass ratio: share of the map's mass inside the swapped region / the region's share of the image "
                  "(1 = chance). Hit: the map's peak inside the region. Control: the mass ratio in the same box of "
                  "the maps made for the pair's swaps of the other regions (a map that follows the swap beats its "
                  "control; a map that always sits there does not). Empty maps (nothing left after clipping "
                  "negatives) are counted, not scored."]
    return "\n".join(lines) + "\n"


FIGURE_LABELS = {"ours": "Ours (S-)", "stylianou-neg": "Stylianou (-)", "xface-neg": "xFace (-)",
                 "centre": "centre prior"}


def _display_max(m: np.ndarray) -> float | None:
    """The value shown at full colour: the 99th percentile of the map's positive pixels (peaky maps stay visible)."""
    pos = m[m > 0]
    return float(np.percentile(pos, 99)) if len(pos) else None


def plot_swap_examples(swaps: Sequence[SwapResult], rows: Sequence[str], path, scale: int = 1) -> None:
    """A figure: per kept swap with maps, A, A′ and each row's map over A′, the swapped box drawn."""
    examples = sorted((r for r in swaps if r.maps is not None), key=lambda r: REGIONS.index(r.region))
    rows = [n for n in rows if n != "uniform"]
    font = cv2.FONT_HERSHEY_SIMPLEX
    if not examples:
        canvas = np.full((60, 520, 3), 255, np.uint8)
        cv2.putText(canvas, "no swap moved the score by the margin: nothing to show", (8, 35), font, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
        save_png(path, canvas)
        return
    H, W = examples[0].a.shape[:2]
    th, tw = H * scale, W * scale
    pad, head, label_w = 4, 34, 0
    cols = 2 + len(rows)
    canvas = np.full((head + len(examples) * (th + 18 + pad), cols * (tw + pad) + pad, 3), 255, np.uint8)
    titles = ["A", "A' (swapped)"] + [FIGURE_LABELS.get(n, ROW_LABELS.get(n, n))[:22] for n in rows]
    for j, t in enumerate(titles):
        cv2.putText(canvas, t, (pad + j * (tw + pad) + 2, head - 10), font, 0.36, (0, 0, 0), 1, cv2.LINE_AA)
    for i, ex in enumerate(examples):
        y = head + i * (th + 18 + pad)
        x0, y0, x1, y1 = (v * scale for v in ex.box)
        tiles = [ex.a, ex.a_prime] + [overlay(ex.a_prime, ex.maps[n], _display_max(ex.maps[n])) for n in rows]
        for j, tile in enumerate(tiles):
            img = cv2.resize(tile, (tw, th), interpolation=cv2.INTER_NEAREST) if scale != 1 else tile.copy()
            if j >= 1:
                cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), (0, 255, 0), 1)
            x = pad + label_w + j * (tw + pad)
            canvas[y:y + th, x:x + tw] = img
            if j >= 2:
                cv2.putText(canvas, f"ratio {ex.ratio[rows[j - 2]]:.2f}", (x + 2, y + th + 13), font, 0.36,
                            (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(canvas, f"{REGION_LABELS[ex.region]}, s {ex.score_swap:.3f}", (pad + 2, y + th + 13), font,
                    0.36, (0, 0, 0), 1, cv2.LINE_AA)
    save_png(path, canvas)
