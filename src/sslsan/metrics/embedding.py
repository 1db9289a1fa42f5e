"""Table 1 metrics: Separability, Alignment and Magnitude (docs/metrics.md §3.6-3.7, DECISIONS D11)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sslsan.metrics.common import MetricsError, as_values


def separability(pos_max, neg_max) -> float:
    """Sep = Q1(positive maxima) - Q3(negative maxima), numpy "linear" quantiles, raw (not x100).

    pos_max: per-sample spatial maxima of the native positive maps. neg_max: the same for the
    negative maps, an array or a dict type -> array (all types and repetitions pooled).
    Sep > 0 means a threshold separates 75 % of positives from 75 % of negatives.
    """
    if isinstance(neg_max, Mapping):
        if not neg_max:
            raise MetricsError("separability: no negative maxima")
        neg = np.concatenate([as_values(v, f"negative maxima '{t}'") for t, v in neg_max.items()])
    else:
        neg = as_values(neg_max, "negative maxima")
    pos = as_values(pos_max, "positive maxima")
    return float(np.quantile(pos, 0.25) - np.quantile(neg, 0.75))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)  # zero vectors stay zero, as torch's F.normalize


def alignment_magnitude(image_emb, audio_emb) -> dict[str, float]:
    """Modality alignment of positive pairs (DECISIONS D11); embeddings (N, C), row i = pair i.

    Both are L2-normalised here (image: the spatial mean of the visual map; audio: the pooled
    vector). Returns ``alignment`` = mean cos(v_i, a_i) (higher is better), ``magnitude`` =
    || mean_i v_i - mean_i a_i ||_2, the gap between the modality centroids (lower is better), and
    ``pair_distance`` = mean_i || v_i - a_i ||_2, the other reading of "Magnitude".
    """
    v = np.asarray(image_emb, dtype=np.float64)
    a = np.asarray(audio_emb, dtype=np.float64)
    if v.ndim != 2 or v.shape != a.shape or v.shape[0] == 0:
        raise MetricsError(
            f"embeddings: expected two non-empty (N, C) arrays of one shape, got {v.shape} and {a.shape}"
        )
    v, a = _unit_rows(v), _unit_rows(a)
    return {
        "alignment": float(np.mean(np.sum(v * a, axis=1))),
        "magnitude": float(np.linalg.norm(v.mean(axis=0) - a.mean(axis=0))),
        "pair_distance": float(np.mean(np.linalg.norm(v - a, axis=1))),
    }
