"""Slow, obviously-correct versions of the metrics, written from docs/metrics.md.

Plain Python loops over pixels / entries, so that the vectorised `sslsan.metrics` can be checked
against them. They share no code with the package.
"""

from __future__ import annotations

import math

import numpy as np

F32 = np.float32


def upsample_loop(src, out_h: int, out_w: int) -> np.ndarray:
    """cv2 INTER_LINEAR on a float32 map, pixel by pixel with float32 scalar arithmetic.

    Source coordinate (dst + 0.5) * in/out - 0.5 rounded to float32, floor, fraction; outside
    [0, in - 1] clamp to the edge with weight 0. Rows first (a row buffer per source row), then
    the vertical blend of two row buffers.
    """
    src = np.asarray(src, dtype=np.float32)
    in_h, in_w = src.shape

    def coord(d, n_in, n_out):
        f = F32((d + 0.5) * (1.0 / (n_out / n_in)) - 0.5)
        s = math.floor(f)
        frac = F32(f - F32(s))
        if s < 0:
            s, frac = 0, F32(0)
        if s >= n_in - 1:
            s, frac = n_in - 1, F32(0)
        return s, min(s + 1, n_in - 1), F32(F32(1) - frac), frac

    cols = [coord(x, in_w, out_w) for x in range(out_w)]
    buffers = []
    for y in range(in_h):
        row = []
        for s0, s1, a0, a1 in cols:
            row.append(F32(F32(src[y, s0] * a0) + F32(src[y, s1] * a1)))
        buffers.append(row)
    out = np.empty((out_h, out_w), dtype=np.float32)
    for y in range(out_h):
        s0, s1, b0, b1 = coord(y, in_h, out_h)
        for x in range(out_w):
            out[y, x] = F32(F32(buffers[s0][x] * b0) + F32(buffers[s1][x] * b1))
    return out


def ciou_loop(pred, gt, threshold, inclusive=False):
    t = F32(threshold)
    inter = 0.0
    gt_sum = 0.0
    extra = 0.0
    for p, g in zip(np.asarray(pred, dtype=np.float32).ravel().tolist(), np.asarray(gt, dtype=float).ravel().tolist()):
        on = (F32(p) >= t) if inclusive else (F32(p) > t)
        gt_sum += g
        if on:
            inter += g
            if g == 0:
                extra += 1.0
    union = gt_sum + extra
    value = inter / union if union != 0 else (math.nan if inter == 0 else math.inf)
    return value, inter, union


def pia_loop(pred, threshold, inclusive=False):
    t = F32(threshold)
    flat = np.asarray(pred, dtype=np.float32).ravel()
    above = sum(1 for p in flat if ((p >= t) if inclusive else (p > t)))
    return above / flat.size


def adaptive_threshold_loop(pred, gt):
    values = sorted(np.asarray(pred, dtype=np.float32).ravel().tolist())
    n = len(values)
    b = sum(1 for g in np.asarray(gt).ravel().tolist() if g != 0)
    if b == 0:
        b = n // 2
    return values[n - b]


def median_threshold_loop(pred):
    values = sorted(np.asarray(pred, dtype=np.float32).ravel().tolist())
    return values[int(len(values) / 2)]


def grid():
    return [0.05 * i for i in range(21)]


def trapezoid_loop(y):
    x = grid()
    return sum((x[k + 1] - x[k]) * (y[k] + y[k + 1]) / 2 for k in range(20))


def auc_loop(values):
    values = list(values)
    y = [sum(1 for v in values if v >= x) / len(values) for x in grid()]  # NaN >= x is False
    return trapezoid_loop(y)


def aucn_loop(values):
    values = list(values)
    y = [sum(1 for v in values if v <= x) / len(values) for x in grid()]
    return trapezoid_loop(y)


def f_loop(a, b):
    return math.nan if a + b == 0 else 2 * a * b / (a + b)


def localization_metrics_loop(pos_maps, gt_maps, neg_maps, threshold):
    """The reference pipeline: lists appended entry by entry over R repetitions (docs/metrics.md §3, §5)."""
    size = np.asarray(gt_maps).shape[1:]
    reps = {len(v) for v in neg_maps.values()}
    r = reps.pop() if reps else 1
    ciou_u, ciou_a = [], []
    pia = {t: [] for t in neg_maps}
    for rep in range(r):
        for i in range(len(pos_maps)):
            up = upsample_loop(pos_maps[i], *size)
            c = ciou_loop(up, gt_maps[i], threshold)[0]
            ciou_u.append(0.0 if math.isnan(c) else c)
            tau_a = adaptive_threshold_loop(up, gt_maps[i])
            ciou_a.append(ciou_loop(up, gt_maps[i], tau_a)[0])
            for t, maps in neg_maps.items():
                pia[t].append(pia_loop(upsample_loop(maps[rep][i], *size), threshold))
    out = {
        "ciou_u": 100 * sum(ciou_u) / len(ciou_u),
        "auc_u": 100 * auc_loop(ciou_u),
        "ciou_a": 100 * sum(1 for a in ciou_a if a >= 0.5) / len(ciou_a),
        "auc_a": 100 * auc_loop(ciou_a),
        "ciou_u_success": 100 * sum(1 for c in ciou_u if c >= 0.5) / len(ciou_u),
        "ciou_a_mean": 100 * sum(0.0 if math.isnan(a) else a for a in ciou_a) / len(ciou_a),
    }
    for t, values in pia.items():
        out[f"pia_{t}"] = 100 * sum(values) / len(values)
        out[f"aucn_{t}"] = 100 * aucn_loop(values)
    if pia:
        neg_loc = sum(100 - out[f"pia_{t}"] for t in pia) / len(pia)
        neg_auc = sum(out[f"aucn_{t}"] for t in pia) / len(pia)
        out["floc"] = f_loop(out["ciou_u"], neg_loc)
        out["fauc"] = f_loop(out["auc_u"], neg_auc)
        for t in pia:
            out[f"floc_{t}"] = f_loop(out["ciou_u"], 100 - out[f"pia_{t}"])
            out[f"fauc_{t}"] = f_loop(out["auc_u"], out[f"aucn_{t}"])
    return out


def quantile_loop(values, q):
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (pos - lo) * (xs[hi] - xs[lo])


def retrieval_loop(sim, labels, ks, exclude_self):
    sim = np.asarray(sim, dtype=float)
    n = sim.shape[0]
    out = {}
    for name, matrix in (("i2a", sim), ("a2i", sim.T)):
        for k in ks:
            precision, any_hit = [], []
            for q in range(n):
                gallery = [j for j in range(n) if not (exclude_self and j == q)]
                key = lambda j: (-(matrix[q, j]) if not math.isnan(matrix[q, j]) else math.inf, j)  # noqa: E731
                ranked = sorted(gallery, key=key)[:k]
                hits = sum(1 for j in ranked if labels[j] == labels[q])
                precision.append(hits / k)
                any_hit.append(1.0 if hits else 0.0)
            out[f"{name}_P@{k}"] = 100 * sum(precision) / n
            out[f"{name}_A@{k}"] = 100 * sum(any_hit) / n
    return out


def gt_map_loop(boxes, mode, size):
    gt = [[0.0] * size for _ in range(size)]
    for y in range(size):
        for x in range(size):
            count = sum(1 for x0, y0, x1, y1 in boxes if x0 <= x < x1 and y0 <= y < y1)
            gt[y][x] = (1.0 if count else 0.0) if mode == "union" else min(count / 2, 1.0)
    return np.array(gt)
