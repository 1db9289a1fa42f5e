"""Errors of the evaluation suite: all `ValueError`s with one-line messages naming the file."""

from __future__ import annotations


class EvaluationError(ValueError):
    """An evaluation that cannot run: empty test set, checkpoint that does not fit the data, ..."""


class MapsFileError(EvaluationError):
    """A maps.npz that is missing, unreadable, or lacks (or has inconsistent) arrays."""
