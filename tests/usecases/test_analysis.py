"""The Qt-free use cases (xfr_desktop.analysis) against a real SQLite store and a real (small, random) model."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from xfr_desktop.analysis import (AnalysisOutcome, analyse_comparison, load_result, plan_analysis,
                                  save_recombined)
from xfr_desktop.core.errors import Cancelled, NoFaceError
from xfr_desktop.store import open_store


def _face_like(seed: int, size: int = 112) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = sum(np.sin(2 * np.pi * (rng.uniform(1, 5) * xx + rng.uniform(1, 5) * yy)[..., None]
                     + rng.uniform(0, 6.3, 3)) for _ in range(4))
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).astype(np.uint8)


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "data") as s:
        yield s


def _comparison(store, tmp_path, prealigned: bool = True, images=None) -> int:
    case = store.create_case("A-1", examiner="tester")
    shas = []
    for i, img in enumerate(images or (_face_like(0), _face_like(1))):
        path = tmp_path / f"face_{i}.png"
        Image.fromarray(img).save(path)
        shas.append(store.import_image(path, case_id=case.id))
    return store.add_comparison(case.id, *shas, parameters={"prealigned": prealigned}).id


def test_analysis_saves_a_result_and_reports_progress(store, tmp_path, tiny_model):
    comp_id = _comparison(store, tmp_path)
    job = plan_analysis(store, comp_id)
    assert job.prealigned and job.name_a.startswith("A (face_0")
    seen = []
    outcome = analyse_comparison(store, job, tiny_model, progress=lambda label, f: seen.append((label, f)))
    assert isinstance(outcome, AnalysisOutcome)
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert "Computing channel residuals" in {label for label, _ in seen}
    comp = store.get_comparison(comp_id)
    assert comp.status == "done"
    [record] = store.list_results(comp_id)
    assert record.id == outcome.record.id and record.score == pytest.approx(outcome.result.score)
    params = record.parameters
    assert params["prealigned"] is True and params["model_threshold"] == pytest.approx(tiny_model.threshold)
    assert "likelihood_ratio" not in params                # the model has no calibration
    assert set(outcome.photos) == {"a", "b"} and outcome.photos["a"].pixels.shape == (112, 112, 3)
    # the analysis time is kept in the result (the save time is created_at) and both photos' quality is stored
    assert params["analysed_at"] <= record.created_at and params["analysed_at"][:4] == record.created_at[:4]
    for side in "ab":
        quality = store.image_quality(comp_id, side).data
        assert (quality["width_px"], quality["height_px"], quality["jpeg_tables_match"]) == (112, 112, "none")
        assert quality["face_number"] is None and quality["sharpness"] > 0   # pre-aligned: no detection


def test_recombined_result_is_saved_beside_the_original_and_reloads_identically(store, tmp_path, tiny_model):
    comp_id = _comparison(store, tmp_path)
    outcome = analyse_comparison(store, plan_analysis(store, comp_id), tiny_model)
    loaded = load_result(store, outcome.record.id)
    np.testing.assert_array_equal(loaded.result.a.H, outcome.result.a.H)
    assert set(loaded.photos) == {store.get_comparison(comp_id).image_a, store.get_comparison(comp_id).image_b}
    changed = loaded.result.recombine(threshold=0.05, channels=loaded.result.channels, top_k=4)
    new, extra = save_recombined(store, loaded.record, changed)
    old, again = store.list_results(comp_id)
    assert old.id == outcome.record.id and old.threshold == pytest.approx(outcome.result.threshold)
    assert again.id == new.id and again.threshold == pytest.approx(0.05)
    for key in ("face_index_a", "face_index_b", "prealigned", "device", "model_threshold"):
        assert again.parameters[key] == old.parameters[key], key
    assert again.parameters["derived_from_result"] == old.id and again.parameters["top_k"] == 4
    assert "recombine" in again.timings and set(extra) == {"a", "b"}
    reopened = load_result(store, new.id).result
    np.testing.assert_array_equal(reopened.a.H, changed.a.H)    # bit-identical after the round trip
    np.testing.assert_array_equal(reopened.selected, changed.selected)


def test_cancelling_saves_nothing_and_marks_the_comparison(store, tmp_path, tiny_model):
    comp_id = _comparison(store, tmp_path)
    stop = []

    def progress(label, _fraction):
        if label == "Computing channel residuals":
            stop.append(True)

    with pytest.raises(Cancelled):
        analyse_comparison(store, plan_analysis(store, comp_id), tiny_model, progress=progress,
                           is_cancelled=lambda: bool(stop))
    assert store.get_comparison(comp_id).status == "cancelled"
    assert store.list_results(comp_id) == []


def test_a_failure_is_recorded_as_the_comparison_status(store, tmp_path, tiny_model):
    noise = np.random.default_rng(3).integers(0, 255, (160, 160, 3), dtype=np.uint8)
    comp_id = _comparison(store, tmp_path, prealigned=False, images=(noise, _face_like(1)))
    with pytest.raises(NoFaceError):
        analyse_comparison(store, plan_analysis(store, comp_id), tiny_model)
    comp = store.get_comparison(comp_id)
    assert comp.status == "failed" and "no face" in comp.status_message.lower()
    assert store.list_results(comp_id) == []


@pytest.mark.parametrize("old_name", ["xfr-dlib-maxpool-joint.pt", "xfr-dlib-affine-joint-v2.pt"])
def test_a_result_of_a_previous_bundled_model_reopens_and_its_report_names_that_model(store, tmp_path, old_name):
    """Issues 12 and 22: the bundled model changed; results stored with a previous file keep opening (no model
    needed) and their report finds that file's own card by sha256."""
    from xfr_desktop.core.imageio import load_image
    from xfr_desktop.core.model import MODELS_DIR, default_model_path, file_sha256, load_model
    from xfr_desktop.paths import RESOURCES_DIR
    from xfr_desktop.report import build_report_for_case

    old_path = MODELS_DIR / old_name
    if not old_path.is_file():
        pytest.skip(f"previous bundled model not in models/: {old_path}")
    assert old_path != default_model_path()
    images = sorted((RESOURCES_DIR / "samples" / "images").glob("*.jpg"))[:2]
    comp_id = _comparison(store, tmp_path, prealigned=False, images=[load_image(p) for p in images])
    outcome = analyse_comparison(store, plan_analysis(store, comp_id), load_model(old_path, device="cpu"))
    assert isinstance(outcome, AnalysisOutcome)
    loaded = load_result(store, outcome.record.id)
    np.testing.assert_array_equal(loaded.result.a.H, outcome.result.a.H)
    assert loaded.record.model_sha256 == file_sha256(old_path)
    report = build_report_for_case(store, store.get_comparison(comp_id).case_id)
    assert old_path.name in report.model.card_excerpt.split("\n")[0]
    assert default_model_path().name not in report.model.card_excerpt.split("\n")[0]
