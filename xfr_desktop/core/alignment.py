"""Face detection (YuNet through OpenCV's FaceDetectorYN) and similarity alignment onto a model's template.

YuNet returns, per face, a box (x, y, w, h), five landmarks in the order right eye, left eye, nose tip, right and
left mouth corner (the subject's right eye is on the image's left), and a score. The ArcFace template lists its
points in the same order, so landmarks map onto template points one to one.

The similarity transform is a weighted least-squares (Umeyama) fit over all five points: deterministic, no random
sampling. By default the eyes weigh twice as much as nose and mouth corners (``DEFAULT_LANDMARK_WEIGHTS``):
mouths and noses vary with expression and pose, and registering the eyes tightly keeps the two faces of a pair, and
their explanation maps, spatially comparable. Measured on 300 random LFW images: eyes within 3 px of the ArcFace
template for 92% of faces (median worst eye 1.9 px) against 77% (2.4 px) with equal weights. Equal weights
(``(1, 1, 1, 1, 1)``) reproduce insightface's ``norm_crop`` exactly; a model spec may choose them with the key
``"landmark_weights"``.
"""
from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from .errors import ImageError, ModelFileError, NoFaceError
from .imageio import Photo, image_sha256, load_image, load_photo  # noqa: F401  (re-exported: callers load, align)
from ..paths import REPO_ROOT

__all__ = [
    "AlignedFace", "Face", "FaceAligner", "FaceIndexError", "NoFaceError", "ImageError", "Photo", "load_image",
    "load_photo",
    "image_sha256", "umeyama_similarity", "warp_points", "default_detector_path", "DEFAULT_LANDMARK_WEIGHTS",
]

log = logging.getLogger(__name__)

YUNET_FILE = "face_detection_yunet.onnx"
DEFAULT_LANDMARK_WEIGHTS = (2.0, 2.0, 1.0, 1.0, 1.0)  # right eye, left eye, nose, mouth corners
# Faces are searched on a copy whose longer side is at most this many pixels (YuNet finds faces down to
# ~10 px, so a 20 px face in a 4000 px photo is still found); boxes and landmarks are mapped back.
DETECT_MAX_SIDE = 1600
# ... and at most this many pixels: the detector's working memory grows with its input (about 80 bytes a pixel,
# 200 MB at 1600x1600). A 3:2 photo is searched at 1254x836: in a 6000x4000 one faces from ~50 px wide are found
# (narrower ones are too small to compare anyway: image_quality's 60 px).
DETECT_MAX_PIXELS = 1024 * 1024
# A detector that has run on more pixels than this (~80 MB of working memory) is dropped afterwards (re-created in
# ~12 ms), so it does not keep the memory of a large input while the rest of the analysis runs.
KEEP_DETECTOR_PIXELS = 1000 * 1000
# Tight crops (the face fills the frame) defeat the detector; a second try pads the image by this fraction.
RETRY_PAD_FRACTION = 0.3


class FaceIndexError(ImageError):
    """The requested face does not exist in the image."""


@dataclass(frozen=True)
class Face:
    """One detection in source-image pixels (the original's, when found on a reduced :class:`Photo`)."""

    box: np.ndarray        # (4,) x, y, w, h
    landmarks: np.ndarray  # (5, 2) right eye, left eye, nose tip, right mouth corner, left mouth corner
    score: float

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])


@dataclass
class AlignedFace:
    """An aligned face and where it came from."""

    aligned: np.ndarray            # (H, W, 3) uint8 RGB at the model's input size
    box: np.ndarray | None         # (4,) x, y, w, h in the source image's pixels; None for pre-aligned crops
    landmarks: np.ndarray | None   # (5, 2) in the source image's pixels; None for pre-aligned crops
    n_faces: int                   # faces found in the source image (1 for pre-aligned crops)
    face_index: int                # which of them (0 = largest)
    transform: np.ndarray          # (2, 3) source image pixels -> aligned pixels
    score: float | None = None     # detector score
    prealigned: bool = False
    faces: list[Face] = field(default_factory=list)  # all detections, largest first


def default_detector_path() -> Path:
    """The bundled YuNet file (models/, or $XFR_MODELS_DIR when it holds one)."""
    from .model import MODELS_DIR

    for folder in (Path(MODELS_DIR), REPO_ROOT / "models"):
        candidate = folder / YUNET_FILE
        if candidate.is_file():
            return candidate
    return REPO_ROOT / "models" / YUNET_FILE


def umeyama_similarity(src: np.ndarray, dst: np.ndarray, weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted least-squares similarity (rotation, uniform scale, translation) mapping src -> dst; returns 2x3.

    Umeyama (1991); with equal weights it is the estimate of skimage's SimilarityTransform that insightface uses.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(src),) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"landmark weights must be {len(src)} non-negative numbers, got {weights!r}")
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    s_c, d_c = src - mu_s, dst - mu_d
    cov = (d_c * w[:, None]).T @ s_c
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(2)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[1, 1] = -1.0  # no reflections
    R = U @ S @ Vt
    var_s = float(w @ (s_c ** 2).sum(1))
    if var_s <= 0:
        raise ValueError("degenerate landmarks (all points coincide)")
    scale = float(np.trace(np.diag(D) @ S) / var_s)
    M = np.zeros((2, 3))
    M[:, :2] = scale * R
    M[:, 2] = mu_d - scale * R @ mu_s
    return M


def warp_points(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    return pts @ np.asarray(transform)[:, :2].T + np.asarray(transform)[:, 2]


def _spec_parts(template_or_spec: Any, input_size: Sequence[int] | None) -> tuple[np.ndarray, tuple[int, int]]:
    if isinstance(template_or_spec, dict):
        template = template_or_spec["template"]
        if input_size is None:
            input_size = template_or_spec["input_size"]
    else:
        template = template_or_spec
    if input_size is None:
        raise ValueError("input_size (H, W) is required when a bare template is given")
    template = np.asarray(template, dtype=np.float64)
    if template.shape != (5, 2):
        raise ValueError(f"alignment template must be 5 (x, y) points, got shape {template.shape}")
    h, w = (int(v) for v in input_size)
    return template, (h, w)


class FaceAligner:
    """Detects faces with YuNet and warps the chosen one onto a template at the model's input size.

    One detector instance is created on first use and reused (its input size is set per image); calls are
    serialized by a lock, so one aligner may be shared between worker threads.
    """

    def __init__(
        self,
        template: Any,
        input_size: Sequence[int] | None = None,
        detector_path: str | os.PathLike | None = None,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        detect_max_side: int = DETECT_MAX_SIDE,
        detect_max_pixels: int = DETECT_MAX_PIXELS,
        landmark_weights: Sequence[float] | None = None,
    ):
        self.template, self.input_size = _spec_parts(template, input_size)  # input_size is (H, W)
        self.detector_path = Path(detector_path) if detector_path is not None else default_detector_path()
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.detect_max_side = int(detect_max_side)
        self.detect_max_pixels = int(detect_max_pixels)
        if landmark_weights is None and isinstance(template, dict):
            landmark_weights = template.get("landmark_weights")
        weights = DEFAULT_LANDMARK_WEIGHTS if landmark_weights is None else landmark_weights
        self.landmark_weights = tuple(float(v) for v in weights)
        if len(self.landmark_weights) != 5:
            raise ValueError(f"landmark_weights must be 5 numbers, got {weights!r}")
        self._detector = None
        self._lock = threading.Lock()

    def __getstate__(self):  # picklable for worker processes: the detector and lock are rebuilt there
        state = self.__dict__.copy()
        state["_detector"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @classmethod
    def for_model(cls, model, **kwargs) -> "FaceAligner":
        """An aligner for a JointModel (its spec's template, input size and optional landmark_weights)."""
        kwargs.setdefault("landmark_weights", model.spec.get("landmark_weights"))
        return cls(model.spec["template"], model.input_size, **kwargs)

    # --- detection ------------------------------------------------------------------------------------------
    def _get_detector(self):
        if self._detector is None:
            if not self.detector_path.is_file():
                raise ModelFileError(f"face detector model not found: {self.detector_path}")
            level = None
            try:
                # OpenCV 5 logs a harmless "targets are not supported" warning when the detector is created
                level = cv2.utils.logging.getLogLevel()
                cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
            except AttributeError:
                pass
            try:
                self._detector = cv2.FaceDetectorYN.create(
                    str(self.detector_path), "", (320, 320), self.score_threshold, self.nms_threshold, 5000
                )
            except cv2.error as exc:
                msg = str(exc).strip().splitlines()[-1][:200]
                raise ModelFileError(f"cannot load face detector {self.detector_path}: {msg}") from None
            finally:
                if level is not None:
                    cv2.utils.logging.setLogLevel(level)
        return self._detector

    def _run_detector(self, bgr: np.ndarray, name: str) -> np.ndarray:
        detector = self._get_detector()
        h, w = bgr.shape[:2]
        try:
            detector.setInputSize((w, h))
            _, rows = detector.detect(bgr)
        except cv2.error as exc:
            msg = str(exc).strip().splitlines()[-1][:160]
            raise ImageError(f"{name}: face detection failed on this {w}x{h} image ({msg})") from None
        finally:
            if w * h > KEEP_DETECTOR_PIXELS:
                self._detector = None
        return np.zeros((0, 15), np.float32) if rows is None else np.asarray(rows, np.float32)

    def _detect_rows(self, image: np.ndarray, name: str, pad_fraction: float) -> np.ndarray:
        """Detector rows (float64) in ``image``'s pixels, searched on a copy shrunk to the detector's bounds and
        padded on every side by ``pad_fraction`` of its longer side (the padded copy stays within the bounds)."""
        h, w = image.shape[:2]
        grow = 1.0 + 2.0 * pad_fraction
        bound = min(self.detect_max_side / max(h, w), math.sqrt(self.detect_max_pixels / (h * w))) / grow
        scale = min(1.0, bound)
        if scale < 1.0:
            image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        offset = int(round(pad_fraction * max(bgr.shape[:2])))
        if offset:
            bgr = cv2.copyMakeBorder(bgr, offset, offset, offset, offset, cv2.BORDER_CONSTANT, value=0)
        rows = self._run_detector(bgr, name).astype(np.float64)
        rows[:, 0:2] -= offset
        rows[:, 4:14] -= offset
        rows[:, :14] /= scale
        return rows

    def detect(self, image_rgb: np.ndarray | Photo, source: str | None = None) -> list[Face]:
        """All faces with score >= score_threshold, largest box first, in the pixel coordinates of image_rgb (of
        the original photo when given a reduced :class:`Photo`)."""
        name = source or "the image"
        photo = _as_photo(image_rgb)
        with self._lock:
            rows = self._detect_rows(photo.pixels, name, 0.0)
            if len(rows) == 0:
                # the face may fill the whole frame (a tight crop): give the detector some context
                rows = self._detect_rows(photo.pixels, name, RETRY_PAD_FRACTION)
        faces = [Face(box=photo.to_original(row[0:4]), landmarks=photo.to_original(row[4:14].reshape(5, 2)),
                      score=float(row[14])) for row in rows]
        faces.sort(key=lambda f: -f.area)
        return faces

    # --- alignment ------------------------------------------------------------------------------------------
    def estimate_transform(self, landmarks: np.ndarray) -> np.ndarray:
        """2x3 similarity taking the five landmarks onto the template."""
        return umeyama_similarity(landmarks, self.template, self.landmark_weights)

    def warp(self, image_rgb: np.ndarray, transform: np.ndarray) -> np.ndarray:
        """Warp to the input size; big downscales are pre-shrunk with area averaging to avoid aliasing."""
        image = _check_image(image_rgb)
        h_out, w_out = self.input_size
        M = np.asarray(transform, dtype=np.float64)
        scale = float(np.sqrt(abs(np.linalg.det(M[:, :2]))))
        if scale < 0.5:
            # crop the source region that lands in the output, shrink it to ~2x output resolution, then warp
            inv = cv2.invertAffineTransform(M)
            corners = np.array([[0, 0], [w_out, 0], [0, h_out], [w_out, h_out]], np.float64)
            src = warp_points(corners, inv)
            x0, y0 = np.floor(src.min(0)).astype(int) - 2
            x1, y1 = np.ceil(src.max(0)).astype(int) + 2
            H, W = image.shape[:2]
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
            if x1 - x0 >= 2 and y1 - y0 >= 2:
                k = 2.0 * scale
                crop = image[y0:y1, x0:x1]
                cw, ch = max(1, round((x1 - x0) * k)), max(1, round((y1 - y0) * k))
                shrunk = cv2.resize(crop, (cw, ch), interpolation=cv2.INTER_AREA)
                kx, ky = cw / (x1 - x0), ch / (y1 - y0)
                # source -> crop -> shrunk: p' = diag(kx, ky) (p - (x0, y0)); compose with M
                to_shrunk = np.array([[kx, 0, -kx * x0], [0, ky, -ky * y0], [0, 0, 1]])
                from_shrunk = np.linalg.inv(to_shrunk)
                M_small = M @ from_shrunk
                return cv2.warpAffine(shrunk, M_small, (w_out, h_out), flags=cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return cv2.warpAffine(image, M, (w_out, h_out), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def align(
        self, image_rgb: np.ndarray | Photo, face_index: int = 0, source: str | None = None,
        faces: list[Face] | None = None,
    ) -> AlignedFace:
        """Detect, pick face ``face_index`` (0 = largest) and warp it onto the template.

        ``source`` names the image in error messages (NoFaceError, FaceIndexError). ``faces``: the result of an
        earlier ``detect(image_rgb)`` (e.g. after asking the user which face), so detection is not run twice.
        Box, landmarks and transform are in the original photo's pixels when given a reduced :class:`Photo`.
        """
        name = source or "the image"
        faces = self.detect(image_rgb, source=source) if faces is None else list(faces)
        if not faces:
            raise NoFaceError(f"{name}: no face found (detector score threshold {self.score_threshold:g})")
        if not isinstance(face_index, (int, np.integer)) or face_index < 0 or face_index >= len(faces):
            found = f"{len(faces)} face{'s' if len(faces) != 1 else ''}"
            asked = face_index + 1 if isinstance(face_index, (int, np.integer)) else face_index
            raise FaceIndexError(  # people count faces from 1 (face_index is 0-based)
                f"{name}: face {asked} requested but {found} found (valid: 1 to {len(faces)}, 1 = largest)"
            )
        face = faces[int(face_index)]
        M = self.estimate_transform(face.landmarks)
        photo = _as_photo(image_rgb)
        return AlignedFace(
            aligned=self.warp(photo.pixels, photo.transform_to_pixels(M)), box=face.box, landmarks=face.landmarks, n_faces=len(faces),
            face_index=int(face_index), transform=M, score=face.score, faces=faces,
        )

    def align_prealigned(self, image_rgb: np.ndarray | Photo, source: str | None = None) -> AlignedFace:
        """An already aligned crop (``--aligned``): no detection, only a resize to the input size."""
        photo = _as_photo(image_rgb)
        image = photo.pixels
        h, w = image.shape[:2]
        h_out, w_out = self.input_size
        _check_prealigned_shape(w, h, w_out, h_out, source or "image")
        if abs((w / h) - (w_out / h_out)) > 0.05 * (w_out / h_out):
            log.warning("%s: pre-aligned crop is %dx%d but the model expects %dx%d; it is stretched",
                        source or "image", w, h, w_out, h_out)
        if (h, w) == (h_out, w_out):
            aligned = image.copy()
        else:
            interp = cv2.INTER_AREA if (w > w_out or h > h_out) else cv2.INTER_CUBIC
            aligned = cv2.resize(image, (w_out, h_out), interpolation=interp)
        M = np.array([[w_out / w, 0.0, 0.0], [0.0, h_out / h, 0.0]])
        M[:, :2] /= photo.scale  # from the original's pixels
        return AlignedFace(aligned=aligned, box=None, landmarks=None, n_faces=1, face_index=0, transform=M,
                           score=None, prealigned=True)

    def align_file(
        self, path: str | os.PathLike, face_index: int = 0, prealigned: bool = False, source: str | None = None,
        **load_kwargs,
    ) -> AlignedFace:
        """load_photo + align (or align_prealigned); errors name ``source`` or the path."""
        name = source if source is not None else str(path)
        image = load_photo(path, source=name, **load_kwargs)
        if prealigned:
            return self.align_prealigned(image, source=name)
        return self.align(image, face_index=face_index, source=name)


# An aligned crop is the model's own chip: the same shape, at least half its resolution. A landscape photo or a
# thumbnail would otherwise be stretched into a "face" and scored as one.
PREALIGNED_ASPECT_TOLERANCE = 0.10
PREALIGNED_MIN_SCALE = 0.5


def _check_prealigned_shape(w: int, h: int, w_out: int, h_out: int, name: str) -> None:
    expected = w_out / h_out
    if abs(w / h - expected) > PREALIGNED_ASPECT_TOLERANCE * expected:
        raise ImageError(f"{name}: {w}x{h} is not an aligned face crop for this model (it expects {w_out}x{h_out}, "
                         "the same aspect ratio); drop --aligned to detect and align the face")
    if w < PREALIGNED_MIN_SCALE * w_out or h < PREALIGNED_MIN_SCALE * h_out:
        raise ImageError(f"{name}: {w}x{h} is too small to be an aligned face crop for this model (it expects "
                         f"{w_out}x{h_out}, at least half that size)")


def _as_photo(image: np.ndarray | Photo) -> Photo:
    """A decoded array is a photo at its own scale."""
    return image if isinstance(image, Photo) else Photo(_check_image(image))


def _check_image(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image of shape (H, W, 3), got {arr.dtype} {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError("image has no pixels")
    return arr
