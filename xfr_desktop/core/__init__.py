"""Qt-free domain logic of XFR Desktop: models, alignment, Algorithm 1, baselines, evaluation, training.

Torch-heavy names are imported lazily so `from xfr_desktop.core.errors import ...` (CLI start-up, the store)
does not pay for importing torch.
"""
import importlib

from .errors import ImageError, ModelFileError, NoFaceError, PairListError, XfrError

_LAZY = {
    "PairExplanation": ".explain", "ResidualStack": ".explain", "SideExplanation": ".explain",
    "explain_pair": ".explain", "JointModel": ".model", "default_spec": ".model", "load_model": ".model",
    "save_model": ".model",
}

__all__ = ["XfrError", "ModelFileError", "ImageError", "NoFaceError", "PairListError", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
