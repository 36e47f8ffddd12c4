"""Algorithm 1 of Xu, Lu & Ebrahimi: discriminative deep feature visualization.

For each channel i of image A's conv map C_A, the maximum element (the one the global max pool reads) is set to
0 and the face is reconstructed; |R0 - R'| (L1 over colour) is channel i's residual map. Each residual is
normalized, weighted by w_i = F̂_A[i]·F̂_B[i] - T and summed into H. S = |H|, S⁺ = ReLU(H), S⁻ = ReLU(-H).

Normalization. ``"sum"`` (default) divides each residual by its sum, so H sums over pixels to Σ_i w_i. With
T = τ/c (τ: the decision threshold on the cosine score, c: channels) that is s - τ: the map decomposes the
decision margin, positive where the pair looks alike. ``"max"`` divides by the residual's maximum (the map's peak
is the channel's weight), which is closer to a plain heat map but loses that accounting.

Channels whose maximum is not positive. By default (``nonpositive="exclude"``) a channel whose maximum is <= 0 or
whose residual is all zero contributes nothing: for a conv map that passed a ReLU such a channel is dead. A model
whose conv map is signed (e.g. a plain 1×1 convolution, as in the bundled dlib-based model, where about half the
channels have a negative maximum and carry half the score) declares ``"explain": {"nonpositive_channels":
"include"}`` in its spec: the paper's step is applied to every channel (its max element is set to 0, here raising
it) and only channels whose residual is all zero are left out, so ΣH = s - τ still holds.

The residual computation is separate from the recombination: :meth:`PairExplanation.recombine` changes τ, the
channel subset or top-k in milliseconds from cached residuals.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch

from .decision import decision_label
from .algorithm1_engines import compute_residuals, compute_residuals_pair
from .errors import Cancelled, ModelFileError  # noqa: F401 - Cancelled: callers still import it from here
from .numbers import finite_float
from .model import JointModel, resolve_device

NORMALIZATIONS = ("sum", "max")
ProgressCallback = Callable[[str, float], None]


@dataclass
class ResidualStack:
    """Per-channel normalized residual maps, stored compactly.

    Each channel's residual is nonzero only inside a window (the decoder's receptive field of one element of C);
    ``values[i]`` is that window and ``offsets[i]`` its top-left (row, col) in image pixels (possibly partly
    outside the image, where it is zero). Dense engines store full-size windows at offset (0, 0).
    """

    values: np.ndarray        # (c, h, w) float32, normalized
    offsets: np.ndarray       # (c, 2) int64
    image_size: tuple[int, int]
    raw_sums: np.ndarray      # (c,) sum of each residual before normalization (0: contributes nothing)
    normalization: str = "sum"
    # derived from the fields above, so neither compared nor stored: the channels grouped by window offset, and
    # P, Q of the last channel selection (what a threshold change needs; see selection_sums)
    _groups: tuple | None = field(default=None, init=False, repr=False, compare=False)
    _selection: tuple = field(default=(b"", None), init=False, repr=False, compare=False)

    @property
    def channels(self) -> int:
        return int(self.values.shape[0])

    def channel(self, i: int) -> np.ndarray:
        """Channel i's normalized residual as an H×W map."""
        H, W = self.image_size
        out = np.zeros((H, W), np.float32)
        self._paste(out, self.values[i], self.offsets[i])
        return out

    def dense(self) -> np.ndarray:
        """(c, H, W) float32."""
        H, W = self.image_size
        pad, (Hp, Wp) = self._padding()
        out = np.zeros((self.channels, Hp, Wp), np.float32)
        h, w = self.values.shape[1:]
        for (r0, c0), members in self._by_offset()[1]:
            out[members, r0 + pad:r0 + pad + h, c0 + pad:c0 + pad + w] = self.values[members]
        return out[:, pad:pad + H, pad:pad + W]

    def combine(self, weights: np.ndarray) -> np.ndarray:
        """Σ_i weights[i] · residual_i as an H×W float32 map, straight from the windows (no dense stack).

        Channels whose windows sit at the same offset (one position of C) are summed by one float64
        matrix-vector product, then each of these few sums is added at its offset.
        """
        H, W = self.image_size
        pad, (Hp, Wp) = self._padding()
        weights = np.asarray(weights, np.float64)
        acc = np.zeros((Hp, Wp), np.float64)
        h, w = self.values.shape[1:]
        values64, groups = self._by_offset()
        for (r0, c0), members in groups:
            wg = weights[members]
            if not wg.any():
                continue
            acc[r0 + pad:r0 + pad + h, c0 + pad:c0 + pad + w] += (wg @ values64[members]).reshape(h, w)
        return acc[pad:pad + H, pad:pad + W].astype(np.float32)

    def _by_offset(self):
        """(values as (c, h·w) float64, [((row, col), channel indices) per distinct window offset]), cached."""
        if self._groups is None:
            offsets, inverse = np.unique(self.offsets, axis=0, return_inverse=True)
            inverse = inverse.reshape(-1)
            groups = [(tuple(int(v) for v in off), np.flatnonzero(inverse == k)) for k, off in enumerate(offsets)]
            self._groups = (self.values.reshape(len(self.values), -1).astype(np.float64), groups)
        return self._groups

    def selection_sums(self, products: np.ndarray, selected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P, Q) = (Σ_sel p_i r_i, Σ_sel r_i), kept for the last selection: H = P − T·Q for any threshold."""
        key = selected.tobytes()
        if self._selection[0] != key or self._selection[1] is None:
            sel = selected.astype(np.float64)
            self._selection = (key, (self.combine(products * sel), self.combine(sel)))
        return self._selection[1]

    def _padding(self):
        h, w = self.values.shape[1:]
        H, W = self.image_size
        pad = int(max(h, w, np.abs(self.offsets).max(initial=0)))
        return pad, (H + 2 * pad, W + 2 * pad)

    @staticmethod
    def _paste(dst: np.ndarray, win: np.ndarray, offset) -> None:
        H, W = dst.shape
        r0, c0 = int(offset[0]), int(offset[1])
        h, w = win.shape
        rr0, cc0 = max(r0, 0), max(c0, 0)
        rr1, cc1 = min(r0 + h, H), min(c0 + w, W)
        if rr1 > rr0 and cc1 > cc0:
            dst[rr0:rr1, cc0:cc1] += win[rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0]

    def to_npz_dict(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {
            f"{prefix}values": self.values, f"{prefix}offsets": self.offsets,
            f"{prefix}image_size": np.asarray(self.image_size), f"{prefix}raw_sums": self.raw_sums,
            f"{prefix}normalization": np.asarray(self.normalization),
        }

    @classmethod
    def from_npz_dict(cls, d, prefix: str = "") -> "ResidualStack":
        return cls(
            values=np.asarray(d[f"{prefix}values"], np.float32), offsets=np.asarray(d[f"{prefix}offsets"], np.int64),
            image_size=tuple(int(v) for v in d[f"{prefix}image_size"]), raw_sums=np.asarray(d[f"{prefix}raw_sums"]),
            normalization=str(d[f"{prefix}normalization"]),
        )


@dataclass
class SideExplanation:
    """Maps for one image of the pair (all H×W float32 at the model's input size)."""

    H: np.ndarray
    S: np.ndarray
    S_pos: np.ndarray
    S_neg: np.ndarray
    weights: np.ndarray           # (c,) w_i = F̂_A[i]F̂_B[i] - T; 0 for channels outside the selection
    residuals: ResidualStack
    reconstruction: np.ndarray    # (H, W, 3) uint8, the decoder's R0
    aligned: np.ndarray           # (H, W, 3) uint8, the input
    embedding: np.ndarray         # (c,) F = amax(C)
    argmax: np.ndarray            # (c, 2) row, col of each channel's maximum in C
    contributing: np.ndarray      # (c,) bool: max > 0 and residual not all zero


@dataclass
class PairExplanation:
    score: float                  # cosine similarity of F_A and F_B
    threshold: float              # τ, on the cosine score
    a: SideExplanation
    b: SideExplanation
    products: np.ndarray          # (c,) F̂_A ⊙ F̂_B (sums to score)
    selected: np.ndarray          # (c,) bool: channels used in H
    channels: list[int] | None = None
    top_k: int | None = None
    normalization: str = "sum"
    engine: str = "fast"
    device: str = "cpu"
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def decision(self) -> bool:
        """True = match (score at or above the threshold)."""
        return bool(self.score >= self.threshold)

    @property
    def decision_label(self) -> str:
        return decision_label(self.decision)

    @property
    def T(self) -> float:
        """The per-channel re-balancing threshold T = τ / c."""
        return self.threshold / len(self.products)

    def recombine(self, threshold: float | None = None, channels=None, top_k: int | None = None) -> "PairExplanation":
        """A new explanation at another τ / channel subset / top-k, from the cached residuals (no model call)."""
        t0 = time.perf_counter()
        threshold = self.threshold if threshold is None else finite_float(threshold, "the threshold")
        selected = select_channels(self.products, self.a.contributing & self.b.contributing, threshold,
                                   channels, top_k)
        weights = channel_weights(self.products, threshold, selected)
        a = _side_maps(self.a, self.products, selected, threshold, weights)
        b = _side_maps(self.b, self.products, selected, threshold, weights)
        timings = dict(self.timings_ms, recombine=(time.perf_counter() - t0) * 1e3)
        return replace(self, threshold=threshold, a=a, b=b, selected=selected,
                       channels=None if channels is None else [int(c) for c in channels], top_k=top_k,
                       timings_ms=timings)


def channel_weights(products: np.ndarray, threshold: float, selected: np.ndarray) -> np.ndarray:
    T = threshold / len(products)
    return np.where(selected, products - T, 0.0).astype(np.float32)


def select_channels(products, contributing, threshold, channels=None, top_k=None) -> np.ndarray:
    """Boolean mask of channels used: contributing ∩ explicit subset ∩ the top-k by |weight|."""
    selected = np.asarray(contributing, bool).copy()
    c = len(products)
    if channels is not None:
        chosen = np.zeros(c, bool)
        idx = np.asarray(list(channels), dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= c):
            raise ValueError(f"channel indices must lie in 0..{c - 1}")
        chosen[idx] = True
        selected &= chosen
    if top_k is not None:
        if top_k < 1:
            raise ValueError("top-k must be at least 1")
        strength = np.where(selected, np.abs(products - threshold / c), -np.inf)
        order = np.argsort(-strength, kind="stable")[:top_k]
        keep = np.zeros(c, bool)
        keep[order] = True
        selected &= keep
    return selected


def _side_maps(side: SideExplanation, products: np.ndarray, selected: np.ndarray, threshold: float,
               weights: np.ndarray) -> SideExplanation:
    # H = Σ_sel (p_i - T) r_i = P - T·Q: P and Q are kept per selection, so moving the threshold slider costs
    # one H×W operation.
    P, Q = side.residuals.selection_sums(products, selected)
    H = (P - np.float32(threshold / len(products)) * Q).astype(np.float32)
    return replace(side, H=H, S=np.abs(H), S_pos=np.maximum(H, 0), S_neg=np.maximum(-H, 0), weights=weights)


def check_face(model: JointModel, img: np.ndarray, name: str) -> np.ndarray:
    """The array as an aligned RGB uint8 face at the model's input size, or a ValueError saying why not."""
    arr = np.asarray(img)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[:2] != model.input_size:
        raise ValueError(f"image {name} must be an aligned RGB uint8 face of {model.input_size}, "
                         f"got {arr.dtype} {arr.shape}")
    return arr


@torch.no_grad()
def explain_pair(
    model: JointModel,
    a: np.ndarray,
    b: np.ndarray,
    threshold: float | None = None,
    channels=None,
    device=None,
    *,
    top_k: int | None = None,
    normalization: str = "sum",
    engine: str = "fast",
    nonpositive: str | None = None,
    progress: ProgressCallback | None = None,
    is_cancelled: Callable[[], bool] | None = None,
) -> PairExplanation:
    """Explain the verification of aligned faces ``a`` and ``b`` with Algorithm 1.

    ``engine``: ``"fast"`` (exact incremental; on a decoder with spatial mixing the exact ``"mixed"`` route, on
    any other that cannot be localized ``"batched"``), ``"batched"`` (all modified maps through the full decoder
    in chunks) or ``"literal"`` (the paper's loop, one decoder pass per channel; the reference for tests and benchmarks).
    ``nonpositive``: ``"exclude"`` or ``"include"`` channels whose maximum is <= 0 (see the module docstring);
    ``None`` takes the model's ``spec["explain"]["nonpositive_channels"]``, else ``"exclude"``.
    ``progress(stage, fraction)`` is called between stages; ``is_cancelled()`` is polled and raises
    :class:`Cancelled`.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}")
    if nonpositive is None:
        nonpositive = model.spec.get("explain", {}).get("nonpositive_channels", "exclude")
    if nonpositive not in ("exclude", "include"):
        raise ValueError("nonpositive must be 'exclude' or 'include'")
    a = check_face(model, a, "A")
    b = check_face(model, b, "B")
    dev = resolve_device(device) if device is not None else model.device
    if model.device != dev:
        model = model.to(dev)
    model.eval()
    threshold = finite_float(model.threshold if threshold is None else threshold, "the threshold")
    report = progress or (lambda stage, frac: None)
    timings: dict[str, float] = {}

    def check_cancel():
        if is_cancelled is not None and is_cancelled():
            raise Cancelled()

    t0 = time.perf_counter()
    x = model.preprocess(np.stack([a, b]))
    C, F = model.embed(x)
    Fn = torch.nn.functional.normalize(F.double(), dim=1)
    products = (Fn[0] * Fn[1]).cpu().numpy()
    score = float(products.sum())
    if not math.isfinite(score):  # NaN would silently decide "non-match"
        raise ModelFileError(f"the model produced a non-finite score ({score}) for this pair: it cannot be used")
    timings["backbone"] = (time.perf_counter() - t0) * 1e3
    report("backbone", 1.0)
    check_cancel()

    sides_raw = []
    used_engine = engine
    if C.is_cuda and engine == "fast":  # both faces in one batch, one copy to the host (no progress between)
        t1 = time.perf_counter()
        sides_raw = compute_residuals_pair(model.decoder, C, engine=engine, one_batch=True)
        used_engine = sides_raw[0].engine
        timings["residuals_pair"] = (time.perf_counter() - t1) * 1e3
        report("residuals", 1.0)
        check_cancel()
    else:
        for k, name in enumerate("AB"):
            t1 = time.perf_counter()

            def side_progress(frac, _k=k):
                report("residuals", (_k + frac) / 2)
                check_cancel()

            res = compute_residuals(model.decoder, C[k:k + 1], engine=engine, progress=side_progress)
            used_engine = res.engine
            timings[f"residuals_{name}"] = (time.perf_counter() - t1) * 1e3
            sides_raw.append(res)

    sides = []
    for k, (res, img) in enumerate(zip(sides_raw, (a, b))):
        stack = _normalize(res.values, res.offsets, res.image_size, normalization)
        live = res.cmax > 0 if nonpositive == "exclude" else res.cmax != 0
        contributing = live & (stack.raw_sums > 0)
        sides.append(
            SideExplanation(
                H=np.zeros(model.input_size, np.float32), S=np.zeros(model.input_size, np.float32),
                S_pos=np.zeros(model.input_size, np.float32), S_neg=np.zeros(model.input_size, np.float32),
                weights=np.zeros(len(products), np.float32), residuals=stack,
                reconstruction=model.to_uint8(res.R0)[0], aligned=img,
                embedding=F[k].double().cpu().numpy(), argmax=res.argmax, contributing=contributing,
            )
        )
    base = PairExplanation(
        score=score, threshold=threshold, a=sides[0], b=sides[1], products=products,
        selected=np.zeros(len(products), bool), normalization=normalization, engine=used_engine,
        device=str(dev), timings_ms=timings,
    )
    out = base.recombine(threshold=threshold, channels=channels, top_k=top_k)
    out.timings_ms["total"] = (time.perf_counter() - t0) * 1e3
    report("done", 1.0)
    return out


def _normalize(values: np.ndarray, offsets: np.ndarray, image_size, normalization: str) -> ResidualStack:
    values = np.asarray(values, np.float32)
    flat = values.reshape(len(values), -1)
    sums = flat.astype(np.float64).sum(1)
    denom = sums if normalization == "sum" else flat.max(1).astype(np.float64)
    scale = np.divide(1.0, denom, out=np.zeros_like(denom), where=denom > 0).astype(np.float32)
    return ResidualStack(values=values * scale[:, None, None], offsets=np.asarray(offsets, np.int64),
                         image_size=tuple(image_size), raw_sums=sums, normalization=normalization)
