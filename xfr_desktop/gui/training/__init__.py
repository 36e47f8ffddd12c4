"""The training wizard, a page per module (``wizard.py`` puts them together). No module here imports torch: every
load runs on the wizard's task runner through :mod:`xfr_desktop.training_setup`."""
from .wizard import TrainingWizard, open_training_wizard

__all__ = ["TrainingWizard", "open_training_wizard"]
