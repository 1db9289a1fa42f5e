"""The `sslsan` command: a thin dispatcher over `sslsan.commands`, and the one error boundary.

Each command lives in `sslsan.commands.<name>` exposing ``main(argv: list[str] | None) -> int``;
modules are imported only when their command runs, so `sslsan --help` is instant. Whatever the
command, a user error (a bad file, folder, setting or value: the project's errors are `ValueError`s,
plus `OSError`s and PIL's decompression-bomb error) ends as one line on stderr,
``sslsan CMD: error: <file or value>: <what is wrong>``, and exit status 2; warnings are one line
``sslsan CMD: warning: ...``; Ctrl-C exits 130 with the command's hint. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import sys
import warnings
from collections.abc import Iterator

from sslsan import __version__

# command words -> (module, one-line description)
COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("demo",): ("sslsan.commands.demo", "generate the embedded benchmark, train SSL-SaN and SSL-TIE, compare them"),
    ("data", "synth"): ("sslsan.commands.data_synth", "write the embedded synthetic audio-visual benchmark"),
    ("data", "show"): ("sslsan.commands.data_show", "render a contact sheet of a prepared dataset"),
    ("data", "overlap"): ("sslsan.commands.data_overlap", "report clips shared by a training and a test manifest"),
    ("prepare",): ("sslsan.commands.prepare", "prepare VGGSound / VGG-SS / IS3 / IS3+ / S4 into manifests"),
    ("train",): ("sslsan.commands.train", "train a localizer (SSL-SaN, SSL-TIE or an ablation)"),
    ("evaluate",): ("sslsan.commands.evaluate", "run a checkpoint on a test set with negative audio"),
    ("score",): ("sslsan.commands.score", "recompute every metric from a saved maps.npz"),
    ("compare",): ("sslsan.commands.compare", "put several evaluation runs side by side"),
    ("localize",): ("sslsan.commands.localize", "localize the sound of your own image + audio"),
    ("serve",): ("sslsan.commands.serve", "a local web page: drop an image + audio (or a video), see where the sound is"),
}

# torch re-raises an exception of a DataLoader worker as "Caught X in DataLoader worker process N."
# followed by the worker's traceback; the last line of that traceback is "module.X: <message>".
_WORKER = re.compile(r"^Caught \w+ in DataLoader worker process \d+")
_TRACEBACK_LAST = re.compile(r"^[\w.]+: (.*)$")


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


def _first_line(text: str) -> str:
    """The first line of a message; for an error re-raised from a DataLoader worker, the worker's own message."""
    text = text.strip()
    if _WORKER.match(text):
        for line in reversed(text.splitlines()):
            found = _TRACEBACK_LAST.match(line.strip())
            if found:
                return found.group(1).strip()
    return text.splitlines()[0] if text else ""


def user_error_message(exc: BaseException) -> str | None:
    """The one-line message of a user error, or None when `exc` is a bug (it then keeps its traceback)."""
    if isinstance(exc, OSError):
        if exc.filename is not None and exc.strerror and not _WORKER.match(str(exc)):
            where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
            return f"{where}: {exc.strerror[0].lower()}{exc.strerror[1:]}"
        return _first_line(str(exc)) or type(exc).__name__
    if isinstance(exc, ValueError) or type(exc).__name__ == "DecompressionBombError":
        return _first_line(str(exc)) or type(exc).__name__
    return None


@contextlib.contextmanager
def one_line_warnings(prog: str) -> Iterator[None]:
    """Warnings print as ``PROG: warning: MESSAGE`` (one line, no source line) while the command runs."""
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: warning: {_first_line(str(message))}", file=file or sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


def run_command(words: tuple[str, ...], argv: list[str]) -> int:
    """Run one command with the error boundary (the module doc)."""
    prog = "sslsan " + " ".join(words)
    module = None
    with one_line_warnings(prog):
        try:
            module = importlib.import_module(COMMANDS[words][0])
            return int(module.main(argv) or 0)
        except KeyboardInterrupt:
            hint = getattr(module, "ON_INTERRUPT", "")
            print(f"{prog}: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
            return 130
        except Exception as exc:
            message = user_error_message(exc)
            if message is None:
                raise
            print(f"{prog}: error: {message}", file=sys.stderr)
            return 2


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
            print(f"sslsan {argv[0]}: error: {argv[0]}: choose one of: {', '.join(subs)}", file=sys.stderr)
        else:
            print(f"sslsan: error: {argv[0]!r}: unknown command (sslsan --help lists them)", file=sys.stderr)
        return 2
    return run_command(*found)


if __name__ == "__main__":
    sys.exit(main())
