"""Samples/s of the training loader on prepared VGGSound data, with 0 (main process), 1 and N workers.

The loader is what training uses: sslsan.data.datasets.AVDataset (JPEG frame + 3 s WAV, tiled to 10 s)
with sslsan.data.transforms.ImageTrainTransform (MoCo-v2 augmentation) in a torch DataLoader,
batch 32. The original SSL-TIE pipeline manages about 50 samples/s per worker. The spectrogram is
computed batched on the training device, so it is not part of the loader.

    PYTHONPATH=src python benchmarks/loader_throughput.py                # generates + prepares 64 clips
    PYTHONPATH=src python benchmarks/loader_throughput.py --data OUT     # an existing prepare output
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).parent


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)


def measure(manifest: Path, workers: int, samples: int, batch: int) -> float:
    from torch.utils.data import DataLoader, RandomSampler

    from sslsan.audio import AudioConfig
    from sslsan.data.datasets import AVDataset
    from sslsan.data.transforms import ImageTrainTransform

    ds = AVDataset(manifest, image_transform=ImageTrainTransform(), audio=AudioConfig())
    sampler = RandomSampler(ds, replacement=True, num_samples=samples + batch)
    loader = DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=workers,
                        worker_init_fn=_one_thread if workers else None, drop_last=True)
    it = iter(loader)
    first = next(it)  # worker start-up and the first batch are not throughput
    assert first["image"].shape[1:] == (3, 224, 224) and first["wave"].shape[1] == AudioConfig().tile_samples
    t = time.perf_counter()
    n = sum(b["image"].shape[0] for b in it)
    return n / (time.perf_counter() - t)


def per_sample_costs(manifest: Path, n: int = 32) -> dict[str, float]:
    """CPU milliseconds per sample of each loader stage (main process, one thread; load-independent)."""
    from sslsan.audio import load_audio, tile_to_length
    from sslsan.data.manifest import read_manifest
    from sslsan.data.transforms import ImageTrainTransform, load_image

    m = read_manifest(manifest)
    tf = ImageTrainTransform()
    samples = [m[i % len(m)] for i in range(n)]
    t = time.process_time()
    imgs = [load_image(m.resolve(s.image)) for s in samples]
    t_img = time.process_time() - t
    t = time.process_time()
    for img in imgs:
        tf(img)
    t_aug = time.process_time() - t
    t = time.process_time()
    for s in samples:
        tile_to_length(load_audio(m.resolve(s.audio)), 160000)
    t_aud = time.process_time() - t
    return {"jpeg_decode_ms": 1e3 * t_img / n, "augment_ms": 1e3 * t_aug / n, "audio_load_tile_ms": 1e3 * t_aud / n}


def pcm_wav_read_ms(manifest: Path, n: int = 32) -> float:
    """CPU ms per sample to read the same PCM16 WAVs with the stdlib (a possible load_audio fast path)."""
    import wave

    import numpy as np

    from sslsan.audio import tile_to_length
    from sslsan.data.manifest import read_manifest

    m = read_manifest(manifest)
    t = time.process_time()
    for i in range(n):
        with wave.open(str(m.resolve(m[i % len(m)].audio)), "rb") as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        tile_to_length(torch.from_numpy(pcm.astype(np.float32) / 32768.0), 160000)
    return 1e3 * (time.process_time() - t) / n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="folder written by `sslsan prepare vggsound` (default: generate one)")
    ap.add_argument("--clips", type=int, default=64, help="clips to generate when --data is not given (default 64)")
    ap.add_argument("--workers", default=f"0,1,{os.cpu_count() or 1}", help="comma-separated DataLoader worker counts")
    ap.add_argument("--samples", type=int, default=320, help="samples timed per setting (default 320)")
    ap.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    ap.add_argument("--json", help="save the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    work = None
    if args.data:
        data = Path(args.data)
    else:
        sys.path.insert(0, str(HERE))
        from prepare_throughput import make_videos

        from sslsan.data.prepare.vggsound import VGGSoundConfig, prepare_vggsound

        work = Path(tempfile.mkdtemp(prefix="sslsan_loader_bench_"))
        make_videos(work / "videos", args.clips)
        data = work / "prepared"
        prepare_vggsound(VGGSoundConfig(str(work / "videos"), str(data), workers=os.cpu_count() or 1,
                                        val_fraction=0.0), progress=False)
    manifest = data / "train.jsonl"
    costs = per_sample_costs(manifest)
    total = sum(costs.values())
    print(f"data {data}: CPU per sample, one thread: " + ", ".join(f"{k} {v:.2f}" for k, v in costs.items())
          + f"; total {total:.1f} ms -> ~{1e3 / total:.0f} samples/s per idle core")
    fast = pcm_wav_read_ms(manifest)
    print(f"  (the same WAVs read with the stdlib wave module: {fast:.2f} ms/sample; with that fast path in "
          f"load_audio: ~{1e3 / (total - costs['audio_load_tile_ms'] + fast):.0f} samples/s per idle core)")
    results = []
    for w in sorted({int(x) for x in args.workers.split(",")}):
        rate = measure(manifest, w, args.samples, args.batch)
        results.append({"workers": w, "samples_per_s": round(rate, 1)})
        per = f" ({rate / w:.1f} per worker)" if w else ""
        print(f"workers={w:<3} {rate:>8.1f} samples/s{per}   [{os.cpu_count()} CPUs, shared]")
    if args.json:
        Path(args.json).write_text(json.dumps({"per_sample_ms": costs, "pcm_wav_read_ms": fast, "results": results},
                                              indent=1))
    if work is not None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
