"""The identity term of training/dlib_affine/train_images.py (issue 22): InfoNCE over a batch of same-person
pairs, checked against a loop written from its definition."""
from __future__ import annotations

import math

import numpy as np
import torch

from tests.training import scripts


def load_script():
    return scripts.load_script("dlib_affine/train_images.py", "train_images_under_test")


def reference(emb: np.ndarray, ids: list[str], t: float) -> float:
    """Mean over pairs k of -log softmax: first image 2k against every second image 2j of another identity
    and its own mate 2k+1."""
    f = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    total = 0.0
    n = len(emb) // 2
    for k in range(n):
        logits = [float(f[2 * k] @ f[2 * j + 1]) / t for j in range(n) if j == k or ids[2 * j + 1] != ids[2 * k]]
        own = float(f[2 * k] @ f[2 * k + 1]) / t
        total += -(own - math.log(sum(math.exp(v) for v in logits)))
    return total / n


def test_contrastive_loss_matches_its_definition_and_masks_a_repeated_identity():
    mod = load_script()
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(8, 16))
    ids = ["a", "a", "b", "b", "a", "a", "c", "c"]          # pairs 0 and 2 show the same person
    got = float(mod.contrastive_loss(torch.from_numpy(emb), ids, 0.1))
    assert abs(got - reference(emb, ids, 0.1)) < 1e-9
    unmasked = reference(emb, ["a", "a", "b", "b", "d", "d", "c", "c"], 0.1)
    assert abs(got - unmasked) > 1e-3                         # the mask changes the value here
    mates = np.repeat(rng.normal(size=(4, 16)), 2, axis=0)    # each first image's mate is itself
    assert float(mod.contrastive_loss(torch.from_numpy(mates), ["a", "a", "b", "b", "c", "c", "d", "d"], 0.1)) < 0.5
