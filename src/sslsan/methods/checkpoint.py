"""Checkpoints of any method: ours (with the method and its inference spec) and the methods' original files.

Our format (version 2) is a dict {"format": FORMAT, "version", "method", "model_config",
"inference" (an `InferenceSpec` as a dict), "state_dict", ...extras such as epoch/optimizer}. Version 1
(SSL-TIE's towers with "audio_config", "image_size", "universal_threshold") still loads. A method's
original files are read by its `OriginalCheckpoint` (e.g. SSL-TIE's, DECISIONS D10).

Loading is strict: every weight the model needs must be there with its shape, and every entry of
the file must be used or be one the method's reader declares as unused (reported); anything else is
one CheckpointError line naming the file, the missing and the unexpected keys. A checkpoint of
another method is refused by name.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sslsan.audio import AudioConfig, build_frontend
from sslsan.config import ConfigError, from_dict
from sslsan.data.transforms import ImageEvalTransform
from sslsan.methods import all_methods, get_method
from sslsan.methods.base import DEFAULT_POLICY, AVModel, InferenceSpec, Method
from sslsan.models.checkpoint import (
    FORMAT,
    VERSION,
    CheckpointError,
    is_sslsan_checkpoint,
    module_names,
    read_checkpoint,
    strip_wrapper_prefixes,
    summarise_keys,
    unwrap_model,
)
from sslsan.utils.io import atomic_torch_save

RESERVED_KEYS = ("format", "version", "method", "model_config", "inference", "state_dict")

log = logging.getLogger("sslsan.methods")


@dataclass
class LoadedModel:
    """A model ready for inference: the network, how to feed it and read its map (`spec`), its method."""

    model: AVModel
    spec: InferenceSpec
    method: Method
    path: Path | None = None
    ignored_keys: list[str] = field(default_factory=list)  # checkpoint entries the model does not use
    source: str = "sslsan"  # "sslsan" (our format) or "original" (the method's own file)
    policy: str | None = None  # the front-end policy applied (None: the spec the checkpoint carries)

    @classmethod
    def of(cls, model: AVModel, spec: InferenceSpec) -> LoadedModel:
        """An in-memory model with its spec (e.g. straight from training, or in tests)."""
        return cls(model=model, spec=spec, method=get_method(spec.method))

    def frontend(self, device: str | torch.device = "cpu") -> nn.Module:
        """The audio front-end the spec names, on `device`."""
        return build_frontend(self.spec.audio).to(device)

    def image_transform(self) -> ImageEvalTransform:
        """The test image transform (frame -> normalised (3, S, S))."""
        i = self.spec.image
        return ImageEvalTransform(self.spec.image_size, crop=i.crop, mean=i.mean, std=i.std)

    def to(self, device: str | torch.device) -> LoadedModel:
        self.model = self.model.to(device).eval()
        return self

    def with_spec(self, **changes: Any) -> LoadedModel:
        """The same model with spec fields changed (e.g. universal_threshold, audio)."""
        return dataclasses.replace(self, spec=self.spec.replace(**changes))

    @property
    def label(self) -> str:
        return self.method.label


def save_checkpoint(path: str | Path, model: nn.Module, spec: InferenceSpec, **extra: Any) -> Path:
    """Write `model` (unwrapped, weights on CPU) with its method, config and inference spec, atomically.

    `extra` holds resume state (epoch, optimizer, scheduler, rng, config, ...).
    """
    clash = sorted(set(extra) & set(RESERVED_KEYS))
    if clash:
        raise ValueError(f"save_checkpoint: extra keys {clash} are reserved")
    model = unwrap_model(model)
    cfg = getattr(model, "cfg", None)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    ckpt = {
        "format": FORMAT,
        "version": VERSION,
        "method": spec.method,
        "model_config": dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else {},
        "inference": spec.to_dict(),
        "state_dict": state,
        **extra,
    }
    return atomic_torch_save(ckpt, path)


def set_universal_threshold(path: str | Path, value: float) -> Path:
    """Store a calibrated universal threshold in one of our checkpoints (rewritten atomically, all else kept)."""
    ckpt = read_checkpoint(path)
    if not is_sslsan_checkpoint(ckpt):
        raise CheckpointError(f"{path}: not an sslsan checkpoint; cannot store a threshold in it")
    if "inference" in ckpt:
        ckpt["inference"] = {**ckpt["inference"], "universal_threshold": float(value)}
    else:  # version 1
        ckpt["universal_threshold"] = float(value)
    return atomic_torch_save(ckpt, path)


def _ours(path: Path, ckpt: Mapping[str, Any]) -> tuple[Method, Any, InferenceSpec, dict, list[str]]:
    """Method, model config, spec, state dict and ignored entries of one of our checkpoints."""
    name = ckpt.get("method", "ssl_tie")  # version 1 held SSL-TIE's towers
    try:
        method = get_method(name)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    try:
        model_cfg = from_dict(method.model_config, dict(ckpt.get("model_config") or {}), "model_config")
        if "inference" in ckpt:
            spec = InferenceSpec.from_dict(ckpt["inference"])
        else:
            spec = method.inference_spec(AudioConfig(**ckpt["audio_config"]), int(ckpt["image_size"]),
                                         ckpt.get("universal_threshold"))
    except (ConfigError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: bad model/inference settings in the checkpoint: {exc}") from None
    return method, model_cfg, spec, strip_wrapper_prefixes(ckpt["state_dict"]), []


def _original(path: Path, ckpt: Mapping[str, Any], method: str | None,
              policy: str | None) -> tuple[Method, Any, InferenceSpec, dict, list[str]]:
    policy = policy or DEFAULT_POLICY
    """Read a method's original file: with `method` given, that method's reader; otherwise the one
    reader that recognises the file."""
    readers = [m for m in all_methods() if m.original is not None]
    if method is not None:
        m = get_method(method)
        if m.original is None:
            raise CheckpointError(f"{path}: not an sslsan checkpoint, and {m.label} has no reader for original files")
        others = [o for o in readers if o.family != m.family and o.original.recognise(ckpt)]
        if not m.original.recognise(ckpt) and others:
            raise CheckpointError(f"{path}: a checkpoint of {others[0].label} (--method {others[0].name}), "
                                  f"not of {m.label} (--method {m.name})")
    else:
        matches: dict[str, Method] = {}
        for o in readers:  # a family's first method names it (ssl_tie, not ssl_san, for SSL-TIE's files)
            if o.original.recognise(ckpt):
                matches.setdefault(o.family, o)
        if not matches:
            raise CheckpointError(f"{path}: not an sslsan checkpoint, and no method recognises it as its original "
                                  f"file (top-level keys {sorted(map(str, ckpt))[:8]}); name the method with --method")
        if len(matches) > 1:
            raise CheckpointError(f"{path}: could be a checkpoint of {', '.join(o.label for o in matches.values())}; "
                                  "name the method with --method")
        m = next(iter(matches.values()))
    try:
        sd, model_cfg, ignored = m.original.convert(ckpt)
    except ValueError as exc:
        raise CheckpointError(f"{path}: not a {m.label} checkpoint: {str(exc).splitlines()[0]}") from None
    try:
        spec = m.policy_spec(policy)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return m, model_cfg, spec, sd, ignored


def load_model(path: str | Path, map_location: Any = "cpu", *, method: str | None = None,
               policy: str | None = None, trusted: bool = False) -> LoadedModel:
    """A model in eval mode (on `map_location` when it names a device) from our checkpoints or a method's
    original files, with its inference spec.

    `method`: the method the file must belong to (required for original files no reader recognises
    alone; a checkpoint of another method is refused by name). `policy`: the front-end policy of an
    original file ("original", the default: the authors' repository, with silence and noise through the
    same front-end as positives, D1; "vssl_eval": the SSL-SaN authors' evaluation of the paper's Table 2,
    with its published universal threshold where there is one); our checkpoints carry their own spec. `trusted=True` allows full
    unpickling (only for files you trust). Missing entries, shape mismatches and unexpected entries
    raise CheckpointError; entries a method's reader declares unused are logged as a warning and
    listed in `ignored_keys`.
    """
    path = Path(path)
    ckpt = read_checkpoint(path, map_location if not isinstance(map_location, (str, torch.device)) else "cpu",
                           trusted=trusted)
    if is_sslsan_checkpoint(ckpt):
        m, model_cfg, spec, sd, ignored = _ours(path, ckpt)
        if policy is not None:
            raise CheckpointError(f"{path}: an sslsan checkpoint carries its own front-end and map; front-end "
                                  "policies apply to the authors' released files")
        if method is not None and get_method(method).family != m.family:
            want = get_method(method)
            raise CheckpointError(f"{path}: a checkpoint of {m.label} (--method {m.name}), not of {want.label} "
                                  f"(--method {want.name})")
        source = "sslsan"
    else:
        m, model_cfg, spec, sd, ignored = _original(path, ckpt, method, policy)
        source = "original"
    try:
        model = m.build_model(model_cfg, None)
    except ValueError as exc:  # a backbone this process has not registered, towers that do not fit
        raise CheckpointError(f"{path}: {exc}") from None
    load_strict(model, sd, path, what=m.label)
    if ignored:
        log.warning("%s: ignored %d checkpoint entries the model does not use: %s", path, len(ignored),
                    summarise_keys(module_names(ignored)))
    if isinstance(map_location, (str, torch.device)):
        model = model.to(map_location)
    if source == "original" and policy is None:
        policy = DEFAULT_POLICY
    return LoadedModel(model=model.eval(), spec=spec, method=m, path=path, ignored_keys=ignored, source=source,
                       policy=policy)


def load_strict(model: nn.Module, sd: Mapping[str, torch.Tensor], path: Path, *, what: str) -> None:
    """Load `sd` into `model`: every entry needed, of its shape, and nothing else (one error line otherwise)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = sorted(k for k in sd if k not in expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} of {len(expected)} entries missing: {summarise_keys(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {summarise_keys(unexpected)}")
        raise CheckpointError(f"{path}: does not fit a {what} model of this configuration; " + "; ".join(parts))
    mismatched = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                  if tuple(sd[k].shape) != tuple(v.shape)]
    if mismatched:
        raise CheckpointError(f"{path}: shapes differ from the {what} model (checkpoint vs model): "
                              f"{summarise_keys(mismatched)}")
    model.load_state_dict(dict(sd))
