"""Occlusion sensitivity for verification, after xFace (Knoche, Teepe, Hörmann & Rigoll, 2023).

For each image of the pair and each square patch size (7, 14 and 28 px by default, stride 5; the last row and
column of patches are moved flush with the border so every pixel is covered), the patch is filled with pixel
value 0 (black) and the pair is scored again. Δ = s(original) − s(occluded) > 0 where the patch held evidence for
the match. Each pixel gets the mean of Δ / patch area over the patches covering it; the maps of the patch sizes
are averaged and smoothed with a Gaussian (σ = ``smooth_sigma`` px). Signed: negative where hiding the region
makes the faces look more alike.

All occluded images of one side go through the backbone in batches of ``batch_size``; this is the costly method
(about 2,250 backbone passes per 150×150 image at stride 5).
"""
from __future__ import annotations

import numpy as np
import torch

from .base import Explainer, cosine, gaussian_smooth


def patch_positions(length: int, size: int, stride: int) -> list[int]:
    """Top/left coordinates of patches along one axis, the last one flush with the border."""
    if size >= length:
        return [0]
    pos = list(range(0, length - size + 1, stride))
    if pos[-1] != length - size:
        pos.append(length - size)
    return pos


class XFaceExplainer(Explainer):
    name = "xface"
    signed = True
    description = "occlusion of 7/14/28 px squares, stride 5, fill 0: score change per patch area (xFace)"

    def __init__(self, sizes=(7, 14, 28), stride: int = 5, fill: float = 0.0, smooth_sigma: float = 3.5,
                 batch_size: int = 64):
        self.sizes = tuple(int(s) for s in sizes)
        self.stride = int(stride)
        self.fill = float(fill)
        self.smooth_sigma = float(smooth_sigma)
        self.batch_size = int(batch_size)
        if not self.sizes or min(self.sizes) < 1 or self.stride < 1 or self.batch_size < 1:
            raise ValueError("xface: patch sizes, stride and batch size must be positive")

    def config(self) -> dict:
        return {"sizes": list(self.sizes), "stride": self.stride, "fill": self.fill,
                "smooth_sigma": self.smooth_sigma}

    def patches(self, H: int, W: int) -> list[tuple[int, int, int]]:
        """(size, top, left) of every occluding patch."""
        return [(s, y, x) for s in self.sizes for y in patch_positions(H, s, self.stride)
                for x in patch_positions(W, s, self.stride)]

    @torch.no_grad()
    def explain_maps(self, model, a, b):
        H, W = model.input_size
        x = model.preprocess(np.stack([a, b]))
        dev = x.device
        _, F = model.embed(x)
        s0 = cosine(F[0:1], F[1:2])[0].double()
        fill = ((torch.full((1, 3, 1, 1), self.fill, device=dev) - model._mean) / model._std)[0]
        patches = torch.tensor(self.patches(H, W), dtype=torch.long, device=dev)     # (P, 3): size, top, left
        size_of = torch.tensor(self.sizes, device=dev)
        which = (patches[:, 0:1] == size_of[None]).double()                          # (P, n_sizes)
        rows = torch.arange(H, device=dev)
        cols = torch.arange(W, device=dev)
        maps = []
        for k in range(2):
            total = torch.zeros((len(self.sizes), H * W), dtype=torch.float64, device=dev)
            count = torch.zeros_like(total)
            for start in range(0, len(patches), self.batch_size):
                p = patches[start:start + self.batch_size]
                s, y, xx = p[:, 0, None], p[:, 1, None], p[:, 2, None]
                in_rows = (rows[None] >= y) & (rows[None] < y + s)                 # (B, H)
                in_cols = (cols[None] >= xx) & (cols[None] < xx + s)              # (B, W)
                mask = in_rows[:, :, None] & in_cols[:, None, :]                  # (B, H, W)
                batch = torch.where(mask[:, None], fill, x[k:k + 1])
                _, Fo = model.embed(batch)
                delta = s0 - cosine(Fo, F[1 - k:2 - k]).double()                 # (B,)
                flat = mask.reshape(len(p), -1).double()
                w = which[start:start + self.batch_size]                          # (B, n_sizes)
                total += (w * (delta / (s[:, 0].double() ** 2))[:, None]).T @ flat
                count += w.T @ flat
            per_size = (total / count.clamp(min=1)).mean(dim=0).reshape(H, W)
            maps.append(gaussian_smooth(per_size.cpu().numpy(), self.smooth_sigma))
        return maps[0], maps[1]
