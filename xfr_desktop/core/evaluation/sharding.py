"""Evaluations split across processes, merged into the JSON one process writes.

An evaluation that shards has two halves:

- ``work(rank, world) -> part``: this process's share of the expensive per-item work (``shard_of`` picks the
  items), returned as plain data (embeddings, per-pair rows);
- ``finish(parts) -> exit status`` (rank 0 only): merges the parts into the evaluation's own cache and runs the
  single-process evaluation, which now finds every item done and writes exactly what one process would.

``run_sharded`` runs them for each way of starting processes:

- under ``torchrun --nproc_per_node N`` (``WORLD_SIZE`` > 1): every process does its share, the parts travel to
  rank 0 over a gloo process group (no shared file system needed), rank 0 finishes;
- ``--workers N``: this process starts N copies of the same ``xfr`` command, each marked with ``XFR_SHARD=k/N``,
  collects their parts from a private temporary folder and finishes;
- otherwise: ``finish([])``, the plain single-process run.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .. import distributed
from ..errors import XfrError

SHARD_ENV = "XFR_SHARD"          # "k/N": this process is worker k of N started by --workers
PART_ENV = "XFR_SHARD_PART"      # where such a worker leaves its part


def shard_of(items: Sequence, rank: int, world: int) -> list:
    """Every world-th item from the rank-th: shares differ by at most one item and mix the list's folds."""
    return list(items[rank::world])


def worker_rank() -> tuple[int, int] | None:
    spec = os.environ.get(SHARD_ENV)
    if not spec:
        return None
    try:
        k, n = (int(v) for v in spec.split("/"))
    except ValueError:
        raise XfrError(f"{SHARD_ENV}={spec!r}: expected k/N") from None
    return k, n


def select_gpu() -> None:
    """Each process of a launch on one machine uses its own GPU (LOCAL_RANK) for ``--device cuda``."""
    if not torch.cuda.is_available():
        return
    local = os.environ.get("LOCAL_RANK")
    if local is None and worker_rank() is not None:
        local = str(worker_rank()[0])
    if local is not None:
        torch.cuda.set_device(int(local) % torch.cuda.device_count())


def run_sharded(work: Callable[[int, int], Any], finish: Callable[[list], int], workers: int | None,
                argv: Sequence[str]) -> int:
    """Run an evaluation's ``work`` in shares and ``finish`` on rank 0 (see the module's text); ``argv`` is the
    ``xfr`` command line the ``--workers`` copies repeat."""
    mine = worker_rank()
    if mine is not None:
        part = work(*mine)
        with open(os.environ[PART_ENV], "wb") as f:
            pickle.dump(part, f, protocol=pickle.HIGHEST_PROTOCOL)
        return 0
    launch = distributed.launch_from_env()
    if launch.distributed:
        created = distributed.start(launch, torch.device("cpu"))  # gloo: the parts are Python objects
        try:
            parts = distributed.gather_to_main(work(launch.rank, launch.world_size), launch)
            return finish(parts) if launch.is_main else 0
        finally:
            distributed.stop(created)
    if workers is not None and workers > 1:
        return finish(_run_workers(workers, argv))
    return finish([])


def _run_workers(n: int, argv: Sequence[str]) -> list:
    """Start n copies of this command as shard workers; their parts in rank order. Worker 1's messages (its
    progress) go to this process's stderr, the others' to files that are read back when a worker fails."""
    with tempfile.TemporaryDirectory(prefix="xfr-shards-") as tmp:
        tmp = Path(tmp)
        procs = []
        for k in range(n):
            env = dict(os.environ, **{SHARD_ENV: f"{k}/{n}", PART_ENV: str(tmp / f"part-{k}.pkl")})
            err = None if k == 0 else open(tmp / f"stderr-{k}.txt", "w")
            procs.append(subprocess.Popen([sys.executable, "-m", "xfr_desktop.cli", *argv], env=env,
                                          stdout=subprocess.DEVNULL, stderr=err))
            if err is not None:
                err.close()
        failures = []
        for k, proc in enumerate(procs):
            if proc.wait() != 0:
                log = tmp / f"stderr-{k}.txt"
                lines = log.read_text(errors="replace").strip().splitlines() if log.is_file() else ["see above"]
                failures.append(f"worker {k + 1}/{n} failed: {(lines or ['no output'])[-1].strip()}")
        if failures:
            raise XfrError("; ".join(failures))
        parts = []
        for k in range(n):
            with open(tmp / f"part-{k}.pkl", "rb") as f:  # written by our own workers just now
                parts.append(pickle.load(f))
        return parts
