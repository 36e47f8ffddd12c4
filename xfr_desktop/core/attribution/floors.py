"""Floors for the hiding game: maps that know nothing about the pair."""
from __future__ import annotations

import numpy as np

from .base import Explainer, content_seed


class RandomExplainer(Explainer):
    """Uniform noise, seeded by ``seed`` and the images' content (same pair -> same maps, in any run order)."""

    name = "random"
    description = "uniform random map (floor)"

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def explain_maps(self, model, a, b):
        rng = np.random.default_rng(content_seed(self.seed, a, b))
        H, W = model.input_size
        return rng.random((H, W), dtype=np.float32), rng.random((H, W), dtype=np.float32)


class CentreExplainer(Explainer):
    """A Gaussian centred on the alignment template's landmarks: 'the middle of the face matters most'."""

    name = "centre"
    description = "Gaussian centre prior on the template's landmark centroid (floor)"

    def __init__(self, sigma_fraction: float = 0.25):
        self.sigma_fraction = float(sigma_fraction)

    def explain_maps(self, model, a, b):
        H, W = model.input_size
        cx, cy = np.asarray(model.template, np.float64).mean(axis=0)
        sigma = self.sigma_fraction * max(H, W)
        yy, xx = np.mgrid[0:H, 0:W]
        m = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2)).astype(np.float32)
        return m, m.copy()
