"""The torch device: the one meaning of `--device` for every command, and host → device copies that never stall the host.

A plain `.to("cuda")` of a pageable CPU tensor waits until the device has finished every kernel
queued so far (a host-device synchronisation), so a few small parameter tensors copied per training
step (augmentation draws, SpecAugment masks, TE angles) would each drain the queue. Copies from
pinned memory with `non_blocking=True` are queued like kernels instead. On the CPU both are plain moves.
"""

from __future__ import annotations

import os
from functools import lru_cache

import torch


def resolve_device(device: str | torch.device | None) -> torch.device:
    """'auto' (or None) → cuda when available, else cpu; 'cpu', 'cuda', 'cuda:N'; a bare 'cuda' under
    torchrun → this rank's GPU. A ValueError naming the device when it is unknown or CUDA is absent."""
    if device is None or str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device {device}: not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: CUDA is not available on this machine; use --device cpu (or auto)")
        if dev.index is None:
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        elif dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu" and not (dev.type == "mps" and torch.backends.mps.is_available()):
        raise ValueError(f"--device {device}: not available here; use auto, cpu, cuda or cuda:N")
    return dev


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
