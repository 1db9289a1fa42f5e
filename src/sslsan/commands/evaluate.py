"""`sslsan evaluate`: run a checkpoint on a test set with positive, silence, noise and offscreen audio."""

from __future__ import annotations

import argparse
from pathlib import Path

from sslsan.commands import (
    DEVICE_HELP,
    CommandParser,
    add_policy_argument,
    method_help,
    non_negative_int,
    positive_int,
)
from sslsan.data.registry import DATASETS
from sslsan.evaluation.eval_config import EvaluationConfig
from sslsan.metrics.thresholds import UNIVERSAL_MODES

DEFAULT = EvaluationConfig()


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="sslsan evaluate",
        description="Evaluate a checkpoint on a test set: maps for positive and negative audio, the universal "
        "threshold, every metric of the paper's Tables 1-3, Fig. 1/2. Writes maps.npz, metrics.json, report.md.",
    )
    p.add_argument("--checkpoint", required=True, help="model checkpoint (.pt): ours, or a method's original file")
    p.add_argument("--method", metavar="NAME", help=method_help(
        "the method the checkpoint must be of (ours name their own; needed for an original file no reader "
        "recognises alone)"))
    add_policy_argument(p)
    p.add_argument("--dataset", required=True, choices=sorted(DATASETS), help="test set name (sslsan.data.registry)")
    p.add_argument("--data-root", required=True, help="folder that `sslsan data synth` / `sslsan prepare` wrote")
    p.add_argument("--repetitions", type=positive_int, default=DEFAULT.repetitions,
                   help="repetitions of the negatives (noise and offscreen redrawn each time; the paper uses 10)")
    p.add_argument("--threshold", default=DEFAULT.threshold,
                   help="universal threshold: a number; 'auto' = the checkpoint's stored one (a released file: the one "
                   "published for its --policy, if any), else calibrated on the dataset's calibration split, else on "
                   "the test set itself (the report says which); 'calibrate' = calibrated even when one is stored")
    p.add_argument("--threshold-mode", choices=list(UNIVERSAL_MODES), default=DEFAULT.threshold_mode,
                   help="calibration rule (DECISIONS D6): max over negative types of the per-type Q3 of the "
                   "per-sample maxima (per_type), or the Q3 of all negatives pooled")
    p.add_argument("--negatives-linear", action="store_true",
                   help="feed silence/noise to the model as linear mel power (the vssl_eval convention) instead of "
                   "through the same dB front-end as positives (DECISIONS D1 default)")
    p.add_argument("--noise-pool", type=positive_int, default=DEFAULT.noise_pool, metavar="K",
                   help="speed option, not the reference protocol: draw only K noise clips per repetition, shared "
                   "by all samples (default: one clip per sample)")
    p.add_argument("--out", default=None, help="output folder (default: <run>/eval_<dataset> for <run>/checkpoints/best.pt; "
                   "eval_<dataset>_<stem> for other checkpoints). Written at the end as a whole: an earlier "
                   "evaluation there is replaced, a folder holding other files is refused")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT.batch_size, help="samples per forward pass")
    p.add_argument("--workers", type=non_negative_int, default=DEFAULT.workers, help="DataLoader worker processes for decoding files")
    p.add_argument("--seed", type=int, default=DEFAULT.seed, help="seed of the noise and offscreen draws")
    p.add_argument("--offscreen", default=DEFAULT.offscreen,
                   help="offscreen.json of an earlier run on the same test set: reuse its offscreen assignment")
    p.add_argument("--absolute-prediction", action="store_true",
                   help="SLAVC's extended protocol (sets with non-sounding pairs, e.g. vggss-ext): threshold the scores "
                   "at 0.5 instead of SLAVC's --relative_prediction (the default: its published numbers need it)")
    p.add_argument("--figure-examples", type=non_negative_int, default=DEFAULT.figure_examples, help="number of Fig. 2 overlay examples")
    p.add_argument("--name", default=None, help="model name in the report (default: the run folder name)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sslsan.evaluation.evaluate import default_out_dir, evaluate_checkpoint
    from sslsan.evaluation.report import TABLE2, protocol_sections, table

    out = Path(args.out) if args.out else default_out_dir(args.checkpoint, args.dataset)
    cfg = EvaluationConfig(repetitions=args.repetitions, seed=args.seed, threshold=args.threshold,
                           threshold_mode=args.threshold_mode, negatives_in_db=False if args.negatives_linear else None,
                           noise_pool=args.noise_pool, batch_size=args.batch_size, workers=args.workers,
                           figure_examples=args.figure_examples, offscreen=args.offscreen,
                           relative_prediction=not args.absolute_prediction)
    m = evaluate_checkpoint(args.checkpoint, args.dataset, args.data_root, out, cfg, device=args.device, name=args.name,
                            method=args.method, policy=args.policy, progress=not args.no_progress)
    print(table({m["model"]: m}, TABLE2, "model"))
    if m.get("extended") or m.get("instance"):
        print("\n" + "\n".join(protocol_sections({m["model"]: m}, "#")).rstrip())
    print(f"\nU_th = {m['threshold']:.4f} ({m['threshold_info']['source']}); report: {out / 'report.md'}")
    return 0
