"""The case report as a PDF (reportlab): a plain :class:`ReportData` in, PDF bytes out.

``ReportData`` is built either from the case store (:func:`build_report_for_case`, reading the latest result of
each comparison) or from a :class:`~xfr_desktop.core.explain.PairExplanation`
(:func:`report_data_from_explanation`, for ``xfr explain`` and the demo). Rendering needs neither Qt nor torch:
overlays and colour bars are drawn with numpy/cv2 into PNGs in memory.

PDF/A-2b where feasible: every font is an embedded TrueType subset (DejaVu, also for the page preamble so no base-14
font is referenced), the catalog carries XMP metadata matching the document information dictionary with
``pdfaid:part=2, conformance=B``, and an sRGB output intent (ICC profile from Pillow's littleCMS). Not checked by a
PDF/A validator (veraPDF is not available offline); see docs/reports.md for what is known to be missing.
"""
from __future__ import annotations

import functools

import io
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence
from xml.sax.saxutils import escape

import numpy as np

from .. import __version__
from ..core.errors import XfrError
from ..paths import REPO_ROOT

PACKAGE_ROOT = REPO_ROOT
FONTS_DIR_ENV = "XFR_FONTS_DIR"
SYSTEM_DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
FONT_FILES = {
    "DejaVuSans": "DejaVuSans.ttf",
    "DejaVuSans-Bold": "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique": "DejaVuSans-Oblique.ttf",
    "DejaVuSansMono": "DejaVuSansMono.ttf",
}
BODY_FONT, BOLD_FONT, ITALIC_FONT, MONO_FONT = "DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique", "DejaVuSansMono"

SIGNATURE_BOX_SIZE = (260.0, 70.0)   # points; the visible signature box on the last page
TOP_CHANNELS = 3
CARD_EXCERPT_CHARS = 1400

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
    box: Sequence[float] | None = None        # x, y, w, h of the detected face in `original`
    landmarks: np.ndarray | None = None       # (5, 2) in `original`
    aligned: np.ndarray | None = None         # RGB uint8 model input
    reconstruction: np.ndarray | None = None  # RGB uint8 decoder output


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
    card_excerpt: str = ""
    path: str = ""


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
    conclusion: str = ""
    conclusion_scale: str = ""
    conclusion_notes: str = ""
    conclusion_author: str = ""
    conclusion_time: str = ""
    case_notes: str = ""
    audit: list[dict] = field(default_factory=list)   # time, actor, action, object, details, hash
    audit_status: str = ""                        # the chain's verification at export time
    limitations: str = LIMITATIONS


@dataclass
class RenderedReport:
    pdf: bytes
    n_pages: int
    signature_box: tuple[float, float, float, float]   # x1, y1, x2, y2 on the last page, in points
    sha256: str


# --- fonts --------------------------------------------------------------------------------------------------
def fonts_dir() -> Path:
    for cand in (os.environ.get(FONTS_DIR_ENV), PACKAGE_ROOT / "resources" / "fonts", SYSTEM_DEJAVU):
        if cand and all((Path(cand) / f).is_file() for f in FONT_FILES.values()):
            return Path(cand)
    raise ReportError("the report fonts (DejaVu Sans) are missing from resources/fonts; reinstall XFR Desktop")


_FONTS_REGISTERED = False


def register_fonts() -> None:
    global _FONTS_REGISTERED
    if _FONTS_REGISTERED:
        return
    from reportlab.lib.fonts import addMapping
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    folder = fonts_dir()
    for name, file in FONT_FILES.items():
        pdfmetrics.registerFont(TTFont(name, str(folder / file)))
    for bold, italic, name in ((0, 0, BODY_FONT), (1, 0, BOLD_FONT), (0, 1, ITALIC_FONT), (1, 1, BOLD_FONT)):
        addMapping(BODY_FONT, bold, italic, name)
    for bold in (0, 1):
        for italic in (0, 1):
            addMapping(MONO_FONT, bold, italic, MONO_FONT)
    _FONTS_REGISTERED = True


# --- images -------------------------------------------------------------------------------------------------
def _png(rgb: np.ndarray) -> bytes:
    import cv2

    arr = np.ascontiguousarray(rgb)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, 2)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(arr, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ReportError("cannot encode an image for the report")
    return buf.tobytes()


def _colormap(values01: np.ndarray, cmap: str) -> np.ndarray:
    """[0, 1] floats -> RGB uint8 through an OpenCV colour map."""
    import cv2

    idx = np.clip(np.nan_to_num(values01) * 255, 0, 255).astype(np.uint8)
    cmap_id = {"inferno": cv2.COLORMAP_INFERNO, "jet": cv2.COLORMAP_JET, "viridis": cv2.COLORMAP_VIRIDIS}[cmap]
    return cv2.cvtColor(cv2.applyColorMap(idx, cmap_id), cv2.COLOR_BGR2RGB)


MAP_CMAPS = {"S": "inferno", "S_pos": "viridis", "S_neg": "inferno"}
MAP_TITLES = {"S": "S = |H|", "S_pos": "S⁺ = ReLU(H) (similar)", "S_neg": "S⁻ = ReLU(−H) (dissimilar)"}


def overlay_map(aligned: np.ndarray | None, heat: np.ndarray, vmax: float, cmap: str, upscale: int = 2) -> np.ndarray:
    """The map in colour blended over the grey face (RGB uint8), upscaled for print."""
    import cv2

    h, w = heat.shape
    colour = _colormap(heat / vmax if vmax > 0 else np.zeros_like(heat), cmap).astype(np.float32)
    if aligned is not None and aligned.shape[:2] == (h, w):
        grey = cv2.cvtColor(aligned, cv2.COLOR_RGB2GRAY).astype(np.float32)[..., None]
        colour = 0.6 * colour + 0.4 * grey
    out = np.clip(colour, 0, 255).astype(np.uint8)
    return cv2.resize(out, (w * upscale, h * upscale), interpolation=cv2.INTER_NEAREST)


def colour_bar(cmap: str, width: int = 256, height: int = 12) -> np.ndarray:
    ramp = np.tile(np.linspace(0, 1, width, dtype=np.float32), (height, 1))
    return _colormap(ramp, cmap)


def thumbnail_with_box(image: np.ndarray, box=None, landmarks=None, max_side: int = 480) -> np.ndarray:
    import cv2

    img = np.ascontiguousarray(image)
    scale = min(1.0, max_side / max(img.shape[:2]))
    if scale < 1.0:
        img = cv2.resize(img, (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA)
    img = img.copy()
    thick = max(2, round(max(img.shape[:2]) / 200))
    if box is not None and len(box) == 4 and np.all(np.isfinite(box)):
        x, y, w, h = (float(v) * scale for v in box)
        cv2.rectangle(img, (round(x), round(y)), (round(x + w), round(y + h)), (0, 200, 0), thick)
    if landmarks is not None:
        for px, py in np.asarray(landmarks, np.float64).reshape(-1, 2) * scale:
            if np.isfinite(px) and np.isfinite(py):
                cv2.circle(img, (round(px), round(py)), thick + 1, (255, 200, 0), -1)
    return img


def channel_region(aligned: np.ndarray | None, residual: np.ndarray, upscale: int = 2) -> np.ndarray:
    """A channel's residual over the face, with a box around where it is at least 20% of its peak."""
    import cv2

    vmax = float(residual.max())
    out = overlay_map(aligned, residual, vmax, "jet", upscale=upscale)
    if vmax > 0:
        rows, cols = np.nonzero(residual >= 0.2 * vmax)
        cv2.rectangle(out, (int(cols.min()) * upscale, int(rows.min()) * upscale),
                      (int(cols.max() + 1) * upscale - 1, int(rows.max() + 1) * upscale - 1), (255, 255, 255), 1)
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
        return ChannelInfo(index=i, weight=float(weights[i]), product=float(result.products[i]),
                           region_a=channel_region(result.a.aligned, result.a.residuals.channel(i)),
                           region_b=channel_region(result.b.aligned, result.b.residuals.channel(i)))

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


def model_card_excerpt(readme: str | os.PathLike | None = None, max_chars: int = CARD_EXCERPT_CHARS) -> str:
    """The beginning of the model card (models/README.md), cut at a paragraph boundary."""
    from ..core.model import MODELS_DIR

    path = Path(readme) if readme is not None else MODELS_DIR / "README.md"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    paragraphs, total = [], 0
    for para in text.split("\n\n"):
        para = para.strip()
        if not para:
            continue
        if total + len(para) > max_chars and paragraphs:
            break
        paragraphs.append(para[:max_chars])
        total += len(para)
    return "\n\n".join(paragraphs)


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


def _bundled_card_excerpt(model_path) -> str:
    card = bundled_card_path(model_path)
    return model_card_excerpt(card) if card is not None else ""


def model_info(model=None, *, name: str = "", sha256: str = "") -> ModelInfo:
    """Name, sha256 and, for the bundled model, an excerpt of its card (models/README.md)."""
    path = getattr(model, "path", None) or ""
    spec = getattr(model, "spec", None) or {}
    return ModelInfo(name=name or (Path(path).name if path else spec.get("name", "")),
                     sha256=sha256 or (getattr(model, "sha256", None) or ""),
                     card_excerpt=_bundled_card_excerpt(path), path=str(path))


def _stored_model_info(store, sha256: str, name: str) -> ModelInfo:
    """From the store's model registry: its card if registered with one, else the bundled card when it is the
    bundled model's file."""
    card, path = "", ""
    if sha256:
        try:
            record = store.get_model(sha256)
            name, path = name or record.name, str(record.path or "")
            card = record.card if isinstance(record.card, str) else (
                json.dumps(record.card, indent=1, ensure_ascii=False) if record.card else "")
        except XfrError:
            pass
    if not card:
        card = _bundled_card_excerpt(path or _bundled_models_by_sha256().get(sha256, ""))
    return ModelInfo(name=name, sha256=sha256, card_excerpt=card[:CARD_EXCERPT_CHARS], path=path)


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
    return ReportData(case_number=case_number, title=title, examiner=examiner, organisation=organisation,
                      model=model_info(model), calibration=calibration_summary(calibration), comparisons=[section],
                      conclusion=conclusion, case_notes=notes)


# --- from the store -----------------------------------------------------------------------------------------
def _load_original(store, sha256: str) -> np.ndarray | None:
    from ..core.imageio import load_image

    try:
        return load_image(store.image_path(sha256))
    except XfrError:
        return None


def _find_calibration(store, model_sha256: str | None, explicit=None):
    """The calibration for the model that produced a result: explicit, else next to a registered/bundled model."""
    from ..core.calibration import CalibrationError, load_calibration_for
    from ..core.model import default_model_path

    if explicit is not None:
        return explicit
    paths = []
    if model_sha256:
        try:
            paths.append(store.get_model(model_sha256).path)
        except XfrError:
            pass
    paths.append(default_model_path())
    for path in paths:
        try:
            cal = load_calibration_for(path)
        except CalibrationError:
            continue
        if cal is not None and (not model_sha256 or not cal.model_sha256 or cal.model_sha256 == model_sha256):
            return cal
    return None


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


def _audit_rows(records) -> list[dict]:
    rows = []
    for r in records:
        details = r.details
        if not isinstance(details, str):
            details = json.dumps(details, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        obj = f"{r.object_type or ''} {r.object_id if r.object_id is not None else ''}".strip()
        rows.append({"id": r.id, "time": r.time, "actor": r.actor, "action": r.action, "object": obj,
                     "details": details or "", "hash": r.hash})
    return rows


def build_report_for_case(store, case_id: int, *, calibration=None, model_sha256: str | None = None,
                          k: int = TOP_CHANNELS) -> ReportData:
    """ReportData for a stored case, from the latest result of each comparison (no model needed)."""
    from ..core.serialize import explanation_from_result
    from ..store import unpack_arrays

    case = store.get_case(case_id)
    # verified before anything is read: a report must never present forged rows or a swapped photo as evidence
    verification = store.verify_audit(case_id)
    if not verification.ok:
        raise ReportError(f"case {case.number} fails verification, so no report was built: {verification.message}")
    sections = []
    used_models: dict[str, str] = {}
    cal_used = None
    for n, comp in enumerate(store.list_comparisons(case_id), 1):
        record = store.latest_result(comp.id)
        if record is None:
            continue
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
            images.append(ImageInfo(label=label, name=meta.original_name or "", sha256=sha,
                                    original=_load_original(store, sha), box=f.get("box"),
                                    landmarks=f.get("landmarks"), aligned=f.get("aligned"),
                                    reconstruction=f.get("reconstruction")))
        cal = _find_calibration(store, record.model_sha256, calibration)
        lr = _stored_lr(record.parameters) or (cal.describe(record.score) if cal is not None else None)
        cal_used = cal_used or cal
        concl = store.latest_conclusion(case_id, comparison_id=comp.id)
        title = f"Comparison {n}: {images[0].name or comp.image_a[:12]} vs {images[1].name or comp.image_b[:12]}"
        try:
            result = explanation_from_result(record)
        except (ValueError, KeyError) as exc:
            raise ReportError(f"the stored result of comparison {comp.id} cannot be read ({exc}); "
                              f"analyse it again") from None
        section = comparison_from_explanation(
            result, title=title, image_a=images[0], image_b=images[1], lr=lr, parameters=record.parameters,
            analysed_at=record.created_at, model_sha256=record.model_sha256 or "",
            conclusion=concl.text if concl is not None and concl.comparison_id == comp.id else "", k=k)
        # the stored decision is the one the examiner saw
        section.score, section.threshold, section.decision_label = record.score, record.threshold, \
            record.decision_label
        sections.append(section)
        if record.model_sha256:
            used_models[record.model_sha256] = record.model_name or ""
    if not sections:
        raise ReportError(f"case {case.number} has no analysed comparison to report")
    sha = model_sha256 or next(iter(used_models), "")
    concl = store.latest_conclusion(case_id)
    return ReportData(
        case_number=case.number, title=case.title, examiner=case.examiner, organisation=case.organisation,
        case_created=case.created_at, case_modified=case.modified_at,
        model=_stored_model_info(store, sha, used_models.get(sha, "")),
        calibration=calibration_summary(cal_used), comparisons=sections,
        conclusion=concl.text if concl else "", conclusion_scale=(concl.scale or "") if concl else "",
        conclusion_notes=concl.notes if concl else "", conclusion_author=(concl.author or "") if concl else "",
        conclusion_time=concl.created_at if concl else "", case_notes=case.notes,
        audit=_audit_rows(store.list_audit(case_id)),
        audit_status=f"{verification.message}; verified chain head {verification.head or '(empty)'}",
    )


# --- rendering ----------------------------------------------------------------------------------------------
def _styles():
    from reportlab.lib import colors
    from reportlab.lib.styles import ParagraphStyle

    base = ParagraphStyle("body", fontName=BODY_FONT, fontSize=9, leading=12)
    return {
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=7.5, leading=9.5),
        "tiny": ParagraphStyle("tiny", parent=base, fontSize=6, leading=7.5),
        "mono": ParagraphStyle("mono", parent=base, fontName=MONO_FONT, fontSize=6.8, leading=8.5),
        "title": ParagraphStyle("title", parent=base, fontName=BOLD_FONT, fontSize=17, leading=22, spaceAfter=6),
        "h1": ParagraphStyle("h1", parent=base, fontName=BOLD_FONT, fontSize=12.5, leading=16, spaceBefore=10,
                             spaceAfter=4, textColor=colors.HexColor("#1a3b6b")),
        "h2": ParagraphStyle("h2", parent=base, fontName=BOLD_FONT, fontSize=10, leading=13, spaceBefore=6,
                             spaceAfter=3),
        "caption": ParagraphStyle("caption", parent=base, fontSize=7, leading=8.5, alignment=1),
        "big": ParagraphStyle("big", parent=base, fontName=BOLD_FONT, fontSize=11, leading=14),
    }


def _p(text: Any, style) -> "Any":
    from reportlab.platypus import Paragraph

    return Paragraph(escape("" if text is None else str(text)).replace("\n", "<br/>"), style)


def _img(rgb: np.ndarray, width: float):
    from reportlab.platypus import Image

    h, w = rgb.shape[:2]
    return Image(io.BytesIO(_png(rgb)), width=width, height=width * h / w)


def _kv_table(rows, col0=4.2):
    from reportlab.lib.units import cm
    from reportlab.platypus import Table

    st = _styles()
    data = [[_p(k, st["small"]), v if not isinstance(v, str) else _p(v, st["small"])] for k, v in rows]
    t = Table(data, colWidths=[col0 * cm, None], hAlign="LEFT")
    t.setStyle(_table_style())
    return t


def _table_style(header: bool = False, grid: bool = True):
    """Every table names the embedded font: reportlab's default cell font is Helvetica (not embedded)."""
    from reportlab.lib import colors
    from reportlab.platypus import TableStyle

    cmds = [("FONTNAME", (0, 0), (-1, -1), BODY_FONT), ("FONTSIZE", (0, 0), (-1, -1), 7.5),
            ("VALIGN", (0, 0), (-1, -1), "TOP")]
    if grid:
        cmds.append(("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#b0b0b0")))
    cmds += [
            ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3),
            ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]
    if header:
        cmds.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e4e9f2")))
    return TableStyle(cmds)


def short_time(iso: str) -> str:
    """'2026-11-28T02:30:29.297897+00:00' -> '2026-11-28 02:30:29 UTC' (other offsets kept)."""
    if not iso:
        return ""
    try:
        t = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)
    if t.tzinfo is None or t.utcoffset() == timezone.utc.utcoffset(None):
        return t.strftime("%Y-%m-%d %H:%M:%S") + " UTC"
    return t.replace(microsecond=0).isoformat(sep=" ")


def _fmt_float(v, digits=4) -> str:
    try:
        return f"{float(v):.{digits}f}"
    except (TypeError, ValueError):
        return str(v)


def _lr_text(section: ComparisonSection) -> str:
    from ..core.calibration import format_lr

    if section.lr is None:
        return "not available: the model has no calibration (run xfr calibrate)"
    return f"LR = {format_lr(section.lr)} ({section.lr_verbal})"


def _comparison_flowables(section: ComparisonSection, st) -> list:
    from reportlab.lib.units import cm
    from reportlab.platypus import CondPageBreak, KeepTogether, Spacer, Table

    heading = _p(section.title, st["h1"])
    # images and hashes
    cells, caps = [], []
    for info in (section.image_a, section.image_b):
        if info.original is not None:
            cells.append(_img(thumbnail_with_box(info.original, info.box, info.landmarks), 5.2 * cm))
        else:
            cells.append(_p("(original not available)", st["small"]))
        caps.append(_p(f"Image {info.label}: {info.name}", st["caption"]))
    crops = []
    for info in (section.image_a, section.image_b):
        row = [_img(a, 2.4 * cm) for a in (info.aligned, info.reconstruction) if a is not None]
        crops.append(Table([row], hAlign="CENTER", style=_table_style(grid=False)) if row else _p("", st["small"]))
    t = Table([cells, caps, crops, [_p("aligned crop | reconstruction", st["caption"])] * 2],
              colWidths=[8.3 * cm, 8.3 * cm])
    t.setStyle(_table_style())
    t.setStyle([("ALIGN", (0, 0), (-1, -1), "CENTER")])
    out = [CondPageBreak(4 * cm), KeepTogether([heading, t]), Spacer(1, 4)]
    out.append(_kv_table([
        (f"SHA-256 of image {section.image_a.label}", _p(section.image_a.sha256 or "n/a", st["mono"])),
        (f"SHA-256 of image {section.image_b.label}", _p(section.image_b.sha256 or "n/a", st["mono"])),
        ("Model SHA-256", _p(section.model_sha256 or "n/a", st["mono"])),
        ("Analysed at", short_time(section.analysed_at) or "n/a"),
    ]))
    # result
    p = section.parameters or {}
    channels = p.get("channels")
    chan_text = "all contributing" if not channels else f"{len(channels)} selected: {channels[:20]}" + (
        " …" if len(channels) > 20 else "")
    used = "" if section.n_channels_used is None else f"; {section.n_channels_used} of {section.n_channels} used"
    out += [Spacer(1, 4), _p("Result and parameters", st["h2"]), _kv_table([
        ("Score (cosine similarity)", _fmt_float(section.score)),
        ("Decision threshold τ", _fmt_float(section.threshold)),
        ("Decision", section.decision_label.upper()),
        ("Likelihood ratio", _lr_text(section)),
        ("Normalization", str(p.get("normalization", "n/a"))),
        ("Channels", f"{chan_text}; top-k: {p.get('top_k') or 'off'}{used}"),
        ("Other parameters", json.dumps({k: v for k, v in p.items()
                                         if k not in ("threshold", "normalization", "channels", "top_k",
                                                      "likelihood_ratio")},
                                        sort_keys=True, default=str)),
    ])]
    # maps
    if section.maps:
        vmax = max(float(np.max(section.maps[s]["S"])) for s in "ab")
        rows = []
        header = [_p("", st["small"])] + [_p(MAP_TITLES[k], st["caption"]) for k in ("S", "S_pos", "S_neg")]
        rows.append(header)
        for s, info in (("a", section.image_a), ("b", section.image_b)):
            row = [_p(f"Image {info.label}", st["small"])]
            for key in ("S", "S_pos", "S_neg"):
                row.append(_img(overlay_map(info.aligned, section.maps[s][key], vmax, MAP_CMAPS[key]), 3.6 * cm))
            rows.append(row)
        bars = [_p("colour scale", st["small"])]
        for key in ("S", "S_pos", "S_neg"):
            bar = Table([[_img(colour_bar(MAP_CMAPS[key]), 3.6 * cm)],
                         [_p(f"0 … {vmax:.3g}", st["caption"])]], style=_table_style(grid=False))
            bars.append(bar)
        rows.append(bars)
        mt = Table(rows, colWidths=[2.0 * cm, 4.1 * cm, 4.1 * cm, 4.1 * cm], hAlign="LEFT")
        mt.setStyle(_table_style())
        out += [Spacer(1, 4), KeepTogether([_p("Explanation maps (one colour scale for both images)", st["h2"]),
                                            mt])]
    # channels
    for label, chans in (("Top similar channels (push towards a match)", section.similar),
                         ("Top dissimilar channels (push towards a non-match)", section.dissimilar)):
        if not chans:
            continue
        rows = [[_p(h, st["small"]) for h in ("channel", "weight w = p − T", "product p = uA·uB",
                                              "region in A", "region in B")]]
        for c in chans:
            rows.append([_p(str(c.index), st["small"]), _p(f"{c.weight:+.5f}", st["small"]),
                         _p(f"{c.product:+.5f}", st["small"]),
                         _img(c.region_a, 2.2 * cm) if c.region_a is not None else _p("", st["small"]),
                         _img(c.region_b, 2.2 * cm) if c.region_b is not None else _p("", st["small"])])
        ct = Table(rows, colWidths=[1.6 * cm, 3.2 * cm, 3.0 * cm, 2.6 * cm, 2.6 * cm], hAlign="LEFT")
        ct.setStyle(_table_style(header=True))
        out += [Spacer(1, 4), KeepTogether([_p(label, st["h2"]), ct])]
    if section.conclusion:
        out += [_p("Examiner's note on this comparison", st["h2"]), _p(section.conclusion, st["body"])]
    return out


class _SignaturePlaceholder:
    """Factory for a flowable that reserves (and frames) the signature box and records where it landed."""

    def __new__(cls, record: dict):
        from reportlab.lib import colors
        from reportlab.platypus import Flowable

        class Box(Flowable):
            def wrap(self, aw, ah):
                self.width, self.height = SIGNATURE_BOX_SIZE
                return self.width, self.height

            def draw(self):
                c = self.canv
                c.setStrokeColor(colors.HexColor("#7a7a7a"))
                c.setDash(3, 2)
                c.rect(0, 0, self.width, self.height)
                c.setDash()
                c.setFont(BODY_FONT, 7.5)
                c.setFillColor(colors.HexColor("#555555"))
                c.drawString(6, self.height - 14, "Digital signature")
                c.drawString(6, self.height - 26, "Not signed: this PDF carries no digital signature")
                x, y = c.absolutePosition(0, 0)
                record["box"] = (x, y, x + self.width, y + self.height)
                record["page"] = c.getPageNumber()

        return Box()


def _canvas_class(data: ReportData, generated_at: str, record: dict):
    from reportlab.lib import colors
    from reportlab.pdfgen import canvas

    number = data.case_number if len(data.case_number) <= 40 else data.case_number[:39] + "…"
    header = f"XFR Desktop case report · case {number}"

    class NumberedCanvas(canvas.Canvas):
        """Two passes in one: pages are kept until save() so each can say 'page x of y'."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._pages: list[dict] = []

        def showPage(self):
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            n = len(self._pages)
            record["n_pages"] = n
            for state in self._pages:
                self.__dict__.update(state)
                w, h = self._pagesize
                self.setFont(BODY_FONT, 7)
                self.setFillColor(colors.HexColor("#555555"))
                self.drawString(40, h - 28, header)
                self.drawRightString(w - 40, h - 28, f"generated {generated_at}")
                self.drawString(40, 22, f"XFR Desktop {data.software_version}")
                self.drawRightString(w - 40, 22, f"page {self._pageNumber} of {n}")
                self.setStrokeColor(colors.HexColor("#b0b0b0"))
                self.line(40, h - 33, w - 40, h - 33)
                super().showPage()
            _add_pdfa_parts(self, data, generated_at)
            super().save()

    return NumberedCanvas


def _xmp_date(ts) -> str:
    y, mo, d, hh, mi, ss = ts.YMDhms
    sign = "-" if ts.dhh < 0 else "+"
    return f"{y:04d}-{mo:02d}-{d:02d}T{hh:02d}:{mi:02d}:{ss:02d}{sign}{abs(ts.dhh):02d}:{ts.dmm:02d}"


def _xmp_packet(doc) -> bytes:
    info = doc.info
    date = _xmp_date(doc._timeStamp)
    e = escape
    return f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/">
   <pdfaid:part>2</pdfaid:part>
   <pdfaid:conformance>B</pdfaid:conformance>
  </rdf:Description>
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
   <dc:format>application/pdf</dc:format>
   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">{e(info.title)}</rdf:li></rdf:Alt></dc:title>
   <dc:creator><rdf:Seq><rdf:li>{e(info.author)}</rdf:li></rdf:Seq></dc:creator>
   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{e(info.subject)}</rdf:li></rdf:Alt></dc:description>
  </rdf:Description>
  <rdf:Description rdf:about="" xmlns:pdf="http://ns.adobe.com/pdf/1.3/">
   <pdf:Producer>{e(info.producer)}</pdf:Producer>
   <pdf:Keywords>{e(info.keywords)}</pdf:Keywords>
   <pdf:Trapped>False</pdf:Trapped>
  </rdf:Description>
  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/">
   <xmp:CreatorTool>{e(info.creator)}</xmp:CreatorTool>
   <xmp:CreateDate>{date}</xmp:CreateDate>
   <xmp:ModifyDate>{date}</xmp:ModifyDate>
   <xmp:MetadataDate>{date}</xmp:MetadataDate>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>""".encode("utf-8")


def _srgb_icc() -> bytes | None:
    try:
        from PIL import ImageCms

        return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    except Exception:  # noqa: BLE001 - Pillow without littleCMS: no output intent (documented)
        return None


def _add_pdfa_parts(canv, data: ReportData, generated_at: str) -> None:
    """XMP metadata (pdfaid part 2, conformance B) and an sRGB output intent in the catalog."""
    from reportlab.pdfbase.pdfdoc import XMP, PDFArray, PDFDictionary, PDFName, PDFStream, PDFString

    doc = canv._doc
    doc.Catalog.Metadata = XMP(creator=_xmp_packet)
    icc = _srgb_icc()
    if icc is not None:
        profile = PDFStream(PDFDictionary({"N": 3}), icc)
        intent = PDFDictionary({"Type": PDFName("OutputIntent"), "S": PDFName("GTS_PDFA1"),
                                "OutputConditionIdentifier": PDFString("sRGB IEC61966-2.1"),
                                "Info": PDFString("sRGB IEC61966-2.1"),
                                "DestOutputProfile": doc.Reference(profile)})
        doc.Catalog.OutputIntents = PDFArray([intent])
        # PDFCatalog writes only the keys it knows; teach this instance one more
        doc.Catalog.__NoDefault__ = list(type(doc.Catalog).__NoDefault__) + ["OutputIntents"]


def render_report(data: ReportData, out_path: str | os.PathLike | None = None) -> RenderedReport:
    """Render ``data`` to PDF bytes (and write them atomically to ``out_path`` when given)."""
    import hashlib

    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import cm
    from reportlab.platypus import CondPageBreak, PageBreak, SimpleDocTemplate, Spacer, Table

    register_fonts()
    st = _styles()
    generated_at = data.generated_at or datetime.now().astimezone().replace(microsecond=0).isoformat()
    record: dict = {}
    story: list = [
        _p("Face comparison report", st["title"]),
        _p(f"Case {data.case_number}" + (f": {data.title}" if data.title else ""), st["big"]), Spacer(1, 6),
        _kv_table([
            ("Case number", data.case_number), ("Title", data.title or "—"), ("Examiner", data.examiner or "—"),
            ("Organisation", data.organisation or "—"), ("Case created", short_time(data.case_created) or "—"),
            ("Case last modified", short_time(data.case_modified) or "—"), ("Report generated", generated_at),
            ("Software", f"XFR Desktop {data.software_version}"),
            ("Comparisons in this report", str(len(data.comparisons))),
        ]),
        _p("Method", st["h1"]),
        _p("Faces are detected (YuNet), aligned to the model's template and embedded by the model; the score is the "
           "cosine similarity of the two embeddings (F = global max pool of the last convolutional map C) and the "
           "decision compares it with the threshold τ. The explanation follows Xu, Lu & Ebrahimi, 'Discriminative "
           "Deep Feature Visualization for Explainable Face Recognition': each channel's strongest activation is "
           "removed, the face reconstructed by the decoder, and the per-channel reconstruction change weighted by "
           "w[i] = p[i] − T and summed into H, where p[i] = uA[i]·uB[i] is the product of the i-th components of "
           "the two unit-length embeddings (the p[i] sum to the score) and T = τ / channels; with 'sum' "
           "normalization and all channels, H adds up to the margin score − τ. S = |H|; S⁺ = ReLU(H) marks "
           "regions that make "
           "the faces look alike to the model, S⁻ = ReLU(−H) regions that make them look different.", st["body"]),
        _p("Model", st["h1"]),
        _kv_table([("Model", data.model.name or "—"), ("Model SHA-256", _p(data.model.sha256 or "n/a", st["mono"]))]),
    ]
    if data.model.card_excerpt:
        story += [Spacer(1, 3), _p("Excerpt of the model card:", st["small"]), _p(data.model.card_excerpt, st["tiny"])]
    else:
        story.append(_p("No model card is available for this model file.", st["small"]))
    story.append(_p("Likelihood ratio", st["h1"]))
    if data.calibration:
        c = data.calibration
        lo, hi = c.get("bounds", [None, None])
        story.append(_p(
            f"Scores are converted into a likelihood ratio LR = P(score | same person) / P(score | different "
            f"people) by {c['method']} calibration on {c['n_genuine']} same-person and {c['n_impostor']} "
            f"different-people reference comparisons ({c.get('reference') or 'reference set'}). Cllr = "
            f"{c['cllr']:.3f}, Cllr_min (pool-adjacent-violators) = {c['cllr_min']:.3f}. LRs are limited to "
            f"[1/{1 / lo:,.0f}, {hi:,.0f}], the range this reference set can support.", st["body"]))
    elif any(c.lr is not None for c in data.comparisons):
        story.append(_p("The likelihood ratios below are those computed when each result was saved; the "
                        "calibration that produced them is not available for the model file now (the model or its "
                        "calibration changed since).", st["body"]))
    else:
        story.append(_p("No calibration is stored for this model, so no likelihood ratio is reported.", st["body"]))
    from ..core.calibration import VERBAL_SCALE_TEXT

    story.append(_p(f"Verbal scale: {VERBAL_SCALE_TEXT}", st["small"]))
    for section in data.comparisons:
        story += _comparison_flowables(section, st)
    story += [CondPageBreak(6 * cm), _p("Examiner's conclusion", st["h1"])]
    if data.conclusion:
        # long texts go in paragraphs (which split across pages), not in table cells (which cannot)
        story.append(_p(data.conclusion, st["body"]))
        rows = [("Scale", data.conclusion_scale or "—"), ("Author", data.conclusion_author or "—"),
                ("Entered", short_time(data.conclusion_time) or "—")]
        story += [Spacer(1, 4), _kv_table(rows)]
        if data.conclusion_notes:
            story += [_p("Notes", st["h2"]), _p(data.conclusion_notes, st["body"])]
    else:
        story.append(_p("No conclusion has been entered for this case.", st["body"]))
    if data.case_notes:
        story += [_p("Case notes", st["h2"]), _p(data.case_notes, st["body"])]
    story += [_p("Limitations", st["h1"]), _p(data.limitations, st["body"])]
    # appendix: audit trail
    story += [PageBreak(), _p("Appendix: audit trail of the case", st["h1"])]
    if data.audit_status:
        story.append(_p(f"Chain verification at export: {data.audit_status}", st["small"]))
    if data.audit:
        rows = [[_p(h, st["tiny"]) for h in ("#", "time (UTC)", "actor", "action", "object", "details",
                                             "entry hash")]]
        for r in data.audit:
            obj = str(r.get("object", ""))
            rows.append([_p(r.get("id", ""), st["tiny"]), _p(short_time(r.get("time", "")), st["tiny"]),
                         _p(r.get("actor", ""), st["tiny"]), _p(r.get("action", ""), st["tiny"]),
                         _p(obj if len(obj) <= 24 else obj[:22] + "…", st["tiny"]),
                         _p(str(r.get("details", ""))[:600], st["tiny"]),
                         _p(str(r.get("hash", ""))[:12] + "…", st["mono"])])
        at = Table(rows, colWidths=[0.7 * cm, 2.5 * cm, 1.5 * cm, 2.4 * cm, 2.2 * cm, 6.0 * cm, 2.2 * cm],
                   repeatRows=1, hAlign="LEFT")
        at.setStyle(_table_style(header=True))
        story.append(at)
    else:
        story.append(_p("No audit trail is attached (report built outside a case).", st["small"]))
    story += [Spacer(1, 14), CondPageBreak(SIGNATURE_BOX_SIZE[1] + 20), _SignaturePlaceholder(record)]

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=1.6 * cm, rightMargin=1.6 * cm, topMargin=1.6 * cm,
                            bottomMargin=1.6 * cm, title=f"Face comparison report, case {data.case_number}",
                            author=data.examiner or "XFR Desktop", subject=data.title or "face comparison",
                            creator=f"XFR Desktop {data.software_version}", keywords="XFR Desktop; face comparison",
                            initialFontName=BODY_FONT, lang="en")
    try:
        doc.build(story, canvasmaker=_canvas_class(data, generated_at, record))
    except XfrError:
        raise
    except Exception as exc:  # noqa: BLE001 - layout failures get one line, not a reportlab traceback
        raise ReportError(f"the report could not be laid out ({type(exc).__name__}: {str(exc)[:200]})") from None
    pdf = buf.getvalue()
    if record.get("page") != record.get("n_pages"):
        raise ReportError("internal: the signature box did not land on the last page")
    rendered = RenderedReport(pdf=pdf, n_pages=int(record["n_pages"]), signature_box=tuple(record["box"]),
                              sha256=hashlib.sha256(pdf).hexdigest())
    if out_path is not None:
        write_atomically(out_path, pdf)
    return rendered


def write_atomically(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise ReportError(f"the folder {path.parent} does not exist")
    from ..core.fileio import atomic_write

    atomic_write(path, lambda f: f.write(data), mode=None)  # reports stay owner-only (documented)
    return path


def now_local_iso() -> str:
    return datetime.now().astimezone().replace(microsecond=0).isoformat()


def utc_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


__all__ = ["ReportData", "ComparisonSection", "ImageInfo", "ModelInfo", "ChannelInfo", "RenderedReport",
           "ReportError", "render_report", "build_report_for_case", "comparison_from_explanation",
           "report_data_from_explanation", "LIMITATIONS"]
