"""`sslsan compare RUN...`: several evaluation runs side by side (how the ablation, Table 4, is made)."""

from __future__ import annotations

import argparse

from sslsan.commands import CommandParser
from sslsan.utils.io import atomic_write_text


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="sslsan compare",
        description="Put evaluation runs side by side: Tables 1-3 and the ablation layout of Table 4.",
    )
    p.add_argument("runs", nargs="+", help="evaluation output folders (holding metrics.json) or metrics.json files")
    p.add_argument("--names", nargs="+", default=None, help="row names, one per run (default: folder names)")
    p.add_argument("--out", default=None, help="also write the Markdown to this file")
    p.add_argument("--figure", default=None,
                   help="also draw Fig. 1 (max-similarity distributions) of every run side by side into this PNG "
                   "(needs each run's maps.npz)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sslsan.evaluation.report import compare_figure, compare_runs

    text = compare_runs(args.runs, args.names)
    if args.out:
        atomic_write_text(args.out, text)
    if args.figure:
        text += f"\nFig. 1 of every run: {compare_figure(args.runs, args.names, args.figure)}\n"
    print(text)
    return 0

