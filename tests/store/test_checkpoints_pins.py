"""Mutation pins for store/checkpoints.py (issue 28): what a signed checkpoint states and when it fails.

The signed payload is written out here byte for byte, signatures are made and checked with `cryptography` directly,
fingerprints are SHA-256 of the certificate's DER computed with hashlib, and entry counts are counted with SQL by
hand. Real SQLite store, real ECDSA P-256 and RSA keys; in-process and fast (no PKCS#12, no subprocess)."""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import sqlite3

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from xfr_desktop.core.errors import StoreError
from xfr_desktop.store import checkpoints, open_store
from xfr_desktop.store.checkpoints import Checkpoint

HEAD = "ab" * 32


def certificate(key, name: str) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(7).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
            .sign(key, algorithm))


class Identity:
    def __init__(self, key, name):
        self.key, self.name = key, name
        self.cert = certificate(key, name)
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)
        self.der = self.cert.public_bytes(serialization.Encoding.DER)

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    def checkpoint(self, **fields) -> Checkpoint:
        """A checkpoint stating `fields`, validly signed by this identity."""
        base = dict(case_id=None, last_entry_id=1, n_entries=1, head_hash=HEAD, created_at="2026-01-02T03:04:05Z",
                    signer=self.name, certificate_pem=self.pem.decode("ascii"), signature="")
        unsigned = Checkpoint(**{**base, **fields})
        return dataclasses.replace(unsigned, signature=self.sign(unsigned.payload()).hex())


@pytest.fixture(scope="module")
def jane():
    return Identity(ec.generate_private_key(ec.SECP256R1()), "Jane Examiner")


@pytest.fixture(scope="module")
def mallory():
    return Identity(ec.generate_private_key(ec.SECP256R1()), "Mallory")


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "data") as store:
        store.create_case("C-1", examiner="Ann")
        store.create_case("C-2", examiner="Bob")
        store.log_event("test.note", case_id=1, details={"n": 1})
        store.log_event("test.note", details={"system": True})
        yield store


def entries(store, case_id):
    """(id, hash) of a chain's entries, read with plain SQL."""
    with sqlite3.connect(store.data_dir / "xfr.sqlite") as con:
        where = "case_id IS NULL" if case_id is None else f"case_id = {int(case_id)}"
        return con.execute(f"SELECT id, hash FROM audit_log WHERE {where} ORDER BY id").fetchall()


def sql(store, *statements):
    with sqlite3.connect(store.data_dir / "xfr.sqlite") as con:
        for name in ("audit_log_no_update", "audit_log_no_delete", "audit_checkpoints_no_update",
                     "audit_checkpoints_no_delete"):
            con.execute(f"DROP TRIGGER IF EXISTS {name}")
        for statement in statements:
            con.execute(statement)


def check(store, points, trusted=None):
    with store.session(write=False) as s:
        return checkpoints.check(s, points, trusted)


def test_the_signed_payload_is_every_stated_field_in_canonical_json():
    cp = Checkpoint(case_id=3, last_entry_id=41, n_entries=17, head_hash=HEAD, created_at="2026-01-02T03:04:05Z",
                    signer="Jane Ü", certificate_pem="PEM", signature="00", id=9)
    assert cp.payload() == ('{"case_id":3,"created_at":"2026-01-02T03:04:05Z","head_hash":"' + HEAD + '",'
                            '"last_entry_id":41,"n_entries":17,"signer":"Jane Ü"}').encode("utf-8")
    assert dataclasses.replace(cp, case_id=None).payload().startswith(b'{"case_id":null,')
    assert cp.describe() == "checkpoint #9 (entry #41, signed by Jane Ü at 2026-01-02T03:04:05Z)"
    assert dataclasses.replace(cp, id=None).describe().startswith("checkpoint from file (entry #41,")


def test_create_signs_the_head_of_one_chain_and_announces_it(store, jane):
    chain = entries(store, 1)
    with store.session() as s:
        cp = checkpoints.create(s, 1, jane.sign, jane.pem, jane.name)
    assert (cp.case_id, cp.last_entry_id, cp.n_entries, cp.head_hash) == (1, chain[-1][0], len(chain), chain[-1][1])
    assert (cp.signer, cp.certificate_pem, cp.id) == ("Jane Examiner", jane.pem.decode("ascii"), 1)
    payload = ('{"case_id":1,"created_at":"' + cp.created_at + '","head_hash":"' + chain[-1][1] + '",'
               f'"last_entry_id":{chain[-1][0]},"n_entries":{len(chain)},"signer":"Jane Examiner"}}').encode()
    jane.key.public_key().verify(bytes.fromhex(cp.signature), payload, ec.ECDSA(hashes.SHA256()))
    with sqlite3.connect(store.data_dir / "xfr.sqlite") as con:
        row = con.execute("SELECT case_id, object_type, object_id, actor, action, details FROM audit_log "
                          "ORDER BY id DESC LIMIT 1").fetchone()
    assert row[:5] == (1, "checkpoint", "1", "Jane Examiner", "audit.checkpoint")
    assert json.loads(row[5]) == {"last_entry_id": chain[-1][0], "n_entries": len(chain), "head_hash": chain[-1][1],
                                  "signer": "Jane Examiner"}
    assert check(store, [cp], [jane.pem]) is None


def test_create_on_the_system_chain_and_on_an_empty_one(store, jane):
    system = entries(store, None)
    with store.session() as s:
        cp = checkpoints.create(s, None, jane.sign, jane.pem, jane.name)
        assert checkpoints.create(s, 99, jane.sign, jane.pem, jane.name) is None
    assert (cp.case_id, cp.last_entry_id, cp.n_entries, cp.head_hash) == (None, system[-1][0], len(system),
                                                                           system[-1][1])


def test_stored_lists_every_chain_or_one(store, jane):
    with store.session() as s:
        for chain in (1, None, 2):
            checkpoints.create(s, chain, jane.sign, jane.pem, jane.name)
    with store.session(write=False) as s:
        assert [c.case_id for c in checkpoints.stored(s)] == [1, None, 2]
        assert [c.case_id for c in checkpoints.stored(s, 2, all_chains=False)] == [2]
        assert [c.case_id for c in checkpoints.stored(s, None, all_chains=False)] == [None]
        assert [c.id for c in checkpoints.stored(s, 1, all_chains=True)] == [1, 2, 3]


def test_exported_file_round_trips_and_hostile_files_are_one_line(tmp_path, jane):
    cp = dataclasses.replace(jane.checkpoint(case_id=4, last_entry_id=12, n_entries=5), id=3)
    text = checkpoints.export_checkpoints([cp])
    data = json.loads(text)
    assert data["format"] == "xfr-audit-checkpoints/1" and data["checkpoints"][0]["n_entries"] == 5
    path = tmp_path / "kept.json"
    path.write_text(text, encoding="utf-8")
    assert checkpoints.load_checkpoint_file(path) == [dataclasses.replace(cp, id=None)]

    def refused(document) -> str:
        path.write_text(json.dumps(document), encoding="utf-8")
        with pytest.raises(StoreError) as err:
            checkpoints.load_checkpoint_file(path)
        return str(err.value)

    def refused_bytes(path) -> str:
        with pytest.raises(StoreError) as err:
            checkpoints.load_checkpoint_file(path)
        return str(err.value)

    good = {k: v for k, v in vars(cp).items() if k != "id"}
    prefix = f"cannot read the checkpoint file {path}: "
    assert refused({**data, "format": "xfr-audit-checkpoints/2"}) == prefix + "not an XFR audit checkpoint file"
    assert refused([data]) == prefix + "not an XFR audit checkpoint file"
    wrong = prefix + "a checkpoint has a field of the wrong type"
    for field, value in [("case_id", "4"), ("last_entry_id", True), ("n_entries", 5.0), ("head_hash", 1),
                         ("created_at", None), ("signer", ["x"]), ("certificate_pem", 3), ("signature", {})]:
        assert refused({"format": "xfr-audit-checkpoints/1", "checkpoints": [{**good, field: value}]}) == wrong
    path.write_bytes(b'{"format": "xfr-audit-checkpoints/1", "checkpoints": [], "x": "\xff"}')
    assert refused_bytes(path).startswith(prefix + "'utf-8' codec can't decode byte 0xff")
    assert refused({"format": "xfr-audit-checkpoints/1"}).startswith(prefix)
    assert refused({"format": "xfr-audit-checkpoints/1", "checkpoints": [{"case_id": 1}]}).startswith(prefix)
    none_case = {**good, "case_id": None}
    path.write_text(json.dumps({"format": "xfr-audit-checkpoints/1", "checkpoints": [none_case]}), encoding="utf-8")
    assert checkpoints.load_checkpoint_file(path)[0].case_id is None


def test_trust_demanded_of_nothing_signed_fails_and_nothing_demanded_passes(store, jane):
    assert check(store, [], [jane.pem]) == ("nothing signed to check: no checkpoint covers this data, so no --trust "
                                            "certificate vouches for it")
    assert check(store, [], None) is None
    assert check(store, [], []) is not None


def _valid_case_point(store, identity):
    chain = entries(store, 1)
    return identity.checkpoint(case_id=1, last_entry_id=chain[-1][0], n_entries=len(chain), head_hash=chain[-1][1])


def test_trusted_signers_by_fingerprint_in_pem_or_der(store, jane, mallory):
    cp = _valid_case_point(store, jane)
    assert check(store, [cp]) is None
    assert check(store, [cp], [jane.pem]) is None
    assert check(store, [cp], [mallory.pem, jane.der]) is None
    assert check(store, [cp], [mallory.pem]) == (f"{cp.describe()} is signed by a certificate that is not among the "
                                                 "--trust certificates")
    assert checkpoints.certificate_fingerprint(jane.pem) == hashlib.sha256(jane.der).hexdigest()
    assert checkpoints.certificate_fingerprint(jane.der) == hashlib.sha256(jane.der).hexdigest()


@pytest.mark.parametrize("field, value", [("case_id", 2), ("last_entry_id", 998), ("n_entries", 97),
                                          ("head_hash", "cd" * 32), ("created_at", "2027-01-01"),
                                          ("signer", "Someone Else")])
def test_any_stated_field_altered_after_signing_breaks_the_signature(store, jane, field, value):
    cp = dataclasses.replace(_valid_case_point(store, jane), **{field: value})
    assert check(store, [cp]) == f"the signature of {cp.describe()} is not valid (the checkpoint was altered)"


@pytest.mark.parametrize("signature, pem", [("zz", None), ("", None), ("00" * 64, None), (None, "Jäne")])
def test_a_signature_or_certificate_that_is_not_even_readable_is_invalid(store, jane, signature, pem):
    cp = _valid_case_point(store, jane)
    cp = dataclasses.replace(cp, **({"signature": signature} if signature is not None else {"certificate_pem": pem}))
    assert check(store, [cp]) == f"the signature of {cp.describe()} is not valid (the checkpoint was altered)"


def test_a_checkpoint_signed_by_someone_else_is_not_valid_under_janes_certificate(store, jane, mallory):
    cp = _valid_case_point(store, jane)
    forged = dataclasses.replace(cp, signature=mallory.sign(cp.payload()).hex())
    assert "is not valid" in check(store, [forged])


def test_the_position_checks_name_what_happened(store, jane):
    chain = entries(store, 1)
    last, n = chain[-1][0], len(chain)
    where = "case 1"
    gone = jane.checkpoint(case_id=1, last_entry_id=999, n_entries=n, head_hash=chain[-1][1])
    assert check(store, [gone]) == (f"the audit trail of {where} no longer holds entry #999, which {gone.describe()} "
                                    "covers: entries were deleted")
    other_chain = jane.checkpoint(case_id=2, last_entry_id=last, n_entries=n, head_hash=chain[-1][1])
    assert check(store, [other_chain]).startswith(f"the audit trail of case 2 no longer holds entry #{last}, ")
    rewritten = jane.checkpoint(case_id=1, last_entry_id=last, n_entries=n, head_hash="ee" * 32)
    assert check(store, [rewritten]) == (f"entry #{last} of {where} is not the one {rewritten.describe()} covers: "
                                         "the chain was rewritten")
    for stated in (n - 1, n + 1):
        count = jane.checkpoint(case_id=1, last_entry_id=last, n_entries=stated, head_hash=chain[-1][1])
        assert check(store, [count]) == (f"{where} holds {n} entries up to #{last} but {count.describe()} covers "
                                         f"{stated}: entries were removed or inserted")


def test_the_count_is_up_to_the_covered_entry_of_its_own_chain_only(store, jane):
    """A checkpoint of an older head stays valid after later entries, in its chain and in others."""
    chain = entries(store, 1)
    first = jane.checkpoint(case_id=1, last_entry_id=chain[0][0], n_entries=1, head_hash=chain[0][1])
    store.log_event("test.later", case_id=1)
    store.log_event("test.later", case_id=2)
    assert check(store, [first]) is None
    system = entries(store, None)
    sys_point = jane.checkpoint(case_id=None, last_entry_id=system[-1][0], n_entries=len(system),
                                head_hash=system[-1][1])
    assert check(store, [sys_point]) is None
    wrong = jane.checkpoint(case_id=None, last_entry_id=system[-1][0], n_entries=len(system) + 1,
                            head_hash=system[-1][1])
    assert check(store, [wrong]).startswith(f"the system chain holds {len(system)} entries up to #{system[-1][0]}")


def test_the_first_failing_checkpoint_is_named(store, jane):
    good = _valid_case_point(store, jane)
    bad = dataclasses.replace(good, n_entries=good.n_entries + 5)
    assert "is not valid" in check(store, [good, bad])
    assert check(store, [good, good]) is None


def test_every_announced_checkpoint_must_still_exist_unaltered(store, jane):
    with store.session() as s:
        checkpoints.create(s, 1, jane.sign, jane.pem, jane.name)
        checkpoints.create(s, 2, jane.sign, jane.pem, jane.name)

    def announced(case_id=None, all_chains=True):
        with store.session(write=False) as s:
            return checkpoints.check_announced(s, case_id, all_chains)

    assert announced() is None and announced(1, False) is None
    sql(store, "UPDATE audit_checkpoints SET head_hash = 'x' WHERE id = 2")
    entry = entries(store, 2)[-1][0]
    assert announced() == f"audit entry #{entry} records checkpoint 2, which is missing or altered"
    assert announced(2, False) == announced()
    assert announced(1, False) is None          # case 1's own announcement still holds
    sql(store, "DELETE FROM audit_checkpoints WHERE id = 1")
    assert announced(1, False) == f"audit entry #{entries(store, 1)[-1][0]} records checkpoint 1, which is missing " \
                                  "or altered"


def test_an_announcement_naming_no_checkpoint_or_with_broken_details_fails(store, jane):
    with store.session() as s:
        checkpoints.create(s, None, jane.sign, jane.pem, jane.name)
    entry = entries(store, None)[-1][0]
    sql(store, f"UPDATE audit_log SET object_id = 'one' WHERE id = {entry}")
    with store.session(write=False) as s:
        assert checkpoints.check_announced(s, None, False) == (f"audit entry #{entry} records checkpoint one, which "
                                                               "is missing or altered")
    sql(store, f"UPDATE audit_log SET object_id = '1', details = 'not json' WHERE id = {entry}")
    with store.session(write=False) as s:
        assert "records checkpoint 1, which is missing or altered" in checkpoints.check_announced(s, None, True)
    sql(store, f"UPDATE audit_log SET details = '[1]' WHERE id = {entry}")
    with store.session(write=False) as s:
        assert "records checkpoint 1" in checkpoints.check_announced(s, None, True)


def test_signature_verification_for_each_key_kind():
    data = b"head"
    ec_id = Identity(ec.generate_private_key(ec.SECP256R1()), "ec")
    rsa_id = Identity(rsa.generate_private_key(public_exponent=65537, key_size=2048), "rsa")
    ed_id = Identity(ed25519.Ed25519PrivateKey.generate(), "ed")
    for ident in (ec_id, rsa_id):
        assert checkpoints.verify_signature(ident.pem, data, ident.sign(data)) is True
        assert checkpoints.verify_signature(ident.pem, data + b"!", ident.sign(data)) is False
    assert checkpoints.verify_signature(rsa_id.pem, data, ec_id.sign(data)) is False
    assert checkpoints.verify_signature(ed_id.pem, data, ed_id.key.sign(data)) is False   # not a key kind we take
    assert checkpoints.verify_signature(b"not a certificate", data, b"x") is False
    assert checkpoints.verify_signature(ec_id.pem, data, b"") is False


def test_the_exported_file_is_indented_utf_8_for_a_person_to_read(jane):
    cp = dataclasses.replace(jane.checkpoint(signer="Jürgen Ü"), id=1)
    text = checkpoints.export_checkpoints([cp])
    assert text.startswith('{\n  "format": "xfr-audit-checkpoints/1",\n  "checkpoints": [\n    {\n      "case_id": null,')
    assert '"signer": "Jürgen Ü"' in text


def test_checkpoint_files_are_read_up_to_16_mb_and_named_when_refused(tmp_path, jane):
    path = tmp_path / "kept.json"
    with pytest.raises(StoreError) as err:
        checkpoints.load_checkpoint_file(path)
    assert str(err.value) == f"the checkpoint file not found: {path}"
    text = checkpoints.export_checkpoints([jane.checkpoint()])
    path.write_text(text + " " * (2 * 1024 * 1024))          # 2 MB: more than a key file may be, still read
    assert len(checkpoints.load_checkpoint_file(path)) == 1
    with open(path, "wb") as f:
        f.truncate(16 * 1024 * 1024 + 1)
    with pytest.raises(StoreError) as err:
        checkpoints.load_checkpoint_file(path)
    assert str(err.value) == f"the checkpoint file {path} is larger than 16 MB: not read"


def test_signed_through_is_the_newest_entry_a_valid_checkpoint_covers(store, jane):
    def through(case_id=None):
        with store.session(write=False) as s:
            return checkpoints.signed_through(s, case_id)

    assert through() == 0 and through(1) == 0
    with store.session() as s:
        first = checkpoints.create(s, None, jane.sign, jane.pem, jane.name)
    store.log_event("test.later")
    with store.session() as s:
        second = checkpoints.create(s, None, jane.sign, jane.pem, jane.name)
        case_point = checkpoints.create(s, 1, jane.sign, jane.pem, jane.name)
    assert first.last_entry_id < second.last_entry_id
    assert through() == second.last_entry_id and through(1) == case_point.last_entry_id and through(2) == 0
    sql(store, f"UPDATE audit_checkpoints SET signature = '00' WHERE id = {second.id}")
    assert through() == first.last_entry_id                 # the altered one vouches for nothing
    sql(store, f"UPDATE audit_log SET details = '{{}}' WHERE id = {first.last_entry_id}")
    assert through() == 0 and through(1) == 0               # a broken chain: nothing is signed through
