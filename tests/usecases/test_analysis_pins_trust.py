"""Mutation pins for analysis.py (issue 28), the per-pair trust check: what an analysis with it stores and shows
(progress, the trust record, the stable-regions maps), with and without jitter draws, cancellation during it, and a recombined result
that leaves it behind. Pre-aligned LFW crops on the tiny random model and a real store; each run re-scores the pair
about a hundred times, so the runs here are few."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from xfr_desktop.analysis import analyse_comparison, load_result, plan_analysis, save_recombined
from xfr_desktop.core.errors import Cancelled
from xfr_desktop.store import open_store

TRUST = "Checking the map for this pair (faithfulness, stability)"
COMBINE = "Combining maps"
SAVE = "Saving result"


@pytest.fixture
def comparison(lfw_dir, tmp_path):
    """(store, comparison id) of two pre-aligned 200x200 crops of LFW photos."""
    for name, person in (("a.png", "Aaron_Eckhart"), ("b.png", "AJ_Cook")):
        Image.open(lfw_dir / person / f"{person}_0001.jpg").crop((25, 25, 225, 225)).save(tmp_path / name)
    with open_store(tmp_path / "data") as store:
        case = store.create_case("T-1", examiner="tester")
        shas = [store.import_image(tmp_path / name, case_id=case.id) for name in ("a.png", "b.png")]
        yield store, store.add_comparison(case.id, *shas, parameters={"prealigned": True}).id


def _recorder(stop_at=None):
    seen, flag = [], []

    def progress(label, fraction):
        seen.append((label, round(fraction, 4)))
        if seen[-1] == stop_at:
            flag.append(True)

    return seen, progress, (lambda: bool(flag))


def test_an_analysis_with_one_jitter_draw_stores_its_trust_record_and_stable_regions(comparison, tiny_model):
    store, comp_id = comparison
    seen, progress, _ = _recorder()
    outcome = analyse_comparison(store, plan_analysis(store, comp_id, trust_jitter=1), tiny_model,
                                 progress=progress)
    # faithfulness: half the trust stage (0.58 + 0.39 / 2), the one draw: the rest
    assert seen[-5:] == [(COMBINE, 0.58), (TRUST, 0.775), (TRUST, 0.97), (SAVE, 0.97), (SAVE, 1.0)]
    record = store.get_result(outcome.record.id)
    trust = record.parameters["trust"]
    assert set(trust) == {"faithfulness", "stability"}
    assert trust["faithfulness"]["sentence"].startswith("For this pair, blurring the regions")
    assert (trust["stability"]["draws"], trust["stability"]["seed"]) == (1, 0)
    faces = record.faces()
    for k, side in enumerate("ab"):
        agreement = outcome.faces_extra[side]["stable_agreement"]
        assert agreement.dtype == np.float32 and agreement.shape == (112, 112)
        assert set(np.unique(agreement)) <= {0.0, 1.0}     # one draw: the sign held or it did not
        np.testing.assert_array_equal(faces[side]["stable_agreement"], agreement)
        # the share stored for this side is that of its own map (a pixel is stable at 0.8 of the draws)
        assert trust["stability"]["stable_share"][k] == round(float((agreement >= 0.8).mean()), 4)
    assert not np.array_equal(faces["a"]["stable_agreement"], faces["b"]["stable_agreement"])
    # a recombined result has other maps: the trust record and the stable regions stay with the original
    loaded = load_result(store, record.id)
    new, extra = save_recombined(store, loaded.record, loaded.result.recombine(threshold=0.1, channels=None,
                                                                                top_k=None))
    assert "trust" not in new.parameters and new.parameters["prealigned"] is True
    assert set(extra["a"]) == {"transform"} and "stable_agreement" not in new.faces()["a"]


def test_cancelling_after_the_faithfulness_check_stops_before_the_jitter_draw(comparison, tiny_model):
    store, comp_id = comparison
    seen, progress, is_cancelled = _recorder(stop_at=(TRUST, 0.775))
    with pytest.raises(Cancelled):
        analyse_comparison(store, plan_analysis(store, comp_id, trust_jitter=1), tiny_model, progress=progress,
                           is_cancelled=is_cancelled)
    assert seen[-2:] == [(COMBINE, 0.58), (TRUST, 0.775)]
    comp = store.get_comparison(comp_id)
    assert (comp.status, comp.status_message) == ("cancelled", "cancelled by the examiner")
    assert store.list_results(comp_id) == []


def test_a_check_without_jitter_draws_stores_the_faithfulness_only(comparison, tiny_model):
    store, comp_id = comparison
    seen, progress, _ = _recorder()
    outcome = analyse_comparison(store, plan_analysis(store, comp_id, trust_jitter=0), tiny_model,
                                 progress=progress)
    assert seen[-4:] == [(COMBINE, 0.58), (TRUST, 0.97), (SAVE, 0.97), (SAVE, 1.0)]
    record = store.get_result(outcome.record.id)
    assert list(record.parameters["trust"]) == ["faithfulness"]
    assert "stable_agreement" not in outcome.faces_extra["a"] and "stable_agreement" not in record.faces()["b"]
