"""cv2-style bilinear upsampling of similarity maps, and counting pixels above a threshold.

`upsample` reproduces the structure of OpenCV's ``resize(..., INTER_LINEAR)`` on float32 maps:
half-pixel centres (src = (dst + 0.5) * in/out - 0.5), border clamp, float32 weights, a horizontal
pass into float32 row buffers, then a vertical pass, every product and sum rounded to float32.
It matches ``torch.nn.functional.interpolate(bilinear, align_corners=False)`` to a few float32 ulps
(OpenCV itself may use fused multiply-adds, so no pure-NumPy version can promise its last bit).

`count_above` gives, for many maps, the number of upsampled pixels above a threshold without
keeping the upsampled maps: it evaluates the same float32 expressions as `upsample` (so its
counts equal ``(upsample(m) > t).sum()`` exactly) one band of output rows at a time, and skips
maps whose native range lies clearly on one side of the threshold.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from sslsan.metrics.common import MAP_SIZE, MetricsError, as_maps

# Bilinear values are convex combinations of native values: four float32 roundings move them
# at most ~4 ulps (relative 2**-22) beyond the native range. 2**-18 leaves a wide safety margin.
_SKIP_MARGIN = 2.0**-18


@lru_cache(maxsize=64)
def _axis_plan(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (i0, i1) and float32 weights (w0, w1) of each output index, as cv2 builds them."""
    scale = 1.0 / (n_out / n_in)  # cv2 stores inv_scale = out/in and uses its reciprocal
    # cv2: fx = (float)((dx + 0.5) * scale - 0.5); sx = floor(fx); fx -= sx (all in float32)
    src = ((np.arange(n_out) + 0.5) * scale - 0.5).astype(np.float32)
    i0 = np.floor(src).astype(np.intp)
    w1 = src - i0.astype(np.float32)
    # border clamp: left of the first centre / right of the last centre copy the edge value
    low = i0 < 0
    high = i0 >= n_in - 1
    i0[low] = 0
    i0[high] = n_in - 1
    w1[low | high] = 0.0
    i1 = np.minimum(i0 + 1, n_in - 1)
    w0 = np.float32(1.0) - w1
    for a in (i0, i1, w0, w1):
        a.setflags(write=False)
    return i0, i1, w0, w1


def _size2(size) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def _horizontal(maps: np.ndarray, out_w: int) -> np.ndarray:
    """(..., h, w) -> (..., h, out_w) float32: the first (row) pass."""
    j0, j1, u0, u1 = _axis_plan(maps.shape[-1], out_w)
    return maps[..., j0] * u0 + maps[..., j1] * u1


def upsample(maps, size=MAP_SIZE, *, chunk_size: int = 256) -> np.ndarray:
    """Bilinear (cv2 INTER_LINEAR) resize of maps (..., h, w) to (..., 224, 224), float32.

    Half-pixel centres, border clamp, float32 arithmetic; vectorised over the leading axes and
    processed `chunk_size` maps at a time. `size` is an int or (height, width).
    """
    arr = as_maps(maps, "maps").astype(np.float32, copy=False)
    out_h, out_w = _size2(size)
    lead, (h, w) = arr.shape[:-2], arr.shape[-2:]
    flat = arr.reshape(-1, h, w)
    i0, i1, w0, w1 = _axis_plan(h, out_h)
    out = np.empty((flat.shape[0], out_h, out_w), dtype=np.float32)
    for c in range(0, flat.shape[0], chunk_size):
        rows = _horizontal(flat[c : c + chunk_size], out_w)
        out[c : c + chunk_size] = rows[:, i0, :] * w0[:, None] + rows[:, i1, :] * w1[:, None]
    return out.reshape(*lead, out_h, out_w)


@lru_cache(maxsize=64)
def _row_bands(n_in: int, n_out: int) -> tuple[tuple[int, int, np.ndarray, np.ndarray], ...]:
    """Output rows grouped by their (i0, i1) source pair: (i0, i1, w0[band, None], w1[band, None])."""
    i0, i1, w0, w1 = _axis_plan(n_in, n_out)
    bands = []
    for a, b in sorted(set(zip(i0.tolist(), i1.tolist()))):
        sel = (i0 == a) & (i1 == b)
        bands.append((a, b, w0[sel][:, None].copy(), w1[sel][:, None].copy()))
    return tuple(bands)


def count_above(maps, threshold, size=MAP_SIZE, *, inclusive: bool = False, chunk_size: int = 32) -> np.ndarray:
    """Number of pixels of ``upsample(maps, size)`` above `threshold`, per map: int64 (...,).

    Equals ``np.count_nonzero(upsample(maps, size) > np.float32(threshold), axis=(-2, -1))``
    (``>=`` with `inclusive`) exactly, without holding the upsampled maps in memory.
    """
    arr = as_maps(maps, "maps").astype(np.float32, copy=False)
    out_h, out_w = _size2(size)
    lead, (h, w) = arr.shape[:-2], arr.shape[-2:]
    flat = arr.reshape(-1, h, w)
    tau = np.float32(threshold)
    compare = np.greater_equal if inclusive else np.greater

    counts = np.zeros(flat.shape[0], dtype=np.int64)
    # Maps entirely (with margin) below or above the threshold need no upsampling.
    hi = flat.max(axis=(1, 2)).astype(np.float64)
    lo = flat.min(axis=(1, 2)).astype(np.float64)
    margin = np.maximum(np.abs(hi), np.abs(lo)) * _SKIP_MARGIN + 1e-30
    t64 = float(tau)
    all_above = lo - margin > t64
    counts[all_above] = out_h * out_w
    todo = np.flatnonzero(~(all_above | (hi + margin < t64)))  # NaN maps land here too

    bands = _row_bands(h, out_h)
    for c in range(0, todo.size, chunk_size):
        idx = todo[c : c + chunk_size]
        rows = _horizontal(flat[idx], out_w)
        total = np.zeros(idx.size, dtype=np.int64)
        for a, b, b0, b1 in bands:
            band = rows[:, a, None, :] * b0
            band += rows[:, b, None, :] * b1
            total += np.count_nonzero(compare(band, tau), axis=(1, 2))
        counts[idx] = total
    return counts.reshape(lead)


def check_size(shape: tuple[int, ...], size, name: str) -> None:
    """Raise if the trailing axes of `shape` are not `size`."""
    if tuple(shape[-2:]) != _size2(size):
        raise MetricsError(f"{name}: expected maps of size {_size2(size)}, got shape {tuple(shape)}")
