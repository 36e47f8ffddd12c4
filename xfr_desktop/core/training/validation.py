"""Validation during training: best-threshold accuracy of a model on pairs, by the evaluation's rule."""
from __future__ import annotations

import numpy as np
import torch

from ..evaluation.verify import best_accuracy_threshold
from ..model import JointModel
from .datasets import ValidationPairs


def pair_accuracy(scores: np.ndarray, issame: np.ndarray) -> tuple[float, float]:
    """Best accuracy over all thresholds and that threshold: the evaluation's rule (midpoint between neighbouring
    scores, never between equal ones), so validation during training and `xfr evaluate verify` agree."""
    thr = best_accuracy_threshold(scores, issame)
    return float(np.mean((np.asarray(scores) >= thr) == np.asarray(issame, bool))), thr


def evaluate_pairs(model: JointModel, pairs: ValidationPairs, batch_size: int = 64) -> dict:
    was_training = model.training
    model.eval()
    embs = []
    with torch.no_grad():
        for i in range(0, len(pairs.images), batch_size):
            x = model.preprocess(pairs.images[i:i + batch_size])
            embs.append(torch.nn.functional.normalize(model(x).float(), dim=1).cpu())
    emb = torch.cat(embs).numpy()
    scores = (emb[0::2] * emb[1::2]).sum(axis=1)
    acc, thr = pair_accuracy(scores, pairs.issame)
    at_model = float(((scores >= model.threshold) == pairs.issame).mean())
    model.train(was_training)
    return {"val_acc": acc, "val_threshold": thr, "val_acc_at_model_threshold": at_model, "val_pairs": len(pairs)}
