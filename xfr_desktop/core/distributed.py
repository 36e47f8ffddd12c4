"""Several processes on one task: what torchrun (or ``--workers``) tells a process, and the few collectives the
trainer and the sharded evaluations need.

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in every process it
starts; a process started any other way is rank 0 of 1 and never touches torch.distributed. The process group's
timeout comes from ``XFR_DIST_TIMEOUT_S`` (default 1800 s), so a peer that died or hangs ends the others with an
error instead of leaving them waiting for ever; ``XFR_DIST_BACKEND`` overrides the backend (NCCL for GPUs, gloo for
CPUs).
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn

TIMEOUT_ENV = "XFR_DIST_TIMEOUT_S"
BACKEND_ENV = "XFR_DIST_BACKEND"    # gloo lets several processes share one GPU (NCCL refuses), e.g. for a smoke test
DEFAULT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Launch:
    """Where this process stands among the processes of one launch."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launch_from_env(env=None) -> Launch:
    """The launch torchrun describes in the environment; one process of one when it describes none."""
    env = os.environ if env is None else env
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ValueError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK {rank} does not fit WORLD_SIZE {world}")
    return Launch(rank, world, local)


def timeout() -> _dt.timedelta:
    try:
        seconds = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
    except ValueError:
        seconds = DEFAULT_TIMEOUT_S
    return _dt.timedelta(seconds=max(seconds, 1.0))


def process_device(launch: Launch, requested: torch.device) -> torch.device:
    """Each process of a multi-GPU launch gets its own GPU (its LOCAL_RANK); a CPU stays a CPU."""
    if requested.type != "cuda" or not launch.distributed or requested.index is not None:
        return requested
    device = torch.device("cuda", launch.local_rank % max(torch.cuda.device_count(), 1))
    torch.cuda.set_device(device)
    return device


def start(launch: Launch, device: torch.device) -> bool:
    """Join the launch's process group (NCCL for GPUs, gloo for CPUs); True when this call created it."""
    if not launch.distributed or dist.is_initialized():
        return False
    backend = os.environ.get(BACKEND_ENV) or ("nccl" if device.type == "cuda" else "gloo")
    dist.init_process_group(backend, rank=launch.rank, world_size=launch.world_size, timeout=timeout())
    return True


def stop(created: bool) -> None:
    if created and dist.is_initialized():
        dist.destroy_process_group()


def gather_to_main(obj, launch: Launch) -> list | None:
    """Every process's ``obj`` in rank order on rank 0 (None elsewhere); plain Python objects, any backend."""
    if not launch.distributed:
        return [obj]
    out = [None] * launch.world_size if launch.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


class _SumAllReduce(torch.autograd.Function):
    """Differentiable sum over processes, as the deprecated torch.distributed.nn.functional.all_reduce (SUM): the
    gradient of a sum that every process receives is the sum of every process's gradient. (The suggested
    replacement, _functional_collectives.all_reduce, has no autograd.)"""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone(memory_format=torch.contiguous_format)  # dist.all_reduce works in place
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _SumAllReduce.apply(grad)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    return _SumAllReduce.apply(tensor)


class GlobalBatchNorm(nn.BatchNorm2d):
    """Batch norm over the whole global batch on CPU processes (torch's SyncBatchNorm is GPU-only): the statistics
    are all-reduced with an autograd-aware collective, so each process normalises its share exactly as one process
    would normalise the whole batch, and gradients flow through the shared statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized()):
            return super().forward(x)
        dims = [d for d in range(x.dim()) if d != 1]
        xd = x.double()  # sums of squares in float64: E[x^2] - mean^2 without cancellation
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float64, device=x.device)
        total = all_reduce_sum(torch.cat([xd.sum(dims), (xd * xd).sum(dims), count]))
        c = x.shape[1]
        n = total[2 * c]
        mean64 = total[:c] / n
        var64 = total[c:2 * c] / n - mean64 * mean64
        mean, var = mean64.to(x.dtype), var64.to(x.dtype)
        if self.running_mean is not None:
            self._track(mean.detach(), var.detach(), float(n.detach()))
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape) if self.affine else y

    @torch.no_grad()
    def _track(self, mean: torch.Tensor, var: torch.Tensor, n: float) -> None:
        self.num_batches_tracked += 1
        m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        self.running_mean.mul_(1 - m).add_(mean, alpha=m)
        self.running_var.mul_(1 - m).add_(var * n / max(n - 1, 1.0), alpha=m)  # unbiased, as BatchNorm2d


def synchronise_batch_norm(module: nn.Module, device: torch.device) -> nn.Module:
    """Batch norms that use the global batch's statistics: torch's SyncBatchNorm on GPUs over NCCL, GlobalBatchNorm
    otherwise (the state-dict keys stay those of BatchNorm2d, so saved models load as before)."""
    if device.type == "cuda" and dist.is_initialized() and dist.get_backend() == "nccl":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            new = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                  child.track_running_stats)
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            new.requires_grad_(any(p.requires_grad for p in child.parameters()))
            setattr(module, name, new.to(device))
        else:
            synchronise_batch_norm(child, device)
    return module
