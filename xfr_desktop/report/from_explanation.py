"""Report data straight from a :class:`~xfr_desktop.core.explain.PairExplanation`: one comparison section (maps,
top channels with their regions) for the store's sections and the whole one-comparison report of ``xfr explain``
and the demo.
"""
from __future__ import annotations

import numpy as np

from ..core.calibration import load_calibration_for
from ..core.evaluative import DEFAULT_DEFENCE, DEFAULT_PROSECUTION, lr_statement, model_decision
from ..core.map_style import colour_levels
from .calibration_lookup import calibration_note, calibration_summary
from .images import channel_region
from .model_cards import model_info
from .report_data import ChannelInfo, ComparisonSection, ImageInfo, ReportData

TOP_CHANNELS = 3


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


def report_data_from_explanation(result, *, model=None, case_number: str = "(no case)", title: str = "",
                                 examiner: str = "", organisation: str = "", image_a: ImageInfo | None = None,
                                 image_b: ImageInfo | None = None, calibration=None, conclusion: str = "",
                                 notes: str = "") -> ReportData:
    """A one-comparison report straight from an explanation (for ``xfr explain`` / the demo)."""
    if calibration is None and model is not None:
        calibration = load_calibration_for(model)
    lr = calibration.describe(result.score) if calibration is not None else None
    section = comparison_from_explanation(result, title="Comparison 1", image_a=image_a, image_b=image_b, lr=lr,
                                          model_sha256=getattr(model, "sha256", "") or "")
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
