"""The run directory: the resume check, provenance (config.yaml, run.json), RNG state, save and restore.

A run directory holds config.yaml (the resolved config), run.json (seed, git SHA, manifest hashes,
one record per session), log.jsonl, checkpoints/latest.pt and checkpoints/best.pt (written
atomically; latest.pt carries everything `--resume` needs) and threshold.json.
"""

from __future__ import annotations

import json
import math
import platform
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from sslsan import __version__
from sslsan.config import ConfigError, save_config, to_dict
from sslsan.data.manifest import Manifest, manifest_hash
from sslsan.engine.data import KeyedSampler
from sslsan.engine.distributed import DistInfo
from sslsan.engine.step import InputBuilder, StepModule
from sslsan.engine.train_config import TrainConfig
from sslsan.methods.base import AVModel, InferenceSpec
from sslsan.methods.checkpoint import save_checkpoint
from sslsan.models import read_checkpoint
from sslsan.utils.io import atomic_write_text

# keys that may differ between the original run and its resumption (they change nothing learned)
RESUMABLE_CHANGES = {
    "train.epochs",
    "train.device",
    "train.log_every",
    "train.grad_diagnostics",
    "train.threads",
    "train.compile",
    "data.num_workers",
    "data.pin_memory",
    "data.persistent_workers",
    "data.prefetch_factor",
    "data.root",
    "data.cache_spectrograms",
    "data.cache_on_disk",
    "data.cache_max_gib",
    "eval.calibrate_threshold",
    "eval.calibration_manifest",
    "eval.calibration_mode",
    "eval.calibration_seed",
    "eval.calibration_repetitions",
}


@dataclass
class RunState:
    """Everything a run holds: built by `engine.loop.build_run_state`, saved and restored here."""

    cfg: TrainConfig
    info: DistInfo
    device: torch.device
    model: AVModel  # the bare model (what checkpoints hold)
    step_module: StepModule  # model + objective, one module (never the DDP wrapper)
    train_module: nn.Module  # what a training step calls: step_module, or its DDP wrapper
    builder: InputBuilder
    optimizer: torch.optim.Optimizer
    scheduler: Any
    sampler: KeyedSampler
    train_loader: DataLoader
    val_loader: DataLoader | None
    global_step: int = 0
    epoch: int = 0  # completed epochs
    best_val: float = math.inf


def checkpoint_paths(run_dir: Path) -> tuple[Path, Path]:
    """(latest.pt, best.pt) of a run directory."""
    return run_dir / "checkpoints" / "latest.pt", run_dir / "checkpoints" / "best.pt"


def check_run_dir(run_dir: Path, cfg: TrainConfig, resume: bool) -> dict | None:
    """The resume check: a new run needs a run directory without a run in it; `resume` needs a
    training checkpoint there whose config differs from `cfg` only in `RESUMABLE_CHANGES`.
    Returns that checkpoint (None for a new run)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: exists and is not a folder (the run directory)")
    latest = checkpoint_paths(run_dir)[0]
    if not resume:
        if latest.exists():
            raise ConfigError(f"{run_dir}: already holds a run (checkpoints/latest.pt); pass --resume or use a new --run-dir")
        return None
    if not latest.exists():
        raise ConfigError(f"{latest}: nothing to resume (no latest checkpoint in this run directory)")
    raw = read_checkpoint(latest, map_location="cpu")
    check_resume_config(raw.get("config") or {}, cfg, latest)
    if not isinstance(raw.get("train_state"), dict):
        raise ConfigError(f"{latest}: not a training checkpoint (no train_state); cannot resume from it")
    return raw


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_resume_config(saved: dict, cfg: TrainConfig, path: Path) -> None:
    """Refuse to resume a run whose saved config differs from `cfg` in anything learned. A key the saved
    config lacks (added to sslsan after the run started) counts as its default, which reproduces the old behaviour."""
    saved, _ = TrainConfig.migrate(saved, [])
    old = {**_flatten(to_dict(TrainConfig.defaults(saved, []))), **_flatten(saved)}
    new = _flatten(to_dict(cfg))
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
    if diff:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:5])
        raise ConfigError(f"{path}: cannot resume with a different config ({shown}); use a new --run-dir")


def git_sha() -> str | None:
    """The commit of the sslsan checkout this runs from (None outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def manifest_record(m: Manifest | None) -> dict[str, Any] | None:
    """Path, sha256 and size of a manifest, for run.json."""
    if m is None:
        return None
    return {"path": str(m.path.resolve()), "sha256": manifest_hash(m.path), "samples": len(m)}


def write_provenance(run_dir: Path, cfg: TrainConfig, *, resumed_from_epoch: int | None, device: torch.device,
                     world_size: int, train: Manifest, val: Manifest | None) -> None:
    """config.yaml and run.json (a resumed run appends a session to the existing run.json)."""
    save_config(cfg, run_dir / "config.yaml")
    run_json = run_dir / "run.json"
    record = json.loads(run_json.read_text()) if resumed_from_epoch is not None and run_json.exists() else {}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sha = git_sha()
    record.setdefault("started", now)
    record.setdefault("sessions", []).append(
        {"at": now, "resumed_from_epoch": resumed_from_epoch, "device": str(device), "world_size": world_size,
         "git_sha": sha, "sslsan": __version__, "torch": torch.__version__, "python": platform.python_version(),
         "argv": sys.argv}
    )
    record.update({"seed": cfg.train.seed, "git_sha": sha,
                   "manifests": {"train": manifest_record(train), "val": manifest_record(val)}})
    atomic_write_text(run_json, json.dumps(record, indent=2) + "\n")


def rng_states() -> dict[str, Any]:
    """Global RNG states in types a weights_only checkpoint load accepts (our draws are keyed; this is belt and braces)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what `rng_states` saved."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    n = states["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_state(state: RunState, path: Path, val: dict[str, float]) -> None:
    """A checkpoint of the run: the model with its inference metadata, plus everything `restore_state` needs."""
    s = state
    save_checkpoint(
        path,
        s.model,
        inference_spec(s.cfg),
        config=to_dict(s.cfg),
        epoch=s.epoch,  # completed epochs
        step=s.global_step,
        train_state={
            "best_val": s.best_val,
            "val": val,
            "optimizer": s.optimizer.state_dict(),
            "scheduler": s.scheduler.state_dict() if s.scheduler is not None else None,
            "objective": s.step_module.objective.state_dict(),
            "rng": rng_states(),
        },
    )


def inference_spec(cfg: TrainConfig) -> InferenceSpec:
    """What inference needs of a model trained with `cfg` (its checkpoints carry it)."""
    return cfg.method_entry.inference_spec(cfg.audio, cfg.data.image_size)


def restore_state(state: RunState, raw: dict) -> None:
    """Continue from a checkpoint `save_state` wrote (as returned by `check_run_dir`)."""
    s, ts = state, raw["train_state"]
    s.model.load_state_dict(raw["state_dict"])
    s.optimizer.load_state_dict(ts["optimizer"])
    if s.scheduler is not None and ts.get("scheduler") is not None:
        s.scheduler.load_state_dict(ts["scheduler"])
    s.step_module.objective.load_state_dict(ts.get("objective") or {})
    s.epoch, s.global_step, s.best_val = int(raw["epoch"]), int(raw["step"]), float(ts["best_val"])
    set_rng_states(ts["rng"])
