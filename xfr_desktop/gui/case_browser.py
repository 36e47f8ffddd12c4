"""The left-hand panel: cases (with a search field), the chosen case's comparisons and their stored results.

It lists what the store holds and says what the examiner picked (``case_chosen``, ``comparison_chosen``,
``result_chosen``); the window decides what to load. Lists are rebuilt when the store changes; a rebuild (and the
selection restored after it) is not the examiner's choice, so it emits nothing.
"""
from __future__ import annotations

from contextlib import contextmanager

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem,
                               QPushButton, QStyle, QVBoxLayout, QWidget)

from ..core.errors import XfrError

ID_ROLE = Qt.ItemDataRole.UserRole


def _caption(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("sectionCaption")
    return label


def _list(name: str) -> QListWidget:
    widget = QListWidget()
    widget.setObjectName(name)
    widget.setWordWrap(True)
    widget.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return widget


class CaseBrowser(QWidget):
    case_chosen = Signal(int)
    comparison_chosen = Signal(object)     # comparison id, or None when the list became empty
    result_chosen = Signal(int)
    report_choice = Signal(bool)           # the examiner ticked / unticked "use this result in the report"
    new_case_requested = Signal()
    import_requested = Signal()

    def __init__(self, store, parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store
        self._rebuilding = False
        self.report_id: int | None = None   # the result the report uses for the listed comparison
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search cases…")
        self.search.setClearButtonEnabled(True)
        self.case_list = _list("caseList")
        self.case_info = QLabel("")
        self.case_info.setWordWrap(True)
        self.case_info.setObjectName("caseInfo")
        self.comparison_list = _list("comparisonList")
        self.result_combo = QComboBox()
        self.result_combo.setObjectName("resultCombo")
        self.result_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.result_combo.setMinimumContentsLength(14)  # long entries must not widen the dock
        self.report_check = QCheckBox("Use this result in the report")
        self.report_check.setObjectName("reportResultCheck")
        self.report_check.setToolTip("Unticked: the report uses the first full analysis of the comparison")
        self.report_check.setEnabled(False)
        self._layout()
        self.case_list.currentItemChanged.connect(self._case_item_changed)
        self.comparison_list.currentItemChanged.connect(self._comparison_item_changed)
        self.result_combo.currentIndexChanged.connect(self._result_index_changed)
        self.report_check.clicked.connect(self.report_choice)   # clicks only: showing a result sets it silently

    def _layout(self) -> None:
        icon = self.style().standardIcon
        new_btn = QPushButton(icon(QStyle.StandardPixmap.SP_FileDialogNewFolder), "New case")
        new_btn.clicked.connect(self.new_case_requested)
        imp_btn = QPushButton(icon(QStyle.StandardPixmap.SP_DialogOpenButton), "Import photos")
        imp_btn.clicked.connect(self.import_requested)
        buttons = QHBoxLayout()
        buttons.addWidget(new_btn)
        buttons.addWidget(imp_btn)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.setSpacing(6)
        lay.addWidget(self.search)
        lay.addWidget(self.case_list, 3)
        lay.addWidget(self.case_info)
        lay.addLayout(buttons)
        lay.addSpacing(6)
        lay.addWidget(_caption("Comparisons"))
        lay.addWidget(self.comparison_list, 2)
        lay.addWidget(_caption("Stored results"))
        lay.addWidget(self.result_combo)
        lay.addWidget(self.report_check)

    @contextmanager
    def _rebuild(self):
        self._rebuilding = True
        try:
            yield
        finally:
            self._rebuilding = False

    # --- the examiner's choices -------------------------------------------------------------------------
    @Slot(object, object)
    def _case_item_changed(self, current, _previous) -> None:
        if current is not None and not self._rebuilding:
            self.case_chosen.emit(int(current.data(ID_ROLE)))

    @Slot(object, object)
    def _comparison_item_changed(self, current, _previous) -> None:
        if not self._rebuilding:
            self.comparison_chosen.emit(None if current is None else int(current.data(ID_ROLE)))

    @Slot(int)
    def _result_index_changed(self, index: int) -> None:
        self._sync_report_check()
        if index >= 0 and not self._rebuilding:
            self.result_chosen.emit(int(self.result_combo.itemData(index)))

    # --- what the store holds ---------------------------------------------------------------------------
    def show_cases(self, select: int | None) -> None:
        """Raises XfrError when the store cannot list them."""
        cases = self.store.list_cases(self.search.text().strip() or None)
        with self._rebuild():
            self.case_list.clear()
            for case in cases:
                title = f"{case.number}" + (f" — {case.title}" if case.title else "")
                sub = " · ".join(p for p in (case.examiner, case.modified_at[:16].replace("T", " ")) if p)
                item = QListWidgetItem(f"{title}\n{sub}")
                item.setData(ID_ROLE, case.id)
                item.setToolTip(case.notes or case.title or case.number)
                self.case_list.addItem(item)
                if case.id == select:
                    self.case_list.setCurrentItem(item)

    def show_case_info(self, case) -> None:
        bits = [f"<b>{case.number}</b> {case.title}"]
        if case.examiner or case.organisation:
            bits.append(" · ".join(p for p in (case.examiner, case.organisation) if p))
        self.case_info.setText("<br>".join(bits))

    def show_comparisons(self, case_id: int | None, select: int | None = None) -> int | None:
        """List the case's comparisons; returns the one to show (``select``, else the newest), selected."""
        comparisons = self.store.list_comparisons(case_id) if case_id is not None else []
        target = None
        with self._rebuild():
            self.comparison_list.clear()
            for comp in comparisons:
                item = self._comparison_item(comp)
                self.comparison_list.addItem(item)
                if comp.id == select:
                    target = item
            if target is None and comparisons and select is None:
                target = self.comparison_list.item(self.comparison_list.count() - 1)  # newest
            if target is not None:
                self.comparison_list.setCurrentItem(target)
        return None if target is None else int(target.data(ID_ROLE))

    def _comparison_item(self, comp) -> QListWidgetItem:
        try:
            na, nb = self.store.get_image(comp.image_a).original_name, self.store.get_image(comp.image_b).original_name
        except XfrError:
            na, nb = comp.image_a[:8], comp.image_b[:8]
        results = f" · {comp.n_results} result{'s' if comp.n_results != 1 else ''}" if comp.n_results else ""
        status = f"removed: {comp.removed_reason}" if comp.removed else comp.status
        item = QListWidgetItem(f"{comp.number}.  {na}  ↔  {nb}\n{status}{results}")
        item.setData(ID_ROLE, comp.id)
        if comp.removed:
            font = item.font()
            font.setStrikeOut(True)
            item.setFont(font)
            item.setForeground(QColor("#80868b"))
        if comp.status_message or comp.removed:
            item.setToolTip(comp.removed_reason if comp.removed else comp.status_message)
        return item

    def show_results(self, results: list, select: int | None = None, report_id: int | None = None) -> int | None:
        """List stored results (``report_id``: the one the report uses, marked); returns the one to show
        (``select``, else the newest), selected."""
        self.report_id = report_id
        with self._rebuild():
            self.result_combo.clear()
            for r in results:
                k = (r.parameters or {}).get("top_k")
                self.result_combo.addItem(
                    f"#{r.id} · τ {r.threshold:.4f} · {'top-' + str(k) if k else 'all channels'} · "
                    f"{r.created_at[:16].replace('T', ' ')}" + (" · in report" if r.id == report_id else ""), r.id)
            self.report_check.setEnabled(bool(results))
            if not results:
                self.report_check.setChecked(False)
                return None
            index = self.result_combo.findData(select) if select is not None else len(results) - 1
            self.result_combo.setCurrentIndex(max(index, 0))
        self._sync_report_check()
        return int(self.result_combo.currentData())

    def _sync_report_check(self) -> None:
        self.report_check.setChecked(self.result_combo.currentData() == self.report_id
                                     and self.report_id is not None)
