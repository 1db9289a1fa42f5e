"""The `sslsan` command: a thin dispatcher over subcommand modules.

Each subcommand lives in its own module exposing ``main(argv: list[str] | None) -> int``;
modules are imported only when their command runs, so `sslsan --help` is instant.
"""

from __future__ import annotations

import importlib
import sys

from sslsan import __version__

# command words -> (module, one-line description)
COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("demo",): ("sslsan.demo", "generate the embedded benchmark, train SSL-SaN and SSL-TIE, compare them"),
    ("data", "synth"): ("sslsan.data.synthetic_cli", "write the embedded synthetic audio-visual benchmark"),
    ("data", "show"): ("sslsan.data.show", "render a contact sheet of a prepared dataset"),
    ("data", "overlap"): ("sslsan.data.overlap", "report clips shared by a training and a test manifest"),
    ("prepare",): ("sslsan.data.prepare.cli", "prepare VGGSound / VGG-SS / IS3 / IS3+ / S4 into manifests"),
    ("train",): ("sslsan.engine.train_cli", "train a localizer (SSL-SaN, SSL-TIE or an ablation)"),
    ("evaluate",): ("sslsan.evaluation.evaluate_cli", "run a checkpoint on a test set with negative audio"),
    ("score",): ("sslsan.evaluation.score_cli", "recompute every metric from a saved maps.npz"),
    ("compare",): ("sslsan.evaluation.compare_cli", "put several evaluation runs side by side"),
    ("localize",): ("sslsan.evaluation.localize_cli", "localize the sound of your own image + audio"),
    ("serve",): ("sslsan.serve.cli", "a local web page: drop an image + audio (or a video), see where the sound is"),
}


def _usage() -> str:
    width = max(len(" ".join(words)) for words in COMMANDS)
    lines = [
        f"sslsan {__version__}: visual sound source localization with negative audio (SSL-SaN).",
        "",
        "usage: sslsan COMMAND [options]      (sslsan COMMAND --help for its options)",
        "",
        "commands:",
    ]
    for words, (_, text) in COMMANDS.items():
        lines.append(f"  {' '.join(words):<{width}}  {text}")
    return "\n".join(lines)


def _match(argv: list[str]) -> tuple[tuple[str, ...], list[str]] | None:
    for n in (2, 1):
        key = tuple(argv[:n])
        if key in COMMANDS:
            return key, argv[n:]
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        print(f"sslsan {__version__}")
        return 0
    found = _match(argv)
    if found is None:
        groups = sorted({w[0] for w in COMMANDS if len(w) > 1})
        if argv[0] in groups:
            subs = [w[1] for w in COMMANDS if w[0] == argv[0] and len(w) > 1]
            print(f"sslsan {argv[0]}: choose one of: {', '.join(subs)}", file=sys.stderr)
        else:
            print(f"sslsan: unknown command {argv[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    words, rest = found
    module = importlib.import_module(COMMANDS[words][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
