"""The right-hand panel: score, parameters (τ, top-k), display and the examiner's conclusion.

The score, parameter and display boxes are bound to an :class:`~.explanation_state.ExplanationState`: a control
sets the state, the state's ``changed`` updates the controls (a control already showing the state's value is left
alone, which ends the round trip). The conclusion box talks to the store for the case or comparison it is given.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QFrame, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QPlainTextEdit, QPushButton, QScrollArea, QSlider, QSpinBox, QStyle,
                               QVBoxLayout, QWidget)

from ..core.evaluative import case_propositions, lr_statement, model_decision
from ..core.errors import XfrError
from ..core.map_style import map_style
from .dialogs import show_error_for
from .explanation_state import ExplanationState
from .trust_box import TrustBox
from .views import MAP_MODES
from .wrapped_label import WrappedLabel

THRESHOLD_STEPS = 2000  # slider ticks over the slider's current τ range


def _form_box(title: str, rows: list) -> QGroupBox:
    """A titled form; each row is a widget, a layout, or (label, widget or layout)."""
    box = QGroupBox(title)
    form = QFormLayout(box)
    form.setVerticalSpacing(3)
    for row in rows:
        form.addRow(*row) if isinstance(row, tuple) else form.addRow(row)
    return box


def _hbox(*items) -> QHBoxLayout:
    lay = QHBoxLayout()
    for item, stretch in items:
        lay.addWidget(item, stretch)
    return lay


def _label(text: str = "—", name: str | None = None, wrap: bool = False) -> QLabel:
    label = WrappedLabel(text) if wrap else QLabel(text)
    if name:
        label.setObjectName(name)
    return label


def face_numbers(parameters: dict) -> str:
    """"A: face 1 · B: face 2": people count faces from 1 (the stored indices count from 0)."""
    if parameters.get("prealigned"):
        return "pre-aligned crops"
    return " · ".join(f"{side.upper()}: face {int(parameters[key]) + 1}" for side, key in
                      (("a", "face_index_a"), ("b", "face_index_b")) if parameters.get(key) is not None) or "—"


def _sentence(text: str) -> str:
    """Capitalised, except a leading symbol: "τ = 0.98 …" must not become "Τ" (capital tau)."""
    return text[:1].upper() + text[1:] if text[:1].isascii() else text


def restyle(widget: QWidget) -> None:
    """Re-apply the style sheet after a dynamic property (the verdict colour) changed."""
    widget.style().unpolish(widget)
    widget.style().polish(widget)


class ControlPanel(QScrollArea):
    """Scrolls on small screens instead of squeezing the controls."""

    save_requested = Signal()
    reset_requested = Signal()
    message = Signal(str, int)      # status bar text, milliseconds

    def __init__(self, state: ExplanationState, store, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.store = store
        self.case_id: int | None = None
        self.comparison_id: int | None = None
        panel = QWidget()
        lay = QVBoxLayout(panel)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.setSpacing(6)
        self.trust_box = TrustBox(state)   # how far to trust the map shown
        for box in (self._score_box(), self.trust_box, self._parameters_box(), self._display_box(),
                    self._conclusion_box()):
            lay.addWidget(box)
        lay.addStretch(1)
        self.setWidget(panel)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._connect()
        state.changed.connect(self._state_changed)
        self._state_changed(frozenset({"record", "result", "display"}))

    def preferred_width(self) -> int:
        """As wide as the controls need, plus room for the vertical scroll bar."""
        return self.widget().minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width() + 12

    # --- construction -----------------------------------------------------------------------------------
    def _score_box(self) -> QGroupBox:
        self.score_label, self.threshold_value_label = _label(), _label()
        self.decision_label = _label(name="decision")
        self.decision_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.lr_label = _label(wrap=True)  # "≥ 200 (limit of the calibration)" must not widen the panel
        self.lr_label.setToolTip("Likelihood ratio from the model's calibration (when the model has one)")
        self.lr_verbal_label = _label("", name="verbal", wrap=True)
        self.lr_verbal_label.setVisible(False)
        self.model_label, self.timing_label, self.faces_label = _label(wrap=True), _label(wrap=True), _label()
        self.faces_label.setToolTip("Which detected face of each photo was compared (1 = the largest)")
        self.decision_flags = _label("", name="hint", wrap=True)
        self.decision_flags.setVisible(False)
        # the likelihood ratio is the evaluative result; the thresholded decision is the model's, at a τ
        return _form_box("Score", [("Likelihood ratio:", self.lr_label), self.lr_verbal_label,
                                   ("Cosine score:", self.score_label), ("Threshold τ:", self.threshold_value_label),
                                   ("Model decision:", self.decision_label), self.decision_flags,
                                   ("Faces:", self.faces_label), ("Model:", self.model_label),
                                   ("Computed:", self.timing_label)])

    def _parameters_box(self) -> QGroupBox:
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setObjectName("thresholdSlider")
        self.threshold_slider.setRange(0, THRESHOLD_STEPS)
        self.threshold_slider.setSingleStep(10)
        self.threshold_slider.setPageStep(100)
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setObjectName("thresholdSpin")
        self.threshold_spin.setRange(-1.0, 1.0)
        self.threshold_spin.setDecimals(5)
        self.threshold_spin.setSingleStep(0.001)
        self.threshold_spin.setKeyboardTracking(False)
        self.topk_spin = QSpinBox()
        self.topk_spin.setObjectName("topkSpin")
        self.topk_spin.setRange(0, 4096)
        self.topk_spin.setSpecialValueText("all channels")
        self.topk_spin.setToolTip("Use only the k channels with the largest |weight| (0 = all)")
        self.reset_btn = QPushButton("Reset")
        self.reset_btn.setToolTip("Back to the model's threshold and all channels")
        self.save_btn = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_DialogSaveButton),
                                    "Save as new result")
        self.save_btn.setToolTip("Store these parameters as a new result (the shown one is kept unchanged)")
        self.params_note = _label("", name="hint", wrap=True)
        return _form_box("Parameters", [("Threshold τ:", _hbox((self.threshold_slider, 1), (self.threshold_spin, 0))),
                                        ("Top-k:", self.topk_spin), _hbox((self.reset_btn, 0), (self.save_btn, 1)),
                                        self.params_note])

    def _display_box(self) -> QGroupBox:
        self.map_combo = QComboBox()
        for key, label in MAP_MODES.items():
            self.map_combo.addItem(label, key)
        self.map_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.map_combo.setMinimumContentsLength(14)  # long entries must not widen the dock
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.map_meaning = _label("", name="verbal", wrap=True)
        return _form_box("Display", [("Map:", self.map_combo), self.map_meaning, ("Opacity:", self.opacity_slider)])

    def _conclusion_box(self) -> QGroupBox:
        # the examiner's conclusion goes into the report; every save is a new, audited row
        self.conclusion_scope = QComboBox()
        self.conclusion_scope.addItem("Whole case", "case")
        self.conclusion_scope.addItem("This comparison", "comparison")
        self.conclusion_text = QPlainTextEdit()
        self.conclusion_text.setObjectName("conclusionText")
        self.conclusion_text.setPlaceholderText("Your conclusion, in your own words…")
        self.conclusion_text.setFixedHeight(50)
        self.conclusion_scale = QLineEdit()
        self.conclusion_scale.setPlaceholderText("scale used, e.g. ENFSI verbal scale")
        self.conclusion_save = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_DialogApplyButton),
                                           "Save conclusion")
        self.conclusion_status = _label("", name="hint", wrap=True)
        return _form_box("Examiner's conclusion", [("For:", self.conclusion_scope), self.conclusion_text,
                                                   ("Scale:", self.conclusion_scale), self.conclusion_save,
                                                   self.conclusion_status])

    def _connect(self) -> None:
        s = self.state
        self.threshold_slider.valueChanged.connect(self._slider_moved)
        self.threshold_spin.valueChanged.connect(s.set_threshold)
        self.topk_spin.valueChanged.connect(s.set_top_k)
        self.map_combo.currentIndexChanged.connect(lambda: s.set_display(mode=self.map_combo.currentData()))
        self.opacity_slider.valueChanged.connect(lambda v: s.set_display(opacity=v / 100.0))
        self.reset_btn.clicked.connect(self.reset_requested)
        self.save_btn.clicked.connect(self.save_requested)
        self.conclusion_scope.currentIndexChanged.connect(self.load_conclusion)
        self.conclusion_save.clicked.connect(self.save_conclusion)

    # --- τ slider <-> state -----------------------------------------------------------------------------
    def _slider_to_threshold(self, value: int) -> float:
        lo, hi = self.state.threshold_range
        return lo + (hi - lo) * value / THRESHOLD_STEPS

    def _threshold_to_slider(self, threshold: float) -> int:
        lo, hi = self.state.threshold_range
        return int(round((threshold - lo) / (hi - lo) * THRESHOLD_STEPS))

    @Slot(int)
    def _slider_moved(self, value: int) -> None:
        if value != self._threshold_to_slider(self.state.threshold):  # else the state put it there
            self.state.set_threshold(self._slider_to_threshold(value))

    # --- state -> controls ------------------------------------------------------------------------------
    @Slot(frozenset)
    def _state_changed(self, changes: frozenset) -> None:
        s = self.state
        if changes & {"threshold", "range", "record"}:
            self._show_threshold()
        if changes & {"top_k", "record"}:
            self.topk_spin.setValue(int(s.top_k or 0))   # before the maximum: a stale larger k must not clamp
            if s.result is not None:
                self.topk_spin.setMaximum(len(s.result.products))
        if "display" in changes:
            self._show_display()
        if "result" in changes:
            self._show_score()
        if "record" in changes:
            self._show_record_info() if s.record is not None else self._clear_record_info()
        self._enable()

    def _show_threshold(self) -> None:
        s = self.state
        lo, hi = s.threshold_range
        self.threshold_spin.setSingleStep(max(10 ** np.floor(np.log10((hi - lo) / 100)), 1e-5))
        self.threshold_spin.setValue(s.threshold)
        self.threshold_slider.setValue(self._threshold_to_slider(s.threshold))

    def _show_display(self) -> None:
        d = self.state.display
        self.map_combo.setCurrentIndex(self.map_combo.findData(d.mode))
        self.map_meaning.setText(f"{map_style(d.mode).meaning[:1].upper()}{map_style(d.mode).meaning[1:]}.")
        self.opacity_slider.setValue(int(round(d.opacity * 100)))

    def _show_score(self) -> None:
        r = self.state.result
        if r is None:
            return
        self.score_label.setText(f"<b>{r.score:+.5f}</b>")
        self.threshold_value_label.setText(f"{r.threshold:.5f}")
        self.decision_label.setText("MATCH" if r.decision else "NON-MATCH")
        self.decision_label.setToolTip(f"score {r.score:+.5f} {'≥' if r.decision else '<'} τ {r.threshold:.5f}")
        self.decision_label.setProperty("verdict", "match" if r.decision else "nonmatch")
        restyle(self.decision_label)
        p = (self.state.record.parameters or {}) if self.state.record is not None else {}
        calibrated = p.get("model_threshold")
        decision = model_decision(r.score, r.threshold, None if calibrated is None else float(calibrated),
                                  (p.get("likelihood_ratio") or {}).get("value"), decision=r.decision)
        self.decision_flags.setText("<br>".join(f"⚠ {_sentence(f)}." for f in decision.flags))
        self.decision_flags.setVisible(bool(decision.flags))

    def _enable(self) -> None:
        have = self.state.result is not None
        for w in (self.threshold_slider, self.threshold_spin, self.topk_spin, self.reset_btn, self.map_combo,
                  self.opacity_slider):
            w.setEnabled(have)
        dirty = self.state.dirty
        self.save_btn.setEnabled(dirty)
        self.params_note.setText("Changed — not saved yet. Results are never overwritten: saving adds a new one."
                                 if dirty else "")
        self.params_note.setVisible(dirty)

    def _show_record_info(self) -> None:
        """Likelihood ratio, model and timing of the stored result shown."""
        record, result = self.state.record, self.state.base_result
        p = record.parameters or {}
        case = self.store.get_case(self.case_id) if self.case_id is not None else None
        statement = lr_statement(p.get("likelihood_ratio") or None,
                                 propositions=case_propositions(case) if case is not None else None)
        self.lr_label.setText(f"<b>{statement.text}</b>" if statement else "— (the model has no calibration)")
        verbal = statement.verbal if statement else None
        self.lr_verbal_label.setText(f"{verbal[:1].upper()}{verbal[1:]}." if verbal else "")
        self.lr_verbal_label.setToolTip(f"LR {self.lr_label.text()}: {verbal}" if verbal else "")
        self.lr_verbal_label.setVisible(bool(verbal))
        self.faces_label.setText(face_numbers(p))
        sha = (record.model_sha256 or "")[:12]
        self.model_label.setText(f"{record.model_name or 'unknown model'}"
                                 + (f"<br><small>sha256 {sha}…</small>" if sha else ""))
        total = (record.timings or {}).get("total")
        where = p.get("device", result.device)
        self.timing_label.setText(f"{record.created_at[:19].replace('T', ' ')} UTC"
                                  + (f"<br><small>{total / 1000:.1f} s on {where}</small>" if total else ""))

    def _clear_record_info(self) -> None:
        self.lr_verbal_label.setVisible(False)
        self.decision_flags.setVisible(False)
        for label in (self.score_label, self.threshold_value_label, self.lr_label, self.faces_label, self.model_label,
                      self.timing_label, self.decision_label):
            label.setText("—")
        self.decision_label.setProperty("verdict", "")
        restyle(self.decision_label)

    # --- conclusion -------------------------------------------------------------------------------------
    def set_target(self, case_id: int | None, comparison_id: int | None) -> None:
        self.case_id, self.comparison_id = case_id, comparison_id
        self.load_conclusion()

    def _conclusion_target(self) -> int | None:
        return self.comparison_id if self.conclusion_scope.currentData() == "comparison" else None

    @Slot()
    def load_conclusion(self, *_) -> None:
        scoped = self.conclusion_scope.currentData() == "comparison"
        enabled = self.case_id is not None and (not scoped or self.comparison_id is not None)
        for wdg in (self.conclusion_text, self.conclusion_scale, self.conclusion_save):
            wdg.setEnabled(enabled)
        record = None
        if enabled:
            target = self._conclusion_target()
            try:  # the newest conclusion of exactly this scope (the case's, or this comparison's)
                record = next((c for c in reversed(self.store.list_conclusions(self.case_id))
                               if c.comparison_id == target), None)
            except XfrError:
                record = None
        self.conclusion_text.setPlainText(record.text if record else "")
        self.conclusion_scale.setText((record.scale or "") if record else "")
        self.conclusion_status.setText(
            f"Saved {record.created_at[:16].replace('T', ' ')} UTC by {record.author}" if record else
            ("Not concluded yet." if enabled else ""))

    @Slot()
    def save_conclusion(self) -> None:
        if self.case_id is None:
            return
        text = self.conclusion_text.toPlainText().strip()
        if not text:
            self.conclusion_status.setText("Write the conclusion first.")
            return
        try:
            # author: store.actor_name (the preference, else the case's examiner), as for every audited write
            self.store.set_conclusion(self.case_id, text, scale=self.conclusion_scale.text().strip() or None,
                                      comparison_id=self._conclusion_target())
        except XfrError as exc:
            show_error_for(self, "StoreError", str(exc))
            return
        self.load_conclusion()
        self.message.emit("Conclusion saved (earlier versions are kept in the audit trail).", 6000)
