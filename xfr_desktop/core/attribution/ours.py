"""The paper's method (Algorithm 1, :func:`xfr_desktop.core.explain.explain_pair`): S = |H|, or S⁺ / S⁻."""
from __future__ import annotations

from ..explain import PairExplanation, explain_pair
from .base import Explainer

VARIANTS = {"S": "S", "S+": "S_pos", "S-": "S_neg", "H": "H"}


class OursExplainer(Explainer):
    name = "ours"
    description = "discriminative deep feature visualization, S = |H| (Xu, Lu & Ebrahimi)"

    def __init__(self, variant: str = "S", threshold: float | None = None, engine: str = "fast"):
        if variant not in VARIANTS:
            raise ValueError(f"ours: variant must be one of {', '.join(VARIANTS)}")
        self.variant = variant
        self.threshold = threshold
        self.engine = engine
        self.signed = variant == "H"

    def explain(self, model, a, b) -> PairExplanation:
        """The full explanation (H, S, S⁺, S⁻ for both sides)."""
        return explain_pair(model, a, b, threshold=self.threshold, engine=self.engine)

    def explain_maps(self, model, a, b):
        result = self.explain(model, a, b)
        attr = VARIANTS[self.variant]
        return getattr(result.a, attr), getattr(result.b, attr)


class OursPositiveExplainer(OursExplainer):
    name = "ours-pos"
    description = "S⁺ = ReLU(H): where the pair looks alike"

    def __init__(self, threshold: float | None = None, engine: str = "fast"):
        super().__init__("S+", threshold, engine)


class OursNegativeExplainer(OursExplainer):
    name = "ours-neg"
    description = "S⁻ = ReLU(−H): where the pair looks different"

    def __init__(self, threshold: float | None = None, engine: str = "fast"):
        super().__init__("S-", threshold, engine)
