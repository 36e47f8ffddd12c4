"""Image quality and provenance of one photo of a comparison, as an examiner weighs them before trusting a result.

Measured per photo (all JSON-ready; :func:`assess_photo`):

- ``width_px``/``height_px`` of the decoded photo, ``face_box_px`` [w, h] and ``inter_eye_px`` from the detector;
- ``roll_deg`` (the eye line's tilt) and ``yaw_deg`` (left/right turn) estimated from the five landmarks;
- ``sharpness``: variance of the Laplacian of the grey face region (higher = sharper; it also grows with noise);
- ``jpeg_quality``: the IJG quality (1–100) whose scaled standard tables best match the file's quantization
  tables, with ``jpeg_tables_match`` "exact" / "approximate" / "non-standard" (an encoder with its own tables);
- ``exif``: camera make/model, software, timestamps, orientation, whether GPS data is present;
- ``face_number`` (1-based, 1 = the largest face) of ``n_faces``; and ``warnings``: one line per value below the
  documented thresholds of :data:`THRESHOLDS`.

Files are read with bounded work: only the JPEG header segments (each at most 64 KiB, at most
:data:`MAX_SEGMENTS`, never past :data:`MAX_HEADER_BYTES`) and Pillow's lazy header (no pixels) for EXIF.
"""
from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import numpy as np

# Warning thresholds (documented in docs/reports.md). Sources: ISO/IEC 19794-5 asks ≥ 60 px between the eyes
# for a face image used in comparison and 90 px as best practice; below 30 px the 150 px model chip is mostly
# upsampled and morphological detail is lost, so we warn there. Roll and yaw beyond 20° / 30° leave the
# frontal pose the model and the FISWG feature list assume. Variance of the Laplacian below 100 is the usual
# blur cut-off for natural photos (heuristic; it depends on the face's size and noise). JPEG quality below 50
# leaves visible block artefacts at the scale of facial marks.
THRESHOLDS = {
    "inter_eye_px": 30.0,
    "face_width_px": 60.0,
    "abs_roll_deg": 20.0,
    "abs_yaw_deg": 30.0,
    "sharpness": 100.0,
    "jpeg_quality": 50,
}
# Nose-tip depth in front of the eye centres, in units of half the inter-eye distance, of a generic adult face
# (pupils ±32 mm, pronasale ≈ 24 mm in front of them): turns the nose's sideways shift into a yaw angle.
NOSE_DEPTH_PER_HALF_EYE_DISTANCE = 0.75

MAX_SEGMENTS = 512
MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_TEXT = 200

# IJG / JPEG Annex K tables in natural (row-major) order; libjpeg scales them by quality.
_STD_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
_STD_CHROMA = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99)
# position in natural order of the k-th coefficient in the file's zig-zag order
_ZIGZAG = (
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14,
    21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53,
    60, 61, 54, 47, 55, 62, 63)


# --- JPEG quantization tables ---------------------------------------------------------------------------------
def read_jpeg_quant_tables(path: str | os.PathLike) -> dict[int, list[int]]:
    """The DQT tables of a JPEG file, ``{table id: 64 values in natural order}``; {} when not a JPEG.

    Reads marker segments one by one up to the first scan (SOS), each bounded by its 16-bit length.
    """
    tables: dict[int, list[int]] = {}
    with open(path, "rb") as f:
        if f.read(2) != b"\xff\xd8":
            return {}
        for _ in range(MAX_SEGMENTS):
            marker = _next_marker(f)
            if marker is None or marker in (0xDA, 0xD9) or f.tell() > MAX_HEADER_BYTES:
                break
            if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length field
                continue
            head = f.read(2)
            if len(head) < 2:
                break
            length = struct.unpack(">H", head)[0] - 2
            if length < 0:
                break
            if marker == 0xDB:
                _parse_dqt(f.read(length), tables)
            else:
                f.seek(length, os.SEEK_CUR)
    return tables


def _next_marker(f) -> int | None:
    byte = f.read(1)
    while byte and byte != b"\xff":  # tolerate junk between segments
        byte = f.read(1)
    while byte == b"\xff":  # fill bytes
        byte = f.read(1)
    return byte[0] if byte else None


def _parse_dqt(data: bytes, tables: dict[int, list[int]]) -> None:
    pos = 0
    while pos < len(data):
        precision, table_id = data[pos] >> 4, data[pos] & 0x0F
        size = 128 if precision else 64
        body = data[pos + 1:pos + 1 + size]
        if len(body) < size or table_id > 3:
            return
        values = struct.unpack(">64H", body) if precision else tuple(body)
        natural = [0] * 64
        for k, v in enumerate(values):
            natural[_ZIGZAG[k]] = int(v)
        tables[table_id] = natural
        pos += 1 + size


def ijg_table(standard: tuple[int, ...], quality: int) -> list[int]:
    """libjpeg's ``jpeg_set_quality`` scaling of a standard table (baseline: values clamped to 1..255)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return [min(255, max(1, (v * scale + 50) // 100)) for v in standard]


def estimate_jpeg_quality(tables: dict[int, list[int]]) -> tuple[int | None, str]:
    """(IJG quality, "exact" | "approximate" | "non-standard") from the luminance (0) and chrominance (1) tables.

    The quality with the smallest mean relative difference wins; above 25 % the tables are not IJG-scaled.
    """
    if 0 not in tables:
        return None, "none"
    pairs = [(tables[0], _STD_LUMA)] + ([(tables[1], _STD_CHROMA)] if 1 in tables else [])
    best, best_error = None, math.inf
    for quality in range(1, 101):
        error = np.mean([abs(a - b) / b for table, std in pairs for a, b in zip(table, ijg_table(std, quality))])
        if error < best_error:
            best, best_error = quality, error
    if best_error == 0:
        return best, "exact"
    return (best, "approximate") if best_error <= 0.25 else (None, "non-standard")


# --- EXIF --------------------------------------------------------------------------------------------------------
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_TAGS = {"make": 0x010F, "model": 0x0110, "software": 0x0131, "modified_at": 0x0132, "orientation": 0x0112}
_EXIF_TAGS = {"taken_at": 0x9003, "digitized_at": 0x9004}


def exif_summary(path: str | os.PathLike) -> dict:
    """Camera, software, timestamps, orientation and whether GPS data is present (header only, no pixels)."""
    from .errors import ImageError
    from .imageio import open_image_header

    try:
        with open_image_header(Path(path), str(path)) as im:
            exif = im.getexif()
            base = {key: exif.get(tag) for key, tag in _TAGS.items()}
            sub = exif.get_ifd(_EXIF_IFD) if _EXIF_IFD in exif else {}
            taken = {key: sub.get(tag) for key, tag in _EXIF_TAGS.items()}
            gps = bool(exif.get_ifd(_GPS_IFD)) if _GPS_IFD in exif else False
    except (ImageError, OSError, ValueError, SyntaxError, struct.error) as exc:
        return {"error": _clean(str(exc) or type(exc).__name__)}
    summary = {key: _clean(value) for key, value in {**base, **taken}.items()}
    camera = " ".join(v for v in (summary.pop("make"), summary.pop("model")) if v)
    summary.update(camera=camera or None, gps_present=gps, present=bool(exif))
    return summary


def _clean(value):
    if value is None or isinstance(value, (int, float)):
        return value
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    text = "".join(ch for ch in str(value) if ch.isprintable()).strip()
    return text[:MAX_TEXT] or None


# --- face geometry and sharpness ----------------------------------------------------------------------------------
def pose_from_landmarks(landmarks) -> dict:
    """Roll and yaw (degrees) from five landmarks (right eye, left eye, nose tip, right and left mouth corner).

    Roll: the angle of the line from the right eye to the left eye (positive: the left eye lower in the image).
    Yaw: the nose tip's sideways shift from the eyes' midpoint along the eye line, over half the eye distance,
    read as ``tan(yaw) · depth`` for a nose of :data:`NOSE_DEPTH_PER_HALF_EYE_DISTANCE` (positive: the nose
    moves toward the left eye, i.e. the face turns to the person's left).
    """
    points = np.asarray(landmarks, np.float64).reshape(5, 2)
    right_eye, left_eye, nose = points[0], points[1], points[2]
    eye_vector = left_eye - right_eye
    inter_eye = float(np.hypot(*eye_vector))
    if inter_eye <= 0:
        return {"inter_eye_px": 0.0, "roll_deg": None, "yaw_deg": None}
    axis = eye_vector / inter_eye
    shift = float(np.dot(nose - (right_eye + left_eye) / 2, axis)) / (inter_eye / 2)
    yaw = math.degrees(math.atan(shift / NOSE_DEPTH_PER_HALF_EYE_DISTANCE))
    return {"inter_eye_px": inter_eye, "roll_deg": math.degrees(math.atan2(eye_vector[1], eye_vector[0])),
            "yaw_deg": yaw}


def laplacian_variance(image_rgb: np.ndarray, box=None) -> float | None:
    """Variance of the 3×3 Laplacian of the grey image inside ``box`` (x, y, w, h; the whole image when None)."""
    import cv2

    region = _crop(image_rgb, box)
    if region is None or min(region.shape[:2]) < 3:
        return None
    grey = cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _crop(image: np.ndarray, box):
    if box is None:
        return image
    h, w = image.shape[:2]
    x, y, bw, bh = (float(v) for v in box)
    x0, y0 = max(0, int(math.floor(x))), max(0, int(math.floor(y)))
    x1, y1 = min(w, int(math.ceil(x + bw))), min(h, int(math.ceil(y + bh)))
    return image[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else None


# --- the record -----------------------------------------------------------------------------------------------------
def assess_photo(path: str | os.PathLike, image_rgb: np.ndarray, *, box=None, landmarks=None,
                 face_index: int | None = None, n_faces: int | None = None) -> dict:
    """Quality and provenance of one photo and the face used from it (see the module docstring).

    ``image_rgb``: the decoded photo (core.imageio.load_image, or a reduced load_photo); ``box``/``landmarks`` in
    the original's pixels, None for a pre-aligned crop; ``face_index`` 0-based as the detector ranks faces
    (largest first)."""
    from .imageio import Photo

    photo = image_rgb if isinstance(image_rgb, Photo) else Photo(np.asarray(image_rgb))
    width, height = photo.size
    data: dict = {"width_px": int(width), "height_px": int(height), "file_bytes": _file_size(path),
                  "face_number": None if face_index is None else int(face_index) + 1,
                  "n_faces": None if n_faces is None else int(n_faces)}
    if box is not None:
        data["face_box_px"] = [round(float(box[2]), 1), round(float(box[3]), 1)]
    if landmarks is not None:
        data.update({k: None if v is None else round(v, 2) for k, v in pose_from_landmarks(landmarks).items()})
    sharpness = laplacian_variance(photo.pixels, None if box is None else photo.to_pixels(box))
    data["sharpness"] = None if sharpness is None else round(sharpness, 2)
    try:
        quality, match = estimate_jpeg_quality(read_jpeg_quant_tables(path))
    except OSError:
        quality, match = None, "unreadable"
    data.update(jpeg_quality=quality, jpeg_tables_match=match, exif=exif_summary(path))
    data["warnings"] = quality_warnings(data)
    data["thresholds"] = dict(THRESHOLDS)
    return data


def _file_size(path) -> int | None:
    try:
        return Path(path).stat().st_size
    except OSError:
        return None


def quality_warnings(data: dict) -> list[str]:
    """One line per measured value beyond its threshold in :data:`THRESHOLDS` (missing values warn nothing)."""
    t = THRESHOLDS
    checks = [
        (data.get("inter_eye_px"), lambda v: v < t["inter_eye_px"],
         lambda v: f"inter-eye distance {v:.0f} px is below {t['inter_eye_px']:.0f} px"),
        ((data.get("face_box_px") or [None])[0], lambda v: v < t["face_width_px"],
         lambda v: f"face width {v:.0f} px is below {t['face_width_px']:.0f} px"),
        (data.get("roll_deg"), lambda v: abs(v) > t["abs_roll_deg"],
         lambda v: f"head roll {v:+.0f}° exceeds ±{t['abs_roll_deg']:.0f}°"),
        (data.get("yaw_deg"), lambda v: abs(v) > t["abs_yaw_deg"],
         lambda v: f"head yaw {v:+.0f}° (estimated) exceeds ±{t['abs_yaw_deg']:.0f}°: not a frontal view"),
        (data.get("sharpness"), lambda v: v < t["sharpness"],
         lambda v: f"sharpness {v:.0f} (variance of the Laplacian) is below {t['sharpness']:.0f}: blurred face"),
        (data.get("jpeg_quality"), lambda v: v < t["jpeg_quality"],
         lambda v: f"JPEG quality about {v} is below {t['jpeg_quality']}: strong compression artefacts"),
    ]
    return [describe(v) for v, below, describe in checks if v is not None and below(v)]


# --- one text for people: the app's Photos tab and the report print these rows --------------------------------
def _exif(d: dict) -> dict:
    return d.get("exif") or {}


QUALITY_ROWS = (  # (label, text of a photo's assessment; None: not measured)
    ("Photo size", lambda d: f"{d['width_px']} × {d['height_px']} px" if d.get("width_px") else None),
    ("Face used", lambda d: f"face {d['face_number']} of {d.get('n_faces') or '?'} (1 = largest)"
     if d.get("face_number") else None),
    ("Face box", lambda d: "{:.0f} × {:.0f} px".format(*d["face_box_px"]) if d.get("face_box_px") else None),
    ("Inter-eye distance", lambda d: f"{d['inter_eye_px']:.0f} px" if d.get("inter_eye_px") is not None else None),
    ("Roll", lambda d: f"{d['roll_deg']:+.0f}°" if d.get("roll_deg") is not None else None),
    ("Yaw (estimated)", lambda d: f"{d['yaw_deg']:+.0f}°" if d.get("yaw_deg") is not None else None),
    ("Sharpness (variance of the Laplacian)", lambda d: f"{d['sharpness']:.0f}" if d.get("sharpness") is not None
     else None),
    ("JPEG quality (estimated)", lambda d: f"about {d['jpeg_quality']}" if d.get("jpeg_quality") is not None
     else "not a JPEG / unknown"),
    # "camera" is make and model joined (exif_summary); older records kept them apart
    ("Camera (EXIF)", lambda d: _exif(d).get("camera") or " ".join(
        str(_exif(d)[k]) for k in ("make", "model") if _exif(d).get(k)) or "not recorded"),
    ("Taken at (EXIF)", lambda d: _exif(d).get("taken_at") or "not recorded"),
    ("EXIF orientation", lambda d: str(_exif(d).get("orientation") or "not recorded")),
    ("GPS position in EXIF", lambda d: "present" if _exif(d).get("gps_present") else "none"),
)


def quality_rows(data: dict | None) -> list[tuple[str, str]]:
    """(label, text) per row of a photo's quality and provenance; "—" where nothing was measured (no data at all,
    or a value that cannot be read)."""
    rows = []
    for label, text in QUALITY_ROWS:
        try:
            value = text(data) if data else None
        except (KeyError, TypeError, ValueError, IndexError):
            value = None
        rows.append((label, value if value is not None else "—"))
    return rows
