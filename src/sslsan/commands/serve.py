"""`sslsan serve`: a local web page to localize the sound of your own image + audio, or video."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from sslsan.commands import DEVICE_HELP, CommandParser, add_policy_argument, method_help, unit_float
from sslsan.serve import MAX_UPLOAD_MB, MAX_VIDEO_SECONDS

DEMO_CHECKPOINT = Path("runs") / "ssl_san_seed0" / "checkpoints" / "best.pt"  # inside `sslsan demo --out`
EXAMPLES_MANIFEST = "test_vggss.jsonl"  # the embedded benchmark's VGG-SS-style test set


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="sslsan serve",
        description="Start a local web page: pick or drop an image and an audio file (any format `sslsan localize` "
        "reads), or one video (its middle frame and its sound), and see the sound's map over the image, thresholded "
        "at the checkpoint's universal threshold (a slider moves it), next to the same image with silence and with "
        "noise; for a video also the overlay of every frame as a video with its sound, playable in the page "
        f"(videos of up to {MAX_VIDEO_SECONDS} s, --max-video-seconds). Uploads are limited to {MAX_UPLOAD_MB} MB per "
        "request (--max-upload-mb). The page needs no internet.",
    )
    p.add_argument("--checkpoint", type=Path, default=None,
                   help=f"model checkpoint (.pt); default: the SSL-SaN model of `sslsan demo` (DEMO/{DEMO_CHECKPOINT})")
    p.add_argument("--method", metavar="NAME", help=method_help("the method of an original checkpoint file"))
    add_policy_argument(p)
    p.add_argument("--demo", type=Path, default=Path("demo_out"),
                   help="the `sslsan demo` output folder to take the default checkpoint and examples from (default demo_out)")
    p.add_argument("--examples", type=Path, default=None,
                   help=f"manifest (or prepared data folder holding {EXAMPLES_MANIFEST}) whose first samples become "
                   "one-click examples; default: DEMO/data when it exists")
    p.add_argument("--threshold", type=unit_float, default=None,
                   help="threshold the page starts at (default: the checkpoint's universal threshold)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_MB,
                   help=f"largest accepted request in MB (default {MAX_UPLOAD_MB})")
    p.add_argument("--max-video-seconds", type=float, default=MAX_VIDEO_SECONDS,
                   help=f"longest video the page makes an overlay video of, in seconds (default {MAX_VIDEO_SECONDS}); "
                   "`sslsan localize --video` has no limit")
    return p


def _examples_manifest(args) -> Path | None:
    if args.examples is None:
        default = args.demo / "data" / EXAMPLES_MANIFEST
        return default if default.is_file() else None
    return args.examples / EXAMPLES_MANIFEST if args.examples.is_dir() else args.examples


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import uvicorn

    from sslsan.serve.app import create_app, listen
    from sslsan.serve.service import LocalizationService, load_examples
    from sslsan.utils.device import resolve_device

    checkpoint = args.checkpoint or args.demo / DEMO_CHECKPOINT
    if args.checkpoint is None and not checkpoint.is_file():
        raise ValueError(f"{checkpoint}: no checkpoint; give --checkpoint PATH, or get one with `make demo` (it writes "
                         "this file) or `sslsan train ...`")
    device = resolve_device(args.device)
    service = LocalizationService.from_checkpoint(checkpoint, device=device, threshold=args.threshold, method=args.method,
                                                   policy=args.policy)
    manifest = _examples_manifest(args)
    examples = load_examples(manifest) if manifest is not None else []
    sock = listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    thr = "none stored" if service.threshold is None else f"{service.threshold:.4f}"
    thr += " (given)" if args.threshold is not None else ""
    print(f"sslsan serve: {checkpoint} (threshold {thr}) on {device}"
          f"{f', {len(examples)} examples from {manifest}' if examples else ''}", flush=True)
    print(f"open http://{shown}:{port}/  (Ctrl+C stops the server)", flush=True)
    if not ipaddress.ip_address(host).is_loopback:
        print(f"note: listening on {host}: anyone who can reach this machine can use the page", file=sys.stderr)
    app = create_app(service, examples, max_upload_mb=args.max_upload_mb, max_video_seconds=args.max_video_seconds)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0
