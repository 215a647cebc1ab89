"""Process-group helpers for ``torchrun`` (DDP): gloo on CPU, nccl on CUDA.

Without torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) everything degrades to a single
process: rank 0 of 1, no process group, barriers are no-ops.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from bair_world.devices import resolve_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    """Global rank."""
    local_rank: int = 0
    """Rank on this machine (picks the GPU)."""
    world_size: int = 1
    """Number of processes."""

    @property
    def enabled(self) -> bool:
        """Whether a process group is in use."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that logs and writes checkpoints."""
        return self.rank == 0


def process_device(choice: str, local_rank: int = 0) -> torch.device:
    """`bair_world.devices.resolve_device`, with an unindexed CUDA device made this process's GPU
    (``cuda:<local_rank mod GPUs>``), so that each rank on a machine takes its own."""
    device = resolve_device(choice)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


def init_distributed(device_choice: str) -> tuple[DistInfo, torch.device]:
    """Join the torchrun process group if launched by torchrun; returns (info, device)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo(), process_device(device_choice)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = process_device(device_choice, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(minutes=10))
    return DistInfo(rank, local_rank, world_size), device


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in a single process)."""
    if info.enabled and dist.is_initialized():
        dist.barrier()


@contextlib.contextmanager
def rank0_first(info: DistInfo):
    """Run the block on rank 0 first, then on the other ranks (e.g. generating shared data once)."""
    if not info.is_main:
        barrier(info)
    yield
    if info.is_main:
        barrier(info)


def wrap(module: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """``module`` under DistributedDataParallel when a process group is in use, else itself."""
    if not info.enabled:
        return module
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def shared_name(name: str, info: DistInfo) -> str:
    """Rank 0's ``name`` on every rank (a name made from a timestamp may differ between ranks)."""
    names = [name]
    if info.enabled:
        dist.broadcast_object_list(names, src=0)
    return names[0]


def any_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank if ``flag`` is True on any rank (used to stop all ranks together)."""
    if not (info.enabled and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean_across(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """Average a few numbers over ranks (epoch metrics); identity in a single process."""
    if not (info.enabled and dist.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return (t / info.world_size).tolist()


def all_gather(obj, info: DistInfo) -> list:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` in a single process."""
    if not (info.enabled and dist.is_initialized()):
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def params_in_sync(module: torch.nn.Module, info: DistInfo, device: torch.device) -> bool:
    """Whether every rank holds bit-identical parameters (True in a single process).

    Each rank hashes its parameters' bytes (CPU copies); the hashes are compared across ranks.
    Buffers are left out on purpose: DDP broadcasts rank 0's buffers (BatchNorm running statistics)
    at the start of each forward, so after the last one every rank holds the statistics of its own
    last batch; checkpoints carry rank 0's.
    """
    if not (info.enabled and dist.is_initialized()):
        return True
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(module.named_parameters()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    hashes = all_gather(digest.hexdigest(), info)
    return all(h == hashes[0] for h in hashes)


def cleanup(info: DistInfo) -> None:
    """Leave the process group (call once, at the end)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
