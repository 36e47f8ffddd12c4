"""Mutation pins for core/image_quality.py (issue 28), from the survivors of the seeded sample and of the full run:
JPEG headers built here byte by byte (zig-zag order walked independently), IJG scaling computed by hand, poses of
hand-placed landmarks, every warning at its bound from both sides (and both signs for angles), the texts the
examiner reads."""
from __future__ import annotations

import io
import math
import struct

import numpy as np
import pytest
from PIL import Image

from xfr_desktop.core.image_quality import (assess_photo, estimate_jpeg_quality, exif_summary, ijg_table,
                                            laplacian_variance, pose_from_landmarks, quality_rows,
                                            quality_warnings, read_jpeg_quant_tables)


def test_an_empty_segment_before_the_tables_does_not_end_the_header(tmp_path):
    dqt = b"\xff\xdb" + (2 + 1 + 64).to_bytes(2, "big") + b"\x00" + bytes([7] * 64)
    path = tmp_path / "odd.jpg"
    path.write_bytes(b"\xff\xd8" + b"\xff\xe0\x00\x02" + dqt + b"\xff\xda\x00\x02")
    assert read_jpeg_quant_tables(path) == {0: [7] * 64}


def test_the_record_states_the_photos_own_size(tmp_path):
    path = tmp_path / "p.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(path)
    data = assess_photo(path, np.zeros((20, 30, 3), np.uint8))
    assert (data["width_px"], data["height_px"], data["file_bytes"]) == (30, 20, path.stat().st_size)
    assert dict(quality_rows(data))["Photo size"] == "30 × 20 px"


def test_a_value_that_cannot_be_shown_reads_as_a_dash():
    rows = dict(quality_rows({"face_box_px": [1], "width_px": 4, "height_px": 3}))
    assert rows["Face box"] == "—" and rows["Photo size"] == "4 × 3 px"
    assert dict(quality_rows(None))["Photo size"] == "—"


# --- from the full run (561 mutants): every flag at its bound from both sides, hand-computed values ----------------
def _zigzag_natural_positions():
    """Natural (row-major) index of each zig-zag position, walked diagonal by diagonal (JPEG Figure A.6)."""
    order = []
    for s in range(15):
        cells = [(r, s - r) for r in range(8) if 0 <= s - r < 8]
        order += cells if s % 2 else cells[::-1]
    return [r * 8 + c for r, c in order]


def _dqt(table_id, values, precision=0):
    body = bytes(values) if not precision else b"".join(v.to_bytes(2, "big") for v in values)
    return bytes([precision << 4 | table_id]) + body


def _segment(marker, payload):
    return b"\xff" + bytes([marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def test_dqt_tables_come_back_in_natural_order_8_and_16_bit(tmp_path):
    natural = _zigzag_natural_positions()
    wide = [300 + k for k in range(63)] + [65535]              # 16-bit values, one above the signed range
    payload = _dqt(0, range(64)) + _dqt(1, wide, precision=1) + _dqt(2, [4] * 64)
    path = tmp_path / "three.jpg"
    # junk and fill bytes before a marker, restart markers (no length), a segment longer than 32 KiB, the three
    # tables in one segment, then the scan
    path.write_bytes(b"\xff\xd8junk\xff\xff\xd0\xff\xd7" + _segment(0xE1, bytes(40_000)) + _segment(0xDB, payload)
                     + b"\xff\xda\x00\x02")
    tables = read_jpeg_quant_tables(path)
    expect0, expect1 = [0] * 64, [0] * 64
    for k in range(64):
        expect0[natural[k]], expect1[natural[k]] = k, wide[k]
    assert tables == {0: expect0, 1: expect1, 2: [4] * 64}
    assert tables[0][8] == 2 and tables[0][1] == 1 and tables[0][16] == 3   # literal: (1,0), (0,1), (2,0)


def test_tables_after_the_scan_or_the_end_are_not_read(tmp_path):
    for stop in (b"\xff\xda\x00\x02", b"\xff\xd9\x00\x02", b"\xff\x01"):
        path = tmp_path / "late.jpg"
        path.write_bytes(b"\xff\xd8" + stop + _segment(0xDB, _dqt(2, [9] * 64)))
        expected = {2: [9] * 64} if stop == b"\xff\x01" else {}   # TEM (0x01) has no length and is skipped
        assert read_jpeg_quant_tables(path) == expected, stop
    path = tmp_path / "short.jpg"
    path.write_bytes(b"\xff\xd8\xff\xdb\x00")                         # length field cut off
    assert read_jpeg_quant_tables(path) == {}
    path.write_bytes(b"\xff\xd8" + _segment(0xDB, _dqt(3, [5] * 64) + _dqt(1, [6] * 10)))  # 2nd table cut short
    assert read_jpeg_quant_tables(path) == {3: [5] * 64}
    path.write_bytes(b"\xff\xd8" + _segment(0xDB, _dqt(4, [5] * 64)))   # ids are 0-3
    assert read_jpeg_quant_tables(path) == {}
    # a stray start marker (D8, just past the restart markers D0-D7) has a length: the table inside it is skipped
    hidden = _segment(0xDB, _dqt(1, [9] * 64))
    path.write_bytes(b"\xff\xd8" + _segment(0xD8, hidden) + _segment(0xDB, _dqt(0, [7] * 64)))
    assert read_jpeg_quant_tables(path) == {0: [7] * 64}


@pytest.mark.parametrize("extra,found", [(0, True), (1, False)])
def test_tables_are_read_up_to_16_mib_into_the_file(tmp_path, extra, found):
    # APP segments (2 + 65535 bytes each, then a shorter one) fill the header so that the DQT marker ends exactly
    # at byte 16 MiB (read), or one byte later (not read)
    fill = 16 * 1024 * 1024 - 2 - 2 + extra                  # minus the start marker and the DQT marker
    segments = [_segment(0xE1, bytes(65533))] * (fill // 65537)
    rest = fill - 65537 * len(segments)
    segments.append(_segment(0xE2, bytes(rest - 4)))
    path = tmp_path / "big.jpg"
    path.write_bytes(b"\xff\xd8" + b"".join(segments)
                     + _segment(0xDB, _dqt(0, [7] * 64)))
    assert read_jpeg_quant_tables(path) == ({0: [7] * 64} if found else {})


def test_ijg_scaling_of_a_standard_table_by_hand():
    std = (16, 11, 10, 16, 24, 40, 51, 61)
    assert ijg_table(std, 75) == [8, 6, 5, 8, 12, 20, 26, 31]          # scale 50: (v*50+50)//100
    assert ijg_table(std, 10) == [80, 55, 50, 80, 120, 200, 255, 255]  # scale 500, clamped to 255
    assert ijg_table(std, 25) == [32, 22, 20, 32, 48, 80, 102, 122]    # scale 200
    assert ijg_table(std, 30) == [27, 18, 17, 27, 40, 66, 85, 101]     # scale 5000 // 30 = 166, not 166.67
    assert ijg_table((99, 69), 33) == [149, 104] and ijg_table((69,), 41) == [83]  # (99*151+50)//100, (69*121+50)//100
    assert ijg_table(std, 100) == [1] * 8                              # scale 0, clamped to 1
    assert ijg_table(std, 99) == [1, 1, 1, 1, 1, 1, 1, 1] and ijg_table((75, 74), 99) == [2, 1]


@pytest.mark.parametrize("quality", [1, 33, 100])
def test_the_extreme_qualities_of_a_real_encoder(tmp_path, quality):
    path = tmp_path / "q.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(path, quality=quality)
    assert estimate_jpeg_quality(read_jpeg_quant_tables(path)) == (quality, "exact")


def _pillow_tables(quality, grey=False):
    pixels = np.random.default_rng(0).integers(0, 255, (16, 16) if grey else (16, 16, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return {k: list(v) for k, v in Image.open(buf).quantization.items()}


def test_grey_jpeg_and_tables_mixed_from_two_qualities():
    assert estimate_jpeg_quality(_pillow_tables(60, grey=True)) == (60, "exact")
    mixed = {0: _pillow_tables(80)[0], 1: _pillow_tables(70)[1]}   # the chroma table from another quality
    quality, match = estimate_jpeg_quality(mixed)
    assert match == "approximate" and 70 <= quality <= 80
    off = _pillow_tables(80)
    off[0][0] += 1                                                    # one value of 128 off: still quality 80
    assert estimate_jpeg_quality(off) == (80, "approximate")
    assert estimate_jpeg_quality({1: _pillow_tables(80)[1]}) == (None, "none")


def test_pose_by_hand_roll_and_yaw_signs():
    eyes = [[-32, 0], [32, 0]]
    mouth = [[-25, 60], [25, 60]]
    # nose 24 px toward the left eye = 0.75 half eye distances = the nose depth: tan(yaw) = 1
    left = pose_from_landmarks(np.array(eyes + [[24, 30]] + mouth, float))
    right = pose_from_landmarks(np.array(eyes + [[-24, 30]] + mouth, float))
    assert left["yaw_deg"] == pytest.approx(45) and right["yaw_deg"] == pytest.approx(-45)
    assert left["roll_deg"] == pytest.approx(0) and left["inter_eye_px"] == pytest.approx(64)
    # the left eye 64 px lower (image y down): +45° roll; 64 px higher: -45°; inter-eye sqrt(2)*64
    down = pose_from_landmarks(np.array([[0, 0], [64, 64], [32, 32], [0, 90], [60, 90]], float))
    up = pose_from_landmarks(np.array([[0, 0], [64, -64], [32, -32], [0, 90], [60, 90]], float))
    assert down["roll_deg"] == pytest.approx(45) and up["roll_deg"] == pytest.approx(-45)
    assert down["yaw_deg"] == pytest.approx(0, abs=1e-9) and down["inter_eye_px"] == pytest.approx(64 * math.sqrt(2))
    assert pose_from_landmarks(np.zeros(10)) == {"inter_eye_px": 0.0, "roll_deg": None, "yaw_deg": None}
    close = pose_from_landmarks([[0, 0], [1, 0], [0.5, 1], [0, 2], [1, 2]])   # eyes 1 px apart: still measured
    assert close == {"inter_eye_px": 1.0, "roll_deg": 0.0, "yaw_deg": 0.0}


def test_sharpness_region_bounds():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    # a fractional box is widened to whole pixels (floor of the start, ceil of the end); one beyond the image is cut
    assert laplacian_variance(image, box=(10.5, 5.5, 9, 9)) == laplacian_variance(image[5:15, 10:20])
    assert laplacian_variance(image, box=(-5, -5, 15, 15)) == laplacian_variance(image[0:10, 0:10])
    assert laplacian_variance(image, box=(35, 25, 20, 20)) == laplacian_variance(image[25:30, 35:40])
    assert laplacian_variance(image, box=(0, 0, 3, 3)) is not None                  # 3 x 3: smallest measured
    assert laplacian_variance(image, box=(0, 0, 2, 10)) is None and laplacian_variance(image, (0, 0, 10, 2)) is None
    assert laplacian_variance(image, box=(50, 0, 5, 5)) is None and laplacian_variance(image, (0, 40, 5, 5)) is None


@pytest.mark.parametrize("key,at,beyond,text", [
    ("inter_eye_px", 30.0, 29.6, "inter-eye distance 30 px is below 30 px"),
    ("sharpness", 100.0, 99.0, "sharpness 99 (variance of the Laplacian) is below 100: blurred face"),
    ("jpeg_quality", 50, 49, "JPEG quality about 49 is below 50: strong compression artefacts"),
])
def test_a_low_value_warns_below_its_bound_only(key, at, beyond, text):
    assert quality_warnings({key: at}) == [] and quality_warnings({key: at + 50}) == []
    assert quality_warnings({key: beyond}) == [text]


def test_face_width_warns_below_60_px_only():
    assert quality_warnings({"face_box_px": [60.0, 10.0]}) == []
    assert quality_warnings({"face_box_px": [59.4, 90.0]}) == ["face width 59 px is below 60 px"]
    assert quality_warnings({"face_box_px": None}) == []


@pytest.mark.parametrize("key,bound,text", [
    ("roll_deg", 20.0, "head roll {:+.0f}° exceeds ±20°"),
    ("yaw_deg", 30.0, "head yaw {:+.0f}° (estimated) exceeds ±30°: not a frontal view"),
])
def test_an_angle_warns_beyond_its_bound_in_both_directions(key, bound, text):
    for sign in (1, -1):
        assert quality_warnings({key: sign * bound}) == [] and quality_warnings({key: 0.0}) == []
        assert quality_warnings({key: sign * (bound + 1)}) == [text.format(sign * (bound + 1))]
    assert quality_warnings({"roll_deg": -21.0})[0].startswith("head roll -21°")


def test_every_warning_at_once_in_a_fixed_order():
    data = {"inter_eye_px": 10, "face_box_px": [20, 20], "roll_deg": 40, "yaw_deg": -50, "sharpness": 5,
            "jpeg_quality": 10}
    assert [w.split()[0] + " " + w.split()[1] for w in quality_warnings(data)] == [
        "inter-eye distance", "face width", "head roll", "head yaw", "sharpness 5", "JPEG quality"]
    assert quality_warnings({}) == []


def test_exif_text_is_cleaned_and_the_camera_joined(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "  Nikon\x07 "                          # a control character and padding
    exif[0x0131] = "x" * 300
    path = tmp_path / "make.jpg"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, exif=exif)
    summary = exif_summary(path)
    assert summary["camera"] == "Nikon" and summary["software"] == "x" * 200
    assert summary["present"] is True and summary["gps_present"] is False
    assert summary["taken_at"] is None and summary["orientation"] is None and "make" not in summary
    only_model = Image.Exif()
    only_model[0x0110] = "EOS"
    only_model[0x010F] = "   "                             # blank after cleaning: no make
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, exif=only_model)
    assert exif_summary(path)["camera"] == "EOS"
    assert exif_summary(tmp_path / "missing.jpg")["error"] == f"{tmp_path / 'missing.jpg'}: file not found"


def test_the_record_of_a_detected_face(tmp_path):
    from xfr_desktop.core.imageio import Photo

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    path = tmp_path / "p.jpg"
    Image.fromarray(pixels).save(path, quality=40)
    landmarks = [[20, 20], [40, 21], [30, 30], [22, 40], [38, 40]]
    box = (20, 10, 40.26, 60.26)                            # in the original's pixels: the photo was halved
    data = assess_photo(path, Photo(pixels, scale=2), box=box, landmarks=landmarks, face_index=2, n_faces=4)
    assert (data["width_px"], data["height_px"]) == (120, 80)
    assert data["face_number"] == 3 and data["n_faces"] == 4 and data["face_box_px"] == [40.3, 60.3]
    eyes = math.hypot(20, 1)                                # the nose 9.5 px below the eyes' midpoint, (20, 1)
    yaw = math.degrees(math.atan(9.5 / eyes / (eyes / 2) / 0.75))
    assert (data["inter_eye_px"], data["roll_deg"], data["yaw_deg"]) == (
        20.02, round(math.degrees(math.atan2(1, 20)), 2), round(yaw, 2)) and data["roll_deg"] == 2.86
    assert data["sharpness"] == round(laplacian_variance(pixels[5:36, 10:31]), 2)  # ceil of 35.13, 30.02
    assert data["jpeg_quality"] == 40 and data["jpeg_tables_match"] == "exact"
    assert data["warnings"] == ["inter-eye distance 20 px is below 30 px", "face width 40 px is below 60 px",
                                "JPEG quality about 40 is below 50: strong compression artefacts"]
    assert data["thresholds"]["inter_eye_px"] == 30.0 and data["exif"]["present"] is False
    flat = assess_photo(path, pixels, landmarks=np.zeros((5, 2)))
    assert flat["roll_deg"] is None and flat["yaw_deg"] is None and flat["inter_eye_px"] == 0.0
    assert flat["face_number"] is None and flat["n_faces"] is None and "face_box_px" not in flat
    assert assess_photo(path, pixels, box=(0, 0, 2, 2))["sharpness"] is None   # too small to measure


def test_a_missing_file_is_recorded_as_unreadable(tmp_path):
    data = assess_photo(tmp_path / "gone.jpg", np.zeros((10, 10, 3), np.uint8))
    assert data["file_bytes"] is None and data["jpeg_quality"] is None
    assert data["jpeg_tables_match"] == "unreadable" and "error" in data["exif"]


def test_rows_the_examiner_reads():
    data = {"width_px": 120, "height_px": 80, "face_number": 3, "n_faces": 4, "face_box_px": [40.0, 60.3],
            "inter_eye_px": 20.4, "roll_deg": -3.4, "yaw_deg": 12.6, "sharpness": 99.6, "jpeg_quality": 40,
            "exif": {"camera": "Nikon D3", "taken_at": "2020:01:02 03:04:05", "orientation": 6,
                     "gps_present": True}}
    assert dict(quality_rows(data)) == {
        "Photo size": "120 × 80 px", "Face used": "face 3 of 4 (1 = largest)", "Face box": "40 × 60 px",
        "Inter-eye distance": "20 px", "Roll": "-3°", "Yaw (estimated)": "+13°",
        "Sharpness (variance of the Laplacian)": "100", "JPEG quality (estimated)": "about 40",
        "Camera (EXIF)": "Nikon D3", "Taken at (EXIF)": "2020:01:02 03:04:05", "EXIF orientation": "6",
        "GPS position in EXIF": "present"}
    bare = dict(quality_rows({"width_px": 5, "height_px": 5, "face_number": 1, "exif": {"make": "Canon"}}))
    assert bare["Face used"] == "face 1 of ? (1 = largest)" and bare["Camera (EXIF)"] == "Canon"
    assert bare["JPEG quality (estimated)"] == "not a JPEG / unknown" and bare["GPS position in EXIF"] == "none"
    assert bare["Taken at (EXIF)"] == "not recorded" and bare["EXIF orientation"] == "not recorded"


def test_a_quarter_mean_relative_error_is_still_approximate():
    # libjpeg's quality-50 luminance table is Annex K's own; doubling 16 of its 64 values is a relative error of
    # exactly 1 on a quarter of them: mean 0.25, the last error still read as an IJG table
    table = _pillow_tables(50)[0]
    doubled = [2 * v if i < 16 else v for i, v in enumerate(table)]
    assert estimate_jpeg_quality({0: doubled}) == (50, "approximate")
    tripled = [3 * v if i < 16 else v for i, v in enumerate(table)]
    assert estimate_jpeg_quality({0: tripled}) == (None, "non-standard")


def test_an_exif_text_stored_as_bytes_is_read_as_latin_1(tmp_path):
    # a little-endian TIFF block by hand: one entry, Make, of type UNDEFINED (7), so Pillow hands back bytes
    value = b"Canon\xe9\x00"
    tiff = (b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1)
            + struct.pack("<HHII", 0x010F, 7, len(value), 26) + struct.pack("<I", 0) + value)
    path = tmp_path / "bytes.jpg"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, exif=b"Exif\x00\x00" + tiff)
    assert exif_summary(path)["camera"] == "Canon\u00e9"                # é, the NUL dropped
