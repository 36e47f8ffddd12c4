"""gui/tasks.py: a plain function on a worker thread, its progress, its cancel and its one error path."""
from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("pytestqt")

from xfr_desktop.core.errors import Cancelled, StoreError, user_message  # noqa: E402
from xfr_desktop.gui.tasks import TaskRunner  # noqa: E402


@pytest.fixture
def runner(qtbot):
    r = TaskRunner("xfr-test-tasks")
    yield r
    r.shutdown(5000)


def test_result_and_progress_arrive_on_the_gui_thread(qtbot, runner):
    gui = threading.get_ident()
    ran_on, progress, done_in_slot = [], [], []

    def work(ctx):
        ran_on.append(threading.get_ident())
        for i in range(3):
            ctx.progress("step", i / 2)
        return 42

    ended = []
    task = runner.start(work, progress=lambda v: progress.append((v, threading.get_ident())),
                        finished=lambda value: done_in_slot.append((value, task.done, threading.get_ident())),
                        ended=lambda: ended.append(True))
    qtbot.waitUntil(lambda: bool(ended), timeout=5000)
    assert ran_on and ran_on[0] != gui
    assert progress == [(("step", 0.0), gui), (("step", 0.5), gui), (("step", 1.0), gui)]
    assert done_in_slot == [(42, True, gui)]   # done already true when the slot runs: it may start the next task


@pytest.mark.parametrize("exc, expected, kind, message", [
    (StoreError("the disk is full"), (), "StoreError", "the disk is full"),
    (RuntimeError("boom\nsecond line"), (), "RuntimeError", "unexpected RuntimeError: boom"),
    (ValueError("written by a newer version"), (ValueError,), "ValueError", "written by a newer version"),
    (MemoryError(), (), "MemoryError", "out of memory"),
])
def test_every_failure_ends_as_one_message(qtbot, runner, exc, expected, kind, message):
    def work(ctx):
        raise exc

    finished, failed = [], []
    runner.start(work, expected=expected, finished=finished.append, failed=lambda *a: failed.append(a))
    qtbot.waitUntil(lambda: bool(failed), timeout=5000)
    assert failed == [(kind, message)] and not finished
    assert user_message(exc, expected) == message
    # the thread survives a failure: the next task runs
    runner.start(lambda ctx: "next", finished=finished.append)
    qtbot.waitUntil(lambda: bool(finished), timeout=5000)
    assert finished == ["next"]


def test_cancel_stops_a_running_function(qtbot, runner):
    started = threading.Event()

    def work(ctx):
        started.set()
        while not ctx.is_cancelled():
            time.sleep(0.005)
        raise Cancelled()

    failed, finished, cancelled = [], [], []
    task = runner.start(work, failed=lambda *a: failed.append(a), finished=finished.append,
                        cancelled=lambda: cancelled.append(True))
    assert started.wait(5)
    task.cancel()
    qtbot.waitUntil(lambda: bool(cancelled), timeout=5000)
    assert task.done and not failed and not finished


def test_shutdown_cancels_and_stops_the_thread(qtbot):
    runner = TaskRunner("xfr-test-shutdown")
    started, stopped = threading.Event(), threading.Event()

    def work(ctx):
        started.set()
        while not ctx.is_cancelled():
            time.sleep(0.005)
        stopped.set()
        raise Cancelled()

    runner.start(work)
    assert started.wait(5)
    runner.shutdown(5000)
    assert stopped.is_set() and runner.thread.isFinished()


def test_user_message_of_file_errors_names_the_file():
    assert user_message(PermissionError(13, "Permission denied", "/x/y.pdf")) == "Permission denied: /x/y.pdf"
    assert user_message(OSError(28, "No space left on device")) == "No space left on device"  # no empty "()"
