"""Thresholds: adaptive (SSL-Align), median (classic relative protocol), universal (DECISIONS D6)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sslsan.metrics.common import MetricsError, as_maps, as_values, scalar_or_array

UNIVERSAL_MODES = ("per_type", "pooled")


def _kth_smallest(flat: np.ndarray, k: np.ndarray) -> np.ndarray:
    """flat (M, n), k (M,) -> the k-th smallest value of each row (NaN sorts last, as np.sort)."""
    out = np.empty(flat.shape[0], dtype=flat.dtype)
    for i, (row, kk) in enumerate(zip(flat, k.tolist())):
        out[i] = np.partition(row, kk)[kk]  # O(n) per row; a full sort would be 6x slower
    return out


def adaptive_threshold(pred, gt):
    """SSL-Align adaptive threshold: the B-th largest map value, B = #(gt != 0) (docs/metrics.md §2.2).

    pred (..., H, W) upsampled map(s), gt the matching GT map(s). An empty GT uses
    B = H*W // 2 (25,088 at 224 x 224). Binarising with the strict ``pred > tau`` then keeps at
    most B - 1 pixels (ties at tau are all dropped). Returns a float for one map, else a float32
    array of the leading shape.
    """
    p = as_maps(pred, "pred")
    g = np.asarray(gt)
    if g.shape[-2:] != p.shape[-2:]:
        raise MetricsError(f"gt: shape {g.shape} does not match pred {p.shape}")
    g = np.broadcast_to(g, p.shape)
    n = p.shape[-1] * p.shape[-2]
    flat = p.reshape(-1, n)
    b = np.count_nonzero(g.reshape(-1, n), axis=1)
    b[b == 0] = n // 2
    return scalar_or_array(_kth_smallest(flat, n - b).reshape(p.shape[:-2]))


def median_threshold(pred):
    """Classic relative threshold: element int(H*W/2) of the ascending sort (s[25088] at 224 x 224).

    Returns a float for one map, else an array of the leading shape.
    """
    p = as_maps(pred, "pred")
    n = p.shape[-1] * p.shape[-2]
    k = int(n / 2)
    tau = np.partition(p.reshape(-1, n), k, axis=1)[:, k]
    return scalar_or_array(tau.reshape(p.shape[:-2]))


def _negative_maxima(neg_max_by_type: Mapping) -> dict[str, np.ndarray]:
    if not isinstance(neg_max_by_type, Mapping) or not neg_max_by_type:
        raise MetricsError("universal threshold: expected a non-empty dict negative type -> per-sample maxima")
    values = {t: as_values(v, f"negative maxima '{t}'") for t, v in neg_max_by_type.items()}
    for t, v in values.items():
        if np.isnan(v).any():
            raise MetricsError(f"negative maxima '{t}': contains NaN")
    return values


def per_type_quantiles(neg_max_by_type: Mapping, q: float = 0.75) -> dict[str, float]:
    """The `q`-quantile of each negative type's per-sample maxima (numpy's "linear" quantile)."""
    return {t: float(np.quantile(v, q)) for t, v in _negative_maxima(neg_max_by_type).items()}


def universal_threshold(neg_max_by_type: Mapping, mode: str = "per_type", q: float = 0.75) -> float:
    """Universal threshold from the per-sample maxima of native negative maps (DECISIONS D6).

    neg_max_by_type: {"silence": maxima, "noise": ..., "offscreen": ...}, each any-shaped array
    (e.g. (R, N), repetitions pooled). "per_type": max over types of the per-type `q`-quantile
    (exactly ``max(per_type_quantiles(...).values())``); "pooled": the `q`-quantile of all maxima
    together. numpy's default ("linear") quantile.
    """
    if mode not in UNIVERSAL_MODES:
        raise MetricsError(f"universal threshold mode: expected one of {UNIVERSAL_MODES}, got {mode!r}")
    if mode == "pooled":
        return float(np.quantile(np.concatenate(list(_negative_maxima(neg_max_by_type).values())), q))
    return max(per_type_quantiles(neg_max_by_type, q).values())
