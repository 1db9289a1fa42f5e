"""Evaluation suite: inference with negative audio, universal threshold, tables, figures, your own media.

Python API (used by `sslsan demo`):
  EvaluationConfig(repetitions=10, seed=0, threshold="auto", threshold_mode="per_type", ...)  the protocol's settings
  evaluate_checkpoint(checkpoint, dataset, data_root, out_dir, config=None, *, device="auto", **settings)
      -> metrics dict   (settings: changes to the config by field name, e.g. repetitions=2)
  score_maps(maps_npz, threshold=None) -> metrics dict        (maps.npz layout: docs/maps_npz.md)
  calibrate_universal_threshold(model, manifest, config, *, device) -> (float, dict)
  comparison_markdown({name: metrics, ...}) / compare_runs([run_dir, ...]) -> Markdown tables
"""

from __future__ import annotations

import importlib
from typing import Any

from sslsan.evaluation.errors import EvaluationError, MapsFileError
from sslsan.evaluation.eval_config import EvaluationConfig

_LAZY = {
    "evaluate_checkpoint": "sslsan.evaluation.evaluate",
    "score_maps": "sslsan.evaluation.scoring",
    "score_arrays": "sslsan.evaluation.scoring",
    "load_maps": "sslsan.evaluation.scoring",
    "save_maps": "sslsan.evaluation.scoring",
    "calibrate_universal_threshold": "sslsan.evaluation.calibrate",
    "run_inference": "sslsan.evaluation.inference",
    "assign_offscreen": "sslsan.evaluation.negatives",
    "comparison_markdown": "sslsan.evaluation.report",
    "compare_runs": "sslsan.evaluation.report",
    "run_report": "sslsan.evaluation.report",
    "localize_to_folder": "sslsan.evaluation.localize",
    "find_pairs": "sslsan.evaluation.localize",
}

__all__ = ["EvaluationConfig", "EvaluationError", "MapsFileError", *_LAZY]


def __getattr__(name: str) -> Any:  # heavy modules (torch) load only when used
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sslsan.evaluation' has no attribute {name!r}")
