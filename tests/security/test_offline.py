"""Nothing in the product touches the network.

In-process, the ``network_guard`` fixture turns every Python-level connection attempt (``socket.connect``,
``connect_ex``, ``sendto`` on internet sockets, ``socket.create_connection``, ``getaddrinfo`` of a non-local host)
into an exception AND a recorded failure (so code that swallows the exception still fails the test). Under it run
`xfr explain` on the sample case (a tiny random model, and the bundled model when present), `xfr evaluate verify`
on the sample pair list, the app's demo and a signed report of the demo case. Libraries in C (Qt, torch, OpenCV) bypass Python's socket module, so
`xfr explain` and the demo also run as child processes under ``strace``: any connect() or sendto() to an internet
address fails the test.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT as REPO, strace_usable

SAMPLES = REPO / "resources" / "samples"
BUNDLED_MODEL = REPO / "models" / "xfr-dlib-affine-joint.pt"
LOCAL_HOSTS = {None, "", "localhost", "127.0.0.1", "::1", "0.0.0.0", "::"}
INET_FAMILIES = (socket.AF_INET, socket.AF_INET6)


class NetworkAccessAttempt(OSError):
    """Raised in place of a connection; an OSError so callers see what a dead network gives them."""


@pytest.fixture
def network_guard(monkeypatch):
    """Every connection attempt raises and is recorded; a recorded attempt fails the test at teardown."""
    attempts: list[str] = []

    def refuse(what: str):
        attempts.append(what)
        raise NetworkAccessAttempt(f"network access attempted in an offline test: {what}")

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_sendto, real_getaddrinfo = socket.socket.sendto, socket.getaddrinfo

    def connect(self, address):
        if self.family in INET_FAMILIES:
            refuse(f"socket.connect{address!r}")
        return real_connect(self, address)

    def connect_ex(self, address):
        if self.family in INET_FAMILIES:
            refuse(f"socket.connect_ex{address!r}")
        return real_connect_ex(self, address)

    def sendto(self, data, *args):
        if self.family in INET_FAMILIES:
            refuse(f"socket.sendto{args!r}")
        return real_sendto(self, data, *args)

    def create_connection(address, *args, **kwargs):
        refuse(f"socket.create_connection({address!r})")

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in LOCAL_HOSTS:
            refuse(f"socket.getaddrinfo({name!r})")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket.socket, "sendto", sendto)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
    if attempts:
        pytest.fail("the product tried to reach the network: " + "; ".join(attempts[:5]), pytrace=False)


@pytest.fixture
def tiny_model_file(tiny_model, tmp_path) -> Path:
    from xfr_desktop.core.model import save_model

    path = tmp_path / "tiny.pt"
    save_model(tiny_model, path)
    return path


def sample_pairs() -> list[dict]:
    return json.loads((SAMPLES / "case.json").read_text(encoding="utf-8"))["pairs"]


def explain_sample_pair(pair: dict, out: Path, model: Path, *extra: str) -> dict:
    from xfr_desktop.cli import main

    code = main(["explain", str(SAMPLES / pair["image_a"]), str(SAMPLES / pair["image_b"]),
                 "--model", str(model), "--out", str(out), "--device", "cpu", *extra])
    assert code == 0, f"xfr explain failed on {pair['id']}"
    result = json.loads((out / "result.json").read_text())
    assert result["decision"] in ("match", "non-match")
    assert result["faces_found"]["a"] >= 1 and result["faces_found"]["b"] >= 1
    for name in ("a_S.png", "b_S_pos.png", "b_S_neg.png", "maps.npz"):
        assert (out / name).stat().st_size > 0
    return result


# --- the guard itself ------------------------------------------------------------------------------------------
def test_guard_turns_connection_attempts_into_failures(network_guard):
    import urllib.request

    with pytest.raises(OSError):
        urllib.request.urlopen("http://192.0.2.1/", timeout=1)  # TEST-NET-1: never routed
    with pytest.raises(NetworkAccessAttempt):
        socket.create_connection(("example.org", 443), timeout=1)
    with pytest.raises(NetworkAccessAttempt):
        socket.getaddrinfo("example.org", 443)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(NetworkAccessAttempt):
            udp.sendto(b"x", ("192.0.2.1", 53))
        with pytest.raises(NetworkAccessAttempt):
            udp.connect_ex(("192.0.2.1", 53))
    finally:
        udp.close()
    assert len(network_guard) == 5, network_guard
    assert any("192.0.2.1" in a for a in network_guard)
    network_guard.clear()  # they were deliberate: the teardown check must pass


def test_guard_leaves_local_sockets_alone(network_guard):
    assert socket.getaddrinfo("localhost", 0)  # name lookups of this machine need no network
    left, right = socket.socketpair()  # AF_UNIX: local IPC, not the network
    try:
        left.sendall(b"ok")
        assert right.recv(2) == b"ok"
    finally:
        left.close()
        right.close()
    assert network_guard == []


# --- the product under the guard -------------------------------------------------------------------------------
def test_explain_sample_case_offline(network_guard, tiny_model_file, tmp_path):
    pairs = sample_pairs()
    assert len(pairs) >= 2
    for pair in pairs:  # the per-pair trust check runs under the guard in the bundled-model test below
        explain_sample_pair(pair, tmp_path / pair["id"], tiny_model_file, "--no-trust-check")
    assert network_guard == []


def test_explain_with_bundled_model_offline(network_guard, tmp_path):
    pair = sample_pairs()[0]
    result = explain_sample_pair(pair, tmp_path / "bundled", BUNDLED_MODEL)
    assert result["model_sha256"] and Path(result["model"]["path"]).name == BUNDLED_MODEL.name
    assert network_guard == []


def test_evaluate_verify_offline(network_guard, tiny_model_file, tmp_path):
    from xfr_desktop.cli import main

    out = tmp_path / "verify"
    code = main(["evaluate", "verify", "--pairs", str(SAMPLES / "pairs.csv"), "--root", str(SAMPLES),
                 "--model", str(tiny_model_file), "--out", str(out), "--device", "cpu", "--folds", "2", "-q"])
    assert code == 0
    result = json.loads((out / "verify.json").read_text())
    assert result["n_pairs"] == len(sample_pairs())
    assert network_guard == []


def test_demo_case_report_signed_and_verified_offline(network_guard, tiny_model_file, tmp_path, monkeypatch):
    """The desktop demo, then signing and checking a report of its case, all in this process with every socket
    refused: no update check, no revocation data, no timestamps (pyHanko can fetch both)."""
    from xfr_desktop.cli import main as xfr_main
    from xfr_desktop.gui.app import load_sample_case, main as app_main

    data = tmp_path / "data"
    shot = tmp_path / "demo.png"
    assert app_main(["--offscreen", "--demo", "--screenshot", str(shot), "--data-dir", str(data),
                     "--model", str(tiny_model_file), "--device", "cpu"]) == 0
    assert shot.stat().st_size > 10_000  # a rendered window, not an empty file
    monkeypatch.setenv("XFR_TEST_PASSPHRASE", "correct horse battery staple")
    key = tmp_path / "examiner.p12"
    assert xfr_main(["keys", "create", "--name", "Offline Examiner", "--out", str(key),
                     "--passphrase-env", "XFR_TEST_PASSPHRASE"]) == 0
    pdf = tmp_path / "report.pdf"
    assert xfr_main(["--data-dir", str(data), "report", "--case", load_sample_case()["number"], "--out", str(pdf),
                     "--sign", str(key), "--passphrase-env", "XFR_TEST_PASSPHRASE"]) == 0
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert xfr_main(["verify-report", str(pdf), "--trust", str(key.with_suffix(".pem"))]) == 0
    assert network_guard == []


# --- C libraries too: child processes under strace --------------------------------------------------------------
INET_CALL = re.compile(r"\b(connect|sendto|sendmsg)\(.*sa_family=AF_INET6?\b")


def run_traced(cmd: list[str], log: Path, timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", QT_QPA_PLATFORM="offscreen")
    strace = ["strace", "-f", "-qq", "-e", "signal=none", "-e", "trace=connect,sendto,sendmsg", "-o", str(log)]
    return subprocess.run(strace + cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=log.parent)


def assert_no_inet_calls(log: Path) -> None:
    calls = [line.strip() for line in log.read_text(errors="replace").splitlines() if INET_CALL.search(line)]
    assert not calls, "network system calls:\n" + "\n".join(calls[:10])


@pytest.mark.slow
def test_explain_and_demo_processes_make_no_network_calls(tiny_model_file, tmp_path, demo_run):
    """The demo is the session's shared child process (conftest ``demo_run``), traced when it ran."""
    why = strace_usable()
    if why:
        pytest.skip(why)
    pair = sample_pairs()[0]
    explain_log = tmp_path / "explain.strace"
    proc = run_traced([sys.executable, "-m", "xfr_desktop.cli", "explain", str(SAMPLES / pair["image_a"]),
                       str(SAMPLES / pair["image_b"]), "--model", str(tiny_model_file), "--out",
                       str(tmp_path / "explain"), "--device", "cpu"], explain_log, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "explain" / "result.json").is_file()
    assert_no_inet_calls(explain_log)

    assert demo_run.returncode == 0, demo_run.stderr[-2000:]
    assert (demo_run.data / "demo" / "xfr-desktop-demo.png").is_file()
    assert demo_run.strace_log is not None and demo_run.strace_log.is_file()   # ran under strace (an empty log is fine)
    assert_no_inet_calls(demo_run.strace_log)


def test_strace_pattern_recognises_an_internet_connect(tmp_path):
    """The pattern above must match what strace prints for an internet connect, or the traced test proves nothing."""
    log = tmp_path / "sample.strace"
    log.write_text('1234  connect(3, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("1.2.3.4")}, 16) '
                   '= -1 ENETUNREACH\n'
                   '1234  connect(4, {sa_family=AF_UNIX, sun_path="/run/dbus/system_bus_socket"}, 110) = 0\n')
    with pytest.raises(AssertionError, match="1.2.3.4"):
        assert_no_inet_calls(log)
    log.write_text('1234  connect(4, {sa_family=AF_UNIX, sun_path="/tmp/.X11-unix/X0"}, 20) = 0\n')
    assert_no_inet_calls(log)
