"""One side's photo as the photo panel shows it, and the way between its pixels and the aligned face.

The stored face (box, landmarks, the photo → aligned transform) is in the original photo's pixels; a huge JPEG is
decoded reduced for display (core.imageio.Photo), so :func:`side_source` moves the face onto the decoded pixels.
The crosshair crosses between the aligned faces and the photos through the transform and its inverse.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..core.imageio import Photo


@dataclass
class SideSource:
    """What the photo panel shows for one side; box, landmarks and transform in ``photo``'s pixels."""

    photo: np.ndarray | None = None        # RGB uint8
    box: np.ndarray | None = None          # x, y, w, h
    landmarks: np.ndarray | None = None    # (5, 2)
    transform: np.ndarray | None = None    # (2, 3) photo -> aligned
    agreement: np.ndarray | None = None    # (H, W) share of jitter draws keeping H's sign (trust check)
    scale: int = 1                         # the original's pixels per pixel of `photo` (a huge JPEG is reduced)


def side_source(photo: Photo | None, face: dict) -> SideSource:
    """One side's photo panel: the stored face (box, landmarks, transform in the original's pixels) moved onto
    the photo as decoded for display, which a huge JPEG is at 1/2, 1/4 or 1/8 of its size."""
    shown = face if photo is None else photo.face_to_pixels(face)
    return SideSource(photo=None if photo is None else photo.pixels, scale=1 if photo is None else photo.scale,
                      box=shown.get("box"), landmarks=shown.get("landmarks"), transform=shown.get("transform"),
                      agreement=shown.get("stable_agreement"))


def to_photo(transform, points) -> np.ndarray | None:
    """Aligned-face points (N, 2) in the photo's pixels (None: no transform, or one that cannot be inverted)."""
    if transform is None:
        return None
    M = np.asarray(transform, float)
    try:
        inv = np.linalg.inv(M[:, :2])
    except np.linalg.LinAlgError:
        return None
    return (np.asarray(points, float) - M[:, 2]) @ inv.T


def to_aligned(transform, point) -> np.ndarray | None:
    """A photo pixel (x, y) in the aligned face's pixels (None: no transform)."""
    if transform is None:
        return None
    M = np.asarray(transform, float)
    return M[:, :2] @ np.asarray(point, float) + M[:, 2]


def crop_outline(source: SideSource, face_shape: tuple[int, int]) -> np.ndarray | None:
    """The aligned face's border (a closed polyline of 5 points) on the photo, where the model's crop came from."""
    if source.transform is None or source.photo is None:
        return None
    h, w = face_shape
    return to_photo(source.transform, np.array([[0, 0], [w, 0], [w, h], [0, h], [0, 0]], float))
