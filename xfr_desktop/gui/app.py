"""``xfr-desktop``: the desktop application's entry point.

    xfr-desktop [--data-dir DIR] [--model PATH] [--device cpu|cuda]
    xfr-desktop --demo                                  # the bundled sample case, analysed
    xfr-desktop --offscreen --demo --screenshot FILE.png  # render the window after the analysis, exit 0

Without a display (Linux, no DISPLAY or WAYLAND_DISPLAY) ``--demo`` still runs: offscreen, with the screenshot
written to ``<data_dir>/demo/xfr-desktop-demo.png`` unless ``--screenshot`` names another file.
Torch is not imported here: the worker thread imports it when the window is up.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from ..casework import ensure_sample_case, load_sample_case  # noqa: F401 (load_sample_case: the case file)
from ..core.trust_display import DEFAULT_JITTER

SCREENSHOT_SIZE = (1280, 800)
DEMO_TIMEOUT_S = 300
EXIT_OK, EXIT_USAGE, EXIT_FAILED, EXIT_TIMEOUT = 0, 2, 1, 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xfr-desktop", description="XFR Desktop: explainable face recognition for "
                                "forensic examiners.")
    p.add_argument("--data-dir", metavar="DIR", help="case database and image store (default: $XFR_DATA_DIR or the "
                   "user data folder)")
    p.add_argument("--model", metavar="PATH", help="model file (default: the store's active model, else the "
                   "bundled models/xfr-dlib-affine-joint.pt)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the model runs (default: CUDA when available)")
    p.add_argument("--trust-jitter", type=int, default=DEFAULT_JITTER, metavar="N",
                   help=f"jitter draws of each analysis's map stability check (default {DEFAULT_JITTER}; 0: none)")
    p.add_argument("--demo", action="store_true", help="open the bundled sample case and analyse its first pair")
    p.add_argument("--offscreen", action="store_true", help="no window on screen (Qt's offscreen platform)")
    p.add_argument("--screenshot", metavar="FILE.png", help="after the analysis, save the window as PNG and exit")
    p.add_argument("--timeout", type=float, default=DEMO_TIMEOUT_S, help=argparse.SUPPRESS)
    p.add_argument("--version", action="store_true", help="print the version and exit")
    return p


def display_available() -> bool:
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


# --- the sample case -----------------------------------------------------------------------------------------
def open_demo_case(window, store) -> bool:
    """Select the sample case (created on first use) and show its first pair: stored result, else analyse.

    Returns True when an analysis was started, False when a stored result is shown.
    """
    case, comps = ensure_sample_case(store)  # every pair the case text names; unattended: the largest face
    window.select_case(case.id)
    for comp in comps:
        if comp.n_results:
            window.refresh_comparisons(select=comp.id)
            return False
    window.refresh_comparisons(select=comps[0].id)  # never analysed: analyse the first pair now
    return window.run_analysis()


class ScreenshotTaker:
    """Waits for the shown result, renders the window to PNG and quits (exit code through ``app.exit``)."""

    def __init__(self, app, window, path: Path, timeout_s: float):
        from PySide6.QtCore import QTimer

        self.app, self.window, self.path = app, window, Path(path)
        self.started = time.monotonic()
        self.done = False
        window.result_shown.connect(self.on_result)
        window.analysis_failed.connect(self.on_failed)
        window.analysis_cancelled.connect(self.on_cancelled)
        self.timer = QTimer()
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.on_timeout)
        self.timer.start(int(timeout_s * 1000))

    def on_result(self, _result_id: int) -> None:
        from PySide6.QtCore import QTimer

        if not self.done:
            QTimer.singleShot(300, self.capture)  # let layouts and pyqtgraph settle

    def capture(self) -> None:
        if self.done:
            return
        self.done = True
        self.window.resize(*SCREENSHOT_SIZE)
        result = self.window.result
        if result is not None:  # show the crosshair and its readout between the eyes
            h, w = result.a.S.shape
            self.app.processEvents()
            self.window.views.reset_zoom()
            self.window.views.set_cursor(w * 0.5, h * 0.42)
        self.app.processEvents()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ok = self.window.grab().save(str(self.path))
        if not ok:
            print(f"xfr-desktop: cannot write the screenshot {self.path}", file=sys.stderr)
            self.app.exit(EXIT_FAILED)
            return
        print(f"xfr-desktop: screenshot saved to {self.path} ({time.monotonic() - self.started:.1f} s)")
        self.app.exit(EXIT_OK)

    def on_failed(self, kind: str, message: str) -> None:
        if not self.done:
            self.done = True
            print(f"xfr-desktop: analysis failed: {message}", file=sys.stderr)
            self.app.exit(EXIT_FAILED)

    def on_cancelled(self) -> None:
        self.on_failed("Cancelled", "cancelled")

    def on_timeout(self) -> None:
        if not self.done:
            self.done = True
            print(f"xfr-desktop: the analysis did not finish within {self.timer.interval() / 1000:.0f} s",
                  file=sys.stderr)
            self.window.controller.cancel()
            self.app.exit(EXIT_TIMEOUT)


_QUIET_QT_MESSAGES = ("propagateSizeHints",)  # the offscreen platform's notice about dialogs; not a problem


def _qt_message(mode, context, message: str) -> None:
    from PySide6.QtCore import QtMsgType

    if any(q in message for q in _QUIET_QT_MESSAGES):
        return
    if mode in (QtMsgType.QtWarningMsg, QtMsgType.QtCriticalMsg, QtMsgType.QtFatalMsg):
        print(f"Qt: {message}", file=sys.stderr)


def _headless_demo(args) -> bool | None:
    """True: no display, so the demo renders offscreen; None: no display and no demo (a usage error)."""
    if args.offscreen or display_available():
        return False
    if not args.demo:
        print("xfr-desktop: no display found (DISPLAY/WAYLAND_DISPLAY unset). Start it in a desktop session, or"
              " use --demo / --offscreen --screenshot FILE.png to render without one.", file=sys.stderr)
        return None
    print("xfr-desktop: no display found; running the demo offscreen.")
    return True


def _model_path(args, store) -> str | None:
    """--model, else the model the training wizard made active (when its file is still there)."""
    from ..core.errors import XfrError

    if args.model is not None:
        return args.model
    try:
        active = store.active_model()
    except XfrError:
        return None
    return active.path if active is not None and Path(active.path).is_file() else None


def _qt_application():
    from PySide6.QtCore import qInstallMessageHandler
    from PySide6.QtWidgets import QApplication

    from .style import app_icon, apply_style

    qInstallMessageHandler(_qt_message)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("XFR Desktop")
    app.setOrganizationName("XFR")
    app.setWindowIcon(app_icon())
    apply_style(app)
    return app


def main(argv: list[str] | None = None) -> int:
    # Before torch loads: idle OpenMP threads sleep instead of spinning, so they never starve the GUI thread
    # (and a busy machine does not slow the analysis down many times over).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    if args.version:
        from .. import __version__

        print(f"xfr-desktop {__version__}")
        return EXIT_OK
    headless_demo = _headless_demo(args)
    if headless_demo is None:
        return EXIT_USAGE
    if args.offscreen or headless_demo:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    if args.screenshot and not args.demo:
        print("xfr-desktop: --screenshot needs --demo (it renders the window once the demo analysis is shown)",
              file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from ..core.errors import XfrError
    from ..store import open_store

    try:
        store = open_store(args.data_dir)
    except XfrError as exc:
        print(f"xfr-desktop: {exc}", file=sys.stderr)
        return EXIT_FAILED
    screenshot = Path(args.screenshot) if args.screenshot else None
    if headless_demo and screenshot is None:
        screenshot = Path(store.data_dir) / "demo" / "xfr-desktop-demo.png"

    from .main_window import MainWindow

    app = _qt_application()
    from PySide6.QtCore import QSettings

    # the examiner's window layout is kept between sessions; a screenshot always shows the default layout
    window = MainWindow(store, model_path=_model_path(args, store),
                        device=None if args.device == "auto" else args.device,
                        settings=None if screenshot is not None else QSettings(),
                        trust_jitter=max(0, args.trust_jitter))
    if screenshot is not None:
        window.resize(*SCREENSHOT_SIZE)
    window.show()
    taker = ScreenshotTaker(app, window, screenshot, args.timeout) if screenshot is not None else None
    if args.demo:
        try:
            open_demo_case(window, store)
        except (XfrError, FileNotFoundError, RuntimeError) as exc:
            print(f"xfr-desktop: cannot open the sample case: {exc}", file=sys.stderr)
            if taker is not None:
                window.close_without_asking()
                store.close()
                return EXIT_FAILED
    code = app.exec()
    window.close_without_asking()
    store.close()
    if taker is not None and code == EXIT_OK:
        print(f"xfr-desktop: demo outputs in {store.data_dir} (database {store.db_path.name}, screenshot "
              f"{screenshot})")
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
