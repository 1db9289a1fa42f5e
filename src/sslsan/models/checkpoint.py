"""Checkpoints: our format (atomic, with inference metadata) and the original SSL-TIE/SSL-SaN files.

Our format is a dict {"format": FORMAT, "version", "model_config", "audio_config", "image_size",
"universal_threshold", "state_dict", ...extras such as epoch/optimizer}. The original format
(docs/model.md §3.4, DECISIONS D10) is {"epoch", "state_dict", "best_miou", "optimizer", "iteration"}
with `imgnet.*` / `audnet.*` keys, sometimes a `module.` prefix and extra entries (`epsilon`, the
dead `conv3`/`norm3` head, `vision_fc1`, unused stems and `fc`); those are reported, not fatal.
"""

from __future__ import annotations

import dataclasses
import logging
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sslsan.audio import AudioConfig
from sslsan.models.localizer import Localizer, ModelConfig
from sslsan.utils.io import atomic_torch_save

FORMAT = "sslsan-localizer"
VERSION = 1
RESERVED_KEYS = ("format", "version", "model_config", "audio_config", "image_size",
                 "universal_threshold", "state_dict")
ORIGINAL_TOP_LEVEL = ("epoch", "state_dict", "best_miou", "optimizer", "iteration")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DDP, torch.compile

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


def save_checkpoint(path: str | Path, model: nn.Module, *, audio_config: Any = None,
                    image_size: int = 224, universal_threshold: float | None = None,
                    **extra: Any) -> Path:
    """Write `model` (unwrapped, weights on CPU) with its inference metadata, atomically.

    `audio_config` is an `AudioConfig` or a dict of its fields (default: the model's own, else the
    paper's); `extra` holds resume state (epoch, optimizer, scheduler, rng, ...).
    """
    clash = sorted(set(extra) & set(RESERVED_KEYS))
    if clash:
        raise ValueError(f"save_checkpoint: extra keys {clash} are reserved")
    model = unwrap_model(model)
    if audio_config is None:
        audio_config = getattr(model, "audio_config", None) or AudioConfig()
    if dataclasses.is_dataclass(audio_config):
        audio_config = dataclasses.asdict(audio_config)
    cfg = getattr(model, "cfg", ModelConfig())
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    ckpt = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": dataclasses.asdict(cfg),
        "audio_config": dict(audio_config),
        "image_size": int(image_size),
        "universal_threshold": None if universal_threshold is None else float(universal_threshold),
        "state_dict": state,
        **extra,
    }
    return atomic_torch_save(ckpt, path)


def set_universal_threshold(path: str | Path, value: float) -> Path:
    """Store a calibrated universal threshold in one of our checkpoints (rewritten atomically, all else kept)."""
    ckpt = read_checkpoint(path)
    if not is_sslsan_checkpoint(ckpt):
        raise CheckpointError(f"{path}: not an sslsan checkpoint; cannot store a threshold in it")
    ckpt["universal_threshold"] = float(value)
    return atomic_torch_save(ckpt, path)


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
    """Load a checkpoint dict and check it holds a localizer state dict (either format).

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
        missing = [k for k in RESERVED_KEYS if k not in obj]
        if missing:
            raise CheckpointError(f"{path}: sslsan checkpoint lacks {missing}")
    elif isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        pass
    elif isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        obj = {"state_dict": dict(obj)}
    else:
        what = f"a dict with keys {sorted(map(str, obj))[:10]}" if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f"{path}: not a localizer checkpoint (no 'state_dict'; found {what})")
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


def from_original_state_dict(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map original AVENet names onto ours -> (state dict, names of entries our model does not use).

    The original towers carry three stems: the image tower uses `conv1` (3 channels), the audio
    tower `conv1_a` (1 channel); ours build only the used stem, always named `conv1`.
    """
    sd = strip_wrapper_prefixes(state_dict)
    if "audnet.conv1_a.weight" not in sd:
        return sd, []
    out, unused = {}, []
    for key, value in sd.items():
        if key.startswith("audnet.conv1_a."):
            out["audnet.conv1." + key[len("audnet.conv1_a."):]] = value
        elif key.startswith(("audnet.conv1.", "imgnet.conv1_a.")) or ".conv1_flow." in key or key.startswith(
            ("imgnet.fc.", "audnet.fc.")
        ):
            unused.append(key)
        else:
            out[key] = value
    return out, unused


def _summarise(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def _module_names(keys: list[str]) -> list[str]:
    return sorted({k.rsplit(".", 1)[0] if "." in k else k for k in keys})


def load_model(path: str | Path, map_location: Any = "cpu", *, trusted: bool = False) -> Localizer:
    """A `Localizer` in eval mode (on `map_location` when it names a device) from our checkpoints
    or original SSL-TIE/SSL-SaN files.

    The model carries `.audio_config` (AudioConfig; paper defaults for original files),
    `.image_size`, `.universal_threshold` and `.unused_checkpoint_keys` (entries it ignored, also
    logged as a warning). Missing entries or shape mismatches raise CheckpointError.
    """
    path = Path(path)
    ckpt = read_checkpoint(path, map_location, trusted=trusted)
    unused_top: list[str] = []
    sd, unused = from_original_state_dict(ckpt["state_dict"])
    if is_sslsan_checkpoint(ckpt):
        try:
            cfg = ModelConfig(**ckpt["model_config"])
            audio_cfg = AudioConfig(**ckpt["audio_config"])
        except TypeError as exc:
            raise CheckpointError(f"{path}: bad model/audio config in checkpoint: {exc}") from None
        image_size, threshold = int(ckpt["image_size"]), ckpt["universal_threshold"]
    else:
        stem = sd.get("imgnet.bn1.weight")
        cfg = ModelConfig(width=stem.shape[0] / 64 if isinstance(stem, torch.Tensor) and stem.ndim == 1 else 1.0)
        audio_cfg, image_size, threshold = AudioConfig(), 224, None
        unused_top = [k for k in ckpt if k not in ORIGINAL_TOP_LEVEL]
        learned = ckpt.get("epsilon", sd.get("epsilon"))  # learnable-epsilon variant (docs/model.md §3.4)
        if isinstance(learned, (torch.Tensor, float)):
            eps = float(torch.as_tensor(learned).flatten()[0])
            log.warning("%s: carries a learned epsilon = %.4f (used only by the training loss)", path, eps)

    try:
        model = Localizer(cfg)
    except ValueError as exc:  # a backbone this process has not registered, towers that do not fit
        raise CheckpointError(f"{path}: {exc}") from None
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    if missing:
        raise CheckpointError(
            f"{path}: not a localizer of this architecture (width {cfg.width:g}); "
            f"{len(missing)} of {len(expected)} entries missing: {_summarise(missing)}"
        )
    mismatched = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                  if tuple(sd[k].shape) != tuple(v.shape)]
    if mismatched:
        raise CheckpointError(
            f"{path}: shapes differ from a width-{cfg.width:g} localizer (checkpoint vs model): "
            f"{_summarise(mismatched)}"
        )
    unused = unused + sorted(k for k in sd if k not in expected)
    model.load_state_dict({k: sd[k] for k in expected})
    model.unused_checkpoint_keys = unused + [f"<top level> {k}" for k in unused_top]
    if model.unused_checkpoint_keys:
        log.warning("%s: ignored %d checkpoint entries the localizer does not use: %s", path,
                    len(model.unused_checkpoint_keys),
                    _summarise(_module_names(unused) + [f"<top level> {k}" for k in unused_top]))
    model.audio_config = audio_cfg
    model.image_size = image_size
    model.universal_threshold = None if threshold is None else float(threshold)
    if isinstance(map_location, (str, torch.device)):
        model = model.to(map_location)
    return model.eval()
