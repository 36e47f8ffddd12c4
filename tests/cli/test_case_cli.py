"""Case work from the command line (`xfr cases add-pair / analyse / conclude / show`, `xfr report --result`),
through the real CLI on the bundled sample photos and a real store; the sample case; face numbers from 1."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from xfr_desktop.cli import main
from xfr_desktop.store import open_store




def xfr(data, *args) -> int:
    return main(["--data-dir", str(data), *map(str, args)])


def photos(samples_dir):
    case = json.loads((samples_dir / "case.json").read_text())
    return [(samples_dir / p["image_a"], samples_dir / p["image_b"]) for p in case["pairs"]]


def test_scripted_case_work_from_add_pair_to_a_report_of_a_chosen_result(tmp_path, samples_dir, model_file,
                                                                         capsys):
    data = tmp_path / "data"
    (a, b), (c, d) = photos(samples_dir)[:2]
    assert xfr(data, "cases", "create", "CLI-1", "--examiner", "Examiner A") == 0
    assert xfr(data, "cases", "add-pair", "CLI-1", a, b, "--face-a", "1") == 0
    assert "added comparison 1" in capsys.readouterr().out
    assert xfr(data, "cases", "add-pair", "CLI-1", c, tmp_path / "missing.jpg") != 0
    assert "Photo B (missing.jpg): file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        xfr(data, "cases", "add-pair", "CLI-1", a, b, "--face-b", "0")
    assert exc.value.code == 2 and "start at 1" in capsys.readouterr().err
    assert xfr(data, "cases", "analyse", "CLI-1", "--model", model_file) == 0
    out = capsys.readouterr().out
    assert out.startswith("comparison 1: result 1: ") and "model decision at τ = " in out
    assert xfr(data, "cases", "show", "CLI-1") == 0
    assert "[done, 1 result]" in capsys.readouterr().out      # not "1 results"
    # defect 1: a comparison note after the case conclusion must not become the case conclusion
    assert xfr(data, "cases", "conclude", "CLI-1", "--text", "Whole case: moderate support") == 0
    assert xfr(data, "cases", "conclude", "CLI-1", "--text", "note on the pair", "--comparison", "1") == 0
    assert xfr(data, "cases", "conclude", "CLI-1", "--text", "x", "--comparison", "2") == 2
    assert "has no comparison 2" in capsys.readouterr().err
    assert xfr(data, "cases", "analyse", "CLI-1", "--comparison", "1", "--model", model_file) == 0
    capsys.readouterr()
    assert xfr(data, "cases", "show", "CLI-1", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["conclusion"]["text"] == "Whole case: moderate support"
    (comp,) = shown["comparisons"]
    assert comp["number"] == 1 and comp["images"]["a"]["face_number"] == 1 and comp["n_results"] == 2
    assert comp["report_result"]["id"] == 1 and comp["latest_result"]["id"] == 2   # the first full analysis
    assert comp["report_result"]["model_decision"].startswith("model decision at τ = ")
    pdf = tmp_path / "r.pdf"
    assert xfr(data, "report", "--case", "CLI-1", "--out", pdf, "--result", "2") == 0
    with open_store(data) as store:
        assert store.get_comparison(comp["id"]).report_result_id == 2
        assert "comparison.report_result_chosen" in [e.action for e in store.list_audit(shown["id"])]
        from xfr_desktop.report import build_report_for_case
        section = build_report_for_case(store, shown["id"]).comparisons[0]
        assert section.analysed_at == store.get_result(2).parameters["analysed_at"]
    assert xfr(data, "report", "--case", "CLI-1", "--out", tmp_path / "s.pdf", "--result", "99") == 2
    assert "no result 99" in capsys.readouterr().err


def test_analyse_reports_a_failed_comparison_and_goes_on(tmp_path, samples_dir, model_file, capsys):
    data = tmp_path / "data"
    (a, b) = photos(samples_dir)[0]
    assert xfr(data, "cases", "create", "CLI-2") == 0
    assert xfr(data, "cases", "add-pair", "CLI-2", a, b, "--face-a", "3") == 2   # the photo has one face
    assert "face 3 requested but 1 face found" in capsys.readouterr().err
    wide = tmp_path / "wide.png"                        # no aligned crop: found only when it is analysed
    Image.fromarray(np.full((100, 300, 3), 128, np.uint8)).save(wide)
    assert xfr(data, "cases", "add-pair", "CLI-2", wide, wide, "--aligned") == 0
    assert xfr(data, "cases", "add-pair", "CLI-2", a, b) == 0
    capsys.readouterr()
    assert xfr(data, "cases", "analyse", "CLI-2", "--model", model_file) == 1
    captured = capsys.readouterr()
    assert "comparison 1: failed: " in captured.err and "is not an aligned face crop" in captured.err
    assert "comparison 2: result 1: " in captured.out
    with open_store(data) as store:
        first, second = store.list_comparisons(store.find_case("CLI-2").id)
        assert (first.status, second.status) == ("failed", "done")
    # the failed comparison is withdrawn with a reason; it stays listed and is not analysed again
    assert xfr(data, "cases", "remove", "CLI-2", "--comparison", "1", "--reason", "") == 2
    assert "needs a reason" in capsys.readouterr().err
    assert xfr(data, "cases", "remove", "CLI-2", "--comparison", "1", "--reason", "not a face crop") == 0
    capsys.readouterr()
    assert xfr(data, "cases", "analyse", "CLI-2", "--model", model_file) == 0
    assert "comparison 1" not in capsys.readouterr().out
    assert xfr(data, "cases", "show", "CLI-2") == 0
    assert "removed " in (out := capsys.readouterr().out) and ": not a face crop" in out
    assert "[failed, 0 results]" in out and "[done, 2 results]" in out


def test_the_sample_case_holds_every_pair_its_text_names(tmp_path, samples_dir):
    from xfr_desktop.casework import add_pair, ensure_sample_case, load_sample_case

    sample = load_sample_case()
    assert "four photo pairs" in sample["title"] and len(sample["pairs"]) == 4
    with open_store(tmp_path / "data") as store:
        case, comps = ensure_sample_case(store)
        assert case.title == sample["title"] and len(comps) == 4
        names = [store.get_image(c.image_a).original_name for c in comps]
        assert names == [a.name for a, _b, _pre, _label in sample["pairs"]]
        assert len(ensure_sample_case(store)[1]) == 4                 # nothing added twice
    with open_store(tmp_path / "old") as store:                       # a sample case made by the old demo
        old = store.create_case(sample["number"], title=sample["title"])
        a, b, _pre, _label = sample["pairs"][0]
        add_pair(store, old.id, a, b)
        assert len(ensure_sample_case(store)[1]) == 4


def test_listing_a_folder_without_a_database_lists_nothing_and_creates_nothing(tmp_path, capsys):
    data = tmp_path / "fresh"
    assert xfr(data, "cases", "list") == 0
    assert "no cases" in capsys.readouterr().out
    assert xfr(data, "cases", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []
    assert not data.exists()


def test_review_and_propositions_from_the_command_line(tmp_path, samples_dir, capsys):
    """`xfr cases review` records a second examiner's verification (never the case's own examiner) and
    `xfr cases propositions` the case's Hp / Hd (which the report states); `cases show` prints both and the audit
    trail records them."""
    data = tmp_path / "data"
    (a, b), = photos(samples_dir)[:1]
    assert xfr(data, "cases", "create", "CLI-3", "--examiner", "Examiner A") == 0
    assert xfr(data, "cases", "add-pair", "CLI-3", a, b) == 0
    capsys.readouterr()
    assert xfr(data, "--examiner", "Examiner A", "cases", "review", "CLI-3", "--comparison", "1",
               "--verdict", "agree") == 2
    assert "verification needs a second examiner" in capsys.readouterr().err
    assert xfr(data, "cases", "review", "CLI-3", "--comparison", "2", "--verdict", "agree",
               "--examiner", "Examiner B") == 2
    assert "has no comparison 2" in capsys.readouterr().err
    assert xfr(data, "cases", "review", "CLI-3", "--comparison", "1", "--verdict", "disagree",
               "--note", "the ears differ", "--examiner", "Examiner B") == 0
    assert "recorded review of comparison 1 of case CLI-3: disagree (Examiner B," in capsys.readouterr().out

    assert xfr(data, "cases", "propositions", "CLI-3") == 2
    assert "give --prosecution, --defence or both" in capsys.readouterr().err
    assert xfr(data, "cases", "propositions", "CLI-3", "--prosecution", "the man filmed is the suspect",
               "--examiner", "Examiner A") == 0
    out = capsys.readouterr().out
    assert "  Hp: the man filmed is the suspect\n  Hd: " in out
    assert xfr(data, "cases", "show", "CLI-3") == 0
    out = capsys.readouterr().out
    assert "propositions: Hp: the man filmed is the suspect\n" in out and "                Hd: " in out
    assert "review: disagree (Examiner B, " in out and "): the ears differ" in out
    assert xfr(data, "cases", "show", "CLI-3", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["propositions"]["prosecution"] == "the man filmed is the suspect"
    (review,) = shown["comparisons"][0]["reviews"]
    assert (review["reviewer"], review["verdict"], review["note"]) == ("Examiner B", "disagree", "the ears differ")
    with open_store(data) as store:
        actions = [e.action for e in store.list_audit(shown["id"])]
        assert "review.recorded" in actions and "case.updated" in actions
        assert store.get_case(shown["id"]).proposition_prosecution == "the man filmed is the suspect"
    assert xfr(data, "cases", "propositions", "CLI-3", "--prosecution", "") == 0      # back to the default
    assert "Hp: " in capsys.readouterr().out
