"""SSL-Align's (IS3, ICCV 2023) instance-level protocol: cIoU, adaptive cIoU, AUC and iIoU / iAUC per image.

Bit for bit as kaistmm/SSLalignment@e7ae3c5 computes them (docs/metrics.md §8): the per-sample lines of
its `test.py` `validate` and `utils.Evaluator_iiou` (`cal_CIOU`, `cal_CIOU_adap`, `finalize_cIoU`,
`finalize_AUC`, `finalize_IAUC`, `finalize_IAUC_adap`); checked against that code in
`tests/test_protocols.py` (goldens made by `tests/golden/make_protocols.py`).

Per sample, from its 224 x 224 map: min-max normalise it (`normalize_img`), then
* cIoU at the median: threshold = element int(n/2) of the ascending sort, prediction ``>`` threshold;
* adaptive cIoU: threshold = element n - B of the sort, B = the GT pixel count (n // 2 for an empty GT),
  prediction ``>`` threshold (about as many pixels as the GT).
Per image (samples grouped by image, one annotation each): the image succeeds at IoU t only if every
one of its samples has cIoU >= t. A NaN cIoU (empty GT and empty prediction) stays NaN through the
original's in-place binarisation, so it makes its image, and iIoU / iAUC, NaN; we keep that.
"""

from __future__ import annotations

import numpy as np

from sslsan.metrics.common import AUC_GRID, MetricsError, as_maps, as_values, map_chunks
from sslsan.metrics.localization import grid_trapezoid, auc, ciou, minmax_normalize
from sslsan.metrics.resample import upsample
from sslsan.metrics.thresholds import adaptive_threshold, median_threshold


def instance_sample_scores(maps, gt) -> dict[str, np.ndarray]:
    """cIoU at the median and at the adaptive threshold of min-max normalised 224 x 224 maps (N, H, W)
    against GT maps (N, H, W): {"ciou": (N,), "ciou_adap": (N,)}, float64, NaN kept."""
    m = as_maps(maps, "maps", min_ndim=3)
    g = np.asarray(gt)
    if m.ndim != 3 or g.shape != m.shape:
        raise MetricsError(f"expected maps and gt of one shape (N, H, W), got {m.shape} and {g.shape}")
    pred = minmax_normalize(m)
    c = ciou(pred, g, np.atleast_1d(median_threshold(pred)))[0]
    c_adap = ciou(pred, g, np.atleast_1d(adaptive_threshold(pred, g)))[0]
    return {"ciou": np.atleast_1d(c), "ciou_adap": np.atleast_1d(c_adap)}


def group_success(values, groups, t: float) -> np.ndarray:
    """Per group (in order of first appearance): 1 if every value of the group is >= t, else 0; NaN if
    a value of the group is NaN (`finalize_cIoU`'s in-place binarisation and `np.min`)."""
    v = as_values(values, "ciou")
    keys = np.asarray(groups).ravel()
    if keys.size != v.size:
        raise MetricsError(f"groups: {keys.size} keys for {v.size} values")
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    binary = np.where(v >= t, 1.0, np.where(v < t, 0.0, v))  # NaN passes both tests unchanged
    order = np.argsort(inverse, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(inverse[order]) != 0])
    per_group = np.minimum.reduceat(binary[order], starts)  # np.minimum propagates NaN, as np.min
    return per_group[np.argsort(first, kind="stable")]


def instance_metrics(ciou_values, ciou_adap_values, groups) -> dict:
    """SSL-Align's table (percent, 0-100): ``ciou`` / ``ciou_adap`` (share of samples with cIoU >= 0.5),
    ``auc`` / ``auc_adap``, ``iiou`` / ``iiou_adap`` (share of images all of whose samples have cIoU >= 0.5),
    ``iauc`` / ``iauc_adap`` (the same over the 21-point grid), ``n_samples``, ``n_images``."""
    c = as_values(ciou_values, "ciou")
    ca = as_values(ciou_adap_values, "ciou_adap")
    if c.size != ca.size:
        raise MetricsError(f"ciou and ciou_adap differ in length: {c.size}, {ca.size}")
    out = {
        "ciou": 100 * float(np.count_nonzero(c >= 0.5) / c.size),
        "ciou_adap": 100 * float(np.count_nonzero(ca >= 0.5) / ca.size),
        "auc": 100 * auc(c),
        "auc_adap": 100 * auc(ca),
    }
    for name, v in (("", c), ("_adap", ca)):
        out[f"iiou{name}"] = 100 * float(np.mean(group_success(v, groups, 0.5)))
        out[f"iauc{name}"] = 100 * grid_trapezoid(np.array([np.mean(group_success(v, groups, x)) for x in AUC_GRID]))
    out["n_samples"] = int(c.size)
    out["n_images"] = int(np.unique(np.asarray(groups)).size)
    return out


def instance_protocol_metrics(pos_maps, gt_maps, groups, *, upsample_mode: str = "bilinear", chunk_size: int = 64,
                              workers: int | None = None) -> dict:
    """SSL-Align's protocol on native maps (N, h, w): upsampled to the GT size (`upsample_mode`, the model's
    own, as every sslsan metric), then `instance_sample_scores` (chunks shared by `workers` threads) and
    `instance_metrics`."""
    pos = as_maps(pos_maps, "pos_maps", min_ndim=3)
    size = tuple(np.shape(gt_maps)[1:])

    def score(k: int) -> dict[str, np.ndarray]:
        up = upsample(pos[k:k + chunk_size], size, mode=upsample_mode, workers=1)
        return instance_sample_scores(up, np.asarray(gt_maps[k:k + chunk_size]))

    parts = map_chunks(score, range(0, pos.shape[0], chunk_size), workers)
    c = np.concatenate([p["ciou"] for p in parts])
    ca = np.concatenate([p["ciou_adap"] for p in parts])
    return {**instance_metrics(c, ca, groups),
            "settings": {"normalisation": "min-max per map", "threshold": "median (int(n/2)), strict >",
                         "adaptive": "n - #GT pixels, strict >", "iou_thr": 0.5, "group": "manifest `group`",
                         "upsample": upsample_mode}}
