"""The training wizard's background work: the run, step-time estimates and every load, on one task runner."""
from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

from ... import training_setup
from ..tasks import TaskRunner


class TrainingController(QObject):
    """Runs the trainer, the step-time estimates and the pages' loads on the ``xfr-training`` task runner (lives
    on the GUI thread; its ``runner`` is what the pages start their loads on).

    The GUI thread sets the pause Event directly; cancelling sets the task's cancel Event, which the trainer polls.
    """

    progress = Signal(object)        # TrainingProgress
    result = Signal(object)          # TrainResult (cancelled or finished)
    error = Signal(str, str)         # exception class name, one-line message
    estimated = Signal(str, float, int)   # device, seconds per step (nan if it failed), request number

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.runner = TaskRunner("xfr-training", self)
        self.pause_event = threading.Event()
        self._run = None

    @property
    def running(self) -> bool:
        return self._run is not None and not self._run.done

    def start(self, config, gpus: int = 1) -> None:
        self.pause_event.clear()
        self._run = self.runner.start(
            lambda ctx: training_setup.run_training(config, gpus, ctx.progress, self.pause_event, ctx.cancel_event),
            progress=self.progress, finished=self.result, failed=self.error)

    def request_estimate(self, device: str, spec: dict, batch_size: int, mode: str, request: int) -> None:
        """Time a training step on ``device`` (a few seconds on a CPU) off the GUI thread; the answer comes as
        :attr:`estimated` (queued behind a running training, which never happens from the device page)."""
        self.runner.start(lambda ctx: training_setup.estimate_step(device, spec, batch_size, mode),
                          finished=lambda seconds: self.estimated.emit(device, seconds, request))

    def set_paused(self, paused: bool) -> None:
        (self.pause_event.set if paused else self.pause_event.clear)()

    def cancel(self) -> None:
        if self._run is not None:
            self._run.cancel()
        self.pause_event.clear()

    def shutdown(self, wait_ms: int = 120000) -> None:
        """Cancel a run (it writes its checkpoint) and stop the thread."""
        self.pause_event.clear()
        self.runner.shutdown(wait_ms)
