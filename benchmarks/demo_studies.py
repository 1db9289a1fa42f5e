"""The experiments behind docs/demo_results.md: the demo's recipe at three input sizes, the
training budget, and the Table-4 rows, trained and evaluated with the demo's own code.

Everything lands under --root (default benchmarks/results/demo_studies, git-ignored), laid out as
`sslsan demo` lays out its --out folder, one folder per input size: `px96/`, `px160/`, `px224/`
(each with its benchmark `data/`, `runs/<model>_seed<k>/`, `eval/<set>/<model>_seed<k>/`). So
`sslsan demo --out <root>/px224 --image-size 224 --seeds 0 1 2 train.threads=1` reuses these runs
and prints the findings at 224 px. Every step reuses what is finished; a killed step resumes.

    python benchmarks/demo_studies.py data --sizes 96 160 224          # the benchmark at each size
    python benchmarks/demo_studies.py train --size 224 --seeds 0 1 2   # SSL-SaN + SSL-TIE, evaluated
    python benchmarks/demo_studies.py train --size 96 --seeds 0 --variants s s_ls n n_ln s_n   # Table 4 rows
    python benchmarks/demo_studies.py budget --seeds 0 1 2 --epochs 5  # 96 px, a snapshot after each epoch
    python benchmarks/demo_studies.py report                           # the tables (markdown + JSON)

Runs use `train.threads=1` (two jobs side by side on a 2-core machine) and the demo's recipe
(`synth_cpu`: width 0.5, 3 epochs, batch 32) at every size: nothing is scaled down. Evaluations
cover the demo's test sets and the validation split (`synth-val`), which the diagnostics use.
Not part of the test suite: one size/seed/model takes 4-25 CPU-minutes.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from sslsan.demo import (EVAL_SETS, MAIN_VARIANTS, DemoOptions, evaluate_variant, prepare_data, run_dir_of,
                         train_variant, variant_config)
from sslsan.engine import ABLATIONS, train
from sslsan.engine.run import checkpoint_paths
from sslsan.models import read_checkpoint

ROOT = Path(__file__).resolve().parent / "results" / "demo_studies"
SIZES = (96, 160, 224)
DIAG_SET = "synth-val"
STUDY_OVERRIDES = ["train.threads=1"]


def options(args, size: int, seeds: list[int]) -> DemoOptions:
    """The demo's options for one input size, as `sslsan demo --out <root>/px<size> --image-size <size>`."""
    return DemoOptions(out=args.root / f"px{size}", seeds=seeds, image_size=size, preset=args.preset,
                       overrides=[*STUDY_OVERRIDES, *args.override], progress=False)


def snapshot_dir(run_dir: Path) -> Path:
    return run_dir / "snapshots"


def train_in_stages(variant: str, seed: int, data: Path, opts: DemoOptions, run_dir: Path, epochs: int,
                    calibrate_at: int | None) -> None:
    """Train `run_dir` one epoch at a time up to `epochs`, copying latest.pt to snapshots/epoch<k>.pt after
    each. Resuming is exact (DECISIONS D13), so epoch k of this run is epoch k of an uninterrupted one.
    The universal threshold is calibrated once, after epoch `calibrate_at` (as `sslsan demo` does after
    its last epoch)."""
    latest, _ = checkpoint_paths(run_dir)
    snaps = snapshot_dir(run_dir)
    for k in range(1, epochs + 1):
        snap = snaps / f"epoch{k}.pt"
        if snap.exists():
            continue
        done = int(read_checkpoint(latest).get("epoch", 0)) if latest.exists() else 0
        if done < k:
            cfg = variant_config(variant, seed, data, opts,
                                 (f"train.epochs={k}", f"eval.calibrate_threshold={str(k == calibrate_at).lower()}"))
            print(f"[studies] {run_dir.name}: epoch {k}", file=sys.stderr, flush=True)
            train(cfg, run_dir, device="cpu", resume=latest.exists(), progress=False)
        snaps.mkdir(exist_ok=True)
        shutil.copyfile(latest, snap)


def cmd_data(args) -> None:
    for size in args.sizes:
        prepare_data(options(args, size, [0]))


def cmd_train(args) -> None:
    opts = options(args, args.size, args.seeds)
    data = prepare_data(opts)
    for seed in args.seeds:
        for v in args.variants:
            run_dir = train_variant(v, seed, data, opts, "cpu")
            for ds in (*EVAL_SETS, DIAG_SET):
                evaluate_variant(run_dir, ds, data, opts, "cpu")


def cmd_budget(args) -> None:
    """96 px SSL-SaN and SSL-TIE with a snapshot after every epoch: epochs 1-3 are the demo's own runs
    (trained in stages in px96/runs), epochs 4.. continue a copy in px96/budget/; each snapshot is
    evaluated on the validation split."""
    opts = options(args, 96, args.seeds)
    data = prepare_data(opts)
    demo_epochs = variant_config(MAIN_VARIANTS[0], 0, data, opts).train.epochs
    for seed in args.seeds:
        for v in args.variants:
            run_dir = run_dir_of(v, seed, opts)
            train_in_stages(v, seed, data, opts, run_dir, demo_epochs, calibrate_at=demo_epochs)
            for ds in (*EVAL_SETS, DIAG_SET):
                evaluate_variant(run_dir, ds, data, opts, "cpu")
            longer = opts.out / "budget" / run_dir.name
            if args.epochs > demo_epochs and not (snapshot_dir(longer) / f"epoch{args.epochs}.pt").exists():
                if not longer.exists():
                    shutil.copytree(run_dir, longer)
                train_in_stages(v, seed, data, opts, longer, args.epochs, calibrate_at=None)
            for k in range(1, args.epochs + 1):
                src = snapshot_dir(run_dir if k <= demo_epochs else longer) / f"epoch{k}.pt"
                evaluate_variant(run_dir, DIAG_SET, data, opts, "cpu", checkpoint=src,
                                 out=opts.out / "budget_eval" / DIAG_SET / f"{run_dir.name}_epoch{k}")


def cmd_report(args) -> None:
    from demo_study_tables import write_tables  # noqa: PLC0415 (numpy-only analysis, next to this file)

    write_tables(args.root)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=ROOT, help=f"where everything lands (default {ROOT})")
    p.add_argument("--preset", default="default", choices=["default", "tiny"], help="benchmark size (tiny: a smoke run)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="extra training override for every run (a smoke run: model.width=0.125 ...)")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data", help="generate the benchmark at each size")
    d.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    t = sub.add_parser("train", help="train and evaluate demo models at one size")
    t.add_argument("--size", type=int, required=True)
    t.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    t.add_argument("--variants", nargs="+", default=list(MAIN_VARIANTS), choices=list(ABLATIONS))
    b = sub.add_parser("budget", help="96 px SSL-SaN / SSL-TIE with a snapshot after every epoch")
    b.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    b.add_argument("--variants", nargs="+", default=list(MAIN_VARIANTS), choices=list(ABLATIONS))
    b.add_argument("--epochs", type=int, default=5)
    sub.add_parser("report", help="the tables of docs/demo_results.md from what is there")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # evaluation too: two studies share a 2-core machine
    {"data": cmd_data, "train": cmd_train, "budget": cmd_budget, "report": cmd_report}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
