"""Mutation pins for store/private.py (issue 28): the literal permission bits of what the data folder holds.

Every expected mode below is written out in octal, not read from the module: a mask one bit short, a tighten that
follows a link or changes a mode it need not, or a count that is off, fails here."""
from __future__ import annotations

import logging
import os
import stat
import sys

import pytest

from xfr_desktop.store.private import create_file, make_dir, tighten

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_make_dir_creates_nested_folders_and_makes_the_new_one_owner_only(tmp_path, umask_022):
    leaf = tmp_path / "a" / "b" / "c"
    make_dir(leaf)
    assert leaf.is_dir()
    assert mode(leaf) == 0o700
    assert mode(tmp_path / "a") == 0o755        # parents made by mkdir -p keep the umask's mode (tighten's job)


def test_make_dir_leaves_an_existing_folder_as_it_is(tmp_path, umask_022):
    folder = tmp_path / "kept"
    folder.mkdir()
    folder.chmod(0o750)
    make_dir(folder)
    assert mode(folder) == 0o750


def test_create_file_makes_an_empty_0600_file_and_keeps_an_existing_one(tmp_path, umask_022):
    new = tmp_path / "new.sqlite"
    create_file(new)
    assert new.read_bytes() == b"" and mode(new) == 0o600
    old = tmp_path / "old.sqlite"
    old.write_bytes(b"keep me")
    old.chmod(0o644)
    create_file(old)
    assert old.read_bytes() == b"keep me" and mode(old) == 0o644


@pytest.mark.parametrize("bit", [0o001, 0o002, 0o004, 0o010, 0o020, 0o040])
def test_each_group_or_other_bit_alone_is_removed(tmp_path, bit):
    """Both a file and a folder with a single group/other bit lose exactly that bit (and count once each)."""
    root = tmp_path / "root"
    root.mkdir()
    f = root / "f"
    f.write_bytes(b"")
    f.chmod(0o600 | bit)
    root.chmod(0o700 | bit)
    try:
        assert tighten(root) == 2
        assert (mode(root), mode(f)) == (0o700, 0o600)
    finally:
        root.chmod(0o700)


def test_tighten_counts_only_what_it_changed_and_keeps_owner_bits(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    private, loose, exec_ = root / "private", root / "sub" / "loose", root / "sub" / "tool"
    for p in (private, loose, exec_):
        p.write_bytes(b"x")
    private.chmod(0o600)
    loose.chmod(0o666)
    exec_.chmod(0o755)
    root.chmod(0o700)
    (root / "sub").chmod(0o777)
    assert tighten(root) == 3           # sub, loose, tool; root and private were owner-only already
    # files keep at most rw for the owner (the data folder holds no programs), folders at most rwx
    assert [mode(p) for p in (root, root / "sub", private, loose, exec_)] == [0o700, 0o700, 0o600, 0o600, 0o600]
    assert tighten(root) == 0           # nothing left to change


def test_tighten_does_not_follow_a_link_out_of_the_folder(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"x")
    outside.chmod(0o644)
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    root.chmod(0o700)
    (root / "link").symlink_to(outside)
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    assert tighten(root) == 0
    assert mode(outside) == 0o644


def test_tighten_of_a_missing_folder_changes_nothing(tmp_path):
    assert tighten(tmp_path / "absent") == 0


def test_a_mode_that_cannot_be_set_is_logged_not_raised(tmp_path, caplog):
    missing = tmp_path / "gone" / "sub"
    with caplog.at_level(logging.WARNING, logger="xfr_desktop.store.private"):
        from xfr_desktop.store import private
        assert private._chmod(missing, 0o700) is False
        assert private._tighten_one(missing, 0o600) == 0
    assert caplog.messages == [f"cannot make {missing} private (No such file or directory): other users may be "
                               "able to read it"]
