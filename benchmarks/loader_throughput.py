"""CPU cost of the training data path per sample: the loader workers' share, before and after the split.

before: everything per sample in the workers (the pre-split `TrainItems`): decode the JPEG, the whole
        MoCo-v2 augmentation in float (`ImageTrainTransform`), read the clip and tile it to 10 s, draw
        a 10 s noise clip; batches of float images, tiled clips and noise clips.
after:  the workers do per-file work only (`TrainItems` now): `decode_crop` (keyed draws + the
        random-resized crop on uint8; JPEG at reduced scale when the crop allows), the clip as read;
        flip, colour, grayscale, blur, normalisation, tiling, mel front-end, SpecAugment and the noise
        clips run batched on the training device (`InputBuilder`), whose cost on this CPU is reported too.
Costs are CPU time of this process on one thread (load-independent; run under `taskset -c K` to pin
it), the best of `--repeats`, the paper's settings (224 px, 10 s tiles, 257x670 mel, batch 32).

Data: 299x299 JPEG frames with natural-image statistics (1/f^1.5 spectrum, quality 90: ~25-30 KB,
like VGGSound frames extracted at 299 px; the procedural benchmark's flat frames decode ~2x faster)
and 3 s 16 kHz PCM16 WAVs, as `sslsan prepare` writes them; `--data DIR` uses a prepared folder.
Also measured: 1280x720 frames (native-size extraction) with and without the reduced JPEG decode,
and reading a clip from its WAV against a memory-mapped int16 array (is a clip store worth it?).

    PYTHONPATH=src python benchmarks/loader_throughput.py [--data DIR] [--workers 0,1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

WIDTH = 76


def pink_frame(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """uint8 RGB frame with a 1/f^1.5 amplitude spectrum and correlated channels."""
    n = max(height, width)
    f = np.sqrt(np.fft.fftfreq(n)[:, None] ** 2 + np.fft.fftfreq(n)[None, :] ** 2)
    amp = np.maximum(f, 1.0 / n) ** -1.5
    chans = [np.real(np.fft.ifft2(amp * np.exp(2j * np.pi * rng.uniform(size=(n, n))))) for _ in range(3)]
    x = np.stack(chans, -1) @ np.array([[1.0, 0.8, 0.6], [0.2, 1.0, 0.3], [0.1, 0.3, 1.0]])
    x = (x - x.mean()) / x.std()
    return np.clip(128 + 50 * x, 0, 255).astype(np.uint8)[:height, :width]


def write_data(root: Path, n: int, frame: tuple[int, int], seed: int = 0) -> Path:
    """n frames + 3 s clips + train.jsonl in the layout `sslsan prepare` writes; returns the manifest."""
    from sslsan.data.manifest import Sample, write_manifest
    from sslsan.media import jpeg_bytes, wav_bytes

    rng = np.random.default_rng(seed)
    (root / "frames").mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(exist_ok=True)
    t = np.arange(48000) / 16000
    samples = []
    for i in range(n):
        (root / "frames" / f"{i:05d}.jpg").write_bytes(jpeg_bytes(pink_frame(rng, *frame), quality=90))
        x = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) + 0.05 * rng.standard_normal(t.size)
        (root / "audio" / f"{i:05d}.wav").write_bytes(wav_bytes(x))
        samples.append(Sample(id=f"{i:05d}", image=f"frames/{i:05d}.jpg", audio=f"audio/{i:05d}.wav"))
    return write_manifest(root / "train.jsonl", samples)


def cpu_ms(fn, count: int, repeats: int) -> float:
    """Best-of-`repeats` CPU milliseconds per item of `fn()` (which handles `count` items)."""
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return 1e3 * best / count


def paper_config(**data):
    from sslsan.config import load_config
    from sslsan.engine import TrainConfig
    from sslsan.engine.train_config import resolve_train_config

    return resolve_train_config(load_config(TrainConfig, "vggsound144k", [f"data.{k}={v}" for k, v in data.items()]))


def worker_costs(manifest: Path, batch: int, repeats: int) -> dict[str, float]:
    """ms per sample of the loader-worker side, before and after, items + collation."""
    from torch.utils.data import default_collate

    from sslsan.audio import load_audio, noise, tile_to_length
    from sslsan.data.manifest import read_manifest
    from sslsan.data.transforms import load_image
    from sslsan.engine.data import TrainItems, collate_items, train_image_transform
    from sslsan.engine.streams import STREAM_IMAGE, STREAM_NOISE
    from sslsan.utils.seed import make_generator

    cfg = paper_config()
    m = read_manifest(manifest)
    n = batch * max(1, len(m) // batch)
    keys = [(0, i % len(m)) for i in range(n)]
    tf, tile = train_image_transform(cfg), cfg.audio.tile_samples

    def before_item(epoch: int, i: int) -> dict:
        s = m[i]
        img = tf(load_image(m.resolve(s.image)), generator=make_generator(4, STREAM_IMAGE, epoch, i))
        clip = tile_to_length(load_audio(m.resolve(s.audio)), tile)
        return {"index": i, "image": img, "wave": clip,
                "noise": noise(tile, generator=make_generator(4, STREAM_NOISE, epoch, i))}

    after = TrainItems(m, cfg, train=True)

    def run(item_fn, collate):
        for b in range(0, n, batch):
            collate([item_fn(k) for k in keys[b : b + batch]])

    out = {"before": cpu_ms(lambda: run(lambda k: before_item(*k), default_collate), n, repeats),
           "after": cpu_ms(lambda: run(after.__getitem__, collate_items), n, repeats)}
    # the parts of `before`, for the table
    imgs = [load_image(m.resolve(m[i].image)) for _, i in keys[:batch]]
    out["before_decode"] = cpu_ms(lambda: [load_image(m.resolve(m[i].image)) for _, i in keys[:batch]], batch, repeats)
    out["before_augment"] = cpu_ms(lambda: [tf(x, generator=make_generator(4, 1, 0, i)) for i, x in enumerate(imgs)],
                                   batch, repeats)
    out["before_noise"] = cpu_ms(lambda: [noise(tile, generator=make_generator(4, 2, 0, i)) for i in range(batch)],
                                 batch, repeats)
    return out


def audio_costs(manifest: Path, repeats: int) -> dict[str, float]:
    """ms per clip: read the WAV (what the workers do) vs slice a memory-mapped int16 store of the same clips."""
    from sslsan.audio import load_audio
    from sslsan.data.manifest import read_manifest

    m = read_manifest(manifest)
    paths = [m.resolve(s.audio) for s in m]
    clips = [load_audio(p) for p in paths]
    store = Path(tempfile.mkdtemp(prefix="sslsan_clipstore_")) / "clips.i16"
    offsets = np.cumsum([0] + [len(c) for c in clips])
    np.concatenate([np.round(c.numpy() * 32768).clip(-32768, 32767).astype("<i2") for c in clips]).tofile(store)
    mm = np.memmap(store, dtype="<i2", mode="r")

    def from_store():
        for i in range(len(paths)):
            torch.from_numpy(mm[offsets[i] : offsets[i + 1]].astype(np.float32) / 32768.0)

    out = {"wav_read": cpu_ms(lambda: [load_audio(p) for p in paths], len(paths), repeats),
           "mmap_read": cpu_ms(from_store, len(paths), repeats)}
    shutil.rmtree(store.parent, ignore_errors=True)
    return out


def large_frame_costs(root: Path, repeats: int) -> dict[str, float]:
    """ms per 1280x720 frame: load_image (full decode) and decode_crop with and without the reduced decode."""
    from sslsan.data.augment import decode_crop
    from sslsan.data.manifest import read_manifest
    from sslsan.data.transforms import load_image
    from sslsan.engine.data import train_image_transform
    from sslsan.utils.seed import make_generator

    m = read_manifest(write_data(root, 8, (720, 1280), seed=1))
    paths = [m.resolve(s.image) for s in m]
    tf = train_image_transform(paper_config())
    return {
        "full_decode": cpu_ms(lambda: [load_image(p) for p in paths], len(paths), repeats),
        "decode_crop_full": cpu_ms(lambda: [decode_crop(p, tf, make_generator(0, i), reduced_decode=False)
                                            for i, p in enumerate(paths)], len(paths), repeats),
        "decode_crop_reduced": cpu_ms(lambda: [decode_crop(p, tf, make_generator(0, i))
                                               for i, p in enumerate(paths)], len(paths), repeats),
    }


def device_costs(manifest: Path, batch: int, repeats: int) -> dict[str, float]:
    """ms per sample of the device side (`InputBuilder`), run on this CPU at the paper's settings."""
    from sslsan.data.manifest import read_manifest
    from sslsan.engine.data import TrainItems, collate_items
    from sslsan.engine.step import InputBuilder
    from sslsan.engine.streams import step_generator

    cfg = paper_config()
    dev = torch.device("cpu")
    m = read_manifest(manifest)
    items = TrainItems(m, cfg, train=True)
    b = collate_items([items[(0, i % len(m))] for i in range(batch)])
    builder = InputBuilder(cfg, dev)
    g = step_generator(4, 0, 0, 0)
    images = builder.image_aug
    no_noise = paper_config(noise_on="loader")
    return {
        "image_augment": cpu_ms(lambda: images(b["image"], b["aug"], host_params=b["aug"]), batch, repeats),
        "all_inputs": cpu_ms(lambda: builder(b, augment=True, generator=g), batch, repeats),
        "noise_draw": cpu_ms(lambda: builder._noise(b, g), batch, repeats),
        "all_inputs_no_noise": cpu_ms(lambda: InputBuilder(no_noise, dev)(
            {**b, "noise": torch.zeros(batch, cfg.audio.tile_samples)}, augment=True, generator=g), batch, repeats),
    }


def loader_rate(manifest: Path, workers: int, samples: int, batch: int) -> float:
    """samples/s through the training DataLoader (after), each worker on one thread."""
    from torch.utils.data import DataLoader, RandomSampler

    from sslsan.data.manifest import read_manifest
    from sslsan.engine.data import TrainItems, collate_items

    items = TrainItems(read_manifest(manifest), paper_config(), train=True)
    keys = [(0, int(i)) for i in RandomSampler(range(len(items)), replacement=True, num_samples=samples + batch)]
    loader = DataLoader(items, batch_size=batch, sampler=keys, num_workers=workers, collate_fn=collate_items,
                        worker_init_fn=(lambda _: torch.set_num_threads(1)) if workers else None, drop_last=True)
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    t = time.perf_counter()
    n = sum(len(b["index"]) for b in it)
    return n / (time.perf_counter() - t)


def table(title: str, values: dict[str, float], *, per_core: bool, rows: tuple[tuple[str, str], ...]) -> None:
    """Rows of ms per sample (and the samples/s one core gives at that cost)."""
    print("-" * WIDTH)
    print(f"{title:<52} {'ms':>8}" + (f" {'samples/s/core':>14}" if per_core else ""))
    for name, key in rows:
        print(f"{name:<52} {values[key]:>8.2f}" + (f" {1e3 / values[key]:>14.0f}" if per_core else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="a folder with train.jsonl (e.g. `sslsan prepare vggsound` output); default: generate")
    ap.add_argument("--clips", type=int, default=64, help="samples to generate when --data is not given (default 64)")
    ap.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    ap.add_argument("--repeats", type=int, default=3, help="timings per measurement; the best counts (default 3)")
    ap.add_argument("--workers", default="0,1", help="DataLoader worker counts to time end to end (default 0,1)")
    ap.add_argument("--samples", type=int, default=320, help="samples per DataLoader timing (default 320)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="sslsan_loader_bench_"))
    try:
        manifest = Path(args.data) / "train.jsonl" if args.data else write_data(work / "data", args.clips, (299, 299))
        load = os.getloadavg()
        print(f"data {manifest.parent}; {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
              f"affinity {sorted(os.sched_getaffinity(0))}; CPU ms per sample on one thread, best of {args.repeats}")
        w = worker_costs(manifest, args.batch, args.repeats)
        table(f"loader worker side (per file, 224 px, batch {args.batch})", w, per_core=True, rows=(
            ("before: decode + float augment + 10 s clip + noise", "before"),
            ("  of which JPEG decode (load_image)", "before_decode"),
            ("  of which MoCo-v2 augmentation in float", "before_augment"),
            ("  of which the 10 s noise clip", "before_noise"),
            ("after:  decode + uint8 crop + clip as read", "after")))
        print(f"{'speed-up of the worker side':<52} {w['before'] / w['after']:>7.1f}x")
        d = device_costs(manifest, args.batch, args.repeats)
        table("device side, batched, on this CPU (paper settings)", d, per_core=False, rows=(
            ("image: flip, jitter, gray, blur, normalise", "image_augment"),
            ("noise clips drawn (10 s)", "noise_draw"),
            ("all inputs: image + tile + mel + SpecAug + noise", "all_inputs"),
            ("all inputs, noise from the loader instead", "all_inputs_no_noise")))
        a = audio_costs(manifest, args.repeats)
        big = large_frame_costs(work / "large", args.repeats)
        print("-" * WIDTH)
        print(f"{'clip: read the 3 s WAV / slice a memory-mapped int16 store':<52} {a['wav_read']:>8.3f} / {a['mmap_read']:.3f}")
        print(f"{'1280x720 frame: full decode / decode_crop full / reduced':<52} {big['full_decode']:>8.2f} / "
              f"{big['decode_crop_full']:.2f} / {big['decode_crop_reduced']:.2f}")
        rates = []
        for n in sorted({int(x) for x in args.workers.split(",")}):
            rate = loader_rate(manifest, n, args.samples, args.batch)
            rates.append({"workers": n, "samples_per_s": round(rate, 1)})
            print(f"DataLoader (after), workers={n}: {rate:8.1f} samples/s (wall clock, machine shared)")
        if args.json:
            Path(args.json).write_text(json.dumps({"load_average": load, "worker_ms": w, "device_ms": d, "audio_ms": a,
                                                   "large_frame_ms": big, "loader": rates}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
