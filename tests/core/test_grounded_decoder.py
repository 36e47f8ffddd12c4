"""A grounded decoder (spatial mixing before the transposed convolutions): spec, files, and Algorithm 1's
engines stay exact on it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from xfr_desktop.core.algorithm1_engines import compute_residuals, flatten_decoder, localizable
from xfr_desktop.core.decoder import SpatialMix, build_decoder
from xfr_desktop.core.errors import ModelFileError
from xfr_desktop.core.model import JointModel, check_spec, load_model, save_model
from tests.core.test_engines import randomize_bn

F32 = torch.finfo(torch.float32).eps


def mix_spec(c=6, hw=(3, 4)) -> dict:
    return {"spatial_mix": {"channels": c, "size": list(hw)}, "hidden_activation": "relu", "final_activation": "tanh",
            "layers": [{"in": c, "out": 5, "kernel": 3, "stride": 2, "padding": 0, "output_padding": 0},
                       {"in": 5, "out": 4, "kernel": 4, "stride": 2, "padding": 1, "output_padding": 1},
                       {"in": 4, "out": 3, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 0}]}


def random_mix_decoder(seed: int, spec: dict | None = None) -> nn.Sequential:
    gen = torch.Generator().manual_seed(seed)
    dec = build_decoder(spec or mix_spec()).eval()
    with torch.no_grad():
        for p in dec.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.6)
        randomize_bn(dec, gen)
    return dec


def random_C(seed: int, c=6, hw=(3, 4)) -> torch.Tensor:
    C = torch.randn(1, c, *hw, generator=torch.Generator().manual_seed(seed))
    C[0, 2] = 0.7     # ties everywhere: the first index is the one zeroed
    C[0, 4] = -C[0, 4].abs()   # a channel whose maximum is negative
    return C


def straightforward_loop(dec: nn.Module, C: torch.Tensor) -> torch.Tensor:
    """The paper's loop in float64, written without the engines' code: (c, H, W)."""
    dec, C = dec.double().requires_grad_(False), C.double()
    R0 = dec(C)
    out = []
    for i in range(C.shape[1]):
        Cm = C.clone()
        Cm[0, i].view(-1)[int(torch.argmax(C[0, i].flatten()))] = 0
        out.append((dec(Cm) - R0).abs().sum(1)[0])
    return torch.stack(out)


def test_identity_mixing_decodes_as_the_decoder_without_it():
    spec = mix_spec()
    plain = random_mix_decoder(0, {k: v for k, v in spec.items() if k != "spatial_mix"})
    mixed = build_decoder(spec).eval()
    mixed.load_state_dict({f"{int(k.split('.')[0]) + 1}.{k.split('.', 1)[1]}": v
                           for k, v in plain.state_dict().items()}, strict=False)
    assert isinstance(mixed[0], SpatialMix) and not any(isinstance(m, SpatialMix) for m in plain)
    C = random_C(1)
    assert torch.equal(mixed(C), plain(C))


def test_localizable_is_false_with_spatial_mixing():
    layers = flatten_decoder(random_mix_decoder(0))
    assert not localizable(layers)
    assert not localizable(layers[1:] + layers[:1])     # wherever it sits
    assert localizable(layers[1:])                      # (the rest of the decoder alone is local)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_engine_equals_a_straightforward_loop(seed):
    dec, C = random_mix_decoder(seed), random_C(seed)
    ref = straightforward_loop(random_mix_decoder(seed), C)
    # float32 rounding: a residual is the difference of two float32 passes, each as far from float64 as the
    # base pass is (measured on this decoder), with a margin of 4 for the sum over colours and chunking
    with torch.no_grad():
        pass_err = float((dec(C).double() - random_mix_decoder(seed).double()(C.double())).abs().max())
    tol = 4 * (2 * pass_err + F32)
    for engine, used in (("literal", "literal"), ("batched", "batched"), ("fast", "mixed")):
        raw = compute_residuals(dec, C, engine=engine, chunk=4)
        assert raw.engine == used and (raw.offsets == 0).all() and raw.values.shape == tuple(ref.shape)
        err = np.abs(raw.values - ref.numpy()).max()
        assert err <= tol, (engine, err, tol)
    assert float(ref.max()) > 1000 * tol       # the residuals are far above the tolerance


def test_mixed_route_needs_frozen_batch_norm():
    dec = random_mix_decoder(0)
    assert compute_residuals(dec, random_C(0), engine="fast").engine == "mixed"
    dec[2].train()
    assert compute_residuals(dec, random_C(0), engine="fast").engine == "batched"


def tiny_grounded_model(tiny_model) -> JointModel:
    spec = dict(tiny_model.spec)
    spec["decoder"] = {**spec["decoder"], "spatial_mix": {"channels": 16, "size": [7, 7]}}
    model = JointModel(spec, backbone=tiny_model.backbone)
    with torch.no_grad():
        model.decoder[0].weight.add_(torch.randn_like(model.decoder[0].weight) * 0.1)
    return model.eval()


def test_grounded_model_file_round_trips(tmp_path, tiny_model):
    model = tiny_grounded_model(tiny_model)
    sha = save_model(model, tmp_path / "g.pt")
    loaded = load_model(tmp_path / "g.pt")
    assert loaded.sha256 == sha and loaded.spec == model.spec and isinstance(loaded.decoder[0], SpatialMix)
    C, _ = model.embed(torch.rand(1, 3, 112, 112))
    assert torch.equal(model.reconstruct(C), loaded.reconstruct(C))


def test_oversized_spatial_mixing_is_refused_before_allocation(tmp_path, tiny_model):
    model = tiny_grounded_model(tiny_model)
    save_model(model, tmp_path / "g.pt")
    payload = torch.load(tmp_path / "g.pt", weights_only=True)
    spec = json.loads(payload["spec_json"])
    spec["decoder"]["spatial_mix"]["size"] = [40, 40]     # 16 channels of 1600x1600: 41M weights over 0.8M stored
    torch.save({**payload, "spec_json": json.dumps(spec)}, tmp_path / "huge.pt")
    with pytest.raises(ModelFileError, match="stores"):
        load_model(tmp_path / "huge.pt")
    spec["decoder"]["spatial_mix"] = {"channels": 16, "size": [1000, 1000]}   # 1.6e13 weights: refused outright
    with pytest.raises(ModelFileError, match="spatial mixing"):
        check_spec(spec)
    spec["decoder"]["spatial_mix"] = {"channels": 8, "size": [7, 7]}         # does not fit the first layer
    with pytest.raises(ModelFileError, match="spatial_mix"):
        check_spec(spec)
