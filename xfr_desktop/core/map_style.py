"""One visual vocabulary for the explanation maps: title, meaning, unit and colour map per map kind, and the
colour-bar scale (ticks and their labels). The app, the CLI PNGs and the PDF report all draw from here, so a
colour means the same thing wherever an examiner meets it.

Colours: *similar* is blue, *dissimilar* is orange (a pair that colour-blind readers tell apart, unlike red and
green); S⁺ and S⁻ are ramps of those two hues (pale to deep) and the signed map H joins them (deep orange at −max, pale
at 0, deep blue at +max). S, the evidence of either kind, is a yellow-green ramp, and a single channel's residual is
magenta. Every ramp is meant to be laid over a grey face with an opacity that grows with |value| (zero leaves the
face untinted: no purple cast as with viridis).

Units. With the default ``"sum"`` normalization the map H sums over the face to s − τ (Algorithm 1,
``core/explain.py``), so S, S⁺, S⁻ and H are in *cosine score per pixel*; a channel's residual sums to 1 (a
*fraction of the channel's reconstruction change per pixel*). With ``"max"`` normalization they are relative.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SIMILAR_RGB = (33, 113, 181)      # blue: regions and channels that pull towards "same person"
DISSIMILAR_RGB = (217, 72, 1)     # orange: regions and channels that pull towards "different persons"

# ramps from low to high, as anchor colours spaced evenly (RGB hex)
_RAMPS = {
    "similar": ("#deebf7", "#9ecae1", "#4292c6", "#2171b5", "#08306b"),
    "dissimilar": ("#fee6ce", "#fdae6b", "#f16913", "#d94801", "#7f2704"),
    "evidence": ("#f7fcb9", "#d9f0a3", "#addd8e", "#41ab5d", "#004529"),
    "channel": ("#fde0dd", "#fa9fb5", "#dd3497", "#ae017e", "#49006a"),
}


@dataclass(frozen=True)
class MapStyle:
    kind: str
    symbol: str          # as printed in a title: "S⁺"
    ascii_symbol: str    # for renderers without Unicode (OpenCV's Hershey fonts): "S+"
    title: str           # menu and figure title
    meaning: str         # one line for a legend or a tooltip
    ramp: str            # key of _RAMPS; H joins "dissimilar" (negative) and "similar" (positive)
    signed: bool = False


MAP_STYLES = {
    "S": MapStyle("S", "S", "S", "S — all evidence |H|", "where the face drives the score, either way", "evidence"),
    "S_pos": MapStyle("S_pos", "S⁺", "S+", "S⁺ — similar regions", "regions that make the pair look alike",
                      "similar"),
    "S_neg": MapStyle("S_neg", "S⁻", "S-", "S⁻ — dissimilar regions", "regions that make the pair look different",
                      "dissimilar"),
    "H": MapStyle("H", "H", "H", "H — signed (similar − dissimilar)",
                  "blue: looks alike, orange: looks different", "similar", signed=True),
    "channel": MapStyle("channel", "residual", "residual", "Selected channel residual",
                        "the face region one channel of C reads", "channel"),
}


def map_style(kind: str) -> MapStyle:
    try:
        return MAP_STYLES[kind]
    except KeyError:
        raise ValueError(f"unknown map kind {kind!r}; expected one of {', '.join(MAP_STYLES)}") from None


def unit(kind: str, normalization: str = "sum") -> str:
    """What one unit of the map is, for a colour bar's caption."""
    if normalization != "sum":
        return "relative (max-normalized)"
    return "fraction of the channel's change per pixel" if kind == "channel" else "cosine score per pixel"


def _hex(colour: str) -> np.ndarray:
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], np.float64)


def _ramp(name: str, n: int = 256) -> np.ndarray:
    anchors = np.stack([_hex(c) for c in _RAMPS[name]])
    x = np.linspace(0, 1, n)
    xp = np.linspace(0, 1, len(anchors))
    return np.stack([np.interp(x, xp, anchors[:, c]) for c in range(3)], axis=1)


def lut(kind: str, n: int = 256) -> np.ndarray:
    """(n, 3) RGB uint8 from the lowest value of the colour bar to the highest (for H, levels −m … m: the
    dissimilar ramp from deep to pale, then the similar ramp from pale to deep)."""
    style = map_style(kind)
    if not style.signed:
        return np.round(_ramp(style.ramp, n)).astype(np.uint8)
    half = n // 2
    neg = _ramp("dissimilar", half)[::-1]
    pos = _ramp("similar", n - half)
    return np.round(np.concatenate([neg, pos])).astype(np.uint8)


def opacity_ramp(kind: str, n: int = 256) -> np.ndarray:
    """(n,) in [0, 1]: how opaque each LUT entry is over a face (zero evidence leaves the face untinted)."""
    x = np.linspace(0, 1, n)
    # square root: a diffuse map at a third of its peak must still be seen, zero must stay untinted
    return np.sqrt(np.abs(2 * x - 1) if map_style(kind).signed else x)


def colour_levels(maps, kind: str) -> tuple[float, float]:
    """Common colour levels for several maps (A and B), so equal colours mean equal values on both faces."""
    peaks = [float(np.nanmax(np.abs(m))) for m in maps if np.size(m)]
    peak = max(peaks) if peaks else 0.0
    if peak <= 0 or not math.isfinite(peak):
        peak = 1.0
    return (-peak, peak) if map_style(kind).signed else (0.0, peak)


REGION_FRACTION = 0.05   # a channel's region on a face: where its residual reaches 5 % of its peak on that face


def support_box(values: np.ndarray, fraction: float = REGION_FRACTION) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) around the pixels at or above ``fraction`` of the map's peak |value|; None for an empty map.
    The app's channel region and the report's are this box."""
    peak = float(np.max(np.abs(values))) if np.size(values) else 0.0
    if not peak > 0:
        return None
    rows, cols = np.nonzero(np.abs(values) >= fraction * peak)
    return int(cols.min()), int(rows.min()), int(cols.max() - cols.min() + 1), int(rows.max() - rows.min() + 1)


def is_empty(maps) -> bool:
    """True when every map is zero (or holds nothing finite): its colour bar would have no scale."""
    return not any(np.size(m) and np.nanmax(np.abs(m)) > 0 for m in maps)


# --- colour-bar scale --------------------------------------------------------------------------------------
SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


@dataclass(frozen=True)
class ColourScale:
    """Ticks of a colour bar: ``ticks`` are (value, label) pairs; labels are the values divided by 10**exponent,
    all with the same number of decimals; the first and last tick sit on the bar's ends (the data range)."""

    low: float
    high: float
    exponent: int
    ticks: tuple[tuple[float, str], ...]

    @property
    def multiplier(self) -> str:
        """"×10⁻⁴" (or "" when the labels are the values themselves)."""
        return f"×10{str(self.exponent).translate(SUPERSCRIPT)}" if self.exponent else ""

    @property
    def ascii_multiplier(self) -> str:
        return f"x1e{self.exponent}" if self.exponent else ""


def _nice_step(span: float, n: int) -> tuple[float, int]:
    """A step of 1, 2 or 5 × 10^k near span / n, and the decimals it needs."""
    raw = span / max(n, 1)
    k = math.floor(math.log10(raw))
    mantissa = next(m for m in (1, 2, 5, 10) if m * 10.0 ** k >= 0.75 * raw)
    if mantissa == 10:
        mantissa, k = 1, k + 1
    return mantissa * 10.0 ** k, max(0, -k)


def _decimals_for(value: float) -> int:
    """Decimals that show ``value`` to two significant digits."""
    return max(0, 1 - math.floor(math.log10(value))) if value > 0 else 0


def colour_scale(low: float, high: float, n_ticks: int = 5) -> ColourScale:
    """Evenly stepped ticks from ``low`` to ``high`` (both ends labelled), in one format with a shared power of
    ten; labels show the ends to at least two significant digits."""
    low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        low, high = 0.0, 1.0
    exponent = math.floor(math.log10(max(abs(low), abs(high))))
    exponent = 0 if -2 <= exponent <= 3 else exponent
    scale = 10.0 ** exponent
    lo, hi = low / scale, high / scale
    step, decimals = _nice_step(hi - lo, n_ticks - 1)
    decimals = max(decimals, _decimals_for(max(abs(lo), abs(hi))))
    inner = [k * step for k in range(math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9) + 1)]
    inner = [v for v in inner if min(v - lo, hi - v) > 0.5 * step]
    ticks = ((low, _format(lo, decimals)), *((v * scale, _format(v, decimals)) for v in inner),
             (high, _format(hi, decimals)))
    return ColourScale(low, high, exponent, ticks)


def _format(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return text.lstrip("-") if float(text) == 0 else text.replace("-", "−")


def kind_scale(maps, kind: str) -> ColourScale | None:
    """The one scale rule of the app, the CLI PNGs and the report: each map kind on its own scale, shared by both
    faces, from 0 (−peak for H) to its peak over both. None when every map is zero (no scale to show).
    S⁻ of a mated pair is small next to S: on S's scale it would not show at all."""
    return None if is_empty(maps) else colour_scale(*colour_levels(maps, kind))


def colour_bar_caption(kind: str, scale: ColourScale, normalization: str = "sum", ascii_only: bool = False) -> str:
    """"S⁺ (×10⁻⁴ cosine score per pixel), max 3.2": the map, its unit with the labels' multiplier, and the top
    of its scale (each kind has its own, so each figure states it)."""
    style = map_style(kind)
    symbol = style.ascii_symbol if ascii_only else style.symbol
    mult = scale.ascii_multiplier if ascii_only else scale.multiplier
    what = unit(kind, normalization)
    top = scale.ticks[-1][1].replace("−", "-") if ascii_only else scale.ticks[-1][1]
    return f"{symbol} ({mult + ' ' if mult else ''}{what}), max {'|H| ' if style.signed else ''}{top}"


def _tick_decimals(scale: ColourScale) -> int:
    return max((len(label.split(".")[1]) for _, label in scale.ticks if "." in label), default=0)


def scale_value(value: float, scale: ColourScale | None, signed: bool = False) -> str:
    """``value`` in its colour bar's unit (divided by 10**exponent, one decimal more than the ticks): a read-out
    beside a ×10⁻⁴ bar must not say 2.3e-06. Without a scale (an all-zero map): three significant digits."""
    if scale is None:
        return f"{value:{'+' if signed else ''}.3g}".replace("-", "−")
    text = f"{value / 10.0 ** scale.exponent:{'+' if signed else ''}.{_tick_decimals(scale) + 1}f}"
    return text.replace("-", "−")
