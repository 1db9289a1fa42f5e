"""cv2-style bilinear upsampling of similarity maps, and counting pixels above a threshold.

`upsample` reproduces the structure of OpenCV's ``resize(..., INTER_LINEAR)`` on float32 maps:
half-pixel centres (src = (dst + 0.5) * in/out - 0.5), border clamp, float32 weights, a horizontal
pass into float32 row buffers, then a vertical pass, every product and sum rounded to float32.
It matches ``torch.nn.functional.interpolate(bilinear, align_corners=False)`` to a few float32 ulps
(OpenCV itself may use fused multiply-adds, so no pure-NumPy version can promise its last bit).

`count_above` gives, for many maps, the number of upsampled pixels above a threshold without
building the upsampled maps (this is what makes pIA over 150,000 negative maps fast). Its counts
equal ``(upsample(m) > float32(t)).sum()`` exactly: the row pass is the same float32 code, each
band of output rows between two source rows is counted in closed form from where its (linear)
column profiles cross the threshold, and every column where float32 rounding could decide a
pixel's side is evaluated with the same float32 expression as `upsample`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from sslsan.metrics.common import MAP_SIZE, as_maps, map_chunks

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


def _outward32(x: float, up: bool) -> np.float32:
    """`x` rounded to float32 away from the threshold it bounds (up: never below x)."""
    y = np.float32(x)
    if (float(y) < x) if up else (float(y) > x):
        y = np.nextafter(y, np.float32(np.inf if up else -np.inf))
    return y


def _size2(size) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def _horizontal(maps: np.ndarray, out_w: int) -> np.ndarray:
    """(c, h, w) -> (h, c, out_w) float32: the first (row) pass, source rows outermost.

    With the source row outermost every later operation runs on whole contiguous (c, out_w)
    blocks with one scalar weight, which is several times faster than broadcasting weights over
    a (c, rows, out_w) layout.
    """
    j0, j1, u0, u1 = _axis_plan(maps.shape[-1], out_w)
    src = maps.transpose(1, 0, 2)
    out = np.empty(src.shape[:-1] + (out_w,), dtype=np.float32)  # C order, whatever the input's
    np.multiply(src[..., j0], u0, out=out)
    out += src[..., j1] * u1
    return out


def upsample_rows_first(flat: np.ndarray, size) -> np.ndarray:
    """Upsample float32 maps (c, h, w) into the layout (out_h, c, out_w); see `upsample`."""
    out_h, out_w = _size2(size)
    rows = _horizontal(flat, out_w)
    out = np.empty((out_h, flat.shape[0], out_w), dtype=np.float32)
    for a, b, b0, b1, band in _row_bands(flat.shape[1], out_h):
        part = out[band]
        np.multiply(rows[a], b0[:, :, None], out=part)
        part += rows[b] * b1[:, :, None]
    return out


# How a native map is brought to the ground truth's size: "bilinear" is cv2 INTER_LINEAR (half-pixel
# centres; the reference protocol); the others are torch's F.interpolate modes some methods' own tests
# use (align_corners=True for the "_align_corners" ones; bicubic with a = -0.75 and border clamp).
UPSAMPLE_MODES = ("bilinear", "bilinear_align_corners", "bicubic_align_corners", "bicubic")


def check_mode(mode: str) -> str:
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"unknown upsampling mode {mode!r}; expected one of {UPSAMPLE_MODES}")
    return mode


def _cubic(t: np.ndarray, a: float = -0.75) -> np.ndarray:
    """The cubic convolution kernel (Keys, a = -0.75 as torch and OpenCV)."""
    t = np.abs(t)
    return np.where(t <= 1, ((a + 2) * t - (a + 3)) * t * t + 1,
                    np.where(t < 2, ((a * t - 5 * a) * t + 8 * a) * t - 4 * a, 0.0))


@lru_cache(maxsize=64)
def interpolation_matrix(n_in: int, n_out: int, mode: str) -> np.ndarray:
    """(n_out, n_in) float64 weights of one axis of `mode` (not "bilinear": that one is cv2's own code).

    Output index i samples source position x = i·(n_in − 1)/(n_out − 1) (align_corners) or
    (i + 0.5)·n_in/n_out − 0.5; linear takes its two neighbours, cubic four, indices clamped to the
    border (F.interpolate's rules).
    """
    check_mode(mode)
    i = np.arange(n_out, dtype=np.float64)
    if mode.endswith("align_corners"):
        x = i * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(1)
    else:
        x = (i + 0.5) * (n_in / n_out) - 0.5
    w = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    if mode.startswith("bilinear"):
        x = np.clip(x, 0, n_in - 1)
        x0 = np.floor(x).astype(np.intp)
        x1 = np.minimum(x0 + 1, n_in - 1)
        f = x - x0
        np.add.at(w, (rows, x0), 1 - f)
        np.add.at(w, (rows, x1), f)
    else:
        x0 = np.floor(x).astype(np.intp)
        f = x - x0
        for k in range(-1, 3):
            np.add.at(w, (rows, np.clip(x0 + k, 0, n_in - 1)), _cubic(f - k))
    w.setflags(write=False)
    return w


def _upsample_matrix(flat: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    wy = interpolation_matrix(flat.shape[-2], size[0], mode).astype(np.float32)
    wx = interpolation_matrix(flat.shape[-1], size[1], mode).astype(np.float32)
    return np.einsum("yh,chw,xw->cyx", wy, flat, wx, optimize=True).astype(np.float32, copy=False)


def upsample(maps, size=MAP_SIZE, *, mode: str = "bilinear", chunk_size: int = 256, workers: int | None = None) -> np.ndarray:
    """Resize maps (..., h, w) to (..., 224, 224), float32; `mode` one of UPSAMPLE_MODES.

    "bilinear" (default) is cv2 INTER_LINEAR: half-pixel centres, border clamp, float32 arithmetic
    (inputs are cast to float32, as cv2 receives them). Vectorised over the leading axes,
    `chunk_size` maps at a time, shared by `workers` threads (default: the usable CPUs, at most 8).
    `size` is an int or (height, width).
    """
    check_mode(mode)
    arr = as_maps(maps, "maps").astype(np.float32, copy=False)
    out_h, out_w = _size2(size)
    lead, (h, w) = arr.shape[:-2], arr.shape[-2:]
    flat = arr.reshape(-1, h, w)
    out = np.empty((flat.shape[0], out_h, out_w), dtype=np.float32)

    def fill(start: int) -> None:
        if mode != "bilinear":
            out[start : start + chunk_size] = _upsample_matrix(flat[start : start + chunk_size], (out_h, out_w), mode)
            return
        part = upsample_rows_first(flat[start : start + chunk_size], (out_h, out_w))
        out[start : start + chunk_size] = part.transpose(1, 0, 2)

    map_chunks(fill, range(0, flat.shape[0], chunk_size), workers)
    return out.reshape(*lead, out_h, out_w)


@lru_cache(maxsize=64)
def _row_bands(n_in: int, n_out: int) -> tuple[tuple[int, int, np.ndarray, np.ndarray, slice], ...]:
    """Output rows grouped by their (i0, i1) source pair: (i0, i1, w0[:, None], w1[:, None], rows).

    The rows of a band are contiguous because i0 never decreases along the output axis.
    """
    i0, i1, w0, w1 = _axis_plan(n_in, n_out)
    bands = []
    start = 0
    for stop in range(1, n_out + 1):
        if stop == n_out or (i0[stop], i1[stop]) != (i0[start], i1[start]):
            rows = slice(start, stop)
            bands.append((int(i0[start]), int(i1[start]), w0[rows, None].copy(), w1[rows, None].copy(), rows))
            start = stop
    return tuple(bands)


def _arithmetic(b0: np.ndarray, b1: np.ndarray) -> tuple[float, float] | None:
    """(beta_0, step) if the weights are b1 = beta_0 + k * step, b0 = 1 - b1 exactly, else None."""
    beta = b1.ravel().astype(np.float64)
    if not np.array_equal(b0.ravel().astype(np.float64), 1.0 - beta):
        return None
    if beta.size == 1:
        return float(beta[0]), 1.0
    step = float(beta[1] - beta[0])
    if step <= 0 or not np.array_equal(beta, beta[0] + step * np.arange(beta.size)):
        return None
    return float(beta[0]), step


def _band_counts(r0, r1, b0, b1, tau, compare, margin: float) -> np.ndarray:
    """Per (map, column) count of the band rows fl(fl(r0*b0) + fl(r1*b1)) above tau; r0, r1 (c, W).

    Along a column the band's true values r0 + beta_k (r1 - r0) are linear in k: columns whose two
    ends lie clearly on one side of tau count 0 or K, the others follow from the crossing point.
    Where some row lies within `margin` of tau (the float32 result could fall on either side; the
    caller's margin bounds the float32 error of every pixel of the chunk) the column is evaluated
    exactly.
    """
    k_rows = b1.shape[0]
    arith = _arithmetic(b0, b1)
    if arith is None:  # weights without the structure: evaluate every pixel
        band = r0[:, None, :] * b0
        band += r1[:, None, :] * b1
        return np.count_nonzero(compare(band, tau), axis=1)
    beta0, step = arith
    r0, r1 = np.ascontiguousarray(r0), np.ascontiguousarray(r1)  # ravel() below must be views
    t64 = float(tau)
    upper = _outward32(t64 + margin, up=True)  # float32 bounds, so the tests run on float32 rows
    lower = _outward32(t64 - margin, up=False)
    lo = np.minimum(r0, r1)
    counts = (lo > upper) * k_rows  # int64; np.where with scalars is 3x slower
    cross = np.flatnonzero((np.maximum(r0, r1) >= lower) & (lo <= upper))
    if not cross.size:
        return counts
    x0 = r0.ravel()[cross].astype(np.float64)
    e = x0 - t64
    d = r1.ravel()[cross].astype(np.float64) - x0
    with np.errstate(divide="ignore", invalid="ignore"):
        y = (e / d + beta0) * (-1.0 / step)  # real row index where the column crosses tau
        inside = np.clip(np.where(d > 0, (k_rows - 1) - np.floor(y), np.ceil(y)), 0, k_rows)
        # the row nearest the crossing decides whether float32 rounding could matter
        k = np.clip(np.rint(y), 0, k_rows - 1)
        unsure = np.flatnonzero((np.abs(e + (beta0 + k * step) * d) <= margin) | (d == 0))
    if unsure.size:
        at = cross[unsure]
        exact = r0.ravel()[at][:, None] * b0[:, 0] + r1.ravel()[at][:, None] * b1[:, 0]
        inside[unsure] = np.count_nonzero(compare(exact, tau), axis=1)
    counts.ravel()[cross] = inside
    return counts


def count_above(
    maps, threshold, size=MAP_SIZE, *, inclusive: bool = False, mode: str = "bilinear", chunk_size: int = 256,
    workers: int | None = None,
) -> np.ndarray:
    """Number of pixels of ``upsample(maps, size, mode=mode)`` above `threshold`, per map: int64 (...,).

    Equals ``np.count_nonzero(upsample(maps, size) > np.float32(threshold), axis=(-2, -1))``
    (``>=`` with `inclusive`) exactly, without building the upsampled maps: rows are upsampled
    as in `upsample`, then each band of output rows between two source rows is counted in closed
    form from where its linear profile crosses the threshold (pixels within a few ulps of the
    threshold are evaluated exactly). Maps whose whole range lies clearly on one side of the
    threshold are decided from their min / max alone. `workers` threads (default: the usable
    CPUs, at most 8) share the chunks. Modes other than "bilinear" upsample each chunk and count.
    """
    arr = as_maps(maps, "maps").astype(np.float32, copy=False)
    out_h, out_w = _size2(size)
    lead, (h, w) = arr.shape[:-2], arr.shape[-2:]
    flat = arr.reshape(-1, h, w)
    tau = np.float32(threshold)
    compare = np.greater_equal if inclusive else np.greater
    if check_mode(mode) != "bilinear":
        def count_upsampled(start: int) -> np.ndarray:
            up = _upsample_matrix(flat[start : start + chunk_size], (out_h, out_w), mode)
            return np.count_nonzero(compare(up, tau), axis=(1, 2))

        parts = map_chunks(count_upsampled, range(0, flat.shape[0], chunk_size), workers)
        return (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)).astype(np.int64).reshape(lead)

    counts = np.zeros(flat.shape[0], dtype=np.int64)
    hi = flat.max(axis=(1, 2)).astype(np.float64)
    lo = flat.min(axis=(1, 2)).astype(np.float64)
    t64 = float(tau)
    margin = np.maximum(np.abs(hi), np.abs(lo)) * _SKIP_MARGIN + 4 * float(np.spacing(np.abs(tau))) + 1e-30
    all_above = lo - margin > t64
    counts[all_above] = out_h * out_w
    undecided = ~(all_above | (hi + margin < t64))
    finite = np.isfinite(lo) & np.isfinite(hi)  # NaN / inf maps: evaluate every pixel
    bands = _row_bands(h, out_h)

    def count_chunk(task: tuple[np.ndarray, bool]) -> np.ndarray:
        idx, exact_only = task
        rows = _horizontal(flat[idx], out_w)
        total = np.zeros(idx.size, dtype=np.int64)
        # bound on the float32 error of any upsampled pixel of the chunk, widened for safety
        margin = float(np.abs(rows).max()) * _SKIP_MARGIN + 4 * float(np.spacing(np.abs(tau))) + 2.0**-126
        for a, b, b0, b1, _ in bands:
            copy = b1[:, 0] == 0  # clamped rows: the value is the source row itself
            n_copy = int(np.count_nonzero(copy))
            if exact_only or not copy[:n_copy].all():
                band = rows[a][None] * b0[:, :, None]
                band += rows[b][None] * b1[:, :, None]
                total += np.count_nonzero(compare(band, tau), axis=(0, 2))
                continue
            if n_copy:
                total += n_copy * np.count_nonzero(compare(rows[a], tau), axis=1)
            if n_copy < b1.shape[0]:
                band_counts = _band_counts(rows[a], rows[b], b0[n_copy:], b1[n_copy:], tau, compare, margin)
                total += band_counts.sum(axis=1)
        return total

    tasks = []
    for todo, exact_only in ((np.flatnonzero(undecided & finite), False), (np.flatnonzero(undecided & ~finite), True)):
        tasks += [(todo[c : c + chunk_size], exact_only) for c in range(0, todo.size, chunk_size)]
    for (idx, _), total in zip(tasks, map_chunks(count_chunk, tasks, workers)):
        counts[idx] = total
    return counts.reshape(lead)
