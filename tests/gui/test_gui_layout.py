"""Issue 24, item 8: the maps are the largest thing in the window; the channel table waits one click away in a tab;
the examiner's window layout (docks, the splitter under the maps) is kept between sessions (pytest-qt, offscreen,
the real main window)."""
from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("torch")

from PySide6.QtCore import QRectF, QSettings, Qt  # noqa: E402

from tests.gui.test_gui_app import _analyse, _new_case, app_window, pair, recorder, tiny_model  # noqa: E402,F401

from xfr_desktop.gui.main_window import MainWindow  # noqa: E402
from xfr_desktop.store import open_store  # noqa: E402

FACE_MIN_PX = 300


def _face_px(window, side: str) -> tuple[float, float]:
    """Width and height on screen of one side's large view and of the aligned face drawn in it."""
    vb = window.views.vb[side, "overlay"]
    h, w = window.result.a.S.shape
    face = vb.mapViewToScene(QRectF(0, 0, w, h)).boundingRect()
    box = vb.sceneBoundingRect()
    return min(box.width(), face.width()), min(box.height(), face.height())


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_the_faces_get_the_room_and_the_channel_table_is_one_click_away(qtbot, app_window, pair, size):
    w = app_window
    w.resize(*size)
    _new_case(w)
    _analyse(qtbot, w, *pair)
    qtbot.waitUntil(lambda: w.record is not None, timeout=5000)
    qtbot.wait(50)
    for side in "ab":
        width, height = _face_px(w, side)
        assert width >= FACE_MIN_PX and height >= FACE_MIN_PX, (side, size, width, height)
    # S⁺ (blue) and S⁻ (orange) together by default: the signed map H
    assert w.display.mode == "H" and w.controls.map_combo.currentData() == "H"
    assert w.views.heat["a"].image is not None and (w.views.heat["a"].image < 0).any()
    # the small panels are the tab shown under the maps; the channel table is the next tab, one click away
    assert w.views.detail.isVisible() and not w.channels.isVisible()
    tabs = w.examination.tabBar()
    index = w.examination.indexOf(w.channels)
    assert tabs.isVisible() and tabs.tabText(index) == "Channels (model)"
    qtbot.mouseClick(tabs, Qt.MouseButton.LeftButton, pos=tabs.tabRect(index).center())
    assert w.channels.isVisible() and w.channels.table.isVisible()


def _settings(path) -> QSettings:
    return QSettings(str(path), QSettings.Format.IniFormat)


def _window(qtbot, store, tiny_model, settings, size=None) -> MainWindow:
    window = MainWindow(store, model_path=str(tiny_model), device="cpu", settings=settings)
    qtbot.addWidget(window)
    if size is not None:
        window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    return window


def test_the_window_layout_is_kept_between_sessions(qtbot, tmp_path, tiny_model, recorder):
    ini = tmp_path / "settings.ini"
    store = open_store(tmp_path / "data")
    try:
        w = _window(qtbot, store, tiny_model, _settings(ini), (1280, 800))
        default = w.splitter.sizes()
        assert default[0] > 2 * default[1]    # the maps get most of the middle by default
        w.resize(1200, 760)
        qtbot.wait(20)
        w.splitter.setSizes([380, sum(w.splitter.sizes()) - 380])
        w.resizeDocks([w.case_dock], [320], Qt.Orientation.Horizontal)
        qtbot.wait(20)
        chosen = w.splitter.sizes()
        assert chosen[0] == 380
        w.close()
        assert ini.is_file()

        again = _window(qtbot, store, tiny_model, _settings(ini))
        qtbot.wait(20)
        # the geometry is restored too, but the offscreen platform's small virtual screen clamps it: same size
        again.resize(1200, 760)
        qtbot.wait(20)
        assert again.splitter.sizes() == chosen
        # the case dock's width is saved too, but whether the offscreen platform gives it back depends on the
        # machine (298 of 320 px on one, the default on another): only the splitter is held to it here
        again.close()

        # no settings store: the default layout, and nothing written
        fresh = _window(qtbot, store, tiny_model, None, (1280, 800))
        qtbot.wait(20)
        assert fresh.splitter.sizes() == default
        fresh.close()
    finally:
        store.close()
