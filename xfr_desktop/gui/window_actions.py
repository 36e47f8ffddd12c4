"""The main window's actions, menus, toolbar and status bar, and the small commands behind them (a mixin of
:class:`~.main_window.MainWindow`: the window keeps the flow of cases and results, this keeps the chrome)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QDialog, QFileDialog, QLabel, QMessageBox, QProgressBar, QStyle, QToolBar, QToolButton

from .dialogs import AboutDialog, present

SP = QStyle.StandardPixmap
IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.bmp *.tif *.tiff *.webp *.pgm *.ppm);;All files (*)"
ENGINES = (("fast", "Fast (exact, default)"), ("batched", "Batched (full decoder passes)"),
           ("literal", "Literal (the paper's loop; slow reference)"))


class WindowActions:
    """Needs of the window: ``store``, ``state``, ``controller``, ``case_id``, ``comparison_id``, ``engine``,
    ``model_path``, ``views``, the docks, and the slots the actions trigger."""

    def _action(self, text, slot, shortcut=None, icon=None, tip=None) -> QAction:
        act = QAction(text, self)
        if icon is not None:
            act.setIcon(self.style().standardIcon(icon))
        if shortcut:
            act.setShortcut(QKeySequence(shortcut))
        if tip:
            act.setStatusTip(tip)
            act.setToolTip(f"{tip} ({QKeySequence(shortcut).toString()})" if shortcut else tip)
        act.triggered.connect(slot)
        return act

    def build_actions(self) -> None:
        a = self._action
        self.act_new_case = a("&New case…", self.new_case, "Ctrl+N", SP.SP_FileDialogNewFolder, "Create a case")
        self.act_import = a("&Import photos…", self.import_dialog, "Ctrl+O", SP.SP_DialogOpenButton,
                            "Import two photos to compare")
        self.act_run = a("&Run analysis", self.run_analysis, "Ctrl+R", SP.SP_MediaPlay,
                         "Analyse the selected comparison")
        self.act_cancel = a("&Cancel analysis", self.cancel_analysis, "Esc", SP.SP_MediaStop,
                            "Stop the running analysis")
        self.act_save = a("&Save as new result", self.save_as_new_result, "Ctrl+S", SP.SP_DialogSaveButton,
                          "Store the current threshold and top-k as a new result")
        self.act_export = a("&Export report…", self.export_report, "Ctrl+E", SP.SP_FileDialogDetailedView,
                            "Export a signed PDF report of the case")
        self.act_model = a("Choose &model…", self.choose_model, None, SP.SP_DriveHDIcon, "Use another model file")
        self.act_prealigned = QAction("Photos are pre-aligned crops", self)
        self.act_prealigned.setCheckable(True)
        self.act_prealigned.setStatusTip("Skip face detection for new imports: the photos are already aligned crops")
        self.act_reset_zoom = a("Reset &zoom", self.views_reset_zoom, "Ctrl+0", SP.SP_BrowserReload,
                                "Show the whole faces again")
        self.act_quit = a("&Quit", self.close, "Ctrl+Q")
        self.act_compare = a("Compare &faces…", self.open_compare, "Ctrl+K", SP.SP_FileDialogContentsView,
                             "Side by side, blended and wiped faces and originals; annotations")
        self.act_preferences = a("&Preferences…", self.show_preferences, "Ctrl+,", SP.SP_FileDialogInfoView,
                                 "Your name, used for every audited action")
        self.act_remove = a("&Remove comparison…", self.remove_comparison, None, SP.SP_TrashIcon,
                            "Withdraw the selected comparison with a recorded reason")
        self.act_create_key = a("Create &signing key…", self.create_signing_key, None, SP.SP_DialogSaveButton,
                                "A key file and certificate to sign your reports")
        self.act_verify = a("&Verify signed report…", self.verify_report, None, SP.SP_DialogApplyButton,
                            "Check a signed report's signatures")
        self.act_cosign = a("C&o-sign report…", self.cosign_report, None, SP.SP_DialogYesButton,
                            "Add your signature as the reviewer (ACE-V) to a report its examiner signed")
        self.act_about = a("&About XFR Desktop", self.show_about, "F1", SP.SP_MessageBoxInformation)
        self.act_wizard = a("&Training wizard…", self.open_training_wizard, None, SP.SP_ComputerIcon,
                            "Train or fine-tune a model")

    def build_menus(self) -> None:
        mb = self.menuBar()
        _fill(mb.addMenu("&File"), (self.act_new_case, self.act_import, None, self.act_export, None, self.act_quit))
        _fill(mb.addMenu("&Edit"), (self.act_remove, None, self.act_preferences))
        m = mb.addMenu("&Analysis")
        _fill(m, (self.act_run, self.act_cancel, self.act_save, None, self.act_prealigned, self.act_model))
        engines = m.addMenu("Residual &engine")
        self.engine_group = QActionGroup(self)
        for key, label in ENGINES:
            act = engines.addAction(label)
            act.setCheckable(True)
            act.setChecked(key == self.engine)
            act.setData(key)
            self.engine_group.addAction(act)
        self.engine_group.triggered.connect(self._engine_chosen)
        _fill(mb.addMenu("&View"), (self.act_compare, self.act_reset_zoom, None, self.case_dock.toggleViewAction(),
                                    self.control_dock.toggleViewAction()))
        _fill(mb.addMenu("&Tools"), (self.act_create_key, self.act_verify, self.act_cosign, None, self.act_wizard))
        _fill(mb.addMenu("&Help"), (self._action("&Keyboard shortcuts", self.show_shortcuts, None,
                                                 SP.SP_DialogHelpButton), self.act_about))
        tb = QToolBar("Main", self)
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        tb.setIconSize(QSize(20, 20))
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        _fill(tb, (self.act_new_case, self.act_import, None, self.act_run, self.act_cancel, None, self.act_save,
                   self.act_compare, self.act_export))
        self.addToolBar(tb)

    def build_status(self) -> None:
        sb = self.statusBar()
        self.stage_label = QLabel("")
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setFixedWidth(220)
        self.progress_bar.setTextVisible(False)
        self.cancel_btn = QToolButton()
        self.cancel_btn.setDefaultAction(self.act_cancel)
        self.cancel_btn.setAutoRaise(True)
        self.device_label = QLabel("Device: …")
        self.device_label.setObjectName("deviceLabel")
        self.examiner_label = QLabel("")
        self.examiner_label.setObjectName("examinerLabel")
        self.show_examiner()
        for widget in (self.stage_label, self.progress_bar, self.cancel_btn, self.examiner_label, self.device_label):
            sb.addPermanentWidget(widget)

    # --- follow the state and the worker ------------------------------------------------------------------
    def _update_actions(self) -> None:
        self.act_save.setEnabled(self.state.dirty)
        self.act_export.setEnabled(self.case_id is not None)
        self.act_compare.setEnabled(self.state.result is not None)
        self._enable_run()

    def _enable_run(self) -> None:
        """Run and Remove need a comparison that is not removed (and Run an idle worker)."""
        active = self.comparison_id is not None and not self.comparison_removed
        self.act_run.setEnabled(active and not self.controller.busy)
        self.act_remove.setEnabled(active and not self.controller.busy)

    def _set_busy(self, busy: bool) -> None:
        self.progress_bar.setVisible(busy)
        self.cancel_btn.setVisible(busy)
        self.act_cancel.setEnabled(busy)
        self._enable_run()
        if busy:
            self.progress_bar.setValue(0)
        self.stage_label.setText("Starting…" if busy else "")

    def _on_progress(self, stage: str, fraction: float) -> None:
        self.stage_label.setText(stage)
        self.progress_bar.setValue(int(fraction * 1000))

    def _on_warmed_up(self) -> None:
        self.engine_ready = True

    def _on_device(self, text: str) -> None:
        self.device_label.setText(f"Device: {text}")

    # --- photos in: file dialogs and drag and drop (both end in import_pair) -----------------------------
    def import_dialog(self) -> None:
        if self.case_id is None:
            self.new_case(then=self.import_dialog)
            return
        paths, _ = QFileDialog.getOpenFileNames(self, "Import two photos (A and B)", "", IMAGE_FILTER)
        if not paths:
            return
        if len(paths) == 1:
            second, _ = QFileDialog.getOpenFileName(self, "Import photo B", str(Path(paths[0]).parent), IMAGE_FILTER)
            if not second:
                return
            paths.append(second)
        if len(paths) > 2:
            self.statusBar().showMessage("Only the first two photos are used.", 6000)
        self.import_pair(paths[0], paths[1])

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        event.acceptProposedAction()
        self.handle_dropped_files(paths)

    def handle_dropped_files(self, paths: list[str]) -> None:
        """Two files: a pair. One file: photo A now, the next dropped file becomes B."""
        if not paths:
            return
        if self._pending_drop is not None:
            paths = [self._pending_drop] + paths
            self._pending_drop = None
        if len(paths) == 1:
            self._pending_drop = paths[0]
            self.statusBar().showMessage(f"Photo A: {Path(paths[0]).name}. Drop photo B to compare.")
            return
        self.import_pair(paths[0], paths[1])

    # --- small commands -----------------------------------------------------------------------------------
    def views_reset_zoom(self) -> None:
        self.views.reset_zoom()

    def _engine_chosen(self, action: QAction) -> None:
        self.engine = action.data()
        self.statusBar().showMessage(f"Residual engine for new analyses: {self.engine}", 6000)

    def choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a model file", "", "XFR models (*.pt);;All files (*)")
        if path:
            self.model_path = path
            self.statusBar().showMessage(f"Model for new analyses: {path}", 8000)

    def export_report(self) -> QDialog | None:
        if self.case_id is None:
            return None
        from .export_dialog import ExportDialog

        return present(ExportDialog(self, self.store, self.case_id))

    def open_compare(self):
        """The compare window of the shown result's comparison (photos at full resolution, annotations)."""
        if self.state.result is None or self.record is None:
            return None
        from .compare_window import CompareWindow, PairImages

        sources, result = self.views.sources, self.state.result
        images = PairImages(photos={s: sources[s].photo for s in "ab"},
                            aligned={s: getattr(result, s).aligned for s in "ab"},
                            transforms={s: sources[s].transform for s in "ab"},
                            scales={s: sources[s].scale for s in "ab"})
        self.compare_window = CompareWindow(self.store, self.record.comparison_id, images,
                                            read_only=self.comparison_removed)
        self.compare_window.show()
        return self.compare_window

    def show_examiner(self) -> None:
        name = self.store.examiner_name()
        self.examiner_label.setText(f"Examiner: {name}" if name else "Examiner: not set (Edit ▸ Preferences…)")

    def show_preferences(self) -> QDialog:
        from .examination_dialogs import PreferencesDialog

        dialog = PreferencesDialog(self, self.store)
        dialog.accepted.connect(self.show_examiner)
        return present(dialog)

    def remove_comparison(self) -> QDialog | None:
        if self.comparison_id is None or self.controller.busy:
            return None
        from .examination_dialogs import RemoveComparisonDialog

        item = self.cases.comparison_list.currentItem()
        dialog = RemoveComparisonDialog(self, self.store, self.comparison_id,
                                        item.text().split("\n")[0] if item is not None else "")
        dialog.accepted.connect(lambda cid=self.comparison_id: self.refresh_comparisons(select=cid))
        return present(dialog)

    def create_signing_key(self) -> QDialog:
        from .export_dialog import remember_key_file
        from .signing_dialogs import KeyCreationDialog

        dialog = KeyCreationDialog.for_case(self, self.store, self.case_id)
        dialog.key_created.connect(remember_key_file)   # the next export offers it
        return present(dialog)

    def verify_report(self) -> QDialog:
        from .signing_dialogs import VerifyReportDialog

        return present(VerifyReportDialog(self))

    def cosign_report(self) -> QDialog:
        from .signing_dialogs import CosignReportDialog

        return present(CosignReportDialog(self, self.store, self.case_id))

    def open_training_wizard(self) -> None:
        from .training_wizard import open_training_wizard

        open_training_wizard(self, self.store)

    def show_shortcuts(self) -> QMessageBox:
        rows = [(a.shortcut().toString(QKeySequence.SequenceFormat.NativeText), a.text().replace("&", "").rstrip("…"))
                for a in (self.act_new_case, self.act_import, self.act_run, self.act_cancel, self.act_save,
                          self.act_export, self.act_compare, self.act_preferences, self.act_reset_zoom, self.act_about,
                          self.act_quit)]
        table = "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;&nbsp;</td><td>{t}</td></tr>" for k, t in rows)
        box = QMessageBox(QMessageBox.Icon.Information, "Keyboard shortcuts",
                          f"<table>{table}</table><p>Mouse: wheel zooms, drag pans (all aligned-face panels"
                          " move together); the crosshair follows the cursor.</p>", QMessageBox.StandardButton.Ok, self)
        return present(box)

    def show_about(self) -> AboutDialog:
        record = self.state.record
        info = f"{record.model_name} (sha256 {(record.model_sha256 or '')[:16]}…)" if record is not None else ""
        return present(AboutDialog(self, info))


def _fill(target, actions) -> None:
    """Add actions to a menu or toolbar in order; None is a separator."""
    for act in actions:
        target.addSeparator() if act is None else target.addAction(act)
