"""Benchmark: score a VGG-SS-sized test set with `sslsan.metrics.localization_metrics`.

5,000 samples x 10 repetitions x 3 negative types of 14 x 14 native maps (150,000 negative maps,
7.5e9 upsampled pixels), plus retrieval on a 5,000 x 5,000 similarity matrix. Target: the
localization scoring under 30 s on 2 CPU cores.

    PYTHONPATH=src python benchmarks/metrics_bench.py [--samples 5000] [--repetitions 10] [--maps smooth|uniform|both]

"smooth" maps are blurred random fields around per-map offsets (like real cosine maps: some
negatives lie wholly below the threshold); "uniform" maps are i.i.d. uniform noise straddling the
threshold everywhere, the worst case for the skip of decided maps.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from sslsan.metrics import gt_map_from_boxes, localization_metrics, retrieval


def _smooth_maps(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    noise = rng.standard_normal(shape)
    kernel = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
    for axis in (-1, -2):  # separable binomial blur with edge padding
        pad = [(0, 0)] * noise.ndim
        pad[axis] = (2, 2)
        padded = np.pad(noise, pad, mode="edge")
        n = noise.shape[axis]
        noise = sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(kernel))
    offset = rng.uniform(-0.2, 0.45, size=shape[:-2] + (1, 1))
    return (offset + 0.15 * noise).astype(np.float32)


def make_inputs(n: int, reps: int, kind: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        maps = lambda shape: rng.uniform(0.0, 0.6, size=shape).astype(np.float32)  # noqa: E731
    else:
        maps = lambda shape: _smooth_maps(rng, shape)  # noqa: E731
    pos = maps((n, 14, 14))
    negs = {t: maps((reps, n, 14, 14)) for t in ("silence", "noise", "offscreen")}
    gt = np.empty((n, 224, 224), dtype=np.uint8)  # {0, 1}; uint8 keeps 5,000 GT maps at 250 MB
    for i in range(n):
        x0, y0 = rng.integers(0, 160, size=2)
        w, h = rng.integers(8, 224 - max(x0, y0), size=2)
        gt[i] = gt_map_from_boxes([[x0, y0, x0 + w, y0 + h]])
    return pos, gt, negs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=5000, help="test samples N (default 5000, VGG-SS size)")
    parser.add_argument("--repetitions", type=int, default=10, help="negative repetitions R (default 10)")
    parser.add_argument(
        "--maps", choices=("smooth", "uniform", "both"), default="both", help="kind of synthetic maps (default: both)"
    )
    parser.add_argument("--threshold", type=float, default=0.3338, help="universal threshold (SSL-TIE's)")
    parser.add_argument("--workers", type=int, default=None, help="threads (default: usable CPUs, at most 8)")
    args = parser.parse_args(argv)

    print(f"cpus available: {len(os.sched_getaffinity(0))}, load average: {os.getloadavg()[0]:.2f}")
    for kind in ("smooth", "uniform") if args.maps == "both" else (args.maps,):
        pos, gt, negs = make_inputs(args.samples, args.repetitions, kind)
        n_neg = sum(v.shape[0] * v.shape[1] for v in negs.values())
        start, cpu = time.perf_counter(), time.process_time()
        metrics = localization_metrics(pos, gt, negs, args.threshold, workers=args.workers)
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(
            f"localization_metrics: {args.samples} samples, {n_neg} negative maps ({kind}): "
            f"{took:.2f} s wall, {cpu:.2f} s CPU (all threads); target < 30 s wall on 2 cores"
        )
        print({k: round(v, 3) for k, v in metrics.items()})
        del pos, gt, negs

    rng = np.random.default_rng(1)
    sim = rng.standard_normal((args.samples, args.samples))
    labels = rng.integers(0, 221, size=args.samples)
    start = time.perf_counter()
    retrieval(sim, labels)
    print(f"retrieval: {args.samples} x {args.samples} similarity, K = 1, 5, 10: {time.perf_counter() - start:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
