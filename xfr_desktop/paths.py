"""Where XFR Desktop keeps its data: the case database and the content-addressed image store.

Order of precedence: an explicit folder (the `--data-dir` option of `xfr` and `xfr-desktop`), then the environment
variable ``XFR_DATA_DIR``, then the per-user data folder of the platform (platformdirs).
"""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

# the tree holding models/ and resources/ (bundled models, YuNet, fonts, icons, sample case): the source checkout,
# or an installer's copy beside the package, or else the wheel's own copy in xfr_desktop/bundled/ (setup.py)
PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED_DIR = PACKAGE_DIR / "bundled"


def _data_root() -> Path:
    beside = PACKAGE_DIR.parent
    if (beside / "models").is_dir() and (beside / "resources").is_dir() or not BUNDLED_DIR.is_dir():
        return beside
    return BUNDLED_DIR


REPO_ROOT = _data_root()
RESOURCES_DIR = REPO_ROOT / "resources"
MODELS_DIR = REPO_ROOT / "models"

APP_NAME = "xfr-desktop"
APP_AUTHOR = "XFR"
DATA_DIR_ENV = "XFR_DATA_DIR"
DATABASE_NAME = "xfr.sqlite"
IMAGES_DIR_NAME = "images"


def default_data_dir() -> Path:
    """The platform's per-user data folder for XFR Desktop (not created here)."""
    return Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR))


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data folder to use: `data_dir` if given, else $XFR_DATA_DIR, else :func:`default_data_dir`."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return default_data_dir()


def database_path(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / DATABASE_NAME


def images_dir(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / IMAGES_DIR_NAME
