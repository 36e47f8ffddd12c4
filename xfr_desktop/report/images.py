"""The report's pictures, drawn with numpy/cv2 (no reportlab, no Qt): the photographs with the face box, landmarks
and the examiner's annotations, the explanation maps over the aligned faces, and each top channel's region.

Marks are stored in the original photo's pixels; a huge photo is loaded reduced (core.imageio.load_display_photo)
and :class:`~xfr_desktop.core.imageio.Photo` moves the marks onto it.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..core.errors import XfrError
from ..core.imageio import Photo, load_display_photo
from ..core.map_style import support_box
from ..core.render import colorize, overlay


def load_original(store, sha256: str) -> Photo | None:
    """The stored photo as the report shows it (reduced, with its scale, when huge); None when unreadable."""
    try:
        return load_display_photo(store.image_path(sha256))
    except XfrError:
        return None


def overlay_map(aligned: np.ndarray | None, heat: np.ndarray, vmax: float, kind: str, upscale: int = 2) -> np.ndarray:
    """The map over the grey face in its kind's colours (core.map_style, as in the app and the CLI), upscaled."""
    h, w = heat.shape
    if aligned is not None and aligned.shape[:2] == (h, w):
        out = overlay(aligned, heat, vmax=vmax, kind=kind)
    else:
        out = colorize(heat, 0.0, vmax if vmax > 0 else 1.0, kind)
    return cv2.resize(out, (w * upscale, h * upscale), interpolation=cv2.INTER_NEAREST)


def thumbnail_with_box(photo: Photo, box=None, landmarks=None, max_side: int = 480,
                       annotations=()) -> np.ndarray:
    """The photo scaled for print, with the detected face box (green), landmarks and the examiner's annotations
    (magenta points and rectangles, numbered in the order listed), all given in the original photo's pixels."""
    img = np.ascontiguousarray(photo.pixels)
    scale = min(1.0, max_side / max(img.shape[:2]))
    if scale < 1.0:
        img = cv2.resize(img, (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA)
    img = img.copy()
    thick = max(2, round(max(img.shape[:2]) / 200))
    if box is not None and len(box) == 4 and np.all(np.isfinite(box)):
        x, y, w, h = photo.to_pixels(box) * scale
        cv2.rectangle(img, (round(x), round(y)), (round(x + w), round(y + h)), (0, 200, 0), thick)
    if landmarks is not None:
        for px, py in photo.to_pixels(np.reshape(landmarks, (-1, 2))) * scale:
            if np.isfinite(px) and np.isfinite(py):
                cv2.circle(img, (round(px), round(py)), thick + 1, (255, 200, 0), -1)
    for n, a in enumerate(annotations, 1):
        ax, ay, aw, ah = photo.to_pixels((a.x, a.y, a.width, a.height)) * scale
        x, y = round(ax), round(ay)
        if a.kind == "rect":
            cv2.rectangle(img, (x, y), (round(ax + aw), round(ay + ah)), (230, 0, 200), thick)
        else:
            cv2.circle(img, (x, y), 3 * thick, (230, 0, 200), thick)
        cv2.putText(img, str(n), (x + 2 * thick, max(12, y - 2 * thick)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45 * thick, (230, 0, 200), thick, cv2.LINE_AA)
    return img


def channel_region(aligned: np.ndarray | None, residual: np.ndarray, vmax: float, upscale: int = 2) -> np.ndarray:
    """A channel's residual over the face on the scale ``vmax`` (its peak over both faces, as in the app), with a
    white box around its region on this face (core.map_style.support_box, the app's box)."""
    out = overlay_map(aligned, residual, vmax, "channel", upscale=upscale)
    box = support_box(residual)
    if box is not None:
        x, y, w, h = box
        cv2.rectangle(out, (x * upscale, y * upscale), ((x + w) * upscale - 1, (y + h) * upscale - 1),
                      (255, 255, 255), 1)
    return out
