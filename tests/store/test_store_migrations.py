"""Schema versions: a database written by an older XFR Desktop (raw SQL of schema v1) opens and upgrades."""
from __future__ import annotations

import hashlib
import sqlite3

import numpy as np
import pytest

from xfr_desktop.core.errors import StoreError
from xfr_desktop.store import SCHEMA_VERSION, open_store, pack_arrays
from xfr_desktop.store.audit import GENESIS_HASH, canonical_json, entry_hash
from xfr_desktop.store.migrations import SCHEMA_V1_SQL, upgrade_statements
from xfr_desktop.store.schema import Base

NOW = "2025-01-02T03:04:05.000000+00:00"
OLD_IMAGE = b"old evidence bytes"
SHA = hashlib.sha256(OLD_IMAGE).hexdigest()


def make_v1_database(path):
    """What XFR Desktop with schema 1 wrote: tables, one case with a result, a conclusion and its audit chain."""
    path.parent.mkdir(parents=True, exist_ok=True)
    evidence = path.parent / "images" / SHA[:2] / f"{SHA}.jpg"
    evidence.parent.mkdir(parents=True)
    evidence.write_bytes(OLD_IMAGE)
    con = sqlite3.connect(path)
    for statement in SCHEMA_V1_SQL:
        con.execute(statement)
    maps = pack_arrays({"a": {"H": np.full((4, 4), 0.5, np.float32)}, "b": {"H": np.zeros((4, 4), np.float32)}})
    con.execute("INSERT INTO cases VALUES (1, 'OLD-1', 'Old case', 'Examiner', 'Lab', 'notes', ?, ?)", (NOW, NOW))
    con.execute("INSERT INTO images VALUES (?, 'a.jpg', '/old/a.jpg', 10, 4, 4, 'JPEG', '.jpg', ?)", (SHA, NOW))
    con.execute("INSERT INTO comparisons VALUES (1, 1, ?, ?, 0, 0, ?, 'old model', '{}', 'done', ?)",
                (SHA, SHA, "m" * 64, NOW))
    con.execute("INSERT INTO results VALUES (1, 1, ?, '{\"threshold\":0.3}', 0.8, 0.3, 1, ?, '{}', ?, ?)",
                (NOW, "m" * 64, maps, b"residual bytes"))
    con.execute("INSERT INTO conclusions VALUES (1, 1, 1, 'Support', 'ENFSI', '', 'Examiner', ?)", (NOW,))
    prev = GENESIS_HASH
    for i, action in enumerate(["case.created", "analysis.saved"], start=1):
        details = canonical_json({"n": i})
        digest = entry_hash(prev, NOW, "examiner", action, 1, "case", "1", details)
        con.execute("INSERT INTO audit_log VALUES (?, ?, 'examiner', ?, 1, 'case', '1', ?, ?, ?)",
                    (i, NOW, action, details, prev, digest))
        prev = digest
    con.commit()
    con.close()
    return maps


def table_columns(db_path) -> dict[str, list[str]]:
    con = sqlite3.connect(db_path)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {t: sorted(r[1] for r in con.execute(f"PRAGMA table_info({t})")) for t in tables}
    finally:
        con.close()


def test_v1_database_upgrades_without_losing_data(tmp_path):
    data = tmp_path / "data"
    maps = make_v1_database(data / "xfr.sqlite")
    assert SCHEMA_VERSION == 4
    with open_store(data) as store:
        assert store.schema_version() == 4
        case = store.get_case(1)
        assert (case.number, case.title, case.n_comparisons) == ("OLD-1", "Old case", 1)
        old = store.latest_result(1)
        assert old.score == 0.8 and old.maps_npz == maps and old.residuals == b"residual bytes"
        assert old.faces_npz is None and old.model_name is None  # v2 columns exist, empty for old rows
        assert store.latest_conclusion(1, comparison_id=1).text == "Support"
        assert store.latest_conclusion(1) is None  # a comparison note is not the case conclusion
        # the upgrade adopted the old rows: one entry on the case's chain, one (the image) on the system chain
        assert store.verify_audit().ok and store.verify_audit().n_entries == 4
        # the new columns work and the old audit chain continues
        store.set_comparison_status(1, "done", "re-checked")
        new = store.save_result(1, {"score": 0.7, "threshold": 0.3, "decision": True, "model_name": "new",
                                    "faces": {"a": {"box": np.array([1.0, 2.0, 3.0, 4.0])}}})
        assert store.get_result(new.id).faces()["a"]["box"].tolist() == [1.0, 2.0, 3.0, 4.0]
        assert store.get_comparison(1).status_message == "re-checked"
        assert store.verify_audit(1).ok and store.verify_audit(1).n_entries == 4
    backup = data / "xfr.sqlite.v1.bak"
    assert backup.is_file()
    with sqlite3.connect(backup) as con:
        assert con.execute("SELECT version FROM schema_version").fetchone() == (1,)
        assert con.execute("SELECT number FROM cases").fetchall() == [("OLD-1",)]
    with open_store(data) as store:  # reopening does nothing more
        assert store.schema_version() == 4 and len(store.list_results(1)) == 2


def test_upgraded_and_fresh_databases_have_the_same_tables_as_the_orm(tmp_path):
    make_v1_database(tmp_path / "old" / "xfr.sqlite")
    open_store(tmp_path / "old").close()
    open_store(tmp_path / "new").close()
    upgraded = table_columns(tmp_path / "old" / "xfr.sqlite")
    fresh = table_columns(tmp_path / "new" / "xfr.sqlite")
    assert upgraded == fresh
    orm = {name: sorted(c.name for c in table.columns) for name, table in Base.metadata.tables.items()}
    assert {t: cols for t, cols in fresh.items() if t != "schema_version"} == {
        t: cols for t, cols in orm.items() if t != "schema_version"}
    with sqlite3.connect(tmp_path / "old" / "xfr.sqlite") as con:  # triggers came along
        triggers = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    assert triggers == {"audit_log_no_update", "audit_log_no_delete", "audit_checkpoints_no_update",
                        "audit_checkpoints_no_delete"}


def test_newer_or_foreign_databases_are_refused_untouched(tmp_path):
    newer = tmp_path / "newer"
    open_store(newer).close()
    with sqlite3.connect(newer / "xfr.sqlite") as con:
        con.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match="newer XFR Desktop"):
        open_store(newer)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / "xfr.sqlite") as con:
        con.execute("CREATE TABLE something (x)")
    with pytest.raises(StoreError, match="not an XFR Desktop database"):
        open_store(foreign)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "xfr.sqlite").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="damaged or not an XFR database"):
        open_store(garbage)
    assert (garbage / "xfr.sqlite").read_bytes() == b"this is not sqlite at all" * 100


def test_empty_v1_database_from_helper_upgrades(tmp_path):
    from xfr_desktop.store.migrations import create_database_at_version

    (tmp_path / "d").mkdir()
    create_database_at_version(tmp_path / "d" / "xfr.sqlite", 1)
    with sqlite3.connect(tmp_path / "d" / "xfr.sqlite") as con:
        assert con.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
        assert "faces_npz" not in {r[1] for r in con.execute("PRAGMA table_info(results)")}
    with open_store(tmp_path / "d") as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.create_case("N-1").id == 1


# What schema 3 digested per row (store/integrity.py at schema 3), written out here as the reference.
V3_FIELDS = {
    "case": ("number", "title", "examiner", "organisation", "notes", "created_at"),
    "image": ("sha256", "original_name", "original_path", "size", "width", "height", "format", "ext",
              "imported_at"),
    "comparison": ("case_id", "image_a", "image_b", "face_index_a", "face_index_b", "model_sha256", "model_name",
                   "parameters", "created_at"),
    "result": ("comparison_id", "created_at", "parameters", "score", "threshold", "model_sha256", "model_name",
               "timings"),
}


def make_v3_database(path):
    """What XFR Desktop with schema 3 wrote: a case, image, comparison and result, each bound to its entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    evidence = path.parent / "images" / SHA[:2] / f"{SHA}.jpg"
    evidence.parent.mkdir(parents=True)
    evidence.write_bytes(OLD_IMAGE)
    rows = {
        "case": dict(id=1, number="OLD-3", title="v3 case", examiner="Examiner", organisation="Lab", notes="",
                     created_at=NOW, modified_at=NOW),
        "image": dict(sha256=SHA, original_name="a.jpg", original_path="/old/a.jpg", size=len(OLD_IMAGE), width=4,
                      height=4, format="JPEG", ext=".jpg", imported_at=NOW),
        "comparison": dict(id=1, case_id=1, image_a=SHA, image_b=SHA, face_index_a=0, face_index_b=0,
                           model_sha256="m" * 64, model_name="old", parameters="{}", status="done",
                           created_at=NOW, status_message=None),
        "result": dict(id=1, comparison_id=1, created_at=NOW, parameters='{"threshold":0.3}', score=0.8,
                       threshold=0.3, decision=1, model_sha256="m" * 64, timings="{}", maps_npz=None,
                       residuals_npz=None, faces_npz=None, model_name="old"),
    }
    con = sqlite3.connect(path)
    for statement in upgrade_statements(0, 3):
        con.execute(statement)
    tables = {"case": "cases", "image": "images", "comparison": "comparisons", "result": "results"}
    heads = {}
    for kind, row in rows.items():
        con.execute(f"INSERT INTO {tables[kind]} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                    tuple(row.values()))
        content = {"type": kind, **{f: row[f] for f in V3_FIELDS[kind]}}
        if kind == "result":
            content.update(decision=True, maps_npz=None, residuals_npz=None, faces_npz=None)
        digest = hashlib.sha256(canonical_json(content).encode()).hexdigest()
        chain = None if kind == "image" else 1
        object_id = SHA if kind == "image" else "1"
        details = canonical_json({"row_sha256": digest})
        prev = heads.get(chain, GENESIS_HASH)
        heads[chain] = entry_hash(prev, NOW, "examiner", f"{kind}.saved", chain, kind, object_id, details)
        con.execute("INSERT INTO audit_log (time, actor, action, case_id, object_type, object_id, details, "
                    "prev_hash, hash) VALUES (?, 'examiner', ?, ?, ?, ?, ?, ?, ?)",
                    (NOW, f"{kind}.saved", chain, kind, object_id, details, prev, heads[chain]))
    con.commit()
    con.close()


def test_v3_database_upgrades_to_the_examination_tables(tmp_path):
    """A schema-3 database (raw SQL of the released steps, rows bound by schema 3's digests) gains the schema-4
    tables; its rows still verify against the digests schema 3 recorded, and it takes the new facts."""
    data = tmp_path / "d"
    make_v3_database(data / "xfr.sqlite")
    assert "reviews" not in table_columns(data / "xfr.sqlite")
    with open_store(data) as store:
        assert store.schema_version() == 4
        assert store.verify_audit(1).ok, store.verify_audit(1).message
        comparison = store.get_comparison(1)
        assert comparison.removed_at is None and comparison.report_result_id is None
        assert store.get_case(1).proposition_prosecution == ""
        assert store.report_result(1).id == 1
        store.set_feature_assessment(1, "nose", "similar", "same profile", author="Examiner B")
        store.add_review(1, "agree", "checked", reviewer="Reviewer C")
        store.set_propositions(1, prosecution="The man in A is the man in B.")
        store.remove_comparison(1, "duplicate of another pair", actor="Examiner B")
        assert store.verify_audit(1).ok, store.verify_audit(1).message
        assert [r.reviewer for r in store.list_reviews(1)] == ["Reviewer C"]
        assert store.get_comparison(1).removed_reason == "duplicate of another pair"
    with sqlite3.connect(data / "xfr.sqlite.v3.bak") as con:
        assert con.execute("SELECT version FROM schema_version").fetchone() == (3,)
