"""Algorithm 1's engines give the same residuals; the maps decompose the decision margin."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from xfr_desktop.core import JointModel, default_spec, explain_pair
from xfr_desktop.core.decoder import build_decoder
from xfr_desktop.core.algorithm1_engines import (RawResiduals, _fast_one_batch, channel_maxima, compute_residuals,
                                                 compute_residuals_pair, flatten_decoder, window_geometry)
from xfr_desktop.core.explain import ResidualStack

ACTS = ["relu", "prelu", "leaky_relu", "tanh", "sigmoid", "identity"]


def dense(raw, size):
    stack = ResidualStack(values=raw.values, offsets=raw.offsets, image_size=size, raw_sums=np.zeros(len(raw.values)))
    return stack.dense().astype(np.float64)


def randomize_bn(module: nn.Module, gen: torch.Generator) -> None:
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=gen))
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
        if isinstance(m, nn.PReLU):
            m.weight.data.uniform_(-0.5, 0.5, generator=gen)


@st.composite
def decoder_specs(draw):
    n_layers = draw(st.integers(1, 3))
    chans = [draw(st.integers(2, 5)) for _ in range(n_layers)] + [3]
    layers = []
    for a, b in zip(chans[:-1], chans[1:]):
        k = draw(st.integers(1, 5))
        s = draw(st.integers(1, 3))
        p = draw(st.integers(0, k - 1))
        op = draw(st.integers(0, s - 1))
        d = draw(st.sampled_from([1, 1, 2]))
        layers.append({"in": a, "out": b, "kernel": k, "stride": s, "padding": p, "output_padding": op,
                       "dilation": d})
    return {"layers": layers, "hidden_activation": draw(st.sampled_from(ACTS)),
            "final_activation": draw(st.sampled_from(ACTS))}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=decoder_specs(), hw=st.tuples(st.integers(1, 5), st.integers(1, 5)), seed=st.integers(0, 10_000))
def test_fast_engine_equals_literal_loop_for_any_geometry(spec, hw, seed):
    gen = torch.Generator().manual_seed(seed)
    decoder = build_decoder(spec).double().eval()
    for p in decoder.parameters():
        p.data.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.7)
    randomize_bn(decoder, gen)
    H, W = hw
    for layer in spec["layers"]:
        H, W = ((n - 1) * layer["stride"] - 2 * layer["padding"] + layer["dilation"] * (layer["kernel"] - 1)
                + layer["output_padding"] + 1 for n in (H, W))
        assume(min(H, W) >= 1)
    C = torch.randn((1, spec["layers"][0]["in"], *hw), generator=gen, dtype=torch.float64)
    R0 = decoder(C)
    literal = compute_residuals(decoder, C, engine="literal")
    fast = compute_residuals(decoder, C, engine="fast")
    batched = compute_residuals(decoder, C, engine="batched", chunk=3)
    size = tuple(R0.shape[2:])
    assert fast.engine == "fast"
    ref = dense(literal, size)
    np.testing.assert_allclose(dense(fast, size), ref, atol=1e-9 * max(1.0, ref.max()))
    np.testing.assert_allclose(dense(batched, size), ref, atol=1e-9 * max(1.0, ref.max()))
    np.testing.assert_array_equal(fast.argmax, literal.argmax)
    # the one-batch layout the GPU uses gives the same numbers
    layers = flatten_decoder(decoder)
    _, pos, cmax = channel_maxima(C)
    with torch.no_grad():
        values, offsets, _, _ = _fast_one_batch(layers, C, pos, cmax, lambda f: None)
    one = RawResiduals(values.numpy(), offsets.numpy(), size, R0, None, None, "fast")
    np.testing.assert_allclose(dense(one, size), ref, atol=1e-9 * max(1.0, ref.max()))
    # both faces of a pair as one batch (the GPU's pair path) give each face's own numbers
    C2 = torch.cat([C, torch.randn(C.shape, generator=gen, dtype=torch.float64)])
    other = compute_residuals(decoder, C2[1:], engine="literal")
    pair = compute_residuals_pair(decoder, C2, one_batch=True)
    for got, want in zip(pair, (literal, other)):
        want_dense = dense(want, size)
        np.testing.assert_allclose(dense(got, size), want_dense, atol=1e-9 * max(1.0, want_dense.max()))
        np.testing.assert_array_equal(got.argmax, want.argmax)
        np.testing.assert_allclose(got.cmax, want.cmax)


@pytest.mark.parametrize("layout", ["one_position", "two_positions", "spread"])
def test_cpu_batches_by_position_equal_the_literal_loop(layout):
    """Runs of channels at one position (broadcast slices), gathers, and border crops give the literal numbers."""
    gen = torch.Generator().manual_seed(7)
    spec = {"layers": [{"in": 24, "out": 8, "kernel": 4, "stride": 2, "padding": 1},
                       {"in": 8, "out": 6, "kernel": 4, "stride": 2, "padding": 1},
                       {"in": 6, "out": 3, "kernel": 4, "stride": 2, "padding": 1}],
            "hidden_activation": "relu", "final_activation": "tanh"}
    decoder = build_decoder(spec).double().eval()
    randomize_bn(decoder, gen)
    C = torch.rand((1, 24, 4, 4), generator=gen, dtype=torch.float64)
    peaks = {"one_position": [(1, 2)] * 24, "two_positions": [(0, 0)] * 12 + [(2, 1)] * 12,
             "spread": [(i // 4 % 4, i % 4) for i in range(24)]}[layout]
    for ch, (r, q) in enumerate(peaks):
        C[0, ch, r, q] = 2.0 + ch / 24
    fast = compute_residuals(decoder, C, engine="fast")
    literal = compute_residuals(decoder, C, engine="literal")
    ref = dense(literal, (32, 32))
    np.testing.assert_allclose(dense(fast, (32, 32)), ref, atol=1e-10 * ref.max())


def test_float32_residuals_match_float64_channel_by_channel():
    """Each channel's float32 residual is within 1e-5 of its own peak. A channel with a small maximum changes
    the decoder far less than float32 rounding of a 256-term sum moves the activations it rides on, so the base
    pass runs in float64 (with float32 base activations this case measured 3.4e-5; now ~3e-7)."""
    import copy

    gen = torch.Generator().manual_seed(11)
    spec = {"layers": [{"in": 256, "out": 64, "kernel": 4, "stride": 2, "padding": 1},
                       {"in": 64, "out": 32, "kernel": 4, "stride": 2, "padding": 1},
                       {"in": 32, "out": 3, "kernel": 4, "stride": 2, "padding": 1}],
            "hidden_activation": "relu", "final_activation": "tanh"}
    decoder = build_decoder(spec).eval()
    randomize_bn(decoder, gen)
    C = torch.randn((1, 256, 5, 5), generator=gen)
    C[0, :32] *= 0.01
    fast = dense(compute_residuals(decoder, C, engine="fast"), (40, 40))
    ref = dense(compute_residuals(copy.deepcopy(decoder).double(), C.double(), engine="literal"), (40, 40))
    peak = ref.reshape(256, -1).max(1)
    err = np.abs(fast - ref).reshape(256, -1).max(1) / np.where(peak > 0, peak, 1)
    assert err.max() < 1e-5


def test_weights_updated_in_place_are_used_by_the_next_run():
    """Nothing derived from the decoder's weights outlives a run (training updates them in place)."""
    gen = torch.Generator().manual_seed(5)
    decoder = build_decoder({"layers": [{"in": 6, "out": 4, "kernel": 4, "stride": 2, "padding": 1},
                                        {"in": 4, "out": 3, "kernel": 4, "stride": 2, "padding": 1}],
                             "hidden_activation": "relu", "final_activation": "tanh"}).eval()
    C = torch.rand((1, 6, 3, 3), generator=gen) + 0.1
    before = dense(compute_residuals(decoder, C, engine="fast"), (12, 12))
    with torch.no_grad():
        decoder[-2].weight.mul_(3.0)         # the last transposed convolution (GEMM form), in place
    after = dense(compute_residuals(decoder, C, engine="fast"), (12, 12))
    literal = dense(compute_residuals(decoder, C, engine="literal"), (12, 12))
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, literal, atol=1e-6 * literal.max())


def test_residuals_stay_inside_the_change_window():
    spec = {"layers": [{"in": 4, "out": 3, "kernel": 4, "stride": 2, "padding": 1},
                       {"in": 3, "out": 3, "kernel": 4, "stride": 2, "padding": 1}]}
    decoder = build_decoder(spec).double().eval()
    C = torch.rand((1, 4, 6, 6), dtype=torch.float64) + 0.1
    raw = compute_residuals(decoder, C, engine="literal")
    geo = window_geometry(flatten_decoder(decoder), (6, 6))
    assert geo.size == (10, 10)          # 4 rows after layer 1, (4-1)*2+4 after layer 2
    assert raw.values.shape[1:] == (10, 10)
    # where each window sits: the full change (two plain decoder passes) is zero outside it and not all inside;
    # a stride-2 k=4 p=1 layer maps input row r to output rows 2r-1..2r+2, so the window starts at 4r-3 (clamped)
    with torch.no_grad():
        R0 = decoder(C)
        for i in range(4):
            Cm = C.clone()
            r, q = divmod(int(torch.argmax(C[0, i])), 6)
            Cm[0, i, r, q] = 0
            full = (decoder(Cm) - R0).abs().sum(1)[0].numpy()
            top, left = raw.offsets[i]
            assert (top, left) == (min(max(4 * r - 3, 0), 24 - 10), min(max(4 * q - 3, 0), 24 - 10))
            inside = np.zeros_like(full, bool)
            inside[top:top + 10, left:left + 10] = True
            assert np.abs(full[~inside]).max() == 0 and full[inside].max() > 0
            np.testing.assert_allclose(raw.values[i], full[inside].reshape(10, 10), atol=1e-12)


def test_unsupported_decoder_falls_back_to_full_passes():
    decoder = nn.Sequential(nn.ConvTranspose2d(3, 3, 4, 2, 1), nn.Upsample(scale_factor=2), nn.Tanh()).double().eval()
    C = torch.rand((1, 3, 3, 3), dtype=torch.float64)
    fast = compute_residuals(decoder, C, engine="fast")
    literal = compute_residuals(decoder, C, engine="literal")
    assert fast.engine == "batched"
    np.testing.assert_allclose(dense(fast, (12, 12)), dense(literal, (12, 12)), atol=1e-12)


def test_argmax_ties_take_the_first_index():
    decoder = build_decoder({"layers": [{"in": 2, "out": 3, "kernel": 3, "stride": 1, "padding": 1}]}).double()
    C = torch.zeros((1, 2, 3, 3), dtype=torch.float64)
    C[0, 0, 1, 1] = C[0, 0, 2, 0] = 5.0
    raw = compute_residuals(decoder.eval(), C, engine="fast")
    assert tuple(raw.argmax[0]) == (1, 1)


# --- explain_pair -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(3)
    spec = default_spec(depth=18, widths=[8, 8, 16, 16], channels=16, input_size=[48, 48], threshold=0.25,
                        decoder={"layers": [{"in": 16, "out": 8, "kernel": 4, "stride": 2, "padding": 1},
                                            {"in": 8, "out": 8, "kernel": 4, "stride": 2, "padding": 1},
                                            {"in": 8, "out": 8, "kernel": 4, "stride": 2, "padding": 1},
                                            {"in": 8, "out": 3, "kernel": 4, "stride": 2, "padding": 1}],
                                 "hidden_activation": "relu", "final_activation": "tanh"})
    model = JointModel(spec).eval()
    randomize_bn(model, torch.Generator().manual_seed(4))
    bn2 = model.backbone.bn2
    bn2.bias.data.fill_(3.0)          # every channel's maximum > 0: every channel contributes
    return model


@pytest.fixture(scope="module")
def faces():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    return a, b


def test_embedding_is_the_max_pool_of_the_conv_map(small_model, faces):
    C, F = small_model.embed(small_model.preprocess(np.stack(faces)))
    assert torch.equal(F, C.amax((2, 3)))
    assert C.shape[1:] == (16, 3, 3)


def test_heatmap_sums_to_the_decision_margin(small_model, faces):
    result = explain_pair(small_model, *faces)
    assert result.selected.all()
    margin = result.score - result.threshold
    for side in (result.a, result.b):
        assert side.H.sum() == pytest.approx(margin, abs=1e-5)
        np.testing.assert_allclose(side.S_pos - side.S_neg, side.H, atol=1e-7)
        np.testing.assert_allclose(side.S, np.abs(side.H))
    assert result.products.sum() == pytest.approx(result.score, abs=1e-9)
    # This pair's H is positive everywhere; at a threshold equal to the score ΣH = 0, so H takes both signs and
    # S⁺/S⁻ must split it pixel by pixel (positive part / negative part, never both on one pixel).
    balanced = result.recombine(threshold=result.score)
    for side in (balanced.a, balanced.b):
        assert (side.H < 0).sum() > 100 and (side.H > 0).sum() > 100
        np.testing.assert_allclose(side.S_pos - side.S_neg, side.H, atol=1e-7)
        np.testing.assert_array_equal(side.S_pos, np.where(side.H > 0, side.H, 0))
        np.testing.assert_array_equal(side.S_neg, np.where(side.H < 0, -side.H, 0))


def test_fast_float32_matches_a_float64_literal_reference(small_model, faces):
    import copy

    fast = explain_pair(small_model, *faces, engine="fast")
    literal = explain_pair(copy.deepcopy(small_model).double(), *faces, engine="literal")
    for s in "ab":
        ref = getattr(literal, s).H
        np.testing.assert_allclose(getattr(fast, s).H, ref, atol=1e-5 * np.abs(ref).max())


def test_recombine_changes_threshold_and_channels_without_the_model(small_model, faces):
    base = explain_pair(small_model, *faces)
    moved = base.recombine(threshold=0.6)
    assert moved.a.H.sum() == pytest.approx(base.score - 0.6, abs=1e-5)
    assert moved.decision == (base.score >= 0.6)
    top = base.recombine(top_k=3)
    assert top.selected.sum() == 3
    strongest = np.argsort(-np.abs(base.products - base.T))[:3]
    assert set(np.flatnonzero(top.selected)) == set(strongest)
    one = base.recombine(channels=[5])
    assert np.flatnonzero(one.a.weights).tolist() == [5]
    np.testing.assert_allclose(one.a.H, one.a.weights[5] * base.a.residuals.channel(5), atol=1e-7)
    with pytest.raises(ValueError, match="channel indices"):
        base.recombine(channels=[99])
    with pytest.raises(ValueError, match="channel indices"):
        base.recombine(channels=[16])                  # one past the last of 16 channels
    with pytest.raises(ValueError, match="^top-k must be at least 1$"):
        base.recombine(top_k=0)
    assert set(top.timings_ms) == set(base.timings_ms) | {"recombine"}
    assert base.a.residuals.dense().dtype == np.float32     # maps of every channel: float32 keeps them small
    # top-k ranks channels by |product - τ/c|, the size of their share of the margin, at the new threshold too
    high = base.recombine(threshold=0.9, top_k=4)
    share = np.abs(base.products - 0.9 / len(base.products))
    assert set(np.flatnonzero(high.selected)) == set(np.argsort(-share, kind="stable")[:4])
    assert set(np.argsort(-share, kind="stable")[:4]) != set(np.argsort(-np.abs(base.products + 0.9 / 16))[:4])


def test_max_normalization_peaks_at_the_weight(small_model, faces):
    result = explain_pair(small_model, *faces, normalization="max")
    stack = result.a.residuals
    for i in range(stack.channels):
        assert stack.channel(i).max() == pytest.approx(1.0, abs=1e-6)


def test_channel_with_non_positive_maximum_contributes_nothing(small_model, faces):
    model = small_model
    saved = model.backbone.bn2.bias.data.clone()
    try:
        model.backbone.bn2.bias.data[2] = -1e4     # channel 2's map is all negative
        result = explain_pair(model, *faces)
        assert not result.a.contributing[2] and result.a.weights[2] == 0
        assert np.isfinite(result.a.H).all() and np.isfinite(result.b.H).all()
    finally:
        model.backbone.bn2.bias.data.copy_(saved)


def test_bad_face_arrays_are_rejected_with_a_clear_message(small_model, faces):
    with pytest.raises(ValueError, match="aligned RGB uint8 face"):
        explain_pair(small_model, faces[0][:10], faces[1])


def test_signed_conv_maps_can_include_nonpositive_channels(small_model, faces):
    model = small_model
    saved = model.backbone.bn2.bias.data.clone()
    try:
        model.backbone.bn2.bias.data[2] = -1e4     # channel 2's maximum is negative, yet it enters the score
        excluded = explain_pair(model, *faces)
        included = explain_pair(model, *faces, nonpositive="include")
        margin = included.score - included.threshold
        assert included.a.contributing[2] and included.a.weights[2] != 0
        assert included.a.H.sum() == pytest.approx(margin, abs=1e-4)
        assert excluded.a.H.sum() != pytest.approx(margin, abs=1e-4)
        model.spec["explain"] = {"nonpositive_channels": "include"}
        assert explain_pair(model, *faces).a.contributing[2]      # the model's spec sets the default
    finally:
        model.backbone.bn2.bias.data.copy_(saved)
        model.spec.pop("explain", None)


def test_every_engine_gives_the_l1_colour_sum_of_a_direct_torch_residual():
    """Reference computed here with plain torch, no engine code: zero each channel's maximum of C, decode, and
    sum |decoder(C') - decoder(C)| over the three colours (the paper's per-channel residual). A max over colour
    (or any other reduction) satisfies ΣH = s - τ just as well, so only an independent residual catches it."""
    gen = torch.Generator().manual_seed(21)
    spec = {"layers": [{"in": 6, "out": 5, "kernel": 4, "stride": 2, "padding": 1},
                       {"in": 5, "out": 3, "kernel": 4, "stride": 2, "padding": 1}],
            "hidden_activation": "relu", "final_activation": "tanh"}
    decoder = build_decoder(spec).double().eval()
    randomize_bn(decoder, gen)
    C = torch.rand((1, 6, 4, 4), generator=gen, dtype=torch.float64)
    with torch.no_grad():
        R0 = decoder(C)
        expected = []
        for i in range(C.shape[1]):
            Cm = C.clone()
            flat = int(torch.argmax(Cm[0, i]))
            Cm[0, i].view(-1)[flat] = 0.0
            expected.append((decoder(Cm) - R0).abs().sum(1)[0])
    expected = torch.stack(expected).numpy()
    assert expected.max() > 0
    size = tuple(R0.shape[2:])
    for engine in ("fast", "batched", "literal"):
        raw = compute_residuals(decoder, C, engine=engine)
        np.testing.assert_allclose(dense(raw, size), expected, atol=1e-12, err_msg=engine)
    layers = flatten_decoder(decoder)          # the GPU's one-batch layout, run here on the CPU
    _, pos, cmax = channel_maxima(C)
    with torch.no_grad():
        values, offsets, _, _ = _fast_one_batch(layers, C, pos, cmax, lambda f: None)
    one = RawResiduals(values.numpy(), offsets.numpy(), size, R0, None, None, "fast")
    np.testing.assert_allclose(dense(one, size), expected, atol=1e-12)
