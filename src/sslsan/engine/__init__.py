"""The training engine: `TrainConfig`, `train(cfg, run_dir, device, resume)` and the Table-4 rows.

Modules, one job each: `train_config` (the typed config), `ablations` (Table 4), `data` (manifests,
sampler, training items, loaders, spectrogram cache), `step` (one step's inputs and loss), `streams`
(keyed random streams), `run` (the run directory and state: provenance, RNG state, save/restore, the
resume check), `distributed` (DDP), `loop` (the loop). Only `ablations` loads here; the rest (torch)
on first use, so a command's `--help` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from sslsan.engine.ablations import ABLATIONS, ablation_overrides

_LAZY = {
    "train": "sslsan.engine.loop",
    "TrainConfig": "sslsan.engine.train_config",
    "DataConfig": "sslsan.engine.train_config",
    "OptimConfig": "sslsan.engine.train_config",
    "TrainSection": "sslsan.engine.train_config",
    "EvalSection": "sslsan.engine.train_config",
    "TrainDataError": "sslsan.engine.data",
}

__all__ = ["ABLATIONS", "ablation_overrides", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sslsan.engine' has no attribute {name!r}")
