"""Rendering of saliency maps over faces (Qt-free: used by the CLI, the reports and the hiding-game figures).

Colours, titles and colour-bar scales come from :mod:`.map_style`, the one vocabulary the app shares.
"""
from __future__ import annotations

import cv2
import numpy as np

from .map_style import ColourScale, colour_bar_caption, colour_levels, colour_scale, lut, map_style, opacity_ramp

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _index(values: np.ndarray, low: float, high: float) -> np.ndarray:
    v = np.nan_to_num(np.asarray(values, np.float64))
    span = high - low
    norm = np.zeros_like(v) if span <= 0 else np.clip((v - low) / span, 0, 1)
    return np.round(norm * 255).astype(np.intp)


def _levels(values: np.ndarray, vmax: float | None, kind: str) -> tuple[float, float]:
    """0…vmax (−vmax…vmax for a signed kind); the map's own peak when vmax is None or not positive."""
    if vmax is None or not vmax > 0:
        return colour_levels([values], kind)
    return (-float(vmax) if map_style(kind).signed else 0.0), float(vmax)


def colorize(values: np.ndarray, low: float, high: float, kind: str = "S") -> np.ndarray:
    """H×W float -> H×W×3 RGB uint8 in the map kind's colours, values clipped to [low, high]."""
    return lut(kind)[_index(values, low, high)]


def overlay(face_rgb: np.ndarray, values: np.ndarray, vmax: float | None = None, alpha: float = 0.75,
            kind: str = "S") -> np.ndarray:
    """The map over the grey face; its opacity grows with |value|, so zero leaves the face as it is."""
    idx = _index(values, *_levels(values, vmax, kind))
    colours = lut(kind)[idx].astype(np.float64)
    weight = alpha * opacity_ramp(kind)[idx][..., None]
    grey = cv2.cvtColor(np.ascontiguousarray(face_rgb), cv2.COLOR_RGB2GRAY).astype(np.float64)[..., None]
    out = grey * (1 - weight) + colours * weight
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def colorbar(height: int, scale: ColourScale, kind: str, width: int = 16) -> np.ndarray:
    """A vertical colour bar with every tick of ``scale`` written beside it, RGB uint8 (height × width+52)."""
    ramp = np.linspace(scale.high, scale.low, height)[:, None].repeat(width, 1)
    panel = np.full((height, width + 52, 3), 255, np.uint8)
    panel[:, :width] = colorize(ramp, scale.low, scale.high, kind)
    for value, label in scale.ticks:
        y = int(round((scale.high - value) / (scale.high - scale.low) * (height - 1)))
        cv2.line(panel, (width, y), (width + 3, y), (0, 0, 0), 1)
        cv2.putText(panel, label.replace("−", "-"), (width + 5, min(max(y + 4, 9), height - 2)), _FONT, 0.35,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return panel


def overlay_with_colorbar(face_rgb: np.ndarray, values: np.ndarray, vmax: float | None = None, kind: str = "S",
                          scale: int = 3, normalization: str = "sum") -> np.ndarray:
    """The overlay enlarged ``scale`` times, the map's meaning above, a colour bar with its unit at the right.

    ``vmax``: the top of the colour bar (pass the peak over both faces so A and B share one scale)."""
    style = map_style(kind)
    low, high = _levels(values, vmax, kind)
    img = overlay(face_rgb, values, high, kind=kind)
    img = cv2.resize(img, (img.shape[1] * scale, img.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    ticks = colour_scale(low, high)
    bar = colorbar(img.shape[0], ticks, kind)
    body = np.concatenate([img, np.full((img.shape[0], 6, 3), 255, np.uint8), bar], axis=1)
    head = np.full((36, body.shape[1], 3), 255, np.uint8)
    cv2.putText(head, f"{style.ascii_symbol}: {style.meaning}", (2, 14), _FONT, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(head, "scale: " + colour_bar_caption(kind, ticks, normalization, ascii_only=True), (2, 30), _FONT,
                0.36, (70, 70, 70), 1, cv2.LINE_AA)
    return np.concatenate([head, body], axis=0)


def save_png(path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode PNG for {path}")
    with open(path, "wb") as f:
        f.write(buf.tobytes())
