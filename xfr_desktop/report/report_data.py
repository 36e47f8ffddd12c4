"""The data of a case report: a plain :class:`ReportData` (no reportlab), and the pictures it carries.

``ReportData`` is built either from the case store (:func:`build_report_for_case`, reading the latest result of
each comparison) or from a :class:`~xfr_desktop.core.explain.PairExplanation`
(:func:`report_data_from_explanation`, for ``xfr explain`` and the demo). The model card excerpt and the
calibration summary are looked up here too. Overlays and channel regions are drawn with numpy/cv2; neither Qt nor
torch is needed. :mod:`.pdf_sections` lays the data out, :mod:`.pdfa` assembles the PDF.
"""
from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import __version__
from ..core.errors import XfrError
from ..core.imageio import Photo, load_display_photo

TOP_CHANNELS = 3
CARD_MAX_CHARS = 200_000     # a card is read whole (for its evaluation table) but never without bound
CARD_SECTIONS = 3            # the report prints the card up to its third heading: title, summary, provenance

LIMITATIONS = (
    "This report documents the output of an automated face-recognition model and of an explanation method; it is "
    "an aid to, not a substitute for, the examiner's own comparison. The score and the likelihood ratio depend on "
    "image quality (resolution, pose, illumination, occlusion, compression), on the face detector and alignment, "
    "and on how well the reference population used for calibration resembles the population relevant to the case; "
    "LRs were calibrated on public web photographs of mostly adult celebrities (LFW) and may be miscalibrated for "
    "other populations or image types. Likelihood ratios are clipped to the range the reference set can support. "
    "The heat maps (S, S⁺, S⁻) show which image regions the model's embedding channels respond to and how they "
    "push the score above or below the decision threshold; they describe the model, not facial anatomy, and do "
    "not establish identity on their own. The model may perform differently across demographic groups. The "
    "signing time is taken from the signing computer's clock and is not certified by a timestamp authority."
)


class ReportError(XfrError):
    """A report cannot be built (missing data, unreadable stored result, unwritable output...)."""


# --- data ---------------------------------------------------------------------------------------------------
@dataclass
class ImageInfo:
    label: str                                # "A" / "B"
    name: str = ""                            # original file name
    sha256: str = ""
    original: np.ndarray | None = None        # RGB uint8, the photograph (thumbnail source)
    box: Sequence[float] | None = None        # x, y, w, h of the detected face in the original photo's pixels
    landmarks: np.ndarray | None = None       # (5, 2) in the original photo's pixels
    aligned: np.ndarray | None = None         # RGB uint8 model input
    reconstruction: np.ndarray | None = None  # RGB uint8 decoder output
    scale: int = 1                            # the original's pixels per pixel of `original` (huge JPEGs: 2, 4, 8)

    @property
    def photo(self) -> Photo | None:
        """`original` as a :class:`Photo`, which moves marks from the original's pixels onto it."""
        return None if self.original is None else Photo(self.original, self.scale)


@dataclass
class ChannelInfo:
    index: int
    weight: float                  # F̂_A[i]F̂_B[i] − T: > 0 pushes towards match
    product: float                 # F̂_A[i]F̂_B[i]
    region_a: np.ndarray | None = None   # RGB uint8 overlay of the channel's residual on A
    region_b: np.ndarray | None = None


@dataclass
class ModelInfo:
    name: str = ""
    sha256: str = ""
    card_excerpt: str = ""        # Markdown: the card's first sections, rendered in the report
    path: str = ""
    fidelity: list[str] = field(default_factory=list)   # the card's evaluation of this model, one line a measure
    card_note: str = ""           # why no card is shown, when the store holds one that is not verified


@dataclass
class ComparisonSection:
    title: str
    image_a: ImageInfo
    image_b: ImageInfo
    score: float
    threshold: float
    decision_label: str
    parameters: dict = field(default_factory=dict)
    maps: dict = field(default_factory=dict)      # {"a": {"S", "S_pos", "S_neg"}, "b": {...}} H×W float32
    similar: list[ChannelInfo] = field(default_factory=list)
    dissimilar: list[ChannelInfo] = field(default_factory=list)
    n_channels_used: int | None = None
    n_channels: int | None = None
    lr: float | None = None
    lr_verbal: str | None = None
    analysed_at: str = ""
    model_sha256: str = ""
    conclusion: str = ""                          # examiner's conclusion for this comparison, if any
    result_id: int | None = None                  # the stored result shown, and how it was chosen
    result_choice: str = ""
    lr_statement: object = None                   # core.evaluative.LRStatement (two digits, bound at a limit)
    calibration_note: str = ""                    # what the LR rests on
    model_decision: object = None                 # core.evaluative.ModelDecision ("model decision at τ = …")
    features: list[tuple[str, str, str, str]] = field(default_factory=list)   # FISWG label, value, note, author
    annotations: dict = field(default_factory=dict)   # {"a": [AnnotationRecord], "b": [...]} on the photos
    quality: dict = field(default_factory=dict)       # {"a": image_quality dict, "b": ...}
    reviews: list = field(default_factory=list)       # ReviewRecord, oldest first (ACE-V verification)
    number: int = 1                                   # the comparison's number in its case (ComparisonRecord)


@dataclass
class UnreportedComparison:
    """A comparison of the case that has no result in the report (failed, never analysed, removed), and why."""
    number: int
    title: str
    status: str
    reason: str = ""


@dataclass
class ReportData:
    case_number: str
    title: str = ""
    examiner: str = ""
    organisation: str = ""
    case_created: str = ""
    case_modified: str = ""
    generated_at: str = ""                        # local time with offset; filled at render time when empty
    software_version: str = __version__
    model: ModelInfo = field(default_factory=ModelInfo)
    calibration: dict | None = None               # method, n_genuine, n_impostor, cllr, cllr_min, reference
    comparisons: list[ComparisonSection] = field(default_factory=list)
    unreported: list[UnreportedComparison] = field(default_factory=list)
    conclusion: str = ""                          # the case-level conclusion (comparison notes are per section)
    conclusion_scale: str = ""
    conclusion_notes: str = ""
    conclusion_author: str = ""
    conclusion_time: str = ""
    case_notes: str = ""
    audit: list[dict] = field(default_factory=list)   # id, time, actor, action, object, details (pairs), hash
    audit_status: str = ""                        # the chain's verification at export time
    limitations: str = LIMITATIONS
    propositions: tuple[str, str] = ("", "")      # (Hp, Hd) of the case; defaults from core.evaluative


# --- images -------------------------------------------------------------------------------------------------
def overlay_map(aligned: np.ndarray | None, heat: np.ndarray, vmax: float, kind: str, upscale: int = 2) -> np.ndarray:
    """The map over the grey face in its kind's colours (core.map_style, as in the app and the CLI), upscaled."""
    import cv2

    from ..core.render import colorize, overlay

    h, w = heat.shape
    if aligned is not None and aligned.shape[:2] == (h, w):
        out = overlay(aligned, heat, vmax=vmax, kind=kind)
    else:
        out = colorize(heat, 0.0, vmax if vmax > 0 else 1.0, kind)
    return cv2.resize(out, (w * upscale, h * upscale), interpolation=cv2.INTER_NEAREST)


def thumbnail_with_box(photo: Photo, box=None, landmarks=None, max_side: int = 480,
                       annotations=()) -> np.ndarray:
    """The photo scaled for print, with the detected face box (green), landmarks and the examiner's annotations
    (magenta points and rectangles, numbered in the order listed), all given in the original photo's pixels."""
    import cv2

    img = np.ascontiguousarray(photo.pixels)
    scale = min(1.0, max_side / max(img.shape[:2]))
    if scale < 1.0:
        img = cv2.resize(img, (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA)
    img = img.copy()
    thick = max(2, round(max(img.shape[:2]) / 200))
    if box is not None and len(box) == 4 and np.all(np.isfinite(box)):
        x, y, w, h = photo.to_pixels(box) * scale
        cv2.rectangle(img, (round(x), round(y)), (round(x + w), round(y + h)), (0, 200, 0), thick)
    if landmarks is not None:
        for px, py in photo.to_pixels(np.reshape(landmarks, (-1, 2))) * scale:
            if np.isfinite(px) and np.isfinite(py):
                cv2.circle(img, (round(px), round(py)), thick + 1, (255, 200, 0), -1)
    for n, a in enumerate(annotations, 1):
        ax, ay, aw, ah = photo.to_pixels((a.x, a.y, a.width, a.height)) * scale
        x, y = round(ax), round(ay)
        if a.kind == "rect":
            cv2.rectangle(img, (x, y), (round(ax + aw), round(ay + ah)), (230, 0, 200), thick)
        else:
            cv2.circle(img, (x, y), 3 * thick, (230, 0, 200), thick)
        cv2.putText(img, str(n), (x + 2 * thick, max(12, y - 2 * thick)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45 * thick, (230, 0, 200), thick, cv2.LINE_AA)
    return img


def channel_region(aligned: np.ndarray | None, residual: np.ndarray, vmax: float, upscale: int = 2) -> np.ndarray:
    """A channel's residual over the face on the scale ``vmax`` (its peak over both faces, as in the app), with a
    white box around its region on this face (core.map_style.support_box, the app's box)."""
    import cv2

    from ..core.map_style import support_box

    out = overlay_map(aligned, residual, vmax, "channel", upscale=upscale)
    box = support_box(residual)
    if box is not None:
        x, y, w, h = box
        cv2.rectangle(out, (x * upscale, y * upscale), ((x + w) * upscale - 1, (y + h) * upscale - 1),
                      (255, 255, 255), 1)
    return out


# --- from an explanation ------------------------------------------------------------------------------------
def top_channels(weights: np.ndarray, k: int = TOP_CHANNELS) -> tuple[list[int], list[int]]:
    """Indices of the k most positive (similar) and k most negative (dissimilar) channel weights."""
    w = np.asarray(weights, np.float64)
    order = np.argsort(-w, kind="stable")
    similar = [int(i) for i in order[:k] if w[i] > 0]
    dissimilar = [int(i) for i in order[::-1][:k] if w[i] < 0]
    return similar, dissimilar


def comparison_from_explanation(result, *, title: str = "Comparison", image_a: ImageInfo | None = None,
                                image_b: ImageInfo | None = None, lr: tuple[float, str] | None = None,
                                parameters: dict | None = None, analysed_at: str = "", model_sha256: str = "",
                                conclusion: str = "", k: int = TOP_CHANNELS) -> ComparisonSection:
    """A report section from a PairExplanation (maps, top channels with their regions)."""
    image_a = image_a or ImageInfo("A")
    image_b = image_b or ImageInfo("B")
    for info, side in ((image_a, result.a), (image_b, result.b)):
        if info.aligned is None:
            info.aligned = side.aligned
        if info.reconstruction is None:
            info.reconstruction = side.reconstruction
    weights = np.asarray(result.a.weights, np.float64)
    similar, dissimilar = top_channels(weights, k)

    def info(i: int) -> ChannelInfo:
        from ..core.map_style import colour_levels

        residual = {s: getattr(result, s).residuals.channel(i) for s in "ab"}
        vmax = colour_levels(residual.values(), "channel")[1]   # one scale for both faces, as in the app
        return ChannelInfo(index=i, weight=float(weights[i]), product=float(result.products[i]),
                           region_a=channel_region(result.a.aligned, residual["a"], vmax),
                           region_b=channel_region(result.b.aligned, residual["b"], vmax))

    params = dict(parameters) if parameters is not None else {
        "threshold": float(result.threshold), "normalization": result.normalization,
        "channels": result.channels, "top_k": result.top_k, "engine": result.engine}
    maps = {s: {k_: np.asarray(getattr(getattr(result, s), k_), np.float32) for k_ in ("S", "S_pos", "S_neg")}
            for s in "ab"}
    return ComparisonSection(
        title=title, image_a=image_a, image_b=image_b, score=float(result.score), threshold=float(result.threshold),
        decision_label=result.decision_label, parameters=params, maps=maps,
        similar=[info(i) for i in similar], dissimilar=[info(i) for i in dissimilar],
        n_channels_used=int(np.count_nonzero(result.selected)), n_channels=int(len(result.products)),
        lr=None if lr is None else float(lr[0]), lr_verbal=None if lr is None else lr[1],
        analysed_at=analysed_at, model_sha256=model_sha256, conclusion=conclusion,
    )


def read_card(readme: str | os.PathLike | None = None) -> str:
    """A model card's Markdown (models/README.md by default); '' when unreadable."""
    from ..core.model import MODELS_DIR

    path = Path(readme) if readme is not None else MODELS_DIR / "README.md"
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(CARD_MAX_CHARS)
    except OSError:
        return ""


def card_excerpt(card: str) -> str:
    from .markdown_pdf import sections_until

    return sections_until(card, CARD_SECTIONS) if card else ""


def fidelity_findings(card: str) -> list[str]:
    """What the card's evaluation table says about this model, one line a measure ('measure: value (goal met:
    no)'). Read from the table under the card's 'Evaluation' heading, in its 'this model' column; [] if none."""
    from .markdown_pdf import table_after_heading

    rows = table_after_heading(card, "evaluation")
    if len(rows) < 2:
        return []

    def plain(cell: str) -> str:
        return re.sub(r"[*`]", "", cell).strip()

    header = [plain(c).lower() for c in rows[0]]
    col = next((i for i, h in enumerate(header) if "this model" in h), None)
    goal = next((i for i, h in enumerate(header) if "goal met" in h), None)
    if col is None:
        return []
    out = []
    for row in rows[1:]:
        if len(row) <= col or not plain(row[col]) or plain(row[col]) in ("–", "-"):
            continue
        met = plain(row[goal]) if goal is not None and goal < len(row) else ""
        out.append(f"{plain(row[0])}: {plain(row[col])}" + (f" (goal met: {met})" if met not in ("", "–", "-")
                                                              else ""))
    return out


def bundled_card_path(model_path) -> Path | None:
    """The card of a model file shipped in models/: ``<stem>.md`` beside it, else models/README.md for the default
    model. None for any other file."""
    from ..core.model import MODELS_DIR, default_model_path

    try:
        path = Path(model_path).resolve()
        if not model_path or path.parent != MODELS_DIR.resolve():
            return None
        own = path.with_suffix(".md")
        if own.is_file():
            return own
        return MODELS_DIR / "README.md" if path == default_model_path().resolve() else None
    except OSError:
        return None


def _bundled_card(model_path) -> str:
    card = bundled_card_path(model_path)
    return read_card(card) if card is not None else ""


def model_info(model=None, *, name: str = "", sha256: str = "") -> ModelInfo:
    """Name, sha256 and, for a bundled model, the first sections of its card and its evaluation."""
    path = getattr(model, "path", None) or ""
    spec = getattr(model, "spec", None) or {}
    card = _bundled_card(path)
    return ModelInfo(name=name or (Path(path).name if path else spec.get("name", "")),
                     sha256=sha256 or (getattr(model, "sha256", None) or ""),
                     card_excerpt=card_excerpt(card), path=str(path), fidelity=fidelity_findings(card))


def _stored_model_info(store, sha256: str, name: str) -> ModelInfo:
    """The card of a stored result's model: the bundled card of the model file with that sha256, else the
    registry's card only when its `model.registered` entry records the card's hash (a row inserted or edited
    behind the app's back must never speak as the card)."""
    record = None
    if sha256:
        try:
            record = store.get_model(sha256)
        except XfrError:
            pass
    name, path = name or (record.name if record else ""), str(record.path or "") if record else ""
    card, note = _bundled_card(_bundled_models_by_sha256().get(sha256, "")), ""
    if not card and record is not None and record.card:
        card, note = _registry_card(store, sha256, record.card)
    card = card[:CARD_MAX_CHARS]
    return ModelInfo(name=name, sha256=sha256, card_excerpt=card_excerpt(card), path=path,
                     fidelity=fidelity_findings(card), card_note=note)


UNVERIFIED_CARD = ("The model's card is not verified (it is neither the bundled card of this model file nor "
                   "recorded in the audit trail), so it is not shown.")
UNSIGNED_CARD = ("The model's card is recorded in the audit trail (entry #{entry}), but no signed checkpoint covers "
                 "that entry: only the unsigned chain vouches for the card.")
REBOUND_CARD = ("The model's card was registered again after the last signed checkpoint (entry #{entry}), and the "
                "signed registration (entry #{signed}) recorded another card, so it is not shown.")


def _registry_card(store, sha256: str, card) -> tuple[str, str]:
    """(the registry card to print, the note to print with it) from the `model.registered` entries of the model
    (system chain, where the app writes them): the newest must record the card's SHA-256, and the newest one a
    signed checkpoint covers must record the same card (a card re-bound after it is not shown; one no checkpoint
    covers yet is shown, with a note saying so)."""
    import hashlib

    from sqlalchemy import select

    from ..store.checkpoints import signed_through
    from ..store.schema import AuditLog

    if not isinstance(card, str):
        return "", UNVERIFIED_CARD
    with store.session(write=False) as s:
        entries = s.execute(select(AuditLog.id, AuditLog.details).where(
            AuditLog.action == "model.registered", AuditLog.object_id == sha256, AuditLog.case_id.is_(None))
            .order_by(AuditLog.id.desc())).all()
        signed = signed_through(s, None) if entries else 0
    digest = hashlib.sha256(card.encode("utf-8")).hexdigest()
    recorded = [(entry_id, _card_sha256(details)) for entry_id, details in entries]
    if not recorded or recorded[0][1] != digest:
        return "", UNVERIFIED_CARD
    covered = next(((entry_id, sha) for entry_id, sha in recorded if entry_id <= signed), None)
    if covered is None:
        return card, UNSIGNED_CARD.format(entry=recorded[0][0])
    if covered[1] != digest:
        return "", REBOUND_CARD.format(entry=recorded[0][0], signed=covered[0])
    return card, ""


def _card_sha256(details) -> str | None:
    try:
        return json.loads(details or "{}").get("card_sha256")
    except (ValueError, AttributeError):
        return None


@functools.lru_cache(maxsize=1)
def _bundled_models_by_sha256() -> dict[str, str]:
    """A result stored by the app names its model by sha256 only; every model file shipped in models/ (the default
    and earlier bundled models kept for their stored results) is recognised by its hash."""
    from ..core.fileio import file_sha256
    from ..core.model import MODELS_DIR

    found = {}
    for path in sorted(MODELS_DIR.glob("*.pt")):
        try:
            found[file_sha256(path)] = str(path)
        except OSError:
            continue
    return found


def calibration_summary(cal) -> dict | None:
    if cal is None:
        return None
    return {"method": cal.method, "n_genuine": cal.n_genuine, "n_impostor": cal.n_impostor, "cllr": cal.cllr,
            "cllr_min": cal.cllr_min, "eer": cal.eer, "reference": cal.reference,
            "bounds": [10 ** b for b in cal.log10_lr_bounds]}


def report_data_from_explanation(result, *, model=None, case_number: str = "(no case)", title: str = "",
                                 examiner: str = "", organisation: str = "", image_a: ImageInfo | None = None,
                                 image_b: ImageInfo | None = None, calibration=None, conclusion: str = "",
                                 notes: str = "") -> ReportData:
    """A one-comparison report straight from an explanation (for ``xfr explain`` / the demo)."""
    from ..core.calibration import load_calibration_for

    if calibration is None and model is not None:
        calibration = load_calibration_for(model)
    lr = calibration.describe(result.score) if calibration is not None else None
    section = comparison_from_explanation(result, title="Comparison 1", image_a=image_a, image_b=image_b, lr=lr,
                                          model_sha256=getattr(model, "sha256", "") or "")
    from ..core.evaluative import DEFAULT_DEFENCE, DEFAULT_PROSECUTION, lr_statement, model_decision

    limits = tuple(10 ** b for b in calibration.log10_lr_bounds) if calibration is not None else None
    section.lr_statement = lr_statement(section.lr, limits)
    section.calibration_note = calibration_note(calibration_summary(calibration))
    calibrated = getattr(model, "threshold", None)
    section.model_decision = model_decision(section.score, section.threshold,
                                            None if calibrated is None else float(calibrated), section.lr)
    return ReportData(case_number=case_number, title=title, examiner=examiner, organisation=organisation,
                      model=model_info(model), calibration=calibration_summary(calibration), comparisons=[section],
                      propositions=(DEFAULT_PROSECUTION, DEFAULT_DEFENCE),
                      conclusion=conclusion, case_notes=notes)


# --- from the store -----------------------------------------------------------------------------------------
def _load_original(store, sha256: str) -> Photo | None:
    try:
        return load_display_photo(store.image_path(sha256))
    except XfrError:
        return None


def _find_calibration(store, model_sha256: str | None, explicit=None):
    """The calibration for the model that produced a result: explicit, else the one beside the bundled model file
    whose SHA-256 is the result's, and only when it records exactly that SHA-256 (a registry row's path never
    finds one: anyone who can write the data folder can set it)."""
    from ..core.calibration import CalibrationError, load_calibration_for

    if explicit is not None:
        return explicit
    path = _bundled_models_by_sha256().get(model_sha256 or "")
    if not path:
        return None
    try:
        cal = load_calibration_for(path)
    except (CalibrationError, ValueError):
        return None
    return cal if cal is not None and cal.model_sha256 == model_sha256 else None


def _stored_lr(parameters) -> tuple[float, str] | None:
    """The LR the app showed when the result was saved (``parameters["likelihood_ratio"]``), if any."""
    from ..core.calibration import verbal_equivalent

    stored = (parameters or {}).get("likelihood_ratio")
    if not isinstance(stored, dict):
        return None
    try:
        value = float(stored.get("value"))
        return value, str(stored.get("verbal") or verbal_equivalent(value))
    except (TypeError, ValueError):
        return None


def detail_pairs(details) -> list[tuple[str, str]]:
    """An audit entry's details as readable ``(key, value)`` lines: nested keys dotted (``parameters.top_k``),
    lists of plain values comma-separated, nothing cut. Text that is not a JSON object stays one line."""
    if isinstance(details, str):
        try:
            details = json.loads(details) if details.strip() else {}
        except ValueError:
            return [("", details)]
    out: list[tuple[str, str]] = []

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            if not value:
                out.append((prefix, "—"))
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
            for i, sub in enumerate(value):
                walk(f"{prefix}[{i + 1}]", sub)
        elif isinstance(value, list):
            out.append((prefix, ", ".join("—" if v is None else str(v) for v in value) or "—"))
        else:
            out.append((prefix, "—" if value is None or value == "" else str(value)))

    walk("", details)
    return out


def _audit_rows(records, numbers: dict[str, int], case_number: str = "") -> list[dict]:
    """The audit entries as the appendix prints them; a comparison is named by its number (``numbers``: database
    id → number) and the case by its case number, as everywhere else in the report, not by their database ids."""
    rows = []
    for r in records:
        object_id = "" if r.object_id is None else str(r.object_id)
        if r.object_type == "comparison" and object_id in numbers:
            object_id = str(numbers[object_id])
        elif r.object_type == "case" and case_number:
            object_id = case_number
        details = [("comparison", str(numbers[value])) if key == "comparison_id" and value in numbers
                   else (key, value) for key, value in detail_pairs(r.details)]
        rows.append({"id": r.id, "time": r.time, "actor": r.actor, "action": r.action,
                     "object": f"{r.object_type or ''} {object_id}".strip(), "details": details, "hash": r.hash})
    return rows


def audit_status(verification) -> str:
    """The case's chain verification in words, without the case's database id (the report names the case by its
    number at the top of every page)."""
    from dataclasses import replace

    return replace(verification, case_id=None).message


def _comparison_section(store, case_id: int, n: int, comp, record, calibration, k: int):
    """The report section of one stored comparison's latest result, and the calibration its LR came from."""
    from ..core.evaluative import case_propositions
    from ..core.serialize import explanation_from_result
    from ..store import unpack_arrays

    faces = {}
    if record.faces_npz:
        try:
            faces = unpack_arrays(record.faces_npz)
        except Exception:  # noqa: BLE001 - a damaged blob costs the pictures, not the report
            faces = {}
    images = []
    for label, sha, side in (("A", comp.image_a, "a"), ("B", comp.image_b, "b")):
        meta = store.get_image(sha)
        f = faces.get(side, {})
        photo = _load_original(store, sha)
        images.append(ImageInfo(label=label, name=meta.original_name or "", sha256=sha,
                                original=None if photo is None else photo.pixels, box=f.get("box"),
                                landmarks=f.get("landmarks"), aligned=f.get("aligned"),
                                reconstruction=f.get("reconstruction"), scale=1 if photo is None else photo.scale))
    cal = _find_calibration(store, record.model_sha256, calibration)
    lr = _stored_lr(record.parameters) or (cal.describe(record.score) if cal is not None else None)
    concl = store.latest_conclusion(case_id, comparison_id=comp.id)
    title = _comparison_title(n, images[0].name or comp.image_a[:12], images[1].name or comp.image_b[:12])
    try:
        result = explanation_from_result(record)
    except (ValueError, KeyError) as exc:
        raise ReportError(f"the stored result of comparison {n} cannot be read ({exc}); "
                          f"analyse it again") from None
    section = comparison_from_explanation(
        result, title=title, image_a=images[0], image_b=images[1], lr=lr, parameters=record.parameters,
        analysed_at=_analysis_time(record), model_sha256=record.model_sha256 or "",
        conclusion=concl.text if concl is not None and concl.comparison_id == comp.id else "", k=k)
    # the stored decision is the one the examiner saw
    section.score, section.threshold, section.decision_label = record.score, record.threshold, \
        record.decision_label
    section.number = n
    _add_evaluation(section, record, cal, case_propositions(store.get_case(case_id)))
    _add_examination(store, section, comp)
    return section, cal


def _add_evaluation(section: ComparisonSection, record, cal, propositions: tuple[str, str]) -> None:
    """The LR as the report states it (its verbal equivalent naming the case's propositions), what it rests on,
    and the model's decision kept apart."""
    from ..core.evaluative import lr_statement, result_model_decision

    stored = (record.parameters or {}).get("likelihood_ratio")
    limits = tuple(10 ** b for b in cal.log10_lr_bounds) if cal is not None else None
    section.lr_statement = lr_statement(stored if isinstance(stored, dict) else section.lr, limits, propositions)
    if section.lr_statement is not None:   # the technical table's words name the same propositions
        section.lr_verbal = section.lr_statement.verbal
    about = stored.get("calibration") if isinstance(stored, dict) else None
    section.calibration_note = calibration_note(about or calibration_summary(cal))
    section.model_decision = result_model_decision(record)


def calibration_note(about: dict | None) -> str:
    """'logistic-regression calibration on LFW (3,000 same-person and 3,000 different-people comparisons),
    Cllr 0.138'; '' when unknown."""
    if not about:
        return ""
    text = f"{about.get('method', 'unknown')} calibration on {about.get('reference') or 'a reference set'}"
    if about.get("n_genuine") and about.get("n_impostor"):
        text += (f" ({int(about['n_genuine']):,} same-person and {int(about['n_impostor']):,} different-people "
                 f"comparisons)")
    if about.get("cllr") is not None:
        text += f", Cllr {float(about['cllr']):.3f}"
    return text


def _add_examination(store, section: ComparisonSection, comp) -> None:
    """The examiner's own work on the comparison: FISWG features, annotations, photo quality, reviews."""
    from ..core.morphology import FEATURE_LABELS, VALUE_LABELS

    for key, a in store.feature_assessments(comp.id).items():
        section.features.append((FEATURE_LABELS.get(key, key), VALUE_LABELS.get(a.value, a.value), a.note,
                                 a.author))
    section.annotations = {side: store.list_annotations(comp.id, side=side) for side in "ab"}
    for side in "ab":
        q = store.image_quality(comp.id, side)
        if q is not None:
            section.quality[side] = q.data
    section.reviews = store.list_reviews(comp.id)


def _analysis_time(record) -> str:
    """When the analysis ran (kept by recombinations), else the save time marked as such (older results)."""
    recorded = (record.parameters or {}).get("analysed_at")
    return record.analysed_at if recorded else f"{record.analysed_at} (saved; analysis time not recorded)"


def _comparison_title(n: int, name_a: str, name_b: str) -> str:
    return f"Comparison {n}: {name_a} vs {name_b}"


def _unreported(store, n: int, comp) -> UnreportedComparison:
    """Why ``comp`` has no section: removed (by whom, when, why) or never successfully analysed."""
    names = []
    for sha in (comp.image_a, comp.image_b):
        try:
            names.append(store.get_image(sha).original_name or sha[:12])
        except XfrError:
            names.append(sha[:12])
    title = _comparison_title(n, *names)
    if getattr(comp, "removed", False):
        return UnreportedComparison(number=n, title=title, status="removed", reason=(
            f"removed by {comp.removed_by or '?'} on {_short_utc(comp.removed_at)}: {comp.removed_reason}"))
    reason = {"new": "not analysed yet", "running": "analysis did not finish", "cancelled": "analysis cancelled",
              "failed": "analysis failed"}.get(comp.status, comp.status)
    return UnreportedComparison(number=n, title=title, status=comp.status,
                                reason=reason + (f": {comp.status_message}" if comp.status_message else ""))


def _short_utc(iso: str | None) -> str:
    try:
        return datetime.fromisoformat(str(iso)).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return str(iso or "?")


def _report_results(store, comparisons) -> dict[int, tuple]:
    """{comparison id: (ResultRecord, which of its results it is and why)} for the comparisons reported: the
    examiner's choice (``xfr report --result N`` or the app), else the first full analysis."""
    out = {}
    for comp in comparisons:
        if getattr(comp, "removed", False):
            continue
        record = store.report_result(comp.id)
        if record is None:
            continue
        ids = [r.id for r in store.list_results(comp.id)]
        how = ("chosen by the examiner" if comp.report_result_id is not None else
               "the first full analysis" if record.is_full_analysis else "the first result (no full analysis)")
        out[comp.id] = (record, f"result {ids.index(record.id) + 1} of {len(ids)}, {how}")
    return out


def build_report_for_case(store, case_id: int, *, calibration=None, model_sha256: str | None = None,
                          k: int = TOP_CHANNELS) -> ReportData:
    """ReportData for a stored case (no model needed): per comparison the result the examiner chose, else the first
    full analysis (store.report_result); removed and unanalysed comparisons are listed apart."""
    case = store.get_case(case_id)
    # verified before anything is read: a report must never present forged rows or a swapped photo as evidence
    verification = store.verify_audit(case_id)
    if not verification.ok:
        raise ReportError(f"case {case.number} fails verification, so no report was built: {verification.message}")
    sections = []
    used_models: dict[str, str] = {}
    cal_used = None
    unreported = []
    comparisons = store.list_comparisons(case_id)
    chosen = _report_results(store, comparisons)
    for comp in comparisons:
        if comp.id not in chosen:
            unreported.append(_unreported(store, comp.number, comp))
            continue
        record, how = chosen[comp.id]
        section, cal = _comparison_section(store, case_id, comp.number, comp, record, calibration, k)
        section.result_id, section.result_choice = record.id, how
        cal_used = cal_used or cal
        sections.append(section)
        if record.model_sha256:
            used_models[record.model_sha256] = record.model_name or ""
    if not sections:
        raise ReportError(f"case {case.number} has no analysed comparison to report")
    sha = model_sha256 or next(iter(used_models), "")
    concl = store.latest_conclusion(case_id)   # case-level only: comparison notes go with their comparison
    from ..core.evaluative import case_propositions

    return ReportData(propositions=case_propositions(case),
        case_number=case.number, title=case.title, examiner=case.examiner, organisation=case.organisation,
        case_created=case.created_at, case_modified=case.modified_at,
        model=_stored_model_info(store, sha, used_models.get(sha, "")),
        calibration=calibration_summary(cal_used), comparisons=sections, unreported=unreported,
        conclusion=concl.text if concl else "", conclusion_scale=(concl.scale or "") if concl else "",
        conclusion_notes=concl.notes if concl else "", conclusion_author=(concl.author or "") if concl else "",
        conclusion_time=concl.created_at if concl else "", case_notes=case.notes,
        audit=_audit_rows(store.list_audit(case_id), {str(c.id): c.number for c in comparisons}, case.number),
        audit_status=f"{audit_status(verification)}; verified chain head {verification.head or '(empty)'}",
    )


def now_local_iso() -> str:
    return datetime.now().astimezone().replace(microsecond=0).isoformat()


def utc_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()

