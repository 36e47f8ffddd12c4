"""Gradient saliency (Simonyan, Vedaldi & Zisserman, 2014) for verification: |∂s/∂x|, max over colour."""
from __future__ import annotations

import numpy as np
import torch

from .base import Explainer, cosine


class GradientExplainer(Explainer):
    name = "gradient"
    description = "|d score / d pixel|, max over colour (Simonyan et al.)"

    def explain_maps(self, model, a, b):
        x = model.preprocess(np.stack([a, b])).requires_grad_(True)
        with torch.enable_grad():
            _, F = model.embed(x)
            score = cosine(F[0:1], F[1:2])[0]
            (grad,) = torch.autograd.grad(score, x)
        grad = grad / model._std  # d(normalized)/d(pixel) = 1/std: the gradient w.r.t. pixel values
        maps = grad.abs().amax(dim=1).cpu().numpy()
        return maps[0], maps[1]
