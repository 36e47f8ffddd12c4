"""Mutation pins for core/image_quality.py (issue 28), from the seeded sample's survivors: a JPEG header with an empty
segment before its tables, the photo's size as recorded, and what the examiner reads for a value that cannot be
shown. The JPEG bytes are built here by hand."""
from __future__ import annotations

import numpy as np
from PIL import Image

from xfr_desktop.core.image_quality import assess_photo, quality_rows, read_jpeg_quant_tables


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
