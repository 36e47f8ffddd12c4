"""Grad-CAM++ (Chattopadhay et al., 2018) on the conv map C, with the cosine score as the target.

Per channel k: α_ij = g² / (2g² + Σ_ab A_ab · g³) (0 where g = 0), w_k = Σ_ij α_ij ReLU(g_ij); map = ReLU(Σ_k w_k
A_k), upsampled bilinearly to the image — the closed form used by pytorch-grad-cam. With a max-pooled embedding
the gradient of the score reaches C only at each channel's maximum, so each channel has one non-zero g.
Where ReLU leaves an all-zero map (C can be negative here), the signed sum Σ_k w_k A_k is returned instead.
"""
from __future__ import annotations

import numpy as np
import torch

from .base import Explainer, cosine, upsample


class GradCamPlusPlusExplainer(Explainer):
    name = "gradcampp"
    description = "Grad-CAM++ on C, target = cosine score"

    def explain_maps(self, model, a, b):
        x = model.preprocess(np.stack([a, b]))
        with torch.enable_grad():
            C = model.backbone(x)
            if not C.requires_grad:
                C.requires_grad_(True)
            F = C.amax(dim=(2, 3))
            score = cosine(F[0:1], F[1:2])[0]
            (g,) = torch.autograd.grad(score, C)
        A = C.detach().double()
        g = g.double()
        g2, g3 = g * g, g * g * g
        sum_a = A.sum(dim=(2, 3), keepdim=True)
        denom = 2 * g2 + sum_a * g3
        alpha = torch.where((g != 0) & (denom != 0), g2 / torch.where(denom != 0, denom, torch.ones_like(denom)),
                            torch.zeros_like(g))
        weights = (alpha * torch.relu(g)).sum(dim=(2, 3))                 # (2, c)
        raw = (weights[:, :, None, None] * A).sum(dim=1)                 # (2, h, w)
        cam = torch.relu(raw)
        # C may be negative (no ReLU after the last conv), and ReLU can then leave nothing; keep the signed
        # map there so it still ranks pixels (pytorch-grad-cam would return zeros).
        empty = cam.flatten(1).amax(dim=1) <= 0
        cam[empty] = raw[empty]
        maps = upsample(cam, model.input_size)
        return maps[0], maps[1]
