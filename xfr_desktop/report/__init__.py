"""Case reports: the report data, its PDF (reportlab), PAdES signing and verification (pyHanko). Qt-free.

    from xfr_desktop.report import ReportData, build_report_for_case, report_data_from_explanation, render_report
    from xfr_desktop.report.export import export_case_report, cosign_report
    from xfr_desktop.report.signing import sign_pdf, load_signing_identity, create_identity
    from xfr_desktop.report.signature_check import verify_pdf
"""
from __future__ import annotations

from .building import render_report
from .from_explanation import comparison_from_explanation, report_data_from_explanation
from .from_store import build_report_for_case
from .pdfa import RenderedReport
from .report_data import ChannelInfo, ComparisonSection, ImageInfo, ModelInfo, ReportData

__all__ = [
    "ReportData", "ComparisonSection", "ImageInfo", "ModelInfo", "ChannelInfo", "RenderedReport",
    "build_report_for_case", "comparison_from_explanation", "report_data_from_explanation", "render_report",
]
