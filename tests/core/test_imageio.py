"""load_image: formats read by content, pixel modes, EXIF orientation, and every bad input -> one clear ImageError."""
from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xfr_desktop.core.errors import ImageError, XfrError
from xfr_desktop.core.imageio import image_sha256, load_image


def gradient(h: int = 48, w: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 90)], axis=2).astype(np.uint8)


def save(img: Image.Image, path: Path, fmt: str, **kw) -> Path:
    img.save(path, format=fmt, **kw)
    return path


def assert_one_line_error(exc: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg
    assert str(path) in msg, msg
    for word in words:
        assert word in msg.lower(), msg
    assert isinstance(exc.value, XfrError)


# --- good inputs ---------------------------------------------------------------------------------------------
def test_png_roundtrip_is_exact(tmp_path):
    arr = gradient()
    path = save(Image.fromarray(arr), tmp_path / "a.png", "PNG")
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (48, 64, 3)
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "BMP", "TIFF"])
def test_extension_lies_content_wins(tmp_path, fmt):
    arr = gradient()
    kw = {"lossless": True} if fmt == "WEBP" else {}
    path = save(Image.fromarray(arr), tmp_path / "really_not_a.jpg", fmt, **kw)
    out = load_image(path)
    np.testing.assert_array_equal(out, arr)


def test_jpeg_named_png(tmp_path):
    path = save(Image.fromarray(gradient()), tmp_path / "photo.png", "JPEG", quality=95)
    out = load_image(path)
    assert out.shape == (48, 64, 3)
    assert np.abs(out.astype(int) - gradient().astype(int)).mean() < 3


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = gradient()[:, :, 0]
    path = save(Image.fromarray(gray, "L"), tmp_path / "g.png", "PNG")
    out = load_image(path)
    assert out.shape == (48, 64, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)


def test_16bit_grayscale_png_is_scaled_to_8bit(tmp_path):
    values = np.linspace(0, 65535, 48 * 64).reshape(48, 64).astype(np.uint16)
    path = save(Image.fromarray(values), tmp_path / "deep.png", "PNG")
    assert Image.open(path).mode.startswith("I")
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (48, 64, 3)
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    np.testing.assert_array_equal(out[:, :, 0], (values // 257).astype(np.uint8))


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :6, 3] = 255   # left half opaque red-ish
    rgba[:, 6:, 3] = 0     # right half transparent
    path = save(Image.fromarray(rgba, "RGBA"), tmp_path / "alpha.png", "PNG")
    out = load_image(path)
    assert out.shape == (10, 12, 3)
    np.testing.assert_array_equal(out[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(out[0, -1], [255, 255, 255])


def test_palette_image(tmp_path):
    img = Image.fromarray(gradient()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    path = save(img, tmp_path / "pal.gif", "GIF")
    out = load_image(path)
    assert out.shape == (48, 64, 3)
    np.testing.assert_array_equal(out, np.asarray(img.convert("RGB")))


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((40, 60, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # red band on the stored image's left
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    img.save(path, "JPEG", quality=95, exif=exif.tobytes())
    out = load_image(path)
    assert out.shape == (60, 40, 3)  # displayed portrait
    # after a 90-degree clockwise turn the stored left band is at the top
    assert out[5, 20, 0] > 200 and out[5, 20, 1] < 60
    assert out[-5, 20, 0] < 60


def test_image_sha256_matches_file_bytes(tmp_path):
    path = save(Image.fromarray(gradient()), tmp_path / "a.png", "PNG")
    assert image_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


# --- bad inputs ----------------------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    path = tmp_path / "nope.jpg"
    with pytest.raises(ImageError) as exc:
        load_image(path)
    assert_one_line_error(exc, path, "not found")


def test_directory(tmp_path):
    with pytest.raises(ImageError) as exc:
        load_image(tmp_path)
    assert_one_line_error(exc, tmp_path, "not a file")


def test_zero_bytes(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError) as exc:
        load_image(path)
    assert_one_line_error(exc, path, "empty")


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is a case note, not a photograph\n" * 20)
    with pytest.raises(ImageError) as exc:
        load_image(path)
    assert_one_line_error(exc, path, "not an image")


def test_truncated_jpeg(tmp_path):
    good = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(
        good, "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    with pytest.raises(ImageError) as exc:
        load_image(path)
    assert_one_line_error(exc, path, "truncated")


def test_truncated_png(tmp_path):
    good = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (100, 100, 3), dtype=np.uint8)).save(good, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(good.getvalue()[: len(good.getvalue()) // 3])
    with pytest.raises(ImageError) as exc:
        load_image(path)
    assert_one_line_error(exc, path)


def test_corrupt_jpeg_header(tmp_path):
    path = tmp_path / "garbage.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    with pytest.raises(ImageError) as exc:
        load_image(path)
    assert_one_line_error(exc, path)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a huge size: signature, IHDR and a tiny (inconsistent) IDAT, no real pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def test_huge_png_header_is_refused_without_decoding(tmp_path):
    path = tmp_path / "bomb.jpg"  # lying extension too
    path.write_bytes(png_header_only(20000, 20000))
    with pytest.raises(ImageError) as exc:
        load_image(path)
    assert_one_line_error(exc, path, "20000x20000", "megapixels")


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path, caplog):
    path = save(Image.fromarray(np.full((1200, 1600, 3), 128, np.uint8)), tmp_path / "big.jpg", "JPEG")
    with caplog.at_level("WARNING"):
        out = load_image(path, max_pixels=500_000)
    assert out.shape == (600, 800, 3)  # DCT scaling by 1/2 fits under 0.5 megapixels
    assert "1600x1200" in caplog.text
    # a PNG of the same size cannot be shrunk while decoding: refused
    png = save(Image.fromarray(np.full((1200, 1600, 3), 128, np.uint8)), tmp_path / "big.png", "PNG")
    with pytest.raises(ImageError) as exc:
        load_image(png, max_pixels=500_000)
    assert_one_line_error(exc, png, "1600x1200")


def test_source_name_replaces_path_in_messages(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"^exhibit A: empty file"):
        load_image(path, source="exhibit A")


def test_huge_jpeg_is_downscaled_while_decoding_never_at_full_size(tmp_path, caplog):
    import resource

    buf = io.BytesIO()
    Image.fromarray(gradient(64, 64)).save(buf, "JPEG", quality=90)
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 20000, 20000)  # claim 20000x20000 (1.2 GB of RGB)
    path = tmp_path / "huge.jpg"
    path.write_bytes(bytes(data))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with caplog.at_level("WARNING"):
        out = load_image(path)  # default limit 50 megapixels: libjpeg decodes at 1/4 scale
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert out.shape == (5000, 5000, 3)
    assert "20000x20000" in caplog.text and "5000x5000" in caplog.text
    assert grown_mib < 400, f"peak memory grew by {grown_mib:.0f} MiB"
    # with a lower limit even 1/8 scale (2500x2500) is too big: refused with the size in the message
    with pytest.raises(ImageError) as exc:
        load_image(path, max_pixels=1_000_000)
    assert_one_line_error(exc, path, "20000x20000", "megapixels")
