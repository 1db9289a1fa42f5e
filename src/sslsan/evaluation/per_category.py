"""Localization per sound category, from saved maps.npz files of one or more models (and seeds).

Shows where a model's localization comes from or fails: e.g. a model taught that white noise means
"nothing here" may also fall silent on a sounding object whose sound is itself noise-like.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sslsan.evaluation.scoring import load_maps
from sslsan.metrics import adaptive_threshold, localization_scores, upsample


def category_scores(maps_path: str | Path) -> dict[str, dict[str, float]]:
    """{category: {"n", "ciou_u", "ciou_a", "max"}} of one maps.npz (percent; "max" = median positive-map max).

    cIoU_U is the mean cIoU at the file's universal threshold, cIoU_A the success rate (cIoU ≥ 0.5)
    at each map's adaptive threshold, as in `sslsan.metrics.localization_metrics`.
    """
    arrays = load_maps(maps_path)
    if "threshold" not in arrays or "labels" not in arrays:
        raise ValueError(f"{maps_path}: per-category scores need the `threshold` and `labels` arrays")
    scores = localization_scores(arrays["pos_maps"], arrays["gt_maps"], {}, float(arrays["threshold"]))
    labels = arrays["labels"].astype(str)
    maxima = arrays["pos_maps"].reshape(len(labels), -1).max(axis=1)
    out = {}
    for cat in sorted(set(labels) - {""}):
        sel = labels == cat
        ciou_u, ciou_a = scores["ciou_u"][sel], scores["ciou_a"][sel]
        out[cat] = {"n": int(sel.sum()), "ciou_u": 100 * float(np.mean(np.nan_to_num(ciou_u, nan=0.0))),
                    "ciou_a": 100 * float(np.count_nonzero(ciou_a >= 0.5) / sel.sum()),
                    "max": float(np.median(maxima[sel]))}
    return out


def per_category_markdown(models: dict[str, list[str | Path]]) -> str:
    """A markdown table: one row per category, cIoU_U / cIoU_A / median positive max per model.

    `models` maps a model name to its maps.npz files (one per seed); values are means over them.
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


def map_offset(maps_path: str | Path) -> tuple[float, float]:
    """Median displacement (dx, dy), in pixels of the 224 x 224 GT, of each positive map's adaptive region
    (its pixels above the adaptive threshold) from the GT region's centre; positive = right / down.

    A diagnostic, not a metric of the paper: a model whose maps sit consistently beside the sounding
    object loses cIoU_A although it found the object. Samples with an empty GT or region are skipped.
    """
    arrays = load_maps(maps_path)
    gt = arrays["gt_maps"] > 0
    ys, xs = np.mgrid[0 : gt.shape[1], 0 : gt.shape[2]]
    shifts = []
    for pos, g in zip(arrays["pos_maps"], gt):
        up = upsample(pos, g.shape)
        region = up > adaptive_threshold(up, g)
        if g.any() and region.any():
            shifts.append((xs[region].mean() - xs[g].mean(), ys[region].mean() - ys[g].mean()))
    if not shifts:
        return float("nan"), float("nan")
    dx, dy = np.median(np.asarray(shifts), axis=0)
    return float(dx), float(dy)
