"""End-to-end `sslsan train` throughput at the paper's settings, data loading included (the GPU throughput check).

Writes a dataset of real files as `sslsan prepare` does (299x299 JPEG frames with natural-image
statistics, 3 s 16 kHz PCM16 WAVs; see loader_throughput.py) or uses `--data DIR`, then runs
`sslsan train --config vggsound144k` (224 px, 257x670 mel, SpecAugment, silence + noise, the
device-side augmentation) for `--steps` steps per batch size in a fresh process, and reads its
log.jsonl: samples/s (the median of the log intervals after the first) and the data-wait fraction
(the share of a step spent waiting for the loader). On CUDA, GPU utilisation is sampled with
nvidia-smi while it runs. Finally benchmarks/train_step.py gives the ratio of our step to the
literal original one in the same session (synthetic tensors, no data loading).

Targets (one H100/H200-class GPU): >= 1,500 samples/s at batch 128, >= 900 at batch 32.

    python benchmarks/train_e2e.py                                  # CUDA, batch 128 and 32 (no CUDA: skipped)
    python benchmarks/train_e2e.py --device cpu --batch-sizes 8 --steps 6 --samples 64 \\
        --override model.width=0.25 data.image_size=112 data.num_workers=1        # a CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).parent


class GpuSampler(threading.Thread):
    """Samples `nvidia-smi` GPU utilisation (%) every `period` s until stopped."""

    def __init__(self, index: int, period: float = 0.5):
        super().__init__(daemon=True)
        self.index, self.period, self.values, self._stop_event = index, period, [], threading.Event()

    def run(self) -> None:
        query = ["nvidia-smi", f"--id={self.index}", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
        while not self._stop_event.is_set():
            try:
                out = subprocess.run(query, capture_output=True, text=True, timeout=5).stdout.strip()
                self.values.append(float(out.splitlines()[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return  # no nvidia-smi: no utilisation figure
            self._stop_event.wait(self.period)

    def stop(self) -> list[float]:
        self._stop_event.set()
        self.join(timeout=10)
        return self.values


def run_training(data: Path, batch: int, args: argparse.Namespace, work: Path) -> dict:
    run_dir = work / f"run_b{batch}"
    log_every = max(1, args.steps // 10)
    cmd = [sys.executable, "-m", "sslsan", "train", "--config", "vggsound144k", "--run-dir", str(run_dir),
           "--device", args.device, "--no-progress", f"data.root={data}", "data.val_manifest=null",
           f"train.batch_size={batch}", "train.epochs=1", f"train.max_steps_per_epoch={args.steps}",
           f"train.log_every={log_every}", "eval.calibrate_threshold=false", *args.override]
    sampler = GpuSampler(int(args.device.split(":")[1]) if ":" in args.device else 0) if args.device.startswith("cuda") else None
    if sampler is not None:
        sampler.start()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    wall = time.perf_counter() - t0
    util = sampler.stop() if sampler is not None else []
    if proc.returncode != 0:
        return {"batch": batch, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    recs = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    steps = [r for r in recs if r.get("kind") == "train"][1:]  # the first interval holds start-up
    if not steps:
        return {"batch": batch, "error": f"too few log intervals; raise --steps (log every {log_every})"}
    busy = sorted(util)[len(util) // 4:] if util else []  # drop start-up / tear-down samples
    return {
        "batch": batch,
        "samples_per_s": statistics.median(r["samples_per_s"] for r in steps),
        "data_wait_fraction": statistics.median(r["data_wait_s"] / r["step_time_s"] for r in steps),
        "step_s": statistics.median(r["step_time_s"] for r in steps),
        "gpu_util_median": statistics.median(busy) if busy else None,
        "wall_s": wall,
    }


def step_ratio(batches: list[int], args: argparse.Namespace) -> str:
    """benchmarks/train_step.py at the paper's sizes: our step against the literal original, same device."""
    cmd = [sys.executable, str(HERE / "train_step.py"), "--device", args.device, "--batch-sizes", *map(str, batches),
           "--steps", str(args.ratio_steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return (proc.stdout + proc.stderr).strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="a prepared folder (train.jsonl); default: write one with --samples clips")
    ap.add_argument("--samples", type=int, default=2048, help="clips to write when --data is not given (default 2048)")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 32])
    ap.add_argument("--steps", type=int, default=200, help="training steps per batch size (default 200)")
    ap.add_argument("--device", default="auto", help="cuda, cuda:N or cpu (default: cuda; without one, skip)")
    ap.add_argument("--override", nargs="*", default=[], metavar="key=value", help="extra `sslsan train` overrides")
    ap.add_argument("--ratio-steps", type=int, default=20, help="timed steps of train_step.py (0: skip it)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    if args.device == "auto":
        import torch

        if not torch.cuda.is_available():
            print("no CUDA device: this benchmark measures the GPU path (--device cpu for a small smoke run)")
            return 0
        args.device = "cuda"
    sys.path.insert(0, str(HERE))
    from loader_throughput import write_data

    work = Path(tempfile.mkdtemp(prefix="sslsan_e2e_"))
    try:
        if args.data:
            data = Path(args.data)
        else:
            t0 = time.perf_counter()
            write_data(work / "data", args.samples, (299, 299))
            data = work / "data"
            print(f"wrote {args.samples} clips in {time.perf_counter() - t0:.0f} s", flush=True)
        load = os.getloadavg()
        print(f"device {args.device}; {os.cpu_count()} CPUs, load average {load[0]:.2f}; data {data}; "
              f"overrides {' '.join(args.override) or '-'}", flush=True)
        print(f"{'batch':>5} {'samples/s':>10} {'step s':>8} {'data wait':>10} {'GPU util %':>11}")
        results = []
        for batch in args.batch_sizes:
            r = run_training(data, batch, args, work)
            results.append(r)
            if "error" in r:
                print(f"{batch:>5} failed: {r['error']}", flush=True)
                continue
            util = "n/a" if r["gpu_util_median"] is None else f"{r['gpu_util_median']:.0f}"
            print(f"{batch:>5} {r['samples_per_s']:>10.1f} {r['step_s']:>8.3f} {100 * r['data_wait_fraction']:>9.1f}% "
                  f"{util:>11}", flush=True)
        ratio = step_ratio(args.batch_sizes, args) if args.ratio_steps > 0 else ""
        if ratio:
            print("\nbenchmarks/train_step.py (model step only, synthetic tensors):\n" + ratio)
        if args.json:
            Path(args.json).write_text(json.dumps({"device": args.device, "load_average": load, "results": results,
                                                   "train_step": ratio}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
