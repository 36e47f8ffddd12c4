"""Issue 13, attack 4: under umask 022 every folder the app creates in the data folder is 0700 and every file
(database, its WAL/SHM, upgrade backups, evidence images) 0600; a folder left readable by others is tightened."""
from __future__ import annotations

import os
import stat
import sys

import numpy as np
import pytest
from PIL import Image

from xfr_desktop.cli import main as xfr_main
from xfr_desktop.store import open_store

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")


def modes(root):
    found = {}
    for folder, _, files in os.walk(root):
        found[folder] = stat.S_IMODE(os.stat(folder).st_mode)
        for name in files:
            found[os.path.join(folder, name)] = stat.S_IMODE(os.stat(os.path.join(folder, name)).st_mode)
    return found


def loose(found, data):
    """Paths readable or writable by group or others (the data folder's own parents excluded)."""
    return {p: oct(m) for p, m in found.items() if m & 0o077}


def test_everything_the_app_creates_is_owner_only(tmp_path, umask_022):
    data = tmp_path / "data"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
    assert xfr_main(["--data-dir", str(data), "cases", "create", "P-1", "--examiner", "Ann"]) == 0
    with open_store(data) as store:  # kept open: the WAL and SHM files exist now
        sha = store.import_image(tmp_path / "a.png", case_id=1)
        store.add_comparison(1, sha, sha)
        found = modes(data)
        assert str(data / "xfr.sqlite-wal") in found and str(data / "xfr.sqlite-shm") in found
    assert loose(found, data) == {}
    assert found[str(data)] == 0o700 and found[str(data / "xfr.sqlite")] == 0o600
    assert found[str(store.image_path(sha))] == 0o600


def test_upgrade_backup_is_owner_only(tmp_path, umask_022):
    from xfr_desktop.store.migrations import create_database_at_version

    data = tmp_path / "data"
    data.mkdir()
    create_database_at_version(data / "xfr.sqlite", 1)
    assert xfr_main(["--data-dir", str(data), "cases", "list"]) == 0
    assert loose(modes(data), data) == {}
    assert (data / "xfr.sqlite.v1.bak").is_file()


def test_loose_modes_left_by_an_older_version_are_tightened(tmp_path, umask_022, caplog):
    data = tmp_path / "data"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
    with open_store(data) as store:
        sha = store.import_image(tmp_path / "a.png")
        evidence = store.image_path(sha)
    for path, mode in ((data, 0o755), (evidence.parent, 0o755), (evidence, 0o644), (data / "xfr.sqlite", 0o644)):
        os.chmod(path, mode)
    assert xfr_main(["--data-dir", str(data), "cases", "list"]) == 0
    assert loose(modes(data), data) == {}
    assert "made the data folder" in caplog.text


def test_tightening_keeps_a_read_only_folder_read_only(tmp_path, umask_022):
    """Only group/other bits are removed: a data folder its owner made read-only (0555, files 0444) becomes
    0500/0400, never writable again (it used to be set to 0700/0600, undoing the owner's choice)."""
    from xfr_desktop.store.private import tighten

    data = tmp_path / "data"
    with open_store(data) as store:
        store.create_case("T-1")
    files = [p for p in data.rglob("*") if p.is_file()]
    folders = [data, *(p for p in data.rglob("*") if p.is_dir())]
    try:
        for p in files:
            p.chmod(0o444)
        for p in folders:
            p.chmod(0o555)
        assert tighten(data) == len(files) + len(folders)
        found = modes(data)
        assert {found[str(p)] for p in files} == {0o400} and {found[str(p)] for p in folders} == {0o500}
    finally:
        for p in folders:
            p.chmod(0o700)
