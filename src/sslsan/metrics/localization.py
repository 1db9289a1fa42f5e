"""Localization metrics of SSL-SaN: cIoU_U/A, AUC_U/A, pIA, AUCN, FLOC, FAUC (docs/metrics.md §3).

Conventions the reference fixes and we keep (each is tested):
* maps are thresholded with a strict ``map > float32(threshold)`` (``>=`` only via `inclusive`);
* cIoU = inter / union is NaN when both GT and prediction are empty (0/0);
* cIoU_U is a *mean* (NaN -> 0), cIoU_A a *success rate* at 0.5 (NaN = failure);
* AUC / AUCN: trapezoid over x_k = 0.05*k (Python floats), ``>=`` for AUC, ``<=`` for AUCN, NaN
  fails every comparison;
* FLOC / FAUC: harmonic mean of one positive term and the arithmetic mean of the negative terms,
  all in percent.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sslsan.metrics.common import (
    AUC_GRID,
    MetricsError,
    as_maps,
    as_values,
    map_chunks,
    scalar_or_array,
    threshold32,
)
from sslsan.metrics.resample import count_above, upsample
from sslsan.metrics.thresholds import adaptive_threshold, median_threshold

NEGATIVE_TYPES = ("silence", "noise", "offscreen")
_GRID = np.asarray(AUC_GRID)
_GRID_STEPS = np.diff(_GRID)


def _binarize(pred: np.ndarray, threshold, inclusive: bool) -> np.ndarray:
    tau = threshold32(threshold)
    if tau.ndim:  # one threshold per map of the leading axes
        tau = tau.reshape(tau.shape + (1, 1))
    return np.greater_equal(pred, tau) if inclusive else np.greater(pred, tau)


def ciou(pred, gt, threshold, *, inclusive: bool = False):
    """cIoU of map(s) `pred` (..., H, W) against GT map(s) at `threshold` (docs/metrics.md §3).

    P = pred > float32(threshold); inter = sum(P * G); union = sum(G) + sum(P * [G == 0]);
    returns (inter / union, inter, union): floats for one map, arrays over the leading axes
    otherwise. `threshold` may be one value or one per map. Empty GT and empty P give NaN.
    """
    p = as_maps(pred, "pred")
    g = np.asarray(gt, dtype=np.float64)
    if g.shape[-2:] != p.shape[-2:]:
        raise MetricsError(f"gt: shape {g.shape} does not match pred {p.shape}")
    hit = _binarize(p, threshold, inclusive)
    g_full = np.broadcast_to(g, hit.shape)
    value, inter, union = ciou_parts(hit, g_full, g_full.sum(axis=(-2, -1)), g_full == 0)
    return scalar_or_array(value), scalar_or_array(inter), scalar_or_array(union)


def ciou_parts(hit: np.ndarray, g: np.ndarray, g_sum: np.ndarray, g_zero: np.ndarray):
    """(cIoU, inter, union) of bool predictions `hit` (..., H, W) and GT maps `g` given sum(G) and [G == 0]."""
    lead = hit.shape[:-2]
    hit2 = hit.reshape(-1, hit.shape[-2] * hit.shape[-1])
    # sum(P * G) as a dot product (exact for the GT values 0, 0.5, 1 in any order)
    g2 = np.broadcast_to(g, hit.shape).reshape(hit2.shape)
    inter = np.einsum("ij,ij->i", hit2, g2, dtype=np.float64, casting="unsafe").reshape(lead)
    union = g_sum + count_rows(hit & g_zero).reshape(lead)
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / union, inter, union


def count_rows(mask: np.ndarray) -> np.ndarray:
    """True values of a bool array (..., H, W) per map (..., ), int64."""
    flat = mask.reshape(-1, mask.shape[-2] * mask.shape[-1])
    # a loop of whole-row count_nonzero is ~5x faster than count_nonzero(axis=...)
    counts = np.fromiter((np.count_nonzero(row) for row in flat), dtype=np.int64, count=flat.shape[0])
    return counts.reshape(mask.shape[:-2])


def pia(pred, threshold, *, inclusive: bool = False):
    """Fraction of the pixels of map(s) `pred` (..., H, W) strictly above float32(threshold)."""
    p = as_maps(pred, "pred")
    hit = _binarize(p, threshold, inclusive)
    return scalar_or_array(count_rows(hit) / (p.shape[-1] * p.shape[-2]))


def grid_trapezoid(y: np.ndarray) -> float:
    """Trapezoid area of y_k over the AUC grid x_k = 0.05*k (21 values of y)."""
    # the expression of numpy.trapz (what sklearn.metrics.auc evaluates), so the sum order matches
    return float(np.add.reduce(_GRID_STEPS * (y[1:] + y[:-1]) / 2.0))


def auc(values) -> float:
    """Area under the success curve y_k = #{v >= 0.05*k} / N, k = 0..20, a fraction in [0, 1].

    The floor is 0.025 (all values 0); NaN entries fail every comparison, even at x = 0.
    """
    v = as_values(values, "auc values")
    y = np.array([np.count_nonzero(v >= x) for x in AUC_GRID]) / v.size
    return grid_trapezoid(y)


def aucn(values) -> float:
    """Area under the CDF y_k = #{v <= 0.05*k} / N of pIA fractions (AUCN; higher is better)."""
    v = as_values(values, "aucn values")
    y = np.array([np.count_nonzero(v <= x) for x in AUC_GRID]) / v.size
    return grid_trapezoid(y)


def f_score(a, b) -> float:
    """Harmonic mean 2ab / (a + b); NaN when a + b = 0 (as the reference's numpy floats)."""
    a, b = np.float64(a), np.float64(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(2 * a * b / (a + b))


def _neg_stack(neg_maps: Mapping, n: int) -> dict[str, np.ndarray]:
    if not isinstance(neg_maps, Mapping):
        raise MetricsError("neg_maps: expected a dict negative type -> maps (R, N, h, w)")
    out = {}
    for name, maps in neg_maps.items():
        arr = as_maps(maps, f"neg_maps['{name}']", min_ndim=3)
        if arr.ndim == 3:
            arr = arr[None]  # a single repetition
        if arr.ndim != 4 or arr.shape[1] != n:
            raise MetricsError(f"neg_maps['{name}']: expected shape (R, {n}, h, w), got {arr.shape}")
        out[str(name)] = arr
    return out


def localization_scores(
    pos_maps,
    gt_maps,
    neg_maps: Mapping,
    threshold: float,
    *,
    inclusive: bool = False,
    upsample_mode: str = "bilinear",
    chunk_size: int = 64,
    workers: int | None = None,
) -> dict[str, np.ndarray]:
    """Per-entry scores behind `localization_metrics` (same arguments).

    Returns arrays: ``ciou_u`` (N,) cIoU at the universal threshold, NaN kept; ``ciou_a`` (N,)
    cIoU at each map's adaptive threshold, NaN kept; ``threshold_a`` (N,) float32 adaptive
    thresholds; ``pia_<type>`` (R, N) fractions of upsampled negative-map pixels above the
    threshold. Maps are upsampled to the GT size (`upsample_mode`, resample.UPSAMPLE_MODES); only `chunk_size` positives are upsampled at a
    time and negative maps are never stored upsampled. `workers` threads share the chunks
    (default: the usable CPUs, at most 8); the result does not depend on it.
    """
    pos = as_maps(pos_maps, "pos_maps", min_ndim=3)
    if pos.ndim != 3:
        raise MetricsError(f"pos_maps: expected shape (N, h, w), got {pos.shape}")
    n = pos.shape[0]
    gt_shape = np.shape(gt_maps)
    if len(gt_shape) != 3 or gt_shape[0] != n:
        raise MetricsError(f"gt_maps: expected shape ({n}, H, W), got {gt_shape}")
    if threshold is None or not np.isfinite(float(threshold)):
        raise MetricsError(f"threshold: expected a finite number, got {threshold!r}")
    size = tuple(gt_shape[1:])
    negs = _neg_stack(neg_maps, n)

    def score_chunk(start: int):
        up = upsample(pos[start : start + chunk_size], size, mode=upsample_mode, workers=1)
        g = np.asarray(gt_maps[start : start + chunk_size])  # kept in its dtype: no float64 copy
        g_sum, g_zero = g.sum(axis=(-2, -1), dtype=np.float64), g == 0
        c_u = ciou_parts(_binarize(up, threshold, inclusive), g, g_sum, g_zero)[0]
        t = np.atleast_1d(adaptive_threshold(up, g))
        c_a = ciou_parts(_binarize(up, t, False), g, g_sum, g_zero)[0]  # the adaptive rule is always strict
        return c_u, c_a, t

    parts = map_chunks(score_chunk, range(0, n, chunk_size), workers)
    ciou_u = np.concatenate([p[0] for p in parts])
    ciou_a = np.concatenate([p[1] for p in parts])
    tau_a = np.concatenate([p[2] for p in parts]).astype(np.float32)

    scores = {"ciou_u": ciou_u, "ciou_a": ciou_a, "threshold_a": tau_a}
    npix = size[0] * size[1]
    for name, arr in negs.items():
        scores[f"pia_{name}"] = count_above(arr, threshold, size, inclusive=inclusive, mode=upsample_mode,
                                            workers=workers) / npix
    return scores


def aggregate_localization(scores: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Percent metrics from `localization_scores` output (see `localization_metrics` for keys)."""
    c_u = np.nan_to_num(as_values(scores["ciou_u"], "ciou_u"), nan=0.0)  # the reference's *_wogl lists
    c_a = as_values(scores["ciou_a"], "ciou_a")
    out = {
        "ciou_u": 100 * float(np.mean(c_u)),
        "auc_u": 100 * auc(c_u),
        "ciou_a": 100 * float(np.count_nonzero(c_a >= 0.5) / c_a.size),
        "auc_a": 100 * auc(c_a),
        "ciou_u_success": 100 * float(np.count_nonzero(c_u >= 0.5) / c_u.size),
        "ciou_a_mean": 100 * float(np.mean(np.nan_to_num(c_a, nan=0.0))),
    }
    types = [k[len("pia_") :] for k in scores if k.startswith("pia_")]
    for t in types:
        p = as_values(scores[f"pia_{t}"], f"pia_{t}")
        out[f"pia_{t}"] = 100 * float(np.mean(p))
        out[f"aucn_{t}"] = 100 * aucn(p)
    if types:
        out["floc"] = f_score(out["ciou_u"], np.mean([100 - out[f"pia_{t}"] for t in types]))
        out["fauc"] = f_score(out["auc_u"], np.mean([out[f"aucn_{t}"] for t in types]))
        for t in types:
            out[f"floc_{t}"] = f_score(out["ciou_u"], 100 - out[f"pia_{t}"])
            out[f"fauc_{t}"] = f_score(out["auc_u"], out[f"aucn_{t}"])
    return out


def localization_metrics(
    pos_maps,
    gt_maps,
    neg_maps: Mapping,
    threshold: float,
    *,
    inclusive: bool = False,
    upsample_mode: str = "bilinear",
    chunk_size: int = 64,
    workers: int | None = None,
) -> dict[str, float]:
    """Every localization metric of SSL-SaN (docs/metrics.md §3), in percent.

    pos_maps: native positive maps (N, h, w), raw cosine similarity (no min-max).
    gt_maps: GT maps (N, 224, 224) ({0, 1}, or {0, .5, 1} for Flickr consensus; any real dtype,
    e.g. uint8/float32 to save memory; an np.memmap works). Maps are upsampled to this size.
    neg_maps: {"silence": (R, N, h, w), "noise": ..., "offscreen": ...}; R repetitions are pooled
    (R * N entries); a (N, h, w) array counts as R = 1. Any type names may be used.
    threshold: the universal threshold tau_U; maps are binarised with ``map > float32(tau_U)``
    (``>=`` with `inclusive`, a non-reference option). upsample_mode: how native maps reach the GT size
    ("bilinear" = cv2 INTER_LINEAR, the reference protocol; resample.UPSAMPLE_MODES).

    Returned keys (all percent, 0-100):
      ``ciou_u``        mean over samples of cIoU at tau_U, NaN (empty GT and prediction) -> 0
      ``auc_u``         AUC of those cIoUs (NaN -> 0 as well)
      ``ciou_a``        success rate: % of samples whose adaptive-threshold cIoU >= 0.5 (NaN fails)
      ``auc_a``         AUC of the adaptive cIoUs (NaN kept: fails even at x = 0)
      ``ciou_u_success`` % of samples with cIoU at tau_U >= 0.5 (the other statistic, for comparison)
      ``ciou_a_mean``   mean adaptive cIoU, NaN -> 0 (the other statistic, for comparison)
      ``pia_<type>``    mean over R*N entries of the % of upsampled negative-map pixels above tau_U
      ``aucn_<type>``   area under the CDF of those fractions (higher is better)
      ``floc``          F(ciou_u, mean over types of (100 - pia_<type>))
      ``fauc``          F(auc_u, mean over types of aucn_<type>)
      ``floc_<type>``, ``fauc_<type>``  the same F with one negative type
    where F(a, b) = 2ab / (a + b) (NaN when a + b = 0). With no negative types only the positive
    keys are returned. The positives are scored once: their R identical copies in the reference's
    pooled lists change no fraction or mean.
    """
    scores = localization_scores(pos_maps, gt_maps, neg_maps, threshold, inclusive=inclusive,
                                 upsample_mode=upsample_mode, chunk_size=chunk_size, workers=workers)
    return aggregate_localization(scores)


def minmax_normalize(maps):
    """Per-map min-max normalisation to [0, 1] over the last two axes, in the maps' float dtype (float32
    for other dtypes); a constant map is returned unchanged (the classic protocol's ``normalize_img``)."""
    m = as_maps(maps, "maps")
    if not np.issubdtype(m.dtype, np.floating):
        m = m.astype(np.float32)
    lo = m.min(axis=(-2, -1), keepdims=True)
    hi = m.max(axis=(-2, -1), keepdims=True)
    span = hi - lo
    flat = span <= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(flat, m, (m - lo) / np.where(flat, 1, span))


def classic_localization_metrics(
    pos_maps, gt_maps, *, inclusive: bool = False, upsample_mode: str = "bilinear", chunk_size: int = 128
) -> dict[str, float]:
    """The classic *relative* protocol of SSL-TIE / SSL-Align / EZ-VSL (docs/model.md §6), in percent.

    Each native map is upsampled, min-max normalised and binarised at its own median
    (``> s[H*W // 2]``), so about half of every image is predicted whatever the audio; it cannot
    see negative audio. Not an SSL-SaN metric; for comparison with older papers. Keys:
    ``ciou_classic`` (% of samples with cIoU >= 0.5, the old "cIoU"), ``auc_classic``,
    ``ciou_classic_mean`` (mean cIoU, NaN -> 0).
    """
    pos = as_maps(pos_maps, "pos_maps", min_ndim=3)
    gt_shape = np.shape(gt_maps)
    if pos.ndim != 3 or len(gt_shape) != 3 or gt_shape[0] != pos.shape[0]:
        raise MetricsError(f"expected pos_maps (N, h, w) and gt_maps (N, H, W), got {pos.shape} and {gt_shape}")
    values = np.empty(pos.shape[0])
    for c in range(0, pos.shape[0], chunk_size):
        pred = minmax_normalize(upsample(pos[c : c + chunk_size], tuple(gt_shape[1:]), mode=upsample_mode))
        gt = np.asarray(gt_maps[c : c + chunk_size], dtype=np.float64)
        tau = np.atleast_1d(median_threshold(pred))
        values[c : c + chunk_size] = ciou(pred, gt, tau, inclusive=inclusive)[0]
    return {
        "ciou_classic": 100 * float(np.count_nonzero(values >= 0.5) / values.size),
        "auc_classic": 100 * auc(values),
        "ciou_classic_mean": 100 * float(np.mean(np.nan_to_num(values, nan=0.0))),
    }
