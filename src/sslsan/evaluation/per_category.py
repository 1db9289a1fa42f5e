"""Localization per sound category, from saved maps.npz files of one or more models (and seeds).

Shows where a model's localization comes from or fails: e.g. a model taught that white noise means
"nothing here" may also fall silent on a sounding object whose sound is itself noise-like.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Union

import numpy as np

from sslsan.evaluation.scoring import load_maps
from sslsan.metrics import (
    adaptive_threshold,
    aggregate_localization,
    localization_scores,
    upsample,
)

# a maps.npz file, or its arrays as `load_maps` returns them (so one file is read once for several views)
Maps = Union[str, Path, Mapping[str, np.ndarray]]


def _arrays(maps: Maps) -> tuple[Mapping[str, np.ndarray], str]:
    if isinstance(maps, Mapping):
        return maps, "maps"
    return load_maps(maps), str(maps)


def category_scores(maps: Maps) -> dict[str, dict[str, float]]:
    """{category: {"n", "ciou_u", "ciou_a", "max"}} of one maps.npz (percent; "max" = median positive-map max).

    cIoU_U is the mean cIoU at the file's universal threshold, cIoU_A the success rate (cIoU ≥ 0.5)
    at each map's adaptive threshold, as in `sslsan.metrics.localization_metrics`.
    """
    arrays, where = _arrays(maps)
    if "threshold" not in arrays or "labels" not in arrays:
        raise ValueError(f"{where}: per-category scores need the `threshold` and `labels` arrays")
    scores = localization_scores(arrays["pos_maps"], arrays["gt_maps"], {}, float(arrays["threshold"]),
                                 upsample_mode=str(arrays["upsample"]) if "upsample" in arrays else "bilinear")
    labels = arrays["labels"].astype(str)
    maxima = arrays["pos_maps"].reshape(len(labels), -1).max(axis=1)
    out = {}
    for cat in sorted(set(labels) - {""}):
        sel = labels == cat
        agg = aggregate_localization({"ciou_u": scores["ciou_u"][sel], "ciou_a": scores["ciou_a"][sel]})
        out[cat] = {"n": int(sel.sum()), "ciou_u": agg["ciou_u"], "ciou_a": agg["ciou_a"],
                    "max": float(np.median(maxima[sel]))}
    return out


def per_category_markdown(models: dict[str, list[Maps]]) -> str:
    """A markdown table: one row per category, cIoU_U / cIoU_A / median positive max per model.

    `models` maps a model name to its maps.npz files or loaded arrays (one per seed); values are means over them.
    """
    per_model = {}
    for name, paths in models.items():
        runs = [category_scores(p) for p in paths]
        cats = sorted(set().union(*runs))
        per_model[name] = {c: {k: float(np.mean([r[c][k] for r in runs if c in r])) for k in ("n", "ciou_u", "ciou_a", "max")}
                           for c in cats}
    cats = sorted(set().union(*per_model.values()))
    names = list(per_model)
    head = "| category | n | " + " | ".join(f"{m} cIoU_U | {m} cIoU_A | {m} max" for m in names) + " |"
    lines = [head, "|---|---|" + "---|---|---|" * len(names)]
    for c in cats:
        n = next(int(per_model[m][c]["n"]) for m in names if c in per_model[m])
        cells = []
        for m in names:
            s = per_model[m].get(c)
            cells += [f"{s['ciou_u']:.1f}", f"{s['ciou_a']:.1f}", f"{s['max']:.2f}"] if s else ["–"] * 3
        lines.append(f"| {c} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def map_offset(maps: Maps, chunk_size: int = 256) -> tuple[float, float]:
    """Median displacement (dx, dy), in pixels of the 224 x 224 GT, of each positive map's adaptive region
    (its pixels above the adaptive threshold) from the GT region's centre; positive = right / down.

    A diagnostic, not a metric of the paper: a model whose maps sit consistently beside the sounding
    object loses cIoU_A although it found the object. Samples with an empty GT or region are skipped.
    """
    arrays, _ = _arrays(maps)
    gt = arrays["gt_maps"] > 0
    ys, xs = np.mgrid[0 : gt.shape[1], 0 : gt.shape[2]]

    def centres(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = mask.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            return (mask * xs).sum(axis=(1, 2)) / n, (mask * ys).sum(axis=(1, 2)) / n, n > 0

    mode = str(arrays["upsample"]) if "upsample" in arrays else "bilinear"
    shifts = []
    for start in range(0, len(gt), chunk_size):
        g = gt[start : start + chunk_size]
        up = upsample(arrays["pos_maps"][start : start + chunk_size], g.shape[1:], mode=mode)
        region = up > np.asarray(adaptive_threshold(up, g))[:, None, None]
        rx, ry, r_ok = centres(region)
        gx, gy, g_ok = centres(g)
        ok = r_ok & g_ok
        shifts.append(np.stack([rx - gx, ry - gy], axis=1)[ok])
    shifts = np.concatenate(shifts) if shifts else np.empty((0, 2))
    if not len(shifts):
        return float("nan"), float("nan")
    dx, dy = np.median(shifts, axis=0)
    return float(dx), float(dy)
