"""Atomic writes: a crash mid-write never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_folder(path: str | Path) -> Path:
    """`mkdir -p`; a file standing where a folder is needed is a NotADirectoryError naming that file."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), path)
        raise NotADirectoryError(errno.ENOTDIR, "is a file, not a folder", str(blocker)) from None
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file name beside `path` for a writer that needs a name (a video encoder): renamed over
    `path` when the block ends normally, removed when it raises. `suffix` ends the temporary name."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder; give a file name", str(path))
    make_folder(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as exc:  # name the file the user asked for, not the temporary one
        raise type(exc)(exc.errno, f"cannot write a file in this folder ({exc.strerror})", str(path)) from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes owner-only files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic(path: str | Path, write: Callable[[Any], None], mode: str) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return _atomic(path, lambda fh: fh.write(data), "wb")


def atomic_write_text(path: str | Path, text: str) -> Path:
    return _atomic(path, lambda fh: fh.write(text), "w")


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """`torch.save` to a temporary file in the same folder, then rename over `path`."""
    import torch  # here, not at the top: sslsan.config and the CLI's light paths use this module without torch

    return _atomic(path, lambda fh: torch.save(obj, fh), "wb")


def atomic_savez(path: str | Path, **arrays: Any) -> Path:
    """`numpy.savez_compressed`, atomically."""
    import numpy as np  # as torch above

    return _atomic(path, lambda fh: np.savez_compressed(fh, **arrays), "wb")


def check_input_file(path: str | Path, what: str, error: type[Exception]) -> Path:
    """Raise `error` with a one-line message when `path` is missing, a folder or empty; return it."""
    path = Path(path)
    if not path.exists():
        raise error(f"{path}: {what} file not found")
    if path.is_dir():
        raise error(f"{path}: is a folder, not an {what} file" if what[0] in "aeiou" else f"{path}: is a folder, not a {what} file")
    if path.stat().st_size == 0:
        raise error(f"{path}: empty file (0 bytes)")
    return path


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
