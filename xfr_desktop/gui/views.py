"""Side-by-side pyqtgraph views of a pair: the map overlaid on each aligned face, large, with its colour bar; and
(``detail``, a separate widget the main window puts in a tab) each side's photo (box, landmarks), aligned face and
reconstruction, small.

The two large views share one linked view range, so zoom and pan move A and B together (the small aligned faces
and reconstructions keep showing the whole face); a crosshair follows the cursor across every panel in aligned
coordinates and is projected back onto both photos through the inverse of each side's alignment transform.

Bound to the :class:`~.explanation_state.ExplanationState`: the views draw the state's result, display settings
and photos whenever its ``changed`` names them, and set nothing on it.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal, Slot
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QLabel, QSizePolicy, QStackedWidget, QVBoxLayout, QWidget

from ..core.map_style import (MAP_STYLES, ColourScale, colour_bar_caption, colour_levels, colour_scale, is_empty, lut,
                              map_style, opacity_ramp, support_box)
from ..core.trust_display import unstable_greyed
from .explanation_state import DisplaySettings, ExplanationState
from .shown_maps import map_for, map_values_at, readout
from .side_source import SideSource, crop_outline, to_aligned, to_photo

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True, background="#1e1f22", foreground="#d8d8d8")

MAP_MODES = {kind: style.title for kind, style in MAP_STYLES.items()}  # key -> menu label
DETAIL_TITLES = ("Photo", "Aligned face", "Reconstruction")   # the small panels of ``detail``, per side
BOX_PEN = QPen(QColor("#4fc3f7"), 2)
CROSS_PEN = pg.mkPen("#80deea", width=1, style=Qt.PenStyle.DashLine)


def _cosmetic(pen: QPen) -> QPen:
    pen.setCosmetic(True)
    return pen


def colour_maps(kind: str) -> tuple[pg.ColorMap, np.ndarray]:
    """The kind's colours (map_style): an opaque map for the colour bar and an RGBA table for the overlay, whose
    opacity grows with |value| so that zero leaves the face untinted."""
    rgb = lut(kind)
    rgba = np.concatenate([rgb, np.round(opacity_ramp(kind) * 255).astype(np.uint8)[:, None]], axis=1)
    return pg.ColorMap(np.linspace(0, 1, len(rgb)), rgb), rgba


class PairViews(QWidget):
    """The eight image panels with a shared colour bar and the value readout under the cursor."""

    cursor_moved = Signal(float, float)   # aligned-space x, y

    def __init__(self, state: ExplanationState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.sources = {"a": SideSource(), "b": SideSource()}
        self.result = None
        self.display = DisplaySettings()
        self._maps: dict[str, np.ndarray] = {}
        self._cursor: tuple[float, float] | None = None
        self._faces_key: tuple | None = None

        self.stack = QStackedWidget(self)
        self.empty_label = QLabel(
            "<h3>No comparison shown</h3><p>Create a case (Ctrl+N), then import two photos (Ctrl+O) or drop them"
            " here.<br>The analysis starts by itself; Ctrl+R runs it again.</p>")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setObjectName("emptyState")
        self.glw = pg.GraphicsLayoutWidget()
        self.glw.setAcceptDrops(False)  # dropped photos go to the main window (import), not the scene
        self.glw.ci.layout.setSpacing(6)
        self.glw.ci.setContentsMargins(4, 4, 4, 4)
        self.stack.addWidget(self.empty_label)
        self.stack.addWidget(self.glw)

        self.value_label = QLabel("Move the cursor over a face to read the map values.")
        self.value_label.setObjectName("valueReadout")
        self.value_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.value_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.map_hint = QLabel("")
        self.map_hint.setObjectName("hint")
        self.map_hint.setWordWrap(True)
        self.map_hint.setVisible(False)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.map_hint)
        layout.addWidget(self.value_label)
        self._build()
        state.changed.connect(self._state_changed)

    @Slot(frozenset)
    def _state_changed(self, changes: frozenset) -> None:
        s = self.state
        if "result" in changes and s.result is None:
            self.clear()
        elif "result" in changes:
            if "record" in changes:   # first the photos: the maps grey by each side's agreement
                self.set_sources(s.sources)
            self.show_result(s.result, s.display, reset_range="record" in changes)
        elif "display" in changes:
            self.set_display(s.display)

    # --- construction ------------------------------------------------------------------------------------
    def _build(self) -> None:
        # the large views: the map over each aligned face, A beside B, the colour bar under both
        self.detail = pg.GraphicsLayoutWidget()   # small panels, shown where the main window puts them
        self.detail.setObjectName("pairDetail")
        self.detail.setAcceptDrops(False)
        self.detail.ci.layout.setSpacing(4)
        self.detail.ci.setContentsMargins(2, 2, 2, 2)
        self.vb: dict[tuple[str, str], pg.ViewBox] = {}
        self.items: dict[tuple[str, str], pg.ImageItem] = {}
        self.heat: dict[str, pg.ImageItem] = {}
        self.cross: dict[str, list[pg.InfiniteLine]] = {"a": [], "b": []}
        self.photo_overlays: dict[str, dict] = {}
        self.channel_region: dict[str, QGraphicsRectItem] = {}
        for col, side in enumerate("ab"):
            self.glw.addLabel(f"<b>{side.upper()}</b> · aligned face and map", row=0, col=col, size="11pt")
            self._add_panel(self.glw, side, "overlay", 1, col)
            first = 4 * col   # detail: "A" photo aligned recon, "B" photo aligned recon
            self.detail.addLabel(f"<b>{side.upper()}</b>", row=1, col=first, size="13pt")
            for i, (panel, title) in enumerate(zip(("photo", "aligned", "recon"), DETAIL_TITLES), start=1):
                self.detail.addLabel(title, row=0, col=first + i, size="9pt")
                self._add_panel(self.detail, side, panel, 1, first + i)
            self._add_photo_overlays(side)
        # one view range for the large views; the small panels in aligned coordinates keep the whole face
        self.linked = [self.vb[s, "overlay"] for s in "ab"]
        self.aligned_panels = [self.vb[s, p] for p in ("overlay", "aligned", "recon") for s in "ab"]
        self.linked[1].setXLink(self.linked[0])
        self.linked[1].setYLink(self.linked[0])
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=colour_maps("H")[0], interactive=False, width=12,
                                        label="", orientation="horizontal")
        self.colorbar.axis.enableAutoSIPrefix(False)   # the caption carries the power of ten (map_style)
        # the labels at the bar's ends (0 or −peak, and the peak) are drawn too: the margins leave them room
        self.colorbar.axis.setStyle(hideOverlappingLabels=False)
        self.colorbar.setContentsMargins(28, 0, 28, 0)
        self.colour_scale: ColourScale | None = None   # the ticks shown (None: no map, no scale)
        self._coloured_as: str | None = None           # the map kind whose colours the overlay and bar use
        self._scale_key: tuple | None = None           # (scale, kind) the colour bar's ticks and caption show
        self.glw.addItem(self.colorbar, row=2, col=0, colspan=2)
        for col in range(2):
            self.glw.ci.layout.setColumnStretchFactor(col, 1)
        self.glw.ci.layout.setRowStretchFactor(1, 1)
        for col in range(8):
            self.detail.ci.layout.setColumnStretchFactor(col, 0 if col % 4 == 0 else 1)
        for widget in (self.glw, self.detail):
            scene = widget.scene()
            scene.sigMouseMoved.connect(lambda pos, scene=scene: self._mouse_moved(pos, scene))

    def _add_panel(self, glw, side: str, panel: str, row: int, col: int) -> None:
        vb = glw.addViewBox(row=row, col=col, lockAspect=True, invertY=True, enableMenu=False)
        vb.setBorder(pg.mkPen("#3a3d42"))
        vb.setDefaultPadding(0.01)
        item = pg.ImageItem()
        vb.addItem(item)
        self.vb[side, panel] = vb
        self.items[side, panel] = item
        if panel == "overlay":
            region = QGraphicsRectItem()  # the selected channel's residual support
            region.setPen(_cosmetic(QPen(QColor("#80deea"), 1.5, Qt.PenStyle.DashLine)))
            region.setZValue(8)
            region.setVisible(False)
            vb.addItem(region)
            self.channel_region[side] = region
            heat = pg.ImageItem()
            heat.setOpacity(self.display.opacity)
            heat.setZValue(5)
            vb.addItem(heat)
            self.heat[side] = heat
        if panel != "photo":
            v = pg.InfiniteLine(angle=90, movable=False, pen=CROSS_PEN)
            h = pg.InfiniteLine(angle=0, movable=False, pen=CROSS_PEN)
            for line in (v, h):
                line.setZValue(10)
                line.setVisible(False)
                vb.addItem(line, ignoreBounds=True)
            self.cross[side] += [v, h]

    def _add_photo_overlays(self, side: str) -> None:
        """Face box, crop outline, landmarks and the projected cursor on the source photo."""
        vb = self.vb[side, "photo"]
        box = QGraphicsRectItem()
        box.setPen(_cosmetic(QPen(BOX_PEN)))
        crop = pg.PlotCurveItem(pen=pg.mkPen("#ffd54f", width=1, style=Qt.PenStyle.DotLine))
        marks = pg.ScatterPlotItem(size=7, pen=pg.mkPen("#000000"), brush=pg.mkBrush("#ff5252"))
        cursor = pg.ScatterPlotItem(size=14, symbol="+", pen=pg.mkPen("#80deea", width=2), brush=None)
        for item, z in ((box, 5), (crop, 5), (marks, 6), (cursor, 7)):
            item.setZValue(z)
            vb.addItem(item)
        self.photo_overlays[side] = {"box": box, "crop": crop, "landmarks": marks, "cursor": cursor}

    # --- content -----------------------------------------------------------------------------------------
    def clear(self) -> None:
        self.result = None
        self.sources = {"a": SideSource(), "b": SideSource()}
        self._maps = {}
        self._faces_key = None
        for item in list(self.items.values()) + list(self.heat.values()):
            item.clear()
        self.stack.setCurrentWidget(self.empty_label)

    def set_empty_message(self, html: str) -> None:
        self.empty_label.setText(html)

    def set_sources(self, sources: dict[str, SideSource]) -> None:
        self.sources = {s: sources.get(s) or SideSource() for s in "ab"}
        for side in "ab":
            src = self.sources[side]
            overlays = self.photo_overlays[side]
            item = self.items[side, "photo"]
            if src.photo is not None:
                item.setImage(src.photo, autoLevels=False, levels=(0, 255))
            else:
                item.clear()
            if src.box is not None:
                x, y, w, h = (float(v) for v in src.box)
                overlays["box"].setRect(QRectF(x, y, w, h))
                overlays["box"].setVisible(True)
            else:
                overlays["box"].setVisible(False)
            if src.landmarks is not None:
                pts = np.asarray(src.landmarks, float)
                overlays["landmarks"].setData(pts[:, 0], pts[:, 1])
            else:
                overlays["landmarks"].clear()
            outline = self._crop_outline(side)
            if outline is not None:
                overlays["crop"].setData(outline[:, 0], outline[:, 1])
            else:
                overlays["crop"].clear()
            overlays["cursor"].clear()
            vb = self.vb[side, "photo"]
            if src.photo is not None:
                vb.setRange(QRectF(0, 0, src.photo.shape[1], src.photo.shape[0]), padding=0.01)

    def _crop_outline(self, side: str) -> np.ndarray | None:
        return None if self.result is None else crop_outline(self.sources[side], self.result.a.S.shape)

    def show_result(self, result, display: DisplaySettings | None = None, reset_range: bool = False) -> None:
        """Show an explanation (faces, reconstructions and the chosen map); cheap enough for every slider move."""
        first = self.result is None or reset_range
        self.result = result
        if display is not None:
            self.display = display
        self.stack.setCurrentWidget(self.glw)
        faces_key = (id(result.a.aligned), id(result.b.aligned), id(result.a.reconstruction),
                     id(result.b.reconstruction))
        if first or faces_key != self._faces_key:  # recombined results share their faces: redraw only the maps
            self._faces_key = faces_key
            for side in "ab":
                s = getattr(result, side)
                self.items[side, "aligned"].setImage(s.aligned, autoLevels=False, levels=(0, 255))
                self.items[side, "recon"].setImage(s.reconstruction, autoLevels=False, levels=(0, 255))
                gray = s.aligned.astype(np.float32).mean(axis=2)
                self.items[side, "overlay"].setImage(gray, autoLevels=False, levels=(0, 255))
        self.update_maps()
        if first:
            self._fit_faces()
            for side in "ab":
                outline = self._crop_outline(side)
                if outline is not None:
                    self.photo_overlays[side]["crop"].setData(outline[:, 0], outline[:, 1])

    def update_maps(self) -> None:
        if self.result is None:
            return
        d = self.display
        raw = {side: map_for(getattr(self.result, side), d.mode, d.channel) for side in "ab"}
        greyed = d.stable_only and d.mode != "channel"   # the agreement is H's; a channel residual has no sign
        maps = {side: unstable_greyed(m, self.sources[side].agreement) if greyed else m for side, m in raw.items()}
        self._maps = maps
        empty = is_empty(raw.values())
        lo, hi = colour_levels(raw.values(), d.mode)   # the same colours with or without the greyed pixels
        if d.mode != self._coloured_as:   # colours change with the kind only (not on every τ move)
            self._coloured_as = d.mode
            cmap, rgba = colour_maps(d.mode)
            self.colorbar.setColorMap(cmap)
            for side in "ab":
                self.heat[side].setLookupTable(rgba)
        for side in "ab":
            self.heat[side].setImage(maps[side], autoLevels=False, levels=(lo, hi))
            self.heat[side].setOpacity(d.opacity)
            box = support_box(maps[side]) if d.mode == "channel" and d.channel is not None else None
            region = self.channel_region[side]
            region.setVisible(box is not None)
            if box is not None:
                region.setRect(QRectF(*box))
        self._show_scale(None if empty else colour_scale(lo, hi), (lo, hi))
        self.map_hint.setText(self._empty_hint() if empty else "")
        self.map_hint.setVisible(empty)
        if self._cursor is not None:
            self._show_values(*self._cursor)

    def _show_scale(self, scale: ColourScale | None, levels: tuple[float, float]) -> None:
        """The colour bar's ticks cover the data range, in one format; an empty map gets no scale at all."""
        key = (scale, self.display.mode)
        if key == self._scale_key:
            return
        self._scale_key = key
        self.colour_scale = scale
        self.colorbar.setLevels(levels)
        self.colorbar.setVisible(scale is not None)
        if scale is None:
            return
        axis = self.colorbar.axis
        axis.setTicks([list(scale.ticks), []])
        normalization = getattr(self.result.a.residuals, "normalization", "sum")
        axis.setLabel(colour_bar_caption(self.display.mode, scale, normalization))

    def _empty_hint(self) -> str:
        d = self.display
        if d.mode == "channel" and d.channel is None:
            return "Select a channel in the Channels (model) tab below to see the face region it reads."
        if d.mode == "channel":
            return (f"Channel {d.channel} has no residual on these faces (removing its maximum does not change the"
                    " reconstruction): it adds nothing to the maps.")
        return f"{map_style(d.mode).symbol} is zero everywhere on both faces: nothing to show for this map."

    def set_display(self, display: DisplaySettings) -> None:
        self.display = display
        self.update_maps()

    def _fit_faces(self) -> None:
        h, w = self.result.a.S.shape
        for vb in self.aligned_panels:
            vb.setRange(QRectF(0, 0, w, h), padding=0.01)

    def reset_zoom(self) -> None:
        if self.result is not None:
            self._fit_faces()
        for side in "ab":
            src = self.sources[side]
            if src.photo is not None:
                self.vb[side, "photo"].setRange(QRectF(0, 0, src.photo.shape[1], src.photo.shape[0]), padding=0.01)

    # --- crosshair ---------------------------------------------------------------------------------------
    def _mouse_moved(self, scene_pos: QPointF, scene=None) -> None:
        if self.result is None:
            return
        for vb in self.aligned_panels:
            if (scene is None or vb.scene() is scene) and vb.sceneBoundingRect().contains(scene_pos):
                p = vb.mapSceneToView(scene_pos)
                self.set_cursor(p.x(), p.y())
                return
        for side in "ab":
            vb = self.vb[side, "photo"]
            if (scene is None or vb.scene() is scene) and vb.sceneBoundingRect().contains(scene_pos):
                p = vb.mapSceneToView(scene_pos)
                aligned = to_aligned(self.sources[side].transform, (p.x(), p.y()))
                if aligned is not None:
                    self.set_cursor(float(aligned[0]), float(aligned[1]))
                return

    def set_cursor(self, x: float, y: float) -> None:
        """Put the crosshair at aligned-space (x, y) in every view and read the values there."""
        self._cursor = (x, y)
        for side in "ab":
            v1, h1, v2, h2, v3, h3 = self.cross[side]
            for line in (v1, v2, v3):
                line.setPos(x)
                line.setVisible(True)
            for line in (h1, h2, h3):
                line.setPos(y)
                line.setVisible(True)
            p = to_photo(self.sources[side].transform, np.array([[x, y]]))
            cursor = self.photo_overlays[side]["cursor"]
            if p is not None and self.sources[side].photo is not None:
                cursor.setData([p[0, 0]], [p[0, 1]])
            else:
                cursor.clear()
        self._show_values(x, y)
        self.cursor_moved.emit(x, y)

    def values_at(self, x: float, y: float) -> dict[str, dict[str, float]] | None:
        """Per side, the shown map's and H's value at aligned-space (x, y); None outside the faces."""
        return map_values_at(self.result, self._maps, x, y)

    def _show_values(self, x: float, y: float) -> None:
        values = self.values_at(x, y)
        if values is None:
            self.value_label.setText("Cursor outside the aligned faces.")
            return
        name = map_style(self.display.mode).symbol
        if self.display.mode == "channel" and self.display.channel is not None:
            name = f"channel {self.display.channel}"
        self.value_label.setText(readout(values, name, self.colour_scale, self.display.mode,
                                         getattr(self.result.a.residuals, "normalization", "sum"), x, y))

