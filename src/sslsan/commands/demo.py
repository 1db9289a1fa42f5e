"""`sslsan demo`: generate the embedded benchmark, train SSL-SaN and SSL-TIE, evaluate and compare them."""

from __future__ import annotations

import argparse
from pathlib import Path

from sslsan.commands import DEVICE_HELP, CommandParser, positive_int
from sslsan.methods import BUILTIN
from sslsan.evaluation.eval_config import EvaluationConfig

ON_INTERRUPT = "finished steps are kept; the same command continues from them"


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="sslsan demo",
        description="Generate the embedded benchmark, train SSL-SaN and the SSL-TIE baseline with the same seed, "
        "data and budget, evaluate both with positive, silence, noise and offscreen audio, and write a report "
        "(the paper's tables side by side, Fig. 1, Fig. 2, logs). Re-running reuses finished steps.",
    )
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="report directory (default demo_out)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, metavar="S",
                   help="training seeds (default: 0); several give mean ± std, e.g. --seeds 0 1 2")
    p.add_argument("--n-seeds", type=positive_int, default=None, help="shorthand for --seeds 0 1 ... N-1")
    p.add_argument("--data-seed", type=int, default=0, metavar="N",
                   help="seed of the generated benchmark (default 0); another N draws other scenes and sounds, so a "
                   "finding can be checked on more than one draw of the data")
    p.add_argument("--ablation", action="store_true", help="also train the other five rows of the paper's Table 4")
    p.add_argument("--methods", nargs="+", metavar="NAME", default=None,
                   help="base methods to train, each without and with silence/noise (default: ssl_tie, i.e. SSL-TIE vs "
                   "SSL-SaN); e.g. --methods ssl_tie ezvsl lvs. Known: " + ", ".join(BUILTIN))
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--preset", default="default", choices=["default", "tiny"],
                   help="benchmark size: default (3000 training scenes) or tiny (seconds; for smoke tests)")
    p.add_argument("--image-size", type=int, default=96, help="frame size of the benchmark and the model input (default 96)")
    p.add_argument("--repetitions", type=positive_int, default=EvaluationConfig.repetitions,
                   help=f"negative-audio repetitions in evaluation (default {EvaluationConfig.repetitions})")
    p.add_argument("--workers", type=positive_int, default=None, help="processes for data generation (default: CPUs, at most 8)")
    p.add_argument("--diagnostics", action="store_true",
                   help="add diagnostic views to report.md (not metrics of the paper): cIoU_A with map cells at their "
                   "receptive-field centres, Alignment/Magnitude split into shared and paired parts, retrieval biases")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value",
                   help="training config overrides applied to every model (e.g. train.epochs=4)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sslsan.demo import DemoOptions, run_demo

    seeds = args.seeds if args.seeds is not None else (list(range(args.n_seeds)) if args.n_seeds else [0])
    methods = {"methods": args.methods} if args.methods else {}
    opts = DemoOptions(out=args.out, seeds=seeds, data_seed=args.data_seed, ablation=args.ablation, **methods,
                       device=args.device,
                       preset=args.preset, image_size=args.image_size, repetitions=args.repetitions,
                       workers=args.workers, overrides=args.overrides, progress=not args.no_progress,
                       diagnostics=args.diagnostics)
    run_demo(opts)
    return 0
