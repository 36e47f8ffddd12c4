"""Mutation pins for core/evaluation/sharding.py (issue 28): run_sharded under torchrun, in this test process.

The test process is one rank of a real two-process gloo group (torchrun's environment set with monkeypatch); the
other rank is a plain torch.distributed peer in a child process that never imports xfr_desktop, so the code under
test runs here, where mutmut can reach it. (tests/cli/test_sharded_evaluation.py runs the whole command under
torchrun.)"""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import torch.distributed as dist

from xfr_desktop.core.evaluation.sharding import run_sharded

# rank 1 of the first group (the test process is rank 0), then rank 0 of the second (the test process is rank 1);
# prints what it gathered as rank 0
_PEER = r'''
import datetime, sys
import torch.distributed as dist

def one_group(rank, port, obj):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=60))
    out = [None, None] if rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    dist.destroy_process_group()
    return out

one_group(1, int(sys.argv[1]), {"peer": "rank 1 of 2"})
print(repr(one_group(0, int(sys.argv[2]), {"peer": "rank 0 of 2"})), flush=True)
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow   # the peer's own import of torch: ~2 s on an idle core, 4-6 s on this loaded machine
def test_under_torchrun_rank_0_finishes_with_every_part_and_rank_1_only_contributes(monkeypatch):
    """WORLD_SIZE=2: each rank's work(rank, 2) goes to rank 0 in rank order; rank 0 returns finish(parts), rank 1
    returns 0 without finishing; the process group run_sharded created is gone afterwards."""
    ports = _free_port(), _free_port()
    for name in ("XFR_SHARD", "XFR_DIST_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("XFR_DIST_TIMEOUT_S", "60")
    finished = []

    def work(rank, world):
        return {"rank": rank, "world": world, "from": "test process"}

    def finish(parts):
        finished.append(parts)
        return 6

    peer = subprocess.Popen([sys.executable, "-c", _PEER, str(ports[0]), str(ports[1])],
                            stdout=subprocess.PIPE, text=True)
    try:
        monkeypatch.setenv("RANK", "0")
        monkeypatch.setenv("LOCAL_RANK", "0")
        monkeypatch.setenv("MASTER_PORT", str(ports[0]))
        assert run_sharded(work, finish, None, ["unused"]) == 6
        assert finished == [[{"rank": 0, "world": 2, "from": "test process"}, {"peer": "rank 1 of 2"}]]
        assert not dist.is_initialized()

        monkeypatch.setenv("RANK", "1")
        monkeypatch.setenv("LOCAL_RANK", "1")
        monkeypatch.setenv("MASTER_PORT", str(ports[1]))
        assert run_sharded(work, finish, 3, ["unused"]) == 0       # torchrun wins over --workers
        assert len(finished) == 1
        assert not dist.is_initialized()
        out, _ = peer.communicate(timeout=60)
        assert peer.returncode == 0
        assert out.strip() == repr([{"peer": "rank 0 of 2"}, {"rank": 1, "world": 2, "from": "test process"}])
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.wait()
        if dist.is_initialized():           # left by a failing run: not for the next test
            dist.destroy_process_group()
