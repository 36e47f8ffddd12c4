"""Issue 24: what the examiner reads agrees everywhere: one number per comparison, faces never chosen silently,
the co-sign page and the reviews, one provenance text, the LR wording (Qt-free parts; the app's in
test_gui_reads.py)."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from xfr_desktop.cli import main as xfr_main
from xfr_desktop.core.explain import explain_pair
from xfr_desktop.core.serialize import result_payload
from xfr_desktop.store import open_store

pypdf = pytest.importorskip("pypdf")


def xfr(data, *args) -> int:
    return xfr_main(["--data-dir", str(data), *map(str, args)])


def _noise(path, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (150, 130, 3), dtype=np.uint8)).save(path)
    return path


def _analysed(store, comp, model, seed=0):
    rng = np.random.default_rng(seed)
    a, b = (rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(2))
    return store.save_result(comp.id, result_payload(explain_pair(model, a, b), model_sha256="ee" * 32,
                                                     model_name="tiny"))


def interleaved_case(store, tmp_path, model):
    """A case whose three comparisons are database rows 3, 4, 5 (an earlier case holds 1 and 2); its second
    comparison is removed, its first and third are analysed."""
    shas = [store.import_image(_noise(tmp_path / f"p{i}.png", i)) for i in range(2)]
    other = store.create_case("OTHER-1")
    for _ in range(2):
        store.add_comparison(other.id, *shas)
    case = store.create_case("NUM-1", title="Numbering", examiner="Ann Examiner")
    comps = [store.add_comparison(case.id, *shas) for _ in range(3)]
    store.remove_comparison(comps[1].id, "imported by mistake")
    for comp in (comps[0], comps[2]):
        _analysed(store, comp, model)
    return case, comps


def pdf_text(pdf: bytes) -> str:
    import io

    return " ".join(" ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages).split())


# --- item 1: one number per comparison ---------------------------------------------------------------------------
def test_a_comparison_has_one_number_in_the_store_cli_report_and_audit_trail(tmp_path, tiny_model, capsys):
    from xfr_desktop.report import render_report
    from xfr_desktop.report import build_report_for_case

    data = tmp_path / "data"
    with open_store(data) as store:
        case, comps = interleaved_case(store, tmp_path, tiny_model)
        assert [c.id for c in comps] == [3, 4, 5]
        assert [c.number for c in store.list_comparisons(case.id)] == [1, 2, 3]
        assert store.get_comparison(comps[2].id).number == 3        # removing number 2 renumbers nothing
        added = [e.details_dict for e in store.list_audit(case.id) if e.action == "comparison.added"]
        assert [d["number"] for d in added] == [1, 2, 3]
        text = pdf_text(render_report(build_report_for_case(store, case.id)).pdf)
    assert xfr(data, "cases", "show", "NUM-1") == 0
    shown = capsys.readouterr().out
    assert "    3. p0.png (face 1) vs p1.png (face 1)" in shown and "(id 5)" not in shown
    assert xfr(data, "cases", "conclude", "NUM-1", "--comparison", "3", "--text", "note on three") == 0
    with open_store(data) as store:
        assert store.latest_conclusion(case.id, comparison_id=comps[2].id).text == "note on three"
    assert "Comparison 1: p0.png vs p1.png" in text and "Comparison 3: p0.png vs p1.png" in text
    assert "Comparison 2: p0.png vs p1.png" in text                 # listed as removed, under its own number
    appendix = text[text.index("Appendix B: audit trail"):]
    assert "comparison.removed · comparison 2" in appendix and "comparison.added · comparison 3" in appendix
    assert "comparison: 3" in appendix                              # analysis.saved names it by number
    for row_id in ("comparison 4", "comparison 5", "comparison_id"):
        assert row_id not in appendix, row_id


# --- item 2: the command line never chooses a face silently -------------------------------------------------------


@pytest.fixture
def faces_photos(tmp_path, samples_dir):
    """Two sample photos side by side (two faces), a flat grey photo (none) and a one-face sample."""
    images = samples_dir / "images"
    a, b = (np.asarray(Image.open(images / n).convert("RGB")) for n in ("John_Kerry_0009.jpg", "Mark_Swartz_0001.jpg"))
    two, grey = tmp_path / "two_people.png", tmp_path / "grey_wall.png"
    Image.fromarray(np.concatenate([a, b], axis=1)).save(two)
    Image.fromarray(np.full((250, 250, 3), 128, np.uint8)).save(grey)
    return {"two": two, "none": grey, "one": images / "Sergey_Lavrov_0003.jpg"}


def _sheet_named_in(err: str):
    from pathlib import Path

    sheet = Path(err.split("numbered in ")[1].split(")")[0])
    assert sheet.is_file() and Image.open(sheet).size[1] == 160   # the photo and its two faces, one row
    return sheet


def test_add_pair_refuses_a_photo_without_a_face_or_with_unchosen_faces(tmp_path, faces_photos, capsys,
                                                                         monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))   # where the contact sheet goes
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    data = tmp_path / "data"
    assert xfr(data, "cases", "create", "FACES-1") == 0
    capsys.readouterr()
    assert xfr(data, "cases", "add-pair", "FACES-1", faces_photos["none"], faces_photos["one"]) == 2
    assert "Photo A (grey_wall.png): no face found" in capsys.readouterr().err
    assert xfr(data, "cases", "add-pair", "FACES-1", faces_photos["one"], faces_photos["two"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Photo B (two_people.png) shows 2 faces (face 1: 98×136 px at (319, 63), " \
                                      "face 2: 86×118 px at (79, 69);" in err and "choose one with --face-b K" in err
    assert _sheet_named_in(err).parent == tmp_path / "tmp"
    with open_store(data) as store:                                   # nothing was stored for either refusal
        case = store.find_case("FACES-1")
        assert store.list_comparisons(case.id) == [] and store.get_case(case.id).n_comparisons == 0
    assert xfr(data, "cases", "add-pair", "FACES-1", faces_photos["one"], faces_photos["two"], "--face-b", "2") == 0
    assert "added comparison 1 to case FACES-1: face 1 of A, face 2 of B" in capsys.readouterr().out
    assert xfr(data, "cases", "add-pair", "FACES-1", faces_photos["one"], faces_photos["two"], "--face-b", "3") == 2
    assert "face 3 requested but 2 faces found" in capsys.readouterr().err


def test_explain_refuses_unchosen_faces_and_states_the_likelihood_ratio(tmp_path, faces_photos, model_file,
                                                                        capsys):
    from xfr_desktop.core.calibration import calibration_path, fit_calibration
    from xfr_desktop.core.model import file_sha256

    out = tmp_path / "out"
    args = ["explain", str(faces_photos["two"]), str(faces_photos["one"]), "--out", str(out), "--model",
            str(model_file)]
    assert xfr_main(args) == 2
    err = capsys.readouterr().err
    assert "A (two_people.png) shows 2 faces" in err and "choose one with --face-a K" in err
    assert _sheet_named_in(err).parent == out and not (out / "result.json").exists()
    assert xfr_main(args[:2] + [str(faces_photos["none"])] + args[3:] + ["--face-a", "2"]) == 2
    assert "B (grey_wall.png): no face found" in capsys.readouterr().err
    rng = np.random.default_rng(0)   # with a calibration the LR leads the printed result (item 7)
    calibration = fit_calibration(rng.normal(0.8, 0.1, 300), rng.normal(0.1, 0.1, 300),
                                  model_sha256=file_sha256(model_file))
    calibration.save(calibration_path(model_file))
    assert xfr_main(args + ["--face-a", "2"]) == 0
    printed = capsys.readouterr().out
    info = json.loads((out / "result.json").read_text())
    assert info["face_number"] == {"a": 2, "b": 1} and info["faces_found"] == {"a": 2, "b": 1}
    lr = info["likelihood_ratio"]
    assert printed.startswith(f"LR {lr['text']} ({lr['verbal_equivalent']}); model decision at τ = ")
    assert "faces: A face 2 of 2, B face 1 of 1" in printed


# --- item 5: one provenance text for the app and the report ------------------------------------------------------
def nikon_photo(path):
    """A JPEG whose EXIF names its camera (make NIKON CORPORATION, model NIKON D3S) and when it was taken."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "NIKON CORPORATION", "NIKON D3S"
    exif.get_ifd(0x8769)[0x9003] = "2024:05:17 10:42:03"
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(path, quality=90, exif=exif)
    return path


def test_the_report_and_the_photos_tab_read_the_camera_from_one_formatter(tmp_path, tiny_model):
    from xfr_desktop.core.image_quality import assess_photo, quality_rows
    from xfr_desktop.report import render_report
    from xfr_desktop.report import build_report_for_case

    photo = nikon_photo(tmp_path / "nikon.jpg")
    data = assess_photo(photo, np.asarray(Image.open(photo).convert("RGB")))
    rows = dict(quality_rows(data))
    assert rows["Camera (EXIF)"] == "NIKON CORPORATION NIKON D3S" and rows["Taken at (EXIF)"] == "2024:05:17 10:42:03"
    assert rows["JPEG quality (estimated)"] == "about 90" and rows["Face used"] == "—"
    assert dict(quality_rows({"exif": {"make": "Canon", "model": "EOS 5D"}}))["Camera (EXIF)"] == "Canon EOS 5D"
    assert {text for _, text in quality_rows(None)} == {"—"}
    with open_store(tmp_path / "data") as store:
        case, comps = interleaved_case(store, tmp_path, tiny_model)
        store.record_image_quality(comps[0].id, "a", data)
        text = pdf_text(render_report(build_report_for_case(store, case.id)).pdf)
    assert "Camera (EXIF) NIKON CORPORATION NIKON D3S" in text and "about 90" in text


# --- item 3: the co-sign page says what was and was not reviewed ------------------------------------------------
def _appearance_text(pdf: bytes, field: str) -> bytes:
    import io

    def streams(xobject, depth=0):
        yield xobject.get_data()
        for child in (xobject.get("/Resources", {}).get("/XObject", {}) or {}).values():
            if depth < 4:
                yield from streams(child.get_object(), depth + 1)

    last = pypdf.PdfReader(io.BytesIO(pdf)).pages[-1]
    for annot in last.get("/Annots", []):
        widget = annot.get_object()
        if widget.get("/T", widget.get("/Parent", {}).get("/T")) == field:
            return b"".join(streams(widget["/AP"]["/N"].get_object()))
    raise AssertionError(f"no {field} widget on the last page")


def test_a_cosigned_report_states_which_comparisons_were_reviewed(tmp_path, tiny_model):
    from xfr_desktop.report.export import cosign_report, export_case_report
    from xfr_desktop.report.signing import REVIEW_FIELD, create_identity, load_signing_identity

    keys = {name: create_identity(name, tmp_path / f"{name.split()[0]}.p12", "pass phrase 24")[0]
            for name in ("Ann Examiner", "Rex Reviewer")}
    with open_store(tmp_path / "data") as store:
        case, comps = interleaved_case(store, tmp_path, tiny_model)
        store.add_review(comps[0].id, "agree", reviewer="Rex Reviewer", note="same features")
        export_case_report(store, case.id, tmp_path / "signed.pdf",
                           identity=load_signing_identity(keys["Ann Examiner"], "pass phrase 24"))
        cosigned = cosign_report(tmp_path / "signed.pdf", tmp_path / "cosigned.pdf",
                                 load_signing_identity(keys["Rex Reviewer"], "pass phrase 24")).signed.pdf
    text = pdf_text(cosigned)
    assert ("Recorded verification (ACE-V) in this report: comparison 1 by Rex Reviewer (agrees); none for "
            "comparison 3. A reviewer's signature below co-signs the report as it stands; it records no review of "
            "a comparison.") in text
    assert text.count("Verification (ACE-V): no review recorded for this comparison.") == 1     # comparison 3's
    stamp = _appearance_text(cosigned, REVIEW_FIELD)
    assert b"Co-signed by the reviewer" in stamp and b"(by Rex Reviewer)" in stamp
    assert b"Verified" not in stamp and "Verified" not in text


# --- item 7: the verbal LR names the case's propositions; `xfr --examiner` names the case's examiner ------------
def test_the_verbal_equivalent_names_the_cases_own_propositions(tmp_path, tiny_model):
    from xfr_desktop.core.evaluative import DEFAULT_DEFENCE, DEFAULT_PROSECUTION, lr_statement
    from xfr_desktop.report import render_report
    from xfr_desktop.report import build_report_for_case

    own = ("Hp: the man filmed at the bank is Mr Smith.", "Hd: the man filmed is someone else")
    assert lr_statement(50.0, propositions=own).verbal == \
        "moderate support for Hp: the man filmed at the bank is Mr Smith"
    assert lr_statement(1 / 50, propositions=("the man is Mr Smith", "he is not")).verbal == \
        "moderate support for Hd: he is not"
    default = lr_statement(50.0, propositions=(DEFAULT_PROSECUTION, DEFAULT_DEFENCE)).verbal
    assert default == lr_statement(50.0).verbal and "the two images show the same person" in default
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(2))
    with open_store(tmp_path / "data") as store:
        case, comps = interleaved_case(store, tmp_path, tiny_model)
        store.save_result(comps[0].id, result_payload(explain_pair(tiny_model, a, b), model_sha256="ee" * 32,
                                                      parameters={"likelihood_ratio": {"value": 50.0}}))
        store.choose_report_result(comps[0].id, store.list_results(comps[0].id)[-1].id)
        store.set_propositions(case.id, prosecution=own[0], defence=own[1])
        text = pdf_text(render_report(build_report_for_case(store, case.id)).pdf)
    assert "The findings provide moderate support for Hp: the man filmed at the bank is Mr Smith." in text
    assert "the two images show the same person" not in text


def test_the_global_examiner_option_names_the_new_cases_examiner(tmp_path, capsys):
    data = tmp_path / "data"
    assert xfr_main(["--data-dir", str(data), "--examiner", "Ann Examiner", "cases", "create", "EX-1"]) == 0
    assert xfr(data, "cases", "create", "EX-2", "--examiner", "Bo Other") == 0
    with open_store(data) as store:
        assert store.find_case("EX-1").examiner == "Ann Examiner" and store.find_case("EX-2").examiner == "Bo Other"
        assert store.list_audit(store.find_case("EX-1").id)[0].actor == "Ann Examiner"


# --- item 6: one scale rule for the maps (core.map_style.kind_scale) ----------------------------------------------
def mated_pair(model):
    """A face and a slightly noisy copy: a high score whose S⁻ peaks at a few percent of S."""
    yy, xx = np.mgrid[0:112, 0:112] / 112
    a = np.stack([np.sin(2 * np.pi * (f * xx + 2 * yy)) for f in (1, 2, 3)], axis=2)
    a = ((a - a.min()) / np.ptp(a) * 255).astype(np.uint8)
    noise = np.random.default_rng(1).integers(-6, 7, a.shape)
    return explain_pair(model, a, np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8))


def _orange_tint(rgb: np.ndarray) -> int:
    """How far the most orange pixel leans to S⁻'s colour (R > G > B) from the grey face: 0 for an untinted face."""
    r, g, b = (rgb[..., c].astype(int) for c in range(3))
    return int(np.max(np.where(g > b, r - b, 0)))


def test_the_reports_s_minus_figure_of_a_mated_pair_is_not_blank(tiny_model):
    from xfr_desktop.report import render_report, report_data_from_explanation

    result = mated_pair(tiny_model)
    peak = {k: max(float(getattr(getattr(result, s), k).max()) for s in "ab") for k in ("S", "S_neg")}
    assert 0 < peak["S_neg"] < 0.1 * peak["S"]          # the issue's case: on S's scale S⁻ does not show
    pdf = render_report(report_data_from_explanation(result, model=tiny_model, case_number="C-6")).pdf
    overlays = [np.asarray(img.image.convert("RGB")) for page in pypdf.PdfReader(io.BytesIO(pdf)).pages
                for img in page.images if img.image.size == (224, 224)]   # the maps: 112-pixel faces, twice
    assert len(overlays) >= 6
    assert max(_orange_tint(o) for o in overlays) > 40, [_orange_tint(o) for o in overlays]
    flat = " ".join(pdf_text(pdf).split())
    assert "S⁻ (×10" in flat and "cosine score per pixel), max" in flat   # its own unit and maximum


def test_a_value_reads_in_its_colour_bars_unit():
    from xfr_desktop.core.map_style import colour_bar_caption, colour_scale, scale_value

    scale = colour_scale(0.0, 2.3e-4)
    assert colour_bar_caption("S_neg", scale) == "S⁻ (×10⁻⁴ cosine score per pixel), max 2.3"
    assert scale_value(2.3e-6, scale) == "0.02" and scale_value(-1.234e-4, scale, signed=True) == "−1.23"
    assert scale_value(1.5e-4, None) == "0.00015"


# --- a fresh co-signed report read page by page (issue 24, "done when") ---------------------------------------------
@pytest.fixture
def own_propositions_report(tmp_path, tiny_model):
    """A case report whose first comparison's result carries an LR of 10.0408, under propositions typed without
    their Hp/Hd labels; (text of page 1, text of the whole report)."""
    from xfr_desktop.report import render_report
    from xfr_desktop.report import build_report_for_case

    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(2))
    with open_store(tmp_path / "data") as store:
        case, comps = interleaved_case(store, tmp_path, tiny_model)
        store.save_result(comps[0].id, result_payload(explain_pair(tiny_model, a, b), model_sha256="ee" * 32,
                                                      parameters={"likelihood_ratio": {"value": 10.0408}}))
        store.choose_report_result(comps[0].id, store.list_results(comps[0].id)[-1].id)
        store.set_propositions(case.id, prosecution="the man filmed is Mr Smith", defence="he is someone else")
        pdf = render_report(build_report_for_case(store, case.id)).pdf
    first = " ".join(pypdf.PdfReader(io.BytesIO(pdf)).pages[0].extract_text().split())
    return first, pdf_text(pdf)


def test_the_report_names_the_propositions_by_the_labels_its_lrs_use(own_propositions_report):
    first, text = own_propositions_report
    # the LR's verbal equivalent says "Hp: …": page 1 and each evaluation state which proposition that is
    assert "moderate support for Hp: the man filmed is Mr Smith" in first
    assert "propositions: Hp: the man filmed is Mr Smith Hd: he is someone else" in first
    assert "Propositions — Hp: the man filmed is Mr Smith Hd: he is someone else" in text


def test_the_technical_lr_is_stated_to_the_digits_it_claims(own_propositions_report):
    _, text = own_propositions_report
    assert "LR = 10 " in text                                   # the headline: two significant digits
    assert "Likelihood ratio (four significant digits) LR = 10.04 (" in text
    assert "unrounded" not in text          # it said "(unrounded) LR = 10" for 10.0408


def test_the_audit_appendix_gives_stored_face_indices_the_reports_face_numbers(own_propositions_report):
    _, text = own_propositions_report
    appendix = text[text.index("Appendix B"):]
    assert "face_index_a: 0 (face 1) face_index_b: 0 (face 1)" in appendix
    assert "face_index_a: 0 image_a" not in appendix


def test_appendix_a_writes_reference_counts_as_page_one_does():
    from xfr_desktop.core.calibration import fit_calibration
    from xfr_desktop.report.calibration_lookup import calibration_note, calibration_summary
    from xfr_desktop.report.pdf_blocks import styles
    from xfr_desktop.report.pdf_sections import likelihood_ratio_section
    from xfr_desktop.report.report_data import ReportData

    rng = np.random.default_rng(0)
    cal = fit_calibration(rng.normal(0.8, 0.1, 1500), rng.normal(0.1, 0.1, 2500))
    words = " ".join(p.text for p in likelihood_ratio_section(ReportData(case_number="C", calibration=
                                                                          calibration_summary(cal)), styles())
                     if hasattr(p, "text"))
    assert "4,000 pairs (1,500 same-person, 2,500 different-person)" in calibration_note(calibration_summary(cal))
    assert "4,000 pairs (1,500 same-person, 2,500 different-person)" in words


def test_the_reports_channel_regions_follow_the_apps_scale_rule(tiny_model):
    """A channel's region: one scale for both faces (the app's), and the box where the residual reaches 5 % of
    its peak on that face (the app's), stated under the table."""
    from xfr_desktop.report import render_report, report_data_from_explanation
    from xfr_desktop.report.images import overlay_map

    yy, xx = np.mgrid[0:112, 0:112] / 112
    faces = [np.stack([np.sin(2 * np.pi * (fx * xx + fy * yy + k / 3)) for k in range(3)], axis=2)
             for fx, fy in ((1, 2), (3, 1))]                 # two different smooth "faces"
    result = explain_pair(tiny_model, *(((f - f.min()) / np.ptp(f) * 255).astype(np.uint8) for f in faces))
    data = report_data_from_explanation(result, model=tiny_model, case_number="C-R")
    section = data.comparisons[0]
    peaks = {c.index: [float(getattr(result, s).residuals.channel(c.index).max()) for s in "ab"]
             for c in section.similar + section.dissimilar}
    channel = max(section.similar + section.dissimilar, key=lambda c: max(peaks[c.index]) / min(peaks[c.index]))
    top_of_scale = max(peaks[channel.index])
    assert top_of_scale > 1.5 * min(peaks[channel.index])        # the faces' own scales would differ clearly
    for side, img in (("a", channel.region_a), ("b", channel.region_b)):
        residual = getattr(result, side).residuals.channel(channel.index)
        rows, cols = np.nonzero(residual >= 0.05 * residual.max())        # the app's box, worked out here
        top, bottom, left, right = 2 * rows.min(), 2 * rows.max() + 1, 2 * cols.min(), 2 * cols.max() + 1
        perimeter = np.zeros(img.shape[:2], bool)
        perimeter[[top, bottom], left:right + 1] = perimeter[top:bottom + 1, [left, right]] = True
        assert (img[perimeter] == 255).all(), (side, "the box is not where the residual reaches 5 % of its peak")
        # the colours: the residual over the face on the top of both faces' peaks, as the S maps are drawn
        shared = overlay_map(getattr(result, side).aligned, residual, top_of_scale, "channel")
        np.testing.assert_array_equal(img[~perimeter], shared[~perimeter])
    text = pdf_text(render_report(data).pdf)
    assert ("on one scale per channel from 0 to its peak over both faces, as in the app; the white box encloses "
            "where it reaches 5 % of its peak on that face.") in text


def test_the_audit_appendix_names_the_case_by_its_number(tmp_path, tiny_model):
    """The case's database id (2 here) is no case number: the appendix names the case NUM-1 as every page does."""
    from xfr_desktop.report import render_report
    from xfr_desktop.report import build_report_for_case

    with open_store(tmp_path / "data") as store:
        case, _ = interleaved_case(store, tmp_path, tiny_model)
        assert case.id == 2 and case.number == "NUM-1"
        text = pdf_text(render_report(build_report_for_case(store, case.id)).pdf)
    appendix = text[text.index("Appendix B"):]
    assert "Chain verification at export: chain intact: " in appendix
    assert "case.created · case NUM-1 ·" in appendix
    assert "case 2" not in appendix
