"""A normal run prints no warnings (issue 23). The command line, each in its own process with a fresh data folder:
help, `xfr explain` on one sample pair with the bundled model, `xfr cases list`, and `xfr verify-report` (it imports
pyHanko, which imports cryptography's deprecated DSA classes). And a training step of the batch norm that
distributed training uses (its all-reduce and its statistics), in a process group of one."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest
import torch
import torch.distributed as dist

from xfr_desktop.core.distributed import GlobalBatchNorm


def xfr(tmp_path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xfr_desktop.cli", "--data-dir", str(tmp_path / "data"),
                           *map(str, args)], capture_output=True, text=True, timeout=300)


def assert_clean(proc: subprocess.CompletedProcess, rc: int = 0) -> None:
    assert proc.returncode == rc, proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr


def test_help_prints_no_warning(tmp_path):
    assert_clean(xfr(tmp_path, "--help"))


def test_explaining_a_sample_pair_prints_no_warning(tmp_path, samples_dir):
    pair = json.loads((samples_dir / "case.json").read_text())["pairs"][0]
    proc = xfr(tmp_path, "explain", samples_dir / pair["image_a"], samples_dir / pair["image_b"],
               "--out", tmp_path / "out")
    assert_clean(proc)
    assert (tmp_path / "out" / "result.json").is_file()


def test_listing_cases_in_a_fresh_folder_prints_no_warning(tmp_path):
    assert_clean(xfr(tmp_path, "cases", "list"))


def test_checking_a_signature_prints_no_warning(tmp_path):
    (tmp_path / "not.pdf").write_text("not a PDF")
    assert_clean(xfr(tmp_path, "verify-report", tmp_path / "not.pdf"), rc=6)  # 6: not a readable PDF


@pytest.fixture
def group_of_one(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_a_global_batch_norm_step_warns_nothing_and_has_batch_norms_gradient(group_of_one):
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 5)
    ours, ref = GlobalBatchNorm(3), torch.nn.BatchNorm2d(3)
    xa, xb, w = x.clone().requires_grad_(), x.clone().requires_grad_(), torch.randn(4, 3, 5, 5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (ours(xa) * w).sum().backward()
    assert [str(c.message) for c in caught] == []
    (ref(xb) * w).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-4, atol=1e-5)  # one process: the whole batch's gradient
    torch.testing.assert_close(ours.running_var, ref.running_var)
