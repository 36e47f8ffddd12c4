"""The main window: cases on the left, the maps in the middle (the rest in tabs under them), controls right.

It wires the parts together and follows one path per click (see docs/architecture.md): a click on Run builds a
job (:func:`~xfr_desktop.analysis.plan_analysis`), the analysis controller runs it on its thread, and the new
result is shown by one call, :meth:`MainWindow.show_new_result`: the lists are rebuilt with it selected, then it
goes into the :class:`~.explanation_state.ExplanationState` that the panels and views are bound to.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QApplication, QMainWindow

from ..analysis import (AnalysisOutcome, FaceChoiceRequest, LoadedResult, plan_analysis, reset_threshold,
                        save_recombined)
from ..casework import comparison_results, import_photos
from ..core.errors import ImageError, XfrError
from ..core.trust_display import DEFAULT_JITTER
from .case_browser import CaseBrowser
from .channels import ChannelPanel
from .control_panel import ControlPanel
from .dialogs import FacePickerDialog, NewCaseDialog, present, show_error, show_error_for
from .examination_panel import ExaminationPanel
from .explanation_state import ExplanationState
from .quit_question import QuitQuestion
from .side_source import side_source
from .style import app_icon
from .views import PairViews
from .window_actions import WindowActions
from .window_layout import WindowLayout, add_dock, build_centre
from .worker import AnalysisController, LoaderController

if TYPE_CHECKING:
    from ..core.imageio import Photo

log = logging.getLogger(__name__)


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
        self._wanted_result: int | None = None  # the stored result being loaded in the background
        self.quit_question = QuitQuestion(self)
        self.engine_ready = False  # torch and the engine imported (by the worker, in the background)
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
        self.views = PairViews(self.state)
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
        self.case_dock = add_dock(self, "Cases", "caseDock", self.cases, Qt.DockWidgetArea.LeftDockWidgetArea, 200)
        self.controls = ControlPanel(self.state, self.store)
        self.controls.save_requested.connect(self.save_as_new_result)
        self.controls.reset_requested.connect(self.reset_parameters)
        self.controls.message.connect(self.statusBar().showMessage)
        self.control_dock = add_dock(self, "Explanation", "controlDock", self.controls,
                                     Qt.DockWidgetArea.RightDockWidgetArea, self.controls.preferred_width())
        self.build_status()
        self.build_menus()
        self.window_layout = WindowLayout(self, self.splitter, self.case_dock, self.control_dock, settings)
        self.window_layout.restore()

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
    def _load_comparison(self, comparison_id: int | None) -> None:
        """The comparison picked (or listed anew): its selected result is loaded, else the view says why not."""
        shown = self._list_comparison(comparison_id)
        if shown is not None:
            self._show_result_id(shown)
            return
        self.state.clear()
        if comparison_id is not None:
            self.views.set_empty_message(comparison_hint(self.store.get_comparison(comparison_id)))

    def _list_comparison(self, comparison_id: int | None, select_result: int | None = None) -> int | None:
        """Make it the current comparison and list its results; returns the result selected (None: none)."""
        self.comparison_id = comparison_id
        self.comparison_removed = comparison_id is not None and self.store.get_comparison(comparison_id).removed
        self.controls.set_target(self.case_id, comparison_id)
        self.examination.set_target(self.case_id, comparison_id, self.comparison_removed)
        results, report_id = comparison_results(self.store, comparison_id) if comparison_id is not None else ([], None)
        shown = self.cases.show_results(results, select_result, report_id)
        self._update_actions()
        return shown

    @Slot(bool)
    def choose_report_result(self, use_shown: bool) -> None:
        """The examiner's choice of the result a report uses (unticked: back to the first full analysis)."""
        if self.comparison_id is None or self.record is None:
            return
        try:
            self.store.choose_report_result(self.comparison_id, self.record.id if use_shown else None)
        except XfrError as exc:
            show_error_for(self, "StoreError", str(exc))
        results, report_id = comparison_results(self.store, self.comparison_id)
        self.cases.show_results(results, self.record.id, report_id)

    # --- showing results ---------------------------------------------------------------------------------
    @Slot(int)
    def _show_result_id(self, result_id: int) -> None:
        """A stored result the examiner picked: loaded on the loader thread, shown when it arrives."""
        if self.record is not None and self.record.id == result_id:
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

    def show_new_result(self, record, result, faces: dict) -> None:
        """A result just computed or saved, as it is in memory (no reload): the case's lists are rebuilt with it
        selected, then it is shown."""
        self._list_comparison(self.cases.show_comparisons(self.case_id, record.comparison_id), select_result=record.id)
        self.show_record(record, result, faces)

    def show_record(self, record, result=None, faces: dict | None = None) -> None:
        """Show a stored result; ``result`` and ``faces`` are passed when it is in memory already."""
        if result is None:
            from ..core.serialize import explanation_from_result

            result = explanation_from_result(record)
        self._wanted_result = None   # a result still loading is no longer wanted
        comp = self.store.get_comparison(record.comparison_id)
        faces = record.faces() if faces is None else faces
        sources = {side: side_source(self._photo(sha), faces.get(side, {}))
                   for side, sha in (("a", comp.image_a), ("b", comp.image_b))}
        self.state.show(record, result, sources)     # the views, table and controls follow
        self.result_shown.emit(record.id)

    @Slot(frozenset)
    def _state_changed(self, _changes: frozenset) -> None:
        self._update_actions()   # Save, Compare and Export follow what is shown

    def _photo(self, sha: str) -> Photo | None:
        if sha not in self._photos:
            from ..core.imageio import load_display_photo

            try:
                self._photos[sha] = load_display_photo(self.store.image_path(sha))
            except XfrError as exc:
                log.warning("cannot show the stored photo %s: %s", sha[:12], exc)
                return None
        return self._photos[sha]

    # --- parameters --------------------------------------------------------------------------------------
    @Slot()
    def reset_parameters(self) -> None:
        if self.record is not None:
            self.state.set_parameters(reset_threshold(self.store, self.record), None)

    @Slot()
    def save_as_new_result(self) -> None:
        if not self.state.dirty:
            return
        old, result = self.record, self.result
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            record, extra = save_recombined(self.store, old, result)
        except XfrError as exc:
            show_error_for(self, "StoreError", str(exc))
            return
        finally:
            QApplication.restoreOverrideCursor()
        self.show_new_result(record, result, extra)
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
            shas = import_photos(self.store, self.case_id, path_a, path_b)
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
            self.show_new_result(outcome.record, outcome.result, outcome.faces_extra)
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
        self.quit_question.confirmed = True
        return self.close()

    def closeEvent(self, event) -> None:
        if not self.quit_question.may_close(self.controller.busy):
            event.ignore()   # the question stays open; the analysis goes on until the examiner answers
            return
        if self.compare_window is not None:
            self.compare_window.close()
        self.controller.shutdown()
        self.loader.shutdown()
        self.window_layout.save()
        super().closeEvent(event)
