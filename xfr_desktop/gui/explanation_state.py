"""What the examiner is looking at: one QObject that the controls set and the views follow (napari's layer
controls: a widget sets an attribute of the model, the model's ``changed`` event updates every widget; no widget
talks to another and none needs ``blockSignals``).

It holds the stored result (``record``), the explanation as stored (``base_result``) and as shown (``result``,
recombined from the cached residuals at ``threshold`` and ``top_k``), each side's photo panel (``sources``), the
slider's τ span, the display settings including the selected channel, and whether the shown parameters differ
from the stored ones (``dirty``).
Setting a value equal to the current one does nothing, which is what ends the widget → state → widget round trip.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
from PySide6.QtCore import QObject, Signal

THRESHOLD_DECIMALS = 5   # τ as the examiner reads and types it (the spin box's precision)
DIRTY_TOLERANCE = 5e-7   # half the last decimal: a τ typed back to the stored value is not a change


@dataclass(frozen=True)
class DisplaySettings:
    """How the maps are drawn; replaced whole on every change, so the state can compare old and new."""

    mode: str = "H"   # S⁺ (blue) and S⁻ (orange) on one face: H's colours (core/map_style.py)
    opacity: float = 0.6
    channel: int | None = None
    stable_only: bool = False   # grey the pixels whose H sign changes under alignment jitter


class ExplanationState(QObject):
    # names of what changed: "record", "result", "threshold", "top_k", "range", "display"
    changed = Signal(frozenset)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.record = None
        self.base_result = None
        self.result = None
        self.sources: dict = {}              # side -> side_source.SideSource: the photo, its face and transform
        self.threshold = 0.0
        self.top_k: int | None = None
        self.threshold_range = (-1.0, 1.0)   # τ at the slider's ends; narrowed around each result's scores
        self.display = DisplaySettings()
        self.last_update_ms = 0.0            # the last recombination, views included

    # --- what is shown ----------------------------------------------------------------------------------
    def show(self, record, result, sources: dict | None = None) -> None:
        """A stored result (``result``: its explanation; ``sources``: each side's photo panel) becomes the one
        shown, at its own parameters."""
        self.record, self.base_result, self.result = record, result, result
        self.sources = dict(sources or {})
        model_threshold = (record.parameters or {}).get("model_threshold")
        self._spread_range(result.score, result.threshold, *([model_threshold] if model_threshold is not None else []))
        self.threshold, self.top_k = _round_threshold(result.threshold), result.top_k
        self.changed.emit(frozenset({"record", "result", "threshold", "top_k", "range"}))

    def clear(self) -> None:
        self.record = self.base_result = self.result = None
        self.sources = {}
        self.changed.emit(frozenset({"record", "result"}))

    @property
    def dirty(self) -> bool:
        """The shown τ or top-k differ from the stored result's (saving would add a new result)."""
        if self.record is None or self.result is None:
            return False
        stored_k = (self.record.parameters or {}).get("top_k")
        return (abs(self.threshold - float(self.record.threshold)) > DIRTY_TOLERANCE
                or (self.top_k or None) != (stored_k or None))

    # --- parameters -------------------------------------------------------------------------------------
    def set_threshold(self, value: float) -> None:
        value = _round_threshold(value)
        if value == self.threshold:
            return
        changes = {"threshold"}
        lo, hi = self.threshold_range
        if not lo <= value <= hi:  # typed outside the slider's span: widen it
            self._spread_range(lo, hi, value)
            changes.add("range")
        self.threshold = value
        self._recombine(changes)

    def set_top_k(self, k: int | None) -> None:
        k = int(k) if k else None
        if k != self.top_k:
            self.top_k = k
            self._recombine({"top_k"})

    def set_parameters(self, threshold: float, top_k: int | None) -> None:
        """Both at once, recombining once (the Reset button)."""
        self.threshold, self.top_k = _round_threshold(threshold), (int(top_k) if top_k else None)
        self._recombine({"threshold", "top_k"})

    def _recombine(self, changes: set) -> None:
        if self.base_result is None:
            self.changed.emit(frozenset(changes))
            return
        t0 = time.perf_counter()
        self.result = self.base_result.recombine(threshold=self.threshold, channels=self.base_result.channels,
                                                 top_k=self.top_k)
        self.changed.emit(frozenset(changes | {"result"}))
        self.last_update_ms = (time.perf_counter() - t0) * 1e3

    def _spread_range(self, *anchors: float) -> None:
        """Spread the slider over the τ values that matter: the scores and thresholds given, with a margin.

        Cosine scores of some models crowd near 1 (thresholds like 0.9989), where a fixed −1…1 slider would be
        useless; the spin box still takes any τ in −1…1 and widens the slider when needed.
        """
        lo, hi = min(anchors), max(anchors)
        margin = max(hi - lo, 0.001, 0.02 * max(abs(lo), abs(hi)))
        self.threshold_range = (max(-1.0, lo - margin), min(1.0, hi + margin))

    # --- display ----------------------------------------------------------------------------------------
    def set_display(self, **settings) -> None:
        """``mode``, ``opacity`` and/or ``channel`` (None: back to the chosen map)."""
        display = replace(self.display, **settings)
        if display != self.display:
            self.display = display
            self.changed.emit(frozenset({"display"}))

    def select_channel(self, channel: int | None) -> None:
        """Show one channel's residual region on both faces."""
        self.set_display(channel=channel, **({"mode": "channel"} if channel is not None else {}))

    def channel_weight(self, channel: int) -> float:
        return float(self.result.products[channel] - self.result.T)


def _round_threshold(value: float) -> float:
    return float(np.clip(round(float(value), THRESHOLD_DECIMALS), -1.0, 1.0))
