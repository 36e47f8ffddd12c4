"""The main window's layout: the maps large in the middle, everything else one click away, and the examiner's own
arrangement (window size, docks, the splitter under the maps) kept from one session to the next.

Middle: the map over each aligned face, A beside B (:class:`~.views.PairViews`), and under a splitter a tab strip:
the small panels (each photo with its box and landmarks, the aligned face, the reconstruction) shown by default,
the model's channel table, then the examiner's own examination. Left: the cases dock; right: the explanation
controls. At 1280×800 each face view gets well over 300 px; the tabs get about a quarter of the height.

Kept in a :class:`~PySide6.QtCore.QSettings` (the app's settings store; ``None``: nothing is read or written, as in
tests and in ``--screenshot``, which always shows the default layout) under ``mainWindow/``: the window geometry,
the dock state and the splitter state, each tagged with :data:`LAYOUT_VERSION` so that a layout saved by another
version of the window is ignored rather than half applied.
"""
from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings, Qt
from PySide6.QtWidgets import QDockWidget, QFrame, QMainWindow, QScrollArea, QSplitter, QVBoxLayout, QWidget

LAYOUT_VERSION = 2          # 1: the channel table under the maps, taking half the window (an older window)
GROUP = "mainWindow"
DETAIL_TAB = "Photo, face, reconstruction"
CHANNELS_TAB = "Channels (model)"
TABS_SHARE = 0.27           # of the middle's height, for the tab strip under the maps (default layout)
TABS_MIN = 170


def build_centre(window: QMainWindow, views, channels, examination) -> QSplitter:
    """The middle of the window: ``views`` on top, the tabs below (``examination`` gains the small panels and
    the channel table as its first two tabs, the small panels shown). Returns the splitter between them.

    The examination's own tabs scroll when the strip is low, instead of holding the maps to a third of the
    window (their forms need about 300 px)."""
    for i in range(examination.count()):
        title, page = examination.tabText(i), examination.widget(i)
        examination.removeTab(i)
        examination.insertTab(i, _scrolling(page), title)
    examination.insertTab(0, channels, CHANNELS_TAB)
    examination.insertTab(0, views.detail, DETAIL_TAB)
    examination.setCurrentIndex(0)
    examination.setMinimumHeight(TABS_MIN - 40)
    split = QSplitter(Qt.Orientation.Vertical)
    split.setObjectName("centralSplitter")
    split.addWidget(views)
    split.addWidget(examination)
    split.setStretchFactor(0, 1)   # a larger window grows the maps
    split.setStretchFactor(1, 0)
    split.setChildrenCollapsible(False)
    holder = QWidget()
    outer = QVBoxLayout(holder)
    outer.setContentsMargins(6, 6, 6, 2)
    outer.addWidget(split)
    window.setCentralWidget(holder)
    return split


def add_dock(window: QMainWindow, title: str, name: str, widget: QWidget, area, min_width: int) -> QDockWidget:
    """A dock the examiner can move but not close or float (``name``: the key its place is saved under)."""
    dock = QDockWidget(title, window)
    dock.setObjectName(name)
    dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
    dock.setWidget(widget)
    dock.setMinimumWidth(min_width)
    window.addDockWidget(area, dock)
    return dock


class WindowLayout:
    """Applies the default sizes when the window is first shown, unless a saved layout was restored."""

    def __init__(self, window: QMainWindow, splitter: QSplitter, left_dock, right_dock,
                 settings: QSettings | None = None):
        self.window, self.splitter = window, splitter
        self.left_dock, self.right_dock = left_dock, right_dock
        self.settings = settings
        self.sized = False   # sizes applied (the defaults on first show, or the restored ones)

    def restore(self) -> bool:
        """The saved layout, when there is one of this version; False leaves the defaults to the first show."""
        s = self.settings
        if s is None or int(s.value(f"{GROUP}/version", 0) or 0) != LAYOUT_VERSION:
            return False
        geometry, state, split = (_bytes(s.value(f"{GROUP}/{key}")) for key in ("geometry", "state", "splitter"))
        if state is None or split is None:
            return False
        if geometry is not None:
            self.window.restoreGeometry(geometry)
        self.sized = (self.window.restoreState(state, LAYOUT_VERSION) and self.splitter.restoreState(split))
        return self.sized

    def save(self) -> None:
        s = self.settings
        if s is None:
            return
        s.setValue(f"{GROUP}/version", LAYOUT_VERSION)
        s.setValue(f"{GROUP}/geometry", self.window.saveGeometry())
        s.setValue(f"{GROUP}/state", self.window.saveState(LAYOUT_VERSION))
        s.setValue(f"{GROUP}/splitter", self.splitter.saveState())
        s.sync()

    def shown(self) -> None:
        """On the window's first show: the docks at their preferred widths and the maps given most of the height
        (docks and splitters take their share only once the window has a size)."""
        if self.sized:
            return
        self.sized = True
        self.window.resizeDocks([self.left_dock, self.right_dock], [205, self.right_dock.minimumWidth()],
                                Qt.Orientation.Horizontal)
        total = sum(self.splitter.sizes()) or self.splitter.height()
        tabs = max(TABS_MIN, int(total * TABS_SHARE))
        self.splitter.setSizes([total - tabs, tabs])


def _scrolling(page: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setWidget(page)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    return area


def _bytes(value) -> QByteArray | None:
    if isinstance(value, QByteArray) and not value.isEmpty():
        return value
    if isinstance(value, (bytes, bytearray)) and value:
        return QByteArray(bytes(value))
    return None
