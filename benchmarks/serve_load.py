"""Benchmark: `sslsan serve` under load, 50 requests from 4 concurrent clients on 127.0.0.1.

Starts the real command (`python -m sslsan serve --port 0`) on `--checkpoint`, else the demo's SSL-SaN
model when demo_out/ exists, else a randomly initialised model in the demo's setting (synth_cpu:
width 0.5 towers, 96 px images, 3 s clips; the weights do not change the cost) or, with
`--setting paper`, the paper's (width 1, 224 px, 10 s clips tiled). Two inputs written
with real encoders alternate: a 640 x 480 JPEG + 5 s 44.1 kHz WAV pair, and a 4 s H.264 + AAC
MP4. Checks every answer is 200 and byte-identical for the same input, then prints requests/s and the
p50/p95 latency seen by the clients (upload, decoding, three maps, JSON).

    PYTHONPATH=src python benchmarks/serve_load.py [--requests 50] [--clients 4] [--checkpoint PATH | --setting paper]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

# the test-only media writers (time-coded MP4s) live with the tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

def write_inputs(d: Path) -> dict[str, dict[str, Path]]:
    from PIL import Image

    from synthetic_media import write_video

    from sslsan.media import wav_bytes

    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((480, 640, 3)) * 255).astype(np.uint8)).save(d / "photo.jpg", quality=90)
    t = np.arange(5 * 44100) / 44100
    (d / "clip.wav").write_bytes(wav_bytes(0.3 * np.sin(2 * np.pi * 440 * t), 44100))
    write_video(d / "video.mp4", seconds=4.0)
    return {"image+audio": {"image": d / "photo.jpg", "audio": d / "clip.wav"}, "video": {"video": d / "video.mp4"}}


def random_checkpoint(d: Path, setting: str) -> Path:
    """Random weights in the demo's setting (synth_cpu) or the paper's (vggsound144k: width 1, 224 px, 10 s)."""
    import torch

    from sslsan.config import load_config
    from sslsan.engine import TrainConfig
    from sslsan.engine.run import inference_spec
    from sslsan.methods.checkpoint import save_checkpoint
    from sslsan.models import Localizer

    cfg = load_config(TrainConfig, {"demo": "synth_cpu", "paper": "vggsound144k"}[setting], [])
    torch.manual_seed(0)
    return save_checkpoint(d / f"{setting}_setting.pt", Localizer(cfg.model),
                           inference_spec(cfg).replace(universal_threshold=0.5))


def start_server(checkpoint: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "sslsan", "serve", "--checkpoint", str(checkpoint), "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if found := re.search(r"open (http://\S+/)", line):
            return proc, found.group(1)
    proc.kill()
    raise SystemExit("sslsan serve did not start")


def main() -> int:
    from sslsan.commands.serve import DEMO_CHECKPOINT
    from sslsan.serve.client import post_files

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--setting", choices=["demo", "paper"], default="demo",
                   help="without a checkpoint: random weights at the demo's or the paper's scale")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = write_inputs(tmp)
        demo = Path("demo_out") / DEMO_CHECKPOINT  # where `sslsan serve` looks by default (--demo demo_out)
        if args.checkpoint is None and args.setting == "demo" and demo.is_file():
            args.checkpoint = demo
        ckpt = args.checkpoint or random_checkpoint(tmp, args.setting)
        proc, url = start_server(ckpt)
        try:
            names = list(inputs)
            for n in names:  # warm-up, not timed
                post_files(url + "api/localize", inputs[n])

            def one(i: int) -> tuple[str, int, bytes, float]:
                name = names[i % len(names)]
                t0 = time.perf_counter()
                status, body = post_files(url + "api/localize", inputs[name])
                return name, status, body, time.perf_counter() - t0

            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                results = list(pool.map(one, range(args.requests)))
            wall = time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    statuses = [s for _, s, _, _ in results]
    lat = np.array([t for *_, t in results]) * 1000
    distinct = {n: len({b for m, _, b, _ in results if m == n}) for n in names}
    random = args.checkpoint is None
    print(f"checkpoint: {ckpt}" + (f" (random weights, the {args.setting}'s setting)" if random else ""))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before the end of the run")
    print(f"{args.requests} requests, {args.clients} concurrent clients, inputs alternating: {', '.join(names)}")
    print(f"status codes: {sorted(set(statuses))}  ({statuses.count(200)}/{len(statuses)} OK)")
    print(f"distinct answers per input: {distinct}  (1 = identical results for the same input)")
    print(f"throughput: {args.requests / wall:.2f} requests/s  ({wall:.1f} s wall)")
    print(f"latency: p50 {np.percentile(lat, 50):.0f} ms, p95 {np.percentile(lat, 95):.0f} ms, max {lat.max():.0f} ms")
    ok = statuses.count(200) == len(statuses) and all(v == 1 for v in distinct.values())
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
