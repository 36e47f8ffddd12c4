"""One way to run work off the GUI thread: a plain function on a worker thread, with progress, cancel and one
error path (the shape of Orange3's ``ConcurrentWidgetMixin`` and napari's ``create_worker``).

    runner = TaskRunner("xfr-analysis", parent)
    task = runner.start(lambda ctx: analyse(..., progress=ctx.progress, is_cancelled=ctx.is_cancelled),
                        progress=...,    # whatever the function passed to ctx.progress
                        finished=...,    # its return value
                        failed=...,      # (exception class name, one line for people: core.errors.user_message)
                        cancelled=...)   # it raised core.errors.Cancelled (after task.cancel(), usually)
    task.cancel()

The function runs on the runner's thread, tasks one after another in the order started. A :class:`Task` lives on
the GUI thread: its outcome crosses threads once, as a queued signal, and is then re-emitted there, so ``done``
is already true when ``finished``/``failed``/``cancelled`` reach their slots (a slot may start the next task).
"""
from __future__ import annotations

import logging
import threading
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..core.errors import Cancelled, XfrError, user_message

log = logging.getLogger(__name__)


class TaskContext:
    """What the function gets: report progress, ask whether it should stop (both safe from the worker thread)."""

    def __init__(self, task: "Task"):
        self._task = task
        self.cancel_event = threading.Event()   # handed to code that waits on an Event (the trainer)

    def progress(self, *values: Any) -> None:
        self._task.progress.emit(values[0] if len(values) == 1 else values)

    def is_cancelled(self) -> bool:
        return self.cancel_event.is_set()


class Task(QObject):
    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()
    ended = Signal()                 # after any of the three above
    _outcome = Signal(str, object)   # worker thread -> this object's (the GUI) thread

    def __init__(self, fn: Callable[[TaskContext], Any], expected: tuple = (), parent: QObject | None = None):
        super().__init__(parent)
        self.fn = fn
        self.expected = expected     # exception types whose text is already a message for people
        self.context = TaskContext(self)
        self.done = False
        self._outcome.connect(self._deliver)

    def cancel(self) -> None:
        """Ask the function to stop; it sees ``ctx.is_cancelled()`` (safe from any thread)."""
        self.context.cancel_event.set()

    def execute(self) -> None:
        """Run the function (on the worker thread) and send its outcome home."""
        try:
            value = self.fn(self.context)
        except Cancelled:
            self._outcome.emit("cancelled", None)
        except BaseException as exc:  # noqa: BLE001 - every failure ends as one message, never a dead thread
            if not isinstance(exc, (XfrError, MemoryError, OSError, *self.expected)):
                log.error("%s failed:\n%s", getattr(self.fn, "__name__", "task"), traceback.format_exc())
            self._outcome.emit("failed", (type(exc).__name__, user_message(exc, self.expected)))
        else:
            self._outcome.emit("finished", value)

    @Slot(str, object)
    def _deliver(self, kind: str, value: object) -> None:
        self.done = True
        if kind == "finished":
            self.finished.emit(value)
        elif kind == "failed":
            self.failed.emit(*value)
        else:
            self.cancelled.emit()
        self.ended.emit()


class _Executor(QObject):
    """Lives on the runner's thread; executes the tasks queued to it."""

    @Slot(object)
    def run(self, task: Task) -> None:
        task.execute()


class TaskRunner(QObject):
    """Owns one worker thread (lives on the GUI thread). :meth:`start` queues a function, :meth:`shutdown` ends."""

    _queued = Signal(object)

    def __init__(self, name: str, parent: QObject | None = None):
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName(name)
        self._executor = _Executor()
        self._executor.moveToThread(self.thread)
        self._queued.connect(self._executor.run)
        # started and not known to be done: kept alive (no Qt parent, so no lambda or parent ties a task's
        # lifetime to the runner's) and cancelled on shutdown
        self._live: set[Task] = set()
        self.thread.start()

    def start(self, fn: Callable[[TaskContext], Any], expected: tuple = (), **slots: Callable) -> Task:
        """Queue ``fn(ctx)``. ``slots``: signal name -> slot (``progress=``, ``finished=``, ``failed=``,
        ``cancelled=``, ``ended=``), connected before the function can start, so no early signal is missed."""
        task = Task(fn, expected)
        for name, slot in slots.items():
            getattr(task, name).connect(slot)
        self._live = {t for t in self._live if not t.done}
        self._live.add(task)
        self._queued.emit(task)
        return task

    def cancel_all(self) -> None:
        for task in self._live:
            task.cancel()

    def shutdown(self, wait_ms: int = 30000) -> None:
        """Cancel what runs and stop the thread once the current function returns (called on close)."""
        self.cancel_all()
        self.thread.quit()
        self.thread.wait(wait_ms)
