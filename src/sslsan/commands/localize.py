"""`sslsan localize`: the sound source map of your own image + audio (or a video, or a folder of pairs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sslsan.commands import DEVICE_HELP, CommandParser, add_policy_argument, method_help, positive_int, unit_float

# The library's names, spelled here so that --help and a bad argument never wait for PyAV and torch
# (tests/test_video.py checks they agree): sslsan.media.VIDEO_EXTENSIONS, VideoWriter.CONTAINERS,
# sslsan.evaluation.video.PANELS.
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".flv")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")
PANELS = ("silence", "noise")


def panel_list(text: str) -> tuple[str, ...]:
    """argparse type: comma-separated side panels."""
    panels = tuple(p.strip() for p in text.split(",") if p.strip())
    for p in panels:
        if p not in PANELS:
            raise argparse.ArgumentTypeError(f"{p!r} is not a panel; choose from {', '.join(PANELS)}")
    return panels


def frame_size(text: str) -> tuple[int, int] | int:
    """argparse type: ``WIDTHxHEIGHT`` or one number (the longer side), each 2 to 4096 pixels."""
    try:
        values = [int(p) for p in text.lower().split("x")]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 2 or max(values) > 4096:
        raise argparse.ArgumentTypeError(f"{text}: give WIDTHxHEIGHT (e.g. 640x360) or the longer side (e.g. 640), "
                                         "2 to 4096 pixels")
    return values[0] if len(values) == 1 else (values[0], values[1])


def frame_rate(text: str) -> float:
    """argparse type: frames per second, above 0 and at most 120."""
    value = float(text)
    if not 0 < value <= 120:
        raise argparse.ArgumentTypeError(f"{text}: must be above 0 and at most 120")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="sslsan localize",
        description="Localize the sound of your own media: an image (photo or video frame, any common format and "
        "size) and an audio clip (any common format, sample rate, channel count, length) → the similarity map, "
        "an overlay PNG thresholded at the checkpoint's universal threshold (as in the paper's Fig. 2), the map max. "
        "Or a whole video → the same overlay on every frame, as a new video with the original sound "
        "(--video IN --out OUT.mp4), and OUT.frames.jsonl: per frame its time, map max and the area above U_th.",
    )
    p.add_argument("--checkpoint", required=True, help="model checkpoint (.pt): ours, or a method's original file")
    p.add_argument("--method", metavar="NAME", help=method_help("the method of an original checkpoint file"))
    add_policy_argument(p)
    p.add_argument("--image", help="image file")
    p.add_argument("--audio", help="audio file (or a video file: its audio track is used)")
    p.add_argument("--video", help="a video file instead (any container PyAV reads). With --out ending in "
                   f"{'/'.join(VIDEO_SUFFIXES)}: every frame's map with the sound centred on it (the model's clip "
                   "length), drawn over the frame, into that video (H.264 + AAC) and OUT.frames.jsonl beside it. "
                   "Otherwise its frame at --time and the sound around it, into the --out folder")
    p.add_argument("--time", type=float, default=None,
                   help="with --video and an --out folder: the time of the frame in seconds (default: the middle); "
                   "the frame shown then is the last one before that time")
    p.add_argument("--pairs", help="folder of pairs instead: an image and an audio file sharing a stem (cat.jpg + cat.wav); "
                   "a video without a partner is used alone. A pair that cannot be read is skipped and listed in "
                   "OUT/skipped.jsonl; the others are processed")
    p.add_argument("--out", default="localize_out",
                   help="output folder (default: localize_out), or with --video the overlay video OUT.mp4")
    p.add_argument("--threshold", type=unit_float, default=None,
                   help="threshold in [0, 1] for the overlay (default: the checkpoint's universal threshold)")
    video = p.add_argument_group("overlay video (--video IN --out OUT.mp4)")
    video.add_argument("--fps", type=frame_rate, default=None,
                       help="output frames per second (default: the input's, at most 30; up to 120)")
    video.add_argument("--size", type=frame_size, default=None,
                       help="output frame size WIDTHxHEIGHT or the longer side in pixels (default: the input's, "
                       "the longer side at most 1280; rounded down to even numbers)")
    video.add_argument("--panels", type=panel_list, default=(),
                       help="side panels: 'silence', 'noise' or 'silence,noise': the same frame's map with that audio "
                       "beside yours (a model that knows when nothing sounds stays below U_th there)")
    video.add_argument("--batch-size", type=positive_int, default=32, help="frames per model call (default 32)")
    video.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    return p



def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    to_video = Path(args.out).suffix.lower() in VIDEO_EXTENSIONS
    if to_video and not args.video:
        parser.error(f"--out {args.out} is a video file: give --video IN (or an --out folder for images)")
    if to_video and args.time is not None:
        parser.error("--time picks one frame into an --out folder; the overlay video (--out OUT.mp4) has every frame")
    if to_video:
        from sslsan.evaluation.video import VideoOptions, localize_video_file

        options = VideoOptions(threshold=args.threshold, fps=args.fps, panels=args.panels, size=args.size,
                               batch_size=args.batch_size)
        localize_video_file(args.checkpoint, args.video, args.out, options, device=args.device,
                            progress=not args.no_progress, method=args.method, policy=args.policy)
        return 0
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
