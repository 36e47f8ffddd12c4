"""The common call shape of every attribution method, and helpers they share.

An explainer is called as ``explainer(model, a, b) -> (map_a, map_b)``: ``a`` and ``b`` are aligned RGB uint8 faces
at ``model.input_size``; each map is float32 H×W at that size, larger = more important to the model's verdict.
"""
from __future__ import annotations

import zlib

import numpy as np
import torch
import torch.nn.functional as Fn

from ..explain import check_face
from ..model import JointModel


class Explainer:
    """Base class: subclasses set ``name`` and implement :meth:`explain_maps`."""

    name: str = ""
    #: True when the map carries a sign (similarity evidence for and against); ranking uses the raw values.
    signed: bool = False
    #: a short description for reports
    description: str = ""

    def __call__(self, model: JointModel, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = check_face(model, a, "A")
        b = check_face(model, b, "B")
        model.eval()
        map_a, map_b = self.explain_maps(model, a, b)
        size = model.input_size
        out = []
        for m in (map_a, map_b):
            m = np.asarray(m, dtype=np.float32)
            if m.shape != size:
                raise RuntimeError(f"{self.name}: produced a map of shape {m.shape}, expected {size}")
            out.append(np.nan_to_num(m, nan=0.0, posinf=0.0, neginf=0.0))
        return out[0], out[1]

    def explain_maps(self, model: JointModel, a: np.ndarray, b: np.ndarray):
        raise NotImplementedError

    def config(self) -> dict:
        """JSON-able settings (written beside results so runs are reproducible)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.config().items())})"


def cosine(Fa: torch.Tensor, Fb: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of rows of Fa (N,c) with Fb (N,c) or (1,c)."""
    return Fn.cosine_similarity(Fa, Fb, dim=1)


def upsample(grid: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(h,w) or (N,h,w) conv-grid map -> float32 numpy at the image size (bilinear, as Grad-CAM does)."""
    g = grid if grid.ndim == 3 else grid[None]
    up = Fn.interpolate(g[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    up = up.detach().cpu().numpy().astype(np.float32)
    return up if grid.ndim == 3 else up[0]


def content_seed(seed: int, *images: np.ndarray) -> list[int]:
    """A seed sequence from ``seed`` and the images' bytes: same inputs -> same numbers, whatever the order."""
    return [int(seed) & 0xFFFFFFFF] + [zlib.crc32(np.ascontiguousarray(im).tobytes()) for im in images]


def gaussian_smooth(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of a 2-D float map (reflecting borders)."""
    import cv2

    if sigma <= 0:
        return img.astype(np.float32)
    k = 2 * int(np.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(img.astype(np.float32), (k, k), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REFLECT)


class MagnitudeExplainer(Explainer):
    """|map| of a signed method: ranks by strength of evidence, for or against a match (as S = |H| does)."""

    signed = False

    def __init__(self, inner: Explainer):
        self.inner = inner
        self.name = f"{inner.name}-abs"
        self.description = f"|{inner.name}|: magnitude of a signed map"

    def config(self) -> dict:
        return {"inner": type(self.inner).__name__, **self.inner.config()}

    def explain_maps(self, model, a, b):
        map_a, map_b = self.inner.explain_maps(model, a, b)
        return np.abs(map_a), np.abs(map_b)
