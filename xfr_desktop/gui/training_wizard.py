"""Where the training wizard used to live; it is now the package :mod:`xfr_desktop.gui.training`."""
from .training import TrainingWizard, open_training_wizard  # noqa: F401
