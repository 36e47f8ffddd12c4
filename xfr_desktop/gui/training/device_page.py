"""The device page: where the run trains (the devices are listed, and a step timed, on the training runner) and
how long it should take."""
from __future__ import annotations

import math

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLabel, QSpinBox

from ...training_setup import list_devices, planned_run_steps
from .common import CPU_WARN_SECONDS, Page, fmt_duration


class DevicePage(Page):
    def __init__(self):
        super().__init__("Device", "Where the training runs.")
        self.device_combo = QComboBox()
        self.device_combo.setObjectName("deviceCombo")
        self.gpus_spin = QSpinBox()  # shown when more than one CUDA device is present
        self.gpus_spin.setObjectName("gpuCount")
        self.gpus_spin.setToolTip("Train in one process per GPU (torchrun); the batch size is the total over GPUs")
        self.amp_check = QCheckBox("Mixed precision (faster on CUDA)")
        self.amp_check.setChecked(True)
        self.estimate_label = QLabel()
        self.estimate_label.setObjectName("estimateLabel")
        self.estimate_label.setWordWrap(True)
        self.warning_label = QLabel()
        self.warning_label.setObjectName("cpuWarning")
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet("color: #ffb74d;")
        form = QFormLayout(self)
        form.addRow("Device:", self.device_combo)
        form.addRow("GPUs:", self.gpus_spin)
        self._form = form
        form.addRow(self.amp_check)
        form.addRow(self.estimate_label)
        form.addRow(self.warning_label)
        form.addRow(self.error_label)
        self.device_combo.currentIndexChanged.connect(self.device_changed)
        self._estimates: dict[str, float] = {}
        self._requested: set[str] = set()
        self._request = 0          # answers to requests made before the page was last entered are stale
        self._listening = False

    def initializePage(self) -> None:  # noqa: N802
        """Lists the devices on the training runner; :meth:`_show_devices` fills the page when they come."""
        if not self._listening:
            self.wizard().controller.estimated.connect(self._estimated)
            self._listening = True
        self.device_combo.blockSignals(True)
        self.device_combo.clear()
        self.device_combo.blockSignals(False)
        self._form.setRowVisible(self.gpus_spin, False)
        self._estimates.clear()
        self._requested.clear()
        self._request += 1
        request = self._request
        self.estimate_label.setText("Looking for devices…")
        self.warning_label.clear()
        self._task = self.wizard().controller.runner.start(
            lambda ctx: list_devices(), finished=lambda devices: self._show_devices(devices, request),
            failed=lambda _kind, message: self.fail(message))

    def _show_devices(self, devices: list[tuple[str, str]], request: int) -> None:
        if request != self._request:
            return
        self.device_combo.blockSignals(True)
        for label, device in devices:
            self.device_combo.addItem(label, device)
        self.device_combo.blockSignals(False)
        n_gpus = sum(device.startswith("cuda") for _, device in devices)
        self.gpus_spin.setRange(1, max(n_gpus, 1))
        self.gpus_spin.setValue(1)
        self._form.setRowVisible(self.gpus_spin, n_gpus > 1)
        self.device_changed()

    @Slot()
    def device_changed(self) -> None:
        device = self.device_combo.currentData()
        if device is None:
            return
        self.amp_check.setEnabled(device.startswith("cuda"))
        self.gpus_spin.setEnabled(device.startswith("cuda"))
        if device in self._estimates:
            self._show_estimate(device)
            return
        if device not in self._requested:
            # timed on the training worker's thread (idle until a run starts): the page stays responsive
            self._requested.add(device)
            cfg = self.state.config
            self.wizard().controller.request_estimate(device, self.state.base_info.spec, cfg.batch_size, cfg.mode,
                                                      self._request)
        self.state.estimate_s = None
        self.estimate_label.setText(f"Estimating the training time on {self.device_combo.currentText()}…")
        self.warning_label.clear()

    @Slot(str, float, int)
    def _estimated(self, device: str, seconds: float, request: int) -> None:
        if request != self._request:
            return
        self._estimates[device] = seconds
        if self.device_combo.currentData() == device:
            self._show_estimate(device)

    def _show_estimate(self, device: str) -> None:
        steps = planned_run_steps(self.state)
        total = self._estimates[device] * steps
        self.state.estimate_s = total if math.isfinite(total) else None
        self.estimate_label.setText(f"Estimated training time: about {fmt_duration(total)} for {steps} steps "
                                    f"({fmt_duration(self._estimates[device])} per step, validation not counted).")
        if device == "cpu":
            slow = math.isfinite(total) and total > CPU_WARN_SECONDS
            self.warning_label.setText(
                "Training on the CPU is slow" + (f" (about {fmt_duration(total)} here)" if slow else "") +
                ". A CUDA GPU is recommended; you can pause or cancel the run and resume it later.")
        else:
            self.warning_label.clear()

    def validatePage(self) -> bool:  # noqa: N802
        device = self.device_combo.currentData()
        if device is None:
            return False if self.busy else self.fail("No device available.")
        gpus = self.gpus_spin.value() if device.startswith("cuda") and self.gpus_spin.isVisibleTo(self) else 1
        if gpus > 1 and self.state.config.batch_size % gpus:
            return self.fail(f"The batch size ({self.state.config.batch_size}) is shared by the GPUs: make it a "
                             f"multiple of {gpus}.")
        self.state.device, self.state.gpus = device, gpus
        # each process takes the GPU of its rank: the run names the device type only
        self.state.config = self.state.config.replace(device="cuda" if gpus > 1 else device,
                                                      amp=self.amp_check.isChecked())
        return True
