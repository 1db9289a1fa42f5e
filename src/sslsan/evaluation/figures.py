"""Fig. 1 (distributions of per-sample maximum similarity) and Fig. 2 (thresholded map overlays).

Matplotlib with the Agg backend; every function writes one PNG atomically and returns its path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from sslsan.data.transforms import load_image
from sslsan.metrics import upsample
from sslsan.utils.io import atomic_write_bytes
from sslsan.utils.plotting import figure_png as _png
from sslsan.utils.plotting import plt, save_figure  # plt in the Agg backend

COLOURS = {"positive": "tab:green", "silence": "tab:gray", "noise": "tab:orange", "offscreen": "tab:purple"}


def _violins(ax, maxima: dict[str, np.ndarray], threshold: float | None, title: str) -> None:
    names = list(maxima)
    data = [np.asarray(maxima[n], dtype=np.float64).ravel() for n in names]
    parts = ax.violinplot(data, showmedians=True, showextrema=True)
    for body, n in zip(parts["bodies"], names):
        body.set_facecolor(COLOURS.get(n, "tab:blue"))
        body.set_alpha(0.6)
    q = [np.quantile(d, [0.25, 0.75]) for d in data]
    ax.vlines(range(1, len(names) + 1), [a for a, _ in q], [b for _, b in q], color="k", lw=4, alpha=0.5)
    if threshold is not None:
        ax.axhline(threshold, color="tab:red", ls="--", lw=1.2, label=f"U_th = {threshold:.4f}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xticks(range(1, len(names) + 1), [f"{n}\n(n={len(d)})" for n, d in zip(names, data)])
    ax.set_ylabel("max of the similarity map")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)


def plot_max_distributions(maxima: dict[str, np.ndarray], threshold: float | None, path: str | Path, title: str = "") -> Path:
    """Fig. 1: violins of the per-sample maximum similarity per audio type, U_th as a dashed line.

    The box inside each violin spans Q1-Q3 (Separability = Q1 of positives - Q3 of negatives).
    """
    fig, ax = plt.subplots(figsize=(1.6 * len(maxima) + 1.5, 3.6))
    _violins(ax, maxima, threshold, title or "Per-sample maximum similarity")
    return save_figure(fig, path)


def plot_models_max_distributions(runs: dict[str, tuple[dict[str, np.ndarray], float | None]], path: str | Path) -> Path:
    """Fig. 1 for several models side by side: run name → (maxima by audio type, U_th)."""
    fig, axes = plt.subplots(1, len(runs), figsize=(6.0 * len(runs), 3.6), squeeze=False, sharey=True)
    for ax, (name, (maxima, thr)) in zip(axes[0], runs.items()):
        _violins(ax, maxima, thr, name)
    return save_figure(fig, path)


def maxima_from_maps(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-sample maxima of the native maps of a maps.npz: positive, then each negative type pooled."""
    out = {"positive": arrays["pos_maps"].max(axis=(-2, -1))}
    for t in ("silence", "noise", "offscreen"):
        out[t] = arrays[f"neg_maps_{t}"].max(axis=(-2, -1)).ravel()
    return out


def thresholded(map224: np.ndarray, threshold: float | None) -> np.ndarray:
    """Fig. 2 rendering: values ≤ U_th clipped away, the rest normalised to [0, 1] (the paper's rule)."""
    m = np.asarray(map224, dtype=np.float64)
    lo = float(threshold) if threshold is not None else float(m.min())
    keep = m > np.float32(lo) if threshold is not None else np.ones_like(m, dtype=bool)
    span = float(m.max()) - lo
    out = np.zeros_like(m)
    if span > 0:
        out[keep] = (m[keep] - lo) / span
    return out


def plot_overlays(image: np.ndarray, maps: dict[str, np.ndarray], threshold: float | None, path: str | Path,
                  gt: np.ndarray | None = None, title: str = "", upsample_mode: str = "bilinear") -> Path:
    """Fig. 2: the thresholded map of each audio over the image, GT contour in green, min/max in titles.

    image: uint8 (224, 224, 3); maps: audio type → native (h, w) map (upsampled here as in scoring).
    """
    return atomic_write_bytes(path, render_overlays(image, maps, threshold, gt=gt, title=title,
                                                    upsample_mode=upsample_mode))


def render_overlays(image: np.ndarray, maps: dict[str, np.ndarray], threshold: float | None,
                    gt: np.ndarray | None = None, title: str = "", upsample_mode: str = "bilinear") -> bytes:
    """`plot_overlays` as PNG bytes. Safe to call from several threads: it does not touch pyplot's
    global figure registry."""

    fig = Figure(figsize=(2.6 * len(maps), 2.9))
    axes = fig.subplots(1, len(maps), squeeze=False)
    for ax, (name, m) in zip(axes[0], maps.items()):
        up = np.asarray(upsample(np.asarray(m, dtype=np.float32), mode=upsample_mode))
        heat = thresholded(up, threshold)
        ax.imshow(image)
        ax.imshow(np.ma.masked_where(heat <= 0, heat), cmap="jet", alpha=0.5, vmin=0, vmax=1)
        if gt is not None and np.any(gt) and not np.all(gt):
            ax.contour(np.asarray(gt, dtype=float), levels=[0.5], colors="lime", linewidths=1.2)
        ax.set_title(f"{name}\nmin {float(np.min(m)):.3f}  max {float(np.max(m)):.3f}", fontsize=8)
        ax.axis("off")
    thr = f"U_th = {threshold:.4f}" if threshold is not None else "no threshold"
    fig.suptitle(f"{title}  ({thr})" if title else thr, fontsize=9)
    return _png(fig)


def display_image(image, size: int = 224) -> np.ndarray:
    """An image file (or a uint8 (3, H, W) tensor) squashed to size x size as the model sees it,
    uint8 (size, size, 3) for plotting."""

    img = load_image(image) if isinstance(image, (str, Path)) else image
    arr = img.permute(1, 2, 0).numpy()
    return np.asarray(Image.fromarray(arr).resize((size, size), Image.BICUBIC))
