"""training/dlib_affine/average_weights.py: the mean of checkpoints must be each weight's mean (in float64, whatever
the stored dtype), keep counters from the first source, and refuse sources of another shape of network."""
from __future__ import annotations

import pytest
import torch

from tests.training import scripts


def states(n: int) -> list[dict]:
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
        net[1].num_batches_tracked.fill_(10 + seed)
        net[1].running_mean.normal_()
        out.append({k: v.clone() for k, v in net.state_dict().items()})
    return out


def test_each_weight_is_the_mean_of_the_sources_and_counters_come_from_the_first():
    mod = scripts.load_script("dlib_affine/average_weights.py", "average_weights_under_test")
    src = states(3)
    mean = mod.mean_state(src)
    for k, v in mean.items():
        if v.is_floating_point():
            by_hand = sum(s[k].double() for s in src) / 3
            assert v.dtype == src[0][k].dtype and torch.allclose(v.double(), by_hand, rtol=0, atol=1e-6), k
    assert mean["1.num_batches_tracked"].item() == 10
    assert not torch.equal(mean["0.weight"], src[0]["0.weight"])


def test_sources_of_another_network_are_refused():
    mod = scripts.load_script("dlib_affine/average_weights.py", "average_weights_under_test")
    a = states(1)[0]
    with pytest.raises(ValueError, match="source 2 has other weights"):
        mod.mean_state([a, {k: v for k, v in list(a.items())[:-1]}])
    wider = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.BatchNorm2d(5)).state_dict()
    with pytest.raises(RuntimeError):   # same names, other shapes: torch refuses to stack them
        mod.mean_state([a, wider])
