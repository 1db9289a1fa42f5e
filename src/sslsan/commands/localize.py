"""`sslsan localize`: the sound source map of your own image + audio (or a video, or a folder of pairs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sslsan.commands import DEVICE_HELP, CommandParser, add_policy_argument, method_help, unit_float


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="sslsan localize",
        description="Localize the sound of your own media: an image (photo or video frame, any common format and "
        "size) and an audio clip (any common format, sample rate, channel count, length) → the similarity map, "
        "an overlay PNG thresholded at the checkpoint's universal threshold (as in the paper's Fig. 2), the map max.",
    )
    p.add_argument("--checkpoint", required=True, help="model checkpoint (.pt): ours, or a method's original file")
    p.add_argument("--method", metavar="NAME", help=method_help("the method of an original checkpoint file"))
    add_policy_argument(p)
    p.add_argument("--image", help="image file")
    p.add_argument("--audio", help="audio file (or a video file: its audio track is used)")
    p.add_argument("--video", help="a video file instead: its frame at --time and its sound around that frame")
    p.add_argument("--time", type=float, default=None,
                   help="with --video: the time of the frame in seconds (default: the middle); the frame shown "
                   "then is the last one before that time")
    p.add_argument("--pairs", help="folder of pairs instead: an image and an audio file sharing a stem (cat.jpg + cat.wav); "
                   "a video without a partner is used alone. A pair that cannot be read is skipped and listed in "
                   "OUT/skipped.jsonl; the others are processed")
    p.add_argument("--out", default="localize_out", help="output folder (default: localize_out)")
    p.add_argument("--threshold", type=unit_float, default=None,
                   help="threshold in [0, 1] for the overlay (default: the checkpoint's universal threshold)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from sslsan.evaluation.localize import find_pairs, localize_to_folder

    if args.pairs:
        pairs, lonely = find_pairs(args.pairs)
        if lonely:
            print(f"skipping {len(lonely)} file(s) without a partner: {', '.join(p.name for p in lonely[:5])}"
                  f"{' ...' if len(lonely) > 5 else ''}", file=sys.stderr)
        if not pairs:
            parser.error(f"--pairs {args.pairs}: no image and audio files sharing a stem")
    elif args.video:
        pairs = [(Path(args.video).stem, Path(args.video), Path(args.video))]
    elif args.image and args.audio:
        pairs = [(Path(args.image).stem, Path(args.image), Path(args.audio))]
    else:
        parser.error("give --image and --audio, --video, or --pairs FOLDER")
    localize_to_folder(args.checkpoint, pairs, args.out, threshold=args.threshold, device=args.device, at=args.time,
                       skip_bad=bool(args.pairs), method=args.method, policy=args.policy)
    return 0
