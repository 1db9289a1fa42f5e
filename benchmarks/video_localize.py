"""Benchmark: `sslsan localize --video IN --out OUT.mp4`, frames per second on the CPU (and on CUDA when
available) and peak memory for a 1-minute and a 10-minute video (memory must not grow with the length).

Each run is a process of its own (this script with --child) that loads the model and times
`sslsan.evaluation.video.localize_video_file`: all the work per frame (decoding, the sound windows, the
model, drawing, H.264 + AAC encoding, the per-frame record), not the interpreter's start. Its peak resident
memory is the process's own high-water mark (VmHWM of /proc/self/status: that of its address space since
exec, imports included; ru_maxrss would also count the parent's pages the fork copied). Inputs: time-coded H.264 + AAC MP4s
(tests/synthetic_media.py), 640 x 360 at 25 fps with 44.1 kHz stereo sound. Model: `--checkpoint`, else
random weights in the demo's setting (synth_cpu: width 0.5, 96 px, 3 s clips) and, on a shorter video,
the paper's (width 1, 224 px, 3 s clips tiled to 10 s): the weights do not change the cost.

    PYTHONPATH=src python benchmarks/video_localize.py [--minutes 1 10] [--paper-seconds 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the test-only media writers
sys.path.insert(0, str(HERE))  # serve_load.random_checkpoint: random weights in a named setting

GROWTH_LIMIT_MB = 50  # the 10-minute video may take at most this much more memory than the 1-minute one


def child(args) -> int:
    """Localize one video in this process; print the timing as JSON."""
    from sslsan.evaluation.video import VideoOptions, localize_video_file

    t0 = time.perf_counter()
    summary = localize_video_file(args.checkpoint, args.video, args.out, VideoOptions(panels=tuple(args.panels)),
                                  device=args.device, progress=False)
    print(json.dumps({"seconds": time.perf_counter() - t0, "frames": summary["frames"],
                      "size": [summary["width"], summary["height"]],
                      "peak_mb": peak_memory_mb()}))
    return 0


def peak_memory_mb() -> float:
    """This process's peak resident memory in MB (VmHWM on Linux; ru_maxrss elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)


def run(checkpoint: Path, video: Path, out: Path, device: str, panels: list[str]) -> dict:
    """One child process: its timing and its peak memory (MB)."""
    cmd = [sys.executable, __file__, "--child", "--checkpoint", str(checkpoint), "--video", str(video),
           "--out", str(out), "--device", device, "--panels", *panels]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(HERE.parent / "src")})
    if done.returncode:
        raise SystemExit(f"the run failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--video", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--panels", nargs="*", default=[], help="side panels: silence noise (default none)")
    p.add_argument("--checkpoint", type=Path, default=None, help="default: random weights (module doc)")
    p.add_argument("--minutes", type=float, nargs="+", default=[1, 10], help="video lengths (default 1 10)")
    p.add_argument("--paper-seconds", type=float, default=20, help="length of the paper-setting video (0: skip)")
    p.add_argument("--device", nargs="+", default=None, help="default: cpu, and cuda when available")
    args = p.parse_args()
    if args.child:
        args.device = args.device[0]
        return child(args)

    import torch

    from serve_load import random_checkpoint
    from synthetic_media import write_video

    devices = args.device or ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    load0 = os.getloadavg()[0]
    rows, ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        settings = {"demo": args.checkpoint or random_checkpoint(tmp, "demo")}
        if args.paper_seconds and args.checkpoint is None:
            settings["paper"] = random_checkpoint(tmp, "paper")
        videos = {}
        for minutes in args.minutes:
            t0 = time.perf_counter()
            videos[f"{minutes:g} min"] = write_video(tmp / f"{minutes:g}min.mp4", seconds=60 * minutes, width=640, height=360)
            print(f"wrote the {minutes:g}-minute input in {time.perf_counter() - t0:.0f} s", flush=True)
        if "paper" in settings:
            videos["paper"] = write_video(tmp / "paper.mp4", seconds=args.paper_seconds, width=640, height=360)
        for device in devices:
            for name, video in videos.items():
                setting = "paper" if name == "paper" else "demo"
                r = run(settings[setting], video, tmp / "out.mp4", device, args.panels)
                label = f"{args.paper_seconds:g} s" if name == "paper" else name
                rows.append((device, setting, label, r))
                print(f"{device:5s} {setting:5s} {label:>7s}: {r['frames']} frames {r['size'][0]}x{r['size'][1]} in "
                      f"{r['seconds']:.1f} s = {r['frames'] / r['seconds']:.1f} frames/s, peak memory "
                      f"{r['peak_mb']:.0f} MB", flush=True)
            lengths = [r for d, s, n, r in rows if d == device and s == "demo"]
            if len(lengths) >= 2:
                growth = lengths[-1]["peak_mb"] - lengths[0]["peak_mb"]
                holds = growth <= GROWTH_LIMIT_MB
                ok &= holds
                print(f"{device}: peak memory {args.minutes[-1]:g} min vs {args.minutes[0]:g} min: {growth:+.0f} MB "
                      f"({'PASS' if holds else 'FAIL'}: at most +{GROWTH_LIMIT_MB} MB)")
    print(f"machine: {os.cpu_count()} CPUs, load average {load0:.2f} at the start and {os.getloadavg()[0]:.2f} at the "
          f"end; torch threads {torch.get_num_threads()}; panels: {', '.join(args.panels) or 'none'}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
