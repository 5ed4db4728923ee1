"""DistributedDataParallel under ``torchrun``: who this process is, joining the group, reductions.

``torchrun --nproc_per_node N`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` for each process;
:func:`course_pkg.train.fit` joins the process group they describe (:func:`setup`), wraps the
model in DDP (:func:`wrap`) and sums its metrics over the ranks (:func:`all_reduce_sum`).  Alone
(no ``torchrun``) every function here is a no-op.
"""

from __future__ import annotations

import atexit
import os
import warnings

import torch
import torch.distributed as dist
import torch.nn as nn


def distributed_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment variables (0, 1, 0 alone)."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def is_main_process() -> bool:
    """True on rank 0 (and when not distributed): the one process that prints and saves."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return distributed_env()[0] == 0


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def setup(device: torch.device) -> tuple[int, int, bool]:
    """Join the process group torchrun describes (if WORLD_SIZE > 1). Returns rank, world, created."""
    rank, world, _ = distributed_env()
    if world <= 1:
        return 0, 1, False
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    atexit.register(_leave_process_group)  # fit() joined the group, so it also leaves it at exit
    return rank, world, True


def _leave_process_group() -> None:
    if _initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel on ``device`` (its GPU, or the CPU with gloo)."""
    # A 1-channel conv weight's gradient can come back with channels_last strides (the two
    # layouts coincide when C == 1); DDP then warns on every step. Harmless: silence it.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """``values`` summed over all ranks (unchanged when not distributed)."""
    if not _initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def max_over_ranks(value: float, device: torch.device) -> float:
    """The largest ``value`` of any rank (unchanged when not distributed)."""
    if not _initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def same_precision(precision: str, device: torch.device) -> str:
    """The precision every rank trains in.  On CPUs each process measures its own bf16 probe
    (:func:`course_pkg.device.cpu_bf16_speedup`), so the ranks could differ: fp32 unless every
    rank chose otherwise.  Unchanged when not distributed or on GPUs."""
    if not _initialized() or device.type != "cpu":
        return precision
    return "fp32" if max_over_ranks(float(precision == "fp32"), device) else precision


def barrier() -> None:
    """Wait for every rank (a no-op when not distributed)."""
    if _initialized():
        dist.barrier()
