"""Rendering of saliency maps over faces (Qt-free: used by the CLI, the reports and the hiding-game figures)."""
from __future__ import annotations

import cv2
import numpy as np

# OpenCV colormaps per map kind: S⁺ (similar) and S⁻ (dissimilar) get distinct hues so a printed report
# stays readable; S uses a perceptually ordered map.
MAP_COLORMAPS = {"S": cv2.COLORMAP_INFERNO, "S_pos": cv2.COLORMAP_SUMMER, "S_neg": cv2.COLORMAP_HOT,
                 "H": cv2.COLORMAP_JET}
MAP_TITLES = {"S": "S (discriminative)", "S_pos": "S+ (similar)", "S_neg": "S- (dissimilar)", "H": "H"}


def colorize(values: np.ndarray, vmax: float | None = None, colormap: int = cv2.COLORMAP_INFERNO,
             vmin: float = 0.0) -> np.ndarray:
    """H×W float -> H×W×3 RGB uint8, values clipped to [vmin, vmax]."""
    v = np.asarray(values, np.float64)
    vmax = float(np.max(v)) if vmax is None else float(vmax)
    span = vmax - vmin
    norm = np.zeros_like(v) if span <= 0 else np.clip((v - vmin) / span, 0, 1)
    bgr = cv2.applyColorMap(np.round(norm * 255).astype(np.uint8), colormap)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def overlay(face_rgb: np.ndarray, values: np.ndarray, vmax: float | None = None, alpha: float = 0.55,
            colormap: int = cv2.COLORMAP_INFERNO) -> np.ndarray:
    """Blend a map over a face; alpha grows with the value so low-saliency regions keep the face visible."""
    colors = colorize(values, vmax, colormap).astype(np.float64)
    v = np.asarray(values, np.float64)
    top = float(np.max(v)) if vmax is None else float(vmax)
    weight = alpha * (np.clip(v / top, 0, 1) if top > 0 else np.zeros_like(v))[..., None]
    out = face_rgb.astype(np.float64) * (1 - weight) + colors * weight
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def colorbar(height: int, vmax: float, colormap: int, width: int = 18, label: str = "") -> np.ndarray:
    """A vertical colour bar with its scale written beside it, RGB uint8 (height × ~width+70)."""
    ramp = np.linspace(1, 0, height)[:, None].repeat(width, 1)
    bar = colorize(ramp, 1.0, colormap)
    panel = np.full((height, width + 72, 3), 255, np.uint8)
    panel[:, :width] = bar
    font = cv2.FONT_HERSHEY_SIMPLEX
    for frac in (0.0, 0.5, 1.0):
        y = int(round((1 - frac) * (height - 1)))
        y_text = min(max(y + 4, 10), height - 2)
        cv2.putText(panel, f"{frac * vmax:.2g}", (width + 4, y_text), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    if label:
        cv2.putText(panel, label[:10], (width + 4, height // 2 + 18), font, 0.3, (80, 80, 80), 1, cv2.LINE_AA)
    return panel


def overlay_with_colorbar(face_rgb: np.ndarray, values: np.ndarray, vmax: float | None = None,
                          kind: str = "S", scale: int = 3, title: str | None = None) -> np.ndarray:
    """The overlay enlarged ``scale`` times, a title above and a colour bar at the right."""
    cmap = MAP_COLORMAPS.get(kind, cv2.COLORMAP_INFERNO)
    vmax = float(np.max(values)) if vmax is None else float(vmax)
    img = overlay(face_rgb, values, vmax if vmax > 0 else None, colormap=cmap)
    img = cv2.resize(img, (img.shape[1] * scale, img.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    bar = colorbar(img.shape[0], vmax, cmap)
    body = np.concatenate([img, np.full((img.shape[0], 6, 3), 255, np.uint8), bar], axis=1)
    head = np.full((22, body.shape[1], 3), 255, np.uint8)
    cv2.putText(head, title if title is not None else MAP_TITLES.get(kind, kind), (2, 15),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([head, body], axis=0)


def save_png(path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode PNG for {path}")
    with open(path, "wb") as f:
        f.write(buf.tobytes())
