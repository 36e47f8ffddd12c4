"""Mutation pins for casework.py (issue 28), from the seeded sample's survivors: the sample-case file's fields as
written here by hand, and a case set up from it (pre-aligned pairs: no face detection, both faces index 0)."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from xfr_desktop.casework import ensure_sample_case, load_sample_case
from xfr_desktop.store import open_store


def _case_file(tmp_path):
    for name, value in (("a.png", 10), ("b.png", 90), ("c.png", 170), ("d.png", 250)):
        Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(tmp_path / name)
    path = tmp_path / "case.json"
    path.write_text(json.dumps({
        "case_number": "S-7", "title": "Own sample", "examiner": "Ann Example", "organisation": "Lab",
        "description": "two pairs",
        "pairs": [{"a": "a.png", "b": "b.png", "aligned": True, "label": "first"}, ["c.png", "d.png"]]}))
    return path


def test_the_sample_case_file_is_read_field_by_field(tmp_path):
    path = _case_file(tmp_path)
    assert load_sample_case(path) == {
        "number": "S-7", "title": "Own sample", "examiner": "Ann Example", "organisation": "Lab",
        "notes": "two pairs", "pairs": [(tmp_path / "a.png", tmp_path / "b.png", True, "first"),
                                        (tmp_path / "c.png", tmp_path / "d.png", False, "")]}


def test_a_sample_case_of_pre_aligned_pairs_is_set_up_from_the_file_given(tmp_path):
    path = _case_file(tmp_path)
    path.write_text(json.dumps({**json.loads(path.read_text()), "pairs": [
        {"image_a": "a.png", "image_b": "b.png", "prealigned": True}, {"a": "c.png", "b": "d.png", "aligned": 1}]}))
    with open_store(tmp_path / "data") as store:
        case, comparisons = ensure_sample_case(store, path)
        names = [(store.get_image(c.image_a).original_name, store.get_image(c.image_b).original_name)
                 for c in comparisons]
    assert (case.number, case.examiner) == ("S-7", "Ann Example")
    assert names == [("a.png", "b.png"), ("c.png", "d.png")]
    assert [(c.face_index_a, c.face_index_b, c.parameters) for c in comparisons] == [(0, 0, {"prealigned": True})] * 2
