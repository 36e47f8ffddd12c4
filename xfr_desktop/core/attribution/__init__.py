"""Attribution methods for face verification, one class per method with one call shape.

    explainer = get_explainer("gradient")
    map_a, map_b = explainer(model, a, b)      # float32 H×W at model.input_size, larger = more important

``EXPLAINERS`` maps names to classes: ``ours`` (S of Algorithm 1; ``ours-pos``/``ours-neg`` for S⁺/S⁻),
``gradient``, ``gradcampp``, ``stylianou``, ``xface``, the floors ``random`` and ``centre``, and ``stylianou-abs`` /
``xface-abs`` (the magnitude of those signed maps, ranked like S = |H|).
"""
from __future__ import annotations

from .base import Explainer, MagnitudeExplainer
from .floors import CentreExplainer, RandomExplainer
from .gradcampp import GradCamPlusPlusExplainer
from .gradient import GradientExplainer
from .ours import OursExplainer, OursNegativeExplainer, OursPositiveExplainer
from .stylianou import StylianouExplainer
from .xface import XFaceExplainer


class StylianouMagnitudeExplainer(MagnitudeExplainer):
    name = "stylianou-abs"

    def __init__(self):
        super().__init__(StylianouExplainer())


class XFaceMagnitudeExplainer(MagnitudeExplainer):
    name = "xface-abs"

    def __init__(self, **xface_kwargs):
        super().__init__(XFaceExplainer(**xface_kwargs))


EXPLAINERS: dict[str, type[Explainer]] = {
    cls.name: cls
    for cls in (OursExplainer, GradientExplainer, GradCamPlusPlusExplainer, StylianouExplainer, XFaceExplainer,
                RandomExplainer, CentreExplainer, OursPositiveExplainer, OursNegativeExplainer,
                StylianouMagnitudeExplainer, XFaceMagnitudeExplainer)
}
PAPER_METHODS = ("ours", "gradient", "gradcampp", "stylianou", "xface")


def get_explainer(name: str, **kwargs) -> Explainer:
    """An explainer by registry name; unknown names raise ValueError listing the known ones."""
    if name not in EXPLAINERS:
        raise ValueError(f"unknown attribution method {name!r}; known: {', '.join(EXPLAINERS)}")
    return EXPLAINERS[name](**kwargs)


def parse_methods(text: str) -> list[str]:
    """'ours, gradient' -> ['ours', 'gradient'], checking names and dropping repeats."""
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise ValueError("no attribution method named")
    unknown = [n for n in names if n not in EXPLAINERS]
    if unknown:
        raise ValueError(f"unknown attribution method(s) {', '.join(unknown)}; known: {', '.join(EXPLAINERS)}")
    return names


__all__ = ["EXPLAINERS", "PAPER_METHODS", "Explainer", "MagnitudeExplainer", "StylianouMagnitudeExplainer",
           "XFaceMagnitudeExplainer", "get_explainer", "parse_methods", "CentreExplainer",
           "RandomExplainer", "GradCamPlusPlusExplainer", "GradientExplainer", "OursExplainer",
           "OursPositiveExplainer", "OursNegativeExplainer", "StylianouExplainer", "XFaceExplainer"]
