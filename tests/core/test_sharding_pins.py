"""Mutation pins for core/evaluation/sharding.py (issue 28): which items a shard gets, how a worker is told its
share, how the --workers parent starts its workers and collects their parts, what it says when a worker fails, and
which GPU each process takes. The share lists are written out by hand; the worker path writes a real pickle file;
test_failing_workers_* runs two real short `xfr` children (no model; left out of the mutation run, see
scripts/mutation.sh); the other --workers pins run the parent here with stand-in worker programs, and select_gpu runs
on a stand-in torch.cuda with four GPUs. run_sharded under torchrun: test_sharding_pins_torchrun.py."""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

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


# --- the --workers parent, in this process, with stand-in workers -------------------------------------------------
# _run_workers starts `sys.executable -m xfr_desktop.cli ARGV` once per worker. Here sys.executable is a stand-in
# (a shell script running the small Python program below, standard library only), so the parent's code runs in
# this test process (where mutmut can reach it) and no child imports xfr_desktop. The stand-in does what a worker
# does: reads XFR_SHARD and XFR_SHARD_PART from the environment it was given, writes its part, or fails.

_STAND_IN = r'''
import os, pickle, sys
k, n = os.environ["XFR_SHARD"].split("/")
if os.environ["STAND_IN_MODE"] == "fail" and k != "1":
    if k == "0":
        sys.stderr.write("w0 starts\nw0 stops: disk full\n")
    elif k == "2":
        sys.stderr.buffer.write(b"first\nsecond\n  bad byte \xff end  \n\n")
    sys.stderr.flush()
    sys.exit(int(k) + 1)                      # worker 1/4 exits 1, 3/4 exits 3, 4/4 exits 4 (and says nothing)
sys.stdout.write(f"stdout of worker {k}/{n}\n")
sys.stderr.write(f"progress of worker {k}/{n}\n")
with open(os.environ["XFR_SHARD_PART"], "wb") as f:
    pickle.dump({"shard": f"{k}/{n}", "args": sys.argv[1:], "part_file": os.environ["XFR_SHARD_PART"]}, f)
'''


@pytest.fixture
def stand_in_workers(monkeypatch, tmp_path):
    """sys.executable replaced by the stand-in worker; the test runs in an empty folder of its own and temporary
    folders go to tmp_path/tmp."""
    program = tmp_path / "stand_in.py"
    program.write_text(_STAND_IN)
    launcher = tmp_path / "python"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -I -S "{program}" "$@"\n')
    launcher.chmod(0o755)
    for name in ("XFR_SHARD", "XFR_SHARD_PART", "WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "executable", str(launcher))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    temp_root = tmp_path / "tmp"                          # where tempfile makes folders during the test
    temp_root.mkdir()
    monkeypatch.setattr(sharding.tempfile, "tempdir", str(temp_root))
    return monkeypatch


def _no_work_here(rank, world):
    raise AssertionError("the --workers parent does no share itself")


def test_workers_run_the_same_command_and_their_parts_come_back_in_rank_order(stand_in_workers, capfd, tmp_path):
    """--workers 3: three copies of `python -m xfr_desktop.cli ARGV` (the parent's environment plus XFR_SHARD=k/3),
    their parts handed to finish in rank order from one private xfr-shards-* folder that is gone afterwards; only
    worker 1's stderr reaches this process's stderr, no worker's stdout does."""
    stand_in_workers.setenv("STAND_IN_MODE", "ok")        # reaches the workers only through the inherited environment
    seen = []

    def finish(parts):
        seen.append(parts)
        return 9

    assert run_sharded(_no_work_here, finish, 3, ["evaluate", "verify", "--out", "x"]) == 9
    (parts,) = seen
    assert [p["shard"] for p in parts] == ["0/3", "1/3", "2/3"]
    assert [p["args"] for p in parts] == [["-m", "xfr_desktop.cli", "evaluate", "verify", "--out", "x"]] * 3
    files = [Path(p["part_file"]) for p in parts]
    assert [f.name for f in files] == ["part-0.pkl", "part-1.pkl", "part-2.pkl"]
    folder = files[0].parent
    assert folder.parent == tmp_path / "tmp" and all(f.parent == folder for f in files)
    assert folder.name.startswith("xfr-shards-") and not folder.exists()
    out, err = capfd.readouterr()
    assert "stdout of worker" not in out
    assert "progress of worker 0/3" in err
    assert "progress of worker 1/3" not in err and "progress of worker 2/3" not in err
    assert list(Path.cwd().iterdir()) == []                # nothing written where the command runs


def test_two_workers_are_started_and_one_is_the_plain_run(stand_in_workers, capfd):
    """--workers 2 starts two workers (the smallest split); --workers 1 starts none (plain run, no parts)."""
    stand_in_workers.setenv("STAND_IN_MODE", "ok")
    seen = []
    assert run_sharded(_no_work_here, lambda parts: seen.append(parts) or 4, 2, ["a"]) == 4
    assert [(p["shard"], p["args"]) for p in seen[0]] == [("0/2", ["-m", "xfr_desktop.cli", "a"]),
                                                         ("1/2", ["-m", "xfr_desktop.cli", "a"])]
    assert run_sharded(_no_work_here, lambda parts: seen.append(parts) or 5, 1, ["a"]) == 5
    assert seen[1] == []


def test_each_failed_worker_is_named_with_the_last_line_it_wrote(stand_in_workers, capfd, tmp_path):
    """Four workers, three fail (exit 1, 3, 4; worker 2/4 succeeds): one XfrError naming each failed worker in
    order: worker 1/4's message is on this process's stderr already ("see above"); the others' last non-empty
    line of their stderr file, stripped, undecodable bytes replaced; "no output" when a worker wrote nothing."""
    stand_in_workers.setenv("STAND_IN_MODE", "fail")
    with pytest.raises(XfrError) as err:
        run_sharded(_no_work_here, _no_finish, 4, ["evaluate"])
    assert str(err.value) == ("worker 1/4 failed: see above; "
                              "worker 3/4 failed: bad byte \ufffd end; "
                              "worker 4/4 failed: no output")
    out, stderr = capfd.readouterr()
    assert stderr.count("w0 stops: disk full") == 1 and "second" not in stderr and "progress" not in stderr
    assert out == ""
    assert list((tmp_path / "tmp").iterdir()) == []      # the private folder is gone


# --- select_gpu on a stand-in machine with four GPUs ---------------------------------------------------------------

@pytest.fixture
def four_gpus(monkeypatch):
    """torch.cuda as on a machine with four GPUs; the devices select_gpu picks are recorded, not set."""
    import torch

    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    for name in ("LOCAL_RANK", "XFR_SHARD"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch, chosen


@pytest.mark.parametrize("local_rank, shard, device", [
    ("6", None, 2),          # torchrun: LOCAL_RANK, modulo the GPUs (6 % 4)
    ("1", None, 1),
    (None, "5/8", 1),        # --workers: the worker's k (5 % 4), not its N (8 % 4 = 0)
    (None, "3/8", 3),
    ("6", "5/8", 2),         # LOCAL_RANK wins over XFR_SHARD
])
def test_each_process_takes_its_own_gpu(four_gpus, local_rank, shard, device):
    monkeypatch, chosen = four_gpus
    if local_rank is not None:
        monkeypatch.setenv("LOCAL_RANK", local_rank)
    if shard is not None:
        monkeypatch.setenv("XFR_SHARD", shard)
    sharding.select_gpu()
    assert chosen == [device] and type(chosen[0]) is int


def test_a_process_of_no_launch_leaves_the_gpu_as_it_is(four_gpus):
    """Neither LOCAL_RANK nor XFR_SHARD: no set_device call (torch's current device stays)."""
    _, chosen = four_gpus
    sharding.select_gpu()
    assert chosen == []
