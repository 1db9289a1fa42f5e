"""Localize the sound of a user's own media: image + audio pairs (or videos) → maps, overlays, a summary.

`localize_to_folder` writes, for each pair ``stem``: ``<stem>_map.npy`` (the native similarity map),
``<stem>_overlay.png`` (thresholded at the universal threshold, as the paper's Fig. 2), and at the
end ``localize.json`` (one record per localized pair) and ``skipped.jsonl`` (one line per pair that
could not be read, with the reason). With several pairs a bad one is skipped and counted; the rest
are processed and the summary is always written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from sslsan.evaluation.errors import EvaluationError, check_threshold
from sslsan.evaluation.figures import display_image, plot_overlays
from sslsan.evaluation.inference import load_media, media_frontends, media_maps
from sslsan.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from sslsan.methods.checkpoint import load_model
from sslsan.utils.device import resolve_device
from sslsan.utils.io import atomic_write_text, make_folder


def find_pairs(folder: str | Path) -> tuple[list[tuple[str, Path, Path]], list[Path]]:
    """(stem, image, audio) for every stem of `folder` that has both, plus the files left without a partner.

    A video pairs with an image of its stem as the sound, else stands alone (frame and sound).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise EvaluationError(f"{folder}: not a folder (--pairs needs a folder of images and audio files)")
    images: dict[str, Path] = {}
    audios: dict[str, Path] = {}
    videos: dict[str, Path] = {}
    for f in sorted(folder.iterdir()):
        ext = f.suffix.lower()
        kind = images if ext in IMAGE_EXTENSIONS else audios if ext in AUDIO_EXTENSIONS else videos if ext in VIDEO_EXTENSIONS else None
        if kind is not None and f.is_file():
            kind.setdefault(f.stem, f)
    for stem, v in videos.items():
        if stem not in audios:
            audios[stem] = v
            images.setdefault(stem, v)
    pairs = [(s, images[s], audios[s]) for s in sorted(images.keys() & audios.keys())]
    lonely = [p for s, p in {**images, **audios}.items() if s not in images or s not in audios]
    return pairs, lonely


def localize_to_folder(checkpoint: str | Path, pairs: list[tuple[str, Path, Path]], out: str | Path, *,
                       threshold: float | None = None, device: str = "auto", at: float | None = None,
                       skip_bad: bool | None = None, method: str | None = None,
                       policy: str | None = None) -> dict:
    """Localize every (stem, image, audio) pair with `checkpoint` into `out` (the module doc).

    `threshold`: for the overlays (default: the checkpoint's universal threshold). `at`: the frame time
    of videos (default: their middle). `skip_bad` (default: when there are several pairs) skips and
    counts a pair whose files cannot be read instead of failing. `method`, `policy`: those of an original checkpoint
    file (sslsan.methods.checkpoint.load_model). Returns {"localized": [...],
    "skipped": [...]}; an EvaluationError when no pair could be localized (the summary is written).
    """
    threshold = None if threshold is None else check_threshold(threshold)
    dev = resolve_device(device)
    skip_bad = len(pairs) > 1 if skip_bad is None else skip_bad
    localizer = load_model(checkpoint, map_location=dev, method=method, policy=policy)
    frontends = media_frontends(localizer, dev)  # once for all pairs
    thr = threshold if threshold is not None else localizer.spec.universal_threshold
    if thr is None:
        print("note: the checkpoint has no universal threshold and none was given: overlays are not thresholded",
              file=sys.stderr)
    out = make_folder(out)
    results, skipped = [], []
    for stem, image, audio in pairs:
        try:
            # as `localize_files`, keeping the decoded frame for the overlay
            frame, wave = load_media(image, audio, localizer.spec.audio, at)
            m = media_maps(localizer, frame, wave, device=dev, where=f"{image} + {audio}", frontends=frontends)["positive"]
            png = plot_overlays(display_image(frame), {"your audio": m}, thr, out / f"{stem}_overlay.png", title=stem,
                                upsample_mode=localizer.spec.map.upsample)
        except (ValueError, OSError) as exc:
            if not skip_bad:
                raise
            skipped.append({"stem": stem, "image": str(image), "audio": str(audio), "error": str(exc).splitlines()[0]})
            print(f"skipped {stem}: {skipped[-1]['error']}", file=sys.stderr)
            continue
        np.save(out / f"{stem}_map.npy", m)
        rec = {"stem": stem, "image": str(image), "audio": str(audio), "map_max": float(m.max()),
               "map_min": float(m.min()), "map_shape": list(m.shape), "threshold": thr,
               "above_threshold": None if thr is None else bool(m.max() > np.float32(thr)),
               "overlay": str(png), "map": str(out / f"{stem}_map.npy")}
        results.append(rec)
        verdict = "" if thr is None else ("  (sounding object found)" if rec["above_threshold"]
                                          else "  (below U_th: nothing visible sounds)")
        print(f"{stem}: map max {rec['map_max']:.4f}{verdict} -> {png}")
    atomic_write_text(out / "localize.json", json.dumps(results, indent=1) + "\n")
    atomic_write_text(out / "skipped.jsonl", "".join(json.dumps(s) + "\n" for s in skipped))
    if skipped:
        print(f"{len(results)} localized, {len(skipped)} skipped (listed in {out / 'skipped.jsonl'})", file=sys.stderr)
    if not results:
        raise EvaluationError(f"{out}: no pair could be localized ({len(skipped)} skipped, listed in skipped.jsonl)")
    return {"localized": results, "skipped": skipped}
