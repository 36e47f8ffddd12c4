#!/usr/bin/env python3
"""How long the desktop app's GUI thread pauses while an analysis runs on the worker thread.

    python benchmarks/bench_gui_latency.py [--runs 3] [--channels 320] [--engine literal] [--json FILE]

A 10 ms QTimer ticks on the GUI thread of an offscreen main window while a random model (``--channels``, a wider
decoder, the literal engine by default: an analysis of a few seconds on a CPU) analyses a pre-aligned pair; each
gap between two ticks is how long the event loop could not run. Printed per run: the analysis time, the median,
95th percentile and longest gap during the analysis, and the longest gap while the finished result is shown.
Then the τ slider is moved across its span: the median time from a move to the maps redrawn (recombination and
every widget bound to the state, ``ExplanationState.last_update_ms``).
Nothing is asserted: a loaded machine lengthens the gaps. That no model work runs on the GUI thread at all is
tests/gui/test_gui_app.py::test_analysis_work_never_runs_on_the_gui_thread.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def random_model(path: Path, channels: int, decoder_width: int) -> Path:
    import torch

    from xfr_desktop.core.decoder import paper_decoder_spec
    from xfr_desktop.core.model import JointModel, default_spec, save_model

    torch.manual_seed(0)
    spec = default_spec(name=f"bench-random-{channels}", depth=18, widths=[8, 16, 16, channels], channels=channels,
                        decoder=paper_decoder_spec((channels, decoder_width, 16, 8, 3)), threshold=0.3)
    save_model(JointModel(spec).eval(), path)
    return path


def face_like(path: Path, seed: int, size: int = 112) -> Path:
    """A smooth synthetic pre-aligned 'face' (the model is random: only the work it causes matters)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = sum(np.sin(2 * np.pi * (rng.uniform(1, 5) * xx + rng.uniform(1, 5) * yy) + rng.uniform(0, 6.3))
              for _ in range(4))
    img = np.repeat(((img - img.min()) / np.ptp(img) * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    Image.fromarray(img).save(path)
    return path


def wait_for(app, done, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > end:
            raise SystemExit("bench_gui_latency: timed out")
        app.processEvents()
        time.sleep(0.001)


def measure(app, window, comp_id: int, timeout_s: float) -> dict:
    from PySide6.QtCore import QElapsedTimer, QTimer

    clock, last = QElapsedTimer(), [0]
    during: list[int] = []
    showing: list[int] = []
    finished = []
    window.analysis_finished.connect(finished.append)

    def tick():
        now = clock.elapsed()
        (during if window.controller.busy else showing).append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    clock.start()
    timer.start()
    t0 = time.perf_counter()
    window.run_analysis()
    wait_for(app, lambda: finished, timeout_s)
    seconds = time.perf_counter() - t0
    shown_until = time.monotonic() + 0.05   # include showing the result (views, table, one repaint)
    wait_for(app, lambda: time.monotonic() > shown_until, timeout_s)
    timer.stop()
    window.analysis_finished.disconnect()
    return {"analysis_s": round(seconds, 3), "ticks": len(during), "median_gap_ms": round(statistics.median(during), 1),
            "p95_gap_ms": sorted(during)[int(0.95 * (len(during) - 1))], "max_gap_ms": max(during),
            "max_gap_showing_ms": max(showing, default=0)}


def slider_moves(window, moves: int = 20) -> float:
    slider, times = window.controls.threshold_slider, []
    for i in range(moves):
        slider.setValue(int(slider.maximum() * (i + 1) / (moves + 1)))
        times.append(window.state.last_update_ms)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--channels", type=int, default=320)
    p.add_argument("--engine", default="literal", choices=("fast", "batched", "literal"))
    p.add_argument("--timeout", type=float, default=300, help="seconds per analysis")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    from xfr_desktop.gui.main_window import MainWindow
    from xfr_desktop.store import open_store

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = random_model(tmp / "model.pt", args.channels, 64)
        store = open_store(tmp / "data")
        window = MainWindow(store, model_path=str(model), device="cpu", engine=args.engine, trust_jitter=0)
        window.resize(1280, 800)
        window.show()
        wait_for(app, lambda: window.engine_ready, args.timeout)   # torch imported before measuring
        case = store.create_case("BENCH-1", title="GUI latency", examiner="bench")
        window.select_case(case.id)
        comp_id = window.import_pair(face_like(tmp / "a.png", 0), face_like(tmp / "b.png", 1), prealigned=True,
                                     run=False)
        runs = []
        for i in range(args.runs):
            runs.append(measure(app, window, comp_id, args.timeout))
            print(f"run {i + 1}: analysis {runs[-1]['analysis_s']:.2f} s; GUI-thread gaps during it: median "
                  f"{runs[-1]['median_gap_ms']} ms, p95 {runs[-1]['p95_gap_ms']} ms, longest {runs[-1]['max_gap_ms']}"
                  f" ms; longest while showing the result {runs[-1]['max_gap_showing_ms']} ms")
        slider_ms = slider_moves(window)
        window.close_without_asking()
        store.close()
    print(f"τ slider move to maps redrawn: median {slider_ms:.1f} ms over 20 moves ({args.channels} channels)")
    summary = {"runs": runs, "median_gap_ms": round(statistics.median(r["median_gap_ms"] for r in runs), 1),
               "slider_update_median_ms": round(slider_ms, 2),
               "channels": args.channels, "engine": args.engine, "cpus": os.cpu_count(),
               "load_average": os.getloadavg()}
    print(f"median GUI-thread gap over {args.runs} runs: {summary['median_gap_ms']} ms (timer interval 10 ms; "
          f"load average {summary['load_average'][0]:.1f} on {summary['cpus']} CPUs)")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
