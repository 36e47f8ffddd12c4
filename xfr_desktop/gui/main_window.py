"""The main window: cases on the left, the pair's views and channel table in the middle, score and controls right."""
from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QActionGroup, QColor, QIcon, QKeySequence, QPalette
from PySide6.QtWidgets import (QAbstractItemView, QApplication, QComboBox, QDockWidget, QDoubleSpinBox,
                               QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QListWidget, QListWidgetItem, QMainWindow, QMessageBox, QPlainTextEdit,
                               QProgressBar,
                               QPushButton, QScrollArea, QSlider, QFrame,
                               QSpinBox, QSplitter, QStyle, QTableView, QToolBar, QToolButton, QVBoxLayout,
                               QWidget)

from ..core.errors import ImageError, XfrError
from ..analysis import AnalysisOutcome, FaceChoiceRequest, LoadedResult, plan_analysis, save_recombined
from ..core.calibration import format_stored_likelihood_ratio
from .channels import COL_CONTRIB, ChannelTableModel, make_proxy
from .dialogs import (AboutDialog, FacePickerDialog, NewCaseDialog, present, show_error, show_error_for)
from .views import COLORMAPS, MAP_MODES, DisplaySettings, PairViews, SideSource
from .worker import AnalysisController, LoaderController

log = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
ICON_PATH = RESOURCES / "icons" / "xfr-desktop.png"
IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.bmp *.tif *.tiff *.webp *.pgm *.ppm);;All files (*)"
THRESHOLD_STEPS = 2000  # slider ticks over the slider's current τ range


def app_icon() -> QIcon:
    for name in ("xfr-desktop.png", "xfr-desktop.svg"):
        path = RESOURCES / "icons" / name
        if path.is_file():
            return QIcon(str(path))
    return QIcon()


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


class MainWindow(QMainWindow):
    analysis_finished = Signal(object)     # AnalysisOutcome
    analysis_failed = Signal(str, str)     # kind, message
    analysis_cancelled = Signal()
    result_shown = Signal(int)             # result id

    def __init__(self, store, model_path: str | None = None, device: str | None = None, engine: str = "fast"):
        super().__init__()
        self.store = store
        self.engine = engine   # explain_pair engine: "fast" (exact, default), "batched", "literal" (the paper's loop)
        self.model_path = model_path
        self.device = device
        self.case_id: int | None = None
        self.comparison_id: int | None = None
        self.record = None                  # the ResultRecord shown
        self.base_result = None             # PairExplanation as stored
        self.result = None                  # PairExplanation shown (recombined)
        self.face_choices: dict[int, dict[str, int]] = {}
        self._pending_choice: dict | None = None
        self._pending_drop: str | None = None
        self._photos: dict[str, np.ndarray] = {}
        # a result already in memory (just computed or saved): shown without reloading it
        self._fresh: tuple | None = None  # (record, result, faces)
        self._wanted_result: int | None = None  # the stored result being loaded in the background
        self.last_update_ms = 0.0
        self.display = DisplaySettings()

        self.setWindowTitle("XFR Desktop")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.resize(1280, 800)
        self.setMinimumSize(1024, 680)

        self.controller = AnalysisController(store, self)
        w = self.controller
        w.progress.connect(self._on_progress)
        w.finished.connect(self._on_finished)
        w.failed.connect(self._on_failed)
        w.cancelled.connect(self._on_cancelled)
        w.face_choice_needed.connect(self._on_face_choice)
        w.device_ready.connect(self._on_device)
        w.warmed_up.connect(self._on_warmed_up)
        self.loader = LoaderController(store, self)
        self.loader.loaded.connect(self._on_result_loaded)
        self.loader.failed.connect(self._on_result_load_failed)
        self.engine_ready = False  # torch and the engine imported (by the worker, in the background)

        self._table_timer = QTimer(self)
        self._table_timer.setSingleShot(True)
        self._table_timer.setInterval(120)
        self._table_timer.timeout.connect(self._refresh_channel_table)
        self._build_actions()
        self._build_central()
        self._build_case_dock()
        self._build_control_dock()
        self._build_status()
        self._build_menus()
        self._set_busy(False)
        self._update_result_controls()
        self.refresh_cases()
        QTimer.singleShot(0, self._warm_up)

    @Slot()
    def _warm_up(self) -> None:
        self.controller.warm_up(self.device)

    # --- construction ------------------------------------------------------------------------------------
    def _icon(self, pixmap: QStyle.StandardPixmap) -> QIcon:
        return self.style().standardIcon(pixmap)

    def _action(self, text, slot, shortcut=None, icon=None, tip=None) -> QAction:
        act = QAction(text, self)
        if icon is not None:
            act.setIcon(self._icon(icon))
        if shortcut:
            act.setShortcut(QKeySequence(shortcut))
        if tip:
            act.setStatusTip(tip)
            act.setToolTip(f"{tip} ({QKeySequence(shortcut).toString()})" if shortcut else tip)
        act.triggered.connect(slot)
        return act

    def _build_actions(self) -> None:
        SP = QStyle.StandardPixmap
        self.act_new_case = self._action("&New case…", self.new_case, "Ctrl+N", SP.SP_FileDialogNewFolder,
                                         "Create a case")
        self.act_import = self._action("&Import photos…", self.import_dialog, "Ctrl+O", SP.SP_DialogOpenButton,
                                       "Import two photos to compare")
        self.act_run = self._action("&Run analysis", self.run_analysis, "Ctrl+R", SP.SP_MediaPlay,
                                    "Analyse the selected comparison")
        self.act_cancel = self._action("&Cancel analysis", self.cancel_analysis, "Esc", SP.SP_MediaStop,
                                       "Stop the running analysis")
        self.act_save = self._action("&Save as new result", self.save_as_new_result, "Ctrl+S", SP.SP_DialogSaveButton,
                                     "Store the current threshold and top-k as a new result")
        self.act_export = self._action("&Export report…", self.export_report, "Ctrl+E", SP.SP_FileDialogDetailedView,
                                       "Export a signed PDF report of the case")
        self.act_model = self._action("Choose &model…", self.choose_model, None, SP.SP_DriveHDIcon,
                                      "Use another model file")
        self.act_prealigned = QAction("Photos are pre-aligned crops", self)
        self.act_prealigned.setCheckable(True)
        self.act_prealigned.setStatusTip("Skip face detection for new imports: the photos are already aligned crops")
        self.act_reset_zoom = self._action("Reset &zoom", self._reset_zoom, "Ctrl+0", SP.SP_BrowserReload,
                                           "Show the whole faces again")
        self.act_quit = self._action("&Quit", self.close, "Ctrl+Q")
        self.act_about = self._action("&About XFR Desktop", self.show_about, "F1", SP.SP_MessageBoxInformation)
        self.has_export = has_module("xfr_desktop.gui.export_dialog")
        self.has_wizard = has_module("xfr_desktop.gui.training_wizard")
        if not self.has_export:
            self.act_export.setToolTip("Export report (not available in this build)")

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        for a in (self.act_new_case, self.act_import, None, self.act_export, None, self.act_quit):
            m.addSeparator() if a is None else m.addAction(a)
        m = mb.addMenu("&Analysis")
        for a in (self.act_run, self.act_cancel, self.act_save, None, self.act_prealigned, self.act_model):
            m.addSeparator() if a is None else m.addAction(a)
        engines = m.addMenu("Residual &engine")
        self.engine_group = QActionGroup(self)
        for key, label in (("fast", "Fast (exact, default)"), ("batched", "Batched (full decoder passes)"),
                           ("literal", "Literal (the paper's loop; slow reference)")):
            act = engines.addAction(label)
            act.setCheckable(True)
            act.setChecked(key == self.engine)
            act.setData(key)
            self.engine_group.addAction(act)
        self.engine_group.triggered.connect(self._engine_chosen)
        m = mb.addMenu("&View")
        m.addAction(self.act_reset_zoom)
        m.addSeparator()
        m.addAction(self.case_dock.toggleViewAction())
        m.addAction(self.control_dock.toggleViewAction())
        m = mb.addMenu("&Tools")
        self.act_wizard = self._action("&Training wizard…", self.open_training_wizard, None,
                                       QStyle.StandardPixmap.SP_ComputerIcon, "Train or fine-tune a model")
        self.act_wizard.setEnabled(self.has_wizard)
        m.addAction(self.act_wizard)
        m = mb.addMenu("&Help")
        m.addAction(self._action("&Keyboard shortcuts", self.show_shortcuts, None,
                                 QStyle.StandardPixmap.SP_DialogHelpButton))
        m.addAction(self.act_about)

        tb = QToolBar("Main", self)
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        tb.setIconSize(QSize(20, 20))
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for a in (self.act_new_case, self.act_import, None, self.act_run, self.act_cancel, None, self.act_save,
                  self.act_export):
            tb.addSeparator() if a is None else tb.addAction(a)
        self.addToolBar(tb)

    def _build_central(self) -> None:
        self.views = PairViews()
        self.channel_model = ChannelTableModel(self)
        self.channel_proxy = make_proxy(self.channel_model, self)
        self.channel_table = QTableView()
        self.channel_table.setObjectName("channelTable")
        self.channel_table.setModel(self.channel_proxy)
        self.channel_table.setSortingEnabled(True)
        # by contribution: the used channels in weight order, similar first, dissimilar last (unused ones, 0,
        # in between); a click on the Weight header sorts every channel by weight
        self.channel_table.sortByColumn(COL_CONTRIB, Qt.SortOrder.DescendingOrder)
        self.channel_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.channel_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.channel_table.verticalHeader().setVisible(False)
        self.channel_table.verticalHeader().setDefaultSectionSize(22)
        self.channel_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.channel_table.setAlternatingRowColors(True)
        self.channel_table.selectionModel().currentRowChanged.connect(self._channel_row_changed)
        self.channel_caption = QLabel("Channels — select one to see the face region it reads")
        self.channel_caption.setObjectName("sectionCaption")
        bottom = QWidget()
        lay = QVBoxLayout(bottom)
        lay.setContentsMargins(0, 6, 0, 0)
        lay.setSpacing(4)
        lay.addWidget(self.channel_caption)
        lay.addWidget(self.channel_table)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.views)
        split.addWidget(bottom)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([430, 250])
        split.setChildrenCollapsible(False)
        holder = QWidget()
        outer = QVBoxLayout(holder)
        outer.setContentsMargins(8, 8, 8, 4)
        outer.addWidget(split)
        self.setCentralWidget(holder)

    def _build_case_dock(self) -> None:
        self.case_search = QLineEdit()
        self.case_search.setPlaceholderText("Search cases…")
        self.case_search.setClearButtonEnabled(True)
        self.case_search.textChanged.connect(self.refresh_cases)
        self.case_list = QListWidget()
        self.case_list.setObjectName("caseList")
        self.case_list.setWordWrap(True)
        self.case_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.case_list.currentItemChanged.connect(self._case_item_changed)
        self.case_info = QLabel("")
        self.case_info.setWordWrap(True)
        self.case_info.setObjectName("caseInfo")
        self.comparison_list = QListWidget()
        self.comparison_list.setObjectName("comparisonList")
        self.comparison_list.setWordWrap(True)
        self.comparison_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.comparison_list.currentItemChanged.connect(self._comparison_item_changed)
        self.result_combo = QComboBox()
        self.result_combo.setObjectName("resultCombo")
        self.result_combo.currentIndexChanged.connect(self._result_index_changed)
        new_btn = QPushButton(self._icon(QStyle.StandardPixmap.SP_FileDialogNewFolder), "New case")
        new_btn.clicked.connect(self.new_case)
        imp_btn = QPushButton(self._icon(QStyle.StandardPixmap.SP_DialogOpenButton), "Import photos")
        imp_btn.clicked.connect(self.import_dialog)
        buttons = QHBoxLayout()
        buttons.addWidget(new_btn)
        buttons.addWidget(imp_btn)
        panel = QWidget()
        lay = QVBoxLayout(panel)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.setSpacing(6)
        lay.addWidget(self.case_search)
        lay.addWidget(self.case_list, 3)
        lay.addWidget(self.case_info)
        lay.addLayout(buttons)
        lay.addSpacing(6)
        lay.addWidget(self._caption("Comparisons"))
        lay.addWidget(self.comparison_list, 2)
        lay.addWidget(self._caption("Stored results"))
        lay.addWidget(self.result_combo)
        self.case_dock = QDockWidget("Cases", self)
        self.case_dock.setObjectName("caseDock")
        self.case_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.case_dock.setWidget(panel)
        self.case_dock.setMinimumWidth(200)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.case_dock)

    @staticmethod
    def _caption(text: str) -> QLabel:
        label = QLabel(text)
        label.setObjectName("sectionCaption")
        return label

    def _build_control_dock(self) -> None:
        # score
        self.score_label = QLabel("—")
        self.threshold_value_label = QLabel("—")
        self.decision_label = QLabel("—")
        self.decision_label.setObjectName("decision")
        self.decision_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.lr_label = QLabel("—")
        self.lr_label.setToolTip("Likelihood ratio from the model's calibration (when the model has one)")
        self.lr_verbal_label = QLabel("")
        self.lr_verbal_label.setObjectName("verbal")
        self.lr_verbal_label.setWordWrap(True)
        self.lr_verbal_label.setVisible(False)
        self.model_label = QLabel("—")
        self.model_label.setWordWrap(True)
        self.timing_label = QLabel("—")
        score_box = QGroupBox("Score")
        form = QFormLayout(score_box)
        form.setVerticalSpacing(3)
        form.addRow(self.decision_label)
        form.addRow("Cosine score:", self.score_label)
        form.addRow("Threshold τ:", self.threshold_value_label)
        form.addRow("Likelihood ratio:", self.lr_label)
        form.addRow(self.lr_verbal_label)
        form.addRow("Model:", self.model_label)
        form.addRow("Computed:", self.timing_label)
        # display
        self.map_combo = QComboBox()
        for key, label in MAP_MODES.items():
            self.map_combo.addItem(label, key)
        self.map_combo.currentIndexChanged.connect(self._display_changed)
        for combo in (self.map_combo, self.result_combo):  # long entries must not widen the docks
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(14)
        self.cmap_combo = QComboBox()
        self.cmap_combo.addItems(COLORMAPS)
        self.cmap_combo.currentIndexChanged.connect(self._display_changed)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(int(self.display.opacity * 100))
        self.opacity_slider.valueChanged.connect(self._display_changed)
        display_box = QGroupBox("Display")
        form = QFormLayout(display_box)
        form.addRow("Map:", self.map_combo)
        form.addRow("Colours:", self.cmap_combo)
        form.addRow("Opacity:", self.opacity_slider)
        # parameters
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setObjectName("thresholdSlider")
        self.threshold_slider.setRange(0, THRESHOLD_STEPS)
        self.threshold_slider.setSingleStep(10)
        self.threshold_slider.setPageStep(100)
        self.threshold_range = (-1.0, 1.0)  # τ at the slider's ends; narrowed around each result's scores
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setObjectName("thresholdSpin")
        self.threshold_spin.setRange(-1.0, 1.0)
        self.threshold_spin.setDecimals(5)
        self.threshold_spin.setSingleStep(0.001)
        self.threshold_spin.setKeyboardTracking(False)
        self.threshold_slider.valueChanged.connect(self._threshold_slider_moved)
        self.threshold_spin.valueChanged.connect(self._threshold_spin_changed)
        self.topk_spin = QSpinBox()
        self.topk_spin.setObjectName("topkSpin")
        self.topk_spin.setRange(0, 4096)
        self.topk_spin.setSpecialValueText("all channels")
        self.topk_spin.setToolTip("Use only the k channels with the largest |weight| (0 = all)")
        self.topk_spin.valueChanged.connect(self._parameters_changed)
        self.reset_btn = QPushButton("Reset")
        self.reset_btn.setToolTip("Back to the model's threshold and all channels")
        self.reset_btn.clicked.connect(self.reset_parameters)
        self.save_btn = QPushButton(self._icon(QStyle.StandardPixmap.SP_DialogSaveButton), "Save as new result")
        self.save_btn.setToolTip("Store these parameters as a new result (the shown one is kept unchanged)")
        self.save_btn.clicked.connect(self.save_as_new_result)
        thr_row = QHBoxLayout()
        thr_row.addWidget(self.threshold_slider, 1)
        thr_row.addWidget(self.threshold_spin)
        params_box = QGroupBox("Parameters")
        form = QFormLayout(params_box)
        form.addRow("Threshold τ:", thr_row)
        form.addRow("Top-k:", self.topk_spin)
        btn_row = QHBoxLayout()
        btn_row.addWidget(self.reset_btn)
        btn_row.addWidget(self.save_btn, 1)
        form.addRow(btn_row)
        self.params_note = QLabel("")
        self.params_note.setObjectName("hint")
        self.params_note.setWordWrap(True)
        form.addRow(self.params_note)
        # the examiner's conclusion (goes into the report; every save is a new, audited row)
        self.conclusion_scope = QComboBox()
        self.conclusion_scope.addItem("Whole case", "case")
        self.conclusion_scope.addItem("This comparison", "comparison")
        self.conclusion_scope.currentIndexChanged.connect(self._load_conclusion)
        self.conclusion_text = QPlainTextEdit()
        self.conclusion_text.setObjectName("conclusionText")
        self.conclusion_text.setPlaceholderText("Your conclusion, in your own words…")
        self.conclusion_text.setFixedHeight(50)
        self.conclusion_scale = QLineEdit()
        self.conclusion_scale.setPlaceholderText("scale used, e.g. ENFSI verbal scale")
        self.conclusion_save = QPushButton(self._icon(QStyle.StandardPixmap.SP_DialogApplyButton), "Save conclusion")
        self.conclusion_save.clicked.connect(self.save_conclusion)
        self.conclusion_status = QLabel("")
        self.conclusion_status.setObjectName("hint")
        self.conclusion_status.setWordWrap(True)
        conclusion_box = QGroupBox("Examiner's conclusion")
        form = QFormLayout(conclusion_box)
        form.addRow("For:", self.conclusion_scope)
        form.addRow(self.conclusion_text)
        form.addRow("Scale:", self.conclusion_scale)
        form.addRow(self.conclusion_save)
        form.addRow(self.conclusion_status)
        panel = QWidget()
        lay = QVBoxLayout(panel)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.setSpacing(6)
        lay.addWidget(score_box)
        lay.addWidget(params_box)
        lay.addWidget(display_box)
        lay.addWidget(conclusion_box)
        lay.addStretch(1)
        scroll = QScrollArea()  # small screens: the controls scroll instead of being squeezed
        scroll.setWidget(panel)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.control_dock = QDockWidget("Explanation", self)
        self.control_dock.setObjectName("controlDock")
        self.control_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.control_dock.setWidget(scroll)
        # as wide as the controls need, plus room for the vertical scroll bar
        self.control_dock.setMinimumWidth(panel.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + 12)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.control_dock)
        self._docks_sized = False

    def _build_status(self) -> None:
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
        sb.addPermanentWidget(self.stage_label)
        sb.addPermanentWidget(self.progress_bar)
        sb.addPermanentWidget(self.cancel_btn)
        sb.addPermanentWidget(self.device_label)

    # --- cases -------------------------------------------------------------------------------------------
    @Slot()
    def refresh_cases(self, *_, select: int | None = None) -> None:
        select = self.case_id if select is None else select
        try:
            cases = self.store.list_cases(self.case_search.text().strip() or None)
        except XfrError as exc:
            show_error_for(self, "StoreError", str(exc))
            return
        self.case_list.blockSignals(True)
        self.case_list.clear()
        for case in cases:
            title = f"{case.number}" + (f" — {case.title}" if case.title else "")
            sub = " · ".join(p for p in (case.examiner, case.modified_at[:16].replace("T", " ")) if p)
            item = QListWidgetItem(f"{title}\n{sub}")
            item.setData(Qt.ItemDataRole.UserRole, case.id)
            item.setToolTip(case.notes or case.title or case.number)
            self.case_list.addItem(item)
            if case.id == select:
                self.case_list.setCurrentItem(item)
        self.case_list.blockSignals(False)

    @Slot()
    def new_case(self, *_, then=None) -> NewCaseDialog:
        dialog = NewCaseDialog(self, suggested_number=time.strftime("%Y-%m%d-%H%M"))
        dialog.accepted.connect(lambda: self._create_case(dialog.values(), then))  # GUI thread only
        return present(dialog)

    def _create_case(self, values: dict, then=None) -> None:
        try:
            case = self.store.create_case(**values)
        except XfrError as exc:
            show_error_for(self, "StoreError", str(exc))
            return
        self.case_search.clear()
        self.select_case(case.id)
        self.statusBar().showMessage(f"Case {case.number} created. Import two photos (Ctrl+O) or drop them here.",
                                     8000)
        if then is not None:
            then()

    def select_case(self, case_id: int) -> None:
        self.refresh_cases(select=case_id)
        self._load_case(case_id)

    @Slot(object, object)
    def _case_item_changed(self, current, _previous) -> None:
        if current is not None:
            self._load_case(int(current.data(Qt.ItemDataRole.UserRole)))

    def _load_case(self, case_id: int) -> None:
        try:
            case = self.store.get_case(case_id)
        except XfrError as exc:
            show_error_for(self, "StoreError", str(exc))
            return
        self.case_id = case.id
        self.setWindowTitle(f"XFR Desktop — case {case.number}")
        bits = [f"<b>{case.number}</b> {case.title}"]
        if case.examiner or case.organisation:
            bits.append(" · ".join(p for p in (case.examiner, case.organisation) if p))
        self.case_info.setText("<br>".join(bits))
        self.refresh_comparisons()

    def refresh_comparisons(self, select: int | None = None) -> None:
        self.comparison_list.blockSignals(True)
        self.comparison_list.clear()
        comparisons = self.store.list_comparisons(self.case_id) if self.case_id is not None else []
        target = None
        for comp in comparisons:
            try:
                na, nb = self.store.get_image(comp.image_a).original_name, self.store.get_image(comp.image_b).original_name
            except XfrError:
                na, nb = comp.image_a[:8], comp.image_b[:8]
            item = QListWidgetItem(f"#{comp.id}  {na}  ↔  {nb}\n{comp.status}"
                                   + (f" · {comp.n_results} result{'s' if comp.n_results != 1 else ''}"
                                      if comp.n_results else ""))
            item.setData(Qt.ItemDataRole.UserRole, comp.id)
            if comp.status_message:
                item.setToolTip(comp.status_message)
            self.comparison_list.addItem(item)
            if comp.id == select:
                target = item
        if target is None and comparisons and select is None:
            target = self.comparison_list.item(self.comparison_list.count() - 1)  # newest
        self.comparison_list.blockSignals(False)
        if target is not None:
            self.comparison_list.setCurrentItem(target)  # loads it
        else:
            self._load_comparison(None)

    # --- conclusion --------------------------------------------------------------------------------------
    def _conclusion_target(self) -> int | None:
        return self.comparison_id if self.conclusion_scope.currentData() == "comparison" else None

    @Slot()
    def _load_conclusion(self, *_) -> None:
        have_case = self.case_id is not None
        scoped = self.conclusion_scope.currentData() == "comparison"
        enabled = have_case and (not scoped or self.comparison_id is not None)
        for wdg in (self.conclusion_text, self.conclusion_scale, self.conclusion_save):
            wdg.setEnabled(enabled)
        record = None
        if enabled:
            target = self._conclusion_target()
            try:  # the newest conclusion of exactly this scope (the case's, or this comparison's)
                record = next((c for c in reversed(self.store.list_conclusions(self.case_id))
                               if c.comparison_id == target), None)
            except XfrError:
                record = None
        self.conclusion_text.setPlainText(record.text if record else "")
        self.conclusion_scale.setText((record.scale or "") if record else "")
        self.conclusion_status.setText(
            f"Saved {record.created_at[:16].replace('T', ' ')} UTC by {record.author}" if record else
            ("Not concluded yet." if enabled else ""))

    @Slot()
    def save_conclusion(self) -> None:
        if self.case_id is None:
            return
        text = self.conclusion_text.toPlainText().strip()
        if not text:
            self.conclusion_status.setText("Write the conclusion first.")
            return
        try:
            case = self.store.get_case(self.case_id)
            self.store.set_conclusion(self.case_id, text, scale=self.conclusion_scale.text().strip() or None,
                                      author=case.examiner or None, comparison_id=self._conclusion_target())
        except XfrError as exc:
            show_error_for(self, "StoreError", str(exc))
            return
        self._load_conclusion()
        self.statusBar().showMessage("Conclusion saved (earlier versions are kept in the audit trail).", 6000)

    @Slot(object, object)
    def _comparison_item_changed(self, current, _previous) -> None:
        self._load_comparison(None if current is None else int(current.data(Qt.ItemDataRole.UserRole)))

    def _load_comparison(self, comparison_id: int | None, select_result: int | None = None) -> None:
        self.comparison_id = comparison_id
        self._load_conclusion()
        self.result_combo.blockSignals(True)
        self.result_combo.clear()
        results = self.store.list_results(comparison_id) if comparison_id is not None else []
        for r in results:
            p = r.parameters or {}
            k = p.get("top_k")
            self.result_combo.addItem(
                f"#{r.id} · τ {r.threshold:.4f} · {'top-' + str(k) if k else 'all channels'} · "
                f"{r.created_at[:16].replace('T', ' ')}", r.id)
        self.result_combo.blockSignals(False)
        self._update_result_controls()
        if results:
            index = self.result_combo.findData(select_result) if select_result is not None else len(results) - 1
            self.result_combo.setCurrentIndex(max(index, 0))
            self._result_index_changed(self.result_combo.currentIndex())
        else:
            self._clear_result()
            if comparison_id is not None:
                comp = self.store.get_comparison(comparison_id)
                msg = comp.status_message or ""
                self.views.set_empty_message(
                    f"<h3>Comparison #{comparison_id}: {comp.status}</h3><p>{msg}</p>"
                    "<p>Press Ctrl+R to run the analysis.</p>")

    def _clear_result(self) -> None:
        self.record = self.base_result = self.result = None
        self.views.clear()
        self.channel_model.clear()
        self.lr_verbal_label.setVisible(False)
        for label in (self.score_label, self.threshold_value_label, self.lr_label, self.model_label,
                      self.timing_label):
            label.setText("—")
        self.decision_label.setText("—")
        self.decision_label.setProperty("verdict", "")
        self._restyle(self.decision_label)
        self._update_result_controls()

    @Slot(int)
    def _result_index_changed(self, index: int) -> None:
        if index < 0:
            return
        result_id = self.result_combo.itemData(index)
        if self.record is not None and self.record.id == result_id:
            return
        fresh, self._fresh = self._fresh, None
        if fresh is not None and fresh[0].id == result_id:
            self._wanted_result = None
            self.show_record(*fresh)
            return
        # decompressing residuals (and, the first time, importing torch) happens on the loader thread
        self._clear_result()
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

    # --- showing results ---------------------------------------------------------------------------------
    def show_record(self, record, result=None, faces: dict | None = None) -> None:
        """Show a stored result; ``result`` and ``faces`` are passed when it was just computed (no reload)."""
        from ..core.serialize import explanation_from_result

        if result is None:
            result = explanation_from_result(record)
        if faces is None:
            faces = record.faces()
        self.record = record
        self.base_result = result
        self.result = result
        model_threshold = (record.parameters or {}).get("model_threshold")
        self.set_threshold_range(result.score, result.threshold,
                                 *([model_threshold] if model_threshold is not None else []))
        self._set_parameter_controls(result.threshold, result.top_k)
        comp = self.store.get_comparison(record.comparison_id)
        sources = {}
        for side, sha in (("a", comp.image_a), ("b", comp.image_b)):
            extra = faces.get(side, {})
            sources[side] = SideSource(photo=self._photo(sha), box=extra.get("box"),
                                       landmarks=extra.get("landmarks"), transform=extra.get("transform"))
        self.views.result = None
        self.views.sources = sources
        self.views.show_result(result, self.display, reset_range=True)
        self.views.set_sources(sources)
        self.channel_model.set_result(result)
        self.topk_spin.setMaximum(len(result.products))
        self._update_score(result)
        p = record.parameters or {}
        lr = p.get("likelihood_ratio") or {}
        self.lr_label.setText(format_stored_likelihood_ratio({"value": lr.get("value")}))
        verbal = lr.get("verbal")
        self.lr_verbal_label.setText(f"{verbal[:1].upper()}{verbal[1:]}." if verbal else "")
        self.lr_verbal_label.setToolTip(f"LR {self.lr_label.text()}: {verbal}" if verbal else "")
        self.lr_verbal_label.setVisible(bool(verbal))
        model = record.model_name or "unknown model"
        sha = (record.model_sha256 or "")[:12]
        self.model_label.setText(f"{model}" + (f"<br><small>sha256 {sha}…</small>" if sha else ""))
        total = (record.timings or {}).get("total")
        where = p.get("device", result.device)
        self.timing_label.setText(f"{record.created_at[:19].replace('T', ' ')} UTC"
                                  + (f"<br><small>{total / 1000:.1f} s on {where}</small>" if total else ""))
        self._update_result_controls()
        self.result_shown.emit(record.id)

    def _photo(self, sha: str) -> np.ndarray | None:
        if sha not in self._photos:
            from ..core.imageio import load_image

            try:
                self._photos[sha] = load_image(self.store.image_path(sha))
            except XfrError as exc:
                log.warning("cannot show the stored photo %s: %s", sha[:12], exc)
                return None
        return self._photos[sha]

    def _update_score(self, result) -> None:
        self.score_label.setText(f"<b>{result.score:+.5f}</b>")
        self.threshold_value_label.setText(f"{result.threshold:.5f}")
        match = result.decision
        self.decision_label.setText("MATCH" if match else "NON-MATCH")
        self.decision_label.setToolTip(f"score {result.score:+.5f} {'≥' if match else '<'} τ {result.threshold:.5f}")
        self.decision_label.setProperty("verdict", "match" if match else "nonmatch")
        self._restyle(self.decision_label)

    @staticmethod
    def _restyle(widget: QWidget) -> None:
        widget.style().unpolish(widget)
        widget.style().polish(widget)

    # --- parameters --------------------------------------------------------------------------------------
    def set_threshold_range(self, *anchors: float) -> None:
        """Spread the slider over the τ values that matter: the scores and thresholds given, with a margin.

        Cosine scores of some models crowd near 1 (thresholds like 0.9989), where a fixed −1…1 slider would be
        useless; the spin box still takes any τ in −1…1 and widens the slider when needed.
        """
        lo, hi = min(anchors), max(anchors)
        margin = max(hi - lo, 0.001, 0.02 * max(abs(lo), abs(hi)))
        self.threshold_range = (max(-1.0, lo - margin), min(1.0, hi + margin))
        span = self.threshold_range[1] - self.threshold_range[0]
        self.threshold_spin.setSingleStep(max(10 ** np.floor(np.log10(span / 100)), 1e-5))

    def _slider_to_threshold(self, value: int) -> float:
        lo, hi = self.threshold_range
        return lo + (hi - lo) * value / THRESHOLD_STEPS

    def _threshold_to_slider(self, threshold: float) -> int:
        lo, hi = self.threshold_range
        if not lo <= threshold <= hi:  # typed outside the slider's span: widen it
            self.set_threshold_range(lo, hi, threshold)
            lo, hi = self.threshold_range
        return int(round((threshold - lo) / (hi - lo) * THRESHOLD_STEPS))

    def _set_parameter_controls(self, threshold: float, top_k: int | None) -> None:
        for w in (self.threshold_slider, self.threshold_spin, self.topk_spin):
            w.blockSignals(True)
        self.threshold_spin.setValue(float(threshold))
        self.threshold_slider.setValue(self._threshold_to_slider(float(threshold)))
        self.topk_spin.setValue(int(top_k or 0))
        for w in (self.threshold_slider, self.threshold_spin, self.topk_spin):
            w.blockSignals(False)

    @Slot(int)
    def _threshold_slider_moved(self, value: int) -> None:
        self.threshold_spin.blockSignals(True)
        self.threshold_spin.setValue(self._slider_to_threshold(value))
        self.threshold_spin.blockSignals(False)
        self._parameters_changed(defer_table=True)

    @Slot(float)
    def _threshold_spin_changed(self, value: float) -> None:
        self.threshold_slider.blockSignals(True)
        self.threshold_slider.setValue(self._threshold_to_slider(value))
        self.threshold_slider.blockSignals(False)
        self._parameters_changed(defer_table=True)

    @Slot()
    def _refresh_channel_table(self) -> None:
        if self.result is not None:
            self.channel_model.set_result(self.result)

    def current_parameters(self) -> tuple[float, int | None]:
        k = self.topk_spin.value()
        return float(self.threshold_spin.value()), (k if k > 0 else None)

    @Slot()
    def _parameters_changed(self, *_, defer_table: bool = False) -> None:
        """Recombine from the cached residuals and refresh every view (no model call).

        ``defer_table``: while the threshold is dragged the channel table (re-sorting it costs ~10 ms) follows
        when the slider pauses; the maps, score and decision follow every move.
        """
        if self.base_result is None:
            return
        t0 = time.perf_counter()
        threshold, top_k = self.current_parameters()
        self.result = self.base_result.recombine(threshold=threshold, channels=self.base_result.channels,
                                                 top_k=top_k)
        self.views.show_result(self.result, self.display)
        if defer_table:
            self._table_timer.start()
        else:
            self._table_timer.stop()
            self.channel_model.set_result(self.result)
        self._update_score(self.result)
        self._update_result_controls()
        self.last_update_ms = (time.perf_counter() - t0) * 1e3

    @Slot()
    def reset_parameters(self) -> None:
        if self.base_result is None:
            return
        model_threshold = (self.record.parameters or {}).get("model_threshold") if self.record else None
        self._set_parameter_controls(model_threshold if model_threshold is not None else self._model_default(),
                                     None)
        self._parameters_changed()

    def _model_default(self) -> float:
        """The threshold of the first result of this comparison (computed at the model's default)."""
        results = self.store.list_results(self.comparison_id) if self.comparison_id else []
        return float(results[0].threshold) if results else float(self.base_result.threshold)

    def _parameters_dirty(self) -> bool:
        if self.record is None or self.result is None:
            return False
        threshold, top_k = self.current_parameters()
        stored_k = (self.record.parameters or {}).get("top_k")
        return abs(threshold - float(self.record.threshold)) > 5e-7 or (top_k or None) != (stored_k or None)

    def _update_result_controls(self) -> None:
        have = self.result is not None
        for w in (self.threshold_slider, self.threshold_spin, self.topk_spin, self.reset_btn, self.map_combo,
                  self.cmap_combo, self.opacity_slider):
            w.setEnabled(have)
        dirty = self._parameters_dirty()
        self.save_btn.setEnabled(dirty)
        self.act_save.setEnabled(dirty)
        self.params_note.setText("Changed — not saved yet. Results are never overwritten: saving adds a new one."
                                 if dirty else "")
        self.params_note.setVisible(dirty)
        self.act_export.setEnabled(self.has_export and self.case_id is not None)
        busy = self.controller.busy
        self.act_run.setEnabled(not busy and self.comparison_id is not None)

    @Slot()
    def save_as_new_result(self) -> None:
        if not self._parameters_dirty():
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
        self.record = None
        self._fresh = (record, self.result, extra)
        self._load_comparison(old.comparison_id, select_result=record.id)
        self._fresh = None
        self.statusBar().showMessage(f"Saved as result #{record.id}; result #{old.id} is kept unchanged.", 8000)

    # --- display -----------------------------------------------------------------------------------------
    @Slot()
    def _display_changed(self, *_) -> None:
        self.display = DisplaySettings(mode=self.map_combo.currentData(), colormap=self.cmap_combo.currentText(),
                                       opacity=self.opacity_slider.value() / 100.0, channel=self.display.channel)
        self.views.set_display(self.display)

    @Slot(object, object)
    def _channel_row_changed(self, current, _previous) -> None:
        if not current.isValid():
            return
        channel = self.channel_model.channel_at(self.channel_proxy.mapToSource(current).row())
        self.select_channel(channel)

    def select_channel(self, channel: int | None) -> None:
        """Show one channel's residual region on both faces (None: back to the chosen map)."""
        self.display.channel = channel
        if channel is not None:
            self.map_combo.blockSignals(True)
            self.map_combo.setCurrentIndex(self.map_combo.findData("channel"))
            self.map_combo.blockSignals(False)
            if self.result is not None:
                w = float(self.result.products[channel] - self.result.T)
                self.channel_caption.setText(
                    f"Channel {channel}: weight {w:+.3e} ({'similar' if w > 0 else 'dissimilar'}) — its residual"
                    " region is shown on both faces")
        self._display_changed()

    @Slot()
    def _reset_zoom(self) -> None:
        self.views.reset_zoom()

    # --- import ------------------------------------------------------------------------------------------
    @Slot()
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

    def import_pair(self, path_a, path_b, prealigned: bool | None = None, run: bool = True,
                    ask_face: bool = True) -> int | None:
        """Copy both photos into the store, add a comparison to the current case and (by default) analyse it.

        ``ask_face``: when a photo shows several faces, ask which one (else the largest is used).
        """
        if self.case_id is None:
            self.new_case(then=lambda: self.import_pair(path_a, path_b, prealigned, run, ask_face))
            return None
        prealigned = self.act_prealigned.isChecked() if prealigned is None else bool(prealigned)
        shas = []
        for label, path in (("A", path_a), ("B", path_b)):
            try:
                shas.append(self.store.import_image(path, case_id=self.case_id))
            except ImageError as exc:
                show_error_for(self, "ImageError", f"Photo {label}: {exc}")
                return None
            except XfrError as exc:
                show_error_for(self, "StoreError", str(exc))
                return None
        try:
            comp = self.store.add_comparison(self.case_id, shas[0], shas[1],
                                             parameters={"prealigned": prealigned, "ask_face": bool(ask_face)})
        except XfrError as exc:
            show_error_for(self, "StoreError", str(exc))
            return None
        self.refresh_cases(select=self.case_id)
        self.refresh_comparisons(select=comp.id)
        if run:
            self.run_analysis()
        return comp.id

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
                                device=self.device, engine=self.engine)
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

    def _set_busy(self, busy: bool) -> None:
        self.progress_bar.setVisible(busy)
        self.cancel_btn.setVisible(busy)
        self.act_cancel.setEnabled(busy)
        self.act_run.setEnabled(not busy and self.comparison_id is not None)
        if busy:
            self.progress_bar.setValue(0)
            self.stage_label.setText("Starting…")
        else:
            self.stage_label.setText("")

    @Slot(str, float)
    def _on_progress(self, stage: str, fraction: float) -> None:
        self.stage_label.setText(stage)
        self.progress_bar.setValue(int(fraction * 1000))

    @Slot()
    def _on_warmed_up(self) -> None:
        self.engine_ready = True

    @Slot(str)
    def _on_device(self, text: str) -> None:
        self.device_label.setText(f"Device: {text}")

    @Slot(object)
    def _on_finished(self, outcome: AnalysisOutcome) -> None:
        self._set_busy(False)
        comp_id = outcome.job.comparison_id
        self.statusBar().showMessage(f"Analysis of comparison #{comp_id} finished in {outcome.seconds:.1f} s; "
                                     f"saved as result #{outcome.record.id}.", 10000)
        comp = self.store.get_comparison(comp_id)
        for side, sha in (("a", comp.image_a), ("b", comp.image_b)):
            if side in outcome.photos:
                self._photos[sha] = outcome.photos[side]
        self.refresh_cases(select=self.case_id)
        if comp_id == self.comparison_id:
            self.record = None
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
        index = pending["dialog"].face_index()
        comp_id = request.job.comparison_id
        self.face_choices.setdefault(comp_id, {})[request.side] = index
        if comp_id == self.comparison_id:
            self.run_analysis()

    # --- other actions -----------------------------------------------------------------------------------
    @Slot(QAction)
    def _engine_chosen(self, action: QAction) -> None:
        self.engine = action.data()
        self.statusBar().showMessage(f"Residual engine for new analyses: {self.engine}", 6000)

    @Slot()
    def choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a model file", "", "XFR models (*.pt);;All files (*)")
        if path:
            self.model_path = path
            self.statusBar().showMessage(f"Model for new analyses: {path}", 8000)

    @Slot()
    def export_report(self) -> None:
        if not self.has_export or self.case_id is None:
            return
        from .export_dialog import ExportDialog

        present(ExportDialog(self, self.store, self.case_id))

    @Slot()
    def open_training_wizard(self) -> None:
        if not self.has_wizard:
            return
        from .training_wizard import open_training_wizard

        open_training_wizard(self, self.store)

    @Slot()
    def show_shortcuts(self) -> QMessageBox:
        rows = [(a.shortcut().toString(QKeySequence.SequenceFormat.NativeText), a.text().replace("&", "").rstrip("…"))
                for a in (self.act_new_case, self.act_import, self.act_run, self.act_cancel, self.act_save,
                          self.act_export, self.act_reset_zoom, self.act_about, self.act_quit)]
        table = "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;&nbsp;</td><td>{t}</td></tr>" for k, t in rows)
        box = QMessageBox(QMessageBox.Icon.Information, "Keyboard shortcuts",
                          f"<table>{table}</table><p>Mouse: wheel zooms, drag pans (all aligned-face panels"
                          " move together); the crosshair follows the cursor.</p>", QMessageBox.StandardButton.Ok, self)
        return present(box)

    @Slot()
    def show_about(self) -> AboutDialog:
        info = ""
        if self.record is not None:
            info = f"{self.record.model_name} (sha256 {(self.record.model_sha256 or '')[:16]}…)"
        return present(AboutDialog(self, info))

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._docks_sized:  # docks take their share only once the window has a size
            self._docks_sized = True
            self.resizeDocks([self.case_dock, self.control_dock], [215, self.control_dock.minimumWidth()],
                             Qt.Orientation.Horizontal)

    def closeEvent(self, event) -> None:
        self.controller.shutdown()
        self.loader.shutdown()
        super().closeEvent(event)


STYLE = """
QWidget { font-size: 10pt; }
QGroupBox { font-weight: 600; border: 1px solid #c9ccd1; border-radius: 6px; margin-top: 10px; padding: 6px 6px 4px 6px; }
QGroupBox::title { subcontrol-origin: margin; left: 8px; padding: 0 4px; }
QLabel#sectionCaption { font-weight: 600; color: #3c4043; }
QLabel#hint { color: #8a5a00; }
QLabel#verbal { color: #3c4043; font-size: 9pt; }
QLabel#valueReadout { font-family: monospace; color: #3c4043; padding: 2px 4px; }
QLabel#emptyState { color: #5f6368; font-size: 11pt; }
QLabel#decision { font-size: 14pt; font-weight: 700; border-radius: 6px; padding: 4px; color: #5f6368; background: #eceff1; }
QLabel#decision[verdict="match"] { color: #ffffff; background: #2e7d32; }
QLabel#decision[verdict="nonmatch"] { color: #ffffff; background: #c62828; }
QListWidget::item { padding: 4px 2px; }
QDockWidget::title { padding: 4px 8px; font-weight: 600; }
"""


def apply_style(app: QApplication) -> None:
    app.setStyle("Fusion")
    palette = app.palette()
    palette.setColor(QPalette.ColorRole.Window, QColor("#f3f4f6"))
    palette.setColor(QPalette.ColorRole.Base, QColor("#ffffff"))
    palette.setColor(QPalette.ColorRole.AlternateBase, QColor("#f6f8fa"))
    palette.setColor(QPalette.ColorRole.Highlight, QColor("#1565c0"))
    app.setPalette(palette)
    app.setStyleSheet(STYLE)
