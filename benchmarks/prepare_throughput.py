"""Throughput of `sslsan prepare vggsound` (videos/s) with 1 and N worker processes.

Generates VGGSound-like clips (10 s, H.264 + AAC 44.1 kHz stereo, small resolution) with PyAV, then
prepares them from scratch once per worker count, and once more as a resume (everything reused).

    PYTHONPATH=src python benchmarks/prepare_throughput.py --videos 200 --workers 1,2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

# the test-only media writers (time-coded MP4s) live with the tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def make_videos(folder: Path, n: int, seconds: float = 10.0, width: int = 320, height: int = 240) -> list[Path]:
    """n VGGSound-style clips named like real ids; reused when already there."""
    from synthetic_media import write_video

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        p = folder / f"vid{k:08d}_{k % 300:06d}.mp4"
        if not p.exists():
            write_video(p.with_suffix(".tmp.mp4"), seconds=seconds, width=width, height=height).rename(p)
        paths.append(p)
    return paths


def _cpu() -> float:
    """CPU seconds of this process and its finished children (pool workers): load-independent cost."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=200, help="number of generated videos (default 200)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each video (default 10)")
    ap.add_argument("--size", default="320x240", help="video resolution WxH (default 320x240)")
    ap.add_argument("--workers", default=f"1,{os.cpu_count() or 1}", help="comma-separated worker counts")
    ap.add_argument("--work", help="folder for the generated videos and outputs (default: a temporary one)")
    ap.add_argument("--json", help="save the results here")
    args = ap.parse_args(argv)

    from sslsan.data.prepare.vggsound import VGGSoundConfig, prepare_vggsound

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sslsan_prepare_bench_"))
    w, h = (int(v) for v in args.size.lower().split("x"))
    t0 = time.perf_counter()
    videos = make_videos(work / "videos", args.videos, args.seconds, w, h)
    gen = time.perf_counter() - t0
    mb = sum(p.stat().st_size for p in videos) / 1e6
    print(f"{len(videos)} videos ({args.seconds:g} s, {w}x{h}, H.264 + AAC stereo 44.1 kHz, {mb:.1f} MB) "
          f"ready in {gen:.1f} s; machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
          f"(shared: numbers are lower bounds)")
    results = []
    for workers in sorted({int(x) for x in args.workers.split(",")}):
        out = work / f"out_w{workers}"
        shutil.rmtree(out, ignore_errors=True)
        cfg = VGGSoundConfig(videos=str(work / "videos"), out=str(out), workers=workers)
        t, c = time.perf_counter(), _cpu()
        res = prepare_vggsound(cfg, progress=False)
        fresh, cpu = time.perf_counter() - t, _cpu() - c
        t = time.perf_counter()
        again = prepare_vggsound(cfg, progress=False)
        resume = time.perf_counter() - t
        assert res.prepared == len(videos) and len(res.report) == 0, res.report.by_reason()
        assert again.reused == len(videos)
        row = {"workers": workers, "videos": len(videos), "seconds": round(fresh, 2),
               "videos_per_s": round(len(videos) / fresh, 1), "resume_seconds": round(resume, 2),
               "cpu_ms_per_video": round(1e3 * cpu / len(videos), 1)}
        results.append(row)
        print(f"workers={workers:<3} {row['videos_per_s']:>7.1f} videos/s  ({fresh:.1f} s; includes worker start-up)"
              f"   CPU {row['cpu_ms_per_video']:.0f} ms/video (all processes; ~{1e3 / row['cpu_ms_per_video']:.0f} "
              f"videos/s per idle core)   resume (all reused): {resume:.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"size": args.size, "seconds": args.seconds, "results": results}, indent=1))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
