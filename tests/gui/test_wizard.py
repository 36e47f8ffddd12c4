"""The training wizard, offscreen: every page refuses bad input with a clear message, a run trains, registers
its model with a card and activates it on request; pause holds the run and cancel leaves a usable checkpoint; every
load runs on the training thread and the pages import no torch."""
from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from tests.training.test_training import make_identity_folder, small_spec
from xfr_desktop.core.model import JointModel, load_model, save_model
from xfr_desktop.core.training.base_model import inspect_base
from xfr_desktop.core.training.config import CHECKPOINT_NAME, TrainConfig
from xfr_desktop.core.training.trainer import Trainer
from xfr_desktop.gui.training import TrainingWizard
from xfr_desktop.store import open_store


@pytest.fixture
def setup(tmp_path, qtbot):
    torch.manual_seed(0)
    save_model(JointModel(small_spec()), tmp_path / "base.pt")
    make_identity_folder(tmp_path / "data")
    store = open_store(tmp_path / "store")
    wizard = TrainingWizard(None, store)
    qtbot.addWidget(wizard)
    wizard.show()
    yield tmp_path, wizard, store
    wizard.controller.shutdown()
    store.close()


def press_next(qtbot, wizard):
    """Next, and the work it starts on the training thread (the data scan, the base model's inspection: the page
    answers Next again when it is done; the device list of the page it leads to)."""
    page = wizard.currentPage()
    wizard.next()
    qtbot.waitUntil(lambda: not page.busy and not wizard.currentPage().busy, timeout=20000)


def go_to_hyper(qtbot, wizard, tmp_path, base=None, resume=False):
    wizard.page_named("dataset").path_edit.setText(str(tmp_path / "data"))
    press_next(qtbot, wizard)
    page = wizard.page_named("base")
    (page.resume_radio if resume else page.file_radio).setChecked(True)
    page.path_edit.setText(str(base or tmp_path / "base.pt"))
    press_next(qtbot, wizard)
    assert wizard.current_name() == "hyper", page.error_label.text()


def set_hyper(wizard, tmp_path, epochs=1, max_steps=2, out="run"):
    page = wizard.page_named("hyper")
    page.epochs.setValue(epochs)
    page.max_steps.setValue(max_steps)
    page.batch.setValue(4)
    page.out_edit.setText(str(tmp_path / out))
    return page


def test_pages_refuse_bad_input(setup, monkeypatch, qtbot):
    tmp_path, wizard, _ = setup
    ds = wizard.page_named("dataset")
    cases = [("", "Choose the training data"), (tmp_path / "nothing", "not found")]
    (tmp_path / "empty").mkdir()
    cases.append((tmp_path / "empty", "no images found"))
    make_identity_folder(tmp_path / "one", n_ids=1)
    cases.append((tmp_path / "one", "1 identity folder"))
    make_identity_folder(tmp_path / "few", n_ids=2, per_id=1)
    cases.append((tmp_path / "few", "only 2 image"))
    for path, message in cases:
        ds.path_edit.setText(str(path))
        press_next(qtbot, wizard)
        assert wizard.current_name() == "dataset"
        assert message in ds.error_label.text()
    ds.path_edit.setText(str(tmp_path / "data"))
    wizard.next()
    assert wizard.current_name() == "dataset" and ds.scanning   # the GUI thread does not wait for the scan
    qtbot.waitUntil(lambda: not ds.scanning, timeout=20000)
    assert wizard.current_name() == "base" and "12 images of 3 identities" in ds.summary.text()

    base = wizard.page_named("base")
    torch.save({"encoder.weight": torch.zeros(3)}, tmp_path / "other.pth")
    base.file_radio.setChecked(True)
    base.path_edit.setText(str(tmp_path / "other.pth"))
    wizard.next()
    assert wizard.current_name() == "base" and base.busy   # the file is read on the training thread
    qtbot.waitUntil(lambda: not base.busy, timeout=20000)
    assert wizard.current_name() == "base" and "not an insightface IResNet" in base.error_label.text()
    base.resume_radio.setChecked(True)
    base.path_edit.setText(str(tmp_path / "base.pt"))
    press_next(qtbot, wizard)
    assert wizard.current_name() == "base" and "not a training checkpoint" in base.error_label.text()
    base.file_radio.setChecked(True)
    press_next(qtbot, wizard)
    assert wizard.current_name() == "hyper"

    hyper = set_hyper(wizard, tmp_path)
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr("xfr_desktop.core.training.planning.shutil.disk_usage", lambda p: usage(10**9, 10**9, 1000))
    wizard.next()
    assert wizard.current_name() == "hyper" and "not enough disk space" in hyper.error_label.text()
    monkeypatch.undo()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / CHECKPOINT_NAME).write_bytes(b"x")
    hyper.out_edit.setText(str(tmp_path / "old"))
    wizard.next()
    assert wizard.current_name() == "hyper" and "holds a previous run" in hyper.error_label.text()
    wizard.back()
    wizard.back()
    assert wizard.current_name() == "dataset"


def test_run_registers_and_activates_the_model(setup, qtbot):
    tmp_path, wizard, store = setup
    go_to_hyper(qtbot, wizard, tmp_path)
    set_hyper(wizard, tmp_path, epochs=2, max_steps=0)
    wizard.next()
    device = wizard.page_named("device")
    assert wizard.current_name() == "device"
    qtbot.waitUntil(lambda: "Estimated training time" in device.estimate_label.text(), timeout=20000)
    assert "6 steps" in device.estimate_label.text()
    if device.device_combo.currentData() == "cpu":
        assert "CPU is slow" in device.warning_label.text()
    device.device_combo.setCurrentIndex(device.device_combo.findData("cpu"))
    wizard.next()
    review = wizard.page_named("review")
    assert str(tmp_path / "data") in review.text.toPlainText() and 'mode = "joint"' in review.text.toPlainText()
    wizard.next()
    run = wizard.page_named("run")
    assert wizard.current_name() == "run"
    qtbot.waitUntil(lambda: run.finished, timeout=120000)
    assert not run.error_label.text()
    assert run.steps[-1] == 6 and len(run.val_accs) == 2 and all(np.isfinite(run.losses))
    assert run.sample_labels[1].pixmap() is not None and not run.sample_labels[1].pixmap().isNull()
    wizard.next()
    result = wizard.page_named("result")
    models = store.list_models()
    assert len(models) == 1 and models[0].card and "12 images of 3 identities" in models[0].card
    assert load_model(models[0].path, device="cpu").spec["name"] == models[0].name
    assert store.active_model() is None or store.active_model().sha256 != models[0].sha256
    assert "registered" in result.summary.text()
    with qtbot.waitSignal(wizard.model_activated, timeout=5000):
        result.activate_btn.click()
    assert store.active_model().sha256 == models[0].sha256


def test_time_estimate_runs_off_the_gui_thread(setup, qtbot, monkeypatch):
    """Timing a training step takes seconds on a CPU; the device page must keep painting meanwhile."""
    import threading
    import time

    from PySide6.QtCore import QTimer

    tmp_path, wizard, _ = setup
    gui_thread = threading.get_ident()
    seen = {}
    release = threading.Event()

    def slow_estimate(model, batch_size, device="cpu", mode="joint", probe_batch=2):
        # blocks until the test has watched the GUI thread keep painting (no fixed sleep)
        seen["thread"] = threading.get_ident()
        release.wait(20)
        return 0.5

    monkeypatch.setattr("xfr_desktop.core.training.planning.estimate_step_seconds", slow_estimate)
    go_to_hyper(qtbot, wizard, tmp_path)
    set_hyper(wizard, tmp_path, epochs=2, max_steps=0)
    ticks = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    press_next(qtbot, wizard)
    device = wizard.page_named("device")
    assert wizard.current_name() == "device" and "Estimating" in device.estimate_label.text()
    qtbot.waitUntil(lambda: len(ticks) > 50, timeout=20000)      # ~0.5 s of ticks while the estimate blocks
    assert "Estimating" in device.estimate_label.text()
    release.set()
    qtbot.waitUntil(lambda: "Estimated training time" in device.estimate_label.text(), timeout=20000)
    timer.stop()
    assert seen["thread"] != gui_thread
    assert "0.5 s per step" in device.estimate_label.text() and "6 steps" in device.estimate_label.text()
    gaps = np.diff(ticks)
    assert len(ticks) > 50 and gaps.max() < 0.5, f"GUI thread stalled {gaps.max():.2f} s during the estimate"
    wizard.back()              # a new visit measures again for the new settings; stale answers are ignored
    set_hyper(wizard, tmp_path, epochs=1, max_steps=0)
    wizard.next()
    qtbot.waitUntil(lambda: "Estimated training time" in device.estimate_label.text(), timeout=20000)
    assert "3 steps" in device.estimate_label.text()


def test_pause_and_cancel_keep_a_resumable_checkpoint(setup, qtbot):
    tmp_path, wizard, store = setup
    go_to_hyper(qtbot, wizard, tmp_path)
    set_hyper(wizard, tmp_path, epochs=50, max_steps=0)
    press_next(qtbot, wizard)
    wizard.page_named("device").device_combo.setCurrentIndex(
        wizard.page_named("device").device_combo.findData("cpu"))
    wizard.next()
    wizard.next()
    run = wizard.page_named("run")
    qtbot.waitUntil(lambda: len(run.steps) >= 1, timeout=60000)
    run.pause_btn.click()
    qtbot.waitUntil(lambda: "Paused at step" in run.status_label.text(), timeout=60000)
    paused_at = wizard.controller.pause_event.is_set() and len(run.steps)
    qtbot.wait(300)
    assert len(run.steps) == paused_at  # nothing moves while paused
    run.cancel_btn.click()
    qtbot.waitUntil(lambda: run.finished, timeout=60000)
    res = wizard.state.result
    assert res.cancelled and res.steps < 150
    info = inspect_base(tmp_path / "run")
    assert info.kind == "checkpoint" and f"step {res.steps}" in info.description
    wizard.next()
    assert "cancelled" in wizard.page_named("result").summary.text() and store.list_models() == []

    # a second wizard resumes the cancelled run: mode and folder come from the checkpoint
    again = TrainingWizard(None, store)
    qtbot.addWidget(again)
    again.show()
    try:
        go_to_hyper(qtbot, again, tmp_path, base=tmp_path / "run", resume=True)
        hyper = again.page_named("hyper")
        assert not hyper.mode_combo.isEnabled() and hyper.out_edit.text() == str(tmp_path / "run")
        hyper.max_steps.setValue(res.steps + 1)
        for _ in range(3):
            press_next(qtbot, again)
        qtbot.waitUntil(lambda: again.page_named("run").finished, timeout=60000)
        assert again.state.result.steps == res.steps + 1 and not again.state.result.cancelled
    finally:
        again.controller.shutdown()


def test_closing_during_a_run_cancels_it_and_keeps_the_checkpoint(setup, qtbot):
    tmp_path, wizard, store = setup
    go_to_hyper(qtbot, wizard, tmp_path)
    set_hyper(wizard, tmp_path, epochs=50, max_steps=0)
    for _ in range(3):
        press_next(qtbot, wizard)
    run = wizard.page_named("run")
    qtbot.waitUntil(lambda: len(run.steps) >= 1, timeout=60000)
    wizard.reject()  # the window's close button
    assert wizard.isVisible()  # stays open until the step ends and the checkpoint is written
    qtbot.waitUntil(lambda: not wizard.isVisible(), timeout=60000)
    assert wizard.state.result.cancelled and (tmp_path / "run" / CHECKPOINT_NAME).is_file()
    assert inspect_base(tmp_path / "run").kind == "checkpoint"


@pytest.mark.parametrize("n_gpus", [1, 2])
def test_gpus_setting_appears_with_several_cuda_devices_and_launches_torchrun(setup, qtbot, monkeypatch, n_gpus):
    """With 2 CUDA devices the device page offers a GPUs spin box and the run is launched as torchrun (the run
    itself needs real GPUs: tests/training/test_distributed_training.py runs the launcher on the CPU)."""
    import torch

    tmp_path, wizard, _ = setup
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n_gpus)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: f"Test GPU {i}")
    monkeypatch.setattr("xfr_desktop.training_setup.estimate_step", lambda *a: 0.25)  # no CUDA to time on
    go_to_hyper(qtbot, wizard, tmp_path)
    set_hyper(wizard, tmp_path)
    press_next(qtbot, wizard)
    device = wizard.page_named("device")
    assert device.gpus_spin.isVisibleTo(device) == (n_gpus > 1)
    device.device_combo.setCurrentIndex(device.device_combo.findData("cuda:0"))
    if n_gpus > 1:
        assert device.gpus_spin.maximum() == 2 and device.gpus_spin.isEnabled()
        device.gpus_spin.setValue(2)
    started = []
    monkeypatch.setattr(wizard.controller, "start", lambda config, gpus=1: started.append((config, gpus)))
    wizard.next()
    review = wizard.page_named("review").text.toPlainText()
    assert wizard.state.gpus == n_gpus
    assert ("torchrun --standalone --nproc_per_node 2 -m xfr_desktop.cli train" in review) == (n_gpus > 1)
    wizard.next()
    assert started and started[0][1] == n_gpus
    assert started[0][0].device == ("cuda" if n_gpus > 1 else "cuda:0")  # each process takes its rank's GPU


def test_wizard_pages_import_no_torch():
    """The pages load on the GUI thread; torch (seconds to import) is imported by work on the training thread."""
    code = ("import sys, xfr_desktop.gui.training, xfr_desktop.gui.training_wizard, xfr_desktop.training_setup; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    from tests.conftest import REPO_ROOT as root
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(root), "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_every_load_runs_on_the_training_thread(setup, qtbot, monkeypatch):
    """The base model's inspection, a checkpoint's resume settings and the device list are read off the GUI
    thread, and the resumed run's settings reach the hyperparameter page."""
    from xfr_desktop.core.training import base_model, checkpoint

    tmp_path, wizard, _ = setup
    Trainer(TrainConfig(data=str(tmp_path / "data"), out=str(tmp_path / "first"), base=str(tmp_path / "base.pt"),
                        batch_size=4, max_steps=1, epochs=2, seed=3, device="cpu", val_limit=8, name="first")).run()
    threads = collections.defaultdict(set)

    def watch(module, name):
        real = getattr(module, name)

        def watched(*args, **kwargs):
            threads[name].add(threading.get_ident())
            return real(*args, **kwargs)
        monkeypatch.setattr(module, name, watched)

    for module, name in ((base_model, "inspect_base"), (checkpoint, "read_resume_settings"),
                         (torch.cuda, "is_available")):
        watch(module, name)
    go_to_hyper(qtbot, wizard, tmp_path, base=tmp_path / "first", resume=True)
    hyper = wizard.page_named("hyper")
    assert (hyper.seed.value(), hyper.epochs.value(), hyper.batch.value(), hyper.name_edit.text(),
            hyper.out_edit.text()) == (3, 2, 4, "first", str(tmp_path / "first"))
    press_next(qtbot, wizard)
    assert wizard.current_name() == "device" and wizard.page_named("device").device_combo.findData("cpu") >= 0
    assert set(threads) == {"inspect_base", "read_resume_settings", "is_available"}
    assert threading.get_ident() not in set().union(*threads.values())
