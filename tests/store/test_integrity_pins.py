"""Mutation pins for store/integrity.py (issue 28): which fields of each kind of row are bound to the audit trail,
which entries must match, and what a verification names when a row, an entry or a file is forged.

The reference digests are computed here by hand: the row read back with plain SQL, the fields of each kind written
out below (not taken from the module), canonical JSON built with json.dumps and hashed with hashlib. Real SQLite
store, attacks as plain SQL with the append-only triggers dropped (what someone with file access does first)."""
from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3

import numpy as np
import pytest
from PIL import Image as PILImage

from xfr_desktop.store import audit, integrity, open_store

CASE = ("number", "title", "examiner", "organisation", "notes", "created_at")
IMAGE = ("sha256", "original_name", "original_path", "size", "width", "height", "format", "ext", "imported_at")
COMPARISON = ("case_id", "image_a", "image_b", "face_index_a", "face_index_b", "model_sha256", "model_name",
              "parameters", "created_at")
RESULT = ("comparison_id", "created_at", "parameters", "score", "threshold", "model_sha256", "model_name", "timings")
CONCLUSION = ("case_id", "comparison_id", "text", "scale", "notes", "author", "created_at")
FEATURE = ("comparison_id", "feature", "value", "note", "author", "created_at")
ANNOTATION = ("comparison_id", "side", "kind", "x", "y", "width", "height", "label", "author", "created_at",
              "removed_at", "removed_by")
QUALITY = ("comparison_id", "side", "image_sha256", "data", "created_at")
REVIEW = ("comparison_id", "reviewer", "verdict", "note", "created_at")
# table, object type, fields, key column
KINDS = [("cases", "case", CASE, "id"), ("images", "image", IMAGE, "sha256"),
         ("comparisons", "comparison", COMPARISON, "id"), ("results", "result", RESULT, "id"),
         ("conclusions", "conclusion", CONCLUSION, "id"), ("feature_assessments", "feature_assessment", FEATURE, "id"),
         ("annotations", "annotation", ANNOTATION, "id"), ("image_quality", "image_quality", QUALITY, "id"),
         ("reviews", "review", REVIEW, "id")]


def db(data):
    con = sqlite3.connect(data / "xfr.sqlite")
    con.row_factory = sqlite3.Row
    return con


def attack(data, *statements):
    with db(data) as con:
        for name in ("audit_log_no_update", "audit_log_no_delete", "audit_checkpoints_no_update",
                     "audit_checkpoints_no_delete"):
            con.execute(f"DROP TRIGGER IF EXISTS {name}")
        for statement in statements:
            con.execute(statement)


def hand_digest(data, table, kind, fields, key, ident, extra=(), drop=()) -> str:
    """SHA-256 of {"type": kind, field: value...} as canonical JSON, from the row as SQL returns it. `extra`: fields
    included only when set; `drop`: fields taken as unset (what the row's first entry recorded)."""
    with db(data) as con:
        row = con.execute(f"SELECT * FROM {table} WHERE {key} = ?", (ident,)).fetchone()
    content = {"type": kind, **{f: None if f in drop else row[f] for f in fields}}
    content.update({f: row[f] for f in extra if row[f] and f not in drop})
    if kind == "result":
        content["decision"] = bool(row["decision"])
        for blob in ("maps_npz", "residuals_npz", "faces_npz"):
            content[blob] = None if row[blob] is None else hashlib.sha256(row[blob]).hexdigest()
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def recorded(data, kind, ident) -> list[tuple[int, str]]:
    with db(data) as con:
        rows = con.execute("SELECT id, details FROM audit_log WHERE object_type = ? AND object_id = ? ORDER BY id",
                           (kind, str(ident))).fetchall()
    return [(r["id"], json.loads(r["details"]).get("row_sha256")) for r in rows]


def last_entry(data) -> int:
    with db(data) as con:
        return con.execute("SELECT max(id) FROM audit_log").fetchone()[0]


def png(path, value):
    PILImage.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """One case with every kind of row, saved through the app (built once, copied for each test)."""
    tmp_path = tmp_path_factory.mktemp("integrity")
    data = tmp_path / "data"
    with open_store(data) as st:
        c = st.create_case("C-1", title="Robbery", examiner="Ann", organisation="Lab", notes="n")
        a = st.import_image(png(tmp_path / "a.png", 10), case_id=c.id)
        b = st.import_image(png(tmp_path / "b.png", 200), case_id=c.id)
        cmp = st.add_comparison(c.id, a, b, model_sha256="m" * 64, model_name="tiny", parameters={"tau": 0.3})
        st.save_result(cmp.id, {"score": 0.5, "threshold": 0.3, "decision": True, "parameters": {"tau": 0.3},
                                "maps": {"m": np.ones((2, 2), np.float32)}, "timings": {"t": 1.0}})
        st.set_conclusion(c.id, "support", scale="enfsi", notes="n", author="Ann", comparison_id=cmp.id)
        st.set_feature_assessment(cmp.id, "skin", "similar", "note")
        st.add_annotation(cmp.id, "a", "point", 1, 2, label="mole")
        st.record_image_quality(cmp.id, "a", {"blur": 1.5})
        st.add_review(cmp.id, "agree", "ok", reviewer="Bob")
    return data, a, b


@pytest.fixture
def case(template, tmp_path):
    """(data folder, sha of image A, sha of image B, the open store) of a fresh copy of the template."""
    data = tmp_path / "data"
    shutil.copytree(template[0], data)
    with open_store(data) as st:
        yield data, template[1], template[2], st


@pytest.fixture
def fresh(tmp_path):
    """(data folder, open store) of a new, empty store."""
    with open_store(tmp_path / "data") as st:
        yield tmp_path / "data", st


def append(st, action, case_id=None, **details):
    """An entry written as the app writes one (hash-chained), on any chain, existing case or not."""
    with st.session() as s:
        audit.append(s, action, case_id=case_id, details=details)


def check(store, case_id=1):
    with store.session(write=False) as s:
        return integrity.check_rows(s, case_id)


def test_every_kind_of_row_is_bound_by_a_hand_computed_digest(case):
    data, a, _, st = case
    for table, kind, fields, key in KINDS:
        ident = a if kind == "image" else 1
        expected = hand_digest(data, table, kind, fields, key, ident)
        assert [d for _, d in recorded(data, kind, ident)] == [expected], kind
    assert check(st) is None and check(st, None) is None


FACTS = [
    ("cases", "number", "'C-9'", "case 1"), ("cases", "title", "'x'", "case 1"),
    ("cases", "examiner", "'Mallory'", "case 1"), ("cases", "organisation", "'x'", "case 1"),
    ("cases", "notes", "'x'", "case 1"), ("cases", "created_at", "'2020'", "case 1"),
    ("images", "original_name", "'x.png'", "image "), ("images", "original_path", "'/x'", "image "),
    ("images", "size", "1", "image "), ("images", "width", "9", "image "), ("images", "height", "9", "image "),
    ("images", "format", "'JPEG'", "image "), ("images", "ext", "'.jpg'", "image "),
    ("images", "imported_at", "'2020'", "image "),
    ("comparisons", "face_index_a", "1", "comparison 1"), ("comparisons", "face_index_b", "1", "comparison 1"),
    ("comparisons", "model_sha256", "'n'", "comparison 1"), ("comparisons", "model_name", "'big'", "comparison 1"),
    ("comparisons", "parameters", "'{}'", "comparison 1"), ("comparisons", "created_at", "'2020'", "comparison 1"),
    ("comparisons", "case_id", "2", "comparison 1"),
    ("results", "score", "0.2", "result 1"), ("results", "threshold", "0.9", "result 1"),
    ("results", "decision", "0", "result 1"), ("results", "parameters", "'{}'", "result 1"),
    ("results", "created_at", "'2020'", "result 1"), ("results", "model_sha256", "'n'", "result 1"),
    ("results", "model_name", "'big'", "result 1"), ("results", "timings", "'{}'", "result 1"),
    ("results", "maps_npz", "x'00'", "result 1"), ("results", "residuals_npz", "x'00'", "result 1"),
    ("results", "faces_npz", "x'00'", "result 1"),
    ("conclusions", "text", "'x'", "conclusion 1"), ("conclusions", "scale", "'x'", "conclusion 1"),
    ("conclusions", "notes", "'x'", "conclusion 1"), ("conclusions", "author", "'x'", "conclusion 1"),
    ("conclusions", "created_at", "'2020'", "conclusion 1"), ("conclusions", "comparison_id", "NULL", "conclusion 1"),
    ("feature_assessments", "feature", "'nose'", "feature_assessment 1"),
    ("feature_assessments", "value", "'different'", "feature_assessment 1"),
    ("feature_assessments", "note", "'x'", "feature_assessment 1"),
    ("feature_assessments", "author", "'x'", "feature_assessment 1"),
    ("feature_assessments", "created_at", "'2020'", "feature_assessment 1"),
    ("annotations", "side", "'b'", "annotation 1"), ("annotations", "kind", "'rect'", "annotation 1"),
    ("annotations", "x", "5", "annotation 1"), ("annotations", "y", "5", "annotation 1"),
    ("annotations", "width", "5", "annotation 1"), ("annotations", "height", "5", "annotation 1"),
    ("annotations", "label", "'x'", "annotation 1"), ("annotations", "author", "'x'", "annotation 1"),
    ("annotations", "created_at", "'2020'", "annotation 1"), ("annotations", "removed_at", "'2030'", "annotation 1"),
    ("annotations", "removed_by", "'x'", "annotation 1"),
    ("image_quality", "side", "'b'", "image_quality 1"), ("image_quality", "image_sha256", "'x'", "image_quality 1"),
    ("image_quality", "data", "'{}'", "image_quality 1"), ("image_quality", "created_at", "'2020'", "image_quality 1"),
    ("reviews", "reviewer", "'x'", "review 1"), ("reviews", "verdict", "'disagree'", "review 1"),
    ("reviews", "note", "'x'", "review 1"), ("reviews", "created_at", "'2020'", "review 1"),
]


def test_each_fact_of_each_kind_is_bound(case):
    data, a, _, st = case
    for table, column, value, name in FACTS:
        key = f"sha256 = '{a}'" if table == "images" else "id = 1"
        with db(data) as con:
            old = con.execute(f"SELECT {column} FROM {table} WHERE {key}").fetchone()[0]
        attack(data, f"UPDATE {table} SET {column} = {value} WHERE {key}")
        problem = check(st, None)
        assert problem is not None and problem.startswith(name), (table, column, problem)
        if column != "case_id":
            assert "differs from what audit entry #" in problem and "(the row was changed after it was saved)" in \
                problem, (table, column, problem)
        with db(data) as con:
            con.execute(f"UPDATE {table} SET {column} = ? WHERE {key}", (old,))
    assert check(st, None) is None


def test_status_and_modified_times_are_not_facts(case):
    data, _, _, st = case
    attack(data, "UPDATE cases SET modified_at = '2031'", "UPDATE comparisons SET status = 'done', "
           "status_message = 'x'")
    assert check(st) is None


def test_the_message_names_the_entry_that_recorded_the_row(case):
    data, a, _, st = case
    entry = recorded(data, "result", 1)[0][0]
    attack(data, "UPDATE results SET score = 0.2")
    assert check(st) == (f"result 1 differs from what audit entry #{entry} recorded (the row was changed after it "
                           "was saved)")
    image_entry = recorded(data, "image", a)[0][0]
    attack(data, f"UPDATE images SET size = 1 WHERE sha256 = '{a}'")
    assert check(st) == (f"image {a[:12]}… differs from what audit entry #{image_entry} recorded (the row "
                           "was changed after it was saved)")


def test_rows_are_checked_in_report_order(case):
    """Cases, images, comparisons, results, conclusions, then the examination rows: the first forged is named."""
    data, a, _, st = case
    attack(data, "UPDATE reviews SET note = 'x'", "UPDATE conclusions SET text = 'x'",
           "UPDATE results SET score = 0.1")
    assert check(st).startswith("result 1 ")
    attack(data, "UPDATE comparisons SET model_name = 'x'")
    assert check(st).startswith("comparison 1 ")
    attack(data, f"UPDATE images SET size = 3 WHERE sha256 = '{a}'")
    assert check(st).startswith("image ")
    attack(data, "UPDATE cases SET title = 'x'")
    assert check(st).startswith("case 1 ")


def test_an_immutable_row_must_match_every_entry_a_mutable_one_only_its_latest(case):
    data, _, _, st = case
    right = recorded(data, "result", 1)[0][1]
    st.log_event("note", case_id=1, object_type="result", object_id=1, details={"row_sha256": "0" * 64})
    wrong = last_entry(data)
    st.log_event("note", case_id=1, object_type="result", object_id=1, details={"row_sha256": right})
    assert check(st) == (f"result 1 differs from what audit entry #{wrong} recorded (the row was changed after it "
                           "was saved)")


def test_a_case_edited_through_the_app_matches_its_latest_entry(case):
    data, _, _, st = case
    first = recorded(data, "case", 1)[0][1]
    st.update_case(1, title="Burglary")
    st.set_propositions(1, prosecution="Hp: A is B.")
    digests = [d for _, d in recorded(data, "case", 1)]
    assert digests[0] == first and len(digests) == 3
    assert digests[-1] == hand_digest(data, "cases", "case", CASE, "id", 1,
                                      extra=("proposition_prosecution", "proposition_defence"))
    assert check(st) is None
    attack(data, "UPDATE cases SET proposition_prosecution = 'Hp: A is C.'")
    assert check(st).startswith("case 1 differs from what audit entry #")
    attack(data, "UPDATE cases SET proposition_prosecution = 'Hp: A is B.', proposition_defence = 'Hd: other'")
    assert check(st).startswith("case 1 differs")


def test_schema_4_fields_join_the_digest_only_once_set(case):
    data, _, _, st = case
    unset = hand_digest(data, "comparisons", "comparison", COMPARISON, "id", 1)
    assert recorded(data, "comparison", 1)[0][1] == unset
    st.choose_report_result(1, 1)
    st.remove_comparison(1, "wrong face")
    later = ("removed_at", "removed_reason", "removed_by", "report_result_id")
    digests = [d for _, d in recorded(data, "comparison", 1)]
    assert digests[0] == unset and digests[-1] == hand_digest(data, "comparisons", "comparison", COMPARISON, "id", 1,
                                                              extra=later)
    assert digests[-1] != unset and check(st) is None
    assert hand_digest(data, "comparisons", "comparison", COMPARISON, "id", 1, extra=later, drop=later) == unset
    for column, value in (("removed_reason", "'x'"), ("removed_by", "'x'"), ("removed_at", "'2040'"),
                          ("report_result_id", "NULL")):
        with db(data) as con:
            old = con.execute(f"SELECT {column} FROM comparisons WHERE id = 1").fetchone()[0]
        attack(data, f"UPDATE comparisons SET {column} = {value} WHERE id = 1")
        assert check(st).startswith("comparison 1 differs"), column
        attack(data, f"UPDATE comparisons SET {column} = {old!r} WHERE id = 1")
    assert check(st) is None


def test_a_removed_annotation_matches_its_latest_entry_and_its_first(case):
    data, _, _, st = case
    st.remove_annotation(1)
    digests = [d for _, d in recorded(data, "annotation", 1)]
    assert len(digests) == 2 and digests[0] != digests[1]
    assert digests[0] == hand_digest(data, "annotations", "annotation", ANNOTATION, "id", 1,
                                     drop=("removed_at", "removed_by"))
    assert digests[1] == hand_digest(data, "annotations", "annotation", ANNOTATION, "id", 1)
    assert check(st) is None


def _rebind(st, data, kind, ident, digest):
    st.log_event("rebound", case_id=1, object_type=kind, object_id=ident, details={"row_sha256": digest})
    return last_entry(data)


def test_fixed_fields_changed_and_re_bound_are_caught_against_the_first_entry(case):
    data, a, b, st = case
    first = recorded(data, "comparison", 1)[0][0]
    attack(data, f"UPDATE comparisons SET image_b = '{a}' WHERE id = 1")
    _rebind(st, data, "comparison", 1, hand_digest(data, "comparisons", "comparison", COMPARISON, "id", 1))
    assert check(st) == (f"comparison 1 differs from what audit entry #{first} recorded when it was added (fields "
                           "that never change were changed and re-bound)")
    first_annotation = recorded(data, "annotation", 1)[0][0]
    attack(data, f"UPDATE comparisons SET image_b = '{b}' WHERE id = 1", "UPDATE annotations SET x = 9 WHERE id = 1")
    _rebind(st, data, "comparison", 1, hand_digest(data, "comparisons", "comparison", COMPARISON, "id", 1))
    _rebind(st, data, "annotation", 1, hand_digest(data, "annotations", "annotation", ANNOTATION, "id", 1))
    assert check(st).startswith(f"annotation 1 differs from what audit entry #{first_annotation} recorded when it "
                                  "was added")
    attack(data, "UPDATE annotations SET x = 1 WHERE id = 1")   # back as first saved: the re-binding no longer fits
    assert check(st).startswith("annotation 1 differs from what audit entry #")


def test_a_case_may_change_everything_when_re_bound_through_the_app(case):
    data, _, _, st = case
    attack(data, "UPDATE cases SET number = 'C-2', created_at = '2020'")
    _rebind(st, data, "case", 1, hand_digest(data, "cases", "case", CASE, "id", 1))
    assert check(st) is None


def test_images_are_checked_by_hash_in_a_case_and_by_import_time_in_all(case):
    data, a, b, st = case
    assert b < a                      # image B sorts first by its SHA-256, image A was imported first
    attack(data, "UPDATE images SET size = 1")
    assert check(st, 1).startswith(f"image {b[:12]}… differs")
    assert check(st, None).startswith(f"image {a[:12]}… differs")


def test_another_cases_rows_are_out_of_scope(case):
    data, _, _, st = case
    st.create_case("C-2")
    st.set_conclusion(2, "other")
    attack(data, "UPDATE conclusions SET text = 'forged' WHERE case_id = 2")
    assert check(st, 1) is None
    assert check(st, 2).startswith("conclusion 2 differs") and check(st, None).startswith("conclusion 2 differs")
    assert check(st, 99) is None                       # no such case: nothing in scope, nothing missing


def test_a_row_no_entry_records_is_named(case):
    data, _, _, st = case
    attack(data, "INSERT INTO reviews (comparison_id, reviewer, verdict, note, created_at) "
           "VALUES (1, 'Eve', 'agree', '', '2030')")
    assert check(st) == ("review 2 is not recorded in the audit trail (added behind the app's back, or its entry "
                           "was removed)")


def test_a_rows_binding_counts_only_in_its_own_chain_images_in_any(case, tmp_path):
    data, a, _, st = case
    st.create_case("C-2")
    c = st.import_image(png(tmp_path / "c.png", 99), case_id=2)
    attack(data, "INSERT INTO reviews (comparison_id, reviewer, verdict, note, created_at) "
           "VALUES (1, 'Eve', 'agree', '', '2030')")
    review = hand_digest(data, "reviews", "review", REVIEW, "id", 2)
    st.log_event("forged", case_id=2, object_type="review", object_id=2, details={"row_sha256": review})
    st.log_event("forged", object_type="review", object_id=2, details={"row_sha256": review})
    assert check(st, 1).startswith("review 2 is not recorded") and check(st, None).startswith("review 2 is not")
    _rebind(st, data, "review", 2, review)
    assert check(st, 1) is None and check(st, None) is None
    # an image bound by case 2's chain only is accepted in case 1 (images are shared between cases)
    attack(data, f"INSERT INTO comparisons (case_id, image_a, image_b, face_index_a, face_index_b, model_sha256, "
           f"model_name, parameters, status, created_at) VALUES (1, '{a}', '{c}', 0, 0, NULL, NULL, '{{}}', 'new', "
           "'2030')")
    _rebind(st, data, "comparison", 2, hand_digest(data, "comparisons", "comparison", COMPARISON, "id", 2))
    assert check(st, 1) is None


def test_digests_of_the_wrong_shape_bind_nothing(case):
    data, _, _, st = case
    attack(data, "INSERT INTO reviews (comparison_id, reviewer, verdict, note, created_at) "
           "VALUES (1, 'Eve', 'agree', '', '2030')")
    digest = hand_digest(data, "reviews", "review", REVIEW, "id", 2)
    st.log_event("x", case_id=1, object_type="review", object_id=2, details={"row_sha256": [digest]})
    st.log_event("x", case_id=1, object_type="reviews", object_id=2, details={"row_sha256": digest})
    st.log_event("x", case_id=1, object_type="review", object_id=2, details={"other": digest})
    assert check(st).startswith("review 2 is not recorded")
    attack(data, f"UPDATE audit_log SET details = 'not json' WHERE id = {last_entry(data)}")
    assert check(st).startswith("review 2 is not recorded")
    attack(data, f"UPDATE audit_log SET details = '[1, 2]' WHERE id = {last_entry(data)}")
    assert check(st).startswith("review 2 is not recorded")


@pytest.mark.parametrize("statement, name", [
    ("DELETE FROM results WHERE id = 1", "result 1"),
    ("DELETE FROM reviews WHERE id = 1", "review 1"),
    ("DELETE FROM annotations WHERE id = 1", "annotation 1"),
    ("DELETE FROM cases WHERE id = 1", "case 1"),
])
def test_a_deleted_row_is_named_with_the_entry_that_recorded_it(case, statement, name):
    data, _, _, st = case
    kind, ident = name.split()
    entry = recorded(data, kind, ident)[0][0]
    attack(data, statement)
    expected = (f"{name} is missing: audit entry #{entry} recorded it and the app never deletes rows (deleted behind "
                "the app's back)")
    assert check(st, None) == expected
    if kind != "case":
        assert check(st, 1) == expected


def test_a_deleted_image_is_named_by_its_hash(case, tmp_path):
    data, a, b, st = case
    c = st.import_image(png(tmp_path / "c.png", 99), case_id=1)
    entry = recorded(data, "image", c)[0][0]
    attack(data, f"DELETE FROM images WHERE sha256 = '{c}'")
    assert check(st, 1) == (f"image {c[:12]}… is missing: audit entry #{entry} recorded it and the app never "
                              "deletes rows (deleted behind the app's back)")


def test_a_row_deleted_from_another_case_is_not_this_cases_problem(case):
    data, _, _, st = case
    st.create_case("C-2")
    st.set_conclusion(2, "other")
    attack(data, "DELETE FROM conclusions WHERE case_id = 2")
    assert check(st, 1) is None
    assert check(st, 2).startswith("conclusion 2 is missing") and check(st, None).startswith("conclusion 2 is")


def test_an_image_imported_into_a_case_but_in_no_comparison_is_not_missing(case, tmp_path):
    data, _, _, st = case
    st.import_image(png(tmp_path / "unused.png", 50), case_id=1)
    assert check(st, 1) is None and check(st, None) is None


@pytest.mark.parametrize("statement, name", [
    ("UPDATE conclusions SET case_id = 2 WHERE id = 1", "conclusion 1"),
    ("UPDATE results SET comparison_id = 99 WHERE id = 1", "result 1"),
    ("UPDATE reviews SET comparison_id = 99 WHERE id = 1", "review 1"),
])
def test_a_row_moved_out_of_its_case_is_named(case, statement, name):
    """Moving a row away hides it from the case's report as deleting it would: both are named."""
    data, _, _, st = case
    st.create_case("C-2")
    entry = recorded(data, *name.split())[0][0]
    attack(data, statement)
    expected = f"{name} no longer belongs where audit entry #{entry} recorded it (moved behind the app's back)"
    assert check(st, 1) == expected
    if name != "conclusion 1":          # a conclusion moved to case 2 is in case 2's scope, unbound there
        assert check(st, None) == expected
    else:
        assert check(st, None).startswith("conclusion 1 is not recorded in the audit trail")


@pytest.mark.parametrize("key", ["result:x", "nothing:1", "result:99", "result:1:2"])
def test_a_bound_key_that_names_no_row_is_missing(fresh, key):
    data, st = fresh
    append(st, integrity.ADOPT_ACTION, rows={key: "0" * 64})
    kind, ident = key.split(":", 1)
    assert check(st, None) == (f"{kind} {ident} is missing: audit entry #{last_entry(data)} recorded it and the "
                                 "app never deletes rows (deleted behind the app's back)")


def test_adopted_rows_of_the_wrong_shape_bind_nothing(fresh):
    data, st = fresh
    append(st, integrity.ADOPT_ACTION, rows={"result:77": 5})
    append(st, integrity.ADOPT_ACTION, case_id=3, rows=["result:78", "0" * 64])
    assert check(st, None) is None            # a bound result:77 or result:78 would be reported missing


def test_adoptions_are_once_per_chain_and_before_any_digest(fresh):
    data, st = fresh
    append(st, integrity.ADOPT_ACTION, rows={})
    system = last_entry(data)
    append(st, integrity.ADOPT_ACTION, case_id=7, rows={})
    seven = last_entry(data)
    assert check(st, None) is None
    with st.session(write=False) as s:
        assert integrity.adoptions(s, None) == [system, seven]
        assert integrity.adoptions(s, 7) == [system, seven] and integrity.adoptions(s, 3) == [system]
    append(st, integrity.ADOPT_ACTION, case_id=7, rows={})
    again = last_entry(data)
    message = (f"audit entry #{again} (integrity.adopted) was not written by the schema upgrade: rows are adopted "
               "once per chain, before any entry records a digest")
    assert check(st, None) == message
    with st.session(write=False) as s:
        assert integrity.check_rows(s, 7) == message
        assert integrity.check_rows(s, 8) is None          # another chain's forgery is not this case's
        assert integrity.adoptions(s, None) == [system, seven]


def test_an_adoption_after_a_digest_is_forged_even_on_a_new_chain(case):
    data, _, _, st = case
    append(st, integrity.ADOPT_ACTION, case_id=5, rows={})
    entry = last_entry(data)
    assert check(st, None) == (f"audit entry #{entry} (integrity.adopted) was not written by the schema upgrade: "
                                 "rows are adopted once per chain, before any entry records a digest")
    append(st, integrity.ADOPT_ACTION, rows={})
    assert check(st, 1).startswith(f"audit entry #{last_entry(data)} (integrity.adopted)")   # system chain: in scope


def _unbound_case(data, st, tmp_path):
    """A case whose rows no digest entry binds (as before schema 3): written with plain SQL."""
    append(st, "store.opened")
    img = png(tmp_path / "a.png", 10)
    sha = hashlib.sha256(img.read_bytes()).hexdigest()
    with db(data) as con:
        con.execute("INSERT INTO cases (number, title, examiner, organisation, notes, created_at, modified_at) "
                    "VALUES ('OLD-1', 't', 'Ann', '', '', '2020', '2020')")
        con.execute("INSERT INTO images (sha256, original_name, original_path, size, width, height, format, ext, "
                    f"imported_at) VALUES ('{sha}', 'a.png', '/a.png', 77, 8, 8, 'PNG', '.png', '2020')")
        con.execute("INSERT INTO comparisons (case_id, image_a, image_b, face_index_a, face_index_b, parameters, "
                    f"status, created_at) VALUES (1, '{sha}', '{sha}', 0, 0, '{{}}', 'done', '2020')")
        con.execute("INSERT INTO results (comparison_id, created_at, parameters, score, threshold, decision, timings) "
                    "VALUES (1, '2020', '{}', 0.5, 0.3, 1, '{}')")
        con.execute("INSERT INTO conclusions (case_id, comparison_id, text, scale, notes, author, created_at) "
                    "VALUES (1, NULL, 'c', NULL, '', 'Ann', '2020')")
        con.execute("INSERT INTO reviews (comparison_id, reviewer, verdict, note, created_at) "
                    "VALUES (1, 'Bob', 'agree', '', '2020')")
    return data, sha


def test_the_upgrade_adopts_unbound_rows_on_their_own_chains(fresh, tmp_path):
    data, st = fresh
    data, sha = _unbound_case(data, st, tmp_path)
    assert check(st, None) == "case 1 is not recorded in the audit trail (added behind the app's back, or its " \
                                "entry was removed)"
    with st.session() as s:
        integrity.adopt_existing_rows(s)
    with db(data) as con:
        rows = con.execute("SELECT case_id, actor, action, details FROM audit_log WHERE action = "
                           "'integrity.adopted' ORDER BY id").fetchall()
    adopted = {r["case_id"]: (r["actor"], json.loads(r["details"])) for r in rows}
    assert set(adopted) == {1, None}
    assert adopted[1] == ("xfr-upgrade", {"rows": {
        "case:1": hand_digest(data, "cases", "case", CASE, "id", 1),
        "comparison:1": hand_digest(data, "comparisons", "comparison", COMPARISON, "id", 1),
        "result:1": hand_digest(data, "results", "result", RESULT, "id", 1),
        "conclusion:1": hand_digest(data, "conclusions", "conclusion", CONCLUSION, "id", 1),
        "review:1": hand_digest(data, "reviews", "review", REVIEW, "id", 1)}})
    assert adopted[None] == ("xfr-upgrade", {"rows": {
        f"image:{sha}": hand_digest(data, "images", "image", IMAGE, "sha256", sha)}})
    assert check(st, None) is None and check(st, 1) is None
    attack(data, "UPDATE results SET score = 0.9")
    assert check(st, 1).startswith("result 1 differs from what audit entry #")


def test_the_upgrade_leaves_rows_already_bound_alone(case):
    data, _, _, st = case
    before = last_entry(data)
    with st.session() as s:
        integrity.adopt_existing_rows(s)
    assert last_entry(data) == before


def test_evidence_files_missing_or_replaced_are_named(case):
    data, a, b, st = case

    def files(case_id=1):
        with st.session(write=False) as s:
            return integrity.check_files(s, case_id, st.images_dir)

    assert files() is None and files(None) is None
    path = data / "images" / a[:2] / f"{a}.png"
    assert path.is_file()
    original = path.read_bytes()
    path.write_bytes(original + b"\0")
    assert files() == f"the evidence file {path} does not match its recorded SHA-256 {a[:12]}… (replaced or damaged)"
    path.unlink()
    assert files(None) == (f"the evidence file {path} of image {a[:12]}… is missing, unreadable or not a regular file "
                           "(No such file or directory)")
    path.write_bytes(original)
    st.create_case("C-2")
    c = st.import_image(png(data.parent / "c.png", 99), case_id=2)
    st.add_comparison(2, c, c)
    (data / "images" / c[:2] / f"{c}.png").write_bytes(b"damaged")
    assert files(1) is None                                    # case 2's evidence is not case 1's
    assert files(2).startswith("the evidence file ") and files(None).startswith("the evidence file ")
    other = data / "images" / b[:2] / f"{b}.png"
    other.write_bytes(b"x")
    assert files().startswith(f"the evidence file {other} does not match")


def test_key_and_kind_of_rows(case):
    data, a, _, st = case
    from xfr_desktop.store.schema import Image, Result

    with st.session(write=False) as s:
        assert integrity.row_key(s.get(Image, a)) == f"image:{a}"
        assert integrity.row_key(s.get(Result, 1)) == "result:1"
        assert integrity.row_digest(s.get(Result, 1)) == hand_digest(data, "results", "result", RESULT, "id", 1)
