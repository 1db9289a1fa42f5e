"""Fig. 1 (distributions of per-sample maximum similarity) and Fig. 2 (thresholded map overlays).

Matplotlib with the Agg backend; every `plot_*` function writes one PNG atomically and returns its path.
`overlay_frames` and `label_frame` draw Fig. 2's overlay on video frames with NumPy (no figure per frame).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from sslsan.data.transforms import load_image
from sslsan.metrics import upsample
from sslsan.utils.io import atomic_write_bytes
from sslsan.utils.plotting import figure_png as _png
from sslsan.utils.plotting import plt, save_figure  # plt in the Agg backend

AUDIO_LABELS = {"positive": "your audio", "silence": "silence", "noise": "noise"}  # how the overlays name each audio
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


def thresholded(map224: np.ndarray, threshold: float | None, dtype=np.float64) -> np.ndarray:
    """Fig. 2 rendering: values ≤ U_th clipped away, the rest normalised to [0, 1] (the paper's rule).

    Maps (..., H, W): each normalised by its own maximum (and, without a threshold, its own minimum).
    """
    m = np.asarray(map224, dtype=dtype)
    axes = (-2, -1)
    lo = np.asarray(threshold, dtype=dtype) if threshold is not None else m.min(axis=axes, keepdims=True)
    span = m.max(axis=axes, keepdims=True) - lo
    keep = (m > np.float32(threshold)) if threshold is not None else np.ones(m.shape, dtype=bool)
    keep &= span > 0
    return np.where(keep, (m - lo) / np.where(span > 0, span, 1), 0).astype(dtype, copy=False)


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


# ------------------------------------------------------------------------------------ video frames

JET = np.round(colormaps["jet"](np.arange(256))[:, :3] * 255).astype(np.uint16)  # the overlays' colours


def overlay_frames(frames: np.ndarray, maps: np.ndarray, threshold: float | None,
                   upsample_mode: str = "bilinear") -> np.ndarray:
    """Fig. 2 drawn on video frames, vectorised (no figure per frame): uint8 (B, H, W, 3) with native maps
    (B, h, w) -> uint8 (B, H, W, 3).

    Each map is upsampled to the frame (`upsample_mode`: the method's, as scoring upsamples to 224),
    `thresholded`, coloured with jet (matplotlib's 256-entry table, index floor(256 x value)) and
    blended half and half with the frame where it is above the threshold, as `plot_overlays` draws it
    (alpha 0.5).
    """
    frames = np.asarray(frames)
    heat = thresholded(upsample(maps, frames.shape[1:3], mode=upsample_mode), threshold, dtype=np.float32)
    colour = np.take(JET, np.minimum(heat * 256, 255).astype(np.uint8), axis=0)  # (B, H, W, 3)
    blend = ((colour + frames + 1) >> 1).astype(np.uint8)  # integer alpha 0.5, rounded
    return np.where((heat > 0)[..., None], blend, frames)


@functools.lru_cache(maxsize=8)
def _font(size: int):
    return ImageFont.load_default(size=size)


def label_frame(image: np.ndarray, texts: str | tuple[str, ...], highlight: bool = False) -> None:
    """Write a label in the bottom left corner of uint8 (H, W, 3) `image` (in place): light letters on a
    darkened band, orange when `highlight` (the map is above the threshold). `texts`: the label, or
    versions of it from longest to shortest; the first that fits the width at 8 px or more is written."""
    h, w = image.shape[:2]
    texts = (texts,) if isinstance(texts, str) else texts
    size = max(9, min(h, w) // 22)
    for text in texts:
        width = _font(size).getlength(text)
        fit = size if width <= 0.95 * w else int(size * 0.95 * w / width)
        if fit >= 8:
            break
    font = _font(max(6, fit))
    left, top, right, bottom = font.getbbox(text)
    pad = max(2, font.size // 4)
    bw, bh = min(w, right - left + 2 * pad), min(h, bottom - top + 2 * pad)
    mask = Image.new("L", (bw, bh), 0)
    ImageDraw.Draw(mask).text((pad - left, pad - top), text, fill=255, font=font)
    ink = np.asarray(mask, dtype=np.float32)[..., None] / 255.0
    colour = np.array([255, 170, 40] if highlight else [255, 255, 255], dtype=np.float32)
    band = image[h - bh:, :bw].astype(np.float32) * 0.45
    image[h - bh:, :bw] = (band + ink * (colour - band) + 0.5).astype(np.uint8)
