"""Evaluation of face models: verification on pair lists (LFW protocol)."""
from .verify import (
    EmbeddingCache, best_accuracy_threshold, embed_images, kfold_accuracy, roc, verify_pairs,
)

__all__ = ["verify_pairs", "embed_images", "kfold_accuracy", "roc", "best_accuracy_threshold", "EmbeddingCache"]
