"""Qt-free domain logic of XFR Desktop: models, alignment, Algorithm 1, baselines, evaluation, training."""
from .errors import ImageError, ModelFileError, NoFaceError, PairListError, XfrError
from .explain import PairExplanation, ResidualStack, SideExplanation, explain_pair
from .model import JointModel, default_spec, load_model, save_model

__all__ = [
    "load_model", "explain_pair", "save_model", "default_spec", "JointModel", "PairExplanation",
    "SideExplanation", "ResidualStack", "XfrError", "ModelFileError", "ImageError", "NoFaceError", "PairListError",
]
