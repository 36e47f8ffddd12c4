#!/usr/bin/env python3
"""Start-up time of the desktop app: from launching `xfr-desktop` to its main window shown.

    python benchmarks/bench_startup.py [--runs 7] [--offscreen] [--python PATH | --frozen EXE] [--json FILE]

Each run is a fresh process (what a user's double-click does: interpreter start, imports, the case database
opened, the window built). The child is `packaging/pyinstaller/xfr_desktop_entry.py` (`xfr_desktop.gui.app.main`,
exactly what the `xfr-desktop` script runs) or a PyInstaller build of it, with XFR_STARTUP_PROBE=1: the main
window's first show event and the first pass of the event loop after it are timestamped (wall clock, against the
launch time the parent took just before spawning), then the app quits. `--python` picks the environment, e.g. an
installation made by the offline bundle (PREFIX/current/venv/bin/python). It also records
whether torch was already imported when the window appeared (it should not be: the analysis worker imports it).
Run 0 opens a new data folder (creates the database) and is reported apart; the medians are over the warm runs.
For reference the time of `python -c "import torch"` is measured the same way.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENTRY = REPO / "packaging" / "pyinstaller" / "xfr_desktop_entry.py"  # xfr-desktop's main + the XFR_STARTUP_PROBE hook


def launch(cmd: list[str], env: dict, timeout: float) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return t0, proc


def startup_run(app: list[str], data_dir: Path, extra: list[str], env: dict, timeout: float) -> dict:
    t0, proc = launch([*app, "--data-dir", str(data_dir), *extra], dict(env, XFR_STARTUP_PROBE="1"), timeout)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("XFR_STARTUP ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"bench_startup: the app did not start (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    marks = ast.literal_eval(line[len("XFR_STARTUP "):])
    return {"shown_s": marks["shown"] - t0, "ready_s": marks["ready"] - t0,
            "torch_loaded_at_show": marks["torch_loaded_at_show"]}


def import_torch_run(python: str, env: dict, timeout: float) -> float:
    t0, proc = launch([python, "-c", "import torch, time; print(time.time())"], env, timeout)
    if proc.returncode != 0:
        raise SystemExit(f"bench_startup: cannot import torch with {python}: {proc.stderr[-500:]}")
    return float(proc.stdout.strip().splitlines()[-1]) - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=7, help="warm runs (default 7; one more cold run comes first)")
    p.add_argument("--python", default=sys.executable, help="interpreter of the installation to measure "
                   "(e.g. PREFIX/current/venv/bin/python; default: this one)")
    p.add_argument("--frozen", metavar="EXE", help="measure a PyInstaller build's xfr-desktop executable instead")
    p.add_argument("--offscreen", action="store_true", help="Qt's offscreen platform (default when no display)")
    p.add_argument("--model", help="model file passed to the app (default: the app's own choice)")
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args(argv)

    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    headless = sys.platform.startswith("linux") and not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))
    extra = ["--offscreen"] if (args.offscreen or headless) else []
    if args.model:
        extra += ["--model", args.model]

    with tempfile.TemporaryDirectory(prefix="xfr-bench-startup-") as tmp:
        data_dir = Path(tmp) / "data"
        app = [args.frozen] if args.frozen else [args.python, str(ENTRY)]
        cold = startup_run(app, data_dir, extra, env, args.timeout)
        warm = [startup_run(app, data_dir, extra, env, args.timeout) for _ in range(args.runs)]
    torch_import = [import_torch_run(args.python, env, args.timeout) for _ in range(max(3, args.runs // 2))]

    figures = {
        "command": " ".join([args.frozen or f"{args.python} {ENTRY.relative_to(REPO)}", "--data-dir DIR", *extra]),
        "app": "frozen (PyInstaller)" if args.frozen else "python environment",
        "platform": "offscreen" if extra[:1] == ["--offscreen"] else "display",
        "runs": args.runs,
        "cold_first_start_shown_s": round(cold["shown_s"], 3),
        "median_shown_s": round(statistics.median(r["shown_s"] for r in warm), 3),
        "median_ready_s": round(statistics.median(r["ready_s"] for r in warm), 3),
        "min_shown_s": round(min(r["shown_s"] for r in warm), 3),
        "max_shown_s": round(max(r["shown_s"] for r in warm), 3),
        "torch_loaded_at_show": any(r["torch_loaded_at_show"] for r in [cold, *warm]),
        "median_import_torch_s": round(statistics.median(torch_import), 3),
    }
    print(f"xfr-desktop start-up ({figures['platform']}, {args.runs} warm runs + 1 cold):")
    print(f"  launch -> main window shown:   median {figures['median_shown_s']:.2f} s "
          f"(min {figures['min_shown_s']:.2f}, max {figures['max_shown_s']:.2f})")
    print(f"  launch -> first event loop pass after show: median {figures['median_ready_s']:.2f} s")
    print(f"  first start on a new data folder (creates the database): {figures['cold_first_start_shown_s']:.2f} s")
    print(f"  torch imported before the window appeared: {'yes' if figures['torch_loaded_at_show'] else 'no'}")
    print(f"  reference, `python -c 'import torch'`: median {figures['median_import_torch_s']:.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
