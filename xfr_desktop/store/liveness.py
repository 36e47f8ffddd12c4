"""Whether the process that marked a comparison 'running' is still alive, so a killed analysis is not shown as
running forever. The mark is "process PID on HOST"; another computer's process (a shared folder) cannot be checked
and counts as alive. A PID reused by an unrelated process also counts as alive (rare, and only delays the mark)."""
from __future__ import annotations

import os
import re
import socket
import sys

_MARK = re.compile(r"^analysis running in process (\d+) on (.+)$")


def running_here() -> str:
    return f"analysis running in process {os.getpid()} on {socket.gethostname()}"


def still_running(message: str | None) -> bool:
    """False when the mark names a process of this computer that is gone, or names none (a killed older version)."""
    match = _MARK.match(message or "")
    if match is None:
        return False
    if match.group(2) != socket.gethostname():
        return True
    return _alive(int(match.group(1)))


def _alive(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate the process on Windows
        return _alive_windows(pid)
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _alive_windows(pid: int) -> bool:
    import ctypes

    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(0x00100000, False, pid)  # SYNCHRONIZE
    if not handle:
        return False
    try:
        return kernel32.WaitForSingleObject(handle, 0) == 0x102  # WAIT_TIMEOUT: not signalled, still running
    finally:
        kernel32.CloseHandle(handle)
