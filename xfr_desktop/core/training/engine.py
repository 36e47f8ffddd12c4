"""The training engine's public names in one place (tests/training/test_distributed_training.py imports them here).
Other code imports from the module that owns a name:

- :mod:`.config`: ``TrainConfig``, ``TrainingProgress``, ``TrainResult``, ``TrainingError``, the run folder's names
- :mod:`.trainer`: ``Trainer`` (the loop)
- :mod:`.base_model`: ``inspect_base``, ``build_base_model``, ``insightface_spec``
- :mod:`.checkpoint`: the checkpoint's keys, ``read_resume_settings``
- :mod:`.planning`: steps, global batch, disk space, step-time estimates, the model card
- :mod:`.validation`: accuracy on validation pairs
"""
from .base_model import BaseModelInfo, build_base_model, insightface_spec, inspect_base  # noqa: F401
from .checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, ResumeSettings, read_resume_settings  # noqa: F401
from .config import (CARD_NAME, CHECKPOINT_NAME, DECODER_OPTIMIZERS, LOG_NAME, LOSSES, MODEL_NAME,  # noqa: F401
                     MODES, ProgressCallback, TrainConfig, TrainingError, TrainingProgress, TrainResult)
from .datasets import recordio_file  # noqa: F401
from .planning import (check_disk_space, estimate_step_seconds, global_batch_size, model_bytes,  # noqa: F401
                       model_card, planned_steps, required_disk_bytes_for_spec, spec_model_bytes)
from .trainer import Trainer, open_training_dataset  # noqa: F401
from .validation import evaluate_pairs, pair_accuracy  # noqa: F401
