"""Render the screenshots of docs/examiner-guide.md offscreen: a case with a mated and a non-mated sample pair,
analysed with the bundled model, then each step of the examiner's workflow.

    QT_QPA_PLATFORM=offscreen python scripts/examiner_guide_screenshots.py [--out docs/guide] [--device cpu] \
        [--report-pages docs/images]

Each PNG is reduced to 256 colours (and, when wider, to --width px) so the guide stays small.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "resources" / "samples"


def wait_for(app, signal, timeout_ms: int = 300_000) -> list:
    from PySide6.QtCore import QEventLoop, QTimer

    loop, got = QEventLoop(), []
    signal.connect(lambda *args: (got.append(args), loop.quit()))
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()
    if not got:
        raise TimeoutError(f"no {signal} within {timeout_ms / 1000:.0f} s")
    return got[0]


def settle(app, ms: int = 400) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()
    app.processEvents()


def save(widget, path: Path, width: int) -> None:
    from PIL import Image

    image = widget.grab().toImage()
    tmp = path.with_suffix(".raw.png")
    image.save(str(tmp))
    with Image.open(tmp) as im:
        im = im.convert("RGB")
        if im.width > width:
            im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
        im.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    tmp.unlink()
    print(f"{path} ({path.stat().st_size // 1024} KB)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO / "docs" / "guide"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--report-pages", metavar="DIR", help="also render pages 2, 3 and the last of the co-signed "
                   "report as report_page2.png, report_page3.png, report_signatures.png (docs/images; needs pdftoppm)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from PySide6.QtWidgets import QApplication

    from xfr_desktop.gui import dialogs
    from xfr_desktop.gui.main_window import MainWindow
    from xfr_desktop.gui.style import apply_style
    from xfr_desktop.store import open_store

    app = QApplication.instance() or QApplication(sys.argv)
    app.setApplicationName("xfr-desktop-guide")
    apply_style(app)
    opened = []
    dialogs.add_dialog_hook(opened.append)     # dialogs open non-blocking; keep them to photograph them
    pairs = {p["id"]: p for p in json.loads((SAMPLES / "case.json").read_text())["pairs"]}
    with tempfile.TemporaryDirectory() as data, open_store(data) as store:
        store.set_examiner_name("A. Examiner")
        window = MainWindow(store, device=args.device)
        window.resize(1440, 900)
        window.show()
        case = store.create_case("2026-0142", title="CCTV still against custody photos", examiner="A. Examiner",
                                 organisation="Forensic Lab North")
        window.select_case(case.id)
        for key in ("pair-3", "pair-1"):     # non-mated, then mated (shown last)
            pair = pairs[key]
            window.import_pair(SAMPLES / pair["image_a"], SAMPLES / pair["image_b"], prealigned=False, run=False,
                               ask_face=False)
            window.run_analysis()
            wait_for(app, window.analysis_finished)
        settle(app, 800)
        mated = window.comparison_id
        window.state.set_display(mode="S_pos")
        h, w = window.result.a.S.shape
        window.views.set_cursor(w * 0.5, h * 0.42)
        settle(app)
        save(window, out / "01-main-window.png", args.width)

        panel = window.examination

        def show_tab(title: str) -> None:   # the tab strip under the maps, given the room its forms need
            panel.setCurrentIndex(next(i for i in range(panel.count()) if panel.tabText(i) == title))
            total = sum(window.splitter.sizes())
            window.splitter.setSizes([total - 420, 420])

        for feature, value, note in (("face_outline", "similar", "oval, same width to height"),
                                     ("eyebrows", "similar", "arched, thick lateral end"),
                                     ("nose", "similar", "straight bridge, rounded tip"),
                                     ("ears", "not_assessable", "covered by hair in A"),
                                     ("facial_marks", "dissimilar", "mole above left lip only in B")):
            store.set_feature_assessment(mated, feature, value, note=note)
        panel.set_target(case.id, mated)
        show_tab("Features")
        settle(app)
        save(window, out / "02-features.png", args.width)
        show_tab("Photos")
        settle(app)
        save(panel, out / "03-photo-quality.png", args.width)

        compare = window.open_compare()
        compare.resize(1200, 640)
        compare.mode_combo.setCurrentIndex(compare.mode_combo.findData("wipe"))
        compare.slider.setValue(50)
        settle(app)
        save(compare, out / "04-compare-wipe.png", args.width)
        compare.mode_combo.setCurrentIndex(compare.mode_combo.findData("side"))
        photo = compare.images.photos["a"]
        compare.label_edit.setText("mole")
        compare.annotate("a", photo.shape[1] * 0.43, photo.shape[0] * 0.62)
        compare.tool_combo.setCurrentIndex(1)
        compare.label_edit.setText("right eyebrow")
        compare.annotate("a", photo.shape[1] * 0.30, photo.shape[0] * 0.33)
        compare.annotate("a", photo.shape[1] * 0.47, photo.shape[0] * 0.42)
        settle(app)
        save(compare, out / "05-annotations.png", args.width)
        compare.close()

        show_tab("Review")
        panel.reviewer_edit.setText("B. Reviewer")
        panel.review_note.setPlainText("Features and maps checked; agree with the assessment.")
        panel.record_review()
        settle(app)
        save(panel, out / "06-review.png", args.width)

        window.export_report()
        opened[-1].path_edit.setText("/home/examiner/reports/report-2026-0142.pdf")
        settle(app)
        save(opened[-1], out / "07-export.png", args.width)
        opened[-1].reject()
        window.comparison_id = None
        window.refresh_comparisons(select=mated - 1)
        dialog = window.remove_comparison()
        dialog.reason_edit.setPlainText("Photo B shows a different scene: imported by mistake")
        settle(app)
        save(dialog, out / "08-remove-comparison.png", args.width)
        dialog.reject()
        signing_steps(app, window, case, out, args.width, args.report_pages)
        window.close()
    return 0


def report_pages(pdf: Path, out: Path) -> None:
    """Pages 2, 3 and the last of ``pdf`` as PNGs at 70 dpi (an A4 page 579 × 819 px) for docs/reports.md."""
    import shutil
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["pdftoppm", "-r", "70", "-png", str(pdf), f"{tmp}/p"], check=True)
        pages = sorted(Path(tmp).glob("p-*.png"), key=lambda q: int(q.stem.split("-")[-1]))
        out.mkdir(parents=True, exist_ok=True)
        for page, name in ((pages[1], "report_page2.png"), (pages[2], "report_page3.png"),
                           (pages[-1], "report_signatures.png")):
            shutil.copyfile(page, out / name)
            print(out / name)


def signing_steps(app, window, case, out: Path, width: int, pages_dir: str | None = None) -> None:
    """Sign the case's report as the examiner, co-sign it as the reviewer (Tools ▸ Co-sign report…), then check
    it without a trusted certificate (Tools ▸ Verify signed report…). Keys and files live in a temporary folder;
    the co-sign form is photographed with the paths an examiner would see."""
    from xfr_desktop.report.export import export_case_report
    from xfr_desktop.report.signing import create_identity, load_signing_identity

    with tempfile.TemporaryDirectory() as tmp:
        folder, phrase = Path(tmp), "guide pass-phrase"
        examiner = create_identity("A. Examiner", folder / "a-examiner.p12", phrase, organisation="Forensic Lab North")
        reviewer = create_identity("B. Reviewer", folder / "b-reviewer.p12", phrase, organisation="Forensic Lab North")
        signed, cosigned = folder / "report-2026-0142.pdf", folder / "report-2026-0142-cosigned.pdf"
        export_case_report(window.store, case.id, signed, identity=load_signing_identity(examiner[0], phrase))

        dialog = window.cosign_report()
        for edit, path in ((dialog.report_edit, signed), (dialog.key_edit, reviewer[0]), (dialog.out_edit, cosigned)):
            edit.setText(str(path))
        dialog.pass_edit.setText(phrase)
        dialog.action_button.click()
        if dialog.outcome is None:
            raise RuntimeError(f"co-signing failed: {dialog.status.text()}")
        dialog.status.setText("")
        for edit, shown in ((dialog.report_edit, "/home/reviewer/reports/report-2026-0142.pdf"),
                            (dialog.key_edit, "/home/reviewer/keys/b-reviewer.p12"),
                            (dialog.out_edit, "/home/reviewer/reports/report-2026-0142-cosigned.pdf")):
            edit.setText(shown)
        dialog.pass_edit.setText(phrase)
        dialog.action_button.setEnabled(True)
        settle(app)
        save(dialog, out / "09-cosign.png", width)
        dialog.reject()

        verify = window.verify_report()
        verify.report_edit.setText(str(cosigned))
        verify.run()
        verify.report_edit.setText("/home/examiner/reports/report-2026-0142-cosigned.pdf")
        verify.resize(1180, 320)
        settle(app)
        save(verify, out / "10-verify-cosigned.png", width)
        verify.reject()
        if pages_dir:
            report_pages(cosigned, Path(pages_dir))


if __name__ == "__main__":
    sys.exit(main())
