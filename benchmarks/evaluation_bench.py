"""Benchmark: `evaluate_checkpoint` end to end on real JPEG + WAV files.

Writes N test + N/4 validation samples (JPEG frames, 3 s WAV clips, boxes, 8 categories), a
randomly initialised Localizer at the demo's scale (width 0.5, 96 px images, 64-mel spectrograms of
128 frames) saved with save_checkpoint, then times the whole evaluation with R repetitions of the
negatives: calibration on the validation split, both inference passes, scoring, figures.

    PYTHONPATH=src python benchmarks/evaluation_bench.py [--samples 200] [--repetitions 10] [--width 0.5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def write_split(root: Path, name: str, n: int, seed: int) -> None:
    import av
    from PIL import Image

    from sslsan.data.manifest import Sample, write_manifest

    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        cat = f"c{i % 8}"
        sid = f"{name}{i:05d}"
        img = (rng.random((120, 160, 3)) * 255).astype(np.uint8)
        Image.fromarray(img).save(root / f"{sid}.jpg", quality=85)
        t = np.arange(48000) / 16000
        wave = (0.3 * np.sin(2 * np.pi * (200 + 150 * (i % 8)) * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
        with av.open(str(root / f"{sid}.wav"), "w") as out:
            st = out.add_stream("pcm_s16le", rate=16000, layout="mono")
            frame = av.AudioFrame.from_ndarray((wave * 32767).astype(np.int16)[None], format="s16", layout="mono")
            frame.sample_rate = 16000
            for p in st.encode(frame):
                out.mux(p)
            for p in st.encode(None):
                out.mux(p)
        x, y = rng.uniform(0, 0.5, 2)
        samples.append(Sample(id=sid, image=f"{sid}.jpg", audio=f"{sid}.wav", boxes=[[x, y, x + 0.4, y + 0.4]], category=cat,
                              scene_categories=[cat]))
    write_manifest(root / f"{name}.jsonl", samples)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--repetitions", type=int, default=10)
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()

    from sslsan.audio import AudioConfig
    from sslsan.evaluation import evaluate_checkpoint
    from sslsan.methods import get_method
    from sslsan.methods.checkpoint import save_checkpoint
    from sslsan.models import Localizer, ModelConfig

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    audio = AudioConfig(clip_seconds=3.0, tile_seconds=3.0, n_fft=512, hop_length=376, n_mels=64)  # 64 x 128
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.time()
        write_split(root, "test_vggss", args.samples, 0)
        write_split(root, "val", max(8, args.samples // 4), 1)
        torch.manual_seed(0)
        ckpt = save_checkpoint(root / "best.pt", Localizer(ModelConfig(width=args.width)),
                               get_method("ssl_san").inference_spec(audio, args.image_size))
        print(f"data: {args.samples} + {max(8, args.samples // 4)} samples written in {time.time() - t0:.1f} s")
        t0 = time.time()
        m = evaluate_checkpoint(ckpt, "synth-vggss", root, root / "eval", repetitions=args.repetitions,
                                batch_size=args.batch_size, progress=False)
        dt = time.time() - t0
    n_cal = max(8, args.samples // 4)
    entries = (args.samples + n_cal) * (1 + args.repetitions)
    print(f"evaluate: {args.samples} test samples (+{n_cal} calibration), R={args.repetitions}, width {args.width}, "
          f"{args.image_size} px, map {m['map_size']}: {dt:.1f} s total, {entries / dt:.0f} audio+image entries/s, "
          f"threads={torch.get_num_threads()}")
    print(f"U_th={m['threshold']:.4f} ({m['threshold_info']['source']}); cIoU_U={m['localization']['ciou_u']:.2f} "
          f"FLOC={m['localization']['floc']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
