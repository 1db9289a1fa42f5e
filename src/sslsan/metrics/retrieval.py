"""Cross-modal retrieval P@K and A@K by class label (docs/metrics.md §3.8, DECISIONS D12)."""

from __future__ import annotations

import numpy as np

from sslsan.metrics.common import MetricsError


def _hits_in_top_k(scores: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    """Relevant items among the top k of each row; ties broken by the lower column index.

    Equivalent to a stable descending sort, without sorting: the top k are every score above the
    k-th largest value plus the first (by index) of the scores equal to it.
    """
    kk = min(k, scores.shape[1])
    kth = -np.partition(-scores, kk - 1, axis=1)[:, kk - 1 : kk]
    above = scores > kth
    ties = scores == kth
    room = kk - np.count_nonzero(above, axis=1, keepdims=True)
    chosen = above | (ties & (np.cumsum(ties, axis=1) <= room))
    return np.count_nonzero(chosen & relevant, axis=1)


def _direction(sim: np.ndarray, codes: np.ndarray, ks, exclude_self: bool, chunk: int):
    n = sim.shape[0]
    hits = {k: np.empty(n, dtype=np.int64) for k in ks}
    for c in range(0, n, chunk):
        rows = np.arange(c, min(c + chunk, n))
        scores = sim[rows]
        relevant = codes[rows, None] == codes[None, :]
        if exclude_self:
            # drop column i from row i; the remaining columns keep their order (and tie-breaking)
            j = np.arange(n - 1)[None, :]
            idx = j + (j >= rows[:, None])
            scores = np.take_along_axis(scores, idx, axis=1)
            relevant = np.take_along_axis(relevant, idx, axis=1)
        for k in ks:
            hits[k][rows] = _hits_in_top_k(scores, relevant, k)
    return hits


def retrieval(
    similarity, labels, ks=(1, 5, 10), exclude_self: bool = False, *, chunk_size: int = 512
) -> dict[str, float]:
    """Image->audio and audio->image retrieval by class label, in percent.

    similarity: (N, N), rows are images and columns audios of the same N pairs (for SSL-TIE
    models, the spatial max of the cosine map of image i with audio j). labels: (N,) class of each
    pair (any comparable values). For each query the gallery (all N items of the other modality,
    or N - 1 with `exclude_self`) is ranked by descending similarity, ties to the lower index;
    NaN scores rank last. A hit is a retrieved item with the query's label.
    Keys ``i2a_P@K``, ``i2a_A@K``, ``a2i_P@K``, ``a2i_A@K`` per K: P@K = mean of hits / K (K even
    when the gallery is smaller), A@K = % of queries with at least one hit in the top K.
    """
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1] or sim.shape[0] == 0:
        raise MetricsError(f"similarity: expected a non-empty square (N, N) image x audio matrix, got {sim.shape}")
    labels = np.asarray(labels)
    if labels.shape != (sim.shape[0],):
        raise MetricsError(f"labels: expected shape ({sim.shape[0]},), got {labels.shape}")
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise MetricsError(f"ks: expected positive integers, got {ks}")
    if exclude_self and sim.shape[0] < 2:
        raise MetricsError("exclude_self needs at least 2 pairs")
    sim = np.where(np.isnan(sim), -np.inf, sim)
    codes = np.unique(labels, return_inverse=True)[1].ravel()

    out: dict[str, float] = {}
    for name, matrix in (("i2a", sim), ("a2i", np.ascontiguousarray(sim.T))):
        hits = _direction(matrix, codes, ks, exclude_self, chunk_size)
        for k in ks:
            out[f"{name}_P@{k}"] = 100 * float(np.mean(hits[k] / k))
            out[f"{name}_A@{k}"] = 100 * float(np.count_nonzero(hits[k]) / hits[k].size)
    return out
