"""Synthetic occluders on aligned faces, to measure the paper's claim that S⁻ sits on what hides the face.

Occluders are drawn from the model's alignment template (the five landmarks in aligned pixels), so they land on
the same part of every aligned face: ``mask`` (a surgical-mask-like shape over nose tip, mouth and chin, light
blue) and ``sunglasses`` (two dark lenses over the eyes joined by a bridge bar).
"""
from __future__ import annotations

import cv2
import numpy as np

OCCLUDERS = ("mask", "sunglasses")


def occluder_mask(kind: str, template: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H,W) bool: where the occluder covers the aligned face."""
    H, W = size
    t = np.asarray(template, np.float64)
    eye_r, eye_l, nose, mouth_r, mouth_l = t
    d = float(np.linalg.norm(eye_l - eye_r))           # eye distance sets the scale
    canvas = np.zeros((H, W), np.uint8)
    if kind == "mask":
        top = nose[1] - 0.4 * d                          # over the nose bridge's lower half
        mouth_y = (mouth_r[1] + mouth_l[1]) / 2
        bottom = mouth_y + 0.85 * d                       # under the chin
        left, right = eye_r[0] - 0.5 * d, eye_l[0] + 0.5 * d
        cx, mid = (left + right) / 2, (top + mouth_y) / 2
        ang = np.linspace(0, np.pi, 40)                   # a rounded lower half, right side first
        lower = np.stack([cx + (right - left) / 2 * np.cos(ang), mid + (bottom - mid) * np.sin(ang)], 1)
        pts = np.concatenate([[[left + 0.15 * d, top], [right - 0.15 * d, top]], lower])
        cv2.fillPoly(canvas, [np.round(pts).astype(np.int32)], 1, lineType=cv2.LINE_8)
    elif kind == "sunglasses":
        axes = (int(round(0.45 * d)), int(round(0.3 * d)))
        for eye in (eye_r, eye_l):
            cv2.ellipse(canvas, (int(round(eye[0])), int(round(eye[1]))), axes, 0, 0, 360, 1, -1)
        y = int(round((eye_r[1] + eye_l[1]) / 2 - 0.1 * d))
        cv2.rectangle(canvas, (int(round(eye_r[0])), y - max(1, int(0.05 * d))),
                      (int(round(eye_l[0])), y + max(1, int(0.05 * d))), 1, -1)
    else:
        raise ValueError(f"occluder must be one of {', '.join(OCCLUDERS)}")
    return canvas.astype(bool)


OCCLUDER_COLOURS = {"mask": (172, 205, 232), "sunglasses": (22, 22, 26)}


def paste_occluder(face: np.ndarray, kind: str, template: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The face with the occluder painted on (slightly shaded so it is not one flat colour), and its mask."""
    mask = occluder_mask(kind, template, face.shape[:2])
    out = face.copy()
    H, W = mask.shape
    shade = (0.9 + 0.1 * np.linspace(0, 1, H))[:, None, None]          # a soft vertical gradient
    colour = np.clip(np.asarray(OCCLUDER_COLOURS[kind], np.float64)[None, None] * shade, 0, 255)
    colour = np.broadcast_to(colour, (H, W, 3)).astype(np.uint8)
    out[mask] = colour[mask]
    return out, mask


def mass_share(saliency: np.ndarray, region: np.ndarray) -> float:
    """Share of the map's (non-negative) mass inside ``region``; NaN for an all-zero map."""
    s = np.clip(np.asarray(saliency, np.float64), 0, None)
    total = s.sum()
    return float(s[region].sum() / total) if total > 0 else float("nan")
