"""The channel table: one row per channel of C, sorted by weight (positive = similar, negative = dissimilar)."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, QTimer, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableView, QVBoxLayout, QWidget

from ..core.map_style import DISSIMILAR_RGB, SIMILAR_RGB

COLUMNS = ("Channel", "Weight wᵢ", "F̂A·F̂B", "Contribution", "Share of Σ|wᵢ|", "Used")
COL_CHANNEL, COL_WEIGHT, COL_PRODUCT, COL_CONTRIB, COL_SHARE, COL_USED = range(len(COLUMNS))
SIMILAR = QColor(*SIMILAR_RGB, 60)        # the maps' colours for similar and dissimilar (core/map_style.py)
DISSIMILAR = QColor(*DISSIMILAR_RGB, 60)
SORT_ROLE = Qt.ItemDataRole.UserRole + 1


class ChannelTableModel(QAbstractTableModel):
    """Rows are channels in index order; a :class:`QSortFilterProxyModel` sorts them for display.

    The weight column shows w_i = F̂A[i]·F̂B[i] − T for every channel (also unused ones, so the order does not
    jump when top-k changes); the contribution column is w_i where the channel is used and 0 otherwise.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self._products = np.zeros(0)
        self._weights = np.zeros(0)
        self._selected = np.zeros(0, bool)
        self._share = np.zeros(0)
        self._keys: list[list[float]] = []

    def set_result(self, result) -> None:
        products = np.asarray(result.products, float)
        weights = products - result.T
        selected = np.asarray(result.selected, bool)
        contrib = np.where(selected, weights, 0.0)
        total = np.abs(contrib).sum()
        share = np.abs(contrib) / total if total > 0 else np.zeros_like(contrib)
        # sort keys per column, precomputed: the proxy asks for them thousands of times when it sorts
        self._keys = np.stack([np.arange(len(products), dtype=float), weights, products, contrib, share,
                               selected.astype(float)], axis=1).tolist()
        if len(products) != len(self._products):
            self.beginResetModel()
            self._products, self._weights, self._selected, self._share = products, weights, selected, share
            self.endResetModel()
        else:
            self._products, self._weights, self._selected, self._share = products, weights, selected, share
            if len(products):
                self.dataChanged.emit(self.index(0, 0), self.index(len(products) - 1, len(COLUMNS) - 1))

    def clear(self) -> None:
        self.beginResetModel()
        self._products = self._weights = self._share = np.zeros(0)
        self._selected = np.zeros(0, bool)
        self._keys = []
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._products)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return {
                COL_WEIGHT: "wᵢ = F̂A[i]·F̂B[i] − T (T = τ / channels): positive pulls towards a match",
                COL_PRODUCT: "the channel's term of the cosine score",
                COL_CONTRIB: "wᵢ if the channel is used in H, else 0",
                COL_SHARE: "|wᵢ| / Σ|wⱼ| over the used channels: the channel's part of all the evidence, either way"
                           " (each residual sums to 1, so wᵢ is also the channel's total in H; the signed sum ΣH is"
                           " s − τ, which a share of it cannot describe when channels cancel)",
                COL_USED: "used in H (contributing, and within the top-k when set)",
            }.get(section)
        return None

    def channel_at(self, row: int) -> int:
        return int(row)

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if role == SORT_ROLE:
            return self._keys[index.row()][index.column()]
        if not index.isValid():
            return None
        i, col = index.row(), index.column()
        w = float(self._weights[i])
        used = bool(self._selected[i])
        if role == Qt.ItemDataRole.DisplayRole:
            if col == COL_CHANNEL:
                return str(i)
            if col == COL_WEIGHT:
                return f"{w:+.3e}"
            if col == COL_PRODUCT:
                return f"{float(self._products[i]):.5f}"
            if col == COL_CONTRIB:
                return f"{w:+.3e}" if used else "0"
            if col == COL_SHARE:
                return f"{100 * float(self._share[i]):.1f} %"
            if col == COL_USED:
                return "yes" if used else "—"
        if role == Qt.ItemDataRole.TextAlignmentRole and col != COL_USED:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.BackgroundRole and col in (COL_WEIGHT, COL_CONTRIB) and used:
            return QBrush(SIMILAR if w > 0 else DISSIMILAR)
        if role == Qt.ItemDataRole.ForegroundRole and not used:
            return QBrush(QColor(150, 150, 150))
        if role == Qt.ItemDataRole.ToolTipRole:
            kind = "similar" if w > 0 else "dissimilar"
            return f"channel {i}: weight {w:+.4e} ({kind}){'' if used else ', not used in H'}"
        return None


def make_proxy(model: ChannelTableModel, parent=None) -> QSortFilterProxyModel:
    proxy = QSortFilterProxyModel(parent)
    proxy.setSourceModel(model)
    proxy.setSortRole(SORT_ROLE)
    proxy.setDynamicSortFilter(True)
    proxy.sort(COL_CONTRIB, Qt.SortOrder.DescendingOrder)
    return proxy


class ChannelPanel(QWidget):
    """The caption and the sorted table, bound to an ExplanationState: a selected row selects the channel shown.

    While τ is dragged the table (re-sorting it costs ~10 ms) follows when the slider pauses; the maps, score and
    decision follow every move.
    """

    CAPTION = "Channels — select one to see the face region it reads"

    def __init__(self, state, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.model = ChannelTableModel(self)
        self.proxy = make_proxy(self.model, self)
        self.table = self._table()
        self.caption = QLabel(self.CAPTION)
        self.caption.setObjectName("sectionCaption")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 6, 0, 0)
        lay.setSpacing(4)
        lay.addWidget(self.caption)
        lay.addWidget(self.table)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(120)
        self._timer.timeout.connect(self._refresh)
        self._captioned: int | None = None
        state.changed.connect(self._state_changed)

    def _table(self) -> QTableView:
        table = QTableView()
        table.setObjectName("channelTable")
        table.setModel(self.proxy)
        table.setSortingEnabled(True)
        # by contribution: the used channels in weight order, similar first, dissimilar last (unused ones, 0,
        # in between); a click on the Weight header sorts every channel by weight
        table.sortByColumn(COL_CONTRIB, Qt.SortOrder.DescendingOrder)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.verticalHeader().setVisible(False)
        table.verticalHeader().setDefaultSectionSize(22)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        table.setAlternatingRowColors(True)
        table.selectionModel().currentRowChanged.connect(self._row_changed)
        return table

    @Slot(object, object)
    def _row_changed(self, current, _previous) -> None:
        if current.isValid():
            self.state.select_channel(self.model.channel_at(self.proxy.mapToSource(current).row()))

    @Slot(frozenset)
    def _state_changed(self, changes: frozenset) -> None:
        if "result" in changes:
            if self.state.result is None:
                self._timer.stop()
                self.model.clear()
            elif changes & {"record", "top_k"}:
                self._timer.stop()
                self.model.set_result(self.state.result)
            else:
                self._timer.start()
        if "record" in changes:
            self._captioned = None   # the same channel of another result has another weight
        channel = self.state.display.channel
        if "display" in changes and channel is not None and channel != self._captioned:
            self._caption(channel)

    def _caption(self, channel: int) -> None:
        if self.state.result is None:
            return
        self._captioned = channel
        w = self.state.channel_weight(channel)
        self.caption.setText(f"Channel {channel}: weight {w:+.3e} ({'similar' if w > 0 else 'dissimilar'}) — its"
                             " residual region is shown on both faces")

    @Slot()
    def _refresh(self) -> None:
        if self.state.result is not None:
            self.model.set_result(self.state.result)
