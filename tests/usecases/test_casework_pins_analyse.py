"""Mutation pins for casework.analyse_case (issue 28): which comparisons of a case are analysed, what each item
holds, failures recorded per comparison while the others run. One real analysis (tiny model, a pre-aligned crop);
the other comparisons fail or stop before the model runs, so the file stays fast."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from xfr_desktop.casework import add_pair, analyse_case
from xfr_desktop.core.errors import StoreError
from xfr_desktop.store import open_store

IMAGES = Path(__file__).resolve().parents[2] / "resources" / "samples" / "images"


def _photos(tmp_path):
    face = np.asarray(Image.open(IMAGES / "Sergey_Lavrov_0003.jpg").convert("RGB"))
    other = np.asarray(Image.open(IMAGES / "John_Kerry_0009.jpg").convert("RGB"))
    paths = {name: tmp_path / f"{name}.png" for name in ("crop", "wide", "two", "flat")}
    Image.fromarray(np.ascontiguousarray(face[70:182, 70:182])).save(paths["crop"])     # an aligned-size crop
    Image.fromarray(np.full((100, 300, 3), 128, np.uint8)).save(paths["wide"])        # not an aligned crop
    Image.fromarray(np.concatenate([face, other], axis=1)).save(paths["two"])           # two faces
    Image.fromarray(np.full((112, 112, 3), 60, np.uint8)).save(paths["flat"])
    return paths


def test_analyse_case_runs_each_live_comparison_and_records_failures_per_comparison(tmp_path, model_file):
    p = _photos(tmp_path)
    model_sha = hashlib.sha256(model_file.read_bytes()).hexdigest()
    with open_store(tmp_path / "data") as store:
        case = store.create_case("A-1")
        ok = add_pair(store, case.id, p["crop"], p["crop"], prealigned=True)
        bad = add_pair(store, case.id, p["wide"], p["wide"], prealigned=True)
        gone = add_pair(store, case.id, p["flat"], p["flat"], prealigned=True)
        store.remove_comparison(gone.id, "withdrawn")
        sha_two, sha_flat = store.import_image(p["two"], case_id=case.id), store.import_image(p["flat"])
        ask = store.add_comparison(case.id, sha_two, sha_flat, parameters={"ask_face": True})
        seen = []
        done = analyse_case(store, case.id, model_path=str(model_file), device="cpu", on_done=seen.append)
        assert [(d.number, d.comparison.id) for d in done] == [(1, ok.id), (2, bad.id), (4, ask.id)]
        assert seen == done and all(s is d for s, d in zip(seen, done))
        assert done[0].error is None and done[1].outcome is None and done[2].outcome is None
        assert done[1].error == ("A (wide.png): 300x100 is not an aligned face crop for this model (it expects "
                                 "112x112, the same aspect ratio); drop --aligned to detect and align the face")
        assert done[2].error == "A (two.png) shows 2 faces: choose one when adding the pair"
        (result,) = store.list_results(ok.id)
        outcome = done[0].outcome
        assert (outcome.record.id, outcome.record.comparison_id, outcome.model_sha256) == (result.id, ok.id, model_sha)
        assert result.model_sha256 == model_sha and store.list_results(bad.id) == []
        assert store.get_comparison(bad.id).status == "failed"

        # one comparison by its number, no callback: only that one runs
        (only,) = analyse_case(store, case.id, comparison=2, model_path=str(model_file), device="cpu")
        assert (only.number, only.comparison.id, only.outcome) == (2, bad.id, None)
        assert only.error == done[1].error
        with pytest.raises(StoreError) as err:
            analyse_case(store, case.id, comparison=5, model_path=str(model_file))
        assert str(err.value) == "case A-1 has no comparison 5 (it has 4)"
        if not torch.cuda.is_available():             # the device asked for is the one the model is loaded on
            (cuda,) = analyse_case(store, case.id, comparison="1", model_path=str(model_file), device="cuda")
            assert (cuda.number, cuda.outcome) == (1, None)
            assert cuda.error == "CUDA was requested but no CUDA device is available; use --device cpu"
        assert len(store.list_results(ok.id)) == 1
