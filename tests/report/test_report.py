"""The PDF case report: contents (via pypdf's text extractor), embedded fonts, PDF/A metadata, from a stored case."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from xfr_desktop import __version__
from xfr_desktop.cli import main as xfr_main
from xfr_desktop.core.calibration import fit_calibration
from xfr_desktop.core.explain import explain_pair
from xfr_desktop.report import ImageInfo, build_report_for_case, render_report, report_data_from_explanation
from xfr_desktop.report.from_explanation import top_channels
from xfr_desktop.report.report_data import ReportError

pypdf = pytest.importorskip("pypdf")


def faces(seed=0, size=112):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
            rng.integers(0, 255, (size, size, 3), dtype=np.uint8))


def pdf_text(pdf: bytes) -> tuple[str, list[str]]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    pages = [p.extract_text() for p in reader.pages]
    return "\n".join(pages), pages


def font_names(pdf: bytes) -> set[str]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    names = set()
    for page in reader.pages:
        for ref in page["/Resources"].get("/Font", {}).values():
            font = ref.get_object()
            names.add(str(font["/BaseFont"]))
            assert "/FontDescriptor" in font and "/FontFile2" in font["/FontDescriptor"], font["/BaseFont"]
    return names


@pytest.fixture
def explanation(tiny_model):
    a, b = faces()
    return explain_pair(tiny_model, a, b)


def synthetic_calibration():
    rng = np.random.default_rng(0)
    return fit_calibration(rng.normal(0.6, 0.1, 400), rng.normal(0.1, 0.1, 400), reference="synthetic")


def test_report_from_explanation_holds_the_key_fields(explanation, tiny_model):
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 255, (240, 200, 3), dtype=np.uint8)
    data = report_data_from_explanation(
        explanation, model=tiny_model, case_number="2026-0042", title="Burglary Main Street",
        examiner="Jane Doe", organisation="Forensic Lab", calibration=synthetic_calibration(),
        image_a=ImageInfo("A", "suspect.jpg", "a1" * 32, photo, (40, 50, 100, 120)),
        image_b=ImageInfo("B", "cctv.jpg", "b2" * 32, photo), conclusion="Moderate support for same person.")
    rendered = render_report(data)
    assert rendered.pdf.startswith(b"%PDF-") and rendered.n_pages >= 3
    text, pages = pdf_text(rendered.pdf)
    flat = " ".join(text.split())
    for needle in ("2026-0042", "Burglary Main Street", "Jane Doe", "Forensic Lab", f"XFR Desktop {__version__}",
                   "suspect.jpg", "cctv.jpg", "a1" * 32, "b2" * 32, f"{explanation.score:.4f}",
                   f"model decision at τ = {explanation.threshold:.3f}: {explanation.decision_label}",
                   "Likelihood ratio", "ENFSI", "moderately strong support",
                   "Limitations", "Moderate support for same person.", "Appendix B: audit trail",
                   "Top similar channels", "not certified by a timestamp authority", "Not signed"):
        assert needle in flat, needle
    n = rendered.n_pages
    for k, page in enumerate(pages, 1):
        assert f"page {k} of {n}" in page
    lr, verbal = synthetic_calibration().describe(explanation.score)
    assert verbal in flat


def test_fonts_are_embedded_and_pdfa_metadata_present(explanation, tiny_model):
    pdf = render_report(report_data_from_explanation(explanation, model=tiny_model, case_number="X-1")).pdf
    names = font_names(pdf)
    assert names and all("DejaVu" in n for n in names), names   # no base-14 (non-embedded) font anywhere
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    root = reader.trailer["/Root"]
    xmp = root["/Metadata"].get_object().get_data().decode("utf-8")
    assert "<pdfaid:part>2</pdfaid:part>" in xmp and "<pdfaid:conformance>B</pdfaid:conformance>" in xmp
    assert "Face comparison report, case X-1" in xmp
    intent = root["/OutputIntents"][0].get_object()
    assert intent["/S"] == "/GTS_PDFA1" and len(intent["/DestOutputProfile"].get_object().get_data()) > 100


def test_report_without_calibration_says_so(explanation):
    text, _ = pdf_text(render_report(report_data_from_explanation(explanation, case_number="C-7")).pdf)
    assert "no likelihood ratio is reported" in " ".join(text.split())


def test_top_channels_split_by_sign():
    w = np.array([0.3, -0.2, 0.0, 0.1, -0.5])
    similar, dissimilar = top_channels(w, k=2)
    assert similar == [0, 3] and dissimilar == [4, 1]


# --- from the store -------------------------------------------------------------------------------------------
def analysed_case(store, model, tmp_path, seed=0):
    from xfr_desktop.core.serialize import result_payload

    rng = np.random.default_rng(seed)
    paths = []
    for name in ("probe.jpg", "reference.jpg"):
        p = tmp_path / name
        Image.fromarray(rng.integers(0, 255, (150, 130, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    case = store.create_case("2026-0099", title="Stored case", examiner="Ann Examiner", organisation="Lab North")
    sha_a = store.import_image(paths[0], case_id=case.id)
    sha_b = store.import_image(paths[1], case_id=case.id)
    comp = store.add_comparison(case.id, sha_a, sha_b, model_sha256="ee" * 32, model_name="tiny")
    result = explain_pair(model, *faces(seed))
    store.save_result(comp.id, result_payload(result, model_sha256="ee" * 32, model_name="tiny",
                                              faces_extra={"a": {"box": np.array([10.0, 20.0, 80.0, 90.0])}}))
    store.set_conclusion(case.id, "Support for different people.", scale="ENFSI verbal", author="Ann")
    return case, sha_a, sha_b, result


def test_report_for_stored_case(tmp_path, tiny_model):
    from xfr_desktop.store import open_store

    with open_store(tmp_path / "data") as store:
        case, sha_a, sha_b, result = analysed_case(store, tiny_model, tmp_path)
        data = build_report_for_case(store, case.id)
        assert data.audit and data.audit[0]["action"] == "case.created"
        rendered = render_report(data)
    flat = " ".join(pdf_text(rendered.pdf)[0].split())
    for needle in ("2026-0099", "Stored case", "Ann Examiner", "Lab North", sha_a, sha_b, "probe.jpg",
                   f"{result.score:.4f}", "Support for different people.", "ENFSI verbal", "case.created",
                   "analysis.saved", "conclusion.edited", "chain intact"):
        assert needle in flat, needle


def test_xfr_report_cli_writes_and_audits(tmp_path, tiny_model, capsys):
    from xfr_desktop.store import open_store

    data_dir = tmp_path / "data"
    with open_store(data_dir) as store:
        case, *_ = analysed_case(store, tiny_model, tmp_path)
    out = tmp_path / "r.pdf"
    assert xfr_main(["--data-dir", str(data_dir), "report", "--case", case.number, "--out", str(out)]) == 0
    assert out.read_bytes().startswith(b"%PDF-")
    assert xfr_main(["--data-dir", str(data_dir), "report", "--case", case.number, "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    with open_store(data_dir) as store:
        events = [e for e in store.list_audit(case.id) if e.action == "report.exported"]
        assert len(events) == 1
        details = events[0].details if isinstance(events[0].details, dict) else json.loads(events[0].details)
        assert details["pages"] >= 3 and len(details["sha256_unsigned"]) == 64
        assert store.verify_audit(case.id).ok


def test_case_without_results_is_a_clear_error(tmp_path):
    from xfr_desktop.store import open_store

    with open_store(tmp_path / "data") as store:
        case = store.create_case("EMPTY-1")
        with pytest.raises(ReportError, match="no analysed comparison"):
            build_report_for_case(store, case.id)


def test_stored_likelihood_ratio_is_the_one_reported(tmp_path, tiny_model):
    from xfr_desktop.core.serialize import result_parameters, result_payload
    from xfr_desktop.store import open_store

    with open_store(tmp_path / "data") as store:
        case, *_ = analysed_case(store, tiny_model, tmp_path)
        comp = store.list_comparisons(case.id)[0]
        result = explain_pair(tiny_model, *faces(3))
        params = result_parameters(result, likelihood_ratio={"value": 420.0, "verbal": None})
        chosen = store.save_result(comp.id, result_payload(result, model_sha256="ee" * 32, parameters=params))
        store.choose_report_result(comp.id, chosen.id)
        data = build_report_for_case(store, case.id)
        flat = " ".join(pdf_text(render_report(data).pdf)[0].split())
    assert "LR = 420 (moderately strong support for the proposition that the two images show the same" in flat


def test_export_to_a_missing_folder_writes_and_logs_nothing(tmp_path, tiny_model):
    from xfr_desktop.report.export import export_case_report
    from xfr_desktop.store import open_store

    with open_store(tmp_path / "data") as store:
        case, *_ = analysed_case(store, tiny_model, tmp_path)
        n_before = len(store.list_audit(case.id))
        with pytest.raises(ReportError, match="does not exist"):
            export_case_report(store, case.id, tmp_path / "nowhere" / "r.pdf")
        assert len(store.list_audit(case.id)) == n_before


def test_stored_result_of_the_bundled_model_gets_its_card_excerpt(tmp_path):
    """The app stores results with the model's sha256 only; the report still finds the card of every model shipped
    in models/ -- the default (models/README.md) and earlier bundled models kept beside it (<stem>.md)."""
    from xfr_desktop.core.model import MODELS_DIR, default_model_path, file_sha256
    from xfr_desktop.report.model_cards import stored_model_info
    from xfr_desktop.store import open_store

    if not default_model_path().is_file():
        pytest.skip("bundled model not present")
    with open_store(tmp_path) as store:
        info = stored_model_info(store, file_sha256(default_model_path()), "bundled")
        other = stored_model_info(store, "0" * 64, "other")
        older = [(p, stored_model_info(store, file_sha256(p), p.name))
                 for p in sorted(MODELS_DIR.glob("*.pt")) if p != default_model_path()]
    assert "Model card" in info.card_excerpt
    assert default_model_path().name in info.card_excerpt.split("\n")[0]
    assert other.card_excerpt == ""
    for path, rec in older:
        assert path.name in rec.card_excerpt.split("\n")[0], f"no card of its own for {path.name}"


# --- what the report shows: conclusions, the result chosen, parameters -------------------------------------------
def report_text(store, case_id) -> str:
    return " ".join(pdf_text(render_report(build_report_for_case(store, case_id)).pdf)[0].split())


def test_case_conclusion_and_comparison_note_are_reported_apart(tmp_path, tiny_model):
    """A comparison note saved after the case conclusion must not be printed as the case's conclusion."""
    from xfr_desktop.store import open_store

    with open_store(tmp_path / "data") as store:
        case, *_ = analysed_case(store, tiny_model, tmp_path)
        comp = store.list_comparisons(case.id)[0]
        store.set_conclusion(case.id, "Note on comparison one only.", author="Ann", comparison_id=comp.id)
        data = build_report_for_case(store, case.id)
        flat = report_text(store, case.id)
    assert data.conclusion == "Support for different people."
    assert data.comparisons[0].conclusion == "Note on comparison one only."
    start = flat.index("Examiner's conclusion on the case")   # on page 1, before the comparisons
    case_part = flat[start:flat.index("Comparison 1: probe.jpg vs reference.jpg", start)]
    assert "Support for different people." in case_part
    assert "Note on comparison one only." not in case_part
    assert "Examiner's note on this comparison Note on comparison one only." in flat


def test_audit_details_are_whole_and_readable(tmp_path, tiny_model):
    """Details are printed whole, as key: value lines, never cut mid-JSON."""
    from xfr_desktop.store import open_store

    long_text = "Long conclusion " + " ".join(f"word{i}" for i in range(160)) + " END-OF-TEXT"
    with open_store(tmp_path / "data") as store:
        case, *_ = analysed_case(store, tiny_model, tmp_path)
        store.set_conclusion(case.id, long_text, author="Ann")
        rendered = render_report(build_report_for_case(store, case.id))
    text, pages = pdf_text(rendered.pdf)
    appendix = " ".join(text[text.index("Appendix B: audit trail"):].split())
    assert "END-OF-TEXT" in appendix and "word159" in appendix
    assert "text: Long conclusion word0" in appendix
    assert '{"' not in appendix                  # no raw JSON objects


def test_failed_comparison_is_listed_not_left_out(tmp_path, tiny_model):
    from xfr_desktop.store import open_store

    with open_store(tmp_path / "data") as store:
        case, sha_a, sha_b, _ = analysed_case(store, tiny_model, tmp_path)
        failed = store.add_comparison(case.id, sha_b, sha_a)
        store.set_comparison_status(failed.id, "failed", "no face found in image A")
        flat = report_text(store, case.id)
    assert "Comparisons without a reported result" in flat
    assert "Comparison 2" in flat and "failed: no face found in image A" in flat


def test_export_is_audited_under_the_examiners_name(tmp_path, tiny_model):
    from xfr_desktop.report.export import export_case_report
    from xfr_desktop.store import open_store

    with open_store(tmp_path / "data") as store:
        case, *_ = analysed_case(store, tiny_model, tmp_path)
        export_case_report(store, case.id, tmp_path / "r.pdf")
        exported = [e for e in store.list_audit(case.id) if e.action == "report.exported"]
    assert [e.actor for e in exported] == ["Ann Examiner"]


def test_report_uses_the_first_full_analysis_or_the_chosen_result(tmp_path, tiny_model, capsys):
    """A later exploratory result must not replace the full analysis silently; --result N picks one."""
    from xfr_desktop.core.serialize import result_parameters, result_payload
    from xfr_desktop.store import open_store

    data_dir = tmp_path / "data"
    with open_store(data_dir) as store:
        case, *_ = analysed_case(store, tiny_model, tmp_path)
        comp = store.list_comparisons(case.id)[0]
        first = store.list_results(comp.id)[0]
        explore = explain_pair(tiny_model, *faces(0))
        params = result_parameters(explore, likelihood_ratio=None)
        params["top_k"] = 4
        later = store.save_result(comp.id, result_payload(explore, model_sha256="ee" * 32, parameters=params))
        data = build_report_for_case(store, case.id)
        assert data.comparisons[0].result_id == first.id
        assert "result 1 of 2, the first full analysis" in data.comparisons[0].result_choice
    out = tmp_path / "r.pdf"
    assert xfr_main(["--data-dir", str(data_dir), "report", "--case", case.number, "--out", str(out),
                     "--result", str(later.id)]) == 0
    flat = " ".join(pdf_text(out.read_bytes())[0].split())
    assert f"result 2 of 2, chosen by the examiner (result id {later.id})" in flat


def test_removed_comparison_is_listed_with_its_reason(tmp_path, tiny_model):
    from xfr_desktop.store import open_store

    with open_store(tmp_path / "data") as store:
        case, sha_a, sha_b, _ = analysed_case(store, tiny_model, tmp_path)
        extra = store.add_comparison(case.id, sha_b, sha_a)
        store.remove_comparison(extra.id, "duplicate of comparison 1", actor="Ann Examiner")
        flat = report_text(store, case.id)
    assert "removed by Ann Examiner on" in flat and "duplicate of comparison 1" in flat


# --- layout ------------------------------------------------------------------------------------------------------
def test_parameters_are_a_two_column_table_with_one_based_faces(explanation, tiny_model):
    from xfr_desktop.core.serialize import result_parameters

    params = result_parameters(explanation, likelihood_ratio=None)
    params.update(face_index_a=0, face_index_b=2, device="cpu")
    data = report_data_from_explanation(explanation, model=tiny_model, case_number="P-1")
    data.comparisons[0].parameters = params
    flat = " ".join(pdf_text(render_report(data).pdf)[0].split())
    section = flat[flat.index("technical result and parameters"):flat.index("Explanation maps")]
    assert "{" not in section and '"' not in section            # no raw JSON
    assert "Face in image A face 1 (the largest)" in section and "Face in image B face 3" in section
    assert "Residual engine fast" in section and "Device cpu" in section
    assert section.count("model decision at τ") == 1


def test_a_long_table_repeats_its_header_on_every_page(explanation, tiny_model):
    from xfr_desktop.report.report_data import ChannelInfo

    data = report_data_from_explanation(explanation, model=tiny_model, case_number="T-1")
    region = np.zeros((40, 40, 3), np.uint8)
    data.comparisons[0].similar = [ChannelInfo(index=9000 + i, weight=0.1, product=0.2, region_a=region,
                                               region_b=region) for i in range(30)]
    _, pages = pdf_text(render_report(data).pdf)
    with_rows = [p for p in pages if any(f"{9000 + i}" in p for i in range(30))]
    assert len(with_rows) >= 2, "the table should need more than one page for this test"
    for page in with_rows:
        assert "weight w = p − T" in " ".join(page.split())
    # no row is split: every channel index is printed exactly once
    assert sum(" ".join(p.split()).count(f"{9000 + i} ") for p in with_rows for i in range(30)) >= 30


def test_model_card_evaluation_reaches_appendix_a_in_plain_words(explanation):
    """Appendix A states what the card's evaluation found for the model in use, in words and with the card's
    figures: recognition as sentences, the tests of the maps named with whether their target was reached. The
    card's own Markdown (paths, licence notes, developer measures) is not reproduced."""
    from types import SimpleNamespace

    from xfr_desktop.core.model import default_model_path

    if not default_model_path().is_file():
        pytest.skip("bundled model not present")
    model = SimpleNamespace(path=str(default_model_path()), sha256="ab" * 32, spec={})
    data = report_data_from_explanation(explanation, model=model, case_number="M-1",
                                        calibration=synthetic_calibration())
    flat = " ".join(pdf_text(render_report(data).pdf)[0].split())
    appendix = flat[flat.index("Appendix A: the method and the model"):flat.index("Appendix B: audit trail")]
    assert "it recognised 65.8 % of the same-person pairs" in appendix and "each occurred in 2.40 %" in appendix
    assert "(τ = 0.4309), it was right 97.57 % of the time" in appendix
    assert "(Cllr, from 0 for perfect to 1 for likelihood ratios that carry no information): 0.118. The developers' " \
           "target of at most 0.09 was not reached." in appendix
    assert "replaced by another person's: target partly reached" in appendix
    assert "leaves the model's decision in place longer than a simple guess or other explanation methods: target " \
           "not reached" in appendix
    assert "spread over the whole face rather than one spot: target reached" in appendix
    assert "The maps were tested in 8 ways" in appendix
    for word in ("**", "| |", "# ", "argmax_modal_share", "Provenance and licences", "PSNR", "goal met"):
        assert word not in flat, word


def test_card_markdown_is_parsed_into_blocks():
    from xfr_desktop.report.card_markdown import parse, sections_until, table_after_heading

    kinds = [b.kind for b in parse("# T\n\npara\nline\n\n- one\n  more\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
                                   "    code\n")]
    assert kinds == ["heading", "paragraph", "list", "table", "code"]
    assert parse("- one\n  more\n- two")[0].items == ["one more", "two"]
    card = "# M\n\nsummary\n\n## Evaluation\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n## Next\n\n| x |\n|---|\n"
    assert table_after_heading(card, "EVALUATION") == [["a", "b"], ["1", "2"]]
    assert table_after_heading(card, "provenance") == []
    assert sections_until(card, 2) == "# M\n\nsummary"


def test_colour_bars_say_what_they_measure(explanation, tiny_model):
    """Each map on its own labelled scale: the caption names the unit and the power of ten, the last tick of S's
    bar is the peak of S over both images."""
    data = report_data_from_explanation(explanation, model=tiny_model, case_number="C-1")
    flat = " ".join(pdf_text(render_report(data).pdf)[0].split())
    vmax = max(float(np.max(explanation.a.S)), float(np.max(explanation.b.S)))
    assert "cosine score per pixel" in flat and "Each map has its own scale, from 0 to its largest value" in flat
    import re

    m = re.search(r"S \(×10([⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+) cosine score per pixel\), max", flat)
    assert m, "the caption names the map, the multiplier and the unit"
    exponent = int(m.group(1).translate(str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")))
    assert 1 <= vmax / 10 ** exponent < 10
    labels = [float(x) for x in re.findall(r"(?<![\d.])(\d+\.\d+)(?![\d.])", flat[flat.index("colour scale"):
                                                                                   flat.index("Colour scale:")])]
    assert any(abs(v * 10 ** exponent - vmax) <= 0.05 * vmax for v in labels), (labels, vmax)   # 2 digits


# --- evaluative headline, examination sections -------------------------------------------------------------------
def test_evaluation_headline_and_examination_sections(tmp_path, tiny_model):
    """The LR at the calibration's limit is a bound with two significant digits, the propositions and calibration
    are named, the model's decision at a τ other than the calibrated one is flagged in the technical part only,
    and the examiner's FISWG assessment, annotations, photo quality and the review are reported."""
    from xfr_desktop.core.serialize import result_parameters, result_payload
    from xfr_desktop.store import open_store

    with open_store(tmp_path / "data") as store:
        case, *_ = analysed_case(store, tiny_model, tmp_path)
        comp = store.list_comparisons(case.id)[0]
        result = explain_pair(tiny_model, *faces(4))
        result.threshold = 0.98
        lr = {"value": 3000.0, "verbal": None, "limits": [1 / 3000, 3000.0],
              "calibration": {"method": "logistic-regression", "reference": "LFW pairs.txt", "n_genuine": 3000,
                              "n_impostor": 3000, "cllr": 0.138}}
        params = result_parameters(result, likelihood_ratio=lr)
        params["model_threshold"] = 0.3277
        chosen = store.save_result(comp.id, result_payload(result, model_sha256="ee" * 32, parameters=params))
        store.choose_report_result(comp.id, chosen.id)
        store.set_propositions(case.id, prosecution="Hp: the suspect is the person in the CCTV still.",
                               defence="Hd: someone else is in the CCTV still.")
        store.set_feature_assessment(comp.id, "forehead", "similar", note="same hairline shape", author="Ann")
        store.add_annotation(comp.id, "a", "rect", 10, 12, 30, 20, label="scar", author="Ann")
        store.record_image_quality(comp.id, "a", {"width_px": 130, "height_px": 150, "inter_eye_px": 21.0,
                                                  "warnings": ["inter-eye distance 21 px is below 30 px"]})
        store.add_review(comp.id, "agree", note="Checked every feature.", reviewer="Rex Reviewer")
        flat = report_text(store, case.id)
    headline = flat[flat.index("Evaluation"):flat.index("technical result and parameters")]
    assert "LR ≥ 3,000 (limit of the calibration)" in headline and "LR = ≥" not in headline
    assert "at least strong support for Hp: the suspect is the person in the CCTV still." in headline
    assert "Hp: the suspect is the person in the CCTV still." in headline
    assert ("logistic-regression calibration on LFW pairs.txt, 6,000 pairs (3,000 same-person, 3,000 "
            "different-person), Cllr 0.138") in headline
    assert "model decision" not in headline and "MATCH" not in headline
    technical = flat[flat.index("technical result and parameters"):]
    assert "model decision at τ = 0.980" in technical
    assert "is not the model's calibrated threshold τ = 0.328" in technical
    assert "Forehead Similar same hairline shape Ann" in flat
    assert "A1: rect scar (Ann)" in flat
    assert "Image quality and provenance" in flat and "⚠ Image A: inter-eye distance 21 px is below 30 px" in flat
    assert "Rex Reviewer agrees Checked every feature." in flat


def test_each_comparison_says_how_far_to_trust_its_maps(tmp_path, tiny_model):
    """Beside the maps, the stored per-pair faithfulness and stability figures with the check in words,
    for this pair only; a result analysed without the check says so instead of printing a figure."""
    from xfr_desktop.analysis import analyse_comparison, plan_analysis
    from xfr_desktop.store import open_store

    with open_store(tmp_path / "data") as store:
        case = store.create_case("2026-0127", title="Trust", examiner="Ann Examiner")
        shas = []
        for i, img in enumerate(faces(3)):
            Image.fromarray(img).save(tmp_path / f"face_{i}.png")
            shas.append(store.import_image(tmp_path / f"face_{i}.png", case_id=case.id))
        trusts = []
        for jitter in (2, None):
            comp = store.add_comparison(case.id, *shas, parameters={"prealigned": True})
            job = plan_analysis(store, comp.id)
            job.trust_jitter = jitter
            trusts.append(analyse_comparison(store, job, tiny_model).record.parameters.get("trust"))
        text = pdf_text(render_report(build_report_for_case(store, case.id)).pdf)[0]
    flat = " ".join(text.split()).split("Appendix B: audit trail")[0]   # the audit trail holds the record whole
    faith, stab = trusts[0]["faithfulness"], trusts[0]["stability"]
    figure = "undetermined" if faith["normalised"] is None else f"{faith['normalised']:.2f}"
    a, b = stab["correlation"]
    assert trusts[1] is None and flat.count("How far to trust these maps") == 2
    for needle in (f"the map explains the score {faith['verdict']} a gradient map ({figure})",
                   f"A {a:.2f} · B {b:.2f} (2 jitter draws)", faith["sentence"],
                   f"mean correlation of {a:.2f} for image A and {b:.2f} for image B",
                   "These figures describe the maps of this comparison only"):
        assert flat.count(needle) == 1, needle
    assert flat.count("not checked for these maps") == 1 and "curves" not in flat   # no raw record in the table


# --- page 1 is the case; the method and the model go to an appendix for a court reader ---------------------------
JARGON = ("AUC", "hiding game", "../", "shared/data", "celeba", "CelebA")


@pytest.fixture
def two_comparison_report(tmp_path, tiny_model):
    """A stored case with two analysed comparisons whose results name the bundled model (so the report carries the
    bundled card and its calibration), each with the examiner's note, and a case conclusion."""
    from xfr_desktop.core.model import default_model_path, file_sha256
    from xfr_desktop.core.serialize import result_payload
    from xfr_desktop.store import open_store

    if not default_model_path().is_file():
        pytest.skip("bundled model not present")
    sha = file_sha256(default_model_path())
    rng = np.random.default_rng(7)
    with open_store(tmp_path / "data") as store:
        case = store.create_case("2026-0424", title="Robbery at the station", examiner="Ann Examiner",
                                 organisation="Lab North")
        store.set_propositions(case.id, prosecution="Hp: the man filmed is the suspect.",
                               defence="Hd: the man filmed is someone else.")
        shas = []
        for name in ("cctv.jpg", "custody.jpg", "passport.jpg"):
            Image.fromarray(rng.integers(0, 255, (150, 130, 3), dtype=np.uint8)).save(tmp_path / name)
            shas.append(store.import_image(tmp_path / name, case_id=case.id))
        for n, (a, b) in enumerate(((0, 1), (0, 2)), 1):
            comp = store.add_comparison(case.id, shas[a], shas[b], model_sha256=sha, model_name="bundled")
            store.save_result(comp.id, result_payload(explain_pair(tiny_model, *faces(n)), model_sha256=sha,
                                                      model_name="bundled"))
            store.set_conclusion(case.id, f"Note on comparison {n}.", author="Ann", comparison_id=comp.id)
        store.set_conclusion(case.id, "Overall moderate support for Hp.", author="Ann")
        data = build_report_for_case(store, case.id)
    return data, render_report(data)


def test_page_one_is_the_case_not_the_model_card(two_comparison_report):
    data, rendered = two_comparison_report
    page1 = " ".join(pdf_text(rendered.pdf)[1][0].split())
    assert data.model.fidelity, "the bundled card's evaluation reaches the report data"
    for needle in ("2026-0424", "Robbery at the station", "Ann Examiner", "Hp: the man filmed is the suspect.",
                   "Hd: the man filmed is someone else.", "cctv.jpg", "custody.jpg", "passport.jpg",
                   "Note on comparison 1.", "Note on comparison 2.", "Overall moderate support for Hp."):
        assert needle in page1, needle
    assert len(data.comparisons) == 2
    for section in data.comparisons:
        assert section.lr_statement is not None
        assert f"{section.lr_statement.equation} {section.lr_statement.verbal}" in page1
    for word in JARGON:
        assert word not in page1, word


def test_the_method_and_the_model_are_an_appendix_for_a_court_reader(two_comparison_report):
    """The model card, method and limitations follow the comparisons in "Appendix A", in plain words with the
    card's measured figures; the audit trail stays the last appendix."""
    data, rendered = two_comparison_report
    text = " ".join(pdf_text(rendered.pdf)[0].split())
    start = text.index("Appendix A: the method and the model")
    assert start > text.index("Comparison 2: cctv.jpg vs passport.jpg")
    appendix = text[start:text.index("Appendix B: audit trail")]
    for needle in ("on a public benchmark of 6,000 pairs of face photographs", "right 97.65 % of the time",
                   "right 97.57 % of the time", "Limitations", "The developers' target of 98.3 % was not reached",
                   data.model.sha256):
        assert needle in appendix, needle
    for word in JARGON:
        assert word not in appendix, word
    assert text.rindex("Appendix B: audit trail") > start


# --- the calibration's source, in plain words --------------------------------------------------------------------
def test_the_calibration_is_named_in_plain_words_for_a_court_reader(tmp_path, tiny_model):
    """Each Evaluation box and Appendix A name the calibration's reference set and its pairs once, without nested
    brackets: the bundled calibration as 'LFW View 2' (also for results stored when its file still read 'scores file
    scores.npz (6000 pairs)'), another calibration's older generated name without its counts."""
    from xfr_desktop.core.calibration import stored_likelihood_ratio
    from xfr_desktop.core.model import default_model_path, file_sha256
    from xfr_desktop.core.serialize import result_parameters, result_payload
    from xfr_desktop.store import open_store

    if not default_model_path().is_file():
        pytest.skip("bundled model not present")
    sha = file_sha256(default_model_path())
    older = ("scores file scores.npz (6000 pairs)", "pairs.txt: 6000 pairs, 4 left out (no face found)")
    with open_store(tmp_path / "data") as store:
        case, *_ = analysed_case(store, tiny_model, tmp_path)
        first = store.list_comparisons(case.id)[0]
        store.remove_comparison(first.id, "replaced")
        for n, reference in enumerate(older):
            comp = store.add_comparison(case.id, first.image_a, first.image_b)
            result = explain_pair(tiny_model, *faces(n))
            lr = stored_likelihood_ratio(default_model_path(), result.score)
            lr["calibration"]["reference"] = reference
            if n == 1:
                lr["calibration"]["created_at"] = "2025-01-01T00:00:00+00:00"   # another calibration
            store.save_result(comp.id, result_payload(result, model_sha256=sha,
                                                      parameters=result_parameters(result, likelihood_ratio=lr)))
        flat = report_text(store, case.id)
    counts = "6,000 pairs (3,000 same-person, 3,000 different-person)"
    boxes = [flat[i:flat.index("technical result and parameters", i)]
             for i in (flat.index("Evaluation", flat.index(f"Comparison {n}: probe.jpg")) for n in (2, 3))]
    assert f"logistic-regression calibration on LFW View 2, {counts}, Cllr 0.118" in boxes[0]
    assert f"calibration on pair list pairs.txt (no face found in 4 pairs, left out), {counts}, Cllr" in boxes[1]
    appendix = flat[flat.index("Appendix A"):flat.index("Appendix B")]
    assert f"photographs whose truth is known: LFW View 2, {counts}." in appendix
    body = flat[:flat.index("Appendix B")]   # the audit trail quotes the stored parameters as they are
    assert "scores.npz" not in body and "((" not in body and "))" not in body


def test_xfr_calibrate_names_the_reference_set_without_counts(tmp_path, tiny_model, capsys):
    """`xfr calibrate` writes the set's name alone (the report adds the pair counts), and the pairs left out."""
    from xfr_desktop.core.calibration import Calibration
    from xfr_desktop.core.model import save_model

    save_model(tiny_model, tmp_path / "tiny.pt")
    rng = np.random.default_rng(2)
    scores = np.concatenate([rng.normal(0.6, 0.1, 200), rng.normal(0.1, 0.1, 200), [-1.0, -1.0]])  # no face: -1
    np.savez(tmp_path / "scores.npz", scores=scores, same=np.arange(402) < 200, folds=np.arange(402) % 4)
    for extra, name in (([], "pairs scored in scores.npz"), (["--reference", "LFW View 2"], "LFW View 2")):
        assert xfr_main(["calibrate", "--model", str(tmp_path / "tiny.pt"), "--scores",
                         str(tmp_path / "scores.npz"), *extra]) == 0
        cal = Calibration.load(tmp_path / "tiny.calibration.json")
        assert cal.reference == f"{name} (no face found in 2 pairs, left out)"
    note = report_data_from_explanation(explain_pair(tiny_model, *faces()), calibration=cal).comparisons[0]
    assert note.calibration_note.startswith("logistic-regression calibration on LFW View 2 (no face found in 2 "
                                            "pairs, left out), 400 pairs (200 same-person, 200 different-person)")
    capsys.readouterr()
