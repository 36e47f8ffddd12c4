"""Training losses for the joint model: ArcFace, distillation towards a teacher, and reconstruction MSE.

The total loss of a step is ``L_id + lambda * L_rec`` (lambda = 1 in the paper); ``L_id`` is ArcFace on identity
labels or distillation towards a frozen teacher's embeddings.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import DISTILL_STRUCTURE_WEIGHT


class ArcFaceHead(nn.Module):
    """Additive angular margin softmax (Deng et al.): logits s * cos(theta + m) for the true class, s * cos(theta)
    for the others. ``forward(emb, labels)`` returns the mean cross-entropy loss."""

    def __init__(self, embedding_dim: int, n_classes: int, s: float = 64.0, m: float = 0.5):
        super().__init__()
        if n_classes < 2:
            raise ValueError("ArcFace needs at least 2 identities")
        self.embedding_dim = int(embedding_dim)
        self.n_classes = int(n_classes)
        self.s = float(s)
        self.m = float(m)
        self.weight = nn.Parameter(torch.empty(self.n_classes, self.embedding_dim))
        nn.init.normal_(self.weight, std=0.01)
        self._cos_m, self._sin_m = math.cos(m), math.sin(m)
        # Past theta = pi - m, cos(theta + m) stops being monotonic; insightface's fallback keeps it decreasing.
        self._th = math.cos(math.pi - m)
        self._mm = math.sin(math.pi - m) * m

    def logits(self, emb: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        cos = F.linear(F.normalize(emb.float(), dim=1), F.normalize(self.weight.float(), dim=1))
        if labels is None:
            return self.s * cos
        cos = cos.clamp(-1.0 + 1e-7, 1.0 - 1e-7)
        sin = torch.sqrt(1.0 - cos * cos)
        phi = cos * self._cos_m - sin * self._sin_m
        phi = torch.where(cos > self._th, phi, cos - self._mm)
        one_hot = F.one_hot(labels.long(), self.n_classes).to(cos.dtype)
        return self.s * (one_hot * phi + (1.0 - one_hot) * cos)

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(emb, labels), labels.long())



def distillation_loss(student_emb: torch.Tensor, teacher_emb: torch.Tensor,
                      structure_weight: float = DISTILL_STRUCTURE_WEIGHT) -> torch.Tensor:
    """mean(1 - cos(student, teacher)) + w · MSE between the batch's pairwise cosine-similarity matrices.

    The second term keeps the relations between faces even when the embedding sizes differ; the first needs equal
    sizes and is skipped otherwise. Verification depends only on the pairwise cosines, so that term is weighted:
    with w = 1 a max-pool head collapsed every embedding onto one common direction (a spatial max adds a large
    shared positive part; the bundled model's first run: cosine to the teacher 0.91 but all pair cosines ~0.999,
    validation accuracy 0.70). w = 20 is what trained the bundled model (training/dlib_joint).
    """
    s = F.normalize(student_emb.float(), dim=1)
    t = F.normalize(teacher_emb.detach().float(), dim=1)
    structure = structure_weight * F.mse_loss(s @ s.t(), t @ t.t())
    if s.shape[1] != t.shape[1]:
        return structure
    return (1.0 - (s * t).sum(dim=1)).mean() + structure


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the decoder output and the normalized input face."""
    return F.mse_loss(recon.float(), target.float())
