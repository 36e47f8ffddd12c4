"""The application's look: Fusion, a light palette, a few style-sheet rules (the verdict colours), the icon."""
from __future__ import annotations

from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from ..paths import RESOURCES_DIR


def app_icon() -> QIcon:
    for name in ("xfr-desktop.png", "xfr-desktop.svg"):
        path = RESOURCES_DIR / "icons" / name
        if path.is_file():
            return QIcon(str(path))
    return QIcon()


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
