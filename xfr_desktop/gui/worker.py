"""The analysis worker: a QObject living on its own QThread (detection, alignment, model, Algorithm 1, saving).

The GUI thread talks to it only through queued signals (:class:`AnalysisController`); the cancel flag is a
``threading.Event`` that the GUI thread may set directly. Torch is imported here, on the worker thread, the first
time it is needed, so the window appears without waiting for it.
"""
from __future__ import annotations

import gc
import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

log = logging.getLogger(__name__)

# overall progress bar share of each stage (start, end)
STAGES = {
    "model": ("Loading model", 0.00, 0.10),
    "detect": ("Detecting and aligning faces", 0.10, 0.20),
    "backbone": ("Computing embeddings", 0.20, 0.25),
    "residuals": ("Computing channel residuals", 0.25, 0.92),
    "done": ("Combining maps", 0.92, 0.95),
    "save": ("Saving result", 0.95, 1.00),
}


@dataclass
class AnalysisJob:
    """Everything the worker needs; plain data, created on the GUI thread."""

    comparison_id: int
    image_a: Path
    image_b: Path
    name_a: str = "image A"
    name_b: str = "image B"
    face_index_a: int | None = None   # None: the largest, but ask when the image holds several faces
    face_index_b: int | None = None
    prealigned: bool = False
    model_path: str | None = None
    device: str | None = None
    threshold: float | None = None
    top_k: int | None = None
    engine: str = "fast"


@dataclass
class FaceChoiceRequest:
    """Sent when an image holds several faces and the examiner has not picked one yet."""

    job: AnalysisJob
    side: str                 # "a" or "b"
    image: np.ndarray         # the source photo, RGB
    boxes: list               # (x, y, w, h) per face, largest first
    name: str


@dataclass
class AnalysisOutcome:
    job: AnalysisJob
    result: object            # PairExplanation
    record: object            # store ResultRecord (None when the store could not save it)
    faces_extra: dict = field(default_factory=dict)
    model_name: str = ""
    model_sha256: str | None = None
    likelihood_ratio: object = None
    seconds: float = 0.0
    photos: dict = field(default_factory=dict)   # side -> the decoded source photo (spares the GUI a decode)


def freeze_long_lived_objects() -> None:
    """Move the objects alive now (modules, the model) out of the garbage collector's reach.

    A full collection walks every tracked object while holding the GIL; with torch, SQLAlchemy and pyqtgraph
    loaded that takes hundreds of milliseconds and, when the worker triggers it, freezes the GUI thread too.
    Freezing what is long-lived anyway keeps later collections small. (No collection first: that alone would
    hold the GIL for as long.)
    """
    gc.freeze()


class AnalysisWorker(QObject):
    progress = Signal(str, float)            # stage label, overall fraction 0..1
    finished = Signal(object)                # AnalysisOutcome
    failed = Signal(str, str)                # error kind (exception class name), one-line message
    cancelled = Signal()
    face_choice_needed = Signal(object)      # FaceChoiceRequest
    device_ready = Signal(str)               # "CUDA (NVIDIA H100)" / "CPU"
    warmed_up = Signal()

    def __init__(self, store):
        super().__init__()
        self.store = store
        self._cancel = threading.Event()
        self._models: dict[tuple[str, str], object] = {}
        self._aligners: dict[int, object] = {}

    # called from the GUI thread: only touches the Event
    def request_cancel(self) -> None:
        self._cancel.set()

    @Slot(object)
    def warm_up(self, device: str | None = None) -> None:
        """Import torch and the engine in the background so the first analysis (or reopened result) is quick."""
        try:
            from ..core import explain, serialize  # noqa: F401
            from ..core.model import resolve_device

            dev = resolve_device(device)
            if dev.type == "cuda":
                import torch

                self.device_ready.emit(f"CUDA ({torch.cuda.get_device_name(dev)})")
            else:
                self.device_ready.emit("CPU")
        except Exception as exc:  # reported again, with advice, when an analysis runs
            self.device_ready.emit(f"unavailable ({exc})")
        freeze_long_lived_objects()
        self.warmed_up.emit()

    # --- helpers ---------------------------------------------------------------------------------------------
    def _report(self, stage: str, fraction: float) -> None:
        label, lo, hi = STAGES.get(stage, (stage, 0.0, 1.0))
        self.progress.emit(label, lo + (hi - lo) * max(0.0, min(1.0, fraction)))

    def _check_cancel(self) -> None:
        from ..core.explain import Cancelled

        if self._cancel.is_set():
            raise Cancelled()

    def model_for(self, path: str | None, device: str | None):
        """The model is loaded once per (file, device) and reused."""
        from ..core.model import default_model_path, load_model, resolve_device

        resolved = str(Path(path).resolve()) if path else str(default_model_path())
        dev = str(resolve_device(device))
        key = (resolved, dev)
        if key not in self._models:
            self._models[key] = load_model(resolved, dev)
            self._aligners.pop(id(self._models[key]), None)
            gc.freeze()  # the model lives as long as the worker (no collection here: it would hold the GIL)
        return self._models[key]

    def _aligner(self, model):
        from ..core.alignment import FaceAligner

        if id(model) not in self._aligners:
            self._aligners[id(model)] = FaceAligner.for_model(model)
        return self._aligners[id(model)]

    def _align(self, model, job: AnalysisJob, side: str):
        from ..core.errors import NoFaceError
        from ..core.imageio import load_image

        path = job.image_a if side == "a" else job.image_b
        name = job.name_a if side == "a" else job.name_b
        index = job.face_index_a if side == "a" else job.face_index_b
        image = load_image(path, source=name)
        aligner = self._aligner(model)
        if job.prealigned:
            return image, aligner.align_prealigned(image, source=name)
        faces = aligner.detect(image)
        if not faces:
            raise NoFaceError(f"{name}: no face found")
        if index is None and len(faces) > 1:
            return image, FaceChoiceRequest(job=job, side=side, image=image,
                                            boxes=[np.asarray(f.box, float) for f in faces], name=name)
        return image, aligner.align(image, face_index=int(index or 0), source=name)

    # --- the job ---------------------------------------------------------------------------------------------
    @Slot(object)
    def run(self, job: AnalysisJob) -> None:
        self._cancel.clear()
        t0 = time.perf_counter()
        status_set = False
        try:
            from ..core.explain import Cancelled, explain_pair
        except Exception as exc:  # a broken install: say so instead of dying silently
            self.failed.emit(type(exc).__name__, f"the analysis engine cannot be loaded: {exc}")
            return
        try:
            self._report("model", 0.0)
            model = self.model_for(job.model_path, job.device)
            dev = model.device
            if dev.type == "cuda":
                import torch

                self.device_ready.emit(f"CUDA ({torch.cuda.get_device_name(dev)})")
            else:
                self.device_ready.emit("CPU")
            self._report("model", 1.0)
            self._check_cancel()
            self.store.set_comparison_status(job.comparison_id, "running")
            status_set = True
            aligned, photos = {}, {}
            for k, side in enumerate("ab"):
                self._report("detect", k / 2)
                photos[side], face = self._align(model, job, side)
                if isinstance(face, FaceChoiceRequest):
                    self.store.set_comparison_status(job.comparison_id, "new", "waiting for a face choice")
                    self.face_choice_needed.emit(face)
                    return
                aligned[side] = face
                self._check_cancel()
            self._report("detect", 1.0)
            result = explain_pair(
                model, aligned["a"].aligned, aligned["b"].aligned, threshold=job.threshold, top_k=job.top_k,
                engine=job.engine, progress=self._report, is_cancelled=self._cancel.is_set,
            )
            self._check_cancel()
            self._report("save", 0.0)
            outcome = self._save(job, model, result, aligned)
            outcome.photos = photos
            outcome.seconds = time.perf_counter() - t0
            self._report("save", 1.0)
            self.finished.emit(outcome)
        except Cancelled:
            if status_set:
                self._safe_status(job.comparison_id, "cancelled", "cancelled by the examiner")
            self.cancelled.emit()
        except Exception as exc:
            from ..core.errors import XfrError

            if isinstance(exc, XfrError):
                message = str(exc)
            else:
                log.error("analysis failed:\n%s", traceback.format_exc())
                message = f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            if status_set:
                self._safe_status(job.comparison_id, "failed", message)
            self.failed.emit(type(exc).__name__, message)

    def _safe_status(self, comparison_id: int, status: str, message: str) -> None:
        try:
            self.store.set_comparison_status(comparison_id, status, message)
        except Exception:  # the status line is informative only; never mask the real outcome
            log.exception("cannot record comparison status")

    def _save(self, job: AnalysisJob, model, result, aligned) -> AnalysisOutcome:
        from ..core.serialize import result_parameters, result_payload
        from .calibration_hook import likelihood_ratio_for

        faces_extra = {}
        for side, face in aligned.items():
            faces_extra[side] = {"transform": np.asarray(face.transform, float)}
            if face.box is not None:
                faces_extra[side]["box"] = np.asarray(face.box, float)
                faces_extra[side]["landmarks"] = np.asarray(face.landmarks, float)
        model_name = model.spec.get("name", Path(model.path or "model").stem)
        lr = likelihood_ratio_for(model, result.score)
        params = result_parameters(
            result, face_index_a=aligned["a"].face_index, face_index_b=aligned["b"].face_index,
            prealigned=bool(job.prealigned), device=result.device, model_threshold=model.threshold,
        )
        if lr is not None:
            params["likelihood_ratio"] = lr
        payload = result_payload(result, model_sha256=model.sha256, model_name=model_name,
                                 faces_extra=faces_extra, parameters=params)
        record = self.store.save_result(job.comparison_id, payload)
        self.store.set_comparison_status(job.comparison_id, "done")
        return AnalysisOutcome(job=job, result=result, record=record, faces_extra=faces_extra,
                               model_name=model_name, model_sha256=model.sha256, likelihood_ratio=lr)


class AnalysisController(QObject):
    """Owns the worker thread; lives on the GUI thread. Start jobs with :meth:`start`, stop with :meth:`cancel`."""

    _run_requested = Signal(object)
    _warm_up_requested = Signal(object)

    def __init__(self, store, parent: QObject | None = None):
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName("xfr-analysis")
        self.worker = AnalysisWorker(store)
        self.worker.moveToThread(self.thread)
        self._run_requested.connect(self.worker.run)
        self._warm_up_requested.connect(self.worker.warm_up)
        for sig in (self.worker.finished, self.worker.failed, self.worker.cancelled, self.worker.face_choice_needed):
            sig.connect(self._job_ended)
        self.busy = False
        self.thread.start()

    def warm_up(self, device: str | None = None) -> None:
        self._warm_up_requested.emit(device)

    def start(self, job: AnalysisJob) -> bool:
        if self.busy:
            return False
        self.busy = True
        self._run_requested.emit(job)
        return True

    def cancel(self) -> None:
        if self.busy:
            self.worker.request_cancel()

    @Slot()
    def _job_ended(self, *args) -> None:
        self.busy = False

    def shutdown(self, wait_ms: int = 30000) -> None:
        """Cancel any job and stop the thread (called when the window closes)."""
        self.worker.request_cancel()
        self.thread.quit()
        self.thread.wait(wait_ms)


@dataclass
class LoadedResult:
    record: object            # ResultRecord with blobs
    result: object            # PairExplanation rebuilt from the stored residuals
    faces: dict               # side -> {box, landmarks, transform, ...}
    photos: dict              # sha256 -> decoded photo


class ResultLoader(QObject):
    """Reopens stored results off the GUI thread (decompressing residuals; the first one also imports torch)."""

    loaded = Signal(object)          # LoadedResult
    failed = Signal(int, str)        # result id, one-line message

    def __init__(self, store):
        super().__init__()
        self.store = store

    @Slot(int)
    def load(self, result_id: int) -> None:
        try:
            from ..core.imageio import load_image
            from ..core.serialize import explanation_from_result

            record = self.store.get_result(result_id)
            result = explanation_from_result(record)
            # one recombination here fills the residuals' per-selection cache: the first slider move is then quick
            result.recombine(threshold=result.threshold, channels=result.channels, top_k=result.top_k)
            faces = record.faces()
            comp = self.store.get_comparison(record.comparison_id)
            photos = {}
            for sha in (comp.image_a, comp.image_b):
                try:
                    photos[sha] = load_image(self.store.image_path(sha))
                except Exception as exc:  # the photo panel stays empty; the result itself is intact
                    log.warning("cannot show the stored photo %s: %s", sha[:12], exc)
            self.loaded.emit(LoadedResult(record=record, result=result, faces=faces, photos=photos))
        except Exception as exc:
            from ..core.errors import XfrError

            message = str(exc) if isinstance(exc, (XfrError, ValueError, KeyError)) else \
                f"unexpected {type(exc).__name__}: {exc}"
            self.failed.emit(int(result_id), message.splitlines()[0] if message else type(exc).__name__)


class LoaderController(QObject):
    """Owns the loader thread; only the newest request matters (older ones are shown only if still wanted)."""

    _load_requested = Signal(int)

    def __init__(self, store, parent: QObject | None = None):
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName("xfr-result-loader")
        self.loader = ResultLoader(store)
        self.loader.moveToThread(self.thread)
        self._load_requested.connect(self.loader.load)
        self.thread.start()

    def request(self, result_id: int) -> None:
        self._load_requested.emit(int(result_id))

    def shutdown(self, wait_ms: int = 30000) -> None:
        self.thread.quit()
        self.thread.wait(wait_ms)
