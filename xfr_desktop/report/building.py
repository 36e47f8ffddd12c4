"""The case report as a PDF (reportlab): a plain :class:`~.report_data.ReportData` in, PDF bytes out.

The data is made in :mod:`.from_store` or :mod:`.from_explanation`, each section laid out in :mod:`.pdf_sections`,
and the PDF/A document assembled in :mod:`.pdfa`; this module puts the sections in order.
"""
from __future__ import annotations

import os
from datetime import datetime

from reportlab.platypus import PageBreak

from . import pdf_sections as sections
from .pdf_blocks import styles
from .pdfa import RenderedReport, assemble_pdf, register_fonts, write_atomically
from .report_data import ReportData


def render_report(data: ReportData, out_path: str | os.PathLike | None = None, *,
                  for_signing: bool = False) -> RenderedReport:
    """Render ``data`` to PDF bytes (and write them atomically to ``out_path`` when given). ``for_signing`` leaves
    the signature box blank for the signature's appearance instead of saying "Not signed"."""
    register_fonts()
    st = styles()
    generated_at = data.generated_at or datetime.now().astimezone().replace(microsecond=0).isoformat()
    record: dict = {}
    # page 1: the case, its propositions, each comparison's LR and conclusion, the conclusion on the case
    story = sections.title_section(data, generated_at, st) + sections.propositions_section(data, st)
    story += sections.summary_section(data, st) + sections.conclusion_section(data, st) + [PageBreak()]
    for section in data.comparisons:
        story += sections.comparison_section(section, st, data)
    story += sections.unreported_section(data, st)
    story += sections.method_appendix(data, st)      # Appendix A: the method and the model, for a court reader
    story += sections.audit_appendix(data, st)       # Appendix B, always last
    story += sections.signature_section(record, for_signing, sections.verification_note(data), st)
    rendered = assemble_pdf(story, data, generated_at, record)
    if out_path is not None:
        write_atomically(out_path, rendered.pdf)
    return rendered
