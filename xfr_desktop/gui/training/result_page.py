"""The result page: the new model's card, registered in the case database and made active on request."""
from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QLabel, QPushButton, QTextBrowser, QVBoxLayout

from ...core.errors import XfrError
from .common import Page


class ResultPage(Page):
    def __init__(self):
        super().__init__("Result")
        self.summary = QLabel()
        self.summary.setObjectName("resultSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.card_view = QTextBrowser()
        self.card_view.setObjectName("modelCard")
        self.activate_btn = QPushButton("Make it the active model")
        self.activate_btn.setObjectName("activateButton")
        self.activate_btn.clicked.connect(self.activate)
        lay = QVBoxLayout(self)
        lay.addWidget(self.summary)
        lay.addWidget(self.card_view, 1)
        lay.addWidget(self.activate_btn, 0, Qt.AlignmentFlag.AlignLeft)
        lay.addWidget(self.error_label)
        self.setFinalPage(True)

    def initializePage(self) -> None:  # noqa: N802
        st = self.state
        self.clear_error()
        self.activate_btn.setEnabled(False)
        self.card_view.clear()
        if st.error:
            self.summary.setText(f"The run stopped with an error: {st.error}\nNothing was registered.")
            return
        res = st.result
        if res is None:
            self.summary.setText("No result.")
            return
        if res.cancelled:
            self.summary.setText(
                f"The run was cancelled at step {res.steps}. Its checkpoint is kept at {res.checkpoint_path}: "
                "open the wizard again and choose “Resume a previous run” with that folder to continue.")
            return
        self.card_view.setMarkdown(res.card)
        store = self.wizard().store
        if store is None:
            self.summary.setText(f"New model: {res.model_path}\n(no case database open: not registered)")
            return
        try:
            st.registered = store.register_model(res.name, res.model_path, sha256=res.model_sha256, card=res.card)
        except XfrError as exc:
            self.summary.setText(f"New model: {res.model_path}")
            self.fail(f"The model could not be registered: {exc}")
            return
        self.summary.setText(f"New model “{res.name}” registered in the model list.\nFile: {res.model_path}\n"
                             f"SHA-256: {res.model_sha256}")
        self.activate_btn.setEnabled(True)

    @Slot()
    def activate(self) -> None:
        st = self.state
        try:
            self.wizard().store.set_active_model(st.registered.id)
        except XfrError as exc:
            self.fail(f"The model could not be made active: {exc}")
            return
        self.activate_btn.setEnabled(False)
        self.activate_btn.setText("Active model")
        self.wizard().model_activated.emit(st.registered.sha256)
