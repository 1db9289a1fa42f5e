"""`sslsan localize`: the sound source map of your own image + audio (or a folder of pairs)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
AUDIO_EXTS = {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sslsan localize",
        description="Localize the sound of your own media: an image (photo or video frame, any common format and "
        "size) and an audio clip (any common format, sample rate, channel count, length) → the similarity map, "
        "an overlay PNG thresholded at the checkpoint's universal threshold (as in the paper's Fig. 2), the map max.",
    )
    p.add_argument("--checkpoint", required=True, help="model checkpoint (.pt)")
    p.add_argument("--image", help="image file")
    p.add_argument("--audio", help="audio file (or a video file: its audio track is used)")
    p.add_argument("--video", help="a video file instead: its frame at --time and its sound around that frame")
    p.add_argument("--time", type=float, default=None, help="with --video: the frame time in seconds (default: the middle)")
    p.add_argument("--pairs", help="folder of pairs instead: an image and an audio file sharing a stem (cat.jpg + cat.wav); "
                   "a video without a partner is used alone")
    p.add_argument("--out", default="localize_out", help="output folder (default: localize_out)")
    p.add_argument("--threshold", type=float, default=None,
                   help="threshold for the overlay (default: the checkpoint's universal threshold)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda")
    return p


def find_pairs(folder: Path) -> tuple[list[tuple[str, Path, Path]], list[Path]]:
    """(stem, image, audio) for every stem that has both, plus the files left without a partner."""
    from sslsan.evaluation.inference import VIDEO_EXTS

    images, audios, videos = {}, {}, {}
    for f in sorted(folder.iterdir()):
        ext = f.suffix.lower()
        kind = images if ext in IMAGE_EXTS else audios if ext in AUDIO_EXTS else videos if ext in VIDEO_EXTS else None
        if kind is not None:
            kind.setdefault(f.stem, f)
    for stem, v in videos.items():  # a video pairs with an image of its stem as sound, else stands alone
        if stem not in audios:
            audios[stem] = v
            images.setdefault(stem, v)
    pairs = [(s, images[s], audios[s]) for s in sorted(images.keys() & audios.keys())]
    lonely = [p for s, p in {**images, **audios}.items() if s not in images or s not in audios]
    return pairs, lonely


def _display(path: Path, at: float | None):
    """The image (or video frame) as the model sees it, uint8 (224, 224, 3), for the overlay."""
    from sslsan.evaluation.figures import display_image
    from sslsan.evaluation.inference import VIDEO_EXTS, video_frame

    return display_image(video_frame(path, at)[0] if path.suffix.lower() in VIDEO_EXTS else path)


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from sslsan.evaluation.figures import plot_overlays
    from sslsan.evaluation.inference import localize_files
    from sslsan.models import load_model
    from sslsan.utils.io import atomic_write_text

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.pairs:
        folder = Path(args.pairs)
        if not folder.is_dir():
            parser.error(f"--pairs {folder}: not a folder")
        pairs, lonely = find_pairs(folder)
        if lonely:
            print(f"skipping {len(lonely)} file(s) without a partner: {', '.join(p.name for p in lonely[:5])}"
                  f"{' ...' if len(lonely) > 5 else ''}", file=sys.stderr)
        if not pairs:
            parser.error(f"--pairs {folder}: no image and audio files sharing a stem")
    elif args.video:
        pairs = [(Path(args.video).stem, Path(args.video), Path(args.video))]
    elif args.image and args.audio:
        pairs = [(Path(args.image).stem, Path(args.image), Path(args.audio))]
    else:
        parser.error("give --image and --audio, --video, or --pairs FOLDER")
    out = Path(args.out)
    try:
        model = load_model(args.checkpoint, map_location=args.device)
        thr = args.threshold if args.threshold is not None else getattr(model, "universal_threshold", None)
        if thr is None:
            print("note: the checkpoint has no universal threshold and none was given: overlays are not thresholded",
                  file=sys.stderr)
        out.mkdir(parents=True, exist_ok=True)
        results = []
        for stem, image, audio in pairs:
            m = localize_files(model, image, audio, device=args.device, at=args.time)
            np.save(out / f"{stem}_map.npy", m)
            png = plot_overlays(_display(image, args.time), {"your audio": m}, thr, out / f"{stem}_overlay.png", title=stem)
            rec = {"stem": stem, "image": str(image), "audio": str(audio), "map_max": float(m.max()),
                   "map_min": float(m.min()), "map_shape": list(m.shape), "threshold": thr,
                   "above_threshold": None if thr is None else bool(m.max() > np.float32(thr)),
                   "overlay": str(png), "map": str(out / f"{stem}_map.npy")}
            results.append(rec)
            verdict = "" if thr is None else ("  (sounding object found)" if rec["above_threshold"] else "  (below U_th: nothing visible sounds)")
            print(f"{stem}: map max {rec['map_max']:.4f}{verdict} -> {png}")
        atomic_write_text(out / "localize.json", json.dumps(results, indent=1) + "\n")
    except (ValueError, FileNotFoundError) as exc:
        print(f"sslsan localize: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
