"""Similarity decomposition (Stylianou, Souvenir & Pless, 2019, "Visualizing deep similarity networks").

s = Σ_i F̂_A[i] F̂_B[i]. With average pooling each term spreads over all locations; with the max-pooled embedding
used here, term i belongs entirely to the location of channel i's maximum (in C_A for A's map, C_B for B's). The
grid map (signed: positive terms support the match) is upsampled bilinearly to the image.
"""
from __future__ import annotations

import numpy as np
import torch

from .base import Explainer, upsample


class StylianouExplainer(Explainer):
    name = "stylianou"
    signed = True
    description = "similarity decomposition: each channel's product term at its argmax (Stylianou et al.)"

    @torch.no_grad()
    def similarity_grids(self, model, a, b) -> tuple[torch.Tensor, float]:
        """(2,h,w) float64 grids on C's grid, each summing to the cosine score, and the score."""
        C, F = model.embed(model.preprocess(np.stack([a, b])))
        Fn = torch.nn.functional.normalize(F.double(), dim=1)
        products = Fn[0] * Fn[1]                                    # (c,) sums to the score
        n, c, h, w = C.shape
        grids = torch.zeros((2, h * w), dtype=torch.float64, device=C.device)
        for k in range(2):
            idx = C[k].reshape(c, -1).argmax(dim=1)
            grids[k].index_add_(0, idx, products)
        return grids.view(2, h, w), float(products.sum())

    def explain_maps(self, model, a, b):
        grids, _ = self.similarity_grids(model, a, b)
        maps = upsample(grids, model.input_size)
        return maps[0], maps[1]
