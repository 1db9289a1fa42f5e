"""Host → device transfers that never stall the host: what keeps a GPU fed in the training step.

A plain `.to("cuda")` of a pageable CPU tensor waits until the device has finished every kernel
queued so far (a host-device synchronisation), so a few small parameter tensors copied per step
(augmentation draws, SpecAugment masks, TE angles) would each drain the queue. Copies from pinned
memory with `non_blocking=True` are queued like kernels instead. On the CPU both are plain moves.
"""

from __future__ import annotations

from functools import lru_cache

import torch


def to_device(t: torch.Tensor, device: torch.device | str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`t` on `device` (optionally cast first, on the host), without a host-device synchronisation on CUDA."""
    device = torch.device(device)
    if dtype is not None:
        t = t.to(dtype)
    if t.device == device or (device.type == "cuda" and t.device.type == "cuda" and device.index is None):
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


@lru_cache(maxsize=64)
def device_constant(values: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A small constant vector on `device`, created once per (values, device, dtype) and then reused.

    Read-only by contract: callers view or broadcast it, never write to it.
    """
    return to_device(torch.tensor(values, dtype=dtype), device)
