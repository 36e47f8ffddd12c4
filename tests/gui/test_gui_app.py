"""The desktop application (pytest-qt, offscreen): import, analysis, views, controls, persistence, errors."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402
from PySide6.QtCore import QRectF, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from xfr_desktop.core.decoder import paper_decoder_spec  # noqa: E402
from xfr_desktop.core.model import JointModel, default_spec, save_model  # noqa: E402
from xfr_desktop.gui import dialogs  # noqa: E402
from xfr_desktop.gui.dialogs import FacePickerDialog, NewCaseDialog  # noqa: E402
from xfr_desktop.gui.main_window import MainWindow  # noqa: E402
from xfr_desktop.store import open_store  # noqa: E402

from tests.conftest import REPO_ROOT as REPO
SAMPLES = REPO / "resources" / "samples" / "images"
ANALYSIS_TIMEOUT_MS = 60_000


def _model_file(path: Path, channels: int, decoder_width: int, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    spec = default_spec(name=f"test-random-{channels}", depth=18, widths=[8, 16, 16, channels], channels=channels,
                        decoder=paper_decoder_spec((channels, decoder_width, 16, 8, 3)), threshold=0.3)
    save_model(JointModel(spec).eval(), path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """16 channels: an analysis takes well under a second."""
    return _model_file(tmp_path_factory.mktemp("models") / "tiny.pt", 16, 16)


@pytest.fixture(scope="session")
def slow_model(tmp_path_factory) -> Path:
    """320 channels and a wider decoder: with the literal engine an analysis takes well over a second here, long
    enough to cancel it or close the window while it runs."""
    return _model_file(tmp_path_factory.mktemp("models") / "slow.pt", 320, 64)


def _face_like(seed: int, size: int = 112) -> np.ndarray:
    """A smooth synthetic 'pre-aligned face' (the model is random: only the plumbing matters here)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.zeros((size, size, 3), np.float64)
    for c in range(3):
        for _ in range(4):
            fx, fy, ph = rng.uniform(1, 5), rng.uniform(1, 5), rng.uniform(0, 6.3)
            img[:, :, c] += np.sin(2 * np.pi * (fx * xx + fy * yy) + ph)
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).astype(np.uint8)


@pytest.fixture
def pair(tmp_path) -> tuple[Path, Path]:
    paths = []
    for i in range(2):
        p = tmp_path / f"face_{i}.png"
        Image.fromarray(_face_like(i)).save(p)
        paths.append(p)
    return paths[0], paths[1]


class DialogRecorder:
    """A dialog hook: records every dialog the app opens and answers it like an examiner would."""

    def __init__(self, face_index: int = 1):
        self.seen: list = []
        self.face_index = face_index

    def __call__(self, dialog) -> None:
        if isinstance(dialog, QMessageBox):
            self.seen.append(("message", dialog.text(), dialog.informativeText()))
            dialog.accept()
        elif isinstance(dialog, FacePickerDialog):
            self.seen.append(("faces", dialog.side, dialog.choices.count()))
            # click inside the wanted face's box on the picture, as an examiner would
            from PySide6.QtCore import QPoint
            from pytestqt.qtbot import QtBot

            x, y, w, h = dialog.boxes[self.face_index]
            QtBot.mouseClick(dialog.picture, Qt.MouseButton.LeftButton,
                             pos=QPoint(int((x + w / 2) * dialog._scale), int((y + h / 2) * dialog._scale)))
            assert dialog.face_index() == self.face_index
            dialog.accept()
        elif isinstance(dialog, NewCaseDialog):
            self.seen.append(("new_case", dialog.number.text()))
            dialog.number.setText("T-AUTO")
            dialog.accept()
        else:  # other dialogs (export, training wizard) are recorded and closed unanswered
            self.seen.append((type(dialog).__name__,))
            dialog.reject()

    def messages(self) -> list[str]:
        return [f"{s[1]}\n{s[2]}" for s in self.seen if s[0] == "message"]


@pytest.fixture
def recorder():
    rec = DialogRecorder()
    dialogs.add_dialog_hook(rec)
    yield rec
    dialogs.remove_dialog_hook(rec)


def _open_window(qtbot, data_dir: Path, model: Path, engine: str = "fast",
                 trust_jitter: int | None = 0) -> tuple[MainWindow, object]:
    """The window analyses with the faithfulness check but no jitter draws unless asked (test_gui_trust checks
    the default): each draw is a whole explanation, and these tests are about other things."""
    store = open_store(data_dir)
    window = MainWindow(store, model_path=str(model), device="cpu", engine=engine, trust_jitter=trust_jitter)
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    return window, store


@pytest.fixture
def app_window(qtbot, tmp_path, tiny_model, recorder):
    window, store = _open_window(qtbot, tmp_path / "data", tiny_model)
    yield window
    window.close()
    store.close()


def _new_case(window: MainWindow, number: str = "T-0001") -> int:
    case = window.store.create_case(number, title="GUI test", examiner="tester")
    window.select_case(case.id)
    return case.id


def _analyse(qtbot, window: MainWindow, a, b, prealigned: bool = True):
    with qtbot.waitSignal(window.analysis_finished, timeout=ANALYSIS_TIMEOUT_MS) as blocker:
        assert window.import_pair(a, b, prealigned=prealigned) is not None
    return blocker.args[0]


def _drop(widget, paths) -> bool:
    """Deliver a real drag-enter + drop of local files; True when the widget accepted the drag."""
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = widget.rect().center()
    enter = QDragEnterEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                            Qt.KeyboardModifier.NoModifier)
    enter.ignore()  # the widget must accept it itself
    widget.dragEnterEvent(enter)
    if not enter.isAccepted():
        return False
    drop = QDropEvent(QPointF(pos), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                      Qt.KeyboardModifier.NoModifier)
    widget.dropEvent(drop)
    return True


def test_import_run_results_appear(qtbot, app_window, pair, recorder):
    w = app_window
    case_id = _new_case(w)
    outcome = _analyse(qtbot, w, *pair)
    assert outcome.record is not None
    qtbot.waitUntil(lambda: w.record is not None and w.record.id == outcome.record.id, timeout=5000)
    assert w.result is outcome.result   # shown as computed, not reloaded from the store
    assert w.controls.score_label.text().find(f"{outcome.result.score:+.5f}") >= 0
    assert w.controls.decision_label.text() in ("MATCH", "NON-MATCH")
    assert w.channels.model.rowCount() == 16
    heat = w.views.heat["a"].image
    assert heat is not None and heat.shape == (112, 112)
    np.testing.assert_allclose(heat, w.result.a.H)   # the default map: H (S⁺ blue, S⁻ orange)
    comp = w.store.get_comparison(outcome.job.comparison_id)
    assert comp.status == "done" and comp.case_id == case_id
    assert len(w.store.list_results(comp.id)) == 1
    assert "Device: CPU" in w.device_label.text()
    assert not recorder.messages()
    # drag and drop of two files makes another comparison in the same case
    w.act_prealigned.setChecked(True)
    assert _drop(w, [pair[1]])
    assert len(w.store.list_comparisons(case_id)) == 1  # one photo: waits for the second
    with qtbot.waitSignal(w.analysis_finished, timeout=ANALYSIS_TIMEOUT_MS):
        assert _drop(w, [pair[0]])
    assert len(w.store.list_comparisons(case_id)) == 2


def test_threshold_changes_maps_and_saves_new_result(qtbot, app_window, pair):
    w = app_window
    _new_case(w)
    outcome = _analyse(qtbot, w, *pair)
    qtbot.waitUntil(lambda: w.record is not None, timeout=5000)
    before = w.views.heat["a"].image.copy()
    H_before = w.result.a.H.copy()
    assert w.controls.threshold_spin.value() == pytest.approx(0.3)  # the model's threshold
    assert not w.controls.save_btn.isEnabled()
    lo, hi = w.state.threshold_range  # the slider spans the score and the threshold, with a margin
    assert lo < min(w.result.score, 0.3) and hi > max(w.result.score, 0.3)
    w.controls.threshold_slider.setValue(0)  # τ = lo
    assert w.controls.threshold_spin.value() == pytest.approx(lo, abs=1e-5)
    assert w.result.threshold == pytest.approx(lo, abs=1e-5)
    assert not np.allclose(w.result.a.H, H_before)
    assert not np.allclose(w.views.heat["a"].image, before)
    np.testing.assert_allclose(w.views.heat["a"].image, w.result.a.H, rtol=1e-6)
    # the channel table follows once the slider rests
    expected_weight = f"{w.result.products[0] - w.result.T:+.3e}"
    qtbot.waitUntil(lambda: w.channels.model.data(w.channels.model.index(0, 1)) == expected_weight, timeout=3000)
    assert w.controls.threshold_value_label.text() == f"{w.result.threshold:.5f}"
    # the spin box drives the same path
    w.controls.threshold_spin.setValue(0.25)
    assert w.result.threshold == pytest.approx(0.25)
    assert w.controls.threshold_slider.value() == round((0.25 - lo) / (hi - lo) * w.controls.threshold_slider.maximum())
    w.controls.threshold_spin.setValue(-0.9)  # outside the slider's span: the span widens
    assert w.state.threshold_range[0] <= -0.9 and w.result.threshold == pytest.approx(-0.9)
    w.controls.threshold_spin.setValue(0.25)
    assert w.controls.save_btn.isEnabled()
    w.save_as_new_result()
    results = w.store.list_results(outcome.job.comparison_id)
    assert len(results) == 2
    assert results[0].threshold == pytest.approx(0.3)   # never overwritten
    assert results[1].threshold == pytest.approx(0.25)
    assert results[1].parameters["derived_from_result"] == results[0].id
    assert w.record.id == results[1].id and not w.controls.save_btn.isEnabled()
    w.reset_parameters()
    assert w.controls.threshold_spin.value() == pytest.approx(0.3)


def test_channel_selection_and_top_k(qtbot, app_window, pair):
    w = app_window
    _new_case(w)
    _analyse(qtbot, w, *pair)
    qtbot.waitUntil(lambda: w.record is not None, timeout=5000)
    # rows are sorted by contribution: the used channel with the largest weight first, the most dissimilar last
    first = w.channels.proxy.index(0, 0)
    top_channel = int(w.channels.proxy.data(first))
    assert top_channel == int(np.argmax(w.result.a.weights))
    last = w.channels.proxy.index(w.channels.proxy.rowCount() - 1, 0)
    assert w.result.a.weights[int(w.channels.proxy.data(last))] == pytest.approx(float(w.result.a.weights.min()))
    w.channels.table.selectRow(0)
    assert w.display.mode == "channel" and w.display.channel == top_channel
    for side in "ab":
        expected = getattr(w.result, side).residuals.channel(top_channel)
        np.testing.assert_allclose(w.views.heat[side].image, expected)
    assert f"Channel {top_channel}" in w.channels.caption.text()
    region = w.views.channel_region["a"]
    assert region.isVisible()
    rect = region.rect()
    support = np.argwhere(w.views.heat["a"].image >= 0.05 * w.views.heat["a"].image.max())
    assert rect.left() == support[:, 1].min() and rect.top() == support[:, 0].min()
    # top-k restricts H to the k strongest channels, without the model
    w.controls.topk_spin.setValue(3)
    assert int(w.result.selected.sum()) <= 3
    assert w.result.top_k == 3
    used = [w.channels.model.data(w.channels.model.index(i, 5)) for i in range(w.channels.model.rowCount())]
    assert used.count("yes") == int(w.result.selected.sum())
    expected_H = np.tensordot(w.result.a.weights, w.result.a.residuals.dense(), axes=1)
    np.testing.assert_allclose(w.result.a.H, expected_H, atol=1e-6)
    w.controls.map_combo.setCurrentIndex(w.controls.map_combo.findData("S_neg"))
    np.testing.assert_allclose(w.views.heat["b"].image, w.result.b.S_neg)
    assert not w.views.channel_region["b"].isVisible()


def test_linked_views_and_crosshair(qtbot, app_window, pair):
    w = app_window
    _new_case(w)
    _analyse(qtbot, w, *pair)
    qtbot.waitUntil(lambda: w.record is not None, timeout=5000)
    v = w.views
    v.vb["b", "overlay"].setRange(QRectF(20, 30, 40, 40), padding=0)
    qtbot.wait(20)
    for key in v.vb:
        if key[1] != "overlay":   # the small panels (photo, aligned, reconstruction) keep the whole face
            assert key[1] == "photo" or v.vb[key].viewRange()[0][1] == pytest.approx(112, abs=2), key
            continue
        # linked: both large views show the same region (aspect locking may widen one axis a little)
        (x0, x1), (y0, y1) = v.vb[key].viewRange()
        assert (x0 + x1) / 2 == pytest.approx(40, abs=0.5) and (y0 + y1) / 2 == pytest.approx(50, abs=0.5), key
        assert x0 <= 20.01 and x1 >= 59.99 and y0 <= 30.01 and y1 >= 69.99, key
        assert max(x1 - x0, y1 - y0) < 70, key
    v.set_cursor(50.5, 60.5)
    for side in "ab":
        lines = v.cross[side]
        assert all(line.isVisible() for line in lines)
        assert lines[0].value() == pytest.approx(50.5) and lines[1].value() == pytest.approx(60.5)
    values = v.values_at(50.5, 60.5)
    assert values["a"]["shown"] == pytest.approx(float(w.result.a.H[60, 50]))
    assert values["b"]["H"] == pytest.approx(float(w.result.b.H[60, 50]))
    assert "pixel (50, 60)" in v.value_label.text()
    v.set_cursor(500, 500)
    assert "outside" in v.value_label.text()
    w.views.reset_zoom()
    assert v.vb["a", "overlay"].viewRange()[0][1] == pytest.approx(112, abs=2)


def test_results_persist_across_restart(qtbot, tmp_path, tiny_model, pair, recorder):
    data = tmp_path / "data"
    w1, store1 = _open_window(qtbot, data, tiny_model)
    case_id = _new_case(w1, "T-PERSIST")
    outcome = _analyse(qtbot, w1, *pair)
    original = outcome.result
    w1.close()
    store1.close()

    w2, store2 = _open_window(qtbot, data, tiny_model)
    try:
        with qtbot.waitSignal(w2.result_shown, timeout=10_000):
            w2.select_case(case_id)
        assert not w2.controller.busy
        assert w2.controller.models.models == {}  # nothing was recomputed: the model was never loaded
        assert len(store2.list_results(outcome.job.comparison_id)) == 1
        r = w2.result
        assert r.score == pytest.approx(original.score)
        for side in "ab":
            np.testing.assert_allclose(getattr(r, side).H, getattr(original, side).H, atol=1e-7)
            np.testing.assert_array_equal(getattr(r, side).aligned, getattr(original, side).aligned)
        # the stored residuals recombine exactly like the in-memory ones
        w2.controls.threshold_spin.setValue(0.1)
        np.testing.assert_allclose(w2.result.a.H, original.recombine(threshold=0.1).a.H, atol=1e-7)
        assert w2.views.sources["a"].photo is not None
        assert "T-PERSIST" in w2.windowTitle()
    finally:
        w2.close()
        store2.close()


def test_cancel_mid_analysis(qtbot, tmp_path, slow_model, pair, recorder):
    w, store = _open_window(qtbot, tmp_path / "data", slow_model, engine="literal")
    try:
        case_id = _new_case(w)
        with qtbot.waitSignal(w.analysis_cancelled, timeout=ANALYSIS_TIMEOUT_MS):
            comp_id = w.import_pair(*pair, prealigned=True)
            qtbot.waitUntil(lambda: w.stage_label.text() == "Computing channel residuals", timeout=30_000)
            w.cancel_analysis()
        assert store.get_comparison(comp_id).status == "cancelled"
        assert store.list_results(comp_id) == []
        assert store.get_case(case_id).number == "T-0001"
        assert not w.controller.busy and w.act_run.isEnabled()
        assert not recorder.messages()
        # the same comparison can be analysed afterwards; the loaded model is reused
        with qtbot.waitSignal(w.analysis_finished, timeout=ANALYSIS_TIMEOUT_MS):
            assert w.run_analysis()
        assert len(w.controller.models.models) == 1
        assert store.get_comparison(comp_id).status == "done"
    finally:
        w.close()
        store.close()


def test_closing_the_window_mid_analysis_stops_cleanly(qtbot, tmp_path, slow_model, pair, recorder):
    w, store = _open_window(qtbot, tmp_path / "data", slow_model, engine="literal")
    try:
        _new_case(w)
        comp_id = w.import_pair(*pair, prealigned=True)
        qtbot.waitUntil(lambda: w.stage_label.text() == "Computing channel residuals", timeout=30_000)
        t0 = time.perf_counter()
        w.close()
        assert w.controller.thread.isFinished() and w.loader.thread.isFinished()
        assert time.perf_counter() - t0 < 10
        assert store.get_comparison(comp_id).status == "cancelled"
        assert store.list_results(comp_id) == []
    finally:
        store.close()


def test_error_dialogs_keep_the_case(qtbot, app_window, pair, tmp_path, recorder):
    w = app_window
    case_id = _new_case(w)
    _analyse(qtbot, w, *pair)
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG" * 3)
    assert w.import_pair(corrupt, pair[1], prealigned=True) is None
    assert any("cannot be used as an image" in m for m in recorder.messages())
    assert any("broken.jpg" in m for m in recorder.messages())
    assert len(w.store.list_comparisons(case_id)) == 1          # nothing half-imported
    assert w.result is not None                                 # the shown result stays
    # a photo without a face (detection on): a clear message, the comparison is kept as failed
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (160, 160, 3), dtype=np.uint8)).save(noise)
    with qtbot.waitSignal(w.analysis_failed, timeout=ANALYSIS_TIMEOUT_MS) as blocker:
        comp_id = w.import_pair(noise, pair[0], prealigned=False)
    assert blocker.args[0] == "NoFaceError"
    assert any("No face was found" in m and "noise.png" in m for m in recorder.messages())
    assert w.store.get_comparison(comp_id).status == "failed"
    assert w.store.get_case(case_id).n_comparisons == 2
    assert len(w.store.list_results(w.store.list_comparisons(case_id)[0].id)) == 1


def test_several_faces_ask_which(qtbot, app_window, recorder, tmp_path):
    left, right = SAMPLES / "John_Kerry_0009.jpg", SAMPLES / "Sergey_Lavrov_0003.jpg"
    if not (left.is_file() and right.is_file()):
        pytest.skip("bundled sample photos (resources/samples/images) are missing")
    w = app_window
    group = tmp_path / "group.jpg"
    Image.fromarray(np.concatenate([np.asarray(Image.open(left).convert("RGB")),
                                    np.asarray(Image.open(right).convert("RGB"))], axis=1)).save(group)
    _new_case(w)
    outcome = _analyse(qtbot, w, left, group, prealigned=False)
    assert ("faces", "b", 2) in recorder.seen
    assert outcome.record.parameters["face_index_b"] == 1
    assert outcome.record.parameters["face_index_a"] == 0
    from xfr_desktop.core.alignment import FaceAligner
    from xfr_desktop.core.imageio import load_image

    faces = FaceAligner(default_spec()).detect(load_image(group))
    np.testing.assert_allclose(outcome.record.faces()["b"]["box"], faces[1].box, atol=1e-3)  # the chosen one


def test_about_dialog_and_new_case_dialog(qtbot, app_window, recorder):
    w = app_window
    about = w.show_about()
    assert "PyTorch" in about.versions_label.text() and "Qt" in about.versions_label.text()
    assert about.card.toPlainText().strip()
    about.close()
    w.show_shortcuts()
    assert "Ctrl+R" in recorder.messages()[-1] and "Esc" in recorder.messages()[-1]
    w.new_case()
    assert ("new_case",) == recorder.seen[-1][:1]
    assert w.store.find_case("T-AUTO").title == ""
    assert "T-AUTO" in w.windowTitle()
    assert w.act_export.isEnabled()   # Ctrl+E opens the export dialog for the current case
    w.act_export.trigger()
    assert recorder.seen[-1] == ("ExportDialog",)
    w.act_wizard.trigger()
    assert recorder.seen[-1][0] != "message"


def test_examiner_conclusion_is_saved_per_scope(qtbot, app_window, pair):
    w = app_window
    case_id = _new_case(w)
    assert w.controls.conclusion_save.isEnabled()
    w.controls.conclusion_scope.setCurrentIndex(1)  # this comparison: none yet
    assert not w.controls.conclusion_save.isEnabled()
    w.controls.conclusion_scope.setCurrentIndex(0)
    w.controls.conclusion_text.setPlainText("The faces show no differences that exclude a common source.")
    w.controls.conclusion_scale.setText("ENFSI verbal scale")
    w.controls.save_conclusion()
    record = w.store.latest_conclusion(case_id)
    assert record.text.startswith("The faces show") and record.scale == "ENFSI verbal scale"
    assert record.comparison_id is None and record.author == "tester"
    assert "Saved" in w.controls.conclusion_status.text()
    comp_id = w.import_pair(*pair, prealigned=True, run=False)
    w.controls.conclusion_scope.setCurrentIndex(1)
    assert w.controls.conclusion_save.isEnabled() and w.controls.conclusion_text.toPlainText() == ""
    w.controls.conclusion_text.setPlainText("Pair-level note.")
    w.controls.save_conclusion()
    assert w.store.latest_conclusion(case_id, comparison_id=comp_id).text == "Pair-level note."
    w.controls.conclusion_scope.setCurrentIndex(0)
    assert w.controls.conclusion_text.toPlainText().startswith("The faces show")
    actions = [e.action for e in w.store.list_audit(case_id)]
    assert actions.count("conclusion.edited") == 2


class ThreadLog:
    """Which threads ran each step of an analysis, recorded from inside the step (wrappers and torch's global
    forward hook). The residual engine, on its first call, waits until the GUI thread's event loop has run a timer
    ``ticks`` times more: the analysis can only finish if the GUI thread keeps processing events meanwhile."""

    def __init__(self, ticks: int = 3):
        self.gui = threading.get_ident()
        self.ran: dict[str, set[int]] = {}
        self.entered, self.released = threading.Event(), threading.Event()
        self.ticks_needed, self.ticks = ticks, 0
        self.waited_for_events: bool | None = None   # the engine saw the ticks within a minute

    def record(self, step: str) -> None:
        self.ran.setdefault(step, set()).add(threading.get_ident())

    def wrap(self, step: str, fn, gate: bool = False):
        def wrapped(*args, **kwargs):
            self.record(step)
            if gate and threading.get_ident() != self.gui and not self.entered.is_set():
                self.entered.set()
                self.waited_for_events = self.released.wait(timeout=60)
            return fn(*args, **kwargs)
        return wrapped

    def tick(self) -> None:
        if self.entered.is_set() and not self.released.is_set():
            self.ticks += 1
            if self.ticks >= self.ticks_needed:
                self.released.set()


def test_analysis_work_never_runs_on_the_gui_thread(qtbot, tmp_path, tiny_model, recorder, monkeypatch):
    """Loading the model, the face detector, every torch module's forward, the residual engine, the photo quality
    check and the result's store write all run on the worker thread, and the GUI thread's event loop keeps running
    while they do. (How long the GUI thread's longest pause is: benchmarks/bench_gui_latency.py.)"""
    from xfr_desktop.core import explain, image_quality, model as model_module
    from xfr_desktop.core.alignment import FaceAligner

    a, b = SAMPLES / "John_Kerry_0009.jpg", SAMPLES / "John_Kerry_0013.jpg"
    if not (a.is_file() and b.is_file()):
        pytest.skip("bundled sample photos (resources/samples/images) are missing")
    log = ThreadLog()
    for target, name, step in ((model_module, "load_model", "load model"), (FaceAligner, "_run_detector", "detector"),
                               (FaceAligner, "align", "alignment"), (image_quality, "assess_photo", "photo quality")):
        monkeypatch.setattr(target, name, log.wrap(step, getattr(target, name)))
    monkeypatch.setattr(explain, "compute_residuals", log.wrap("residual engine", explain.compute_residuals, gate=True))
    hook = torch.nn.modules.module.register_module_forward_pre_hook(lambda module, _inputs: log.record("forward"))
    w, store = _open_window(qtbot, tmp_path / "data", tiny_model)
    monkeypatch.setattr(store, "save_result", log.wrap("store write", store.save_result))
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(log.tick)
    try:
        _new_case(w)
        timer.start()
        with qtbot.waitSignal(w.analysis_finished, timeout=ANALYSIS_TIMEOUT_MS) as finished:
            w.import_pair(a, b, prealigned=False)
        timer.stop()
        assert finished.args[0].record.id == w.record.id    # analysed, saved and shown
        assert set(log.ran) == {"load model", "detector", "alignment", "forward", "residual engine",
                                "photo quality", "store write"}, log.ran
        on_gui = sorted(step for step, threads in log.ran.items() if log.gui in threads)
        assert not on_gui, f"ran on the GUI thread: {on_gui}"
        assert len(set().union(*log.ran.values())) == 1     # one worker thread did all of it
        assert log.waited_for_events and log.ticks == log.ticks_needed   # events ran while the engine waited
    finally:
        hook.remove()
        timer.stop()
        w.close()
        store.close()


@pytest.mark.slow
def test_xfr_desktop_demo_without_display(tmp_path, demo_run):
    """`xfr-desktop --demo` with no display renders offscreen and saves a screenshot; reopening is instant.
    The first run is the session's shared demo child process (conftest ``demo_run``)."""
    assert (REPO / "resources" / "samples" / "case.json").is_file(), "the bundled sample case is missing"
    assert demo_run.returncode == 0, demo_run.stderr
    shot = demo_run.data / "demo" / "xfr-desktop-demo.png"
    assert shot.is_file() and str(shot) in demo_run.stdout
    with Image.open(shot) as im:
        assert im.size == (1280, 800)
    # with --offscreen and --screenshot: the stored result is shown again (no second result row)
    other = tmp_path / "again.png"
    run = subprocess.run(demo_run.cmd + ["--offscreen", "--screenshot", str(other)], env=demo_run.env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    with Image.open(other) as im:
        assert im.size[0] >= 800 and np.asarray(im.convert("L")).std() > 5    # a drawn window, not a blank
    with open_store(demo_run.data) as store:
        case = store.find_case("SAMPLE-0001")
        comps = store.list_comparisons(case.id)
        # every pair the sample case names is imported; the first one is analysed, once
        assert len(comps) == 4 and [len(store.list_results(c.id)) for c in comps] == [1, 0, 0, 0]
    # a bad model: a clear message and a non-zero exit
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    run = subprocess.run([sys.executable, "-m", "xfr_desktop.gui.app", "--demo", "--offscreen", "--data-dir",
                          str(tmp_path / "d2"), "--model", str(bad), "--screenshot", str(tmp_path / "x.png")],
                         env=demo_run.env, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "bad.pt" in run.stderr and "Traceback" not in run.stderr


def test_sample_case_file_and_display_detection(tmp_path, monkeypatch):
    from xfr_desktop.gui.app import display_available, load_sample_case

    sample = load_sample_case()                          # the bundled case is part of the tree: always checked
    assert sample["number"] == "SAMPLE-0001" and len(sample["pairs"]) >= 1
    a, b, _pre, _label = sample["pairs"][0]
    assert a.is_file() and b.is_file()
    broken = tmp_path / "case.json"
    broken.write_text("{not json")
    with pytest.raises(FileNotFoundError, match="missing or unreadable"):
        load_sample_case(broken)
    broken.write_text('{"case_number": "X", "pairs": []}')
    with pytest.raises(FileNotFoundError, match="lists no image pairs"):
        load_sample_case(broken)
    if sys.platform.startswith("linux"):
        monkeypatch.delenv("DISPLAY", raising=False)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        assert not display_available()
        monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
        assert display_available()


def test_screenshot_needs_demo_and_no_display_without_demo_is_explained(tmp_path, capsys, monkeypatch):
    from xfr_desktop.gui.app import main

    assert main(["--screenshot", str(tmp_path / "x.png"), "--offscreen", "--data-dir", str(tmp_path)]) == 2
    assert "--screenshot needs --demo" in capsys.readouterr().err
    if sys.platform.startswith("linux"):
        monkeypatch.delenv("DISPLAY", raising=False)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        assert main(["--data-dir", str(tmp_path)]) == 2
        assert "no display found" in capsys.readouterr().err


def test_likelihood_ratio_shown_when_the_model_is_calibrated(qtbot, tmp_path, tiny_model, pair, recorder):
    import shutil

    from xfr_desktop.core.calibration import calibration_path, fit_calibration
    from xfr_desktop.core.model import file_sha256
    from xfr_desktop.core.calibration import stored_likelihood_ratio
    from xfr_desktop.core.evaluative import lr_statement

    model = tmp_path / "calibrated.pt"
    shutil.copy(tiny_model, model)
    rng = np.random.default_rng(0)
    cal = fit_calibration(rng.normal(0.8, 0.1, 200), rng.normal(0.1, 0.1, 200), model_sha256=file_sha256(model))
    cal.save(calibration_path(model))

    class Plain:  # what the lookup needs of a model: its file
        path, sha256 = str(tiny_model), None

    assert stored_likelihood_ratio(Plain(), 0.5) is None  # no calibration next to this file
    w, store = _open_window(qtbot, tmp_path / "data", model)
    try:
        _new_case(w)
        outcome = _analyse(qtbot, w, *pair)
        lr = outcome.record.parameters["likelihood_ratio"]
        assert lr["value"] == pytest.approx(cal.describe(outcome.result.score)[0], rel=1e-6)
        qtbot.waitUntil(lambda: w.record is not None, timeout=5000)
        assert w.controls.lr_label.text() == f"<b>{lr_statement(lr).text}</b>"
        assert w.controls.lr_verbal_label.isVisibleTo(w) and "proposition" in w.controls.lr_verbal_label.text()
        assert not w.controls.decision_flags.isVisibleTo(w)      # at the calibrated τ nothing to flag
        w.controls.threshold_spin.setValue(0.98)                  # the defect (2): an exploratory τ
        flags = w.controls.decision_flags.text()
        assert w.controls.decision_flags.isVisibleTo(w) and "not the model's calibrated threshold" in flags
        if (lr["value"] > 1) != w.result.decision:
            assert "points the other way from the likelihood ratio" in flags
    finally:
        w.close()
        store.close()
