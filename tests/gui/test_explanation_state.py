"""ExplanationState and the controls bound to it: a control sets the state, the state updates every control, and
one change recombines once (no widget -> state -> widget loops, no blockSignals)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from xfr_desktop.core.explain import explain_pair  # noqa: E402
from xfr_desktop.gui.control_panel import THRESHOLD_STEPS, ControlPanel  # noqa: E402
from xfr_desktop.gui.explanation_state import ExplanationState  # noqa: E402


@pytest.fixture
def explained(tiny_model):
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(2))
    result = explain_pair(tiny_model, a, b, threshold=0.3)
    record = SimpleNamespace(id=7, threshold=result.threshold, parameters={"top_k": None, "model_threshold": 0.3},
                             model_name="tiny", model_sha256="ab" * 32, timings={}, created_at="2026-01-01T00:00:00")
    return record, result


@pytest.fixture
def bound(qtbot, explained):
    state = ExplanationState()
    panel = ControlPanel(state, store=None)
    qtbot.addWidget(panel)
    changes = []
    state.changed.connect(changes.append)
    state.show(*explained)
    changes.clear()
    return state, panel, changes


def recombinations(changes) -> int:
    return sum("result" in c for c in changes)


def test_showing_a_result_sets_every_control(bound, explained):
    state, panel, _ = bound
    record, result = explained
    assert state.result is result and state.base_result is result and not state.dirty
    assert panel.threshold_spin.value() == pytest.approx(0.3)
    lo, hi = state.threshold_range
    assert lo < min(result.score, 0.3) and hi > max(result.score, 0.3)
    assert panel.threshold_slider.value() == round((0.3 - lo) / (hi - lo) * THRESHOLD_STEPS)
    assert panel.topk_spin.value() == 0 and panel.topk_spin.maximum() == len(result.products)
    assert panel.decision_label.text() in ("MATCH", "NON-MATCH") and not panel.save_btn.isEnabled()


def test_spin_box_sets_the_state_and_the_state_moves_the_slider(bound):
    state, panel, changes = bound
    panel.threshold_spin.setValue(0.25)
    assert state.threshold == pytest.approx(0.25) and state.result.threshold == pytest.approx(0.25)
    assert recombinations(changes) == 1                  # the slider following the state recombines nothing
    lo, hi = state.threshold_range
    assert panel.threshold_slider.value() == round((0.25 - lo) / (hi - lo) * THRESHOLD_STEPS)
    assert state.dirty and panel.save_btn.isEnabled() and panel.params_note.isVisibleTo(panel)
    assert panel.threshold_value_label.text() == f"{state.result.threshold:.5f}"


def test_slider_sets_the_state_rounded_like_the_spin_box(bound):
    state, panel, changes = bound
    panel.threshold_slider.setValue(0)
    lo = state.threshold_range[0]
    assert state.threshold == pytest.approx(round(lo, 5)) and panel.threshold_spin.value() == state.threshold
    assert recombinations(changes) == 1 and panel.threshold_slider.value() == 0


def test_a_value_outside_the_slider_widens_it(bound):
    state, panel, changes = bound
    panel.threshold_spin.setValue(-0.9)
    assert state.threshold_range[0] <= -0.9 and "range" in changes[-1]
    assert panel.threshold_slider.value() == round((-0.9 - state.threshold_range[0])
                                                   / np.ptp(state.threshold_range) * THRESHOLD_STEPS)


def test_state_changes_reach_the_controls(bound):
    state, panel, changes = bound
    state.set_top_k(3)
    assert panel.topk_spin.value() == 3 and state.result.top_k == 3 and int(state.result.selected.sum()) <= 3
    assert recombinations(changes) == 1
    state.set_top_k(3)                                   # the same value: nothing happens
    state.set_threshold(state.threshold)
    assert recombinations(changes) == 1
    state.select_channel(2)
    assert panel.map_combo.currentData() == "channel" and state.display.channel == 2
    panel.map_combo.setCurrentIndex(panel.map_combo.findData("S_neg"))
    assert state.display.mode == "S_neg" and state.display.channel == 2
    panel.opacity_slider.setValue(30)
    assert state.display.opacity == pytest.approx(0.3)
    state.set_parameters(0.3, None)                      # Reset: back to the stored parameters
    assert panel.topk_spin.value() == 0 and not state.dirty and not panel.save_btn.isEnabled()


def test_clearing_empties_the_score_and_disables_the_controls(bound):
    state, panel, _ = bound
    state.clear()
    assert state.result is None and panel.score_label.text() == "—" and panel.decision_label.text() == "—"
    assert not panel.threshold_slider.isEnabled() and not panel.topk_spin.isEnabled()
