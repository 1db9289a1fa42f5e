"""`sslsan train`: train a localizer from a config (a shipped name or a YAML path) plus overrides."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sslsan.commands import DEVICE_HELP, CommandParser, method_help
from sslsan.config import ConfigError, resolve_config_path
from sslsan.engine.ablations import ABLATIONS, ablation_overrides

ON_INTERRUPT = "continue with --resume (the last finished epoch is in checkpoints/latest.pt)"

EPILOG = """\
examples:
  sslsan data synth --out data/synth && sslsan train --config synth_cpu data.root=data/synth
  sslsan train --config synth_cpu --method ezvsl data.root=data/synth                 (EZ-VSL)
  sslsan train --config synth_cpu --method ezvsl --ablation ssl_san data.root=data/synth   (EZ-VSL + silence/noise)
  sslsan train --config vggsound144k data.root=data/vggsound --device cuda
  sslsan train --config vggsound144k --ablation ssl_tie data.root=data/vggsound   (Table 4 row 1: SSL-TIE)
  sslsan train --config synth_cpu --ablation ssl_tie data.root=data/synth   (SSL-TIE on the embedded benchmark)
  sslsan train --run-dir runs/x --resume               (continue an interrupted run)
  torchrun --nproc_per_node=4 -m sslsan train --config vggsound144k data.root=...   (DDP)

shipped configs: vggsound144k (the paper's recipe), synth_cpu (embedded benchmark on a CPU).
--method NAME trains a registered method (default: the config's, ssl_san); its model/objective sections
and audio front-end start from the method's own. --ablation ROW applies a row of the paper's Table 4 (the
san.use_*/loss_* switches) on top, for any method; overrides still win. train.batch_size is the global batch (split over DDP processes). The run directory receives config.yaml, run.json, log.jsonl, checkpoints/latest.pt,
checkpoints/best.pt (lowest validation loss) and threshold.json.
"""


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="sslsan train",
        description="Train a sound source localizer (SSL-SaN, SSL-TIE, another registered method, with or without "
        "silence/noise, or a Table-4 ablation).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="a shipped config name (e.g. synth_cpu) or a YAML file; "
                   "with --resume, defaults to the run directory's config.yaml")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value",
                   help="config overrides, e.g. train.epochs=5 data.root=data/synth san.use_noise=false")
    p.add_argument("--run-dir", type=Path, help="output folder (default: runs/<config>-<UTC time>)")
    p.add_argument("--data-root", help="shorthand for the override data.root=DIR")
    p.add_argument("--method", metavar="NAME", help=method_help("the method to train (the override method=NAME)"))
    p.add_argument("--ablation", metavar="ROW", choices=list(ABLATIONS),
                   help=f"a row of the paper's Table 4: {', '.join(ABLATIONS)} (ssl_tie = the baseline, ssl_san = "
                   "the full method)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from checkpoints/latest.pt")
    p.add_argument("--device", help=DEVICE_HELP.replace("default: auto", "default: the config's train.device, auto"))
    p.add_argument("--no-progress", action="store_true", help="no progress bars (they are off anyway when not on a terminal)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)  # overrides may come before or after the flags
    from sslsan.config import load_config
    from sslsan.engine import TrainConfig, train
    from sslsan.engine.distributed import cleanup_distributed

    overrides = ([f"method={args.method}"] if args.method else []) + \
        (ablation_overrides(args.ablation) if args.ablation else []) + list(args.overrides)
    if args.data_root is not None:
        overrides.append(f"data.root={args.data_root}")
    config = args.config
    if config is None:
        if not (args.resume and args.run_dir is not None):
            raise ConfigError("give --config CONFIG (or --run-dir DIR --resume to continue a run)")
        config = args.run_dir / "config.yaml"
        if not config.exists():
            raise ConfigError(f"{config}: no config in the run directory to resume from")
    cfg = load_config(TrainConfig, config, overrides)
    run_dir = args.run_dir
    if run_dir is None:
        if args.resume:
            raise ConfigError("--resume needs --run-dir")
        stem = resolve_config_path(config).stem + (f"-{args.method}" if args.method else "") + \
            (f"-{args.ablation}" if args.ablation else "")
        run_dir = Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    try:
        out = train(cfg, run_dir, device=args.device, resume=args.resume, progress=False if args.no_progress else None)
    finally:
        cleanup_distributed()
    print(f"run directory: {out}")
    return 0
