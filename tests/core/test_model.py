"""The joint model's file format, its clear errors, and insightface key import."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from xfr_desktop.core import ModelFileError, load_model, save_model
from xfr_desktop.core.backbones.iresnet import IResNetBackbone
from xfr_desktop.core.model import JointModel, default_spec, import_insightface_backbone


class InsightfaceLikeIResNet(IResNetBackbone):
    """The arcface_torch layout: the backbone plus its dropout -> fc -> features head."""

    def __init__(self, layers, widths):
        super().__init__(layers, widths)
        self.dropout = torch.nn.Dropout(0.0)
        self.fc = torch.nn.Linear(widths[-1] * 7 * 7, 32)
        self.features = torch.nn.BatchNorm1d(32)


def test_save_and_load_round_trip(tmp_path, tiny_model):
    path = tmp_path / "m.pt"
    sha = save_model(tiny_model, path)
    loaded = load_model(path)
    assert loaded.sha256 == sha and loaded.spec == tiny_model.spec
    x = torch.rand(1, 3, 112, 112)
    C1, F1 = tiny_model.embed(x)
    C2, F2 = loaded.embed(x)
    assert torch.equal(F1, F2) and torch.equal(tiny_model.reconstruct(C1), loaded.reconstruct(C2))
    assert loaded.reconstruct(C2).shape == (1, 3, 112, 112)
    assert loaded.reconstruct(C2).abs().max() <= 1.0      # tanh: bounded, in the input normalization


def test_preprocess_and_to_uint8_are_inverse(tiny_model):
    img = np.random.default_rng(1).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    np.testing.assert_array_equal(tiny_model.to_uint8(tiny_model.preprocess(img))[0], img)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "foreign"])
def test_damaged_model_files_get_a_clear_error_naming_the_file(tmp_path, tiny_model, damage):
    path = tmp_path / "m.pt"
    save_model(tiny_model, path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00garbage" * 100)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(ModelFileError) as err:
        load_model(path)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "nope.pt")


def test_model_whose_weights_do_not_fit_its_spec(tmp_path, tiny_model):
    path = tmp_path / "m.pt"
    save_model(tiny_model, path)
    payload = torch.load(path, weights_only=True)
    payload["spec_json"] = payload["spec_json"].replace('"depth": 18', '"depth": 34')
    torch.save(payload, path)
    with pytest.raises(ModelFileError, match="does not match its own spec"):
        load_model(path)


def test_insightface_state_dict_imports_by_key_name(caplog):
    spec = default_spec(depth=18, widths=[8, 8, 16, 16], channels=16,
                        decoder={"layers": [{"in": 16, "out": 3, "kernel": 16, "stride": 16, "padding": 0}]})
    torch.manual_seed(0)
    source = InsightfaceLikeIResNet([2, 2, 2, 2], (8, 8, 16, 16)).eval()
    state = source.state_dict()
    with caplog.at_level(logging.WARNING):
        model = import_insightface_backbone(state, spec).eval()
    assert "fc.weight" in caplog.text and "features.running_mean" in caplog.text
    x = torch.rand(2, 3, 112, 112)
    C, F = model.embed(x)
    assert torch.equal(C, IResNetBackbone.forward(source, x))
    assert torch.equal(F, C.amax((2, 3)))


def test_insightface_import_names_missing_and_unexpected_keys():
    spec = default_spec(depth=18, widths=[8, 8, 16, 16], channels=16)
    state = InsightfaceLikeIResNet([2, 2, 2, 2], (8, 8, 16, 16)).state_dict()
    del state["layer1.0.conv1.weight"]
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(ModelFileError) as err:
        import_insightface_backbone(state, spec)
    assert "layer1.0.conv1.weight" in str(err.value) and "extra.weight" in str(err.value)


def test_paper_configuration_shapes():
    model = JointModel(default_spec()).eval()
    C, F = model.embed(torch.zeros(1, 3, 112, 112))
    assert C.shape == (1, 512, 7, 7) and F.shape == (1, 512)
    assert model.reconstruct(C).shape == (1, 3, 112, 112)
