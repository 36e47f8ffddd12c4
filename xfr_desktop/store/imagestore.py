"""Content-addressed image files: ``<images>/ab/abcdef....ext`` named by SHA-256, written atomically."""
from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ImageError, StoreError
from ..core.fileio import file_sha256
from ..core.imageio import MAX_IMAGE_FILE_BYTES
from .private import make_dir

CHUNK = 1 << 20
EXTENSIONS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp",
              "GIF": ".gif", "PPM": ".ppm", "JPEG2000": ".jp2"}


@dataclass(frozen=True)
class StoredImage:
    sha256: str
    path: Path
    size: int
    ext: str
    format: str | None
    width: int | None
    height: int | None


def evidence_sha256(path: str | os.PathLike) -> str:
    """A stored evidence file's SHA-256: a regular file, never through a link (the store makes none), streamed."""
    return file_sha256(path, follow_links=False)


def describe_write_error(exc: OSError, where: Path) -> str:
    if exc.errno == errno.ENOSPC or exc.errno == getattr(errno, "EDQUOT", -1):
        return f"the disk holding {where} is full: the image was not imported (free some space and try again)"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"the image store {where} is read-only: the image was not imported (choose a writable --data-dir)"
    return f"cannot write to the image store {where}: {exc.strerror or exc}"


def probe_image(path: Path) -> tuple[str | None, int, int]:
    """(format, width, height) after decoding the whole file through the app's one bounded image reader, so a
    decompression bomb is refused with one line (ImageError) like everywhere else images enter."""
    from ..core.imageio import probe_image as bounded_probe

    return bounded_probe(path)


class ImageStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path_for(self, sha256: str, ext: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}{ext}"

    def add(self, source: str | os.PathLike) -> StoredImage:
        """Copy `source` into the store (temp file, fsync, verify hash, os.replace). Idempotent."""
        source = Path(source)
        fmt, width, height = probe_image(source)
        ext = EXTENSIONS.get(fmt or "", source.suffix.lower() or ".img")
        incoming = self.root / ".incoming"
        tmp_path: Path | None = None
        try:
            make_dir(incoming)
            fd, tmp_name = tempfile.mkstemp(dir=incoming, suffix=".part")
            tmp_path = Path(tmp_name)
            digest = hashlib.sha256()
            size = 0
            with os.fdopen(fd, "wb") as out:
                try:
                    src = open(source, "rb")
                except OSError as exc:
                    raise ImageError(f"{source} cannot be read: {exc.strerror or exc}") from exc
                with src:
                    for chunk in iter(lambda: src.read(CHUNK), b""):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                        if size > MAX_IMAGE_FILE_BYTES:  # grew after it was checked
                            raise ImageError(f"{source}: larger than {MAX_IMAGE_FILE_BYTES >> 20} MB: not imported")
                out.flush()
                os.fsync(out.fileno())
            sha256 = digest.hexdigest()
            if file_sha256(tmp_path) != sha256:
                raise StoreError(f"the copy of {source.name} in the image store does not match the original "
                                 "(disk error?): not imported")
            final = self.path_for(sha256, ext)
            if final.exists() and file_sha256(final) == sha256:
                tmp_path.unlink()
            else:
                make_dir(final.parent)
                os.replace(tmp_path, final)
                _fsync_dir(final.parent)
            tmp_path = None
            return StoredImage(sha256, final, size, ext, fmt, width, height)
        except OSError as exc:
            raise StoreError(describe_write_error(exc, self.root)) from exc
        finally:
            if tmp_path is not None:
                try:
                    tmp_path.unlink()
                except OSError:
                    pass

    def remove_stale_temp_files(self, older_than_s: float = 3600.0) -> None:
        """Temp files of imports killed midway (older than an hour, so never one being written now)."""
        import time

        incoming = self.root / ".incoming"
        try:
            for part in incoming.glob("*.part"):
                if time.time() - part.stat().st_mtime > older_than_s:
                    part.unlink()
        except OSError:  # best effort: leftovers are harmless
            pass

    def find(self, sha256: str, ext: str) -> Path:
        path = self.path_for(sha256, ext)
        if not path.is_file():
            raise StoreError(f"image {sha256[:12]}… is missing from the image store {self.root}")
        return path


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); not possible on Windows, where it does not apply."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
