"""Reading photographs safely: content-sniffed format, EXIF orientation, any pixel mode -> RGB uint8.

Every failure a user can cause (missing, empty, truncated, corrupt, non-image or oversized file) becomes an
:class:`ImageError` with a one-line message that names the file. Huge images are never decoded at full size:
the header is read first; JPEGs above the pixel limit are decoded at a reduced scale (libjpeg's DCT scaling,
``Image.draft``), other formats above it are refused.

Detection and alignment read a photo through :func:`load_photo`: a :class:`Photo` decoded at most at
``WORKING_PIXELS`` (1/2, 1/4 or 1/8 of its size above it) together with that factor, so faces found on it are
stated in the original's pixels. Whatever draws those marks over a photo reads it through
:func:`load_display_photo` and moves them with the photo's own factor. Evidence identity (hashes, copies) always
uses the file's own bytes.
"""
from __future__ import annotations

import io
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

log = logging.getLogger(__name__)

# 50 megapixels decode to 150 MB of RGB; above it JPEGs are decoded at 1/2, 1/4 or 1/8 scale, others refused.
DEFAULT_MAX_PIXELS = 50_000_000
# Detection and alignment need no more (a face of a 16 MP photo fills the aligned chip many times over); a larger
# photo is decoded at 1/2, 1/4 or 1/8 scale, which keeps a 49 MP photo's decoded pixels at 37 MB instead of 147 MB.
WORKING_PIXELS = 16_000_000
# an image file of any size was read, hashed and copied whole: a 50 MP photo is at most 150 MB even uncompressed
MAX_IMAGE_FILE_BYTES = 512 << 20

# Pillow's own decompression-bomb check runs inside Image.open from a module global. We lift it only while
# reading the header (our own limit is applied right after) and serialize that moment across threads.
_OPEN_LOCK = threading.Lock()

_WHITE = (255, 255, 255, 255)


def _name(path: str | os.PathLike, source: str | None) -> str:
    return source if source is not None else str(path)


def check_image_file(path: str | os.PathLike, name: str) -> None:
    """ImageError with a one-line message when ``path`` is missing, not a file, empty or over the size cap."""
    _check_file(Path(path), name)


def _check_file(path: Path, name: str) -> None:
    if not path.exists():
        raise ImageError(f"{name}: file not found")
    if not path.is_file():
        raise ImageError(f"{name}: not a file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageError(f"{name}: cannot read file ({exc.strerror or type(exc).__name__})") from None
    if size == 0:
        raise ImageError(f"{name}: empty file (0 bytes)")
    if size > MAX_IMAGE_FILE_BYTES:
        raise ImageError(f"{name}: {size >> 20} MB, larger than the {MAX_IMAGE_FILE_BYTES >> 20} MB an image file "
                         f"may be: not read")


def _open_header(source: Path | io.BytesIO, name: str) -> Image.Image:
    """Open lazily (header only); raise ImageError for anything that is not a readable image."""
    with _OPEN_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(source)
        except UnidentifiedImageError:
            raise ImageError(f"{name}: not an image file, or an image format that cannot be read") from None
        except PermissionError:
            raise ImageError(f"{name}: permission denied") from None
        except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
            raise ImageError(f"{name}: corrupt image header ({_short(exc)})") from None
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def open_image_header(path: Path, name: str) -> Image.Image:
    """The file opened lazily by Pillow (header and metadata, no pixels); ImageError when it is no image."""
    _check_file(Path(path), name)
    return _open_header(Path(path), name)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


def _limit_size(im: Image.Image, name: str, max_pixels: int, working_pixels: int | None = None) -> int:
    """The factor (1, 2, 4 or 8) by which ``im`` is to be reduced so that it has at most ``working_pixels``
    (default: ``max_pixels``). JPEGs are switched to that reduced decode (no full-size decode); other formats are
    refused above ``max_pixels`` and reduced after decoding."""
    w, h = im.size
    if w <= 0 or h <= 0:
        raise ImageError(f"{name}: image has no pixels ({w}x{h})")
    working = max_pixels if working_pixels is None else min(working_pixels, max_pixels)
    if w * h <= working:
        return 1
    fits = [k for k in (2, 4, 8) if -(-w // k) * -(-h // k) <= working]
    if im.format == "JPEG":
        # libjpeg decodes directly at 1/2, 1/4 or 1/8 scale: the mildest one that fits (else 1/8 under the limit)
        k = fits[0] if fits else 8
        if -(-w // k) * -(-h // k) <= max_pixels:
            im.draft("RGB", (w // k, h // k))
            if im.size == (-(-w // k), -(-h // k)):
                if w * h > max_pixels:
                    log.warning("%s: %dx%d (%s megapixels) is above the %s-megapixel limit; decoded at %dx%d",
                                name, w, h, _mp(w * h), _mp(max_pixels), *im.size)
                return k
    if w * h <= max_pixels:
        return fits[0] if fits else 8
    raise ImageError(
        f"{name}: image is {w}x{h} ({_mp(w * h)} megapixels), above the limit of {_mp(max_pixels)} megapixels;"
        " downscale or crop it first"
    )


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.3g}"


def _apply_orientation(im: Image.Image, name: str) -> Image.Image:
    """Turn the picture as the EXIF Orientation tag says (no copy when there is nothing to do)."""
    try:
        orientation = im.getexif().get(0x0112, 1)
        if orientation in (None, 1):
            return im
        return ImageOps.exif_transpose(im)
    except Exception as exc:  # a broken EXIF block must not lose the picture
        log.warning("%s: ignoring unreadable EXIF orientation (%s)", name, _short(exc))
        return im


def _to_rgb_array(im: Image.Image) -> np.ndarray:
    """Any Pillow mode -> (H, W, 3) uint8 RGB. Transparency is composited on white."""
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(im)
        if mode == "F":
            arr = arr.astype(np.float64)
            finite = arr[np.isfinite(arr)]
            peak = float(finite.max()) if finite.size else 0.0
            # float images come as 0..1 or 0..255; anything else is rescaled by its own maximum
            scale = 255.0 if peak <= 1.0 else (1.0 if peak <= 255.0 else 255.0 / peak)
            gray = np.clip(np.nan_to_num(arr) * scale, 0, 255).round().astype(np.uint8)
        else:
            arr = arr.astype(np.int64)
            # I;16 is 16-bit by definition; 32-bit I holds 16-bit data (some PNG/TIFF readers) or plain 8-bit values
            sixteen = mode.startswith("I;16") or (arr.size > 0 and int(arr.max()) > 255)
            gray = (np.clip(arr, 0, 65535) // 257 if sixteen else np.clip(arr, 0, 255)).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB") and "transparency" in im.info
    )
    if has_alpha:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE)
        im = Image.alpha_composite(background, rgba)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return _rgb_pixels(im)


def _rgb_pixels(im: Image.Image) -> np.ndarray:
    """RGB image -> writable array, copied in strips: np.asarray of a whole big image goes through two
    temporary copies (tobytes), which would triple the peak memory."""
    w, h = im.size
    out = np.empty((h, w, 3), dtype=np.uint8)
    rows = max(1, (1 << 22) // (3 * w))  # about 4 MB per strip
    for y in range(0, h, rows):
        out[y:y + rows] = np.asarray(im.crop((0, y, w, min(h, y + rows))))
    return out


@dataclass(frozen=True)
class Photo:
    """A photo as detection and alignment see it: ``pixels`` (RGB uint8, EXIF orientation applied) at
    1/``scale`` of the original's size. Original pixel coordinates are ``scale`` times the decoded ones."""

    pixels: np.ndarray
    scale: int = 1
    original_size: tuple[int, int] | None = None   # (width, height); None: the pixels' own

    @property
    def size(self) -> tuple[int, int]:
        """The original's (width, height), EXIF orientation applied."""
        h, w = self.pixels.shape[:2]
        return self.original_size or (w * self.scale, h * self.scale)

    def to_original(self, coords) -> np.ndarray:
        """Points (..., 2) or boxes (x, y, w, h) in ``pixels`` -> the same in the original's pixels."""
        return np.asarray(coords, np.float64) * self.scale

    def to_pixels(self, coords) -> np.ndarray:
        """Points or boxes in the original's pixels -> the same in ``pixels``."""
        return np.asarray(coords, np.float64) / self.scale

    def transform_to_pixels(self, transform) -> np.ndarray:
        """A 2x3 map from the original's pixels (e.g. onto an aligned face) -> the same map from ``pixels``."""
        out = np.array(transform, np.float64)
        out[:, :2] *= self.scale
        return out

    def face_to_pixels(self, face: dict) -> dict:
        """A stored face (``box``, ``landmarks`` and ``transform`` in the original's pixels) with those three in
        ``pixels``, ready to draw over them; other keys, and a missing one, as they are."""
        out = dict(face)
        for key, move in (("box", self.to_pixels), ("landmarks", self.to_pixels),
                          ("transform", self.transform_to_pixels)):
            if out.get(key) is not None:
                out[key] = move(out[key])
        return out


def load_photo(path: str | os.PathLike, source: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
               working_pixels: int = WORKING_PIXELS) -> Photo:
    """A photo for detection, alignment and display, decoded at most at ``working_pixels`` (JPEGs reduced while
    decoding; other formats up to ``max_pixels`` reduced after it). Raises :class:`ImageError`."""
    path = Path(path)
    name = _name(path, source)
    _check_file(path, name)
    return Photo(*_decode_rgb(_open_header(path, name), name, int(max_pixels), int(working_pixels)))


def load_display_photo(path: str | os.PathLike, source: str | None = None) -> Photo:
    """A photo for showing it with the marks stored for it (the app's photo panels, the report's thumbnails):
    decoded as :func:`load_image` decodes it (JPEGs above ``DEFAULT_MAX_PIXELS`` at 1/2, 1/4 or 1/8), with that
    factor, so that a face box, landmarks, transform or annotation stored in the original's pixels is drawn at
    ``photo.to_pixels(...)`` (``photo.face_to_pixels(face)``)."""
    return load_photo(path, source, working_pixels=DEFAULT_MAX_PIXELS)


def load_image(
    path: str | os.PathLike,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    source: str | None = None,
) -> np.ndarray:
    """Read an image file by content into an (H, W, 3) RGB uint8 array, EXIF orientation applied.

    ``source`` replaces the path in error messages (e.g. a case-relative name). Raises :class:`ImageError`.
    """
    path = Path(path)
    name = _name(path, source)
    _check_file(path, name)
    return _decode_rgb(_open_header(path, name), name, int(max_pixels))[0]


def decode_image_bytes(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Like :func:`load_image` for encoded bytes held in memory (RecordIO records, ``.bin`` validation sets)."""
    if not data:
        raise ImageError(f"{name}: empty image data")
    return _decode_rgb(_open_header(io.BytesIO(data), name), name, int(max_pixels))[0]


def probe_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS,
                source: str | None = None) -> tuple[str | None, int, int]:
    """(format, width, height) of a file as stored, after a bounded full decode that proves it readable."""
    path = Path(path)
    name = _name(path, source)
    _check_file(path, name)
    im = _open_header(path, name)
    try:
        fmt, (w, h) = im.format, im.size
        _limit_size(im, name, int(max_pixels))
        _load(im, name)
        return fmt, int(w), int(h)
    finally:
        im.close()


def _decode_rgb(im: Image.Image, name: str, max_pixels: int,
                working_pixels: int | None = None) -> tuple[np.ndarray, int, tuple[int, int]]:
    """(pixels, the factor they are reduced by, the original's (width, height) as oriented) for a lazily
    opened image."""
    try:
        size = im.size
        scale = _limit_size(im, name, max_pixels, working_pixels)
        _load(im, name)
        # not a JPEG reduced while decoding: decoded whole, reduced before the RGB copy
        decoded = _reduced(im, scale) if scale > 1 and im.size == size else im
        try:
            oriented = _apply_orientation(decoded, name)
            turned = oriented.size != decoded.size
            return _to_rgb_array(oriented), scale, size[::-1] if turned else size
        finally:
            if decoded is not im:
                decoded.close()
    finally:
        im.close()


def _reduced(im: Image.Image, k: int) -> Image.Image:
    """``im`` box-averaged by k (Image.reduce), through RGBA for the modes reduce does not take."""
    try:
        return im.reduce(k)
    except ValueError:
        return im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB").reduce(k)


def _load(im: Image.Image, name: str) -> None:
    """Decode the pixels; every decoder failure becomes one line naming the image."""
    try:
        im.load()
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: image is too large to decode safely ({im.size[0]}x{im.size[1]})") from None
    except MemoryError:
        raise ImageError(f"{name}: not enough memory to decode a {im.size[0]}x{im.size[1]} image") from None
    except OSError as exc:
        msg = str(exc)
        if "truncated" in msg or "broken data stream" in msg or isinstance(exc, EOFError):
            raise ImageError(f"{name}: truncated image file (the end of the data is missing)") from None
        raise ImageError(f"{name}: corrupt image data ({_short(exc)})") from None
    except (SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        raise ImageError(f"{name}: corrupt image data ({_short(exc)})") from None


def image_sha256(path: str | os.PathLike, source: str | None = None) -> str:
    """sha256 of the file's bytes (the evidence identity, independent of decoding)."""
    from .model import file_sha256

    try:
        return file_sha256(path)
    except OSError as exc:
        raise ImageError(f"{_name(path, source)}: cannot read file ({exc.strerror or type(exc).__name__})") from None
