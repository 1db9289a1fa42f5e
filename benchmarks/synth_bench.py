"""Benchmark: generate the embedded benchmark (`sslsan data synth`) and time it.

Target: the default size (3000 train + 300 val + 500 VGG-SS-like + 250 IS3-like scenes at 224 px)
in under a minute on 2 CPU cores. Reports wall time and the CPU seconds of all processes (workers
included), so a number taken on a busy machine can still be read as "CPU s / cores".

    PYTHONPATH=src python benchmarks/synth_bench.py [--scale 1.0] [--image-size 224] [--workers 2]

`--scale` multiplies every split size (e.g. 0.1 for a quick run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from sslsan.data.synthetic import SynthConfig, default_workers, generate_dataset, preset_config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="multiplier of every default split size")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--workers", type=int, default=None, help="default: the usable CPUs, at most 8")
    args = p.parse_args()
    d = SynthConfig()
    sizes = {k: max(1, round(getattr(d, k) * args.scale)) for k in ("n_train", "n_val", "n_test_vggss", "n_test_is3")}
    cfg = preset_config("default", image_size=args.image_size, **sizes)
    workers = args.workers or default_workers()
    out = Path(tempfile.mkdtemp(prefix="synth_bench_"))
    try:
        t0, c0 = time.perf_counter(), os.times()
        meta = generate_dataset(cfg, out / "data", workers=workers, progress=False)
        wall, c1 = time.perf_counter() - t0, os.times()
        cpu = sum(getattr(c1, k) - getattr(c0, k) for k in ("user", "system", "children_user", "children_system"))
        size_mb = sum(f.stat().st_size for f in (out / "data").rglob("*") if f.is_file()) / 1e6
    finally:
        shutil.rmtree(out, ignore_errors=True)
    scenes = sum(sizes.values())
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"scenes {scenes} (samples {sum(meta['sizes'].values())}) at {args.image_size} px, {workers} workers")
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s ({1000 * cpu / scenes:.1f} ms/scene), "
          f"{size_mb:.0f} MB written, load average {load:.1f}")
    print(f"CPU-bound estimate on {workers} idle cores: {cpu / workers:.1f} s")


if __name__ == "__main__":
    main()
