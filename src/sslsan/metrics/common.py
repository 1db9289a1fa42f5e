"""Shared pieces of the metrics: the error type, the AUC grid and input checks."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")

MAP_SIZE = 224
"""Side of the evaluation map in pixels (the reference hard-codes 224 x 224)."""

AUC_GRID: tuple[float, ...] = tuple(0.05 * k for k in range(21))
"""The 21 thresholds x_k = 0.05*k built as Python floats, as the reference builds them.

They are *not* the decimals for k in {3, 6, 7, 12, 14, 17, 19} (0.05*3 = 0.15000000000000002),
so a value exactly equal to 0.15 fails the `>=` test at that grid point; keep it that way.
"""


class MetricsError(ValueError):
    """Input a metric cannot be computed on (wrong shape, empty, unknown mode)."""


def as_maps(maps, name: str, min_ndim: int = 2) -> np.ndarray:
    """`maps` as a float array with at least `min_ndim` axes; a clear error otherwise."""
    arr = np.asarray(maps)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise MetricsError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim < min_ndim:
        raise MetricsError(f"{name}: expected at least {min_ndim} axes (..., h, w), got shape {arr.shape}")
    if arr.size == 0:
        raise MetricsError(f"{name}: empty array of shape {arr.shape}")
    return arr


def as_values(values, name: str) -> np.ndarray:
    """A non-empty flat float64 vector of per-entry values."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise MetricsError(f"{name}: no values (the reference would divide by zero)")
    return arr


def threshold32(threshold) -> np.ndarray:
    """The threshold as float32: the reference compares float32 maps in float32 (docs/metrics.md §2.3)."""
    t = np.asarray(threshold)
    if not np.issubdtype(t.dtype, np.number):
        raise MetricsError(f"threshold: expected a number, got {threshold!r}")
    return t.astype(np.float32)


def scalar_or_array(x: np.ndarray):
    """Python float for a 0-d result, the array otherwise."""
    x = np.asarray(x)
    return float(x) if x.ndim == 0 else x


def default_workers() -> int:
    """Threads for chunked work: the CPUs this process may use, at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def map_chunks(fn: Callable[[T], R], tasks: Iterable[T], workers: int | None) -> list[R]:
    """`fn` over `tasks`, in threads (NumPy releases the GIL in its loops), results in order."""
    tasks = list(tasks)
    workers = default_workers() if workers is None else max(1, int(workers))
    if workers == 1 or len(tasks) <= 1:
        return [fn(t) for t in tasks]
    with ThreadPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
        return list(pool.map(fn, tasks))
