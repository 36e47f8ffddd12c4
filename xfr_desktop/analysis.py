"""The desktop's use cases, free of Qt: analyse a comparison, save a recombined result, reopen a stored result.

One path from a click to a saved result: the GUI builds an :class:`AnalysisJob` (:func:`plan_analysis`), runs
:func:`analyse_comparison` on a worker thread (``gui/tasks.py``) and shows the :class:`AnalysisOutcome`. The
steps are detect → align → Algorithm 1 → likelihood ratio → serialize → save; the comparison's status line in
the store follows them (running, done, failed, cancelled, waiting for a face choice).

Torch, OpenCV and the engine are imported inside the functions, never at module import: the GUI imports this
module on its own thread at start-up, and torch must load on the worker thread instead.
"""
from __future__ import annotations

import gc
import logging
import time
from datetime import datetime, timezone
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .core.errors import Cancelled, NoFaceError
from .core.trust_display import DEFAULT_JITTER

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, float], None]   # (stage label, overall fraction 0..1)

# overall progress bar share of each stage (start, end)
STAGES = {
    "model": ("Loading model", 0.00, 0.10),
    "detect": ("Detecting and aligning faces", 0.10, 0.20),
    "backbone": ("Computing embeddings", 0.20, 0.25),
    "residuals": ("Computing channel residuals", 0.25, 0.55),
    "done": ("Combining maps", 0.55, 0.58),
    "trust": ("Checking the map for this pair (faithfulness, stability)", 0.58, 0.97),
    "save": ("Saving result", 0.97, 1.00),
}
# what a result keeps of how its faces were found and scored; a recombined result copies these unchanged
# (face_index_* are 0-based, 0 = the largest face; people read them 1-based. analysed_at: when the analysis ran)
PROVENANCE_KEYS = ("face_index_a", "face_index_b", "prealigned", "device", "model_threshold", "likelihood_ratio",
                   "analysed_at", "trust")
# a recombined result (another τ or channel set) has other maps: the per-pair trust check does not carry over
NOT_RECOMBINED = ("trust",)
FACE_EXTRA_KEYS = ("box", "landmarks", "transform")


@dataclass
class AnalysisJob:
    """Everything one analysis needs; plain data, so it can cross threads."""

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
    trust_jitter: int | None = DEFAULT_JITTER   # jitter draws of the stability check; 0: none; None: no check


@dataclass
class FaceChoiceRequest:
    """Returned when an image holds several faces and the examiner has not picked one yet."""

    job: AnalysisJob
    side: str                 # "a" or "b"
    image: np.ndarray         # the source photo, RGB
    boxes: list               # (x, y, w, h) per face, largest first
    name: str


@dataclass
class AnalysisOutcome:
    job: AnalysisJob
    result: object            # PairExplanation
    record: object            # store ResultRecord
    faces_extra: dict = field(default_factory=dict)
    model_name: str = ""
    model_sha256: str | None = None
    likelihood_ratio: dict | None = None
    seconds: float = 0.0
    photos: dict = field(default_factory=dict)   # side -> the decoded source Photo (spares the GUI a decode)


@dataclass
class LoadedResult:
    record: object            # ResultRecord with blobs
    result: object            # PairExplanation rebuilt from the stored residuals
    faces: dict               # side -> {box, landmarks, transform, ...}
    photos: dict              # sha256 -> the Photo as shown (load_display_photo)


def stage_reporter(progress: ProgressCallback | None) -> Callable[[str, float], None]:
    """``report(stage, fraction within the stage)`` → ``progress(label, overall fraction)``."""
    def report(stage: str, fraction: float) -> None:
        if progress is not None:
            label, lo, hi = STAGES.get(stage, (stage, 0.0, 1.0))
            progress(label, lo + (hi - lo) * max(0.0, min(1.0, fraction)))
    return report


def plan_analysis(store, comparison_id: int, *, face_choices: dict | None = None, prealigned: bool = False,
                  model_path: str | None = None, device: str | None = None, engine: str = "fast",
                  trust_jitter: int | None = DEFAULT_JITTER) -> AnalysisJob:
    """The job for a stored comparison. ``face_choices``: side -> face index the examiner picked;
    ``prealigned`` forces skipping detection (the comparison's own setting also does); ``trust_jitter``: see
    :class:`AnalysisJob`."""
    comp = store.get_comparison(comparison_id)
    if comp.removed:
        from .core.errors import StoreError

        raise StoreError(f"comparison {comp.id} was removed ({comp.removed_reason}): it is not analysed again")
    params = comp.parameters or {}
    chosen = face_choices or {}
    ask = params.get("ask_face", False)   # several faces: ask instead of taking the largest
    return AnalysisJob(
        comparison_id=comp.id, image_a=store.image_path(comp.image_a), image_b=store.image_path(comp.image_b),
        name_a=f"A ({store.get_image(comp.image_a).original_name})",
        name_b=f"B ({store.get_image(comp.image_b).original_name})",
        face_index_a=chosen.get("a", None if ask else comp.face_index_a),
        face_index_b=chosen.get("b", None if ask else comp.face_index_b),
        prealigned=bool(params.get("prealigned", False)) or prealigned,
        model_path=model_path, device=device, engine=engine, trust_jitter=trust_jitter,
    )


class ModelCache:
    """Models loaded once per (file, device) and their face aligners; lives as long as the worker using it."""

    def __init__(self):
        self.models: dict[tuple[str, str], object] = {}
        self._aligners: dict[int, object] = {}

    def model(self, path: str | None, device: str | None):
        from .core.model import default_model_path, load_model, resolve_device

        resolved = str(Path(path).resolve()) if path else str(default_model_path())
        key = (resolved, str(resolve_device(device)))
        if key not in self.models:
            self.models[key] = load_model(*key)
            self._aligners.pop(id(self.models[key]), None)
            gc.freeze()  # the model lives as long as the worker (no collection here: it would hold the GIL)
        return self.models[key]

    def aligner(self, model):
        from .core.alignment import FaceAligner

        if id(model) not in self._aligners:
            self._aligners[id(model)] = FaceAligner.for_model(model)
        return self._aligners[id(model)]


def _align(aligner, job: AnalysisJob, side: str):
    """(source photo, aligned face or a FaceChoiceRequest when the examiner must pick one of several faces)."""
    from .core.imageio import load_photo

    path, name, index = ((job.image_a, job.name_a, job.face_index_a) if side == "a"
                         else (job.image_b, job.name_b, job.face_index_b))
    image = load_photo(path, source=name)
    if job.prealigned:
        return image, aligner.align_prealigned(image, source=name)
    faces = aligner.detect(image)
    if not faces:
        raise NoFaceError(f"{name}: no face found")
    if index is None and len(faces) > 1:
        return image, FaceChoiceRequest(job=job, side=side, image=image.pixels,
                                        boxes=[image.to_pixels(f.box) for f in faces], name=name)
    return image, aligner.align(image, face_index=int(index or 0), source=name, faces=faces)  # detected once


def analyse_comparison(store, job: AnalysisJob, model, *, aligner=None, progress: ProgressCallback | None = None,
                       is_cancelled: Callable[[], bool] | None = None) -> AnalysisOutcome | FaceChoiceRequest:
    """Detect, align, explain, calibrate and save one comparison; the comparison's status follows.

    Raises :class:`~xfr_desktop.core.errors.Cancelled` when ``is_cancelled()`` turns true (nothing is saved) and
    re-raises any failure after recording it as the comparison's status.
    """
    t0 = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    report = stage_reporter(progress)
    cancelled = is_cancelled or (lambda: False)
    store.set_comparison_status(job.comparison_id, "running")
    try:
        found = _detect_both(store, job, aligner or _aligner_for(model), report, cancelled)
        if isinstance(found, FaceChoiceRequest):
            return found
        aligned, photos = found
        outcome = _explain_and_save(store, job, model, aligned, report, cancelled, started)
    except Cancelled:
        _record_status(store, job.comparison_id, "cancelled", "cancelled by the examiner")
        raise
    except Exception as exc:
        from .core.errors import user_message

        _record_status(store, job.comparison_id, "failed", user_message(exc))
        raise
    # a photo decoded reduced is left for the GUI to decode whole: stored boxes are in the original's pixels
    outcome.photos = {side: photo for side, photo in photos.items() if photo.scale == 1}
    outcome.seconds = time.perf_counter() - t0
    record_photo_quality(store, job, aligned, photos)
    return outcome


def record_photo_quality(store, job: AnalysisJob, aligned: dict, photos: dict) -> None:
    """Measure and store both photos' quality and provenance (core.image_quality); never fails the analysis."""
    from .core.image_quality import assess_photo

    for side in "ab":
        face = aligned[side]
        try:
            data = assess_photo(job.image_a if side == "a" else job.image_b, photos[side], box=face.box,
                                landmarks=face.landmarks, face_index=None if job.prealigned else face.face_index,
                                n_faces=None if job.prealigned else face.n_faces)
            store.record_image_quality(job.comparison_id, side, data)
        except Exception:  # the result is saved; a missing quality record is visible as such
            log.exception("cannot record the quality of photo %s", side.upper())


def _aligner_for(model):
    from .core.alignment import FaceAligner

    return FaceAligner.for_model(model)


def _detect_both(store, job, aligner, report, cancelled):
    aligned, photos = {}, {}
    for k, side in enumerate("ab"):
        report("detect", k / 2)
        photos[side], face = _align(aligner, job, side)
        if isinstance(face, FaceChoiceRequest):
            store.set_comparison_status(job.comparison_id, "new", "waiting for a face choice")
            return face
        aligned[side] = face
        if cancelled():
            raise Cancelled()
    report("detect", 1.0)
    return aligned, photos


def _explain_and_save(store, job, model, aligned, report, cancelled, started: str) -> AnalysisOutcome:
    from .core.calibration import stored_likelihood_ratio
    from .core.explain import explain_pair

    result = explain_pair(model, aligned["a"].aligned, aligned["b"].aligned, threshold=job.threshold,
                          top_k=job.top_k, engine=job.engine, progress=report, is_cancelled=cancelled)
    if cancelled():
        raise Cancelled()
    trust, agreement = _trust(model, aligned, result, job, report, cancelled)
    report("save", 0.0)
    faces_extra = {side: _face_extra(face) for side, face in aligned.items()}
    for side, share in agreement.items():
        faces_extra[side]["stable_agreement"] = share
    model_name = model.spec.get("name", Path(model.path or "model").stem)
    lr = stored_likelihood_ratio(model, result.score)
    provenance = {"face_index_a": aligned["a"].face_index, "face_index_b": aligned["b"].face_index,
                  "prealigned": bool(job.prealigned), "device": result.device,
                  "model_threshold": model.threshold, "likelihood_ratio": lr, "analysed_at": started,
                  "trust": trust}
    payload = result_record_payload(result, model_name=model_name, model_sha256=model.sha256,
                                    faces_extra=faces_extra, provenance=provenance)
    record = store.save_result(job.comparison_id, payload)
    store.set_comparison_status(job.comparison_id, "done")
    report("save", 1.0)
    return AnalysisOutcome(job=job, result=result, record=record, faces_extra=faces_extra, model_name=model_name,
                           model_sha256=model.sha256, likelihood_ratio=lr)


def _trust(model, aligned, result, job, report, cancelled) -> tuple[dict | None, dict]:
    """The per-pair trust record (None when the job asks for none) and, per side, the share of jitter draws that
    agree with H's sign at each pixel."""
    if job.trust_jitter is None:
        return None, {}
    from .core.evaluation.pair_trust import assess_pair, trust_summary

    faith, stab = assess_pair(model, aligned["a"].aligned, aligned["b"].aligned, result, jitter=job.trust_jitter,
                              progress=lambda f: report("trust", f), is_cancelled=cancelled)
    if cancelled():
        raise Cancelled()
    agreement = {} if stab is None else {"a": stab.agreement[0].astype(np.float32),
                                         "b": stab.agreement[1].astype(np.float32)}
    return trust_summary(faith, stab), agreement


def _face_extra(face) -> dict:
    extra = {"transform": np.asarray(face.transform, float)}
    if face.box is not None:
        extra["box"] = np.asarray(face.box, float)
        extra["landmarks"] = np.asarray(face.landmarks, float)
    return extra


def _record_status(store, comparison_id: int, status: str, message: str) -> None:
    try:
        store.set_comparison_status(comparison_id, status, message)
    except Exception:  # the status line is informative only; never mask the real outcome
        log.exception("cannot record comparison status")


def result_record_payload(result, *, model_name: str | None, model_sha256: str | None, faces_extra: dict,
                          provenance: dict, derived_from: int | None = None) -> dict:
    """The store payload of a result: the one place that decides which parameters a result row carries.

    ``provenance``: values of :data:`PROVENANCE_KEYS` (others are ignored; a missing likelihood ratio is left out).
    """
    from .core.serialize import result_parameters, result_payload

    kept = {k: provenance[k] for k in PROVENANCE_KEYS
            if k in provenance and not (k in ("likelihood_ratio", "trust") and provenance[k] is None)}
    params = result_parameters(result, **kept)
    if derived_from is not None:
        params["derived_from_result"] = derived_from
    return result_payload(result, model_sha256=model_sha256, model_name=model_name, faces_extra=faces_extra,
                          parameters=params)


def save_recombined(store, record, result):
    """Store ``result`` (``record``'s explanation at another τ / top-k) as a new result; ``record`` stays as it is.

    Returns ``(new record, the faces extra saved with it)``.
    """
    faces = record.faces()
    extra = {s: {k: v for k, v in faces.get(s, {}).items() if k in FACE_EXTRA_KEYS} for s in "ab"}
    provenance = {k: v for k, v in (record.parameters or {}).items() if k not in NOT_RECOMBINED}
    payload = result_record_payload(result, model_name=record.model_name, model_sha256=record.model_sha256,
                                    faces_extra=extra, provenance=provenance, derived_from=record.id)
    recombine_ms = round(result.timings_ms.get("recombine", 0), 3)
    payload["timings"] = dict(record.timings or {}, recombine=recombine_ms)
    return store.save_result(record.comparison_id, payload), extra


def reset_threshold(store, record) -> float:
    """The τ that Reset goes back to: the model's threshold as ``record`` stores it, else (a result that does not
    store it) the threshold of its comparison's first result, which was computed at the model's default."""
    stored = (record.parameters or {}).get("model_threshold")
    if stored is not None:
        return float(stored)
    results = store.list_results(record.comparison_id)
    return float(results[0].threshold) if results else float(record.threshold)


def load_result(store, result_id: int) -> LoadedResult:
    """A stored result, rebuilt for display (residuals decompressed, source photos decoded when readable)."""
    from .core.imageio import load_display_photo
    from .core.serialize import explanation_from_result

    record = store.get_result(result_id)
    result = explanation_from_result(record)
    # one recombination fills the residuals' per-selection cache: the first slider move is then quick
    result.recombine(threshold=result.threshold, channels=result.channels, top_k=result.top_k)
    comp = store.get_comparison(record.comparison_id)
    photos = {}
    for sha in (comp.image_a, comp.image_b):
        try:
            photos[sha] = load_display_photo(store.image_path(sha))
        except Exception as exc:  # the photo panel stays empty; the result itself is intact
            log.warning("cannot show the stored photo %s: %s", sha[:12], exc)
    return LoadedResult(record=record, result=result, faces=record.faces(), photos=photos)
