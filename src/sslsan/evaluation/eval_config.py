"""`EvaluationConfig`: the settings of the evaluation protocol, declared once.

`evaluate_checkpoint`, `sslsan evaluate` (its options and their defaults), the universal-threshold
calibration (at evaluation, and after training: `TrainConfig.eval.calibration_*` default to these)
and `sslsan demo` all take their settings from here. docs/evaluation.md explains each one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from sslsan.evaluation.errors import EvaluationError, check_at_least, check_threshold
from sslsan.metrics.thresholds import UNIVERSAL_MODES


@dataclass
class EvaluationConfig:
    """How a checkpoint is evaluated (the reference protocol by default)."""

    repetitions: int = 10  # R: draws of the noise and offscreen negatives per sample (the paper pools 10)
    seed: int = 0  # seed of the noise and offscreen draws
    # U_th: "auto" (the checkpoint's, or the one published for a released file's policy, else calibrated),
    # "calibrate" (always calibrated, as for any method) or a number in [0, 1]
    threshold: str | float = "auto"
    threshold_mode: Literal["per_type", "pooled"] = "per_type"  # D6: max of the per-type Q3, or the pooled Q3
    negatives_in_db: bool | None = None  # None: the checkpoint's audio config; False: linear power (vssl_eval, D1)
    noise_pool: int | None = None  # K noise clips per repetition shared by all samples (speed option); None: one per sample
    batch_size: int = 64  # samples per forward pass
    workers: int = 0  # DataLoader worker processes decoding files
    figure_examples: int = 3  # Fig. 2 overlay examples
    offscreen: str | None = None  # offscreen.json of an earlier run: its assignment, repetitions and seed win
    relative_prediction: bool = True  # SLAVC's extended protocol (sets with non-sounding pairs): its --relative_prediction

    def with_(self, **changes) -> EvaluationConfig:
        """A copy with `changes` (names of fields; an unknown name is an EvaluationError)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise EvaluationError(f"unknown evaluation setting(s) {unknown}")
        return dataclasses.replace(self, **changes)

    def check(self) -> EvaluationConfig:
        """Refuse values no evaluation can use, naming the setting; returns self."""
        check_at_least(1, batch_size=self.batch_size, repetitions=self.repetitions, noise_pool=self.noise_pool)
        check_at_least(0, workers=self.workers, figure_examples=self.figure_examples)
        if not (self.auto_threshold or self.calibrate_threshold):
            check_threshold(self.threshold)
        if self.threshold_mode not in UNIVERSAL_MODES:
            raise EvaluationError(f"unknown calibration mode {self.threshold_mode!r}; expected 'per_type' or 'pooled'")
        return self

    @property
    def auto_threshold(self) -> bool:
        return isinstance(self.threshold, str) and self.threshold == "auto"

    @property
    def calibrate_threshold(self) -> bool:
        return isinstance(self.threshold, str) and self.threshold == "calibrate"
