"""Issue 13, attacks 1-3: forged rows, a swapped evidence photo and a rewritten, truncated or emptied audit trail
are caught by `xfr audit verify` (naming the row, file or entry) and `xfr report` refuses to build on them.
Every attack goes through the public command line, as someone with file access to the data folder would."""
from __future__ import annotations

import io
import sqlite3

import numpy as np
import pytest
from PIL import Image

from xfr_desktop.cli import main as xfr_main
from xfr_desktop.report.signing import create_identity
from xfr_desktop.store import entry_hash, open_store

PASS = "correct horse battery"


@pytest.fixture
def case_dir(tmp_path, tiny_model):
    from tests.report.test_report import analysed_case

    data = tmp_path / "data"
    with open_store(data) as store:
        case, sha_a, _, _ = analysed_case(store, tiny_model, tmp_path)
        evidence = store.image_path(sha_a)
    return data, case, evidence


@pytest.fixture
def key(tmp_path, monkeypatch):
    monkeypatch.setenv("XFR_PW", PASS)
    return create_identity("Jane Examiner", tmp_path / "jane.p12", PASS)


def xfr(data, *args) -> int:
    return xfr_main(["--data-dir", str(data), *args])


def sql(data, *statements, drop_triggers=False):
    with sqlite3.connect(data / "xfr.sqlite") as con:
        if drop_triggers:  # what an attacker with file access does first
            for name in ("audit_log_no_update", "audit_log_no_delete", "audit_checkpoints_no_update",
                         "audit_checkpoints_no_delete"):
                con.execute(f"DROP TRIGGER IF EXISTS {name}")
        for statement in statements:
            con.execute(statement)


def refused(data, case, tmp_path, capsys, needle) -> None:
    """`audit verify` exits 1 naming `needle`; `report` exits non-zero, says why and writes nothing."""
    capsys.readouterr()
    assert xfr(data, "audit", "verify", "--case", case.number) == 1
    err = capsys.readouterr().err
    assert needle in err, err
    out = tmp_path / "report.pdf"
    assert xfr(data, "report", "--case", case.number, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "fails verification" in err and needle in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("statement, needle", [
    ("UPDATE results SET score = 0.20, decision = 0 WHERE id = 1", "result 1"),
    ("UPDATE cases SET examiner = 'Mallory' WHERE id = 1", "case 1"),
    ("UPDATE conclusions SET text = 'Strong support for the same person' WHERE id = 1", "conclusion 1"),
    ("UPDATE comparisons SET image_b = image_a WHERE id = 1", "comparison 1"),
    ("UPDATE images SET original_name = 'other.jpg'", "image "),
    ("INSERT INTO results (comparison_id, created_at, parameters, score, threshold, decision, timings) "
     "VALUES (1, '2030-01-01', '{}', 0.99, 0.3, 1, '{}')", "result 2 is not recorded"),
])
def test_forged_rows_are_named_and_reports_refused(case_dir, tmp_path, capsys, statement, needle):
    data, case, _ = case_dir
    assert xfr(data, "audit", "verify", "--case", case.number) == 0
    sql(data, statement)
    refused(data, case, tmp_path, capsys, needle)


def test_swapped_evidence_photo_is_named(case_dir, tmp_path, capsys):
    data, case, evidence = case_dir
    evidence.chmod(0o600)
    Image.fromarray(np.full((150, 130, 3), 7, np.uint8)).save(evidence, format="JPEG")
    refused(data, case, tmp_path, capsys, str(evidence))


def test_report_states_the_verified_chain_head(case_dir, tmp_path, key):
    pypdf = pytest.importorskip("pypdf")
    data, case, _ = case_dir
    with open_store(data) as store:
        head = store.list_audit(case.id)[-1].hash
    out = tmp_path / "r.pdf"
    assert xfr(data, "report", "--case", case.number, "--out", str(out), "--sign", str(key[0]),
               "--passphrase-env", "XFR_PW") == 0
    text = "".join("".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(out.read_bytes())).pages).split())
    assert f"verifiedchainhead{head}" in text
    # signing the report also signed a checkpoint of the chain head
    with open_store(data) as store:
        assert store.list_audit(case.id)[-1].action == "audit.checkpoint"
        assert "last checkpoint" in store.verify_audit(case.id).message


def _rechain(data, case_id, from_index):
    """Rewrite one entry and recompute every later hash with the app's own function: an unkeyed chain cannot tell."""
    with sqlite3.connect(data / "xfr.sqlite") as con:
        rows = con.execute("SELECT id, time, actor, action, case_id, object_type, object_id, details FROM audit_log "
                           "WHERE case_id = ? ORDER BY id", (case_id,)).fetchall()
        con.execute("DROP TRIGGER audit_log_no_update")
        prev = con.execute("SELECT prev_hash FROM audit_log WHERE id = ?", (rows[from_index][0],)).fetchone()[0]
        for i, (entry_id, time, actor, action, cid, otype, oid, details) in enumerate(rows[from_index:]):
            if i == 0:
                actor = "mallory"
            digest = entry_hash(prev, time, actor, action, cid, otype, oid, details)
            con.execute("UPDATE audit_log SET actor = ?, prev_hash = ?, hash = ? WHERE id = ?",
                        (actor, prev, digest, entry_id))
            prev = digest


def test_rechained_log_is_detected_against_the_signed_checkpoint(case_dir, key, capsys):
    data, case, _ = case_dir
    assert xfr(data, "audit", "checkpoint", "--sign", str(key[0]), "--passphrase-env", "XFR_PW") == 0
    _rechain(data, case.id, 1)
    capsys.readouterr()
    assert xfr(data, "audit", "verify") == 1
    assert "the chain was rewritten" in capsys.readouterr().err


def test_rechained_log_without_any_checkpoint_is_the_documented_limit(case_dir):
    data, case, _ = case_dir
    _rechain(data, case.id, 1)
    assert xfr(data, "audit", "verify", "--case", case.number) == 0


@pytest.mark.parametrize("attack, needle", [
    ("truncate", "entries were deleted"),
    ("empty", "entries were deleted"),
    ("empty and drop checkpoints", "is not recorded in the audit trail"),
])
def test_truncated_or_emptied_log_is_detected_against_the_checkpoint(case_dir, key, capsys, attack, needle):
    data, case, _ = case_dir
    assert xfr(data, "audit", "checkpoint", "--case", case.number, "--sign", str(key[0]),
               "--passphrase-env", "XFR_PW") == 0
    with open_store(data) as store:
        newest_signed = [e for e in store.list_audit(case.id) if e.action != "audit.checkpoint"][-1].id
    statements = {"truncate": [f"DELETE FROM audit_log WHERE id >= {newest_signed}"],
                  "empty": ["DELETE FROM audit_log"],
                  "empty and drop checkpoints": ["DELETE FROM audit_log", "DELETE FROM audit_checkpoints"]}[attack]
    sql(data, *statements, drop_triggers=True)
    capsys.readouterr()
    assert xfr(data, "audit", "verify", "--case", case.number) == 1
    assert needle in capsys.readouterr().err


def test_checkpoint_kept_outside_catches_what_the_database_no_longer_shows(case_dir, key, tmp_path, capsys):
    data, case, _ = case_dir
    kept = tmp_path / "kept.json"
    assert xfr(data, "audit", "checkpoint", "--sign", str(key[0]), "--passphrase-env", "XFR_PW",
               "--out", str(kept)) == 0
    _rechain(data, case.id, 1)
    sql(data, "DELETE FROM audit_checkpoints", "DELETE FROM audit_log WHERE action = 'audit.checkpoint'",
        drop_triggers=True)
    assert xfr(data, "audit", "verify") == 0  # nothing in the data folder remembers the old head
    capsys.readouterr()
    assert xfr(data, "audit", "verify", "--checkpoint", str(kept)) == 1
    assert "the chain was rewritten" in capsys.readouterr().err


def test_checkpoint_by_an_untrusted_key_is_refused(case_dir, key, tmp_path, capsys):
    data, case, _ = case_dir
    other_p12, other_pem = create_identity("Mallory", tmp_path / "mallory.p12", PASS)
    assert xfr(data, "audit", "checkpoint", "--sign", str(other_p12), "--passphrase-env", "XFR_PW") == 0
    assert xfr(data, "audit", "verify", "--trust", str(key[1])) == 1
    assert "not among the --trust certificates" in capsys.readouterr().err
    assert xfr(data, "audit", "verify", "--trust", str(other_pem)) == 0


def test_altered_checkpoint_signature_fails(case_dir, key, capsys):
    data, case, _ = case_dir
    assert xfr(data, "audit", "checkpoint", "--sign", str(key[0]), "--passphrase-env", "XFR_PW") == 0
    sql(data, "UPDATE audit_checkpoints SET n_entries = n_entries - 1", drop_triggers=True)
    capsys.readouterr()
    assert xfr(data, "audit", "verify") == 1
    assert "is not valid" in capsys.readouterr().err
