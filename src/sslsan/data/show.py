"""`sslsan data show DIR`: a contact sheet of a prepared dataset, as the model will see it.

Each cell shows the frame with the sounding object's mask contour and boxes, the clip's category
(and the other visible categories), and a small log-mel spectrogram of the clip underneath.
Works for any folder written by `sslsan data synth` or `sslsan prepare` (or a manifest file).
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from pathlib import Path

import numpy as np

from sslsan.data.manifest import Manifest, read_manifest
from sslsan.data.registry import DATASETS

# manifests looked for (in this order) when DIR is a folder and --manifest is not given
_DEFAULT_ORDER = ["test_vggss.jsonl", "test_is3.jsonl", "val.jsonl", "train.jsonl"] + [d.manifest for d in DATASETS.values()]


def find_manifest(path: str | Path, name: str | None = None) -> Path:
    """The manifest to show: `path` itself if it is a file, else `name` or the first known one inside it."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder or manifest")
    if name is not None:
        cand = path / (name if name.endswith(".jsonl") else name + ".jsonl")
        if not cand.exists():
            raise FileNotFoundError(f"{cand}: manifest not found")
        return cand
    for n in dict.fromkeys(_DEFAULT_ORDER):
        if (path / n).exists():
            return path / n
    raise FileNotFoundError(f"{path}: holds none of the known manifests ({', '.join(dict.fromkeys(_DEFAULT_ORDER))})")


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from matplotlib.patches import Rectangle
    from PIL import Image

    from sslsan.audio import AudioConfig, LogMelSpectrogram, load_audio
    from sslsan.data.transforms import load_image
    from sslsan.utils.io import atomic_write_bytes

    cols = max(1, min(cols, len(indices)))
    rows = math.ceil(len(indices) / cols)
    height = 4.1 * rows + 0.6
    fig = plt.figure(figsize=(3.0 * cols, height))
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
            with Image.open(manifest.resolve(s.mask)) as m:
                mask = np.asarray(m.convert("L").resize((w, h), Image.NEAREST)) > 127
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
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(out, buf.getvalue())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sslsan data show",
        description="Render a contact sheet PNG of a dataset: each frame with its mask contour and boxes, "
        "the clip's category, and a log-mel spectrogram of the clip.",
    )
    p.add_argument("dir", metavar="DIR", help="a data root written by `sslsan data synth`/`prepare`, or a manifest .jsonl file")
    p.add_argument("--manifest", default=None, metavar="NAME",
                   help="manifest inside DIR to show, e.g. test_is3 or train.jsonl (default: the first of "
                   "test_vggss, test_is3, val, train that exists)")
    p.add_argument("--n", type=int, metavar="N", default=16, help="number of samples to show (default 16)")
    p.add_argument("--cols", type=int, metavar="N", default=4, help="cells per row (default 4)")
    p.add_argument("--seed", type=int, metavar="S", default=None,
                   help="show a seeded random subset instead of the first N samples")
    p.add_argument("--n-mels", type=int, metavar="N", default=64, help="mel bins of the displayed spectrograms (default 64)")
    p.add_argument("--out", default=None, metavar="PNG",
                   help="output PNG (default: contact_<manifest name>.png next to the manifest)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.n < 1 or args.cols < 1 or args.n_mels < 1:
            raise ValueError("--n, --cols and --n-mels must be >= 1")
        path = find_manifest(args.dir, args.manifest)
        manifest = read_manifest(path)
        out = Path(args.out) if args.out else path.parent / f"contact_{path.stem}.png"
        written = render_contact_sheet(manifest, pick(manifest, args.n, args.seed), out, args.cols, args.n_mels)
    except (ValueError, FileNotFoundError) as exc:
        print(f"sslsan data show: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {written}")
    return 0
