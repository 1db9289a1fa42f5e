"""`sslsan data show DIR`: a contact sheet of a prepared dataset, as the model will see it."""

from __future__ import annotations

import argparse

from sslsan.commands import CommandParser, positive_int


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="sslsan data show",
        description="Render a contact sheet PNG of a dataset: each frame with its mask contour and boxes, "
        "the clip's category, and a log-mel spectrogram of the clip.",
    )
    p.add_argument("dir", metavar="DIR", help="a data root written by `sslsan data synth`/`prepare`, or a manifest .jsonl file")
    p.add_argument("--manifest", default=None, metavar="NAME",
                   help="manifest inside DIR to show, e.g. test_is3 or train.jsonl (default: the first of "
                   "test_vggss, test_is3, val, train that exists)")
    p.add_argument("--n", type=positive_int, metavar="N", default=16, help="number of samples to show (default 16)")
    p.add_argument("--cols", type=positive_int, metavar="N", default=4, help="cells per row (default 4)")
    p.add_argument("--seed", type=int, metavar="S", default=None,
                   help="show a seeded random subset instead of the first N samples")
    p.add_argument("--n-mels", type=positive_int, metavar="N", default=64,
                   help="mel bins of the displayed spectrograms (default 64)")
    p.add_argument("--out", default=None, metavar="PNG",
                   help="output PNG (default: contact_<manifest name>.png next to the manifest)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sslsan.data.show import show_dataset

    written = show_dataset(args.dir, args.manifest, n=args.n, cols=args.cols, seed=args.seed, n_mels=args.n_mels,
                           out=args.out)
    print(f"wrote {written}")
    return 0
