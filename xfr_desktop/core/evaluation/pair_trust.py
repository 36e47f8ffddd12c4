"""How far to trust the map on screen, for this pair: a deletion check against reference maps, and the map's
stability under small alignment jitter. Qt-free; the analysis task, `xfr explain` and the report use it.

Faithfulness (a per-pair deletion game). Each face is cut into an 8×8 grid of cells; a map ranks the cells by its
mean over each cell, and the k first cells of both faces in that order are replaced by a blurred copy (the hiding
game's blur), for k = 0 … 56 % of the cells; each modified pair is re-scored. The curve follows the score towards
the other verdict: the score itself for a match (it should fall), its negative for a non-match (it should rise).
Hiding *any* cells moves the score (the blur itself is unlike a face), so a map is judged by the gap between its
two orders: gap = area(least salient first) − area(most salient first), areas = the curves' means. A faithful map
moves the score far sooner from its top cells than from its bottom ones; a random order has a gap of exactly 0 in
expectation (its reverse is as likely), so no random draws are needed. The gap is computed for

- the map on screen (S = |H| of Algorithm 1),
- two references computed the same way: the Gradient map and the centre prior.

``normalised`` = gap_map / max(gap_gradient, gap_centre): 1 = as good as the better reference, 0 = no better than
a random order, above 1 = better than both; None when neither reference reaches ``MIN_GAIN`` for this pair. The
verdict compares the map with the Gradient map: within a tenth of the gradient's gap (at least ``MIN_GAIN``) is "as
well as".

Stability. The pair is explained again under ``jitter`` draws of a small similarity transform of each aligned face
(shift ±2 px, rotation ±2°, scale ±3 %, seeded); each H is warped back onto the face as shown. Per face: the mean
Pearson correlation of the jittered H with the original H (1.0 = the same map), and per pixel the share of draws
whose H has the original's sign (the "stable regions" view).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import cv2
import numpy as np

from ..attribution import CentreExplainer, GradientExplainer
from ..trust_display import CELLS, DEFAULT_JITTER, JITTER, STABLE_AGREEMENT
from .hiding_game import blur_face, default_blur_sigma, embed_batch

GRID = int(round(CELLS ** 0.5))           # cells per side
STEPS = (0, 8, 16, 24, 32, 40, 48, 56)   # % of the cells hidden
MIN_GAIN = 0.01                          # in cosine-score units, averaged over the curve
REFERENCES = ("gradient", "centre")
VERDICTS = ("better than", "as well as", "worse than")
JITTER_SHIFT_PX, JITTER_ROTATION_DEG, JITTER_SCALE = float(JITTER[0]), float(JITTER[1]), JITTER[2] / 100

ExplainFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]   # aligned a, b -> H_a, H_b


@dataclass
class Faithfulness:
    steps: list[int]                       # % of cells hidden
    curves: dict[str, list[float]]         # "map-most", "map-least", "gradient-most", ... -> score at each step
    gaps: dict[str, float]                 # "map", "gradient", "centre" -> area(least first) - area(most first)
    normalised: float | None
    verdict: str                           # one of VERDICTS: the map explains the score ... a gradient map
    match: bool                            # the curves were oriented for a match (score falls) or not

    def sentence(self) -> str:
        figure = "undetermined" if self.normalised is None else f"{self.normalised:.2f}"
        pace = {"better than": "faster than", "as well as": "about as fast as", "worse than": "more slowly than"}
        return (f"For this pair, blurring the regions this map ranks first moves the score towards the other "
                f"verdict {pace[self.verdict]} blurring those a gradient map ranks first (faithfulness {figure}: "
                f"1 = as good as the better of a gradient map and a centre prior, 0 = no better than a random "
                f"order).")


@dataclass
class Stability:
    draws: int
    seed: int
    correlation: tuple[float, float]       # per face: mean Pearson r of the jittered H with the original H
    agreement: tuple[np.ndarray, np.ndarray] = field(repr=False)   # per face, per pixel: share of draws, same sign

    def summary(self) -> dict:
        return {"draws": self.draws, "seed": self.seed, "correlation": [round(c, 4) for c in self.correlation],
                "stable_share": [round(float((g >= STABLE_AGREEMENT).mean()), 4) for g in self.agreement]}


# --- faithfulness -------------------------------------------------------------------------------------------
def cell_edges(size: int, grid: int = GRID) -> np.ndarray:
    return np.linspace(0, size, grid + 1).round().astype(int)


def cell_means(saliency: np.ndarray, grid: int = GRID) -> np.ndarray:
    """(grid*grid,) the map's mean over each cell, row by row."""
    ys, xs = cell_edges(saliency.shape[0], grid), cell_edges(saliency.shape[1], grid)
    return np.array([saliency[ys[r]:ys[r + 1], xs[c]:xs[c + 1]].mean() for r in range(grid) for c in range(grid)])


def cell_rank(saliency: np.ndarray, grid: int = GRID) -> np.ndarray:
    """Cell indices, most salient first (ties: the lower index first)."""
    means = np.nan_to_num(cell_means(np.asarray(saliency, np.float64), grid), nan=-np.inf)
    return np.lexsort((np.arange(means.size), -means))


def hide_cells(face: np.ndarray, blurred: np.ndarray, cells: Sequence[int], grid: int = GRID) -> np.ndarray:
    out = face.copy()
    ys, xs = cell_edges(face.shape[0], grid), cell_edges(face.shape[1], grid)
    for cell in cells:
        r, c = divmod(int(cell), grid)
        out[ys[r]:ys[r + 1], xs[c]:xs[c + 1]] = blurred[ys[r]:ys[r + 1], xs[c]:xs[c + 1]]
    return out


def deletion_scores(model, a: np.ndarray, b: np.ndarray, ranks: dict[str, tuple[np.ndarray, np.ndarray]],
                    steps: Sequence[int] = STEPS) -> dict[str, list[float]]:
    """Order name -> the cosine score of the pair with each step's first cells of both faces blurred (one batch)."""
    sigma = default_blur_sigma(model.input_size)
    blurred = (blur_face(a, sigma), blur_face(b, sigma))
    counts = [int(round(s / 100 * GRID * GRID)) for s in steps if s > 0]
    images = [a, b]                                   # step 0, shared by every order
    for rank_a, rank_b in ranks.values():
        for k in counts:
            images += [hide_cells(a, blurred[0], rank_a[:k]), hide_cells(b, blurred[1], rank_b[:k])]
    # small batches: one batch of all ~60 images held ~170 MB of activations at once (xfr explain's peak)
    F = embed_batch(model, np.stack(images), batch_size=16).numpy()
    scores = (F[0::2] * F[1::2]).sum(1)
    rows = scores[1:].reshape(len(ranks), len(counts))
    return {name: [float(scores[0])] + [float(v) for v in row] for name, row in zip(ranks, rows)}


def oriented_area(scores: Sequence[float], match: bool) -> float:
    s = np.asarray(scores, np.float64)
    return float((s if match else -s).mean())


def faithfulness(model, a: np.ndarray, b: np.ndarray, map_a: np.ndarray, map_b: np.ndarray, threshold: float,
                 steps: Sequence[int] = STEPS) -> Faithfulness:
    """The per-pair deletion check of ``map_a``/``map_b`` (the map on screen) against the references."""
    maps = {"map": (map_a, map_b), "gradient": GradientExplainer()(model, a, b),
            "centre": CentreExplainer()(model, a, b)}
    ranks = {}
    for name, (ma, mb) in maps.items():
        ra, rb = cell_rank(ma), cell_rank(mb)
        ranks[f"{name}-most"], ranks[f"{name}-least"] = (ra, rb), (ra[::-1], rb[::-1])
    curves = deletion_scores(model, a, b, ranks, steps)
    match = curves["map-most"][0] >= threshold
    gaps = {name: oriented_area(curves[f"{name}-least"], match) - oriented_area(curves[f"{name}-most"], match)
            for name in maps}
    return Faithfulness(list(steps), curves, gaps, normalised_score(gaps), verdict(gaps), bool(match))


def normalised_score(gaps: dict[str, float]) -> float | None:
    best = max(gaps[r] for r in REFERENCES)
    return None if best < MIN_GAIN else gaps["map"] / best


def verdict(gaps: dict[str, float]) -> str:
    margin = max(0.1 * abs(gaps["gradient"]), MIN_GAIN)
    diff = gaps["map"] - gaps["gradient"]
    return VERDICTS[0] if diff > margin else VERDICTS[2] if diff < -margin else VERDICTS[1]


# --- stability ----------------------------------------------------------------------------------------------
def jitter_matrices(draws: int, seed: int, size: tuple[int, int], amplitude: float = 1.0) -> list[np.ndarray]:
    """``draws`` 2×3 similarity transforms about the face's centre, seeded; ``amplitude`` scales every range."""
    rng = np.random.default_rng([seed, 4099])
    h, w = size
    out = []
    for _ in range(draws):
        dx, dy = amplitude * rng.uniform(-JITTER_SHIFT_PX, JITTER_SHIFT_PX, 2)
        angle = amplitude * rng.uniform(-JITTER_ROTATION_DEG, JITTER_ROTATION_DEG)
        scale = 1 + amplitude * rng.uniform(-JITTER_SCALE, JITTER_SCALE)
        m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale)
        m[:, 2] += (dx, dy)
        out.append(m)
    return out


def warp(image: np.ndarray, m: np.ndarray, inverse: bool = False) -> np.ndarray:
    h, w = image.shape[:2]
    flags = cv2.INTER_LINEAR | (cv2.WARP_INVERSE_MAP if inverse else 0)
    return cv2.warpAffine(image, m, (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT_101)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x.ravel().astype(np.float64), y.ravel().astype(np.float64)
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denom) if denom > 0 else (1.0 if np.array_equal(x, y) else 0.0)


def stability(explain: ExplainFn, a: np.ndarray, b: np.ndarray, H_a: np.ndarray, H_b: np.ndarray,
              draws: int = DEFAULT_JITTER, seed: int = 0, amplitude: float = 1.0) -> Stability:
    """H recomputed under ``draws`` jitters of each face (``explain(a, b) -> (H_a, H_b)``), mapped back."""
    if draws < 1:
        raise ValueError("stability needs at least one jitter draw")
    size = a.shape[:2]
    m_a, m_b = (jitter_matrices(draws, s, size, amplitude) for s in (seed, seed + 1))
    corr, same = ([], []), [np.zeros(size), np.zeros(size)]
    for ja, jb in zip(m_a, m_b):
        ha, hb = explain(warp(a, ja), warp(b, jb))
        for side, (h0, hj, m) in enumerate(((H_a, ha, ja), (H_b, hb, jb))):
            back = warp(hj.astype(np.float32), m, inverse=True)
            corr[side].append(pearson(back, h0))
            same[side] += np.sign(back) == np.sign(h0)
    return Stability(draws, seed, (float(np.mean(corr[0])), float(np.mean(corr[1]))),
                     (same[0] / draws, same[1] / draws))


def trust_summary(faith: Faithfulness, stab: Stability | None) -> dict:
    """The JSON-able record stored with a result (``result.json``: ``faithfulness``, ``stability``)."""
    out = {"faithfulness": {**asdict(faith), "sentence": faith.sentence()}}
    if stab is not None:
        out["stability"] = stab.summary()
    return out


def assess_pair(model, a: np.ndarray, b: np.ndarray, result, jitter: int = DEFAULT_JITTER, seed: int = 0,
                progress: Callable[[float], None] | None = None,
                is_cancelled: Callable[[], bool] | None = None) -> tuple[Faithfulness, Stability | None]:
    """Both checks for ``result`` (a PairExplanation of aligned ``a``/``b``): faithfulness of its S maps, and
    the stability of its H under ``jitter`` draws (none when 0), each redone with the result's settings."""
    from ..algorithm1_engines import ENGINES
    from ..errors import Cancelled
    from ..explain import explain_pair

    engine = result.engine if result.engine in ENGINES else "fast"   # "mixed" is what "fast" runs on a mixing decoder
    report = progress or (lambda fraction: None)
    cancelled = is_cancelled or (lambda: False)
    faith = faithfulness(model, a, b, result.a.S, result.b.S, result.threshold)
    report(1 / (jitter + 1))
    done = [0]

    def explain_h(x, y):
        if cancelled():
            raise Cancelled()
        e = explain_pair(model, x, y, threshold=result.threshold, channels=result.channels, top_k=result.top_k,
                         normalization=result.normalization, engine=engine)
        done[0] += 1
        report((1 + done[0]) / (jitter + 1))
        return e.a.H, e.b.H

    stab = stability(explain_h, a, b, result.a.H, result.b.H, jitter, seed) if jitter > 0 else None
    return faith, stab
