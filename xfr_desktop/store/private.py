"""Owner-only files: the data folder holds biometric data (faces, reconstructions, landmarks) and examiners' notes,
so folders are 0700 and files 0600 whatever the umask, and looser modes left by older versions are tightened when
the store opens. POSIX only (Windows keeps the per-user ACL of the profile folder)."""
from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_dir(path: Path) -> None:
    """mkdir -p, the folder itself owner-only when new (mkdir's mode is masked by the umask, chmod is not)."""
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        _chmod(path, DIR_MODE)


def create_file(path: Path) -> None:
    """Create an empty owner-only file unless it exists (SQLite then gives -wal/-shm the same mode)."""
    if os.name == "posix" and not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE))
        _chmod(path, FILE_MODE)


def tighten(root: Path) -> int:
    """Remove group/other access from everything under `root` (inclusive); returns how many modes changed.
    A folder we cannot change (read-only medium, another owner) is reported, not fatal: it can still be read."""
    if os.name != "posix":
        return 0
    changed = 0
    for folder, dirs, files in os.walk(root):
        for path, mode in [(Path(folder), DIR_MODE)] + [(Path(folder) / f, FILE_MODE) for f in files]:
            changed += _tighten_one(path, mode)
    return changed


def _tighten_one(path: Path, mode: int) -> int:
    try:
        st = path.lstat()
    except OSError:
        return 0
    if stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o077:
        return 0
    # only group/other bits go: a folder the owner made read-only stays read-only
    return int(_chmod(path, stat.S_IMODE(st.st_mode) & mode))


def _chmod(path: Path, mode: int) -> bool:
    if os.name != "posix":
        return False
    try:
        os.chmod(path, mode)
        return True
    except OSError as exc:
        log.warning("cannot make %s private (%s): other users may be able to read it", path, exc.strerror or exc)
        return False
