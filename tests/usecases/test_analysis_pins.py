"""Mutation pins for analysis.py (issue 28): the use case called in-process on the tiny random model, a real SQLite
store and real LFW photos (skipped when ../shared has none), each compared with values written out here by hand:
stored payload fields, status lines, progress stages and fractions in order, cancellation before and after each
stage, face-choice requests, both directions of every flag. The per-pair trust check (seconds per run) has its
own file, test_analysis_pins_trust.py; here every analysis runs without it (trust_jitter=None)."""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pytest
from PIL import Image

from xfr_desktop.analysis import (AnalysisJob, FaceChoiceRequest, ModelCache, _record_status, analyse_comparison,
                                  load_result, plan_analysis, record_photo_quality, reset_threshold,
                                  result_record_payload, save_recombined, stage_reporter)
from xfr_desktop.core.alignment import FaceAligner
from xfr_desktop.core.arrays import pack_arrays
from xfr_desktop.core.errors import Cancelled, NoFaceError, StoreError
from xfr_desktop.store import open_store
from tests.conftest import make_tiny_model, make_tiny_spec

DETECT = "Detecting and aligning faces"
EMBED = "Computing embeddings"
RESIDUALS = "Computing channel residuals"
COMBINE = "Combining maps"
SAVE = "Saving result"
ISO_SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")


@pytest.fixture(scope="module")
def photos(lfw_dir, tmp_path_factory):
    """one.jpg: one face (250x250); two.png: two faces side by side (500x250: Aaron Eckhart left, the larger
    face of AJ Cook right); crop.png: a square crop of AJ Cook's photo (200x200, for pre-aligned pairs);
    noise.png: no face."""
    root = tmp_path_factory.mktemp("photos")
    one = lfw_dir / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"
    other = lfw_dir / "AJ_Cook" / "AJ_Cook_0001.jpg"
    (root / "one.jpg").write_bytes(one.read_bytes())
    Image.fromarray(np.concatenate([np.asarray(Image.open(one)), np.asarray(Image.open(other))], axis=1)).save(
        root / "two.png")
    Image.open(other).crop((25, 25, 225, 225)).save(root / "crop.png")
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (160, 160, 3), dtype=np.uint8)).save(
        root / "noise.png")
    return root


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "data") as s:
        yield s


def _comparison(store, photos, a="one.jpg", b="one.jpg", **kwargs) -> int:
    case = store.create_case(f"P-{len(store.list_cases()) + 1}", examiner="tester")
    shas = [store.import_image(photos / name, case_id=case.id) for name in (a, b)]
    return store.add_comparison(case.id, *shas, **kwargs).id


def _recorder(store=None, comp_id=None, stop_at=None):
    """progress callback recording (label, fraction rounded) and, when given, the comparison's status at each
    call; ``stop_at`` (label, fraction): the cancel flag turns on when that report arrives."""
    seen, statuses, flag = [], [], []

    def progress(label, fraction):
        seen.append((label, round(fraction, 4)))
        if store is not None:
            statuses.append(store.get_comparison(comp_id).status)
        if stop_at is not None and seen[-1] == stop_at:
            flag.append(True)

    return seen, statuses, progress, (lambda: bool(flag))


class RecordingAligner(FaceAligner):
    """A real aligner that counts the photos it was asked to detect faces in."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.detected = 0

    def detect(self, image_rgb, source=None):
        self.detected += 1
        return super().detect(image_rgb, source=source)


# --- stage_reporter -------------------------------------------------------------------------------------------
def test_stage_reporter_maps_a_stage_fraction_onto_the_overall_bar_clamped_and_passes_unknown_stages():
    seen = []
    report = stage_reporter(lambda label, f: seen.append((label, round(f, 6))))
    report("detect", 0.5)
    report("residuals", 2.0)      # clamped to 1
    report("trust", -1.0)         # clamped to 0
    report("save", 0.25)
    report("other stage", 0.4)    # unknown: its own name over the whole bar
    assert seen == [(DETECT, 0.15), (RESIDUALS, 0.55),
                    ("Checking the map for this pair (faithfulness, stability)", 0.58), (SAVE, 0.9775),
                    ("other stage", 0.4)]
    assert stage_reporter(None)("detect", 0.5) is None   # no callback: nothing to call


# --- plan_analysis ----------------------------------------------------------------------------------------------
def test_a_plan_names_the_photos_and_takes_the_stored_faces_and_the_defaults(store, photos):
    comp_id = _comparison(store, photos, "one.jpg", "two.png", face_index_a=0, face_index_b=1)
    comp = store.get_comparison(comp_id)
    job = plan_analysis(store, comp_id)
    assert job == AnalysisJob(comparison_id=comp_id, image_a=store.image_path(comp.image_a),
                              image_b=store.image_path(comp.image_b), name_a="A (one.jpg)", name_b="B (two.png)",
                              face_index_a=0, face_index_b=1, prealigned=False, model_path=None, device=None,
                              threshold=None, top_k=None, engine="fast", trust_jitter=3)
    job = plan_analysis(store, comp_id, face_choices={"a": 2}, model_path="m.pt", device="cpu", engine="literal",
                        trust_jitter=None)
    assert (job.face_index_a, job.face_index_b, job.model_path, job.device, job.engine, job.trust_jitter) == (
        2, 1, "m.pt", "cpu", "literal", None)
    assert (plan_analysis(store, comp_id, face_choices={"b": 0}).face_index_a,
            plan_analysis(store, comp_id, face_choices={"b": 0}).face_index_b) == (0, 0)


def test_a_comparison_that_asks_for_the_face_plans_no_index_unless_one_was_chosen(store, photos):
    comp_id = _comparison(store, photos, "two.png", "two.png", face_index_a=1, face_index_b=1,
                          parameters={"ask_face": True})
    job = plan_analysis(store, comp_id)
    assert (job.face_index_a, job.face_index_b) == (None, None)
    job = plan_analysis(store, comp_id, face_choices={"a": 1})
    assert (job.face_index_a, job.face_index_b) == (1, None)
    job = plan_analysis(store, comp_id, face_choices={"b": 0})
    assert (job.face_index_a, job.face_index_b) == (None, 0)
    no_ask = _comparison(store, photos, "two.png", "two.png", face_index_a=1, face_index_b=0,
                         parameters={"ask_face": False})
    assert (plan_analysis(store, no_ask).face_index_a, plan_analysis(store, no_ask).face_index_b) == (1, 0)


@pytest.mark.parametrize("stored, asked, planned", [(None, False, False), ({"prealigned": True}, False, True),
                                                    ({"prealigned": False}, True, True),
                                                    ({"prealigned": False}, False, False),
                                                    ({"prealigned": 1}, False, True)])
def test_pre_aligned_is_planned_when_the_comparison_or_the_caller_says_so(store, photos, stored, asked, planned):
    comp_id = _comparison(store, photos, parameters=stored)
    assert plan_analysis(store, comp_id, prealigned=asked).prealigned is planned


def test_a_removed_comparison_is_not_planned_again(store, photos):
    comp_id = _comparison(store, photos)
    store.remove_comparison(comp_id, "wrong photo")
    with pytest.raises(StoreError) as err:
        plan_analysis(store, comp_id)
    assert str(err.value) == f"comparison {comp_id} was removed (wrong photo): it is not analysed again"


# --- ModelCache -------------------------------------------------------------------------------------------------
def test_the_model_cache_loads_each_file_and_device_once_and_keeps_one_aligner_per_model(monkeypatch, tmp_path,
                                                                                     tiny_model):
    import gc

    from xfr_desktop.core import model as model_module

    loads = []
    loaded = [tiny_model, make_other_model(), make_other_model()]

    def load_model(path, device):
        loads.append((path, device))
        return loaded[len(loads) - 1]

    monkeypatch.setattr(model_module, "load_model", load_model)
    cache = ModelCache()
    stale = object()
    cache._aligners[id(tiny_model)] = stale   # an aligner left under the id a new model takes: dropped on load
    gc.unfreeze()
    (tmp_path / "sub").mkdir()
    assert cache.model(str(tmp_path / "sub" / ".." / "m.pt"), "cpu") is tiny_model
    assert gc.get_freeze_count() > 0       # the loaded model is kept out of the collector's passes
    gc.unfreeze()
    assert cache.model(str(tmp_path / "m.pt"), "cpu") is tiny_model   # the same file, spelt otherwise
    assert loads == [(str(tmp_path / "m.pt"), "cpu")]
    assert list(cache.models) == [(str(tmp_path / "m.pt"), "cpu")]
    aligner = cache.aligner(tiny_model)
    assert aligner is not stale and isinstance(aligner, FaceAligner) and cache.aligner(tiny_model) is aligner
    assert cache.model(None, "cpu") is loaded[1]        # no path: the bundled model
    assert loads[1] == (str(model_module.default_model_path()), "cpu")
    assert cache.aligner(loaded[1]) is not aligner
    assert cache.model(str(tmp_path / "m.pt"), "cpu:0") is loaded[2]   # the device as asked is part of the key
    assert loads[2] == (str(tmp_path / "m.pt"), "cpu:0")


def make_other_model():
    return make_tiny_model(make_tiny_spec())


# --- analyse_comparison: a detected pair --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """The tiny model loaded from its file, with a calibration saved beside it."""
    from xfr_desktop.core.calibration import calibration_path, fit_calibration
    from xfr_desktop.core.model import load_model, save_model

    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model(make_tiny_model(make_tiny_spec()), path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    rng = np.random.default_rng(0)
    fit_calibration(rng.normal(0.9, 0.05, 400), rng.normal(0.5, 0.1, 400), model_sha256=sha,
                    model_name="tiny", reference="synthetic").save(calibration_path(path))
    return load_model(path, device="cpu"), path, sha


def test_a_detected_pair_is_saved_with_its_provenance_progress_status_and_photo_quality(store, photos, calibrated):
    from xfr_desktop.core.calibration import likelihood_ratio

    model, path, sha = calibrated
    comp_id = _comparison(store, photos, "one.jpg", "two.png", face_index_a=0, face_index_b=1)
    job = plan_analysis(store, comp_id, trust_jitter=None, engine="batched")
    job.threshold, job.top_k = 0.25, 5
    seen, statuses, progress, _ = _recorder(store, comp_id)
    aligner = RecordingAligner.for_model(model)
    before = datetime.now(timezone.utc).isoformat(timespec="seconds")
    outcome = analyse_comparison(store, job, model, aligner=aligner, progress=progress)
    after = datetime.now(timezone.utc).isoformat(timespec="seconds")
    assert aligner.detected == 2     # the aligner given is the one used, detecting once per photo
    assert statuses == ["running"] * (len(seen) - 1) + ["done"]   # done when saved, before the last report
    assert seen[:4] == [(DETECT, 0.1), (DETECT, 0.15), (DETECT, 0.2), (EMBED, 0.25)]
    assert seen[-3:] == [(COMBINE, 0.58), (SAVE, 0.97), (SAVE, 1.0)]
    middle = [f for label, f in seen[4:-3]]
    assert {label for label, _ in seen[4:-3]} == {RESIDUALS} and middle == sorted(middle)
    assert 0.25 <= middle[0] and middle[-1] == 0.55
    comp = store.get_comparison(comp_id)
    assert (comp.status, comp.status_message) == ("done", None)
    [record] = store.list_results(comp_id)
    params = dict(record.parameters)
    analysed_at, lr = params.pop("analysed_at"), params.pop("likelihood_ratio")
    assert params == {"threshold": 0.25, "normalization": "sum", "channels": None, "top_k": 5, "engine": "batched",
                      "face_index_a": 0, "face_index_b": 1, "prealigned": False, "device": "cpu",
                      "model_threshold": 0.3}
    assert ISO_SECONDS.fullmatch(analysed_at) and before <= analysed_at <= after
    assert lr["value"] == pytest.approx(likelihood_ratio(path, record.score)[0])
    assert outcome.likelihood_ratio == lr
    assert (record.model_name, record.model_sha256) == ("tiny-test-model", sha)
    assert (outcome.model_name, outcome.model_sha256) == ("tiny-test-model", sha)
    assert outcome.record.id == record.id and outcome.job is job and outcome.result.score == record.score
    assert 0.0 < outcome.seconds < 120.0
    faces = outcome.record.faces()
    assert {"box", "landmarks", "transform"} <= set(faces["a"]) and "stable_agreement" not in faces["a"]
    # face 2 of two.png (0-based 1): the smaller one, Aaron Eckhart's on the left; face 1 of one.jpg: his too
    np.testing.assert_allclose(faces["b"]["box"], [75.7, 64.2, 96.2, 120.1], atol=1.0)
    np.testing.assert_allclose(faces["a"]["box"], [75.7, 64.2, 96.2, 120.1], atol=1.0)
    for side in "ab":   # five landmarks, inside the face's box
        x, y, w, h = faces[side]["box"]
        marks = faces[side]["landmarks"]
        assert marks.shape == (5, 2) and marks.dtype == np.float64
        assert ((marks > [x, y]) & (marks < [x + w, y + h])).all()
    assert set(outcome.faces_extra) == {"a", "b"}
    np.testing.assert_array_equal(outcome.faces_extra["b"]["box"], faces["b"]["box"])
    assert outcome.faces_extra["b"]["transform"].shape == (2, 3)
    assert set(outcome.photos) == {"a", "b"} and outcome.photos["b"].pixels.shape == (250, 500, 3)
    np.testing.assert_array_equal(outcome.photos["b"].pixels, np.asarray(Image.open(photos / "two.png")))
    quality = {side: store.image_quality(comp_id, side).data for side in "ab"}
    assert [(q["width_px"], q["height_px"], q["face_number"], q["n_faces"]) for q in quality.values()] == [
        (250, 250, 1, 1), (500, 250, 2, 2)]
    np.testing.assert_allclose(quality["b"]["face_box_px"], [96.2, 120.1], atol=1.0)   # its box, its landmarks
    assert quality["b"]["inter_eye_px"] > 0 and quality["a"]["inter_eye_px"] > 0
    assert quality["a"]["file_bytes"] == (photos / "one.jpg").stat().st_size
    assert quality["b"]["file_bytes"] == (photos / "two.png").stat().st_size


def test_a_pre_aligned_pair_is_saved_without_detection_and_an_unnamed_model_is_named_model(store, photos,
                                                                                         tiny_spec):
    del tiny_spec["name"]
    model = make_tiny_model(tiny_spec)
    comp_id = _comparison(store, photos, "one.jpg", "crop.png", face_index_a=3, face_index_b=2,
                          parameters={"prealigned": True})
    outcome = analyse_comparison(store, plan_analysis(store, comp_id, trust_jitter=None), model)
    [listed] = store.list_results(comp_id)
    record = store.get_result(listed.id)
    assert record.parameters["prealigned"] is True and "likelihood_ratio" not in record.parameters
    assert (record.parameters["face_index_a"], record.parameters["face_index_b"]) == (0, 0)
    assert (record.parameters["threshold"], record.parameters["engine"]) == (0.3, "fast")
    assert (record.model_name, record.model_sha256, outcome.likelihood_ratio) == ("model", None, None)
    faces = record.faces()
    assert "box" not in faces["a"] and "landmarks" not in faces["b"]
    np.testing.assert_allclose(faces["b"]["transform"], [[112 / 200, 0, 0], [0, 112 / 200, 0]])
    assert set(outcome.faces_extra["a"]) == {"transform"}
    quality = {side: store.image_quality(comp_id, side).data for side in "ab"}
    assert [(q["width_px"], q["face_number"], q["n_faces"]) for q in quality.values()] == [
        (250, None, None), (200, None, None)]
    assert not {"face_box_px", "inter_eye_px"} & (set(quality["a"]) | set(quality["b"]))


# --- face choice ------------------------------------------------------------------------------------------------
def test_several_faces_on_side_b_ask_for_a_choice_after_side_a_is_aligned(store, photos, tiny_model):
    comp_id = _comparison(store, photos, "one.jpg", "two.png", parameters={"ask_face": True})
    job = plan_analysis(store, comp_id, trust_jitter=None)
    seen, _, progress, _ = _recorder()
    request = analyse_comparison(store, job, tiny_model, progress=progress)   # A: one face, taken without asking
    assert isinstance(request, FaceChoiceRequest)
    assert (request.job, request.side, request.name) == (job, "b", "B (two.png)")
    np.testing.assert_array_equal(request.image, np.asarray(Image.open(photos / "two.png")))
    assert len(request.boxes) == 2      # largest first: AJ Cook's on the right, then Aaron Eckhart's
    np.testing.assert_allclose(request.boxes, [[333.8, 63.0, 90.4, 133.4], [75.7, 64.2, 96.2, 120.1]], atol=1.0)
    assert seen == [(DETECT, 0.1), (DETECT, 0.15)]
    comp = store.get_comparison(comp_id)
    assert (comp.status, comp.status_message) == ("new", "waiting for a face choice")
    assert store.list_results(comp_id) == []


def test_several_faces_on_side_a_ask_first_and_a_chosen_face_is_analysed(store, photos, tiny_model):
    comp_id = _comparison(store, photos, "two.png", "two.png", parameters={"ask_face": True})
    job = plan_analysis(store, comp_id, trust_jitter=None)
    request = analyse_comparison(store, job, tiny_model)
    assert (request.side, request.name) == ("a", "A (two.png)")
    outcome = analyse_comparison(store, plan_analysis(store, comp_id, face_choices={"a": 1, "b": 0},
                                                      trust_jitter=None), tiny_model)
    assert (outcome.record.parameters["face_index_a"], outcome.record.parameters["face_index_b"]) == (1, 0)
    faces = outcome.record.faces()
    assert faces["a"]["box"][0] < 250 < faces["b"]["box"][0]
    assert store.get_comparison(comp_id).status == "done"


# --- cancellation and failure -----------------------------------------------------------------------------------
@pytest.mark.parametrize("stop_at, seen_last", [
    ((DETECT, 0.1), (DETECT, 0.1)),          # after side A is aligned: side B is not
    ((DETECT, 0.15), (DETECT, 0.15)),        # after side B: no embedding
    ((EMBED, 0.25), (EMBED, 0.25)),          # after the embeddings (Algorithm 1 polls it): no residuals
    ((COMBINE, 0.58), (COMBINE, 0.58)),      # after the maps are combined: nothing saved
])
def test_cancelling_after_a_stage_stops_before_the_next_and_saves_nothing(store, photos, tiny_model, stop_at,
                                                                         seen_last):
    comp_id = _comparison(store, photos, "one.jpg", "one.jpg")
    seen, _, progress, is_cancelled = _recorder(stop_at=stop_at)
    with pytest.raises(Cancelled):
        analyse_comparison(store, plan_analysis(store, comp_id, trust_jitter=None), tiny_model, progress=progress,
                           is_cancelled=is_cancelled)
    assert seen[-1] == seen_last and seen.count(seen_last) == 1
    comp = store.get_comparison(comp_id)
    assert (comp.status, comp.status_message) == ("cancelled", "cancelled by the examiner")
    assert store.list_results(comp_id) == []


def test_cancelling_during_the_residuals_stops_them(store, photos, tiny_model):
    comp_id = _comparison(store, photos, "one.jpg", "one.jpg", parameters={"prealigned": True})
    seen, _, progress, _ = _recorder()
    with pytest.raises(Cancelled):
        analyse_comparison(store, plan_analysis(store, comp_id, trust_jitter=None), tiny_model, progress=progress,
                           is_cancelled=lambda: any(label == RESIDUALS for label, _ in seen))
    assert [label for label, _ in seen] == [DETECT, DETECT, DETECT, EMBED, RESIDUALS]
    assert store.get_comparison(comp_id).status == "cancelled"


def test_a_photo_without_a_face_fails_the_analysis_and_says_so_in_the_status(store, photos, tiny_model):
    comp_id = _comparison(store, photos, "noise.png", "one.jpg")
    with pytest.raises(NoFaceError):
        analyse_comparison(store, plan_analysis(store, comp_id, trust_jitter=None), tiny_model)
    comp = store.get_comparison(comp_id)
    assert (comp.status, comp.status_message) == ("failed", "A (noise.png): no face found")
    assert store.list_results(comp_id) == []
    comp_id = _comparison(store, photos, "one.jpg", "noise.png")
    with pytest.raises(NoFaceError):
        analyse_comparison(store, plan_analysis(store, comp_id, trust_jitter=None), tiny_model)
    assert store.get_comparison(comp_id).status_message == "B (noise.png): no face found"


@pytest.mark.parametrize("a, b, kwargs, message", [
    ("one.jpg", "two.png", {"face_index_b": 5},
     "B (two.png): face 6 requested but 2 faces found (valid: 1 to 2, 1 = largest)"),
    ("one.jpg", "two.png", {"parameters": {"prealigned": True}},
     "B (two.png): 500x250 is not an aligned face crop for this model"),
    ("crop.png", "one.jpg", {"parameters": {"prealigned": True}, "delete": "a"}, "A (crop.png): file not found"),
])
def test_a_failure_s_status_names_the_photo_as_the_examiner_knows_it(store, photos, tiny_model, a, b, kwargs,
                                                                     message):
    kwargs = dict(kwargs)                     # the parameter's own dict stays as it is for a rerun
    delete = kwargs.pop("delete", None)
    comp_id = _comparison(store, photos, a, b, **kwargs)
    job = plan_analysis(store, comp_id, trust_jitter=None)
    if delete:
        job.image_a.unlink()
    with pytest.raises(Exception):
        analyse_comparison(store, job, tiny_model)
    comp = store.get_comparison(comp_id)
    assert comp.status == "failed" and comp.status_message.startswith(message)


def test_a_status_that_cannot_be_recorded_is_logged_not_raised(store, caplog):
    with caplog.at_level(logging.ERROR, logger="xfr_desktop.analysis"):
        _record_status(store, 4242, "failed", "x")
    assert [r.getMessage() for r in caplog.records] == ["cannot record comparison status"]


def test_photo_quality_is_recorded_per_side_and_a_side_that_cannot_be_measured_is_logged(store, photos,
                                                                                       tiny_model, caplog):
    from xfr_desktop.core.imageio import load_photo

    comp_id = _comparison(store, photos, "one.jpg", "crop.png", parameters={"prealigned": True})
    job = plan_analysis(store, comp_id)
    aligner = FaceAligner.for_model(tiny_model)
    photo = {"a": load_photo(job.image_a), "b": load_photo(job.image_b)}
    aligned = {side: aligner.align_prealigned(photo[side]) for side in "ab"}
    with caplog.at_level(logging.ERROR, logger="xfr_desktop.analysis"):
        record_photo_quality(store, job, aligned, {"a": photo["a"]})    # B's photo is missing
    assert store.image_quality(comp_id, "a").data["width_px"] == 250
    assert store.image_quality(comp_id, "b") is None
    assert [r.getMessage() for r in caplog.records] == ["cannot record the quality of photo B"]


# --- stored results: payload, recombination, reset, reload -------------------------------------------------------
@pytest.fixture
def analysed(store, photos, tiny_model):
    comp_id = _comparison(store, photos, "one.jpg", "two.png", face_index_b=1)
    outcome = analyse_comparison(store, plan_analysis(store, comp_id, trust_jitter=None), tiny_model)
    return comp_id, outcome


def test_a_payload_keeps_only_the_provenance_keys_and_leaves_out_a_missing_ratio_or_trust(analysed):
    _, outcome = analysed
    result = outcome.result
    base = {"threshold": round(result.threshold, 6), "normalization": "sum", "channels": None, "top_k": None,
            "engine": "fast"}
    payload = result_record_payload(result, model_name="m", model_sha256="ab" * 32, faces_extra={},
                                    provenance={"face_index_a": 1, "likelihood_ratio": None, "trust": None,
                                                "other": 5})
    assert payload["parameters"] == {**base, "face_index_a": 1}
    assert (payload["model_name"], payload["model_sha256"]) == ("m", "ab" * 32)
    provenance = {"face_index_a": 0, "face_index_b": 2, "prealigned": True, "device": "cpu",
                  "model_threshold": 0.3, "likelihood_ratio": {"value": 2.0}, "analysed_at": "2026-01-01",
                  "trust": {"faithfulness": {}}}
    payload = result_record_payload(result, model_name=None, model_sha256=None, faces_extra={},
                                    provenance=provenance, derived_from=0)
    assert payload["parameters"] == {**base, **provenance, "derived_from_result": 0}
    payload = result_record_payload(result, model_name=None, model_sha256=None,
                                    faces_extra={"a": {"box": np.array([1.0, 2, 3, 4])}}, provenance={})
    assert payload["parameters"] == base


def test_a_recombined_result_keeps_the_provenance_and_face_marks_and_records_its_time(store, analysed):
    comp_id, outcome = analysed
    loaded = load_result(store, outcome.record.id)
    changed = loaded.result.recombine(threshold=0.05, channels=loaded.result.channels, top_k=4)
    changed.timings_ms["recombine"] = 1.23456
    old = store.get_result(outcome.record.id)
    new, extra = save_recombined(store, old, changed)
    assert new.parameters == {**{k: old.parameters[k] for k in ("face_index_a", "face_index_b", "prealigned",
                                                                 "device", "model_threshold", "analysed_at")},
                              "threshold": 0.05, "normalization": "sum", "channels": None, "top_k": 4,
                              "engine": "fast", "derived_from_result": old.id}
    assert new.timings == {**old.timings, "recombine": 1.235}
    assert (new.model_name, new.model_sha256) == ("tiny-test-model", None)
    assert set(extra) == {"a", "b"} and set(extra["a"]) == {"box", "landmarks", "transform"}
    np.testing.assert_array_equal(extra["b"]["box"], old.faces()["b"]["box"])
    assert set(new.faces()["a"]) >= {"box", "landmarks", "transform"}
    np.testing.assert_array_equal(new.faces()["b"]["landmarks"], old.faces()["b"]["landmarks"])
    for chosen in (new, save_recombined(store, old, loaded.result.recombine(threshold=0.05, channels=[0, 1, 2],
                                                                              top_k=None))[0]):
        # reopened, its own selection is already combined: the residuals keep the sums of that selection
        reopened = load_result(store, chosen.id).result
        assert reopened.a.residuals._selection[0] == reopened.selected.tobytes()
        assert reopened.b.residuals._selection[0] == reopened.selected.tobytes()
    one_sided = replace(old, model_sha256="cd" * 32, faces_npz=pack_arrays({"a": {"box": np.array([1.0, 2.0, 3.0, 4.0]),
                                                          "aligned": np.zeros((2, 2, 3), np.uint8)}}))
    signed, extra = save_recombined(store, one_sided, changed)  # a side without stored faces: nothing to keep
    assert signed.model_sha256 == "cd" * 32                      # the model file of the result it came from
    assert set(extra) == {"a", "b"} and extra["b"] == {} and list(extra["a"]) == ["box"]
    del changed.timings_ms["recombine"]
    again, _ = save_recombined(store, old, changed)
    assert again.timings["recombine"] == 0
    assert [r.id for r in store.list_results(comp_id)][-1] == again.id


def test_reset_goes_back_to_the_stored_model_threshold_else_the_first_result_s_else_its_own(store, photos,
                                                                                         analysed):
    comp_id, outcome = analysed
    loaded = load_result(store, outcome.record.id)
    second, _ = save_recombined(store, loaded.record, loaded.result.recombine(threshold=0.11,
                                                                               channels=None, top_k=None))
    assert reset_threshold(store, replace(second, parameters={"model_threshold": 0.42})) == 0.42
    assert reset_threshold(store, replace(second, parameters={"model_threshold": "0.5"})) == 0.5
    first_threshold = store.list_results(comp_id)[0].threshold
    assert reset_threshold(store, replace(second, parameters={})) == first_threshold == pytest.approx(0.3)
    assert reset_threshold(store, replace(second, parameters=None)) == pytest.approx(0.3)
    empty = _comparison(store, photos)
    assert reset_threshold(store, replace(second, comparison_id=empty, parameters={}, threshold=0.07)) == 0.07


def test_a_loaded_result_has_its_maps_faces_and_both_photos_and_a_missing_photo_is_logged(store, analysed,
                                                                                        caplog):
    comp_id, outcome = analysed
    comp = store.get_comparison(comp_id)
    loaded = load_result(store, outcome.record.id)
    assert loaded.record.id == outcome.record.id
    np.testing.assert_array_equal(loaded.result.a.H, outcome.result.a.H)
    np.testing.assert_array_equal(loaded.result.b.S, outcome.result.b.S)
    assert set(loaded.faces) == {"a", "b"}
    np.testing.assert_array_equal(loaded.faces["b"]["box"], outcome.faces_extra["b"]["box"])
    assert set(loaded.photos) == {comp.image_a, comp.image_b}
    assert loaded.photos[comp.image_b].pixels.shape == (250, 500, 3)
    store.image_path(comp.image_b).unlink()
    with caplog.at_level(logging.WARNING, logger="xfr_desktop.analysis"):
        loaded = load_result(store, outcome.record.id)
    assert set(loaded.photos) == {comp.image_a}
    [message] = [r.getMessage() for r in caplog.records if r.name == "xfr_desktop.analysis"]
    assert message.startswith(f"cannot show the stored photo {comp.image_b[:12]}: ")
    assert f": image {comp.image_b[:12]}… is missing from the image store " in message    # and why
