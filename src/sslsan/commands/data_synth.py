"""`sslsan data synth`: write the embedded synthetic audio-visual benchmark (see sslsan.data.synthetic)."""

from __future__ import annotations

import argparse
import time

from sslsan.commands import CommandParser, positive_int
from sslsan.data.synthetic import PRESETS, SynthConfig, preset_config

ON_INTERRUPT = "the folder is incomplete (dataset.json says so); run the same command with --overwrite"

_D = SynthConfig()


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="sslsan data synth",
        description="Write the embedded benchmark: procedural scenes (JPEG frames, 3 s 16 kHz mono WAV clips, "
        "PNG masks) and the manifests train.jsonl, val.jsonl, test_vggss.jsonl (one sounding object) and "
        "test_is3.jsonl (two objects per image, one annotation per sound), plus dataset.json. "
        "The same seed gives byte-identical output for any number of workers.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created; must be empty unless --overwrite)")
    p.add_argument("--seed", type=int, metavar="S", default=_D.seed, help=f"generator seed (default {_D.seed})")
    p.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="size preset: 'default' (3000/300/500/250 scenes at 224 px) or 'tiny' (a few dozen "
                   "64 px items in seconds, for tests); the options below override it")
    p.add_argument("--n-train", type=int, metavar="N", default=None, help=f"training scenes (default {_D.n_train})")
    p.add_argument("--n-val", type=int, metavar="N", default=None, help=f"validation scenes, for model selection and threshold calibration (default {_D.n_val})")
    p.add_argument("--n-test-vggss", type=int, metavar="N", default=None,
                   help=f"test scenes of the VGG-SS-like protocol, one sounding object each (default {_D.n_test_vggss})")
    p.add_argument("--n-test-is3", type=int, metavar="N", default=None,
                   help=f"test images of the IS3-like protocol; each gives two samples (default {_D.n_test_is3})")
    p.add_argument("--image-size", type=int, metavar="PX", default=None, help=f"square frame side in pixels (default {_D.image_size})")
    p.add_argument("--n-categories", type=int, metavar="K", default=None, help=f"sound categories, 2-12 (default {_D.n_categories})")
    p.add_argument("--max-objects", type=int, metavar="K", default=None, help=f"most objects per train/val/VGG-SS scene, 1-3 (default {_D.max_objects})")
    p.add_argument("--snr-db", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help=f"range of the sound-to-ambience ratio in dB (default {_D.snr_db[0]:g} {_D.snr_db[1]:g})")
    p.add_argument("--jpeg-quality", type=int, metavar="Q", default=None, help=f"JPEG quality of the frames (default {_D.jpeg_quality})")
    p.add_argument("--workers", type=positive_int, metavar="N", default=None,
                   help="worker processes (default: the usable CPUs, at most 8); does not change the output")
    p.add_argument("--overwrite", action="store_true", help="replace a benchmark previously written to --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sslsan.data.synthetic import default_workers, generate_dataset

    cfg = preset_config(
        args.preset,
        seed=args.seed,
        n_train=args.n_train,
        n_val=args.n_val,
        n_test_vggss=args.n_test_vggss,
        n_test_is3=args.n_test_is3,
        image_size=args.image_size,
        n_categories=args.n_categories,
        max_objects=args.max_objects,
        snr_db=tuple(args.snr_db) if args.snr_db else None,
        jpeg_quality=args.jpeg_quality,
    )
    workers = default_workers() if args.workers is None else args.workers
    start = time.perf_counter()
    meta = generate_dataset(cfg, args.out, workers=workers, overwrite=args.overwrite, progress=not args.no_progress)
    sizes = ", ".join(f"{k} {v}" for k, v in meta["sizes"].items())
    print(f"wrote {args.out}: {sizes} ({time.perf_counter() - start:.1f} s, {workers} workers)")
    return 0
