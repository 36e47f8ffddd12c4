"""The wheel carries the bundled model, YuNet, fonts, icons and the sample case as package data.

``build_py`` copies them from the checkout's ``models/`` and ``resources/`` into ``xfr_desktop/bundled/`` inside the
build (the checkout itself is not changed); ``xfr_desktop/paths.py`` reads them from there when the package runs
without a checkout or an installer's copy beside it. Left out: superseded model weights (only the default model's
``.pt`` goes in; their cards and calibrations, a few KB, do), training checkpoints and hidden files. A source tree
without ``models/`` (the offline bundle builds from a copy of the package alone, then installs the models beside
it) builds a wheel without them. Everything else is in pyproject.toml.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL = "xfr-dlib-affine-joint.pt"              # = core.model.DEFAULT_MODEL_NAME
MODEL_SUFFIXES = {".onnx", ".md", ".txt", ".json"}      # besides the default model's weights
RESOURCE_DIRS = ("fonts", "icons", "samples")


def bundled_files() -> list[tuple[Path, str]]:
    """(source, path under xfr_desktop/bundled/) for every file the wheel carries."""
    files = []
    models = HERE / "models"
    for path in sorted(models.glob("*")) if models.is_dir() else []:
        if path.is_file() and not path.name.startswith(".") and (
                path.name == DEFAULT_MODEL or path.suffix.lower() in MODEL_SUFFIXES):
            files.append((path, f"models/{path.name}"))
    for name in RESOURCE_DIRS:
        root = HERE / "resources" / name
        for path in sorted(root.rglob("*")) if root.is_dir() else []:
            if path.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in path.parts):
                files.append((path, f"resources/{path.relative_to(HERE / 'resources').as_posix()}"))
    return files


class BuildWithBundledData(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "xfr_desktop" / "bundled"
        for source, rel in bundled_files():
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)


setup(cmdclass={"build_py": BuildWithBundledData})
