"""The run page: live loss and validation curves, sample reconstructions, pause and cancel."""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (QGridLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout,
                               QWidget)

from .common import Page, fmt_duration, qpixmap


class RunPage(Page):
    def __init__(self):
        super().__init__("Training", "Live curves; pause or cancel at any time (a checkpoint is kept).")
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("runProgress")
        self.status_label = QLabel("Starting…")
        self.status_label.setObjectName("runStatus")
        self.eta_label = QLabel()
        self.eta_label.setObjectName("etaLabel")
        self.pause_btn = QPushButton("Pause")
        self.pause_btn.setObjectName("pauseButton")
        self.pause_btn.setCheckable(True)
        self.pause_btn.toggled.connect(self.pause_toggled)
        self.cancel_btn = QPushButton("Cancel run")
        self.cancel_btn.setObjectName("cancelButton")
        self.cancel_btn.clicked.connect(self.cancel_run)
        self.loss_plot = pg.PlotWidget(title="Loss")
        self.loss_plot.addLegend()
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.setLogMode(y=True)  # ArcFace (~10) and reconstruction (~0.1) on one readable axis
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen("#4fc3f7", width=2), name="total")
        self.recon_curve = self.loss_plot.plot([], [], pen=pg.mkPen("#ffb74d", width=2), name="reconstruction")
        self.val_plot = pg.PlotWidget(title="Validation accuracy")
        self.val_plot.setLabel("bottom", "epoch")
        self.val_plot.setYRange(0.4, 1.0)
        self.val_curve = self.val_plot.plot([], [], pen=pg.mkPen("#81c784", width=2), symbol="o")
        self.sample_labels = [QLabel() for _ in range(8)]
        samples = QWidget()
        grid = QGridLayout(samples)
        grid.addWidget(QLabel("input"), 0, 0)
        grid.addWidget(QLabel("reconstruction"), 1, 0)
        for i, lab in enumerate(self.sample_labels):
            grid.addWidget(lab, i % 2, 1 + i // 2)
        buttons = QHBoxLayout()
        buttons.addWidget(self.pause_btn)
        buttons.addWidget(self.cancel_btn)
        buttons.addStretch(1)
        buttons.addWidget(self.eta_label)
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot, 2)
        plots.addWidget(self.val_plot, 1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.progress_bar)
        lay.addWidget(self.status_label)
        lay.addLayout(plots, 1)
        lay.addWidget(samples)
        lay.addLayout(buttons)
        lay.addWidget(self.error_label)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.recons: list[float] = []
        self.val_epochs: list[int] = []
        self.val_accs: list[float] = []
        self.finished = False

    def initializePage(self) -> None:  # noqa: N802
        wiz = self.wizard()
        self.finished = False
        self.state.result, self.state.error = None, None
        self.pause_btn.setEnabled(True)
        self.cancel_btn.setEnabled(True)
        ctl = wiz.controller
        ctl.progress.connect(self.on_progress, Qt.ConnectionType.UniqueConnection)
        ctl.result.connect(self.on_result, Qt.ConnectionType.UniqueConnection)
        ctl.error.connect(self.on_error, Qt.ConnectionType.UniqueConnection)
        self.pause_btn.setEnabled(self.state.gpus == 1)  # a multi-process run can be cancelled, not paused
        ctl.start(self.state.config, self.state.gpus)

    def isComplete(self) -> bool:  # noqa: N802
        return self.finished

    @Slot(bool)
    def pause_toggled(self, paused: bool) -> None:
        self.wizard().controller.set_paused(paused)
        self.pause_btn.setText("Resume" if paused else "Pause")
        if paused:
            self.status_label.setText("Pausing after this step…")

    @Slot()
    def cancel_run(self) -> None:
        self.cancel_btn.setEnabled(False)
        self.pause_btn.setEnabled(False)
        self.status_label.setText("Cancelling after this step and saving a checkpoint…")
        self.wizard().controller.cancel()

    @Slot(object)
    def on_progress(self, p) -> None:
        if p.total_steps:
            self.progress_bar.setMaximum(p.total_steps)
            self.progress_bar.setValue(p.step)
        if p.event == "step":
            self.steps.append(p.step)
            self.losses.append(p.loss)
            self.recons.append(p.recon_loss)
            self.loss_curve.setData(self.steps, self.losses)
            self.recon_curve.setData(self.steps, self.recons)
            self.eta_label.setText(f"ETA {fmt_duration(p.eta_s)}")
            self.status_label.setText(f"Step {p.step} of {p.total_steps}, epoch {p.epoch + 1} of {p.epochs}: "
                                      f"loss {p.loss:.4f}, reconstruction {p.recon_loss:.4f}")
            if p.samples is not None:
                for i, pair in enumerate(p.samples[:4]):
                    for j in range(2):
                        self.sample_labels[2 * i + j].setPixmap(qpixmap(pair[j], 2 if pair[j].shape[0] < 64 else 1))
        elif p.event == "epoch" and p.val_acc is not None:
            self.val_epochs.append(p.epoch)
            self.val_accs.append(p.val_acc)
            self.val_curve.setData(self.val_epochs, self.val_accs)
        elif p.event == "paused":
            self.status_label.setText(f"Paused at step {p.step}.")
        elif p.event == "start":
            self.status_label.setText(f"Training: {p.message}")

    @Slot(object)
    def on_result(self, result) -> None:
        self.state.result = result
        self.status_label.setText(f"Cancelled at step {result.steps}; the checkpoint is kept." if result.cancelled
                                  else f"Finished: {result.steps} steps.")
        self._end()

    @Slot(str, str)
    def on_error(self, kind: str, message: str) -> None:
        self.state.error = message
        self.fail(f"Training stopped: {message}")
        self.status_label.setText("Training stopped with an error.")
        self._end()

    def _end(self) -> None:
        self.finished = True
        self.pause_btn.setEnabled(False)
        self.cancel_btn.setEnabled(False)
        self.completeChanged.emit()
