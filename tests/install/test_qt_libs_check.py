"""scripts/check_qt_libs.sh, which scripts/run_demo.sh runs before opening a window: it names the Debian packages
of the Qt xcb plugin's missing libraries (from ldd, here a stub first on PATH) and exits 1, or says nothing."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "check_qt_libs.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def check(tmp_path, ldd_output: str) -> subprocess.CompletedProcess:
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "ldd").write_text(f"#!/bin/sh\ncat <<'EOF'\n{ldd_output}\nEOF\n")
    (stub / "ldd").chmod(0o755)
    (tmp_path / "Qt").mkdir()
    env = dict(os.environ, PATH=f"{stub}{os.pathsep}{os.environ['PATH']}", XFR_QT_DIR=str(tmp_path / "Qt"))
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)


def test_missing_libraries_are_named_as_the_packages_to_install(tmp_path):
    proc = check(tmp_path, "\tlibxcb-icccm.so.4 => not found\n\tlibxcb-keysyms.so.1 => not found\n"
                           "\tlibxkbcommon-x11.so.0 => not found\n\tlibxcb-icccm.so.4 => not found\n"
                           "\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f0000000000)")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1  # one line
    assert "missing: libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0 (" in proc.stderr
    assert "apt-get install -y libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0;" in proc.stderr
    assert "libxcb1" not in proc.stderr


def test_nothing_is_said_when_every_library_is_found(tmp_path):
    proc = check(tmp_path, "\tlibxcb-cursor.so.0 => /lib/x86_64-linux-gnu/libxcb-cursor.so.0 (0x00007f0000000000)")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
