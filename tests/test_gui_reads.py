"""Issue 24 in the desktop app: one comparison number, the photo's provenance, the τ notes whole, Ctrl+Q during an
analysis (pytest-qt, offscreen); the Qt-free parts are in test_examiner_reads.py."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("torch")

from test_examiner_reads import interleaved_case  # noqa: E402
from test_gui_app import _open_window, app_window, pair, recorder, tiny_model  # noqa: E402,F401


def test_the_app_numbers_comparisons_as_the_report_does(qtbot, app_window, tmp_path, tiny_model):
    from xfr_desktop.core.model import load_model
    from xfr_desktop.gui.main_window import comparison_hint

    w = app_window
    case, comps = interleaved_case(w.store, tmp_path, load_model(tiny_model, device="cpu"))
    w.select_case(case.id)
    items = [w.cases.comparison_list.item(i).text() for i in range(w.cases.comparison_list.count())]
    assert [t.split()[0] for t in items] == ["1.", "2.", "3."], items
    assert comparison_hint(w.store.get_comparison(comps[1].id)).startswith("<h3>Comparison 2: removed")


def test_the_photos_tab_shows_the_camera_the_report_shows(qtbot, app_window, tmp_path, tiny_model):
    from PIL import Image

    from test_examiner_reads import nikon_photo
    from xfr_desktop.core.image_quality import assess_photo, quality_rows
    from xfr_desktop.core.model import load_model

    w = app_window
    case, comps = interleaved_case(w.store, tmp_path, load_model(tiny_model, device="cpu"))
    photo = nikon_photo(tmp_path / "nikon.jpg")
    data = assess_photo(photo, np.asarray(Image.open(photo).convert("RGB")))
    w.store.record_image_quality(comps[2].id, "b", data)
    w.select_case(case.id)
    panel = w.examination
    panel.set_target(case.id, comps[2].id)
    shown = [(panel.quality.verticalHeaderItem(r).text(), panel.quality.item(r, 1).text())
             for r in range(panel.quality.rowCount())]
    assert shown == quality_rows(data)
    assert ("Camera (EXIF)", "NIKON CORPORATION NIKON D3S") in shown
