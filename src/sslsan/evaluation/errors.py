"""Errors of the evaluation suite (all `ValueError`s with one-line messages naming the file or
value) and the checks of user-given settings."""

from __future__ import annotations

import math


class EvaluationError(ValueError):
    """An evaluation that cannot run: empty test set, checkpoint that does not fit the data, ..."""


class MapsFileError(EvaluationError):
    """A maps.npz that is missing, unreadable, or lacks (or has inconsistent) arrays."""


def check_at_least(low: int, **settings: int | None) -> None:
    """EvaluationError naming the first setting below `low` (None means "not set" and passes)."""
    for name, value in settings.items():
        if value is not None and value < low:
            raise EvaluationError(f"{name}={value}: must be at least {low}")


def check_threshold(value, what: str = "threshold") -> float:
    """A universal threshold: a number in [0, 1] (the maps are cosines of non-negative features)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise EvaluationError(f"{what} {value!r}: must be 'auto', 'calibrate' or a number in [0, 1]") from None
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise EvaluationError(f"{what} {value!r}: must be a number in [0, 1]")
    return v
