"""Universal threshold calibration (DECISIONS D6, metrics_spec §2.1).

U_th = max over the negative types (silence, noise, offscreen) of the per-type third quartile of the
per-sample maxima of the native negative maps, pooled over the repetitions ("per_type"), or the Q3 of
all negatives pooled together ("pooled"). Computed on a stated calibration split, never silently on
the test set being reported.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sslsan.data.manifest import Manifest, manifest_hash, read_manifest
from sslsan.evaluation.errors import EvaluationError


def calibrate_universal_threshold(
    model,
    manifest: Manifest | str | Path,
    *,
    device: str | torch.device = "cpu",
    seed: int = 0,
    mode: str = "per_type",
    repetitions: int = 10,
    batch_size: int = 64,
    workers: int = 0,
    progress: bool = True,
    noise_pool: int | None = None,
) -> tuple[float, dict]:
    """Calibrate U_th of `model` on `manifest`; returns (threshold, details for the run record)."""
    from sslsan.evaluation.inference import run_inference
    from sslsan.metrics import per_type_quantiles, universal_threshold

    if mode not in ("per_type", "pooled"):
        raise ValueError(f"unknown calibration mode {mode!r}; expected 'per_type' or 'pooled'")
    if not isinstance(manifest, Manifest):
        manifest = read_manifest(manifest, allow_empty=True)
    if len(manifest) == 0:
        raise EvaluationError(f"{manifest.path}: calibration split is empty (no samples)")
    res = run_inference(model, manifest, repetitions=repetitions, seed=seed, device=device, batch_size=batch_size,
                        workers=workers, retrieval=False, progress=progress, desc="calibrate U_th",
                        noise_pool=noise_pool)
    neg_max = {t: m.ravel() for t, m in res.neg_max().items()}
    thr = float(universal_threshold(neg_max, mode=mode))
    details = {
        "value": thr,
        "mode": mode,
        "split": str(manifest.path),
        "split_sha256": manifest_hash(manifest.path),
        "n_samples": len(manifest),
        "repetitions": repetitions,
        "seed": seed,
        "noise_pool": noise_pool,
        "q3_by_type": per_type_quantiles(neg_max, 0.75),  # the same numbers the threshold is the max of
    }
    return thr, details
