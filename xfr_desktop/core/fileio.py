"""Small file helpers shared by models, training, reports and the CLI."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object], mode: int | None = 0o644) -> Path:
    """Write through ``write(file)`` into a temp file beside ``path``, fsync, then rename over ``path``.

    A killed process or a full disk never leaves a half-written ``path`` (the old file, if any, stays).
    ``mode`` (umask applied) replaces mkstemp's owner-only 0600; ``None`` keeps 0600 (private files).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, mode & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise with_path(exc, path) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def with_path(exc: OSError, path: str | os.PathLike) -> OSError:
    """`exc` naming `path`: a write to an open file fails (disk full) without saying where."""
    if exc.filename is not None:
        return exc
    return type(exc)(exc.errno, exc.strerror or str(exc), str(path))


def read_bytes(path: str | os.PathLike, what: str, error: type[Exception]) -> bytes:
    """The file's bytes, or ``error`` with a one-line message naming ``what`` and the path."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path} ({exc.strerror or exc})") from None


def check_new_file(path: str | os.PathLike, overwrite: bool | None, error: type[Exception]) -> Path:
    """``path`` may be written: not there (unless ``overwrite``), not a folder, and in a folder that exists; else
    ``error`` with a one-line message naming it. ``overwrite=None``: overwriting is not offered, so the message does
    not suggest it. Callers check this before anything costly or interactive (a passphrase prompt)."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{path} is a folder; give a file name")
    if path.exists() and not overwrite:
        offered = "" if overwrite is None else " (or allow overwriting)"
        raise error(f"{path} exists; choose another file name{offered}")
    if not path.parent.is_dir():
        raise error(f"the folder {path.parent} does not exist")
    return path
