"""training/dlib_affine/probe_width.py (issue 22's capacity probe): its per-cell top must be the pointwise model's
own top, folded, and stay that function when widened or deepened, or the probe's comparison means nothing."""
from __future__ import annotations

import torch

from tests.training import scripts
from xfr_desktop.core.backbones.dlib_resnet import DlibDenseBackbone


def load_script():
    return scripts.load_script("dlib_affine/probe_width.py", "probe_width_under_test")


def random_pointwise_backbone() -> DlibDenseBackbone:
    torch.manual_seed(0)
    bb = DlibDenseBackbone(channels=256, head="affine", dense="pointwise").double()
    with torch.no_grad():   # affines away from (1, 0) so that folding them is exercised
        for p in bb.parameters():
            if p.ndim == 1:
                p.copy_(torch.rand_like(p) + 0.5 if p.abs().sum() and (p == 1).all() else torch.randn_like(p) * 0.1)
    return bb


def test_the_folded_top_is_the_backbone_top_and_widening_keeps_the_function():
    mod = load_script()
    bb = random_pointwise_backbone()
    t = torch.rand(3, 128, 8, 8, dtype=torch.float64)
    want = bb.top(t)
    for width, extra, mix in ((256, 0, ""), (512, 0, ""), (384, 2, ""), (256, 0, "mix"), (256, 0, "ctx")):
        got = mod.CellTop(bb, width, extra, mix)(t)
        assert got.shape == want.shape == (3, 256, 8, 8)
        assert torch.allclose(got, want, rtol=1e-9, atol=1e-9), (width, extra, mix, (got - want).abs().max())


def test_the_added_units_train():
    """New units start silent but get gradient through their output weights, so the wider form can use them."""
    mod = load_script()
    top = mod.CellTop(random_pointwise_backbone(), 320, 1)
    top(torch.rand(2, 128, 8, 8, dtype=torch.float64)).amax((2, 3)).sum().backward()
    assert top.w2[0].grad[:, 256:].abs().sum() > 0
    assert top.w2[4].grad.abs().sum() > 0
