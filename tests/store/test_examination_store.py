"""The examiner's workflow in the store (schema 4): feature assessments, annotations, image quality, reviews,
propositions, removal, the report's result, the examiner's name; each audited and bound to the audit trail."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from PIL import Image

from xfr_desktop.core.errors import StoreError
from xfr_desktop.core.morphology import FISWG_FEATURES
from xfr_desktop.store import open_store


@pytest.fixture
def case(tmp_path):
    with open_store(tmp_path / "data") as store:
        rng = np.random.default_rng(0)
        shas = []
        for name in ("a.png", "b.png"):
            Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(tmp_path / name)
            shas.append(store.import_image(tmp_path / name))
        case = store.create_case("C-1", examiner="Examiner A")
        comparison = store.add_comparison(case.id, *shas)
        yield store, case, comparison


def result(store, comparison_id, **parameters):
    return store.save_result(comparison_id, {"score": 0.5, "threshold": 0.3, "decision": True,
                                             "parameters": {"top_k": None, "channels": None, **parameters}})


def test_case_conclusion_ignores_comparison_notes(case):
    store, c, comp = case
    store.set_conclusion(c.id, "Whole case: moderate support", author="Examiner A")
    store.set_conclusion(c.id, "note on comparison 1", author="Examiner A", comparison_id=comp.id)
    assert store.latest_conclusion(c.id).text == "Whole case: moderate support"
    assert store.latest_conclusion(c.id, comparison_id=comp.id).text == "note on comparison 1"


def test_feature_assessments_keep_history_in_fiswg_order(case):
    store, _, comp = case
    store.set_feature_assessment(comp.id, "nose", "dissimilar", "first look")
    store.set_feature_assessment(comp.id, "eyes", "similar")
    store.set_feature_assessment(comp.id, "nose", "similar", "on the full-resolution photo")
    current = store.feature_assessments(comp.id)
    order = [key for key, _ in FISWG_FEATURES]
    assert list(current) == sorted(current, key=order.index) == ["eyes", "nose"]
    assert (current["nose"].value, current["nose"].note) == ("similar", "on the full-resolution photo")
    assert len(store.feature_assessment_history(comp.id)) == 3
    with pytest.raises(StoreError, match="unknown facial feature"):
        store.set_feature_assessment(comp.id, "elbow", "similar")
    with pytest.raises(StoreError, match="unknown assessment"):
        store.set_feature_assessment(comp.id, "nose", "maybe")


def test_annotations_are_bounded_and_removable(case):
    store, _, comp = case
    point = store.add_annotation(comp.id, "a", "point", 10, 20, label="mole")
    rect = store.add_annotation(comp.id, "b", "rect", 5, 5, 30, 20, label="scar")
    assert (point.width, point.height) == (0.0, 0.0) and rect.width == 30.0
    with pytest.raises(StoreError, match="outside photo B"):
        store.add_annotation(comp.id, "b", "rect", 70, 5, 30, 20)
    with pytest.raises(StoreError, match="positive width"):
        store.add_annotation(comp.id, "a", "rect", 1, 1, 0, 3)
    with pytest.raises(StoreError, match="finite"):
        store.add_annotation(comp.id, "a", "point", float("nan"), 1)
    store.remove_annotation(point.id, actor="Examiner A")
    assert [a.id for a in store.list_annotations(comp.id)] == [rect.id]
    removed = store.list_annotations(comp.id, include_removed=True)[0]
    assert removed.removed_by == "Examiner A"
    assert store.verify_audit(comp.case_id).ok


def test_reviews_need_a_second_examiner(case):
    store, _, comp = case
    with pytest.raises(StoreError, match="second examiner"):
        store.add_review(comp.id, "agree", reviewer="examiner a")
    with pytest.raises(StoreError, match="agree or disagree"):
        store.add_review(comp.id, "perhaps", reviewer="Reviewer B")
    store.add_review(comp.id, "disagree", "the ears differ", reviewer="Reviewer B")
    (review,) = store.list_reviews(comp.id)
    assert (review.reviewer, review.verdict, review.note) == ("Reviewer B", "disagree", "the ears differ")
    entry = store.list_audit(comp.case_id)[-1]
    assert (entry.action, entry.actor) == ("review.recorded", "Reviewer B")


def test_report_result_defaults_to_the_first_full_analysis(case):
    store, _, comp = case
    assert store.report_result(comp.id) is None
    first = result(store, comp.id)
    result(store, comp.id, top_k=10, derived_from_result=first.id)
    assert store.report_result(comp.id).id == first.id   # not the latest (the exploratory top-10)
    third = result(store, comp.id)
    store.choose_report_result(comp.id, third.id)
    assert store.report_result(comp.id).id == third.id
    assert store.get_comparison(comp.id).report_result_id == third.id
    with pytest.raises(StoreError, match="not a result of comparison"):
        store.choose_report_result(comp.id, 999)
    store.choose_report_result(comp.id, None)
    assert store.report_result(comp.id).id == first.id
    assert [e.action for e in store.list_audit(comp.case_id)].count("comparison.report_result_chosen") == 2
    assert store.verify_audit(comp.case_id).ok


def test_removed_comparison_stays_listed_and_refuses_work(case):
    store, c, comp = case
    with pytest.raises(StoreError, match="needs a reason"):
        store.remove_comparison(comp.id, "  ")
    store.remove_comparison(comp.id, "analysis failed: no face in B", actor="Examiner A")
    (listed,) = store.list_comparisons(c.id)
    assert listed.removed and listed.removed_reason == "analysis failed: no face in B"
    assert listed.removed_by == "Examiner A"
    for work in (lambda: store.set_feature_assessment(comp.id, "nose", "similar"),
                 lambda: store.add_annotation(comp.id, "a", "point", 1, 1),
                 lambda: store.remove_comparison(comp.id, "again")):
        with pytest.raises(StoreError, match="was removed"):
            work()
    assert store.verify_audit(c.id).ok


def test_forged_removal_or_choice_is_detected(case, tmp_path):
    store, c, comp = case
    first = result(store, comp.id)
    second = result(store, comp.id)
    store.choose_report_result(comp.id, first.id)
    assert store.verify_audit(c.id).ok
    with sqlite3.connect(store.db_path) as con:
        con.execute("UPDATE comparisons SET report_result_id = ? WHERE id = ?", (second.id, comp.id))
    assert not store.verify_audit(c.id).ok and f"comparison {comp.id}" in store.verify_audit(c.id).message
    with sqlite3.connect(store.db_path) as con:
        con.execute("UPDATE comparisons SET report_result_id = ? WHERE id = ?", (first.id, comp.id))
        con.execute("UPDATE comparisons SET removed_at = '2030-01-01', removed_reason = 'x' WHERE id = ?",
                    (comp.id,))
    assert not store.verify_audit(c.id).ok


def test_forged_assessment_and_review_are_detected(case):
    store, c, comp = case
    store.set_feature_assessment(comp.id, "ears", "dissimilar")
    store.add_review(comp.id, "disagree", reviewer="Reviewer B")
    assert store.verify_audit(c.id).ok
    with sqlite3.connect(store.db_path) as con:
        con.execute("UPDATE feature_assessments SET value = 'similar'")
    assert "feature_assessment 1" in store.verify_audit(c.id).message
    with sqlite3.connect(store.db_path) as con:
        con.execute("UPDATE feature_assessments SET value = 'dissimilar'")
        con.execute("UPDATE reviews SET verdict = 'agree'")
    assert "review 1" in store.verify_audit(c.id).message


def test_propositions_and_examiner_name(case, tmp_path):
    store, c, comp = case
    updated = store.set_propositions(c.id, prosecution="A and B show the same person.", defence="")
    assert updated.proposition_prosecution == "A and B show the same person."
    assert updated.proposition_defence == ""
    assert store.verify_audit(c.id).ok
    assert store.examiner_name() is None
    store.set_examiner_name("Dr. E. Xaminer")
    store.set_conclusion(c.id, "text")
    assert store.list_audit(c.id)[-1].actor == "Dr. E. Xaminer"
    assert store.list_conclusions(c.id)[-1].author == "Dr. E. Xaminer"
    with open_store(store.data_dir) as again:  # kept in the data folder
        assert again.actor_name() == "Dr. E. Xaminer"
        again.set_feature_assessment(comp.id, "hair", "not_assessable")
        assert again.feature_assessments(comp.id)["hair"].author == "Dr. E. Xaminer"
    with pytest.raises(StoreError, match="blank"):
        store.set_examiner_name("  ")
    changes = [e for e in store.list_audit() if e.action == "preference.changed"]
    assert changes[-1].details_dict["new"] == "Dr. E. Xaminer"


def test_image_quality_is_recorded_per_side(case):
    store, c, comp = case
    assert store.image_quality(comp.id, "a") is None
    store.record_image_quality(comp.id, "a", {"inter_eye_px": 25.0, "warnings": ["inter-eye distance"]})
    store.record_image_quality(comp.id, "a", {"inter_eye_px": 26.5, "warnings": []})
    record = store.image_quality(comp.id, "a")
    assert record.data == {"inter_eye_px": 26.5, "warnings": []} and record.image_sha256 == comp.image_a
    assert store.image_quality(comp.id, "b") is None
    assert store.verify_audit(c.id).ok
