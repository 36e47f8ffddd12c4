"""Stored explanations round-trip: a result reopened from the store recombines exactly like the computed one."""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from xfr_desktop.core.decoder import paper_decoder_spec  # noqa: E402
from xfr_desktop.core.explain import explain_pair  # noqa: E402
from xfr_desktop.core.model import JointModel, default_spec  # noqa: E402
from xfr_desktop.core.serialize import (explanation_from_dict, explanation_from_npz_bytes,  # noqa: E402
                                        explanation_from_result, explanation_to_dict, explanation_to_npz_bytes,
                                        result_payload)
from xfr_desktop.store import open_store  # noqa: E402


@pytest.fixture(scope="module")
def explanation():
    torch.manual_seed(1)
    spec = default_spec(depth=18, widths=[8, 8, 16, 16], channels=16, decoder=paper_decoder_spec((16, 8, 8, 8, 3)))
    model = JointModel(spec).eval()
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(2))
    return explain_pair(model, a, b, top_k=10)


def _same(x, y):
    assert x.score == pytest.approx(y.score) and x.threshold == pytest.approx(y.threshold)
    assert x.top_k == y.top_k and x.channels == y.channels and x.normalization == y.normalization
    np.testing.assert_array_equal(x.selected, y.selected)
    for side in "ab":
        sx, sy = getattr(x, side), getattr(y, side)
        for key in ("H", "S", "S_pos", "S_neg", "weights"):
            np.testing.assert_allclose(getattr(sx, key), getattr(sy, key), atol=1e-7)
        np.testing.assert_array_equal(sx.aligned, sy.aligned)
        np.testing.assert_array_equal(sx.reconstruction, sy.reconstruction)
        np.testing.assert_allclose(sx.residuals.dense(), sy.residuals.dense())


def test_dict_and_npz_round_trip(explanation):
    _same(explanation, explanation_from_dict(explanation_to_dict(explanation)))
    back = explanation_from_npz_bytes(explanation_to_npz_bytes(explanation))
    _same(explanation, back)
    # recombination after reopening equals recombination in memory
    _same(explanation.recombine(threshold=0.05, top_k=4), back.recombine(threshold=0.05, top_k=4))
    _same(explanation.recombine(channels=[1, 2, 3]), back.recombine(channels=[1, 2, 3]))


def test_maps_rebuilt_when_not_stored(explanation):
    data = explanation_to_dict(explanation)
    for side in "ab":
        for key in ("H", "S", "S_pos", "S_neg", "weights"):
            data[side].pop(key)
    _same(explanation, explanation_from_dict(data))


def test_store_result_round_trip(explanation, tmp_path):
    with open_store(tmp_path) as store:
        case = store.create_case("S-1")
        imgs = []
        for i in range(2):
            p = tmp_path / f"{i}.png"
            from PIL import Image

            Image.fromarray(getattr(explanation, "ab"[i]).aligned).save(p)
            imgs.append(store.import_image(p, case_id=case.id))
        comp = store.add_comparison(case.id, *imgs)
        box = np.array([1.0, 2.0, 30.0, 40.0])
        record = store.save_result(comp.id, result_payload(explanation, model_sha256="0" * 64, model_name="m",
                                                           faces_extra={"a": {"box": box}}))
        loaded = store.get_result(record.id)
        assert loaded.parameters["top_k"] == 10 and loaded.decision == explanation.decision
        np.testing.assert_allclose(loaded.faces()["a"]["box"], box)
        _same(explanation, explanation_from_result(loaded))


def test_gui_start_up_does_not_import_torch():
    code = ("import sys; import xfr_desktop.gui.app, xfr_desktop.gui.main_window; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
