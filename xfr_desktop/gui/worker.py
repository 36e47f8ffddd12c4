"""Signal adapters around the Qt-free use cases in :mod:`xfr_desktop.analysis`, each on its own task runner.

:class:`AnalysisController` runs :func:`~xfr_desktop.analysis.analyse_comparison` (one job at a time, cancellable)
and :class:`LoaderController` reopens stored results with :func:`~xfr_desktop.analysis.load_result`. Torch is
imported on the worker thread the first time it is needed, so the window appears without waiting for it.
"""
from __future__ import annotations

import gc

from PySide6.QtCore import QObject, Signal, Slot

from ..analysis import AnalysisJob, AnalysisOutcome, FaceChoiceRequest, LoadedResult  # noqa: F401 - re-exported
from ..analysis import ModelCache, analyse_comparison, load_result, stage_reporter
from ..core.errors import Cancelled
from .tasks import TaskRunner


def freeze_long_lived_objects() -> None:
    """Move the objects alive now (modules, the model) out of the garbage collector's reach.

    A full collection walks every tracked object while holding the GIL; with torch, SQLAlchemy and pyqtgraph
    loaded that takes hundreds of milliseconds and, when the worker triggers it, freezes the GUI thread too.
    Freezing what is long-lived anyway keeps later collections small. (No collection first: that alone would
    hold the GIL for as long.)
    """
    gc.freeze()


def describe_device(dev) -> str:
    if dev.type == "cuda":
        import torch

        return f"CUDA ({torch.cuda.get_device_name(dev)})"
    return "CPU"


class AnalysisController(QObject):
    """Runs analyses on the ``xfr-analysis`` thread; lives on the GUI thread. :meth:`start`, :meth:`cancel`."""

    progress = Signal(str, float)            # stage label, overall fraction 0..1
    finished = Signal(object)                # AnalysisOutcome
    failed = Signal(str, str)                # error kind (exception class name), one-line message
    cancelled = Signal()
    face_choice_needed = Signal(object)      # FaceChoiceRequest
    device_ready = Signal(str)               # "CUDA (NVIDIA H100)" / "CPU"; emitted from the worker thread
    warmed_up = Signal()

    def __init__(self, store, parent: QObject | None = None):
        super().__init__(parent)
        self.store = store
        self.runner = TaskRunner("xfr-analysis", self)
        self.models = ModelCache()           # touched only on the worker thread
        self._task = None

    @property
    def thread(self):
        return self.runner.thread

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done

    def warm_up(self, device: str | None = None) -> None:
        """Import torch and the engine in the background so the first analysis (or reopened result) is quick."""
        self.runner.start(lambda ctx: self._warm_up(device), ended=self.warmed_up)

    def _warm_up(self, device: str | None) -> None:
        try:
            from ..core import explain, serialize  # noqa: F401
            from ..core.model import resolve_device

            self.device_ready.emit(describe_device(resolve_device(device)))
        except Exception as exc:  # reported again, with advice, when an analysis runs
            self.device_ready.emit(f"unavailable ({exc})")
        freeze_long_lived_objects()

    def start(self, job: AnalysisJob) -> bool:
        if self.busy:
            return False
        self._task = self.runner.start(lambda ctx: self._analyse(job, ctx), progress=self._on_progress,
                                       finished=self._on_finished, failed=self.failed, cancelled=self.cancelled)
        return True

    def _analyse(self, job: AnalysisJob, ctx):
        report = stage_reporter(ctx.progress)
        report("model", 0.0)
        model = self.models.model(job.model_path, job.device)
        self.device_ready.emit(describe_device(model.device))
        report("model", 1.0)
        if ctx.is_cancelled():
            raise Cancelled()
        return analyse_comparison(self.store, job, model, aligner=self.models.aligner(model),
                                  progress=ctx.progress, is_cancelled=ctx.is_cancelled)

    @Slot(object)
    def _on_progress(self, value) -> None:
        self.progress.emit(*value)

    @Slot(object)
    def _on_finished(self, outcome) -> None:
        (self.face_choice_needed if isinstance(outcome, FaceChoiceRequest) else self.finished).emit(outcome)

    def cancel(self) -> None:
        if self.busy:
            self._task.cancel()

    def shutdown(self, wait_ms: int = 30000) -> None:
        """Cancel any job and stop the thread (called when the window closes)."""
        self.runner.shutdown(wait_ms)


class LoaderController(QObject):
    """Reopens stored results on the ``xfr-result-loader`` thread (decompressing residuals; the first one also
    imports torch). Every request is answered; the window shows only the newest it still wants."""

    loaded = Signal(object)          # LoadedResult
    failed = Signal(int, str)        # result id, one-line message

    def __init__(self, store, parent: QObject | None = None):
        super().__init__(parent)
        self.store = store
        self.runner = TaskRunner("xfr-result-loader", self)

    @property
    def thread(self):
        return self.runner.thread

    def request(self, result_id: int) -> None:
        result_id = int(result_id)
        # ValueError, KeyError: a result from a newer version or with missing arrays says so in its text
        self.runner.start(lambda ctx: load_result(self.store, result_id), expected=(ValueError, KeyError),
                          finished=self.loaded,
                          failed=lambda _kind, message: self.failed.emit(result_id, message.splitlines()[0]))

    def shutdown(self, wait_ms: int = 30000) -> None:
        self.runner.shutdown(wait_ms)
