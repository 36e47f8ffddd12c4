"""The report's styles and the small flowables every section is built from: paragraphs (escaped text or the
caller's own markup), tables that name the embedded font, and images encoded to PNG in memory.
"""
from __future__ import annotations

import io
from typing import Any
from xml.sax.saxutils import escape

import cv2
import numpy as np
from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import cm
from reportlab.platypus import Image, Paragraph, Table, TableStyle

from .pdfa import BODY_FONT, BOLD_FONT, MONO_FONT
from .report_data import ReportError


def png(rgb: np.ndarray) -> bytes:
    """An RGB (or grey) image as PNG bytes."""
    arr = np.ascontiguousarray(rgb)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, 2)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(arr, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ReportError("cannot encode an image for the report")
    return buf.tobytes()


def styles() -> dict:
    """The report's paragraph styles by name, all in the embedded DejaVu fonts."""
    base = ParagraphStyle("body", fontName=BODY_FONT, fontSize=9, leading=12)
    return {
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=7.5, leading=9.5),
        "tiny": ParagraphStyle("tiny", parent=base, fontSize=6, leading=7.5),
        "card": ParagraphStyle("card", parent=base, fontSize=8, leading=10.5),
        "h3": ParagraphStyle("h3", parent=base, fontName=BOLD_FONT, fontSize=8.5, leading=11, spaceBefore=4),
        "detail": ParagraphStyle("detail", parent=base, fontSize=6.8, leading=8.4, leftIndent=14),
        "mono": ParagraphStyle("mono", parent=base, fontName=MONO_FONT, fontSize=6.8, leading=8.5),
        "title": ParagraphStyle("title", parent=base, fontName=BOLD_FONT, fontSize=17, leading=22, spaceAfter=6),
        "h1": ParagraphStyle("h1", parent=base, fontName=BOLD_FONT, fontSize=12.5, leading=16, spaceBefore=10,
                             spaceAfter=4, textColor=colors.HexColor("#1a3b6b")),
        "h2": ParagraphStyle("h2", parent=base, fontName=BOLD_FONT, fontSize=10, leading=13, spaceBefore=6,
                             spaceAfter=3),
        "caption": ParagraphStyle("caption", parent=base, fontSize=7, leading=8.5, alignment=1),
        "big": ParagraphStyle("big", parent=base, fontName=BOLD_FONT, fontSize=11, leading=14),
    }


def para(text: Any, style) -> Paragraph:
    """A paragraph of plain text (escaped; line breaks kept)."""
    return Paragraph(escape("" if text is None else str(text)).replace("\n", "<br/>"), style)


def markup(text: str, style) -> Paragraph:
    """A paragraph of reportlab mini-markup the caller has escaped itself."""
    return Paragraph(text, style)


def img(rgb: np.ndarray, width: float) -> Image:
    """An RGB image ``width`` points wide, its aspect kept."""
    h, w = rgb.shape[:2]
    return Image(io.BytesIO(png(rgb)), width=width, height=width * h / w)


def kv_table(rows, col0=4.2) -> Table:
    """Two columns, name and value (text or a flowable), the names ``col0`` cm wide."""
    st = styles()
    data = [[para(k, st["small"]), v if not isinstance(v, str) else para(v, st["small"])] for k, v in rows]
    t = Table(data, colWidths=[col0 * cm, None], hAlign="LEFT", splitInRow=0)
    t.setStyle(table_style())
    return t


def table_style(header: bool = False, grid: bool = True) -> TableStyle:
    """Every table names the embedded font: reportlab's default cell font is Helvetica (not embedded)."""
    cmds = [("FONTNAME", (0, 0), (-1, -1), BODY_FONT), ("FONTSIZE", (0, 0), (-1, -1), 7.5),
            ("VALIGN", (0, 0), (-1, -1), "TOP")]
    if grid:
        cmds.append(("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#b0b0b0")))
    cmds += [
            ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3),
            ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]
    if header:
        cmds.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e4e9f2")))
    return TableStyle(cmds)


def data_table(rows: list, widths_cm: list[float]) -> Table:
    """A table with a header row that repeats on every page and rows that never split across pages."""
    t = Table(rows, colWidths=[w * cm for w in widths_cm], repeatRows=1, splitInRow=0, hAlign="LEFT")
    t.setStyle(table_style(header=True))
    return t
