"""Mutation pins for core/evaluation/sharding.py (issue 28): which items a shard gets, how a worker is told its
share, and what the parent says when a worker fails. The share lists are written out by hand; the worker path
writes a real pickle file; the failing workers are real child processes (two short `xfr` runs, no model)."""
from __future__ import annotations

import pickle
import sys

import pytest

from xfr_desktop.core.errors import XfrError
from xfr_desktop.core.evaluation import sharding
from xfr_desktop.core.evaluation.sharding import run_sharded, shard_of, worker_rank


def test_each_share_is_every_worlds_item_from_its_rank():
    items = list(range(10))
    assert shard_of(items, 0, 3) == [0, 3, 6, 9]
    assert shard_of(items, 1, 3) == [1, 4, 7]
    assert shard_of(items, 2, 3) == [2, 5, 8]
    assert shard_of(items, 0, 1) == items
    assert shard_of(["a", "b"], 3, 4) == []
    assert shard_of(("x", "y", "z"), 1, 2) == ["y"]            # a list, whatever the sequence


@pytest.mark.parametrize("spec, expected", [(None, None), ("", None), ("0/2", (0, 2)), ("3/4", (3, 4)),
                                            ("12/16", (12, 16))])
def test_a_worker_reads_its_rank_from_the_environment(monkeypatch, spec, expected):
    if spec is None:
        monkeypatch.delenv("XFR_SHARD", raising=False)
    else:
        monkeypatch.setenv("XFR_SHARD", spec)
    assert worker_rank() == expected


@pytest.mark.parametrize("spec", ["x/4", "1", "1/2/3", "1/", "a/b"])
def test_a_malformed_rank_is_one_line(monkeypatch, spec):
    monkeypatch.setenv("XFR_SHARD", spec)
    with pytest.raises(XfrError) as err:
        worker_rank()
    assert str(err.value) == f"XFR_SHARD={spec!r}: expected k/N"


def _no_finish(parts):
    raise AssertionError("a worker must not finish the evaluation")


def test_a_worker_leaves_its_part_and_does_not_finish(monkeypatch, tmp_path):
    part = tmp_path / "part.pkl"
    monkeypatch.setenv("XFR_SHARD", "1/3")
    monkeypatch.setenv("XFR_SHARD_PART", str(part))
    assert run_sharded(lambda rank, world: {"rank": rank, "world": world, "items": shard_of(range(7), rank, world)},
                       _no_finish, workers=5, argv=["unused"]) == 0
    with open(part, "rb") as f:
        assert pickle.load(f) == {"rank": 1, "world": 3, "items": [1, 4]}


@pytest.mark.parametrize("workers", [None, 0, 1])
def test_one_process_finishes_with_no_parts_and_does_no_share_itself(monkeypatch, workers):
    for name in ("XFR_SHARD", "WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    seen = []

    def finish(parts):
        seen.append(parts)
        return 7

    def work(rank, world):
        raise AssertionError("the single-process run does all its work in finish")

    assert run_sharded(work, finish, workers, ["unused"]) == 7
    assert seen == [[]]


def test_failing_workers_are_named_with_their_last_line(monkeypatch, capfd):
    for name in ("XFR_SHARD", "WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(XfrError) as err:
        sharding._run_workers(2, ["--no-such-option"])
    assert str(err.value) == ("worker 1/2 failed: see above; "
                              "worker 2/2 failed: xfr: error: unrecognized arguments: --no-such-option")
    # worker 1's own messages went to this process's stderr, worker 2's only to its file
    assert capfd.readouterr().err.count("unrecognized arguments: --no-such-option") == 1


def test_select_gpu_without_a_gpu_changes_nothing(monkeypatch):
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the machine without a GPU")
    monkeypatch.setenv("XFR_SHARD", "1/2")
    assert sharding.select_gpu() is None
    assert sys.modules["torch"].cuda.is_available() is False
