"""The training wizard: dataset -> base model -> mode and hyperparameters -> device -> review -> run -> result.

Each page checks its input in ``validatePage`` and shows what is wrong in red on the page itself (empty or
unreadable folders, too few identities or images, a checkpoint of the wrong family, too little disk space).
Everything that reads files, loads a model or imports torch runs on the controller's task runner
(``gui/tasks.py``): the dataset scan, the base model's inspection, the device list, the step-time estimates and
the run (:func:`xfr_desktop.training_setup.run_training`). The GUI thread sets the pause and cancel
``threading.Event``s directly and receives progress through queued signals. The finished model is registered in
the store with its model card and made active on request.

Open it with :func:`open_training_wizard` (window-modal, non-blocking).
"""
from __future__ import annotations

from PySide6.QtCore import QTimer, Signal, Slot
from PySide6.QtWidgets import QWidget, QWizard, QWizardPage

from ...training_setup import TrainingSetup
from .base_page import BaseModelPage
from .controller import TrainingController
from .dataset_page import DatasetPage
from .device_page import DevicePage
from .hyper_page import HyperparametersPage
from .result_page import ResultPage
from .review_page import ReviewPage
from .run_page import RunPage


class TrainingWizard(QWizard):
    model_activated = Signal(str)   # sha256 of the model made active

    PAGE_NAMES = ("dataset", "base", "hyper", "device", "review", "run", "result")

    def __init__(self, parent: QWidget | None = None, store=None):
        super().__init__(parent)
        self.setObjectName("trainingWizard")
        self.setWindowTitle("Training wizard")
        self.store = store
        self.state = TrainingSetup()
        self.controller = TrainingController(self)
        self.pages = {
            "dataset": DatasetPage(), "base": BaseModelPage(), "hyper": HyperparametersPage(),
            "device": DevicePage(), "review": ReviewPage(), "run": RunPage(), "result": ResultPage(),
        }
        self.page_ids = {name: self.addPage(page) for name, page in self.pages.items()}
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage, True)
        self.setOption(QWizard.WizardOption.NoCancelButtonOnLastPage, True)
        self.resize(900, 720)
        self._close_when_done = False
        self.controller.result.connect(self._run_ended)
        self.controller.error.connect(self._run_ended)
        self.finished.connect(self.shutdown)

    def page_named(self, name: str) -> QWizardPage:
        return self.pages[name]

    def current_name(self) -> str:
        return next((n for n, i in self.page_ids.items() if i == self.currentId()), "")

    def reject(self) -> None:
        """Closing during a run cancels it; the wizard closes once the checkpoint is written."""
        if self.controller.running:
            self._close_when_done = True
            self.pages["run"].cancel_run()
            return
        super().reject()

    @Slot()
    def _run_ended(self, *args) -> None:
        if self._close_when_done:
            self._close_when_done = False
            # Close only after the run page has recorded the result: its slot is queued behind this one.
            QTimer.singleShot(0, self._close_now)

    @Slot()
    def _close_now(self) -> None:
        super().reject()

    @Slot()
    def shutdown(self) -> None:
        self.controller.shutdown()


def open_training_wizard(parent: QWidget | None, store) -> TrainingWizard:
    """Open the wizard window-modal without blocking (the desktop's Tools menu calls this)."""
    from ..dialogs import present

    wizard = TrainingWizard(parent, store)
    present(wizard)
    return wizard
