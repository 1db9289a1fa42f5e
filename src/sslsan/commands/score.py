"""`sslsan score maps.npz`: recompute every metric from saved maps alone (layout: docs/maps_npz.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sslsan.commands import CommandParser, unit_float
from sslsan.utils.io import atomic_write_text


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="sslsan score",
        description="Recompute every metric (Tables 1-3) from a maps.npz, e.g. one written by `sslsan evaluate` "
        "or by any other model in the documented layout (docs/maps_npz.md).",
    )
    p.add_argument("maps", help="maps.npz file")
    p.add_argument("--threshold", type=unit_float, default=None,
                   help="universal threshold in [0, 1] (default: the file's 'threshold')")
    p.add_argument("--out", default=None, help="write the metrics as JSON to this file")
    p.add_argument("--markdown", default=None, help="write the Markdown report to this file")
    p.add_argument("--json", action="store_true", help="print JSON instead of the Markdown tables")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sslsan.evaluation.report import run_report, write_metrics
    from sslsan.evaluation.scoring import score_maps

    m = score_maps(args.maps, args.threshold)
    m.setdefault("model", Path(args.maps).parent.name or Path(args.maps).stem)
    if args.out:
        write_metrics(args.out, m)
    report = run_report(m, f"Scores of {args.maps}")
    if args.markdown:
        atomic_write_text(args.markdown, report)
    print(json.dumps(m, indent=1) if args.json else report)
    return 0

