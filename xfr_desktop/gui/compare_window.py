"""Side-by-side, blended overlay and wipe views of a comparison's two faces, aligned or as the original photos at
full resolution (zoom is not limited to the model's chip), with the examiner's point and rectangle annotations.

For the blend and the wipe of the originals, photo B is warped into photo A's frame through both alignment
transforms (photo B -> aligned face -> photo A), so the same facial point lies at the same pixel. Annotations are
stored in the pixels of each original photo (store.add_annotation; audited) and drawn on it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (QComboBox, QGraphicsRectItem, QHBoxLayout, QLabel, QLineEdit, QListWidget,
                               QListWidgetItem, QPushButton, QSlider, QSplitter, QVBoxLayout, QWidget)

from ..core.errors import XfrError
from ..core.imageio import Photo

MODES = (("side", "Side by side"), ("blend", "Blended overlay"), ("wipe", "Wipe"))
SOURCES = (("aligned", "Aligned faces"), ("original", "Original photos (full resolution)"))
TOOLS = (("point", "Point"), ("rect", "Rectangle (two clicks: corners)"))
ANNOTATION_PEN = QPen(QColor("#ffca28"), 2)


@dataclass
class PairImages:
    """What the window shows: both photos (RGB uint8), both aligned faces and the photo -> aligned transforms."""

    photos: dict            # side -> ndarray | None
    aligned: dict           # side -> ndarray
    transforms: dict        # side -> (2, 3) ndarray | None, from the pixels of `photos`
    scales: dict = field(default_factory=dict)   # side -> the original's pixels per pixel of its photo (default 1)

    def shown(self, side: str) -> Photo:
        """Side's photo as a :class:`Photo`: annotations are stored in the original's pixels, a huge JPEG is
        shown reduced."""
        return Photo(self.photos.get(side), int(self.scales.get(side, 1)))


def _affine3(m) -> np.ndarray:
    out = np.eye(3)
    out[:2] = np.asarray(m, float)
    return out


def b_in_a_frame(images: PairImages, source: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(A, B) on one pixel grid: the aligned faces as they are, or photo B warped into photo A's frame."""
    if source == "aligned":
        return images.aligned["a"], images.aligned["b"]
    a, b = images.photos.get("a"), images.photos.get("b")
    ta, tb = images.transforms.get("a"), images.transforms.get("b")
    if a is None or b is None or ta is None or tb is None:
        return None
    import cv2

    b_to_a = np.linalg.inv(_affine3(ta)) @ _affine3(tb)
    warped = cv2.warpAffine(b, b_to_a[:2], (a.shape[1], a.shape[0]), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return a, warped


def wipe(a: np.ndarray, b: np.ndarray, fraction: float) -> np.ndarray:
    """A left of the wipe line, B right of it (``fraction`` of the width)."""
    out = a.copy()
    x = int(round(np.clip(fraction, 0, 1) * a.shape[1]))
    out[:, x:] = b[:, x:]
    return out


class CompareWindow(QWidget):
    """``CompareWindow(store, comparison_id, images, read_only=False)``; a top-level window."""

    def __init__(self, store, comparison_id: int, images: PairImages, read_only: bool = False, parent=None):
        super().__init__(parent, Qt.WindowType.Window)
        self.store = store
        self.comparison_id = comparison_id
        self.images = images
        self.read_only = read_only
        self._corner: tuple[str, float, float] | None = None   # the first click of a rectangle
        self.setWindowTitle(f"Compare faces — comparison {store.get_comparison(comparison_id).number}")
        self.resize(1100, 700)
        self.mode_combo, self.source_combo, self.tool_combo = QComboBox(), QComboBox(), QComboBox()
        for combo, items in ((self.mode_combo, MODES), (self.source_combo, SOURCES), (self.tool_combo, TOOLS)):
            for key, label in items:
                combo.addItem(label, key)
        self.source_combo.setCurrentIndex(1)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 100)
        self.slider.setValue(50)
        self.slider_label = QLabel("")
        self.label_edit = QLineEdit()
        self.label_edit.setPlaceholderText("label of the next annotation, e.g. scar left cheek")
        self.annotations = QListWidget()
        self.annotations.setObjectName("annotationList")
        self.remove_button = QPushButton("Remove selected annotation")
        self.hint = QLabel("")
        self.hint.setObjectName("hint")
        self.hint.setWordWrap(True)
        self.glw = pg.GraphicsLayoutWidget()
        self._layout()
        for combo in (self.mode_combo, self.source_combo):
            combo.currentIndexChanged.connect(self.redraw)
        self.slider.valueChanged.connect(self._slider_moved)
        self.remove_button.clicked.connect(self.remove_selected)
        self.glw.scene().sigMouseClicked.connect(self._clicked)
        self.redraw()

    def _layout(self) -> None:
        bar = QHBoxLayout()
        for label, widget in (("View:", self.mode_combo), ("Of:", self.source_combo), ("", self.slider_label),
                              ("", self.slider)):
            if label:
                bar.addWidget(QLabel(label))
            bar.addWidget(widget, 1 if widget is self.slider else 0)
        bar.addStretch(0)
        side = QWidget()
        lay = QVBoxLayout(side)
        lay.addWidget(QLabel("<b>Annotations</b> (on the original photos, side by side)"))
        lay.addWidget(self.tool_combo)
        lay.addWidget(self.label_edit)
        lay.addWidget(self.annotations, 1)
        lay.addWidget(self.remove_button)
        split = QSplitter()
        split.addWidget(self.glw)
        split.addWidget(side)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        outer = QVBoxLayout(self)
        outer.addLayout(bar)
        outer.addWidget(split, 1)
        outer.addWidget(self.hint)

    # --- drawing ------------------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self.mode_combo.currentData()

    @property
    def source(self) -> str:
        return self.source_combo.currentData()

    def redraw(self) -> None:
        self.glw.clear()
        self.views: dict[str, pg.ViewBox] = {}
        self.items: dict[str, pg.ImageItem] = {}
        self.titles: dict[str, str] = {}
        self.slider.setVisible(self.mode != "side")
        self.slider_label.setText({"blend": "B over A:", "wipe": "Wipe at:"}.get(self.mode, ""))
        if self.mode == "side":
            self._draw_side_by_side()
        else:
            self._draw_single()
        self.show_annotations()

    def _view(self, key: str, col: int, title: str) -> pg.ViewBox:
        self.glw.addLabel(f"<b>{title}</b>", row=0, col=col)
        self.titles[key] = title
        vb = self.glw.addViewBox(row=1, col=col, lockAspect=True, invertY=True, enableMenu=False)
        self.views[key] = vb
        return vb

    def _draw_side_by_side(self) -> None:
        for col, side in enumerate("ab"):
            image = self.images.aligned[side] if self.source == "aligned" else self.images.photos.get(side)
            vb = self._view(side, col, side.upper() + ("" if image is None else f" — {self._size(side, image)}"))
            item = pg.ImageItem()
            vb.addItem(item)
            self.items[side] = item
            if image is not None:
                item.setImage(image, autoLevels=False, levels=(0, 255))
        if self.source == "aligned":
            self.views["b"].setXLink(self.views["a"])
            self.views["b"].setYLink(self.views["a"])
        self.hint.setText("Wheel: zoom; drag: pan. Click a photo to annotate it." if self.source == "original"
                          and not self.read_only else "Wheel: zoom; drag: pan.")

    def _size(self, side: str, image: np.ndarray) -> str:
        """The pixel size of what is shown; for an original decoded reduced, the original's size first."""
        h, w = image.shape[:2]
        scale = int(self.images.scales.get(side, 1)) if self.source == "original" else 1
        if scale == 1:
            return f"{w} × {h} px"
        comp = self.store.get_comparison(self.comparison_id)
        record = self.store.get_image(comp.image_a if side == "a" else comp.image_b)
        full = (f"{record.width} × {record.height} px" if record.width and record.height
                else f"about {w * scale} × {h * scale} px")
        return f"{full}, shown at 1/{scale} ({w} × {h})"

    def _draw_single(self) -> None:
        pair = b_in_a_frame(self.images, self.source)
        vb = self._view("ab", 0, "A and B" + (" (B warped into A's frame)" if self.source == "original" else ""))
        if pair is None:
            self.hint.setText("The originals have no alignment transform (pre-aligned crops): use the aligned faces.")
            return
        a, b = pair
        base, top = pg.ImageItem(), pg.ImageItem()
        for item in (base, top):
            vb.addItem(item)
        self.items["a"], self.items["b"] = base, top
        base.setImage(a, autoLevels=False, levels=(0, 255))
        self.pair = (a, b)
        self._slider_moved(self.slider.value())
        self.hint.setText("Move the slider: " + ("how much of B shows over A." if self.mode == "blend" else
                                                 "A left of the line, B right of it."))

    def _slider_moved(self, value: int) -> None:
        if self.mode == "side" or "b" not in self.items:
            return
        a, b = self.pair
        if self.mode == "blend":
            self.items["b"].setImage(b, autoLevels=False, levels=(0, 255))
            self.items["b"].setOpacity(value / 100)
        else:
            self.items["b"].setOpacity(1.0)
            self.items["b"].setImage(wipe(a, b, value / 100), autoLevels=False, levels=(0, 255))

    # --- annotations --------------------------------------------------------------------------------------
    def show_annotations(self) -> None:
        self.annotations.clear()
        try:
            records = self.store.list_annotations(self.comparison_id)
        except XfrError as exc:
            self.hint.setText(f"Cannot read the annotations: {exc}")
            return
        for r in records:
            where = (f"({r.x:.0f}, {r.y:.0f})" if r.kind == "point" else
                     f"({r.x:.0f}, {r.y:.0f}) {r.width:.0f} × {r.height:.0f}")
            item = QListWidgetItem(f"{r.side.upper()} {r.kind} {where}" + (f": {r.label}" if r.label else "")
                                   + f" — {r.author}")
            item.setData(Qt.ItemDataRole.UserRole, r.id)
            self.annotations.addItem(item)
            self._draw_annotation(r)

    def _draw_annotation(self, r) -> None:
        vb = self.views.get(r.side) if self.mode == "side" and self.source == "original" else None
        if vb is None:
            return
        x, y, w, h = (float(v) for v in self.images.shown(r.side).to_pixels((r.x, r.y, r.width, r.height)))
        if r.kind == "point":
            vb.addItem(pg.ScatterPlotItem([x], [y], size=12, symbol="x", pen=pg.mkPen("#ffca28", width=2)))
        else:
            rect = QGraphicsRectItem(QRectF(x, y, w, h))
            pen = QPen(ANNOTATION_PEN)
            pen.setCosmetic(True)
            rect.setPen(pen)
            vb.addItem(rect)
        if r.label:
            text = pg.TextItem(r.label, color="#ffca28", anchor=(0, 1))
            text.setPos(x, y)
            vb.addItem(text)

    def _clicked(self, event) -> None:
        if self.read_only or self.mode != "side" or self.source != "original":
            return
        for side in "ab":
            vb = self.views.get(side)
            if vb is not None and vb.sceneBoundingRect().contains(event.scenePos()):
                p = vb.mapSceneToView(event.scenePos())
                self.annotate(side, p.x(), p.y())
                return

    def annotate(self, side: str, x: float, y: float) -> None:
        """A click at photo pixel (x, y): a point, or one corner of a rectangle (the second click closes it)."""
        photo = self.images.photos.get(side)
        if photo is None or not (0 <= x < photo.shape[1] and 0 <= y < photo.shape[0]):
            return
        x, y = (float(v) for v in self.images.shown(side).to_original((x, y)))
        label = self.label_edit.text().strip()
        try:
            if self.tool_combo.currentData() == "point":
                self.store.add_annotation(self.comparison_id, side, "point", x, y, label=label)
            elif self._corner is None or self._corner[0] != side:
                self._corner = (side, x, y)
                self.hint.setText("Now click the opposite corner of the rectangle.")
                return
            else:
                _, x0, y0 = self._corner
                self._corner = None
                self.store.add_annotation(self.comparison_id, side, "rect", min(x, x0), min(y, y0),
                                          width=abs(x - x0), height=abs(y - y0), label=label)
        except XfrError as exc:
            self.hint.setText(f"Not saved: {exc}")
            return
        self.hint.setText("Annotation saved (audited).")
        self.redraw()

    def remove_selected(self) -> None:
        item = self.annotations.currentItem()
        if item is None or self.read_only:
            return
        try:
            self.store.remove_annotation(int(item.data(Qt.ItemDataRole.UserRole)))
        except XfrError as exc:
            self.hint.setText(f"Not removed: {exc}")
            return
        self.redraw()
