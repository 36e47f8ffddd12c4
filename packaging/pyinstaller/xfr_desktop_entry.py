"""Entry point of the PyInstaller build: the same as the `xfr-desktop` console script.

With XFR_STARTUP_PROBE=1 in the environment it also prints, once, ``XFR_STARTUP {...}`` with the wall-clock time
of the main window's first show event and of the first event-loop pass after it (and whether torch was imported
by then), then quits: `benchmarks/bench_startup.py` uses it for the frozen build and for an installed venv alike.
"""
import os
import sys
import time


def install_startup_probe() -> None:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from xfr_desktop.gui.main_window import MainWindow

    marks = {}
    original_show_event = MainWindow.showEvent

    def show_event(self, event):
        original_show_event(self, event)
        if "shown" in marks:
            return
        marks["shown"] = time.time()
        marks["torch_loaded_at_show"] = "torch" in sys.modules

        def ready():
            marks["ready"] = time.time()
            print("XFR_STARTUP " + repr(marks), flush=True)
            QApplication.instance().exit(0)

        QTimer.singleShot(0, ready)

    MainWindow.showEvent = show_event


def run() -> int:
    if os.environ.get("XFR_STARTUP_PROBE") == "1":
        install_startup_probe()
    from xfr_desktop.gui.app import main

    return main()


if __name__ == "__main__":
    sys.exit(run())
