"""The Trust box beside the score: how far to trust the map shown, for this pair.

Bound to the :class:`~.explanation_state.ExplanationState` like the other control-panel boxes: it reads the stored
result's trust record (``parameters["trust"]``, core.trust_display words it), and its "Grey unstable pixels" box
sets the display's ``stable_only``. The record holds for the maps as computed; at another τ or top-k (unsaved, or
saved as a recombined result) the maps differ, so the box says they were not checked.
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (QCheckBox, QDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QVBoxLayout, QWidget)

from ..core.trust_display import CURVES, NOT_CHECKED, faithfulness_short, stability_short, trust_of
from .dialogs import present
from .wrapped_label import WrappedLabel

CURVE_PENS = {"map-most": ("#ffb74d", Qt.PenStyle.SolidLine), "map-least": ("#ffb74d", Qt.PenStyle.DashLine),
              "gradient-most": ("#4fc3f7", Qt.PenStyle.SolidLine), "gradient-least": ("#4fc3f7", Qt.PenStyle.DashLine)}


class TrustBox(QGroupBox):
    def __init__(self, state, parent: QWidget | None = None):
        super().__init__("Trust in this map (this pair)", parent)
        self.state = state
        self.faithfulness_label = WrappedLabel("—")
        self.faithfulness_label.setObjectName("trustFaithfulness")
        self.stability_label = WrappedLabel("—")
        self.stability_label.setObjectName("trustStability")
        self.stability_label.setToolTip("Mean correlation of the map recomputed under small alignment jitter with "
                                        "the map shown, per face (1 = the same map)")
        self.curves_btn = QPushButton("Curves…")
        self.curves_btn.setToolTip("The deletion curves behind the faithfulness figure")
        self.stable_check = QCheckBox("Grey unstable pixels")
        self.stable_check.setToolTip("Show the map only where its sign held in at least 80 % of the jitter draws")
        form = QFormLayout(self)
        form.setVerticalSpacing(3)
        buttons = QHBoxLayout()
        buttons.addWidget(self.curves_btn)
        buttons.addWidget(self.stable_check, 1)
        form.addRow("Faithfulness:", self.faithfulness_label)
        form.addRow("Stability r:", self.stability_label)
        form.addRow(buttons)
        self.curves_btn.clicked.connect(self.show_curves)
        self.stable_check.toggled.connect(lambda on: state.set_display(stable_only=on))
        state.changed.connect(self._state_changed)
        self._state_changed(frozenset({"record", "display"}))

    def trust(self) -> dict | None:
        """The record for the maps shown; None when they were not checked (or differ from those checked)."""
        s = self.state
        return None if s.record is None or s.dirty else trust_of(s.record.parameters)

    @Slot(frozenset)
    def _state_changed(self, changes: frozenset) -> None:
        if changes & {"record", "result", "threshold", "top_k"}:
            self._show()
        if "display" in changes and self.stable_check.isChecked() != self.state.display.stable_only:
            self.stable_check.setChecked(self.state.display.stable_only)

    def _show(self) -> None:
        trust, shown = self.trust(), self.state.record is not None
        stab = stability_short(trust) if trust else None
        self.faithfulness_label.setText(faithfulness_short(trust) if trust else NOT_CHECKED if shown else "—")
        self.faithfulness_label.setToolTip(trust["faithfulness"]["sentence"] if trust else
                                           "The check runs with each analysis, for the maps as computed; maps at "
                                           "another τ or top-k, and older results, are not checked.")
        self.stability_label.setText(stab or ("not checked" if trust else "—"))
        self.curves_btn.setEnabled(trust is not None)
        self.stable_check.setEnabled(stab is not None)
        if stab is None and self.state.display.stable_only:   # no agreement for these maps: nothing to grey
            self.state.set_display(stable_only=False)

    @Slot()
    def show_curves(self) -> None:
        trust = self.trust()
        if trust is not None:
            present(TrustCurvesDialog(trust, self.state.result.threshold, self))


class TrustCurvesDialog(QDialog):
    """The deletion curves of the faithfulness check: the score as the cells a map ranks first (solid) or last
    (dashed) are blurred; a faithful map's solid curve leaves its dashed one early."""

    def __init__(self, trust: dict, threshold: float, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Faithfulness check: deletion curves")
        faith = trust["faithfulness"]
        self.plot = pg.PlotWidget()
        self.plot.addLegend(offset=(10, -10), brush=pg.mkBrush(30, 31, 34, 210))   # bottom left, over the data
        self.plot.setLabel("bottom", "share of the face's cells blurred (%)")
        self.plot.setLabel("left", "cosine score")
        self.plot.getAxis("left").enableAutoSIPrefix(False)   # scores read as scores, not in thousandths
        for key, name in CURVES.items():
            colour, style = CURVE_PENS[key]
            self.plot.plot(faith["steps"], faith["curves"][key], name=name, symbol="o", symbolSize=5,
                           pen=pg.mkPen(colour, width=2, style=style), symbolBrush=colour)
        tau = pg.InfiniteLine(threshold, angle=0, pen=pg.mkPen("#9e9e9e", style=Qt.PenStyle.DotLine))
        self.plot.addItem(tau, ignoreBounds=True)   # τ may lie far from the curves: it must not squash them
        note = QLabel(f"{faith['sentence']} Dotted line, when within the range shown: τ = {threshold:.3f}.")
        note.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addWidget(self.plot, 1)
        lay.addWidget(note)
        self.resize(620, 460)
