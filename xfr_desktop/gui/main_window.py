"""The main window: cases on the left, the maps in the middle (the rest in tabs under them), controls right.

It wires the parts together and follows one path per click (see docs/architecture.md): a click on Run builds a
job (:func:`~xfr_desktop.analysis.plan_analysis`), the analysis controller runs it on its thread, and the outcome
is shown through the :class:`~.explanation_state.ExplanationState` that the panels and views are bound to.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QApplication, QDialog, QDockWidget, QMainWindow, QMessageBox, QWidget

from ..analysis import AnalysisOutcome, FaceChoiceRequest, LoadedResult, plan_analysis, save_recombined
from ..core.errors import ImageError, XfrError
from ..core.trust_display import DEFAULT_JITTER
from .case_browser import CaseBrowser
from .channels import ChannelPanel
from .control_panel import ControlPanel
from .dialogs import FacePickerDialog, NewCaseDialog, present, show_error, show_error_for
from .examination_panel import ExaminationPanel
from .explanation_state import ExplanationState
from .style import app_icon
from .views import PairViews, SideSource
from .window_actions import WindowActions, has_module
from .window_layout import WindowLayout, build_centre
from .worker import AnalysisController, LoaderController

if TYPE_CHECKING:
    from ..core.imageio import Photo

log = logging.getLogger(__name__)


def side_source(photo: Photo | None, face: dict) -> SideSource:
    """One side's photo panel: the stored face (box, landmarks, transform in the original's pixels) moved onto
    the photo as decoded for display, which a huge JPEG is at 1/2, 1/4 or 1/8 of its size."""
    shown = face if photo is None else photo.face_to_pixels(face)
    return SideSource(photo=None if photo is None else photo.pixels, scale=1 if photo is None else photo.scale,
                      box=shown.get("box"), landmarks=shown.get("landmarks"), transform=shown.get("transform"),
                      agreement=shown.get("stable_agreement"))


QUIT_QUESTION = "An analysis is running. Quit and cancel it?"


def comparison_hint(comp) -> str:
    """What the empty view says about a comparison without results, and what the examiner can do about it."""
    if comp.removed:
        return (f"<h3>Comparison {comp.number}: removed</h3><p>Removed {comp.removed_at[:16].replace('T', ' ')} UTC by"
                f" {comp.removed_by}: {comp.removed_reason}</p><p>The report lists it as removed.</p>")
    head = f"<h3>Comparison {comp.number}: {comp.status}</h3><p>{comp.status_message or ''}</p>"
    if comp.status == "failed":
        return head + ("<p>Running it again (Ctrl+R) gives the same outcome unless its cause has changed (e.g. tick"
                       " <i>Analysis ▸ Photos are pre-aligned crops</i> for cropped faces). Otherwise remove it"
                       " (<i>Edit ▸ Remove comparison…</i>): the reason is recorded and the report lists it as"
                       " removed.</p>")
    return head + "<p>Press Ctrl+R to run the analysis.</p>"


class MainWindow(WindowActions, QMainWindow):
    analysis_finished = Signal(object)     # AnalysisOutcome
    analysis_failed = Signal(str, str)     # kind, message
    analysis_cancelled = Signal()
    result_shown = Signal(int)             # result id

    def __init__(self, store, model_path: str | None = None, device: str | None = None, engine: str = "fast",
                 settings=None, trust_jitter: int | None = DEFAULT_JITTER):
        """``settings``: the QSettings that keep the window's layout (None: the default layout, nothing kept);
        ``trust_jitter``: jitter draws of each analysis's stability check (0: none; None: no trust check)."""
        super().__init__()
        self.store = store
        self.engine = engine   # explain_pair engine: "fast" (exact, default), "batched", "literal" (the paper's loop)
        self.trust_jitter = trust_jitter
        self.model_path = model_path
        self.device = device
        self.case_id: int | None = None
        self.comparison_id: int | None = None
        self.comparison_removed = False   # the shown comparison was withdrawn (no runs, no assessments)
        self.compare_window = None        # the open "Compare faces" window, if any
        self.face_choices: dict[int, dict[str, int]] = {}
        self._pending_choice: dict | None = None
        self._pending_drop: str | None = None
        self._photos: dict[str, Photo] = {}   # sha256 -> the photo as shown, with the factor it is reduced by
        # a result already in memory (just computed or saved): shown without reloading it
        self._fresh: tuple | None = None  # (record, result, faces)
        self._wanted_result: int | None = None  # the stored result being loaded in the background
        self._quit_confirmed = False  # the examiner agreed to cancel a running analysis by quitting
        self._asking_in_close = False
        self._quit_box: QMessageBox | None = None
        self.engine_ready = False  # torch and the engine imported (by the worker, in the background)
        self.has_export = has_module("xfr_desktop.gui.export_dialog")
        self.has_wizard = has_module("xfr_desktop.gui.training_wizard")
        self.state = ExplanationState(self)
        self.state.changed.connect(self._state_changed)
        self.setWindowTitle("XFR Desktop")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.resize(1280, 800)
        self.setMinimumSize(1024, 680)
        self._start_workers()
        self._build(settings)
        self._set_busy(False)
        self._update_actions()
        self.refresh_cases()
        QTimer.singleShot(0, lambda: self.controller.warm_up(self.device))

    def _start_workers(self) -> None:
        self.controller = AnalysisController(self.store, self)
        c = self.controller
        for signal, slot in ((c.progress, self._on_progress), (c.finished, self._on_finished),
                             (c.failed, self._on_failed), (c.cancelled, self._on_cancelled),
                             (c.face_choice_needed, self._on_face_choice), (c.device_ready, self._on_device),
                             (c.warmed_up, self._on_warmed_up)):
            signal.connect(slot)
        self.loader = LoaderController(self.store, self)
        self.loader.loaded.connect(self._on_result_loaded)
        self.loader.failed.connect(self._on_result_load_failed)

    def _build(self, settings) -> None:
        self.build_actions()
        self.views = PairViews()
        self.channels = ChannelPanel(self.state)
        # under the maps, in tabs: the small panels, the model's channels, the examiner's own examination
        self.examination = ExaminationPanel(self.store)
        self.examination.message.connect(self.statusBar().showMessage)
        self.splitter = build_centre(self, self.views, self.channels, self.examination)
        self.cases = CaseBrowser(self.store)
        self.cases.search.textChanged.connect(self.refresh_cases)
        self.cases.case_chosen.connect(self._load_case)
        self.cases.comparison_chosen.connect(self._load_comparison)
        self.cases.result_chosen.connect(self._show_result_id)
        self.cases.report_choice.connect(self.choose_report_result)
        self.cases.new_case_requested.connect(self.new_case)
        self.cases.import_requested.connect(self.import_dialog)
        self.case_dock = self._dock("Cases", "caseDock", self.cases, Qt.DockWidgetArea.LeftDockWidgetArea, 200)
        self.controls = ControlPanel(self.state, self.store)
        self.controls.save_requested.connect(self.save_as_new_result)
        self.controls.reset_requested.connect(self.reset_parameters)
        self.controls.message.connect(self.statusBar().showMessage)
        self.control_dock = self._dock("Explanation", "controlDock", self.controls,
                                       Qt.DockWidgetArea.RightDockWidgetArea, self.controls.preferred_width())
        self.build_status()
        self.build_menus()
        self.window_layout = WindowLayout(self, self.splitter, self.case_dock, self.control_dock, settings)
        self.window_layout.restore()

    def _dock(self, title: str, name: str, widget: QWidget, area, min_width: int) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        dock.setWidget(widget)
        dock.setMinimumWidth(min_width)
        self.addDockWidget(area, dock)
        return dock

    # --- what is shown (the state's attributes, for callers and tests) -------------------------------------
    @property
    def record(self):
        return self.state.record

    @property
    def result(self):
        return self.state.result

    @property
    def display(self):
        return self.state.display

    # --- cases -------------------------------------------------------------------------------------------
    @Slot()
    def refresh_cases(self, *_, select: int | None = None) -> None:
        try:
            self.cases.show_cases(self.case_id if select is None else select)
        except XfrError as exc:
            show_error_for(self, "StoreError", str(exc))

    @Slot()
    def new_case(self, *_, then=None) -> NewCaseDialog | None:
        try:
            examiner = self.store.examiner_name()
        except XfrError as exc:
            show_error_for(self, "StoreError", str(exc))
            return None
        dialog = NewCaseDialog(self, suggested_number=time.strftime("%Y-%m%d-%H%M"), examiner=examiner)
        dialog.accepted.connect(lambda: self._create_case(dialog.values(), then))  # GUI thread only
        return present(dialog)

    def _create_case(self, values: dict, then=None) -> None:
        try:
            case = self.store.create_case(**values)
        except XfrError as exc:
            show_error_for(self, "StoreError", str(exc))
            return
        self.cases.search.clear()
        self.select_case(case.id)
        self.statusBar().showMessage(f"Case {case.number} created. Import two photos (Ctrl+O) or drop them here.",
                                     8000)
        if then is not None:
            then()

    def select_case(self, case_id: int) -> None:
        self.refresh_cases(select=case_id)
        self._load_case(case_id)

    @Slot(int)
    def _load_case(self, case_id: int) -> None:
        try:
            case = self.store.get_case(case_id)
        except XfrError as exc:
            show_error_for(self, "StoreError", str(exc))
            return
        self.case_id = case.id
        self.setWindowTitle(f"XFR Desktop — case {case.number}")
        self.cases.show_case_info(case)
        self.refresh_comparisons()

    def refresh_comparisons(self, select: int | None = None) -> None:
        self._load_comparison(self.cases.show_comparisons(self.case_id, select))

    @Slot(object)
    def _load_comparison(self, comparison_id: int | None, select_result: int | None = None) -> None:
        self.comparison_id = comparison_id
        self.comparison_removed = comparison_id is not None and self.store.get_comparison(comparison_id).removed
        self.controls.set_target(self.case_id, comparison_id)
        self.examination.set_target(self.case_id, comparison_id, self.comparison_removed)
        results = self.store.list_results(comparison_id) if comparison_id is not None else []
        shown = self.cases.show_results(results, select_result, self._report_result_id(comparison_id, results))
        self._update_actions()
        if shown is not None:
            self._show_result_id(shown)
            return
        self.state.clear()
        if comparison_id is not None:
            self.views.set_empty_message(comparison_hint(self.store.get_comparison(comparison_id)))

    def _report_result_id(self, comparison_id: int | None, results: list) -> int | None:
        if comparison_id is None or not results:
            return None
        chosen = self.store.report_result(comparison_id, include_blobs=False)
        return None if chosen is None else chosen.id

    @Slot(bool)
    def choose_report_result(self, use_shown: bool) -> None:
        """The examiner's choice of the result a report uses (unticked: back to the first full analysis)."""
        if self.comparison_id is None or self.record is None:
            return
        try:
            self.store.choose_report_result(self.comparison_id, self.record.id if use_shown else None)
        except XfrError as exc:
            show_error_for(self, "StoreError", str(exc))
        results = self.store.list_results(self.comparison_id)
        self.cases.show_results(results, self.record.id, self._report_result_id(self.comparison_id, results))

    # --- showing results ---------------------------------------------------------------------------------
    @Slot(int)
    def _show_result_id(self, result_id: int) -> None:
        if self.record is not None and self.record.id == result_id:
            return
        fresh, self._fresh = self._fresh, None
        if fresh is not None and fresh[0].id == result_id:
            self._wanted_result = None
            self.show_record(*fresh)
            return
        # decompressing residuals (and, the first time, importing torch) happens on the loader thread
        self.state.clear()
        self._wanted_result = int(result_id)
        self.statusBar().showMessage(f"Loading result #{result_id}…")
        self.views.set_empty_message(f"<h3>Loading result #{result_id}…</h3>")
        self.loader.request(int(result_id))

    @Slot(object)
    def _on_result_loaded(self, loaded: LoadedResult) -> None:
        if loaded.record.id != self._wanted_result:
            return  # the examiner has moved on
        self._wanted_result = None
        self._photos.update(loaded.photos)
        self.statusBar().clearMessage()
        self.show_record(loaded.record, loaded.result, loaded.faces)

    @Slot(int, str)
    def _on_result_load_failed(self, result_id: int, message: str) -> None:
        if result_id != self._wanted_result:
            return
        self._wanted_result = None
        self.statusBar().clearMessage()
        show_error(self, "The stored result cannot be shown", message,
                   "Run the analysis again (Ctrl+R); the stored data is left as it is.")

    def show_record(self, record, result=None, faces: dict | None = None) -> None:
        """Show a stored result; ``result`` and ``faces`` are passed when it was just computed (no reload)."""
        if result is None:
            from ..core.serialize import explanation_from_result

            result = explanation_from_result(record)
        comp = self.store.get_comparison(record.comparison_id)
        faces = record.faces() if faces is None else faces
        sources = {side: side_source(self._photo(sha), faces.get(side, {}))
                   for side, sha in (("a", comp.image_a), ("b", comp.image_b))}
        self.views.result = None
        self.views.sources = sources
        self.state.show(record, result)     # the views, table and controls follow
        self.views.set_sources(sources)
        self.controls.show_record_info(record, result)
        self.result_shown.emit(record.id)

    def _photo(self, sha: str) -> Photo | None:
        if sha not in self._photos:
            from ..core.imageio import load_display_photo

            try:
                self._photos[sha] = load_display_photo(self.store.image_path(sha))
            except XfrError as exc:
                log.warning("cannot show the stored photo %s: %s", sha[:12], exc)
                return None
        return self._photos[sha]

    @Slot(frozenset)
    def _state_changed(self, changes: frozenset) -> None:
        s = self.state
        if "result" in changes:
            if s.result is None:
                self.views.clear()
            else:
                self.views.show_result(s.result, s.display, reset_range="record" in changes)
        elif "display" in changes:
            self.views.set_display(s.display)
        self._update_actions()

    # --- parameters --------------------------------------------------------------------------------------
    @Slot()
    def reset_parameters(self) -> None:
        if self.state.base_result is None:
            return
        model_threshold = (self.record.parameters or {}).get("model_threshold") if self.record else None
        self.state.set_parameters(model_threshold if model_threshold is not None else self._model_default(), None)

    def _model_default(self) -> float:
        """The threshold of the first result of this comparison (computed at the model's default)."""
        results = self.store.list_results(self.comparison_id) if self.comparison_id else []
        return float(results[0].threshold) if results else float(self.state.base_result.threshold)

    @Slot()
    def save_as_new_result(self) -> None:
        if not self.state.dirty:
            return
        old = self.record
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            record, extra = save_recombined(self.store, old, self.result)
        except XfrError as exc:
            show_error_for(self, "StoreError", str(exc))
            return
        finally:
            QApplication.restoreOverrideCursor()
        self._fresh = (record, self.result, extra)
        # the comparison list is rebuilt too: its result count must include the new one
        self._load_comparison(self.cases.show_comparisons(self.case_id, old.comparison_id), select_result=record.id)
        self._fresh = None
        self.statusBar().showMessage(f"Saved as result #{record.id}; result #{old.id} is kept unchanged.", 8000)

    # --- import ------------------------------------------------------------------------------------------
    def import_pair(self, path_a, path_b, prealigned: bool | None = None, run: bool = True,
                    ask_face: bool = True) -> int | None:
        """Copy both photos into the store, add a comparison to the current case and (by default) analyse it.

        ``ask_face``: when a photo shows several faces, ask which one (else the largest is used).
        """
        if self.case_id is None:
            self.new_case(then=lambda: self.import_pair(path_a, path_b, prealigned, run, ask_face))
            return None
        prealigned = self.act_prealigned.isChecked() if prealigned is None else bool(prealigned)
        try:
            shas = [self._import_photo(label, path) for label, path in (("A", path_a), ("B", path_b))]
            comp = self.store.add_comparison(self.case_id, shas[0], shas[1],
                                             parameters={"prealigned": prealigned, "ask_face": bool(ask_face)})
        except XfrError as exc:
            show_error_for(self, "ImageError" if isinstance(exc, ImageError) else "StoreError", str(exc))
            return None
        self.refresh_cases(select=self.case_id)
        self.refresh_comparisons(select=comp.id)
        if run:
            self.run_analysis()
        return comp.id

    def _import_photo(self, label: str, path) -> str:
        try:
            return self.store.import_image(path, case_id=self.case_id)
        except ImageError as exc:  # say which of the two photos it is
            raise ImageError(f"Photo {label}: {exc}") from exc

    # --- analysis ----------------------------------------------------------------------------------------
    @Slot()
    def run_analysis(self) -> bool:
        if self.comparison_id is None:
            self.statusBar().showMessage("Import two photos first (Ctrl+O).", 6000)
            return False
        if self.controller.busy:
            return False
        try:
            job = plan_analysis(self.store, self.comparison_id, face_choices=self.face_choices.get(self.comparison_id),
                                prealigned=self.act_prealigned.isChecked(), model_path=self.model_path,
                                device=self.device, engine=self.engine, trust_jitter=self.trust_jitter)
        except XfrError as exc:
            show_error_for(self, "StoreError", str(exc))
            return False
        if not self.controller.start(job):
            return False
        self._set_busy(True)
        return True

    @Slot()
    def cancel_analysis(self) -> None:
        if self.controller.busy:
            self.controller.cancel()
            self.stage_label.setText("Cancelling…")

    @Slot(object)
    def _on_finished(self, outcome: AnalysisOutcome) -> None:
        self._set_busy(False)
        comp_id = outcome.job.comparison_id
        comp = self.store.get_comparison(comp_id)
        self.statusBar().showMessage(f"Analysis of comparison {comp.number} finished in {outcome.seconds:.1f} s; "
                                     f"saved as result #{outcome.record.id}.", 10000)
        for side, sha in (("a", comp.image_a), ("b", comp.image_b)):
            if side in outcome.photos:
                self._photos[sha] = outcome.photos[side]
        self.refresh_cases(select=self.case_id)
        if comp_id == self.comparison_id:
            self._fresh = (outcome.record, outcome.result, outcome.faces_extra)
            self.refresh_comparisons(select=comp_id)
            self._fresh = None
        self.analysis_finished.emit(outcome)

    @Slot(str, str)
    def _on_failed(self, kind: str, message: str) -> None:
        self._set_busy(False)
        self.statusBar().showMessage(f"Analysis failed: {message}", 10000)
        if self.case_id is not None:
            self.refresh_comparisons(select=self.comparison_id)
        show_error_for(self, kind, message)
        self.analysis_failed.emit(kind, message)

    @Slot()
    def _on_cancelled(self) -> None:
        self._set_busy(False)
        self.statusBar().showMessage("Analysis cancelled; nothing was saved for it.", 8000)
        if self.case_id is not None:
            self.refresh_comparisons(select=self.comparison_id)
        self.analysis_cancelled.emit()

    @Slot(object)
    def _on_face_choice(self, request: FaceChoiceRequest) -> None:
        self._set_busy(False)
        dialog = FacePickerDialog(self, request.image, request.boxes, request.name, request.side)
        dialog.accepted.connect(self._face_chosen)
        self._pending_choice = {"dialog": dialog, "request": request}
        present(dialog)

    @Slot()
    def _face_chosen(self) -> None:
        pending, self._pending_choice = self._pending_choice, None
        if pending is None:
            return
        request = pending["request"]
        comp_id = request.job.comparison_id
        self.face_choices.setdefault(comp_id, {})[request.side] = pending["dialog"].face_index()
        if comp_id == self.comparison_id:
            self.run_analysis()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.window_layout.shown()

    def close_without_asking(self) -> bool:
        """Close and cancel whatever runs (the program is ending anyway: demo, screenshot)."""
        self._quit_confirmed = True
        return self.close()

    def _ask_before_quitting(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Question, "Quit XFR Desktop", QUIT_QUESTION,
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setObjectName("quitDialog")
        box.setInformativeText("Nothing is saved for the running analysis; the case and its earlier results are "
                               "kept.")
        box.setDefaultButton(QMessageBox.StandardButton.No)
        # a bound slot, not a lambda holding the box: the box deletes itself on close (PySide crashed on that)
        self._quit_box = box
        box.finished.connect(self._quit_box_finished)
        self._asking_in_close = True
        try:
            present(box)
        finally:
            self._asking_in_close = False

    @Slot(int)
    def _quit_box_finished(self, code: int) -> None:
        box, self._quit_box = self._quit_box, None
        # Qt versions differ in the code a Yes click finishes with: ask the box which button it was
        clicked = box.clickedButton() if box is not None else None
        yes = clicked is not None and box.standardButton(clicked) == QMessageBox.StandardButton.Yes
        self._quit_answered(yes or code == QDialog.DialogCode.Accepted)

    def _quit_answered(self, quit_: bool) -> None:
        if quit_ and not self._quit_confirmed:
            self._quit_confirmed = True
            if not self._asking_in_close:  # answered later: close once the box has finished its click
                QTimer.singleShot(0, self, self.close)

    def closeEvent(self, event) -> None:
        if self.controller.busy and not self._quit_confirmed:
            self._ask_before_quitting()
            if not self._quit_confirmed:  # the box stays open; the analysis goes on until the examiner answers
                event.ignore()
                return
        if self.compare_window is not None:
            self.compare_window.close()
        self.controller.shutdown()
        self.loader.shutdown()
        self.window_layout.save()
        super().closeEvent(event)
