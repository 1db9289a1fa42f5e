"""Reading checkpoint files, whatever wrote them (the formats themselves: sslsan.methods.checkpoint).

`read_checkpoint` checks that a file is a PyTorch checkpoint holding weights (torch.save zip or
legacy pickle, loaded with `weights_only=True`), with one clear line for a folder, an empty, cut or
foreign file; `unwrap_model` finds the model inside DDP/DataParallel/torch.compile wrappers.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

FORMAT = "sslsan-localizer"
VERSION = 2  # 2: the method and its inference spec; 1: SSL-TIE's towers with audio_config/image_size
WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DDP, torch.compile
WEIGHT_KEYS = ("state_dict", "model", "model_state_dict")  # where original files keep their weights

log = logging.getLogger("sslsan.models")


class CheckpointError(ValueError):
    """A file that is not a loadable localizer checkpoint; the message names the file."""


def unwrap_model(model: nn.Module) -> nn.Module:
    """The Localizer inside DDP/DataParallel/torch.compile wrappers."""
    while True:
        for attr in ("module", "_orig_mod"):
            inner = getattr(model, attr, None)
            if isinstance(inner, nn.Module):
                model = inner
                break
        else:
            return model


def _numpy_safe_globals() -> list:
    """NumPy scalar types that appear in original checkpoints (`best_miou` is a float64 scalar)."""
    core = getattr(np, "_core", None) or np.core
    found = [core.multiarray.scalar, np.dtype]
    for name in dir(np.dtypes):
        obj = getattr(np.dtypes, name)
        if isinstance(obj, type) and name.endswith("DType"):
            found.append(obj)
    return found


def _not_a_torch_file(path: Path) -> str | None:
    """Why `path` cannot be a torch.save file, from its first bytes (None when it may be one)."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head:
        return "empty file (0 bytes)"
    if head.startswith(b"PK\x03\x04"):  # torch.save's zip format
        return None if zipfile.is_zipfile(path) else "checkpoint cut short (its zip archive has no end record: incomplete download or copy?)"
    if head[:1] == b"\x80":  # the legacy pickle format (protocol 2+)
        return None
    return "not a PyTorch checkpoint (neither a torch.save zip archive nor a pickle)"


def read_checkpoint(path: str | Path, map_location: Any = "cpu", *, trusted: bool = False) -> dict:
    """Load a checkpoint dict and check it holds weights (ours, or an original file's).

    Loading uses `weights_only=True` with NumPy scalars allow-listed; `trusted=True` falls back to
    full unpickling (only for files you trust: it can run arbitrary code). A bare state dict is
    returned as {"state_dict": ...}.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    problem = _not_a_torch_file(path)
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    try:
        if trusted:
            obj = torch.load(path, map_location=map_location, weights_only=False)
        else:
            with torch.serialization.safe_globals(_numpy_safe_globals()):
                obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for non-checkpoint bytes
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = ""
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            hint = " (it holds objects outside the safe list; pass trusted=True only if you trust the file)"
        raise CheckpointError(f"{path}: not a loadable PyTorch checkpoint: {first}{hint}") from None
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
        if int(obj.get("version", 0)) > VERSION:
            raise CheckpointError(f"{path}: checkpoint version {obj['version']} is newer than this sslsan (≤{VERSION})")
        if not isinstance(obj.get("state_dict"), Mapping):
            raise CheckpointError(f"{path}: sslsan checkpoint lacks its state_dict")
    elif isinstance(obj, Mapping) and any(isinstance(obj.get(k), Mapping) for k in WEIGHT_KEYS):
        pass
    elif isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        obj = {"state_dict": dict(obj)}  # a bare (flat) state dict
    else:
        what = f"a dict with keys {sorted(map(str, obj))[:10]}" if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f"{path}: not a localizer checkpoint (no weights under {'/'.join(WEIGHT_KEYS)}; found {what})")
    return dict(obj)


def is_sslsan_checkpoint(ckpt: Mapping) -> bool:
    return ckpt.get("format") == FORMAT


def strip_wrapper_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state_dict.items():
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        out[key] = value
    return out


def summarise_keys(keys: list[str], limit: int = 8) -> str:
    """At most `limit` names, then how many more: for one-line messages."""
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def module_names(keys: list[str]) -> list[str]:
    """The modules state-dict keys belong to (one name per module)."""
    return sorted({k.rsplit(".", 1)[0] if "." in k else k for k in keys})
