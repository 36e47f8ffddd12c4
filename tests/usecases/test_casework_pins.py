"""Mutation pins for casework.py (issue 28), from the seeded sample's survivors and then the full mutant set: the
sample-case file's fields as written here by hand, and a case set up from it (pre-aligned pairs: no face detection,
both faces index 0); comparison and face numbers, the photos' errors, the report's result, conclusions.
analyse_case has its own file (test_casework_pins_analyse.py: one real analysis)."""
from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xfr_desktop.casework import (add_pair, comparison_by_number, comparison_results, conclude, ensure_sample_case,
                                  import_photos, load_sample_case)
from xfr_desktop.core.errors import ImageError, StoreError, XfrError
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


# --- pins from the full mutant set (issue 28): every function, both directions of each branch ------------------

IMAGES = Path(__file__).resolve().parents[2] / "resources" / "samples" / "images"
ONE_FACE_A = IMAGES / "Sergey_Lavrov_0003.jpg"       # one face each (LFW crops, 250x250)
ONE_FACE_B = IMAGES / "John_Kerry_0009.jpg"


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _flat(tmp_path, name, value):
    path = tmp_path / name
    Image.fromarray(np.full((112, 112, 3), value, np.uint8)).save(path)
    return path


def _two_faces(tmp_path):
    """Two one-face photos side by side: a photo with two faces, the larger one on the left."""
    path = tmp_path / "two.png"
    Image.fromarray(np.concatenate([np.asarray(Image.open(p).convert("RGB")) for p in (ONE_FACE_A, ONE_FACE_B)],
                                   axis=1)).save(path)
    return path


def _actions(store, case_id):
    return [(e.action, e.actor, e.case_id) for e in store.list_audit(case_id)
            if e.action in ("image.imported", "comparison.added")]


def test_a_comparison_is_found_by_its_one_based_number_and_a_missing_one_named(tmp_path):
    with open_store(tmp_path / "data") as store:
        case = store.create_case("N-1")
        ids = [add_pair(store, case.id, _flat(tmp_path, f"{v}.png", v), _flat(tmp_path, f"{v}.png", v),
                        prealigned=True).id for v in (10, 20, 30)]
        assert [comparison_by_number(store, case.id, n).id for n in (1, 2, 3)] == ids
        assert comparison_by_number(store, case.id, "2").id == ids[1]
        for missing in (4, 0):
            with pytest.raises(StoreError) as err:
                comparison_by_number(store, case.id, missing)
            assert str(err.value) == f"case N-1 has no comparison {missing} (it has 3)"


def test_face_numbers_below_one_are_refused_before_anything_is_stored_and_one_is_accepted(tmp_path):
    flat = _flat(tmp_path, "f.png", 50)
    with open_store(tmp_path / "data") as store:
        case = store.create_case("N-2")
        for faces, shown in (({"face_a": 0}, "0"), ({"face_b": -1}, "-1"), ({"face_a": 1, "face_b": "0"}, "0")):
            with pytest.raises(XfrError) as err:
                add_pair(store, case.id, flat, flat, prealigned=True, **faces)
            assert str(err.value) == f"face numbers start at 1 (1 = the largest face), not {shown}"
        assert _actions(store, case.id) == [] and store.list_comparisons(case.id) == []
        comp = add_pair(store, case.id, flat, flat, prealigned=True, face_a=1, face_b=1)
        assert (comp.face_index_a, comp.face_index_b, comp.parameters) == (0, 0, {"prealigned": True})


def test_a_pair_for_a_case_that_does_not_exist_is_refused_before_its_photos_are_read(tmp_path):
    with open_store(tmp_path / "data") as store:
        with pytest.raises(StoreError) as err:
            add_pair(store, 999, tmp_path / "missing-a.jpg", tmp_path / "missing-b.jpg")
    assert str(err.value) == "no case with id 999"


def test_a_pair_of_photos_gets_the_faces_asked_for_and_the_actor_named(tmp_path):
    """Not pre-aligned (the default): faces are detected; face 2 of a two-face photo is index 1 (on either side), a
    photo's only face index 0; both photos and the comparison are logged under the actor, on the case's chain."""
    two = _two_faces(tmp_path)
    with open_store(tmp_path / "data") as store:
        case = store.create_case("N-3", examiner="Case Examiner")
        comp = add_pair(store, case.id, two, ONE_FACE_B, face_a=2, actor="Dr Who")
        assert (comp.number, comp.face_index_a, comp.face_index_b) == (1, 1, 0)
        assert comp.parameters == {"prealigned": False}
        assert (comp.image_a, comp.image_b) == (_sha(two), _sha(ONE_FACE_B))
        assert [store.get_image(s).original_name for s in (comp.image_a, comp.image_b)] == [
            "two.png", "John_Kerry_0009.jpg"]
        assert _actions(store, case.id) == [("image.imported", "Dr Who", case.id)] * 2 + [
            ("comparison.added", "Dr Who", case.id)]
        other = add_pair(store, case.id, ONE_FACE_A, two, face_b=2)           # no actor: the case's examiner
        assert (other.number, other.face_index_a, other.face_index_b) == (2, 0, 1)
        assert _actions(store, case.id)[3:] == [("image.imported", "Case Examiner", case.id)] * 2 + [
            ("comparison.added", "Case Examiner", case.id)]


def test_several_faces_without_a_number_are_refused_naming_the_photo_the_option_and_the_sheet(tmp_path,
                                                                                              monkeypatch):
    two = _two_faces(tmp_path)
    with open_store(tmp_path / "data") as store:
        case = store.create_case("N-4")
        sheets = tmp_path / "sheets"
        with pytest.raises(ImageError) as err:
            add_pair(store, case.id, two, ONE_FACE_B, sheet_dir=sheets)
        text = str(err.value)
        assert text.startswith("Photo A (two.png) shows 2 faces (face 1: ") and ", face 2: " in text
        assert text.endswith(f"; numbered in {sheets / 'faces-two.png'}): choose one with --face-a K")
        assert (sheets / "faces-two.png").is_file()
        default = tmp_path / "tmpdir"                      # no sheet_dir: the temporary folder
        monkeypatch.setattr(tempfile, "tempdir", str(default))
        with pytest.raises(ImageError) as err:
            add_pair(store, case.id, ONE_FACE_A, two)
        text = str(err.value)
        assert text.startswith("Photo B (two.png) shows 2 faces (face 1: ")
        assert text.endswith(f"; numbered in {default / 'faces-two.png'}): choose one with --face-b K")
        assert (default / "faces-two.png").is_file()
        with pytest.raises(ImageError) as err:
            add_pair(store, case.id, ONE_FACE_A, ONE_FACE_B, face_b=3)
        assert str(err.value).startswith("Photo B (John_Kerry_0009.jpg): face 3 requested but 1 face found (")
        with pytest.raises(ImageError) as err:
            add_pair(store, case.id, _flat(tmp_path, "flat.png", 128), ONE_FACE_B)
        assert str(err.value) == "Photo A (flat.png): no face found, so it cannot be compared"
        assert _actions(store, case.id) == [] and store.list_comparisons(case.id) == []


def test_importing_a_pair_names_the_photo_that_fails_and_returns_both_hashes(tmp_path):
    a, b, missing = _flat(tmp_path, "a.png", 1), _flat(tmp_path, "b.png", 2), tmp_path / "missing.jpg"
    with open_store(tmp_path / "data") as store:
        case = store.create_case("N-5")
        assert import_photos(store, case.id, a, b, actor="Dr Who") == [_sha(a), _sha(b)]
        assert _actions(store, case.id) == [("image.imported", "Dr Who", case.id)] * 2
        for args, label in (((missing, b), "A"), ((a, missing), "B")):
            with pytest.raises(ImageError) as err:
                import_photos(store, case.id, *args)
            assert str(err.value) == f"Photo {label}: {missing}: file not found"


def test_comparison_results_name_the_result_a_report_uses(tmp_path):
    """None before any result; then the first full analysis (not a channel subset); then the one chosen."""
    flat = _flat(tmp_path, "f.png", 70)
    with open_store(tmp_path / "data") as store:
        case = store.create_case("N-6")
        comp = add_pair(store, case.id, flat, flat, prealigned=True)
        assert comparison_results(store, comp.id) == ([], None)
        subset = store.save_result(comp.id, {"score": 0.5, "threshold": 0.3, "decision": True,
                                             "parameters": {"channels": [1, 2]}})
        full = store.save_result(comp.id, {"score": 0.4, "threshold": 0.3, "decision": True, "parameters": {}})
        results, chosen = comparison_results(store, comp.id)
        assert ([r.id for r in results], chosen) == ([subset.id, full.id], full.id)
        assert all(r.maps_npz is None for r in results)
        store.choose_report_result(comp.id, subset.id)
        assert comparison_results(store, comp.id)[1] == subset.id


def test_a_conclusion_is_stripped_and_a_comparison_note_stays_on_its_comparison(tmp_path):
    flat = _flat(tmp_path, "f.png", 90)
    with open_store(tmp_path / "data") as store:
        case = store.create_case("N-7", examiner="Case Examiner")
        comp = add_pair(store, case.id, flat, flat, prealigned=True)
        whole = conclude(store, case.id, "  moderate support \n", scale="ENFSI", author="Dr Who")
        assert (whole.case_id, whole.comparison_id, whole.text, whole.scale, whole.author) == (
            case.id, None, "moderate support", "ENFSI", "Dr Who")
        note = conclude(store, case.id, "note on the pair", comparison=1)
        assert (note.case_id, note.comparison_id, note.text, note.scale, note.author) == (
            case.id, comp.id, "note on the pair", None, "Case Examiner")
        assert store.latest_conclusion(case.id).text == "moderate support"
        for empty in ("", "  \t", None):
            with pytest.raises(XfrError) as err:
                conclude(store, case.id, empty)
            assert str(err.value) == "a conclusion needs some text"
        with pytest.raises(StoreError) as err:
            conclude(store, case.id, "x", comparison=2)
        assert str(err.value) == "case N-7 has no comparison 2 (it has 1)"
        assert [c.text for c in store.list_conclusions(case.id)] == ["moderate support", "note on the pair"]


def _write(tmp_path, data, name="case.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_a_sample_case_file_of_pairs_alone_gets_the_default_fields(tmp_path):
    path = _write(tmp_path, {"pairs": [["x.png", "y.png"]]})
    assert load_sample_case(path) == {"number": "SAMPLE-0001", "title": "Sample case", "examiner": "",
                                      "organisation": "", "notes": "",
                                      "pairs": [(tmp_path / "x.png", tmp_path / "y.png", False, "")]}


def test_the_sample_case_file_prefers_the_first_key_of_each_pair_and_falls_back_to_the_second(tmp_path):
    path = _write(tmp_path, {"case_number": "C-1", "number": "N-1", "description": "described", "notes": "noted",
                             "examiner": "Zoë Ångström", "pairs": [
                                 {"image_a": "ia.png", "a": "a.png", "image_b": "ib.png", "b": "b.png",
                                  "aligned": 0, "prealigned": 1}]})
    sample = load_sample_case(path)
    assert (sample["number"], sample["notes"], sample["examiner"]) == ("C-1", "described", "Zoë Ångström")
    assert sample["pairs"] == [(tmp_path / "ia.png", tmp_path / "ib.png", True, "")]
    path = _write(tmp_path, {"number": 42, "description": "", "notes": "noted", "pairs": [
        {"image_a": "ia.png", "b": "b.png", "prealigned": True, "label": "L"},
        {"a": "a.png", "image_b": "ib.png", "aligned": True}, {"a": "c.png", "b": "d.png"}]})
    sample = load_sample_case(path)
    assert (sample["number"], sample["notes"]) == ("42", "noted")
    assert sample["pairs"] == [(tmp_path / "ia.png", tmp_path / "b.png", True, "L"),
                               (tmp_path / "a.png", tmp_path / "ib.png", True, ""),
                               (tmp_path / "c.png", tmp_path / "d.png", False, "")]
    assert load_sample_case(_write(tmp_path, {"case_number": "C-2", "pairs": [["x", "y"]]}))["number"] == "C-2"


def test_a_pair_without_both_photos_is_skipped_and_a_file_without_pairs_refused(tmp_path):
    path = _write(tmp_path, {"pairs": [{"a": "only-a.png"}, {"image_b": "only-b.png"}, ["x.png", ""],
                                       {"a": "a.png", "b": "b.png"}]})
    assert load_sample_case(path)["pairs"] == [(tmp_path / "a.png", tmp_path / "b.png", False, "")]
    for data in ({"title": "no pairs"}, {"pairs": []}, {"pairs": [{"a": "only-a.png"}]}):
        path = _write(tmp_path, data)
        with pytest.raises(FileNotFoundError) as err:
            load_sample_case(path)
        assert str(err.value) == f"the sample case {path} lists no image pairs"


def test_a_missing_or_unreadable_sample_case_file_is_named_with_the_reason(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(FileNotFoundError) as err:
        load_sample_case(missing)
    assert str(err.value) == f"the sample case {missing} is missing or unreadable (FileNotFoundError)"
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(FileNotFoundError) as err:
        load_sample_case(broken)
    assert str(err.value) == f"the sample case {broken} is missing or unreadable (JSONDecodeError)"


def test_without_a_path_the_bundled_sample_case_is_read():
    for sample in (load_sample_case(), load_sample_case(None)):
        assert sample["number"] == "SAMPLE-0001" and len(sample["pairs"]) == 4
        assert sample["pairs"][0] == (IMAGES / "Sergey_Lavrov_0003.jpg", IMAGES / "Sergey_Lavrov_0005.jpg", False,
                                      "Sergey Lavrov 0003 vs Sergey Lavrov 0005")


def test_the_sample_case_is_created_with_its_fields_once_and_completed_when_older(tmp_path):
    path = _case_file(tmp_path)
    path.write_text(json.dumps({**json.loads(path.read_text()), "pairs": [
        {"a": "a.png", "b": "b.png", "aligned": True}, {"a": "c.png", "b": "d.png", "aligned": True}]}))
    with open_store(tmp_path / "data") as store:
        case, comparisons = ensure_sample_case(store, path)
        stored = store.get_case(case.id)
        assert (stored.number, stored.title, stored.examiner, stored.organisation, stored.notes) == (
            "S-7", "Own sample", "Ann Example", "Lab", "two pairs")
        assert case == stored and comparisons == store.list_comparisons(case.id)
        again, same = ensure_sample_case(store, path)
        assert again.id == case.id and [c.id for c in same] == [c.id for c in comparisons]
    with open_store(tmp_path / "older") as store:
        old = store.create_case("S-7", title="older text")
        first = add_pair(store, old.id, tmp_path / "a.png", tmp_path / "b.png", prealigned=True)
        case, comparisons = ensure_sample_case(store, path)
        assert (case.id, case.title) == (old.id, "older text")
        assert [c.id for c in comparisons][0] == first.id and len(comparisons) == 2
        assert [(store.get_image(c.image_a).original_name, store.get_image(c.image_b).original_name,
                 c.parameters) for c in comparisons] == [("a.png", "b.png", {"prealigned": True}),
                                                         ("c.png", "d.png", {"prealigned": True})]


def test_the_sample_case_file_is_read_as_utf8_whatever_the_locale(tmp_path):
    """A Windows-style locale whose encoding is not UTF-8 (here the C locale: ASCII) still reads the names right."""
    import locale

    path = _write(tmp_path, {"examiner": "Zoë Ångström", "pairs": [["x.png", "y.png"]]})
    before = locale.setlocale(locale.LC_CTYPE)
    try:
        locale.setlocale(locale.LC_CTYPE, "C")
        assert locale.getencoding() != "UTF-8"
        sample = load_sample_case(path)
    finally:
        locale.setlocale(locale.LC_CTYPE, before)
    assert sample["examiner"] == "Zoë Ångström"
