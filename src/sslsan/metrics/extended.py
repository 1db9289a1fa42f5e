"""SLAVC's extended protocol (NeurIPS 2022): AP, max-F1 and LocAcc over sounding and non-sounding pairs.

Bit for bit as stoneMo/SLAVC@05b429c computes them (docs/metrics.md §7): the per-sample part of its
`test.py` `validate` and `utils.EvaluatorFull` (`update`, `calc_precision_recall`, `calc_ap`,
`finalize_stats`, `precision_at_50`). `tests/golden/make_protocols.py` runs that code on generated cases
and `tests/test_protocols.py` checks these functions against it.

Per sample, from its 224 x 224 map:
* scores = (map - lo) / (hi - lo) with fixed `bounds` (SLAVC: +-1/tau for its cos/tau map; in sslsan the
  map's declared range, `MapSpec.range`: (0, 1), the identity, for the post-ReLU cosine maps of SSL-TIE/SSL-SaN);
* confidence = mean of the top quarter of the scores (`np.sort(s)[-n//4:]`: ceil(n/4) values);
* prediction: with `relative_prediction` (the setting SLAVC's published numbers need, stoneMo/SLAVC#2)
  the min-max normalised scores, threshold = the value at index int(n * pred_size) of their ascending
  sort; without it the scores themselves, threshold = pred_thr; binarised with ``>=``;
* cIoU of that prediction against the ground truth (empty GT: 0, or NaN when the prediction is empty too).
Over samples: a non-visible sample (a non-sounding pair, no box) with confidence >= t is a false positive;
a visible one with confidence >= t is a true positive when its cIoU >= iou_thr, else a false positive;
below t it is a false negative.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from sslsan.metrics.common import MetricsError, as_maps, map_chunks
from sslsan.metrics.localization import auc, ciou_parts, minmax_normalize
from sslsan.metrics.resample import upsample


@dataclass(frozen=True)
class ExtendedProtocol:
    """The settings of SLAVC's extended protocol (names of its `test.py` options)."""

    relative_prediction: bool = True  # SLAVC's --relative_prediction; its README numbers need it (SLAVC#2)
    pred_size: float = 0.5  # --pred_size: share of pixels below the relative threshold
    pred_thr: float = 0.5  # --pred_thr: the absolute threshold on the scores without relative_prediction
    iou_thr: float = 0.5  # cIoU of a true positive (the reported "@50" rows)
    bounds: tuple[float, float] = (0.0, 1.0)  # scores = (map - lo) / (hi - lo): the map's range (identity for [0, 1])

    def check(self) -> ExtendedProtocol:
        if not 0.0 <= self.pred_size < 1.0:
            raise MetricsError(f"pred_size must be in [0, 1), got {self.pred_size}")
        lo, hi = self.bounds
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise MetricsError(f"bounds must be finite with lo < hi, got {self.bounds}")
        return self

    def describe(self) -> dict:
        d = asdict(self)
        d["bounds"] = list(self.bounds)
        d["confidence"] = "mean of the top quarter of the scores"
        return d


def slavc_scores(maps, bounds: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """SLAVC's `min_max_norm(x, lo, hi)`: (map - lo) / (hi - lo) with fixed bounds, in the maps' float dtype."""
    m = as_maps(maps, "maps")
    if not np.issubdtype(m.dtype, np.floating):
        m = m.astype(np.float32)
    lo, hi = float(bounds[0]), float(bounds[1])
    return (m - lo) / (hi - lo)


def slavc_confidence(scores) -> np.ndarray:
    """Mean of the top quarter of each map's scores, as ``np.sort(s.flatten())[-n//4:].mean()``.

    ``-n//4`` is ``(-n)//4``, so it keeps ceil(n/4) values (n/4 at 224 x 224). The kept values are summed
    in ascending order, in the maps' dtype, as NumPy's mean of the sorted slice does.
    """
    s = as_maps(scores, "scores")
    n = s.shape[-1] * s.shape[-2]
    flat = s.reshape(-1, n)
    k = -((-n) // 4)
    top = np.sort(np.partition(flat, n - k, axis=1)[:, n - k:], axis=1)
    # a mean over the contiguous last axis sums each row pairwise exactly as the 1-D mean of that row
    return top.mean(axis=1).reshape(s.shape[:-2])


def slavc_prediction(scores, *, relative_prediction: bool = True, pred_size: float = 0.5,
                     pred_thr: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(prediction maps, threshold per map) of SLAVC's `validate`; binarise with ``pred >= threshold``."""
    s = as_maps(scores, "scores")
    lead = s.shape[:-2]
    if not relative_prediction:
        # NumPy compares a float array with a Python float in the array's dtype
        return s, np.broadcast_to(np.asarray(pred_thr).astype(s.dtype), lead)
    pred = minmax_normalize(s)
    n = s.shape[-1] * s.shape[-2]
    k = int(n * pred_size)
    if not 0 <= k < n:
        raise MetricsError(f"pred_size {pred_size}: index {k} outside the {n} pixels of a map")
    thr = np.partition(pred.reshape(-1, n), k, axis=1)[:, k]
    return pred, thr.reshape(lead)


def slavc_sample_scores(maps, gt, protocol: ExtendedProtocol = ExtendedProtocol()) -> dict[str, np.ndarray]:
    """Per-sample confidence and cIoU of 224 x 224 maps (N, H, W) against GT maps (N, H, W) (zeros for a
    non-sounding pair): {"confidence": (N,) in the maps' dtype, "ciou": (N,) float64, NaN kept}."""
    protocol.check()
    scores = slavc_scores(maps, protocol.bounds)
    if scores.ndim != 3:
        raise MetricsError(f"maps: expected shape (N, H, W), got {scores.shape}")
    g = np.asarray(gt)
    if g.shape != scores.shape:
        raise MetricsError(f"gt: shape {g.shape} does not match maps {scores.shape}")
    conf = slavc_confidence(scores)
    pred, thr = slavc_prediction(scores, relative_prediction=protocol.relative_prediction,
                                 pred_size=protocol.pred_size, pred_thr=protocol.pred_thr)
    hit = np.greater_equal(pred, thr.reshape(thr.shape + (1, 1)).astype(pred.dtype))
    ciou = ciou_parts(hit, g, g.sum(axis=(-2, -1), dtype=np.float64), g == 0)[0]
    return {"confidence": conf, "ciou": ciou}


def _check_lists(visible, ciou, confidence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    vis = np.asarray(visible, dtype=bool).ravel()
    c = np.asarray(ciou, dtype=np.float64).ravel()
    conf = np.asarray(confidence).ravel()
    if not np.issubdtype(conf.dtype, np.floating):
        conf = conf.astype(np.float64)
    if not (vis.size == c.size == conf.size):
        raise MetricsError(f"visible, ciou and confidence differ in length: {vis.size}, {c.size}, {conf.size}")
    if conf.size == 0:
        raise MetricsError("no samples")
    if np.isnan(conf).any():
        raise MetricsError("confidence: contains NaN")
    return vis, c, conf


def _count_at_least(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """#{v >= t} for every t: a binary search in the sorted values (same dtype, so the same comparison)."""
    return values.size - np.searchsorted(np.sort(values), thresholds, side="left")


def slavc_precision_recall(visible, ciou, confidence, thresholds, iou_thr: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """`EvaluatorFull.calc_precision_recall` at every confidence threshold at once: (precision, recall),
    float64; each is 1 where its denominator is 0."""
    vis, c, conf = _check_lists(visible, ciou, confidence)
    t = np.asarray(thresholds).astype(conf.dtype, copy=False).ravel()
    good = vis & (c >= iou_thr)  # NaN cIoU: a detection in the wrong place
    tp = _count_at_least(conf[good], t)
    detected_visible = tp + _count_at_least(conf[vis & ~good], t)
    fp = detected_visible - tp + _count_at_least(conf[~vis], t)
    fn = int(np.count_nonzero(vis)) - detected_visible
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp == 0, 1.0, tp / (tp + fp))
        recall = np.where(tp + fn == 0, 1.0, tp / (tp + fn))
    return precision, recall


def slavc_ap(visible, ciou, confidence, iou_thr: float = 0.5) -> float:
    """`EvaluatorFull.calc_ap`: thresholds = the sorted confidences without the largest, from the top down,
    every max(1, N//200)-th; AP = sum_i max_{j>=i} P_j * (R_{i+1} - R_i), summed left to right."""
    vis, c, conf = _check_lists(visible, ciou, confidence)
    skip = max(1, conf.size // 200)
    thresholds = np.sort(conf)[:-1][::-skip]
    precision, recall = slavc_precision_recall(vis, c, conf, thresholds, iou_thr)
    precision_max = np.maximum.accumulate(precision[::-1])[::-1]
    terms = precision_max[:-1] * (recall[1:] - recall[:-1])
    return float(sum(terms.tolist()))  # Python's sum: the reference's order of additions


def slavc_f1(visible, ciou, confidence, iou_thr: float = 0.5) -> np.ndarray:
    """The F1 list of `finalize_stats`: at thresholds sorted(confidence)[::max(1, N//10)] (ascending),
    2rp / (r + p), 0 where r + p = 0. SLAVC prints the list; max-F1 is its maximum (ACL-SSL)."""
    vis, c, conf = _check_lists(visible, ciou, confidence)
    thresholds = np.sort(conf)[::max(1, conf.size // 10)]
    p, r = slavc_precision_recall(vis, c, conf, thresholds, iou_thr)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(r + p > 0, 2 * r * p / (r + p), 0.0)


def slavc_locacc(visible, ciou) -> float:
    """`precision_at_50`: share of the visible samples with cIoU **strictly** above 0.5 (NaN fails)."""
    vis = np.asarray(visible, dtype=bool).ravel()
    c = np.asarray(ciou, dtype=np.float64).ravel()
    if not np.any(vis):
        return float("nan")
    return float(np.mean(c[vis] > 0.5))


def slavc_metrics(visible, ciou, confidence, iou_thr: float = 0.5) -> dict:
    """Everything SLAVC reports at `iou_thr` for the subsets "all" and "visible", in percent (0-100).

    Keys: ``ap`` (AP-all), ``max_f1`` (max of the F1 list of all), ``locacc`` (LocAcc: visible cIoU > 0.5),
    ``precision_visible`` (Precision-visible@50: visible cIoU >= 0.5, the inclusive reading),
    ``auc_visible`` (AUC-visible), ``f1_all`` (the F1 list), ``n_visible``, ``n_nonvisible``.
    """
    vis, c, conf = _check_lists(visible, ciou, confidence)
    f1 = slavc_f1(vis, c, conf, iou_thr)
    n_vis = int(np.count_nonzero(vis))
    out = {
        "ap": 100 * slavc_ap(vis, c, conf, iou_thr),
        "max_f1": 100 * float(np.max(f1)),
        "locacc": 100 * slavc_locacc(vis, c),
        "precision_visible": 100 * float(np.mean(c[vis] >= iou_thr)) if n_vis else float("nan"),
        "auc_visible": 100 * auc(c[vis]) if n_vis else float("nan"),
        "f1_all": [100 * float(v) for v in f1],
        "n_visible": n_vis,
        "n_nonvisible": int(vis.size - n_vis),
    }
    return out


def extended_scores(pos_maps, gt_maps, nonvisible_maps, protocol: ExtendedProtocol = ExtendedProtocol(), *,
                    upsample_mode: str = "bilinear", chunk_size: int = 64, workers: int | None = None) -> dict[str, np.ndarray]:
    """Per-sample SLAVC quantities of native maps: the positives (with their GT) then the non-visible pairs
    (empty GT). Maps are upsampled to the GT size (`upsample_mode`, the model's own, as every sslsan metric)
    `chunk_size` at a time, the chunks shared by `workers` threads (default: the usable CPUs, at most 8; no
    effect on the result).
    Returns {"visible": (N + M,) bool, "confidence": (N + M,), "ciou": (N + M,)}."""
    pos = as_maps(pos_maps, "pos_maps", min_ndim=3)
    neg = as_maps(nonvisible_maps, "nonvisible_maps", min_ndim=3)
    size = tuple(np.shape(gt_maps)[1:])
    tasks = [(pos, gt_maps, k) for k in range(0, pos.shape[0], chunk_size)]
    tasks += [(neg, None, k) for k in range(0, neg.shape[0], chunk_size)]

    def score(task):
        maps, gts, k = task
        up = upsample(maps[k:k + chunk_size], size, mode=upsample_mode, workers=1)
        g = np.zeros(up.shape, dtype=np.uint8) if gts is None else np.asarray(gts[k:k + chunk_size])
        return slavc_sample_scores(up, g, protocol)

    parts = map_chunks(score, tasks, workers)
    visible = np.concatenate([np.ones(pos.shape[0], bool), np.zeros(neg.shape[0], bool)])
    return {"visible": visible, "confidence": np.concatenate([p["confidence"] for p in parts]),
            "ciou": np.concatenate([p["ciou"] for p in parts])}


def extended_metrics(pos_maps, gt_maps, nonvisible_maps, protocol: ExtendedProtocol = ExtendedProtocol(), *,
                     upsample_mode: str = "bilinear") -> dict:
    """SLAVC's extended protocol on native maps (see `extended_scores`, `slavc_metrics`), with its settings."""
    s = extended_scores(pos_maps, gt_maps, nonvisible_maps, protocol, upsample_mode=upsample_mode)
    return {**slavc_metrics(s["visible"], s["ciou"], s["confidence"], protocol.iou_thr),
            "settings": {**protocol.describe(), "upsample": upsample_mode}}


__all__ = [
    "ExtendedProtocol", "extended_metrics", "extended_scores", "slavc_ap", "slavc_confidence", "slavc_f1",
    "slavc_locacc", "slavc_metrics", "slavc_precision_recall", "slavc_prediction", "slavc_sample_scores",
    "slavc_scores",
]
