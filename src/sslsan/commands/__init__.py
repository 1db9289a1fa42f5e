"""The `sslsan` commands, one module each: `build_parser()` and `main(argv) -> int`, which parses the
arguments and makes one library call.

Commands do not catch errors: `sslsan.cli`, the dispatcher, turns every user error (bad input file,
setting or value) into one line on stderr and exit status 2, once for all commands. A command may name
`ON_INTERRUPT`, the hint printed when Ctrl-C stops it. A command's `main` parses its arguments before
it imports the library it calls, so `--help` and a bad argument never wait for torch to load.
"""

from __future__ import annotations

import argparse

DEVICE_HELP = "torch device: auto (CUDA when available, else the CPU), cpu, cuda or cuda:N (default: auto)"


def method_help(what: str) -> str:
    """--method's help: `what` it does, then the known names (sslsan.methods.BUILTIN: no torch import)."""
    from sslsan.methods import method_names

    return f"{what}; one of: {', '.join(method_names())} (docs/methods.md)"


class CommandParser(argparse.ArgumentParser):
    """argparse with a one-line error (`sslsan CMD: error: MESSAGE (see --help)`), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_policy_argument(p: argparse.ArgumentParser) -> None:
    """--policy: the front-end policy of an original checkpoint file (sslsan.methods.base.POLICIES)."""
    p.add_argument("--policy", choices=["original", "vssl_eval"], default=None,
                   help="front-end policy of an original checkpoint file: the authors' own repository (original), or "
                   "the SSL-SaN authors' evaluation code (vssl_eval: the paper's Table 2, with its published "
                   "universal threshold where there is one); default: original; docs/methods.md lists the differences")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: must be 0 or more")
    return value


def unit_float(text: str) -> float:
    """argparse type: a number in [0, 1] (thresholds)."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text}: must be a number in [0, 1]")
    return value
