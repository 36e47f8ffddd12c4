"""Issue 25: evidence integrity, round 2. Each attack of the security tester runs on a real store through the
public command line (or a child process where a hang or memory is at stake): deleted rows, bindings laundered
through the system chain, unsigned PDF updates, unbounded reads, forged model cards and the smaller ones."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from tests.report.test_signing import identity_files, rendered, signed  # noqa: F401  (fixtures: a report signed by its examiner)
from xfr_desktop.cli import main as xfr_main
from xfr_desktop.report.signing import create_identity
from xfr_desktop.store import entry_hash, open_store
from xfr_desktop.store.audit import canonical_json, utc_now
from xfr_desktop.store.integrity import row_digest
from xfr_desktop.store.schema import Case, Comparison, Result

PASS = "correct horse battery"
# every hostile file is refused or answered within this, counted from the command's start in a child that has
# already started Python (a hang lasts for ever; a loaded 2-core machine took over 5 s for a child's start)
HANG_S = 15


@pytest.fixture
def key(tmp_path, monkeypatch):
    monkeypatch.setenv("XFR_PW", PASS)
    return create_identity("Jane Examiner", tmp_path / "jane.p12", PASS)


@pytest.fixture
def signed_case(tmp_path, tiny_model, key):
    """The tester's fresh case: 2 comparisons (the second with image quality), a conclusion, and a signed
    checkpoint of every chain, also kept outside the data folder (kept.json)."""
    from tests.report.test_report import analysed_case

    data = tmp_path / "data"
    with open_store(data) as store:
        case, sha_a, sha_b, _ = analysed_case(store, tiny_model, tmp_path)
        second = store.add_comparison(case.id, sha_b, sha_a, model_sha256="ee" * 32, model_name="tiny")
        store.record_image_quality(second.id, "a", {"sharpness": 0.5})
        store.save_result(second.id, {"score": 0.41, "threshold": 0.3, "decision": True})
    kept = tmp_path / "kept.json"
    assert xfr(data, "audit", "checkpoint", "--sign", str(key[0]), "--passphrase-env", "XFR_PW",
               "--out", str(kept)) == 0
    return data, case, kept


def xfr(data, *args) -> int:
    try:
        return xfr_main(["--data-dir", str(data), *args])
    except SystemExit as exc:
        return int(exc.code)


def sql(data, *statements, drop_triggers=False):
    with sqlite3.connect(data / "xfr.sqlite") as con:
        if drop_triggers:
            for name in ("audit_log_no_update", "audit_log_no_delete"):
                con.execute(f"DROP TRIGGER IF EXISTS {name}")
        for statement in statements:
            con.execute(statement)


def append_entry(data, case_id, action, object_type=None, object_id=None, details=None, actor="xfr-upgrade"):
    """Append a correctly chained entry with sqlite3 and the app's public hash function, as a forger would."""
    with sqlite3.connect(data / "xfr.sqlite") as con:
        where = "case_id IS NULL" if case_id is None else f"case_id = {int(case_id)}"
        head = con.execute(f"SELECT hash FROM audit_log WHERE {where} ORDER BY id DESC LIMIT 1").fetchone()
        prev = head[0] if head else "0" * 64
        text, time = canonical_json(details or {}), utc_now()
        digest = entry_hash(prev, time, actor, action, case_id, object_type, object_id, text)
        con.execute("INSERT INTO audit_log (time, actor, action, case_id, object_type, object_id, details, prev_hash, "
                    "hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (time, actor, action, case_id, object_type, object_id, text, prev, digest))


def digest_of(data, model, ident) -> str:
    with open_store(data) as store, store.session(write=False) as s:
        return row_digest(s.get(model, ident))


def refused_in_every_mode(data, case, kept, key, tmp_path, capsys, needle) -> None:
    """`audit verify` exits 1 naming `needle` whole, per case, with --trust and with --checkpoint; `report`
    refuses and writes nothing."""
    for extra in ([], ["--case", case.number], ["--trust", str(key[1])], ["--checkpoint", str(kept)]):
        capsys.readouterr()
        assert xfr(data, "audit", "verify", *extra) == 1, extra
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, (extra, err)
    out = tmp_path / "report.pdf"
    assert xfr(data, "report", "--case", case.number, "--out", str(out)) == 2
    assert needle in capsys.readouterr().err
    assert not out.exists()


# --- 1. deleted rows ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("statements, needle", [
    (["DELETE FROM results WHERE comparison_id = 2", "DELETE FROM image_quality WHERE comparison_id = 2",
      "DELETE FROM comparisons WHERE id = 2"], "comparison 2 is missing"),
    (["DELETE FROM results WHERE id = 2"], "result 2 is missing"),
    (["DELETE FROM conclusions"], "conclusion 1 is missing"),
], ids=["comparison", "result", "conclusion"])
def test_deleted_rows_are_named(signed_case, key, tmp_path, capsys, statements, needle):
    data, case, kept = signed_case
    assert xfr(data, "audit", "verify", "--trust", str(key[1]), "--checkpoint", str(kept)) == 0
    sql(data, *statements)
    refused_in_every_mode(data, case, kept, key, tmp_path, capsys, needle)


# --- 2. bindings laundered through the system chain -----------------------------------------------------------
def forge_result(data) -> str:
    sql(data, "INSERT INTO results (comparison_id, created_at, parameters, score, threshold, decision, timings) "
              "VALUES (1, '2030-01-01', '{}', 0.99, 0.3, 1, '{}')")
    return digest_of(data, Result, 3)


def test_forged_result_adopted_on_the_system_chain_is_refused(signed_case, key, tmp_path, capsys):
    data, case, kept = signed_case
    append_entry(data, None, "integrity.adopted", details={"rows": {"result:3": forge_result(data)}})
    refused_in_every_mode(data, case, kept, key, tmp_path, capsys, "was not written by the schema upgrade")


def test_forged_result_adopted_on_its_own_chain_is_refused(signed_case, key, tmp_path, capsys):
    data, case, kept = signed_case
    append_entry(data, case.id, "integrity.adopted", details={"rows": {"result:3": forge_result(data)}})
    refused_in_every_mode(data, case, kept, key, tmp_path, capsys, "was not written by the schema upgrade")


def test_case_row_bound_on_the_system_chain_does_not_count(signed_case, key, tmp_path, capsys):
    data, case, kept = signed_case
    sql(data, "UPDATE cases SET examiner = 'Mallory' WHERE id = 1")
    append_entry(data, None, "case.updated", "case", "1", {"row_sha256": digest_of(data, Case, 1)})
    append_entry(data, None, "analysis.saved", "result", "3", {"row_sha256": forge_result(data)})
    refused_in_every_mode(data, case, kept, key, tmp_path, capsys, "case 1 differs")


def test_a_comparisons_images_cannot_be_re_bound(signed_case, key, tmp_path, capsys):
    data, case, kept = signed_case
    sql(data, "UPDATE comparisons SET image_b = image_a WHERE id = 1")
    append_entry(data, case.id, "comparison.report_result_chosen", "comparison", "1",
                 {"row_sha256": digest_of(data, Comparison, 1)}, actor="Ann")
    refused_in_every_mode(data, case, kept, key, tmp_path, capsys, "comparison 1 differs from what audit entry")


def test_the_upgrades_adoption_is_stated_by_verify_and_so_in_the_report(tmp_path, capsys):
    """The report prints the verification message as its audit status (test_report checks "chain intact")."""
    from tests.store.test_store_migrations import make_v1_database

    data = tmp_path / "data"
    make_v1_database(data / "xfr.sqlite")
    with open_store(data):
        pass
    capsys.readouterr()
    assert xfr(data, "audit", "verify", "--case", "OLD-1") == 0
    assert "adopted at the schema upgrade by entry #3, #4" in capsys.readouterr().out


# --- 4. unbounded reads and hangs -----------------------------------------------------------------------------
RSS_LIMIT_MB = 500


def bounded_in_turn(*commands) -> list:
    """Each `xfr ARGS` in turn in one child process, each ended (and the test failed) if it runs over HANG_S:
    per command rc, out (stdout + stderr) and peak_mb (test_hostile_inputs.measured_in_turn)."""
    from tests.security.test_hostile_inputs import measured_in_turn

    runs = measured_in_turn(commands, hang_s=HANG_S)
    for run in runs:
        assert run.rc is not None, run.err
        run.out += run.err
    return runs


@pytest.fixture
def evidence(signed_case):
    data, case, _ = signed_case
    with open_store(data) as store:
        path = store.image_path(store.list_comparisons(case.id)[0].image_a)
    path.unlink()
    return data, case, path


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero"])
def test_evidence_file_replaced_by_a_fifo_or_a_link_is_refused_at_once(evidence, tmp_path, kind):
    data, case, path = evidence
    os.mkfifo(path) if kind == "fifo" else os.symlink("/dev/zero", path)
    verify, report, show = bounded_in_turn(["--data-dir", data, "audit", "verify"],
                                           ["--data-dir", data, "report", "--case", case.number, "--out",
                                            tmp_path / "r.pdf"],
                                           ["--data-dir", data, "cases", "show", case.number, "--json"])
    assert verify.rc == 1 and f"the evidence file {path}" in verify.out and "not a regular file" in verify.out, \
        verify.out
    assert report.rc == 2 and "fails verification" in report.out and not (tmp_path / "r.pdf").exists()
    assert show.rc == 0 and json.loads(show.out[:show.out.rindex("}") + 1])["audit"]["intact"] is False


HOSTILE_FILES = {
    "pdf": ["verify-report", "/dev/zero"],
    "trust": ["verify-report", "{pdf}", "--trust", "/dev/zero"],
    "6 GB pdf": ["verify-report", "{big}"],
    "audit trust": ["--data-dir", "{data}", "audit", "verify", "--trust", "/dev/zero"],
    "checkpoint file": ["--data-dir", "{data}", "audit", "verify", "--checkpoint", "/dev/zero"],
    "key file": ["--data-dir", "{data}", "audit", "checkpoint", "--sign", "/dev/zero", "--passphrase-env", "XFR_PW"],
    "passphrase file": ["--data-dir", "{data}", "audit", "checkpoint", "--sign", "{p12}", "--passphrase-file",
                        "/dev/zero"],
}


@pytest.fixture(scope="module")
def hostile_file_runs(tmp_path_factory, samples_dir) -> dict:
    """Every HOSTILE_FILES command and a 3 GB evidence file given to add-pair and explain, in one child process
    (bounded_in_turn): the result of each by name."""
    root = tmp_path_factory.mktemp("hostile-files")
    pdf, big = root / "r.pdf", root / "big.pdf"
    pdf.write_bytes(b"%PDF-1.7\n%%EOF\n")
    with open(big, "wb") as f:  # sparse: 6 GB claimed, nothing written
        f.write(b"%PDF-1.7\n")
        f.truncate(6 << 30)
    with open_store(root / "data") as store:
        store.create_case("H-1")
    names = {"pdf": pdf, "big": big, "data": root / "data", "p12": create_identity("Jane Examiner", root / "j.p12",
                                                                                 PASS)[0]}
    commands = {name: [a.format(**names) for a in args] for name, args in HOSTILE_FILES.items()}
    # a real JPEG followed by 3 GB of zeros (sparse: nothing written)
    pair = json.loads((samples_dir / "case.json").read_text())["pairs"][0]
    huge = root / "big.jpg"
    huge.write_bytes((samples_dir / pair["image_a"]).read_bytes())
    with open(huge, "r+b") as f:
        f.truncate(3 << 30)
    with open_store(root / "evidence") as store:
        store.create_case("B-1")
    commands["add-pair"] = ["--data-dir", root / "evidence", "cases", "add-pair", "B-1", huge,
                            samples_dir / pair["image_b"]]
    commands["explain"] = ["explain", huge, samples_dir / pair["image_b"], "--out", root / "o", "--no-trust-check"]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XFR_PW", PASS)
        runs = dict(zip(commands, bounded_in_turn(*commands.values())))
    runs["evidence"] = root / "evidence"
    return runs


@pytest.mark.parametrize("name", HOSTILE_FILES)
def test_hostile_files_are_refused_quickly_in_bounded_memory(hostile_file_runs, name):
    run = hostile_file_runs[name]
    assert run.rc == 2 and "Traceback" not in run.out, run.out
    assert "not a regular file" in run.out or "larger than" in run.out, run.out
    assert run.peak_mb < RSS_LIMIT_MB


# --- 3. unsigned updates after the last signature -------------------------------------------------------------


def _incremental(pdf: bytes, change) -> bytes:
    import io

    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    change(writer)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def retitled(pdf: bytes) -> bytes:
    """The tester's update: pypdf rewrites /Info Title and Author in an incremental update."""
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(PdfReader(io.BytesIO(pdf)), incremental=True)
    writer.add_metadata({"/Title": "Another case", "/Author": "Mallory"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def xmp_stripped(pdf: bytes) -> bytes:
    """An update replacing the XMP metadata by well-formed XML without the title and the PDF/A id."""
    from pyhanko.pdf_utils import generic

    def strip(writer):
        xml = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
               b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>'
               b'<?xpacket end="w"?>')
        stream = generic.StreamObject({generic.NameObject("/Type"): generic.NameObject("/Metadata"),
                                       generic.NameObject("/Subtype"): generic.NameObject("/XML")}, stream_data=xml)
        writer.root["/Metadata"] = writer.add_object(stream)
        writer.update_root()
    return _incremental(pdf, strip)


def dss_added(pdf: bytes, certificate_pem) -> bytes:
    """An archival update: the signer's certificate in a DSS (what long-term validation tools add)."""
    from asn1crypto import pem, x509
    from pyhanko.sign.validation.dss import DocumentSecurityStore

    certificate = x509.Certificate.load(pem.unarmor(certificate_pem.read_bytes())[2])
    return _incremental(pdf, lambda writer: DocumentSecurityStore.supply_dss_in_writer(writer, None,
                                                                                        certs=[certificate]))


def test_only_archival_updates_may_follow_the_last_signature(signed, tmp_path, identity_files, capsys):
    """A DSS added after signing stays VALID; a rewritten /Info title and author, or XMP without its title and
    PDF/A id, is MODIFIED (exit 4)."""
    path, trust = tmp_path / "r.pdf", identity_files[1]
    path.write_bytes(dss_added(signed.pdf, trust))
    capsys.readouterr()
    assert xfr(tmp_path, "verify-report", str(path), "--trust", str(trust)) == 0
    assert "archival updates only" in capsys.readouterr().out
    for attack in (retitled, xmp_stripped):
        path.write_bytes(attack(signed.pdf))
        assert xfr(tmp_path, "verify-report", str(path), "--trust", str(trust)) == 4, attack.__name__
        err = capsys.readouterr().err
        assert err.startswith("MODIFIED:") and "changed after the last signature" in err, err


# --- 5. forged model cards -------------------------------------------------------------------------------------
FORGED_CARD = ("# Model card: tiny\n\n## Evaluation\n\n| measure | this model | goal met |\n|---|---|---|\n"
               "| LFW accuracy | 99.99 % | yes |\n")


@pytest.fixture
def analysed(tmp_path, tiny_model):
    from tests.report.test_report import analysed_case

    with open_store(tmp_path / "data") as store:
        case = analysed_case(store, tiny_model, tmp_path)[0]
    return tmp_path / "data", case


def report_text_of(data, case, tmp_path) -> str:
    from tests.report.test_report import pdf_text

    out = tmp_path / "card.pdf"
    out.unlink(missing_ok=True)
    assert xfr(data, "report", "--case", case.number, "--out", str(out)) == 0
    return " ".join(pdf_text(out.read_bytes())[0].split())


@pytest.mark.parametrize("card, path, said", [(FORGED_CARD, "", "card is not verified"),
                                              (None, "default", "No model card is available")],
                         ids=["card text", "bundled path"])
def test_a_model_card_inserted_into_the_registry_never_reaches_the_report(analysed, tmp_path, card, path, said):
    """A `models` row for the case's model (sha256 ee..ee): its own card text, or a path to a bundled model file
    of another hash, whose card it would borrow. Neither is the bundled card of that sha256 nor bound by an entry."""
    from xfr_desktop.core.model import default_model_path

    data, case = analysed
    with sqlite3.connect(data / "xfr.sqlite") as con:
        con.execute("INSERT INTO models (name, path, sha256, card, active, registered_at) VALUES (?, ?, ?, ?, 0, ?)",
                    ("tiny", str(default_model_path()) if path else "", "ee" * 32, card, "2030-01-01"))
    text = report_text_of(data, case, tmp_path)
    assert "From the model card" not in text and "99.99" not in text and default_model_path().name not in text
    assert said in text, text


def test_a_card_registered_by_the_app_is_bound_and_shown(analysed, tmp_path):
    data, case = analysed
    with open_store(data) as store:
        store.register_model("tiny", tmp_path / "tiny.pt", sha256="ee" * 32, card=FORGED_CARD)
    assert "Recognition accuracy (LFW accuracy): 99.99 %." in report_text_of(data, case, tmp_path)
    sql(data, "UPDATE models SET card = replace(card, '99.99', '99.98')")  # edited after registration
    text = report_text_of(data, case, tmp_path)
    assert "99.98" not in text and "card is not verified" in text


# --- 7. smaller ones -------------------------------------------------------------------------------------------
def hostile_checkpoint_file(kept, tmp_path, field, value):
    data = json.loads(kept.read_text())
    data["checkpoints"][0][field] = value
    path = tmp_path / f"hostile-{field}.json"
    path.write_text(json.dumps(data))
    return path


def rewrite_checkpoint_entry(data, column, value):
    with sqlite3.connect(data / "xfr.sqlite") as con:
        con.execute("DROP TRIGGER audit_log_no_update")
        row = con.execute("SELECT id, prev_hash, time, actor, action, case_id, object_type, object_id, details "
                          "FROM audit_log WHERE action = 'audit.checkpoint'").fetchone()
        fields = dict(zip(("prev_hash", "time", "actor", "action", "case_id", "object_type", "object_id", "details"),
                          row[1:]), **{column: value})
        con.execute(f"UPDATE audit_log SET {column} = ?, hash = ? WHERE id = ?", (value, entry_hash(**fields), row[0]))


@pytest.mark.parametrize("attack", ["garbage certificate", "non-hex signature", "entry id as text",
                                    "non-JSON details", "non-integer object id"])
def test_hostile_trust_checkpoint_and_announcement_are_one_line_not_a_traceback(signed_case, key, tmp_path,
                                                                                capsys, attack):
    data, case, kept = signed_case
    args, expected = ["audit", "verify"], 1
    if attack == "garbage certificate":
        (tmp_path / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\ngarbage\n")
        args, expected = args + ["--trust", str(tmp_path / "garbage.pem")], 2
    elif attack == "non-hex signature":
        args += ["--checkpoint", str(hostile_checkpoint_file(kept, tmp_path, "signature", "zz-not-hex"))]
    elif attack == "entry id as text":
        args += ["--checkpoint", str(hostile_checkpoint_file(kept, tmp_path, "last_entry_id", "9; drop"))]
        expected = 2
    else:  # the newest entry, rewritten and re-hashed: the chain alone still holds
        rewrite_checkpoint_entry(data, "details" if attack == "non-JSON details" else "object_id", "not json")
    capsys.readouterr()
    assert xfr(data, *args) == expected
    err = capsys.readouterr().err
    assert err.startswith("xfr: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_trust_with_nothing_signed_is_not_a_pass(tmp_path, key, capsys):
    data = tmp_path / "data"
    with open_store(data) as store:
        store.create_case("N-1")
    capsys.readouterr()
    assert xfr(data, "audit", "verify", "--trust", str(key[1])) == 1
    assert "nothing signed to check" in capsys.readouterr().err


def test_ctrl_d_at_a_passphrase_prompt_is_one_line(tmp_path, key, monkeypatch, capsys):
    import getpass

    def ctrl_d(prompt="", stream=None):
        raise EOFError

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(getpass, "getpass", ctrl_d)
    data = tmp_path / "data"
    with open_store(data) as store:
        store.create_case("P-1")
    for args in (["audit", "checkpoint", "--sign", str(key[0])],
                 ["keys", "create", "--name", "X", "--out", str(tmp_path / "x.p12")]):
        capsys.readouterr()
        assert xfr(data, *args) == 2, args
        err = capsys.readouterr().err
        assert "no passphrase given" in err and "Traceback" not in err, err


_KILLED_AT = """import os, signal, sys
from xfr_desktop.store import checkpoints
from xfr_desktop.cli import main

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if sys.argv[1] == "checkpoint":
    checkpoints.create = die
else:
    replace = os.replace
    os.replace = lambda a, b, *r, **k: die() if str(b).endswith(".pdf") else replace(a, b, *r, **k)
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("at", ["checkpoint", "rename"])
def test_report_sign_killed_midway_leaves_no_entry_for_a_missing_file(analysed, key, tmp_path, capsys, at):
    """`report --sign` killed (-9) while signing the chain head or renaming the file into place: its entries and
    the file appear together or not at all."""
    data, case = analysed
    out = tmp_path / "signed.pdf"
    proc = subprocess.run([sys.executable, "-c", _KILLED_AT, at, "--data-dir", str(data), "report", "--case",
                           case.number, "--out", str(out), "--sign", str(key[0]), "--passphrase-env", "XFR_PW"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    with open_store(data) as store:
        named = [e for e in store.list_audit(case.id) if e.action in ("report.exported", "report.signed")]
    assert not named and not out.exists(), [e.action for e in named]


def test_a_report_entry_whose_file_is_gone_is_stated_by_verify(analysed, key, tmp_path, capsys):
    data, case = analysed
    out = tmp_path / "signed.pdf"
    assert xfr(data, "report", "--case", case.number, "--out", str(out), "--sign", str(key[0]),
               "--passphrase-env", "XFR_PW") == 0
    out.unlink()
    capsys.readouterr()
    assert xfr(data, "audit", "verify") == 0   # a report may be moved: stated, not a failure
    said = capsys.readouterr().err
    assert f"names the report {out}, which is not there" in said, said


_RUNNING_THEN_KILLED = """import os, signal, sys
from xfr_desktop.store import open_store

store = open_store(sys.argv[1])
store.set_comparison_status(int(sys.argv[2]), "running")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_an_analysis_killed_midway_is_marked_interrupted_on_the_next_open(analysed, capsys):
    """A process killed (-9) while its comparison is 'running' leaves it interrupted, audited, not running
    forever; a comparison running in a live process is left alone."""
    data, case = analysed
    with open_store(data) as store:
        live = store.add_comparison(case.id, *[store.list_comparisons(case.id)[0].image_a] * 2,
                                    model_sha256="ee" * 32, model_name="tiny")
        store.set_comparison_status(live.id, "running")   # this process: alive
    proc = subprocess.run([sys.executable, "-c", _RUNNING_THEN_KILLED, str(data), "1"], capture_output=True,
                          timeout=60)
    assert proc.returncode == -9, proc.stderr
    capsys.readouterr()
    assert xfr(data, "cases", "show", case.number, "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert [c["status"] for c in shown["comparisons"]] == ["interrupted", "running"]
    with open_store(data) as store:
        entries = [e for e in store.list_audit(case.id) if e.action == "comparison.interrupted"]
    assert len(entries) == 1 and entries[0].object_id == "1"
    assert xfr(data, "audit", "verify") == 0


def test_explain_outputs_are_owner_only(tmp_path, tiny_model, samples_dir):
    """Face crops, maps and result.json derived from evidence: 0600 in a 0700 folder, whatever the umask."""
    from xfr_desktop.core import save_model

    save_model(tiny_model, tmp_path / "tiny.pt")
    pair = json.loads((samples_dir / "case.json").read_text())["pairs"][0]
    out, umask = tmp_path / "new" / "out", os.umask(0o022)
    try:
        assert xfr(tmp_path, "explain", str(samples_dir / pair["image_a"]), str(samples_dir / pair["image_b"]),
                   "--out", str(out), "--model", str(tmp_path / "tiny.pt"), "--no-trust-check") == 0
    finally:
        os.umask(umask)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in [out, *out.iterdir()]}
    assert "a_aligned.png" in modes and set(modes.values()) == {"0o700", "0o600"}, modes
    assert modes.pop("out") == "0o700" and set(modes.values()) == {"0o600"}, modes


@pytest.mark.parametrize("value", ["2", "-5", "1.0001"])
@pytest.mark.parametrize("command", [["explain", "a.jpg", "b.jpg", "--out", "o"],
                                     ["evaluate", "verify", "--pairs", "p.txt", "--root", ".", "--out", "o"],
                                     ["evaluate", "hiding-game", "--pairs", "p.txt", "--root", ".", "--out", "o"]],
                         ids=["explain", "evaluate verify", "evaluate hiding"])
def test_a_threshold_outside_the_cosine_range_is_refused(tmp_path, capsys, command, value):
    capsys.readouterr()
    assert xfr(tmp_path, *command, f"--threshold={value}") == 2
    err = capsys.readouterr().err
    assert "between -1 and 1" in err.strip().splitlines()[-1] and "Traceback" not in err, err


def test_evaluate_verify_with_no_readable_image_fails(tmp_path, tiny_model, capsys):
    """Every image of the pair list is unreadable: no pair was scored, so no accuracy may be claimed (exit 0)."""
    from xfr_desktop.core import save_model

    save_model(tiny_model, tmp_path / "tiny.pt")
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (tmp_path / name).write_bytes(b"not an image")
    (tmp_path / "pairs.csv").write_text("img_a,img_b,same\na.jpg,b.jpg,1\na.jpg,c.jpg,0\nb.jpg,c.jpg,0\n")
    capsys.readouterr()
    rc = xfr(tmp_path, "evaluate", "verify", "--pairs", str(tmp_path / "pairs.csv"), "--root", str(tmp_path),
             "--out", str(tmp_path / "o"), "--model", str(tmp_path / "tiny.pt"), "--aligned", "-q")
    err = capsys.readouterr().err
    assert rc != 0 and "no pair could be scored" in err and "Traceback" not in err, (rc, err)
    assert len([line for line in err.splitlines() if line.startswith("xfr: error")]) == 1, err


# --- 6. memory bounded by decoded bytes ------------------------------------------------------------------------
def tiny_jpeg(side: int = 8) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (side, side), (120, 90, 60)).save(buf, "JPEG")
    return buf.getvalue()


def test_a_bin_validation_set_is_bounded_by_decoded_bytes(tmp_path, tiny_model):
    """51 KB on disk: 10,000 pairs of one tiny JPEG (the pickle stores it once), 750 MB once decoded to chips."""
    import pickle

    from tests.security.test_hostile_inputs import measured_xfr, small_png, write_rec

    from xfr_desktop.core import save_model

    save_model(tiny_model, tmp_path / "tiny.pt")
    data = write_rec(tmp_path / "rec", [(i % 2, small_png(i)) for i in range(4)])
    image = tiny_jpeg()
    (tmp_path / "lfw.bin").write_bytes(pickle.dumps(([image] * 20_000, [True, False] * 5_000), protocol=2))
    assert (tmp_path / "lfw.bin").stat().st_size < 64_000
    rc, err, peak_mb = measured_xfr("train", "--data", data, "--out", tmp_path / "run", "--base", tmp_path / "tiny.pt",
                                    "--mode", "decoder", "--max-steps", 1, "--batch-size", 2, "--aligned", "yes",
                                    "-q", "--val", tmp_path / "lfw.bin")
    assert rc == 2 and "lfw.bin: 10000 pairs" in err and "set val_limit to at most" in err, err
    assert "Traceback" not in err and peak_mb < RSS_LIMIT_MB, (peak_mb, err)


def test_val_limit_spreads_a_bin_set_within_its_byte_bound(tmp_path):
    import pickle

    from xfr_desktop.core.training.datasets import read_bin_pairs

    (tmp_path / "v.bin").write_bytes(pickle.dumps(([tiny_jpeg()] * 20_000, [True, False] * 5_000), protocol=2))
    pairs = read_bin_pairs(tmp_path / "v.bin", (112, 112), limit=1000)
    assert pairs.images.shape == (2000, 112, 112, 3) and 400 < pairs.issame.sum() < 600


@pytest.mark.parametrize("command", ["add-pair", "explain"])
def test_a_3_gb_evidence_file_is_refused_at_once(hostile_file_runs, command):
    """A real JPEG followed by 3 GB of zeros (sparse: nothing written) is refused by size before it is read."""
    run = hostile_file_runs[command]
    assert run.rc == 2 and "larger than the 512 MB an image file may be" in run.out and "Traceback" not in run.out, \
        run.out
    assert run.peak_mb < RSS_LIMIT_MB and not list(hostile_file_runs["evidence"].rglob("*.part"))
