"""Which face of a photo is compared, settled before anything is stored or scored: a photo without a face is
refused, and with several faces the examiner names one (face 1 = the largest) instead of the program taking the
largest silently. A refusal lists the faces and writes a contact sheet of them, numbered, to look at."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .alignment import Face, FaceAligner, FaceIndexError, Photo, load_photo
from .errors import ImageError, NoFaceError

TILE = 160                       # px: the contact sheet's row height
MARGIN = 0.25                    # of the face box, around each enlarged face


class FaceChoiceNeeded(ImageError):
    """A photo shows several faces and none was chosen."""


@lru_cache(maxsize=1)
def _detector() -> FaceAligner:
    from .model import ARCFACE_TEMPLATE_112

    # detection alone never reads the template; the analysis detects with the same detector and threshold
    return FaceAligner(ARCFACE_TEMPLATE_112, (112, 112))


def face_summary(faces: list[Face]) -> str:
    """'face 1: 98×136 px at (319, 63), face 2: 86×118 px at (79, 69)' (box size and top-left corner)."""
    parts = []
    for number, face in enumerate(faces, start=1):
        x, y, w, h = (int(round(v)) for v in face.box)
        parts.append(f"face {number}: {w}×{h} px at ({x}, {y})")
    return ", ".join(parts)


def contact_sheet(image: np.ndarray | Photo, faces: list[Face]) -> np.ndarray:
    """The photo with each face's box and number, then each face enlarged with its number (RGB, one row).
    ``faces`` are in the original photo's pixels (a reduced :class:`Photo` maps them onto its own)."""
    photo = image if isinstance(image, Photo) else Photo(np.asarray(image))
    boxes = [photo.to_pixels(face.box) for face in faces]
    overview = _numbered_boxes(photo.pixels, boxes)
    scale = TILE / overview.shape[0]
    parts = [cv2.resize(overview, (max(1, round(overview.shape[1] * scale)), TILE), interpolation=cv2.INTER_AREA)]
    parts += [_face_tile(photo.pixels, box, number) for number, box in enumerate(boxes, start=1)]
    gap = np.full((TILE, 8, 3), 255, np.uint8)
    return np.concatenate([p for part in parts for p in (part, gap)][:-1], axis=1)


def _label(img: np.ndarray, text: str, x: int, y: int, size: float) -> None:
    thickness = max(1, round(size * 2))
    for colour, extra in (((0, 0, 0), 2), ((255, 255, 0), 0)):   # dark outline: readable on any background
        cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, size, colour, thickness + extra, cv2.LINE_AA)


def _numbered_boxes(image: np.ndarray, boxes: list[np.ndarray]) -> np.ndarray:
    out = np.ascontiguousarray(image.copy())
    size = max(0.5, max(image.shape[:2]) / 400)
    for number, box in enumerate(boxes, start=1):
        x, y, w, h = (int(round(v)) for v in box)
        cv2.rectangle(out, (x, y), (x + w, y + h), (255, 255, 0), max(1, round(size * 2)))
        _label(out, str(number), x + 3, max(y - 6, round(30 * size)), size * 1.2)
    return out


def _face_tile(image: np.ndarray, box: np.ndarray, number: int) -> np.ndarray:
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * MARGIN)
    x0, y0 = int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2))
    pad = int(side) + 1                                          # a face at the photo's edge keeps its square
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    crop = padded[y0 + pad:y0 + pad + int(side), x0 + pad:x0 + pad + int(side)]
    tile = np.ascontiguousarray(cv2.resize(crop, (TILE, TILE), interpolation=cv2.INTER_AREA))
    _label(tile, str(number), 6, 30, 0.9)
    return tile


def choose_face(path, number: int | None, *, name: str, option: str, sheet_dir) -> int:
    """The 0-based index of face ``number`` (1-based; None: the photo's only face) of the photo at ``path``.

    ``name`` names the photo in messages, ``option`` how to choose a face (e.g. "--face-a K"). Refuses rather
    than guess: no face (NoFaceError), no such face (FaceIndexError), several faces and no number
    (FaceChoiceNeeded, after writing the numbered contact sheet into ``sheet_dir``, named in the message).
    """
    image = load_photo(path, source=name)
    faces = _detector().detect(image, source=name)
    if not faces:
        raise NoFaceError(f"{name}: no face found, so it cannot be compared")
    if number is None and len(faces) == 1:
        return 0
    if number is None:
        from .render import save_png

        Path(sheet_dir).mkdir(parents=True, exist_ok=True)
        sheet = Path(sheet_dir) / f"faces-{Path(path).stem}.png"
        save_png(sheet, contact_sheet(image, faces))
        raise FaceChoiceNeeded(f"{name} shows {len(faces)} faces ({face_summary(faces)}; numbered in {sheet}): "
                               f"choose one with {option}")
    if not 1 <= int(number) <= len(faces):
        raise FaceIndexError(f"{name}: face {number} requested but {len(faces)} "
                             f"face{'s' if len(faces) != 1 else ''} found (valid: 1 to {len(faces)}, 1 = largest; "
                             f"{face_summary(faces)})")
    return int(number) - 1
