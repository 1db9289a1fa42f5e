"""A contact sheet of a prepared dataset, as the model will see it (the library of `sslsan data show`).

Each cell shows the frame with the sounding object's mask contour and boxes, the clip's category
(and the other visible categories), and a small log-mel spectrogram of the clip underneath.
Works for any folder written by `sslsan data synth` or `sslsan prepare` (or a manifest file).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from sslsan.audio import AudioConfig, LogMelSpectrogram
from sslsan.data.manifest import Manifest, ManifestError, read_manifest
from sslsan.data.registry import DATASETS
from sslsan.media import load_audio, load_image, load_mask
from sslsan.utils.plotting import save_figure

# manifests looked for (in this order) when DIR is a folder and --manifest is not given
_DEFAULT_ORDER = ["test_vggss.jsonl", "test_is3.jsonl", "val.jsonl", "train.jsonl"] + [d.manifest for d in DATASETS.values()]


def find_manifest(path: str | Path, name: str | None = None) -> Path:
    """The manifest to show: `path` itself if it is a file, else `name` or the first known one inside it."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise ManifestError(f"{path}: no such folder or manifest")
    if name is not None:
        cand = path / (name if name.endswith(".jsonl") else name + ".jsonl")
        if not cand.exists():
            raise ManifestError(f"{cand}: manifest not found")
        return cand
    for n in dict.fromkeys(_DEFAULT_ORDER):
        if (path / n).exists():
            return path / n
    raise ManifestError(f"{path}: holds none of the known manifests ({', '.join(dict.fromkeys(_DEFAULT_ORDER))})")


def show_dataset(path: str | Path, manifest: str | None = None, n: int = 16, cols: int = 4, seed: int | None = None,
                 n_mels: int = 64, out: str | Path | None = None) -> Path:
    """Render the contact sheet of a data root or manifest (see `find_manifest`, `pick`); returns the PNG path.

    `out` defaults to contact_<manifest name>.png next to the manifest.
    """
    if n < 1 or cols < 1 or n_mels < 1:
        raise ValueError(f"n={n}, cols={cols}, n_mels={n_mels}: each must be at least 1")
    found = find_manifest(path, manifest)
    m = read_manifest(found)
    target = Path(out) if out else found.parent / f"contact_{found.stem}.png"
    return render_contact_sheet(m, pick(m, n, seed), target, cols, n_mels)


def pick(manifest: Manifest, n: int, seed: int | None) -> list[int]:
    """The first `n` samples (IS3 pairs stay side by side), or a seeded random subset when seed is given."""
    n = min(n, len(manifest))
    if seed is None:
        return list(range(n))
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(len(manifest), size=n, replace=False).tolist())


def render_contact_sheet(
    manifest: Manifest, indices: list[int], out: str | Path, cols: int = 4, n_mels: int = 64
) -> Path:
    """Write the contact sheet PNG for `indices` of `manifest` (atomically) and return its path."""
    cols = max(1, min(cols, len(indices)))
    rows = math.ceil(len(indices) / cols)
    height = 4.1 * rows + 0.6
    fig = Figure(figsize=(3.0 * cols, height))  # no pyplot: no global figure state, no GUI backend
    outer = fig.add_gridspec(rows, cols, hspace=0.28, wspace=0.08, top=1 - 0.9 / height, bottom=0.2 / height)
    frontends: dict[int, LogMelSpectrogram] = {}
    for k, i in enumerate(indices):
        s = manifest[i]
        r, c = divmod(k, cols)
        img = load_image(manifest.resolve(s.image)).permute(1, 2, 0).numpy()
        h, w = img.shape[:2]
        cell = outer[r, c].subgridspec(2, 1, height_ratios=[1.0, 0.38], hspace=0.12)
        ax = fig.add_subplot(cell[0])
        ax.imshow(img, interpolation="nearest")
        if s.mask:
            mask = load_mask(manifest.resolve(s.mask))
            mask = np.asarray(Image.fromarray(mask).resize((w, h), Image.NEAREST))
            if mask.any():
                ax.contour(mask.astype(np.float32), levels=[0.5], colors="yellow", linewidths=1.2)
        for x1, y1, x2, y2 in s.boxes:
            ax.add_patch(Rectangle((x1 * w - 0.5, y1 * h - 0.5), (x2 - x1) * w, (y2 - y1) * h,
                                   fill=False, edgecolor="red", linewidth=1.0, linestyle="--"))
        others = [x for x in s.scene_categories if x != s.category]
        title = f"sound: {s.category or '?'}"
        if others:
            title += f"\nalso seen: {', '.join(others)}"
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(s.id, fontsize=6, labelpad=1)
        wave = load_audio(manifest.resolve(s.audio))
        n = int(wave.numel())
        if n not in frontends:  # show the clip itself: tile to its own length, i.e. no tiling
            frontends[n] = LogMelSpectrogram(AudioConfig(n_mels=n_mels, tile_seconds=n / AudioConfig().sample_rate))
        with torch.no_grad():
            spec = frontends[n](wave)[0, 0].numpy()
        sax = fig.add_subplot(cell[1])
        vmax = float(spec.max())
        sax.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=vmax - 80.0, vmax=vmax,
                   extent=[0, n / AudioConfig().sample_rate, 0, n_mels])
        sax.set_yticks([])
        sax.tick_params(labelsize=6, pad=1)
    fig.suptitle(f"{manifest.path.name}: {len(indices)} of {len(manifest)} samples "
                 f"(yellow: mask, red dashes: box; below: log-mel, 0-{n_mels} mel bins vs seconds)", fontsize=10, y=1 - 0.15 / height)
    return save_figure(fig, out)
