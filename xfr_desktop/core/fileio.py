"""Small file helpers shared by models, training, reports and the CLI.

Files named on the command line or found in a data folder are hostile until proven otherwise: they are opened
only when they are regular files (a FIFO would block the open, /dev/zero never ends), without blocking, and read
up to a documented size (docs/integrity.md, "Untrusted input files")."""
from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

MIB = 1 << 20
MAX_SMALL_FILE = 1 * MIB          # a certificate, a key file (.p12), a pass-phrase file
MAX_CHECKPOINT_FILE = 16 * MIB    # `audit checkpoint --out` JSON: a certificate per chain
MAX_PDF = 256 * MIB               # a report to verify or co-sign (reports are a few MB)


def open_regular(path: str | os.PathLike, follow_links: bool = True) -> BinaryIO:
    """`path` opened for reading if it is a regular file, else OSError; `follow_links=False` refuses a symbolic
    link too (where the app never makes one: the evidence store)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(mode):  # a FIFO, a device (/dev/zero), a socket
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_sha256(path: str | os.PathLike, follow_links: bool = True) -> str:
    """Streamed: any size in constant memory; a regular file only."""
    h = hashlib.sha256()
    with open_regular(path, follow_links) as f:
        for chunk in iter(lambda: f.read(MIB), b""):
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


@contextlib.contextmanager
def owner_only_umask():
    """Everything created inside is owner-only (folders 0700, files 0600, as store/private.py makes the data
    folder), even by writers that take no mode (PNG encoders, numpy): outputs derived from evidence are biometric."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def owner_only(func):
    """Run a command under :func:`owner_only_umask`."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with owner_only_umask():
            return func(*args, **kwargs)
    return wrapper


def with_path(exc: OSError, path: str | os.PathLike) -> OSError:
    """`exc` naming `path`: a write to an open file fails (disk full) without saying where."""
    if exc.filename is not None:
        return exc
    return type(exc)(exc.errno, exc.strerror or str(exc), str(path))


def read_bytes(path: str | os.PathLike, what: str, error: type[Exception], limit: int = MAX_SMALL_FILE) -> bytes:
    """The bytes of regular file `path`, at most `limit` of them; else ``error`` with a one-line message naming
    ``what`` and the path."""
    path = Path(path)
    try:
        with open_regular(path) as f:
            if os.fstat(f.fileno()).st_size > limit:
                raise error(f"{what} {path} is larger than {limit // MIB} MB: not read")
            data = f.read(limit + 1)  # never more, even if the file grows meanwhile
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path} ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise error(f"{what} {path} is larger than {limit // MIB} MB: not read")
    return data


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
