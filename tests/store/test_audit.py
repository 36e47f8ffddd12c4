"""The tamper-evident audit trail: hash chain, append-only triggers, verification naming the first broken entry."""
from __future__ import annotations

import hashlib
import json
import sqlite3

import numpy as np
import pytest
from PIL import Image

from xfr_desktop.cli import main as xfr_main
from xfr_desktop.core.errors import StoreError
from xfr_desktop.store import canonical_json, open_store
from xfr_desktop.store.audit import GENESIS_HASH


@pytest.fixture
def populated(tmp_path):
    """A store with two cases; case 1 has an import, a comparison, two results, a conclusion and an export."""
    data = tmp_path / "data"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    with open_store(data) as store:
        case = store.create_case("A-1", "Audit case", "Examiner")
        other = store.create_case("A-2", "Other case")
        sha = store.import_image(tmp_path / "a.png", case.id)
        comparison = store.add_comparison(case.id, sha, sha)
        store.save_result(comparison.id, {"score": 0.9, "threshold": 0.3, "decision": True,
                                          "parameters": {"threshold": 0.3}})
        store.save_result(comparison.id, {"score": 0.9, "threshold": 0.95, "decision": False,
                                          "parameters": {"threshold": 0.95}})
        store.set_conclusion(case.id, "Support", author="Examiner")
        store.log_event("report.exported", case_id=case.id, object_type="report", object_id="r.pdf",
                        details={"file": "r.pdf", "sha256": "00" * 32, "size": np.int64(1234)})
        store.log_event("report.exported", case_id=other.id, details={"file": "o.pdf"})
    return data, case.id, other.id


def raw(data):
    return sqlite3.connect(data / "xfr.sqlite")


def drop_triggers(con):
    con.execute("DROP TRIGGER audit_log_no_update")
    con.execute("DROP TRIGGER audit_log_no_delete")


def test_chain_is_sha256_of_previous_hash_and_canonical_entry(populated):
    data, case_id, _ = populated
    with open_store(data) as store:
        entries = store.list_audit(case_id)
    assert [e.action for e in entries] == ["case.created", "image.imported", "comparison.added", "analysis.saved",
                                           "parameters.saved", "conclusion.edited", "report.exported"]
    prev = "0" * 64                      # the genesis link, pinned (docs/integrity.md)
    for e in entries:
        entry = {"time": e.time, "actor": e.actor, "action": e.action, "case_id": e.case_id,
                 "object_type": e.object_type, "object_id": e.object_id, "details": e.details}
        canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert e.prev_hash == prev
        assert e.hash == hashlib.sha256((prev + canonical).encode()).hexdigest()
        assert e.details == canonical_json(json.loads(e.details))  # stored canonical
        prev = e.hash
    assert entries[-1].details_dict == {"file": "r.pdf", "sha256": "00" * 32, "size": 1234}
    assert entries[4].details_dict["previous_parameters"] == {"threshold": 0.3}


def test_updates_and_deletes_are_refused(populated):
    data, case_id, _ = populated
    with raw(data) as con:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            con.execute("UPDATE audit_log SET actor = 'mallory' WHERE id = 1")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            con.execute("DELETE FROM audit_log WHERE id = 2")
    with open_store(data) as store:
        from sqlalchemy import text

        with pytest.raises(StoreError, match="append-only"):
            with store.session() as s:
                s.execute(text("DELETE FROM audit_log"))
        assert store.verify_audit().ok and store.verify_audit().n_entries == 9


def test_altered_entry_is_found_and_named(populated, capsys):
    data, case_id, other_id = populated
    with open_store(data) as store:
        target = store.list_audit(case_id)[3]  # analysis.saved
    with raw(data) as con:
        drop_triggers(con)
        con.execute("UPDATE audit_log SET details = replace(details, '0.9', '0.1') WHERE id = ?", (target.id,))
    with open_store(data) as store:
        verification = store.verify_audit(case_id)
        assert not verification.ok and verification.first_broken.id == target.id
        assert "altered" in verification.reason and f"#{target.id}" in verification.message
        assert store.verify_audit(other_id).ok  # the other case's chain is unaffected
        assert store.verify_audit().first_broken.id == target.id
    assert xfr_main(["--data-dir", str(data), "audit", "verify", "--case", "A-1"]) == 1
    err = capsys.readouterr().err
    assert f"entry #{target.id}" in err and "analysis.saved" in err
    assert xfr_main(["--data-dir", str(data), "audit", "verify", "--case", "A-2"]) == 0
    assert capsys.readouterr().out.strip() == "chain intact for case 2: 2 entries"


def test_rehashed_or_deleted_entries_break_the_next_link(populated):
    data, case_id, _ = populated
    with open_store(data) as store:
        entries = store.list_audit(case_id)
    from xfr_desktop.store import entry_hash

    # A forger who also recomputes the altered entry's own hash is caught at the following entry.
    e = entries[5]
    forged_details = canonical_json({"comparison_id": None, "notes": "", "scale": None, "text": "No support"})
    forged_hash = entry_hash(e.prev_hash, e.time, e.actor, e.action, e.case_id, e.object_type, e.object_id,
                             forged_details)
    with raw(data) as con:
        drop_triggers(con)
        con.execute("UPDATE audit_log SET details = ?, hash = ? WHERE id = ?", (forged_details, forged_hash, e.id))
    with open_store(data) as store:
        verification = store.verify_audit(case_id)
        assert verification.first_broken.id == entries[6].id and "link" in verification.reason
    # Removing an entry from the middle breaks the link of the one after it.
    with raw(data) as con:
        con.execute("DELETE FROM audit_log WHERE id = ?", (entries[1].id,))
    with open_store(data) as store:
        verification = store.verify_audit(case_id)
        assert verification.first_broken.id == entries[2].id
        assert f"entry #{entries[0].id}" in verification.reason


def chain_intact_by_hashlib(entries, genesis="0" * 64) -> bool:
    """An independent verifier: every entry links to the previous hash (the first to the genesis hash) and its
    hash is sha256(prev || canonical JSON of the entry)."""
    prev = genesis
    for e in entries:
        entry = {"time": e.time, "actor": e.actor, "action": e.action, "case_id": e.case_id,
                 "object_type": e.object_type, "object_id": e.object_id, "details": e.details}
        canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if e.prev_hash != prev or e.hash != hashlib.sha256((prev + canonical).encode()).hexdigest():
            return False
        prev = e.hash
    return True


@pytest.mark.parametrize("chain", ["case", "system"])
def test_deleting_a_chains_first_entry_is_found(populated, capsys, chain):
    """The first entry must link to the genesis hash: without that check a chain whose first entry was deleted
    (or that starts mid-way) would read "chain intact"."""
    data, case_id, _ = populated
    scope = case_id if chain == "case" else None
    with open_store(data) as store:
        for version in ("1", "2"):
            store.log_event("app.started", details={"version": version})   # the system chain (case_id NULL)
        entries = [e for e in store.list_audit(scope) if e.case_id == scope]
    assert chain_intact_by_hashlib(entries) and not chain_intact_by_hashlib(entries[1:])
    with raw(data) as con:
        drop_triggers(con)
        con.execute("DELETE FROM audit_log WHERE id = ?", (entries[0].id,))
    with open_store(data) as store:
        verification = store.verify_audit(scope)
        assert not verification.ok and verification.first_broken.id == entries[1].id
        assert "start of the chain" in verification.reason
        assert not store.verify_audit().ok
    args = ["--case", "A-1"] if chain == "case" else []
    assert xfr_main(["--data-dir", str(data), "audit", "verify", *args]) == 1
    assert "chain broken" in capsys.readouterr().err


def test_cli_audit_verify_intact_and_list(populated, capsys):
    data, case_id, _ = populated
    assert xfr_main(["--data-dir", str(data), "audit", "verify"]) == 0
    assert capsys.readouterr().out.strip() == "chain intact: 9 entries"
    assert xfr_main(["--data-dir", str(data), "audit", "list", "--case", str(case_id), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 7 and listed[-1]["action"] == "report.exported"
    assert listed[1]["prev_hash"] == listed[0]["hash"]


def test_log_event_checks_its_input(tmp_path):
    with open_store(tmp_path / "d") as store:
        with pytest.raises(StoreError, match="no case"):
            store.log_event("report.signed", case_id=7)
        with pytest.raises(StoreError, match="needs an action"):
            store.log_event("")
        odd = store.log_event("x", details={"nan": float("nan"), "inf": np.float32("inf"), 3: np.arange(2)})
        assert odd.details == '{"3":[0,1],"inf":"Infinity","nan":"NaN"}'
        with pytest.raises(StoreError, match="JSON"):
            store.log_event("x", details={"bad": object()})
        record = store.log_event("app.started", details={"version": "0.1.0"})
        assert record.case_id is None and odd.prev_hash == GENESIS_HASH and record.prev_hash == odd.hash
        assert store.verify_audit().ok and store.verify_audit().n_entries == 2
    assert GENESIS_HASH == "0" * 64


def test_stored_and_canonical_json_are_exact():
    """The bytes that get hashed or stored: sorted keys, no spaces, UTF-8 kept, paths/bytes/sets made plain;
    canonical JSON writes non-finite numbers as strings, stored JSON keeps them as numbers (json.loads reads them)."""
    from pathlib import PurePosixPath

    from xfr_desktop.store.audit import stored_json

    value = {"b": float("nan"), "a": [1, np.int64(2)], "é": PurePosixPath("x/y"), "s": {2, 1}, "raw": b"\x01\xff",
             "inf": float("-inf")}
    assert stored_json(value) == '{"a":[1,2],"b":NaN,"inf":-Infinity,"raw":"01ff","s":[1,2],"é":"x/y"}'
    assert canonical_json(value) == '{"a":[1,2],"b":"NaN","inf":"-Infinity","raw":"01ff","s":[1,2],"é":"x/y"}'
    assert stored_json(None) == "{}" and stored_json({}) == "{}"
    assert stored_json({"m": np.array([[np.nan, 1.5]])}) == '{"m":[[NaN,1.5]]}'          # numpy arrays too
    assert canonical_json({"m": np.array([np.inf])}) == '{"m":["Infinity"]}'
    with pytest.raises(StoreError, match="^parameters cannot be stored as JSON: object is not JSON-serializable"):
        stored_json({"x": object()})
    with pytest.raises(StoreError, match="^audit details cannot be recorded as JSON: object is not"):
        canonical_json({"x": object()})


def test_actor_falls_back_to_the_user_variable(monkeypatch):
    """Containers often have no passwd entry: the actor is then $USER, else "unknown" (never an exception)."""
    import getpass

    from xfr_desktop.store.audit import default_actor

    def no_user():
        raise KeyError("getpwuid(): uid not found")

    monkeypatch.setattr(getpass, "getuser", no_user)
    monkeypatch.setenv("USER", "examiner7")
    assert default_actor() == "examiner7"
    monkeypatch.delenv("USER")
    assert default_actor() == "unknown"
