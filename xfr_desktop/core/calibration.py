"""Score-to-likelihood-ratio calibration (logistic regression) with Cllr, Cllr_min (PAV) and a Tippett plot.

Propositions: Hp, the two images show the same person; Hd, they show two different people. A calibration maps a
cosine score s to ln LR = slope·s + intercept, fitted by logistic regression on reference genuine (same person) and
impostor (different people) scores with balanced class weights, so the fitted log odds are log likelihood ratios
(equal priors). Pool-adjacent-violators (isotonic regression) gives the best monotone calibration of the same
scores; its Cllr is Cllr_min, so Cllr − Cllr_min is the calibration loss.

LRs are bounded by the reference set: with n impostor comparisons, support for Hp cannot honestly exceed about n
(and for Hd about the number of genuine comparisons), so reported LRs are clipped to [1/n_genuine, n_impostor].

A calibration is stored as JSON next to its model: ``models/<model stem>.calibration.json``. Qt-free and torch-free.
"""
from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .errors import XfrError
from .numbers import json_text

log = logging.getLogger(__name__)

FORMAT = "xfr-calibration"
FORMAT_VERSION = 1
CALIBRATION_SUFFIX = ".calibration.json"

PROPOSITION_SAME = "the two images show the same person"
PROPOSITION_DIFFERENT = "the two images show two different people"

# ENFSI Guideline for Evaluative Reporting in Forensic Science (2015), verbal equivalents of the likelihood ratio.
# (lower bound of LR, words); applied symmetrically to 1/LR for support of the other proposition.
VERBAL_SCALE = (
    (1e6, "extremely strong support"),
    (1e4, "very strong support"),
    (1e3, "strong support"),
    (1e2, "moderately strong support"),
    (1e1, "moderate support"),
    (1.0, "weak support"),
)
VERBAL_SCALE_TEXT = (
    "ENFSI guideline for evaluative reporting (2015): LR 1 to 10 weak support, 10 to 100 moderate support, "
    "100 to 1,000 moderately strong support, 1,000 to 10,000 strong support, 10,000 to 1,000,000 very strong "
    "support, above 1,000,000 extremely strong support for the same-person proposition; the same bands applied "
    "to 1/LR give support for the different-people proposition; LR = 1 supports neither."
)


class CalibrationError(XfrError):
    """A calibration is missing, unreadable, for another model, or cannot be fitted."""


_NUMBER_FIELDS = ("slope", "intercept", "cllr", "cllr_min", "eer", "score_min", "score_max")
_COUNT_FIELDS = ("n_genuine", "n_impostor")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class Calibration:
    """ln LR(s) = slope·s + intercept, clipped to [1/n_genuine, n_impostor]."""

    slope: float
    intercept: float
    n_genuine: int
    n_impostor: int
    cllr: float
    cllr_min: float
    eer: float
    score_min: float
    score_max: float
    method: str = "logistic-regression"
    model_sha256: str | None = None
    model_name: str | None = None
    reference: str = ""           # what the reference scores came from, for people
    created_at: str = ""
    software_version: str = ""
    extra: dict = field(default_factory=dict)   # e.g. n_no_face, pair list sha256

    # --- the mapping ----------------------------------------------------------------------------------
    @property
    def log10_lr_bounds(self) -> tuple[float, float]:
        return -math.log10(max(self.n_genuine, 1)), math.log10(max(self.n_impostor, 1))

    def log10_lr(self, score):
        """log10 LR for a score or an array of scores (clipped to the reference set's bounds)."""
        s = np.asarray(score, np.float64)
        out = (self.slope * s + self.intercept) / math.log(10)
        lo, hi = self.log10_lr_bounds
        out = np.clip(out, lo, hi)
        return float(out) if out.ndim == 0 else out

    def lr(self, score):
        return np.power(10.0, self.log10_lr(score))

    def describe(self, score: float) -> tuple[float, str]:
        """(LR, verbal equivalent) for one score."""
        lr = float(self.lr(score))
        return lr, verbal_equivalent(lr)

    # --- files ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict, source: str = "calibration") -> "Calibration":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CalibrationError(f"{source} is not an XFR calibration file")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise CalibrationError(f"{source} was written by a newer XFR Desktop")
        names = set(cls.__dataclass_fields__)
        try:
            cal = cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as exc:
            raise CalibrationError(f"{source} is incomplete or malformed ({exc})") from None
        # a number stored as text or true/false would pass here and fail later, mid-analysis
        bad = [k for k in _NUMBER_FIELDS if not _is_number(getattr(cal, k))]
        bad += [k for k in _COUNT_FIELDS if not (_is_number(getattr(cal, k)) and isinstance(getattr(cal, k), int))]
        if bad:
            raise CalibrationError(f"{source} is incomplete or malformed (not a number: {', '.join(bad)})")
        if not (math.isfinite(cal.slope) and math.isfinite(cal.intercept)):
            raise CalibrationError(f"{source} holds non-finite parameters")
        return cal

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (temp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json_text(self.to_dict(), indent=2, sort_keys=True))
                f.write("\n")
            os.chmod(tmp, 0o644)  # mkstemp makes it private; a calibration ships with its model
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Calibration":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CalibrationError(f"calibration file not found: {path}") from None
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise CalibrationError(f"cannot read calibration file {path} ({type(exc).__name__})") from None
        return cls.from_dict(data, source=str(path))


# --- verbal scale -------------------------------------------------------------------------------------------
def verbal_equivalent(lr: float, propositions: tuple[str, str] | None = None) -> str:
    """ENFSI verbal equivalent of a likelihood ratio, naming the proposition supported: ``propositions`` (the
    prosecution's, the defence's, as the case words them), else the default pair."""
    if not (lr > 0) or math.isnan(lr):
        raise ValueError("a likelihood ratio must be positive")
    if math.isclose(lr, 1.0, rel_tol=1e-9):
        return "no support for either proposition (LR = 1)"
    strength = lr if lr > 1 else 1.0 / lr
    words = next(w for bound, w in VERBAL_SCALE if strength >= bound)
    if propositions is not None:
        return f"{words} for {propositions[0 if lr > 1 else 1]}"
    prop = PROPOSITION_SAME if lr > 1 else PROPOSITION_DIFFERENT
    return f"{words} for the proposition that {prop}"


def format_lr(lr: float) -> str:
    """'1,234' / '2.5' / '1/320' (LRs below 1 read better as a fraction)."""
    if lr >= 1:
        return f"{lr:,.0f}" if lr >= 100 else f"{lr:.3g}"
    inv = 1.0 / lr
    return f"1/{inv:,.0f}" if inv >= 100 else f"1/{inv:.3g}"


# --- metrics ------------------------------------------------------------------------------------------------
def cllr(log10_lr_genuine, log10_lr_impostor) -> float:
    """Log-likelihood-ratio cost (Brümmer): 0 perfect, 1 = an uninformative system that always says LR = 1."""
    g = np.asarray(log10_lr_genuine, np.float64) * math.log(10)
    i = np.asarray(log10_lr_impostor, np.float64) * math.log(10)
    if g.size == 0 or i.size == 0:
        raise CalibrationError("Cllr needs both genuine and impostor scores")
    cost_g = np.logaddexp(0.0, -g).mean() / math.log(2)
    cost_i = np.logaddexp(0.0, i).mean() / math.log(2)
    return float(0.5 * (cost_g + cost_i))


def pav_log10_lr(genuine, impostor) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators LRs (log10) for the reference scores themselves: (genuine, impostor).

    The optimal monotone score-to-LR map on these data (an oracle: it is fitted on what it scores).
    """
    from sklearn.isotonic import IsotonicRegression

    g = np.asarray(genuine, np.float64)
    i = np.asarray(impostor, np.float64)
    scores = np.concatenate([g, i])
    labels = np.concatenate([np.ones(g.size), np.zeros(i.size)])
    post = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit_transform(
        scores, labels)
    with np.errstate(divide="ignore"):
        llr = np.log10(post) - np.log10(1.0 - post) - math.log10(g.size / i.size)
    return llr[:g.size], llr[g.size:]


def cllr_min(genuine, impostor) -> float:
    g, i = pav_log10_lr(genuine, impostor)
    return cllr(g, i)


def equal_error_rate(genuine, impostor) -> float:
    g = np.sort(np.asarray(genuine, np.float64))
    i = np.sort(np.asarray(impostor, np.float64))
    thresholds = np.unique(np.concatenate([g, i]))
    frr = np.searchsorted(g, thresholds, side="left") / g.size          # genuine below threshold
    far = 1.0 - np.searchsorted(i, thresholds, side="left") / i.size    # impostor at or above
    k = int(np.argmin(np.abs(far - frr)))
    return float((far[k] + frr[k]) / 2)


def fit_calibration(genuine, impostor, *, model_sha256: str | None = None, model_name: str | None = None,
                    reference: str = "", extra: dict | None = None) -> Calibration:
    """Fit logistic-regression calibration on genuine and impostor cosine scores."""
    from sklearn.linear_model import LogisticRegression

    from .. import __version__

    g = np.asarray(genuine, np.float64).ravel()
    i = np.asarray(impostor, np.float64).ravel()
    g, i = g[np.isfinite(g)], i[np.isfinite(i)]
    if g.size < 2 or i.size < 2:
        raise CalibrationError(f"calibration needs at least 2 genuine and 2 impostor scores "
                               f"(got {g.size} and {i.size})")
    scores = np.concatenate([g, i])[:, None]
    labels = np.concatenate([np.ones(g.size), np.zeros(i.size)])
    # Balanced weights: the fitted log odds are then log LRs (equal priors). Nearly unregularized.
    lr_model = LogisticRegression(C=1e6, class_weight="balanced", max_iter=1000).fit(scores, labels)
    slope = float(lr_model.coef_[0, 0])
    intercept = float(lr_model.intercept_[0])
    if slope <= 0:
        raise CalibrationError("genuine scores are not higher than impostor scores; the model or the pair "
                               "list is wrong")
    cal = Calibration(
        slope=slope, intercept=intercept, n_genuine=int(g.size), n_impostor=int(i.size), cllr=0.0, cllr_min=0.0,
        eer=equal_error_rate(g, i), score_min=float(scores.min()), score_max=float(scores.max()),
        model_sha256=model_sha256, model_name=model_name, reference=reference,
        created_at=datetime.now(timezone.utc).replace(microsecond=0).isoformat(), software_version=__version__,
        extra=dict(extra or {}),
    )
    cal.cllr = cllr(cal.log10_lr(g), cal.log10_lr(i))
    cal.cllr_min = cllr_min(g, i)
    return cal


def cross_validated_cllr(genuine, impostor, folds_genuine, folds_impostor) -> float | None:
    """Cllr of LRs each computed by a calibration fitted on the other folds (no resubstitution); None with
    fewer than two folds."""
    g, i = np.asarray(genuine, np.float64), np.asarray(impostor, np.float64)
    fg, fi = np.asarray(folds_genuine), np.asarray(folds_impostor)
    folds = np.unique(np.concatenate([fg, fi]))
    if len(folds) < 2:
        return None
    lg, li = np.empty_like(g), np.empty_like(i)
    for k in folds:
        cal = fit_calibration(g[fg != k], i[fi != k])
        lg[fg == k] = cal.log10_lr(g[fg == k])
        li[fi == k] = cal.log10_lr(i[fi == k])
    return cllr(lg, li)


# --- finding a model's calibration ----------------------------------------------------------------------
def calibration_path(model_path: str | os.PathLike) -> Path:
    """``models/foo.pt`` -> ``models/foo.calibration.json``."""
    p = Path(model_path)
    return p.with_name(p.stem + CALIBRATION_SUFFIX)


def load_calibration_for(model) -> Calibration | None:
    """The calibration stored next to ``model`` (a JointModel with ``.path`` or a path); None if there is none.

    Raises CalibrationError when the file exists but is unreadable or belongs to another model file.
    """
    path = getattr(model, "path", model)
    if path is None:
        return None
    cal_path = calibration_path(path)
    if not cal_path.is_file():
        return None
    cal = Calibration.load(cal_path)
    sha = getattr(model, "sha256", None)
    if sha and cal.model_sha256 and sha != cal.model_sha256:
        raise CalibrationError(f"{cal_path} was computed for another model file (sha256 {cal.model_sha256[:12]}…,"
                               f" the model is {sha[:12]}…); run `xfr calibrate` again")
    return cal


def likelihood_ratio(model, score: float) -> tuple[float, str]:
    """(LR, ENFSI verbal equivalent) of ``score`` under ``model``'s stored calibration.

    Raises CalibrationError (one line for people) when the model has no calibration.
    """
    cal = load_calibration_for(model)
    if cal is None:
        path = getattr(model, "path", model)
        raise CalibrationError(f"model {path} has no calibration ({calibration_path(path).name}); "
                               f"run `xfr calibrate --pairs FILE --root DIR --model {path}`")
    return cal.describe(score)


def stored_likelihood_ratio(model, score: float) -> dict | None:
    """``{"value": LR, "verbal": words, "limits": [lowest, highest LR], "calibration": {...}}`` to store with a
    result, or None when ``model`` has no usable calibration. ``limits`` lets a report state an LR at the limit
    as a bound; ``calibration`` names what it rests on (method, reference set, sizes, Cllr, file date).

    An analysis must not fail for want of a calibration: the result is then saved without a likelihood ratio.
    """
    try:
        cal = load_calibration_for(model)
        if cal is None:
            return None
        value, verbal = cal.describe(float(score))
    except (CalibrationError, ValueError) as exc:
        log.info("no likelihood ratio: %s", exc)
        return None
    if not math.isfinite(value):
        return None
    lo, hi = cal.log10_lr_bounds
    about = {"method": cal.method, "reference": cal.reference, "n_genuine": cal.n_genuine,
             "n_impostor": cal.n_impostor, "cllr": cal.cllr, "created_at": cal.created_at}
    return {"value": float(value), "verbal": str(verbal), "limits": [10.0 ** lo, 10.0 ** hi], "calibration": about}


# --- Tippett plot (cv2 drawing: no plotting library needed) -------------------------------------------------
def tippett_curves(log10_genuine, log10_impostor, grid=None):
    """(x, P(log10 LR ≥ x | Hp), P(log10 LR ≥ x | Hd))."""
    g = np.sort(np.asarray(log10_genuine, np.float64))
    i = np.sort(np.asarray(log10_impostor, np.float64))
    if grid is None:
        lo = math.floor(min(g.min(), i.min())) - 0.5
        hi = math.ceil(max(g.max(), i.max())) + 0.5
        grid = np.linspace(lo, hi, 600)
    pg = 1.0 - np.searchsorted(g, grid, side="left") / g.size
    pi = 1.0 - np.searchsorted(i, grid, side="left") / i.size
    return grid, pg, pi


def render_tippett(cal: Calibration, genuine, impostor, title: str = "", size=(960, 650)) -> np.ndarray:
    """A Tippett plot (BGR uint8 image) of the calibrated LRs of the reference scores, with the PAV curves light.
    The legend sits in a band under the x axis, where no curve can pass."""
    import cv2

    W, H = size
    img = np.full((H, W, 3), 255, np.uint8)
    left, right, top, bottom = 80, 30, 60, 120
    pw, ph = W - left - right, H - top - bottom
    lg, li = cal.log10_lr(np.asarray(genuine)), cal.log10_lr(np.asarray(impostor))
    lo, hi = cal.log10_lr_bounds
    pg_, pi_ = (np.clip(v, lo, hi) for v in pav_log10_lr(genuine, impostor))  # PAV gives ±inf at the ends
    finite = np.concatenate([lg, li, pg_, pi_])
    x0, x1 = math.floor(finite.min()) - 0.5, math.ceil(finite.max()) + 0.5
    grid = np.linspace(x0, x1, 800)

    def px(x):
        return int(round(left + (x - x0) / (x1 - x0) * pw))

    def py(p):
        return int(round(top + (1 - p) * ph))

    font = cv2.FONT_HERSHEY_SIMPLEX
    black, grey = (0, 0, 0), (200, 200, 200)
    for t in range(math.ceil(x0), math.floor(x1) + 1):
        cv2.line(img, (px(t), top), (px(t), top + ph), grey, 1)
        cv2.putText(img, str(t), (px(t) - 8, top + ph + 22), font, 0.5, black, 1, cv2.LINE_AA)
    for p in np.linspace(0, 1, 6):
        cv2.line(img, (left, py(p)), (left + pw, py(p)), grey, 1)
        cv2.putText(img, f"{p:.1f}", (left - 40, py(p) + 5), font, 0.5, black, 1, cv2.LINE_AA)
    cv2.line(img, (px(0), top), (px(0), top + ph), (90, 90, 90), 1)
    cv2.rectangle(img, (left, top), (left + pw, top + ph), black, 1)

    def curve(values, colour, thickness):
        _, p_ge, _ = tippett_curves(values, values, grid)
        pts = np.stack([[px(x) for x in grid], [py(p) for p in p_ge]], 1).astype(np.int32)
        cv2.polylines(img, [pts], False, colour, thickness, cv2.LINE_AA)

    blue, red = (200, 90, 30), (40, 40, 210)
    light_blue, light_red = (240, 200, 170), (170, 170, 245)
    curve(pg_, light_blue, 2)
    curve(pi_, light_red, 2)
    curve(lg, blue, 2)
    curve(li, red, 2)
    cv2.putText(img, "log10 LR  (x)", (left + pw // 2 - 50, top + ph + 50), font, 0.55, black, 1, cv2.LINE_AA)
    cv2.putText(img, "P(log10 LR >= x)", (8, top - 12), font, 0.5, black, 1, cv2.LINE_AA)
    head = _fit_text(title or "Tippett plot", W - left - 10, 0.6)
    cv2.putText(img, head, (left, 28), font, 0.6, black, 1, cv2.LINE_AA)
    stats = f"Cllr {cal.cllr:.3f}  Cllr_min {cal.cllr_min:.3f}  EER {100 * cal.eer:.2f}%"
    stats_at = (left + pw - 360, 28)
    if left + _text_width(head, 0.6) + 12 > stats_at[0]:   # a long title: the statistics go right-aligned below it
        stats_at = (left + pw - _text_width(stats, 0.5), 48)
    cv2.putText(img, stats, stats_at, font, 0.5, black, 1, cv2.LINE_AA)
    lx, ly = left + 12, top + ph + 80
    for k, (label, colour) in enumerate([(f"same person (n={cal.n_genuine})", blue),
                                         (f"different people (n={cal.n_impostor})", red)]):
        cv2.line(img, (lx + 300 * k, ly), (lx + 300 * k + 30, ly), colour, 2)
        cv2.putText(img, label, (lx + 300 * k + 38, ly + 5), font, 0.45, black, 1, cv2.LINE_AA)
    cv2.putText(img, "dark: logistic calibration   light: PAV (oracle, Cllr_min)", (lx, ly + 29), font, 0.45,
                black, 1, cv2.LINE_AA)
    return img


def _text_width(text: str, scale: float) -> int:
    import cv2

    return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]


def _fit_text(text: str, width: int, scale: float) -> str:
    """The text, cut with "..." until it is at most `width` pixels wide."""
    if _text_width(text, scale) <= width:
        return text
    while text and _text_width(text + "...", scale) > width:
        text = text[:-1]
    return text.rstrip() + "..."


def save_tippett(cal: Calibration, genuine, impostor, path: str | os.PathLike, title: str = "") -> Path:
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", render_tippett(cal, genuine, impostor, title=title))
    if not ok:
        raise CalibrationError(f"cannot encode the Tippett plot for {path}")
    path.write_bytes(buf.tobytes())
    return path
