"""PDF/A plumbing of the case report: fonts, page furniture, XMP metadata and the sRGB output intent, and the
low-level assembly of a story of flowables into PDF bytes.

PDF/A-2b where feasible: every font is an embedded TrueType subset (DejaVu, also for the page preamble so no base-14
font is referenced), the catalog carries XMP metadata matching the document information dictionary with
``pdfaid:part=2, conformance=B``, and an sRGB output intent (ICC profile from Pillow's littleCMS). Not checked by a
PDF/A validator (veraPDF is not available offline); see docs/reports.md for what is known to be missing.
"""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.fonts import addMapping
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import cm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.pdfdoc import XMP, PDFArray, PDFDictionary, PDFName, PDFStream, PDFString
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas
from reportlab.platypus import SimpleDocTemplate

from ..core.errors import XfrError
from ..core.fileio import atomic_write
from ..paths import REPO_ROOT
from .report_data import ReportData, ReportError

FONTS_DIR_ENV = "XFR_FONTS_DIR"
SYSTEM_DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
FONT_FILES = {
    "DejaVuSans": "DejaVuSans.ttf",
    "DejaVuSans-Bold": "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique": "DejaVuSans-Oblique.ttf",
    "DejaVuSansMono": "DejaVuSansMono.ttf",
}
PDF_VERSION = (1, 7)
BODY_FONT, BOLD_FONT, ITALIC_FONT, MONO_FONT = "DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique", "DejaVuSansMono"


@dataclass
class RenderedReport:
    pdf: bytes
    n_pages: int
    signature_box: tuple[float, float, float, float]   # x1, y1, x2, y2 on the last page, in points: the examiner's
    sha256: str
    review_box: tuple[float, float, float, float] | None = None   # the reviewer's (co-signature), same page


# --- fonts --------------------------------------------------------------------------------------------------
def fonts_dir() -> Path:
    for cand in (os.environ.get(FONTS_DIR_ENV), REPO_ROOT / "resources" / "fonts", SYSTEM_DEJAVU):
        if cand and all((Path(cand) / f).is_file() for f in FONT_FILES.values()):
            return Path(cand)
    raise ReportError("the report fonts (DejaVu Sans) are missing from resources/fonts; reinstall XFR Desktop")


_FONTS_REGISTERED = False


def register_fonts() -> None:
    global _FONTS_REGISTERED
    if _FONTS_REGISTERED:
        return

    folder = fonts_dir()
    for name, file in FONT_FILES.items():
        pdfmetrics.registerFont(TTFont(name, str(folder / file)))
    for bold, italic, name in ((0, 0, BODY_FONT), (1, 0, BOLD_FONT), (0, 1, ITALIC_FONT), (1, 1, BOLD_FONT)):
        addMapping(BODY_FONT, bold, italic, name)
    for bold in (0, 1):
        for italic in (0, 1):
            addMapping(MONO_FONT, bold, italic, MONO_FONT)
    _FONTS_REGISTERED = True


def _canvas_class(data: ReportData, generated_at: str, record: dict):
    number = data.case_number if len(data.case_number) <= 40 else data.case_number[:39] + "…"
    header = f"XFR Desktop case report · case {number}"

    class NumberedCanvas(canvas.Canvas):
        """Two passes in one: pages are kept until save() so each can say 'page x of y'."""

        def __init__(self, *args, **kwargs):
            kwargs["pdfVersion"] = PDF_VERSION   # PDF/A-2 is based on PDF 1.7; signing keeps that version
            super().__init__(*args, **kwargs)
            self._pages: list[dict] = []

        def showPage(self):
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            n = len(self._pages)
            record["n_pages"] = n
            for state in self._pages:
                self.__dict__.update(state)
                w, h = self._pagesize
                self.setFont(BODY_FONT, 7)
                self.setFillColor(colors.HexColor("#555555"))
                self.drawString(40, h - 28, header)
                self.drawRightString(w - 40, h - 28, f"generated {generated_at}")
                self.drawString(40, 22, f"XFR Desktop {data.software_version}")
                self.drawRightString(w - 40, 22, f"page {self._pageNumber} of {n}")
                self.setStrokeColor(colors.HexColor("#b0b0b0"))
                self.line(40, h - 33, w - 40, h - 33)
                super().showPage()
            _add_pdfa_parts(self, data, generated_at)
            super().save()

    return NumberedCanvas


def _xmp_date(ts) -> str:
    y, mo, d, hh, mi, ss = ts.YMDhms
    sign = "-" if ts.dhh < 0 else "+"
    return f"{y:04d}-{mo:02d}-{d:02d}T{hh:02d}:{mi:02d}:{ss:02d}{sign}{abs(ts.dhh):02d}:{ts.dmm:02d}"


def _xmp_packet(doc) -> bytes:
    info = doc.info
    date = _xmp_date(doc._timeStamp)
    e = escape
    return f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/">
   <pdfaid:part>2</pdfaid:part>
   <pdfaid:conformance>B</pdfaid:conformance>
  </rdf:Description>
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
   <dc:format>application/pdf</dc:format>
   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">{e(info.title)}</rdf:li></rdf:Alt></dc:title>
   <dc:creator><rdf:Seq><rdf:li>{e(info.author)}</rdf:li></rdf:Seq></dc:creator>
   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{e(info.subject)}</rdf:li></rdf:Alt></dc:description>
  </rdf:Description>
  <rdf:Description rdf:about="" xmlns:pdf="http://ns.adobe.com/pdf/1.3/">
   <pdf:Producer>{e(info.producer)}</pdf:Producer>
   <pdf:Keywords>{e(info.keywords)}</pdf:Keywords>
   <pdf:Trapped>False</pdf:Trapped>
  </rdf:Description>
  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/">
   <xmp:CreatorTool>{e(info.creator)}</xmp:CreatorTool>
   <xmp:CreateDate>{date}</xmp:CreateDate>
   <xmp:ModifyDate>{date}</xmp:ModifyDate>
   <xmp:MetadataDate>{date}</xmp:MetadataDate>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>""".encode("utf-8")


def _srgb_icc() -> bytes | None:
    try:
        from PIL import ImageCms

        return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    except Exception:  # noqa: BLE001 - Pillow without littleCMS: no output intent (documented)
        return None


def _add_pdfa_parts(canv, data: ReportData, generated_at: str) -> None:
    """XMP metadata (pdfaid part 2, conformance B) and an sRGB output intent in the catalog."""
    doc = canv._doc
    doc.Catalog.Metadata = XMP(creator=_xmp_packet)
    icc = _srgb_icc()
    if icc is not None:
        profile = PDFStream(PDFDictionary({"N": 3}), icc)
        intent = PDFDictionary({"Type": PDFName("OutputIntent"), "S": PDFName("GTS_PDFA1"),
                                "OutputConditionIdentifier": PDFString("sRGB IEC61966-2.1"),
                                "Info": PDFString("sRGB IEC61966-2.1"),
                                "DestOutputProfile": doc.Reference(profile)})
        doc.Catalog.OutputIntents = PDFArray([intent])
        # PDFCatalog writes only the keys it knows; teach this instance one more
        doc.Catalog.__NoDefault__ = list(type(doc.Catalog).__NoDefault__) + ["OutputIntents"]


def assemble_pdf(story: list, data: ReportData, generated_at: str, record: dict) -> RenderedReport:
    """Lay ``story`` out on A4 pages with the header, footer and PDF/A parts; ``record`` is filled by the
    signature placeholder (its box and page) and the canvas (the page count)."""
    # streams Flate-compressed only, not also ASCII85-encoded (a global reportlab reads as it writes): without its C
    # accelerator the encoding took a third of a report's build time; PDF/A-2 allows binary streams
    rl_config.useA85 = 0
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=1.6 * cm, rightMargin=1.6 * cm, topMargin=1.6 * cm,
                            bottomMargin=1.6 * cm, title=f"Face comparison report, case {data.case_number}",
                            author=data.examiner or "XFR Desktop", subject=data.title or "face comparison",
                            creator=f"XFR Desktop {data.software_version}", keywords="XFR Desktop; face comparison",
                            initialFontName=BODY_FONT, lang="en")
    try:
        doc.build(story, canvasmaker=_canvas_class(data, generated_at, record))
    except XfrError:
        raise
    except Exception as exc:  # noqa: BLE001 - layout failures get one line, not a reportlab traceback
        raise ReportError(f"the report could not be laid out ({type(exc).__name__}: {str(exc)[:200]})") from None
    pdf = buf.getvalue()
    if record.get("page") != record.get("n_pages"):
        raise ReportError("internal: the signature box did not land on the last page")
    return RenderedReport(pdf=pdf, n_pages=int(record["n_pages"]), signature_box=tuple(record["box"]),
                          sha256=hashlib.sha256(pdf).hexdigest(), review_box=tuple(record["review_box"]))


def write_atomically(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise ReportError(f"the folder {path.parent} does not exist")
    atomic_write(path, lambda f: f.write(data), mode=None)  # reports stay owner-only (documented)
    return path

