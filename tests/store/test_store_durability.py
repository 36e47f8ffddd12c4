"""Transactional writes: a process killed mid-save leaves no half result and loses nothing saved before;
a full disk or a read-only store gives a clear StoreError and loses nothing."""
from __future__ import annotations

import errno
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
from sqlalchemy import event

from xfr_desktop.core.errors import StoreError
from xfr_desktop.store import open_store, pack_arrays, unpack_arrays

from tests.conftest import REPO_ROOT as REPO

# The child saves results forever; each is large enough (~0.5 MB of incompressible data) that the write takes a
# while, and is fully determined by its seed so the parent can check every byte that claims to be saved.
CHILD = r"""
import sys
import numpy as np
from xfr_desktop.store import open_store, pack_arrays

def payload(seed):
    rng = np.random.default_rng(seed)
    maps = {side: {k: rng.random((112, 112), dtype=np.float32) for k in ("H", "S", "S_pos", "S_neg")}
            for side in ("a", "b")}
    return {"score": float(seed), "threshold": 0.3, "decision": bool(seed % 2),
            "parameters": {"seed": seed}, "maps": maps,
            "residuals": pack_arrays({"r": rng.random((128, 32, 32), dtype=np.float32)})}

store = open_store(sys.argv[1])
comparison_id, seed = int(sys.argv[2]), int(sys.argv[3])
while True:
    result = payload(seed)
    print("saving", seed, flush=True)
    store.save_result(comparison_id, result)
    print("saved", seed, flush=True)
    seed += 1
"""


def expected_payload(seed):
    namespace: dict = {}
    exec(CHILD.split("store = open_store")[0], namespace)  # the same payload() the child used
    return namespace["payload"](seed)


def make_comparison(store, tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    case = store.create_case("K-1")
    sha = store.import_image(tmp_path / "a.png", case.id)
    return case, store.add_comparison(case.id, sha, sha)


def test_killed_during_saves_leaves_consistent_database(tmp_path):
    data = tmp_path / "data"
    with open_store(data) as store:
        case, comparison = make_comparison(store, tmp_path)
    acknowledged: list[int] = []
    rng = np.random.default_rng(0)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    for round_ in range(2):
        line = ""
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(data), str(comparison.id), str(100 * round_)],
                                 stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        try:
            # Let it save twice, then kill it at a random moment inside a later save (a save takes ~30-100 ms).
            while len([s for s in acknowledged if s >= 100 * round_]) < 2 or not line.startswith("saving"):
                line = child.stdout.readline()
                assert line, "the child died before saving"
                if line.startswith("saved"):
                    acknowledged.append(int(line.split()[1]))
            time.sleep(float(rng.uniform(0.0, 0.04)))
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.kill()
            child.wait()
        acknowledged.extend(int(x.split()[1]) for x in child.stdout.read().splitlines() if x.startswith("saved"))
        child.stdout.close()

    with sqlite3.connect(data / "xfr.sqlite") as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    with open_store(data) as store:
        results = store.list_results(comparison.id, include_blobs=True)
        seeds = [r.parameters["seed"] for r in results]
        assert set(acknowledged) <= set(seeds), "a result reported as saved was lost"
        for result in results:  # every row complete and byte-exact, including the earliest ones
            expected = expected_payload(result.parameters["seed"])
            assert result.score == expected["score"] and result.decision == expected["decision"]
            assert result.residuals == expected["residuals"]
            maps = unpack_arrays(result.maps_npz)
            for side in ("a", "b"):
                for key, array in expected["maps"][side].items():
                    np.testing.assert_array_equal(maps[side][key], array)
        verification = store.verify_audit(case.id)
        assert verification.ok, verification.message
        saved_entries = [e for e in store.list_audit(case.id) if e.action in ("analysis.saved", "parameters.saved")]
        assert sorted(int(e.object_id) for e in saved_entries) == sorted(r.id for r in results)


def test_full_disk_while_copying_an_image(tmp_path, monkeypatch):
    from PIL import Image

    with open_store(tmp_path / "data") as store:
        case, comparison = make_comparison(store, tmp_path)
        before = store.list_audit()
        Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(tmp_path / "b.png")

        being_written = []

        def no_space(fd):
            being_written.extend(p.name for p in (store.images_dir / ".incoming").iterdir())
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "fsync", no_space)
        with pytest.raises(StoreError, match=r"disk holding .* is full: the image was not imported") as caught:
            store.import_image(tmp_path / "b.png", case.id)
        assert str(store.images_dir) in str(caught.value)                   # says which disk
        # the copy is written as a temp file in images/.incoming (what remove_stale_temp_files cleans up)
        assert len(being_written) == 1 and being_written[0].endswith(".part")
        monkeypatch.undo()
        assert not list((store.images_dir / ".incoming").glob("*"))  # no half file left behind
        assert store.list_audit() == before and len(store.list_comparisons(case.id)) == 1
        sha = store.import_image(tmp_path / "b.png", case.id)  # works again once there is space
        assert store.verify_image(sha)


def test_read_only_image_store(tmp_path, monkeypatch):
    from PIL import Image

    import xfr_desktop.store.imagestore as imagestore

    with open_store(tmp_path / "data") as store:
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")

        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

        monkeypatch.setattr(imagestore.tempfile, "mkstemp", read_only)
        with pytest.raises(StoreError, match="read-only: the image was not imported"):
            store.import_image(tmp_path / "a.png")
        assert store.list_audit() == []


def test_full_database_keeps_earlier_results(tmp_path):
    """SQLite's own 'database or disk is full' (forced with max_page_count) is a clear StoreError."""
    with open_store(tmp_path / "data") as store:
        case, comparison = make_comparison(store, tmp_path)
        first = store.save_result(comparison.id, {"score": 0.5, "threshold": 0.3, "decision": True})
        with store.engine.connect() as conn:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar()

        @event.listens_for(store.engine, "connect")
        def cap_size(dbapi_connection, _record):
            dbapi_connection.execute(f"PRAGMA max_page_count = {pages + 2}")

        store.engine.dispose()  # reconnect with the cap
        big = {"score": 0.6, "threshold": 0.3, "decision": True,
               "residuals": pack_arrays({"r": np.random.default_rng(1).random(200_000)})}
        with pytest.raises(StoreError, match="is full: nothing was saved"):
            store.save_result(comparison.id, big)
        event.remove(store.engine, "connect", cap_size)
        store.engine.dispose()
        assert [r.id for r in store.list_results(comparison.id)] == [first.id]
        assert store.verify_audit().ok


def test_read_only_database(tmp_path):
    """A database SQLite may not write (here forced with query_only) is a clear StoreError, data intact."""
    with open_store(tmp_path / "data") as store:
        case = store.create_case("R-1")

        @event.listens_for(store.engine, "connect")
        def read_only(dbapi_connection, _record):
            dbapi_connection.execute("PRAGMA query_only = ON")

        store.engine.dispose()
        with pytest.raises(StoreError, match="read-only: nothing was saved"):
            store.create_case("R-2")
        assert [c.number for c in store.list_cases()] == ["R-1"]  # reading still works
        event.remove(store.engine, "connect", read_only)
        store.engine.dispose()
        assert store.get_case(case.id).number == "R-1"


READ_ONLY_CHILD = r"""
import sys
from xfr_desktop.core.errors import StoreError
from xfr_desktop.store import open_store
try:
    with open_store(sys.argv[1]) as store:
        store.import_image(sys.argv[2])
except StoreError as exc:
    print("StoreError:", exc)
else:
    print("imported")
"""


def _without_permission_override():
    """preexec_fn: drop the capabilities that let root ignore permission bits (CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH, CAP_FOWNER) from the bounding set, so the exec'd child obeys a read-only folder."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):
        if libc.prctl(24, cap, 0, 0, 0) != 0:                     # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "cannot drop root's permission override (needs CAP_SETPCAP)")


def test_read_only_data_folder(tmp_path):
    """A data folder the user may not write: a clear StoreError, nothing lost. Root ignores permission bits, so
    the import runs in a child process which, under root (as in CI), has lost the capabilities to override
    them."""
    from PIL import Image

    if os.name != "posix":
        pytest.skip("POSIX permission bits")
    data = tmp_path / "data"
    with open_store(data) as store:
        store.create_case("P-1")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    modes = {p: p.stat().st_mode for p in [data, data / "images", *data.glob("xfr.sqlite*")]}
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    try:
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        out = subprocess.run([sys.executable, "-c", READ_ONLY_CHILD, str(data), str(tmp_path / "a.png")],
                             capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
                             preexec_fn=_without_permission_override if os.geteuid() == 0 else None)
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("StoreError:") and "Traceback" not in out.stdout, out.stdout
    assert "read-only" in out.stdout or "cannot open" in out.stdout, out.stdout
    with open_store(data) as store:
        assert [c.number for c in store.list_cases()] == ["P-1"]
        assert [e.action for e in store.list_audit()] == ["case.created"]


def test_a_failing_atomic_write_leaves_the_old_file(tmp_path):
    """atomic_write goes through a temp file and a rename: a write that fails midway (disk full after half the
    bytes) leaves the old file byte for byte, names the target, and leaves no temp file behind."""
    from xfr_desktop.core.fileio import atomic_write

    target = tmp_path / "calibration.json"
    target.write_bytes(b"old contents\n")

    def half_then_full(f):
        f.write(b"new half-written cont")
        f.flush()
        # the temp file lies beside the target and is named after it (a leftover of a killed write says whose)
        assert [p.name[:16] + p.suffix for p in tmp_path.iterdir() if p != target] == ["calibration.json.tmp"]
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError, match="calibration.json") as caught:
        atomic_write(target, half_then_full)
    assert caught.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calibration.json"]
    atomic_write(target, lambda f: f.write(b"new contents\n"))
    assert target.read_bytes() == b"new contents\n"


def test_atomic_write_modes_follow_the_umask_or_stay_owner_only(tmp_path):
    """mode (default 0644) minus the umask, like open(); mode=None keeps mkstemp's owner-only 0600 (reports)."""
    from xfr_desktop.core.fileio import atomic_write

    def mode_of(name, umask, **kw):
        old = os.umask(umask)
        try:
            return stat.S_IMODE(atomic_write(tmp_path / name, lambda f: f.write(b"x"), **kw).stat().st_mode)
        finally:
            os.umask(old)

    assert mode_of("a", 0o022) == 0o644 and mode_of("b", 0o077) == 0o600 and mode_of("c", 0o002, mode=0o664) == 0o664
    assert mode_of("d", 0o022, mode=None) == 0o600


def test_imported_evidence_file_and_its_folder_are_fsynced(tmp_path, monkeypatch):
    """Observed per file descriptor: each fsync records which file it flushed (device and inode; a rename keeps
    the inode), so a missing fsync of the evidence copy itself is seen, not hidden behind the folder's fsync."""
    from PIL import Image

    synced: list[tuple[int, int]] = []
    real_fsync = os.fsync

    def observed_fsync(fd):
        st = os.fstat(fd)
        synced.append((st.st_dev, st.st_ino))
        return real_fsync(fd)

    Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(tmp_path / "e.png")
    with open_store(tmp_path / "data") as store:
        case = store.create_case("F-1")
        monkeypatch.setattr(os, "fsync", observed_fsync)
        sha = store.import_image(tmp_path / "e.png", case.id)
        monkeypatch.undo()
        stored = store.image_path(sha)
    file_st, folder_st = stored.stat(), stored.parent.stat()
    assert (file_st.st_dev, file_st.st_ino) in synced, "the evidence file's bytes were never fsynced"
    assert (folder_st.st_dev, folder_st.st_ino) in synced, "the folder holding the renamed file was never fsynced"


def test_stale_temp_files_of_killed_imports_are_removed(tmp_path):
    """A .part file older than an hour in images/.incoming is a leftover of an import that was killed; a fresh one
    may be an import in progress and stays, and so does anything that is not a .part file."""
    from xfr_desktop.store.imagestore import ImageStore

    images = ImageStore(tmp_path / "images")
    incoming = tmp_path / "images" / ".incoming"
    incoming.mkdir(parents=True)
    for name in ("old.part", "fresh.part", "old.txt"):
        (incoming / name).write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    for name in ("old.part", "old.txt"):
        os.utime(incoming / name, (two_hours_ago, two_hours_ago))
    images.remove_stale_temp_files()
    assert sorted(p.name for p in incoming.iterdir()) == ["fresh.part", "old.txt"]
    with pytest.raises(StoreError, match=rf"^image 0123456789ab… is missing from the image store "
                                         rf"{re.escape(str(tmp_path / 'images'))}$"):
        images.find("0123456789abcdef" * 4, ".png")
