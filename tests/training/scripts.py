"""The training scripts under training/ are files, not a package: tests load them by path."""
from __future__ import annotations

import importlib.util
from pathlib import Path

TRAINING = Path(__file__).resolve().parents[2] / "training"


def load_script(relative: str, name: str):
    spec = importlib.util.spec_from_file_location(name, TRAINING / relative)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
