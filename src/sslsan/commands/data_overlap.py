"""`sslsan data overlap TRAIN TEST`: clips a training manifest shares with a test manifest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sslsan.commands import CommandParser, non_negative_int
from sslsan.utils.io import atomic_write_text


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="sslsan data overlap",
                      description="Report test clips that also occur in a training manifest: by clip id "
                                  "and by YouTube video id (timestamps ignored).")
    p.add_argument("train", help="training manifest (e.g. OUT/train.jsonl of `sslsan prepare vggsound`), or a plain "
                                 "id list (.txt/.csv, e.g. a public 144K list) to check before preparing")
    p.add_argument("test", help="test manifest (e.g. OUT/vggss.jsonl)")
    p.add_argument("--json", help="also save the full lists to this JSON file")
    p.add_argument("--show", type=non_negative_int, default=10, help="how many overlapping ids to print (default 10)")
    p.add_argument("--fail-on-overlap", action="store_true", help="exit with status 1 when any clip is shared")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sslsan.data.overlap import overlap_files

    result = overlap_files(args.train, args.test)
    print(f"train {result.train}: {result.n_train} clips; test {result.test}: {result.n_test} clips")
    print(f"  same clip id:       {len(result.same_id):>7} test clips ({result.pct(len(result.same_id))})")
    print(f"  same YouTube video: {len(result.same_video):>7} test clips ({result.pct(len(result.same_video))})")
    for sid in result.same_video[:args.show]:
        print(f"    {sid}{'  (same id)' if sid in set(result.same_id) else ''}")
    if len(result.same_video) > args.show:
        print(f"    ... {len(result.same_video) - args.show} more" + ("" if args.json else " (--json FILE lists all)"))
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(result.to_dict(), indent=1) + "\n")
        print(f"  saved {args.json}")
    return 1 if (args.fail_on_overlap and result.same_video) else 0
