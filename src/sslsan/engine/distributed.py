"""DDP helpers for `torchrun --nproc_per_node=N -m sslsan train ...` (env:// rendezvous).

One process per device; NCCL on CUDA, gloo on CPU. Outside torchrun (no WORLD_SIZE > 1 in the
environment) everything degrades to a single process and these helpers are no-ops.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from sslsan.utils.device import resolve_device  # noqa: F401  (re-exported: the engine's device rule)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes in the environment (a no-op for one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", init_method="env://")
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank)


def cleanup_distributed() -> None:
    """Leave the process group deterministically, with the DDP wrappers that still reference it freed first.

    A gloo group left to interpreter shutdown while something still holds it can abort a process that
    finished its work ("terminate called without an active exception"). No barrier here: after training
    rank 0 may calibrate U_th alone for longer than a collective's timeout, and after a failure the other
    ranks may never arrive.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    gc.collect()  # DDP's reducer sits in reference cycles; free it while the group is still alive
    dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum over ranks (in place; returns the tensor). Identity for one process."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
