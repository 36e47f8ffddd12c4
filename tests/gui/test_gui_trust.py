"""The desktop app: the Trust box beside the score, its deletion curves and the stable-regions view,
on a real window analysing a real pair (pytest-qt, offscreen); the wording itself is core/trust_display.py."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("torch")

from tests.gui.test_gui_app import _analyse, _new_case, _open_window, pair, recorder, tiny_model  # noqa: E402,F401

from xfr_desktop.core.trust_display import DEFAULT_JITTER  # noqa: E402
from xfr_desktop.gui import dialogs  # noqa: E402


@pytest.fixture
def app_window(qtbot, tmp_path, tiny_model, recorder):
    """A window that analyses with the app's default trust check (jitter draws included)."""
    window, store = _open_window(qtbot, tmp_path / "data", tiny_model, trust_jitter=DEFAULT_JITTER)
    yield window
    window.close()
    store.close()


def _expected(trust: dict) -> tuple[str, str]:
    faith, (a, b) = trust["faithfulness"], trust["stability"]["correlation"]
    figure = "undetermined" if faith["normalised"] is None else f"{faith['normalised']:.2f}"
    return f"{faith['verdict']} a gradient map ({figure})", f"A {a:.2f} · B {b:.2f} (3 jitter draws)"


def test_the_trust_box_shows_the_stored_check_and_not_checked_for_other_maps(qtbot, app_window, pair):
    w = app_window
    _new_case(w)
    outcome = _analyse(qtbot, w, *pair)
    first = outcome.record.id
    qtbot.waitUntil(lambda: w.record is not None and w.record.id == first, timeout=5000)
    stored = w.store.get_result(first)
    trust, box = stored.parameters["trust"], w.controls.trust_box
    assert (box.faithfulness_label.text(), box.stability_label.text()) == _expected(trust)
    assert box.faithfulness_label.toolTip() == trust["faithfulness"]["sentence"]

    opened = []
    dialogs.add_dialog_hook(opened.append)
    try:
        box.curves_btn.click()
    finally:
        dialogs.remove_dialog_hook(opened.append)
    curves = {item.name(): list(item.yData) for item in opened[-1].plot.getPlotItem().listDataItems()}
    assert curves["map on screen, most salient first"] == pytest.approx(trust["faithfulness"]["curves"]["map-most"])
    assert len(curves) == 4

    # stable regions: the stored per-pixel agreement greys (leaves untinted) the pixels under 0.8
    box.stable_check.setChecked(True)
    agreement = stored.faces()["a"]["stable_agreement"]
    assert w.state.display.stable_only and (agreement < 0.8).any() and (agreement >= 0.8).any()
    np.testing.assert_allclose(w.views.heat["a"].image, np.where(agreement >= 0.8, w.result.a.H, 0))

    # other maps (τ moved, then saved as a recombined result): not checked, nothing greyed
    w.controls.threshold_spin.setValue(0.25)
    assert box.faithfulness_label.text() == "not checked for these maps" and not box.stable_check.isEnabled()
    assert not w.state.display.stable_only and not box.curves_btn.isEnabled()
    np.testing.assert_allclose(w.views.heat["a"].image, w.result.a.H)
    w.save_as_new_result()
    assert w.record.id != first and "trust" not in w.record.parameters
    assert box.faithfulness_label.text() == "not checked for these maps"
    # the first result reopened from the store shows its check again
    w._show_result_id(first)
    qtbot.waitUntil(lambda: w.record is not None and w.record.id == first, timeout=10000)
    assert (box.faithfulness_label.text(), box.stability_label.text()) == _expected(trust)
    box.stable_check.setChecked(True)
    np.testing.assert_allclose(w.views.heat["b"].image,
                               np.where(stored.faces()["b"]["stable_agreement"] >= 0.8, w.result.b.H, 0))
