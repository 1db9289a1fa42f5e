"""The universal threshold U_th (DECISIONS D6): calibration, where it is stored, and which one applies.

U_th = max over the negative types (silence, noise, offscreen) of the per-type third quartile of the
per-sample maxima of the native negative maps, pooled over the repetitions ("per_type"), or the Q3 of
all negatives pooled together ("pooled"); see docs/metrics.md. It is computed on a stated
calibration split, never silently on the test set being reported.

Where a threshold lives: after training, `calibrate_run` stores it in best.pt and writes the run's
threshold.json; `sslsan evaluate` memoises its calibrations beside the checkpoint
(<checkpoint>.uth.json, keyed by the checkpoint's and the split's hashes and the settings), so
several test sets calibrate once; `resolve_threshold` says which threshold an evaluation uses.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from sslsan.data.manifest import Manifest, manifest_hash, read_manifest
from sslsan.data.registry import DATASETS
from sslsan.evaluation.errors import EvaluationError, check_threshold
from sslsan.evaluation.eval_config import EvaluationConfig
from sslsan.evaluation.inference import run_inference
from sslsan.methods.checkpoint import LoadedModel, load_model, set_universal_threshold
from sslsan.metrics import per_type_quantiles, universal_threshold
from sslsan.utils.io import atomic_write_text

log = logging.getLogger(__name__)

RUN_RECORD = "threshold.json"  # what `sslsan train` writes beside checkpoints/


def calibrate_universal_threshold(
    localizer: LoadedModel,
    manifest: Manifest | str | Path,
    config: EvaluationConfig = EvaluationConfig(),
    *,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[float, dict]:
    """Calibrate U_th of a model on `manifest` with `config`'s repetitions, seed, mode, batch size, workers
    and noise pool; returns (threshold, details for the run record)."""
    config.check()
    if not isinstance(manifest, Manifest):
        manifest = read_manifest(manifest, allow_empty=True)
    if len(manifest) == 0:
        raise EvaluationError(f"{manifest.path}: calibration split is empty (no samples)")
    res = run_inference(localizer, manifest, repetitions=config.repetitions, seed=config.seed, device=device,
                        batch_size=config.batch_size, workers=config.workers, retrieval=False, progress=progress,
                        desc="calibrate U_th", noise_pool=config.noise_pool)
    neg_max = {t: m.ravel() for t, m in res.neg_max().items()}
    thr = float(universal_threshold(neg_max, mode=config.threshold_mode))
    details = {
        "value": thr,
        "mode": config.threshold_mode,
        "split": str(manifest.path),
        "split_sha256": manifest_hash(manifest.path),
        "n_samples": len(manifest),
        "repetitions": config.repetitions,
        "seed": config.seed,
        "noise_pool": config.noise_pool,
        "q3_by_type": per_type_quantiles(neg_max, 0.75),  # the same numbers the threshold is the max of
    }
    return thr, details


def calibrate_run(checkpoint: Path, manifest: Path, config: EvaluationConfig, *, device: torch.device,
                  progress: bool) -> dict[str, Any]:
    """Calibrate a trained checkpoint (a run's best.pt) on `manifest`, store U_th in the checkpoint and
    write the run's threshold.json; returns that record."""
    localizer = load_model(checkpoint, map_location=device)
    threshold, details = calibrate_universal_threshold(localizer, manifest, config, device=device, progress=progress)
    record = {"universal_threshold": float(threshold), "manifest": str(manifest), "manifest_sha256": details["split_sha256"],
              "mode": config.threshold_mode, "seed": config.seed, "checkpoint": str(checkpoint), "details": details}
    atomic_write_text(run_dir_of(checkpoint) / RUN_RECORD, json.dumps(record, indent=2, default=float) + "\n")
    set_universal_threshold(checkpoint, threshold)
    return record


def run_dir_of(checkpoint: Path) -> Path:
    """<run> for <run>/checkpoints/NAME.pt; the checkpoint's folder otherwise."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def run_record(checkpoint: Path, value: float) -> dict | None:
    """How `sslsan train` calibrated this checkpoint's stored U_th (its run's threshold.json), if it matches."""
    try:
        rec = json.loads((run_dir_of(checkpoint) / RUN_RECORD).read_text())
        if abs(float(rec["universal_threshold"]) - value) > 1e-12:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {k: rec[k] for k in ("manifest", "manifest_sha256", "mode", "seed") if k in rec}


def calibrate_memoised(localizer: LoadedModel, split: Manifest | Path, config: EvaluationConfig, *, device, progress: bool,
                       memo: Path | None, key: dict) -> tuple[float, dict]:
    """`calibrate_universal_threshold`, memoised in `memo` (a JSON list beside the checkpoint) under `key`
    + the split's hash and the settings: evaluating one checkpoint on several test sets calibrates once."""
    path = Path(split.path if isinstance(split, Manifest) else split)
    full = {**key, "split_sha256": manifest_hash(path), "mode": config.threshold_mode, "seed": config.seed,
            "repetitions": config.repetitions, "noise_pool": config.noise_pool}
    entries: list = []
    if memo is not None and memo.exists():
        try:
            entries = json.loads(memo.read_text())
        except (OSError, json.JSONDecodeError):
            entries = []
        entries = [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []  # a damaged memo
        for e in entries:
            if e.get("key") == full:
                return float(e["info"]["value"]), {**e["info"], "cached": str(memo)}
    value, info = calibrate_universal_threshold(localizer, split, config, device=device, progress=progress)
    if memo is not None:
        try:
            atomic_write_text(memo, json.dumps(entries + [{"key": full, "info": info}], indent=1) + "\n")
        except OSError as exc:  # a read-only checkpoint folder only costs the memo
            log.warning("%s: cannot store the calibrated threshold (%s)", memo, exc)
    return value, info


def resolve_threshold(localizer: LoadedModel, dataset: str, data_root: str | Path, test: Manifest, config: EvaluationConfig, *,
                      device, progress: bool = True, checkpoint: Path | None = None,
                      cache_key: dict | None = None) -> tuple[float, dict[str, Any]]:
    """U_th and where it came from: `config.threshold` when given; 'auto' = the checkpoint's (for a released file:
    the one published for its front-end policy, if any), else calibrated on the dataset's calibration split
    (DatasetInfo.calibration), else on the test set itself (stated as such); 'calibrate' = calibrated even
    when one is stored or published.

    `checkpoint` (the file the model came from; `cache_key`, e.g. its hash) memoises calibrations beside it."""
    if not (config.auto_threshold or config.calibrate_threshold):
        value = check_threshold(config.threshold)
        return value, {"value": value, "source": "given"}
    stored = None if config.calibrate_threshold else localizer.spec.universal_threshold
    if stored is not None:
        source = "checkpoint" if localizer.source == "sslsan" else f"published for the {localizer.policy} policy"
        info = {"value": float(stored), "source": source}
        record = run_record(checkpoint, float(stored)) if checkpoint is not None else None
        if record:
            info["details"] = record
        return float(stored), info
    memo = checkpoint.with_name(checkpoint.name + ".uth.json") if checkpoint is not None else None
    key = {**(cache_key or {}), "negatives_in_db": bool(localizer.spec.audio.negatives_in_db)}
    kw = dict(device=device, progress=progress, memo=memo, key=key)
    cal_name = DATASETS[dataset].calibration if dataset in DATASETS else None
    cal_path = Path(data_root) / cal_name if cal_name else None
    if cal_path is not None and cal_path.exists() and cal_path.resolve() != Path(test.path).resolve():
        value, info = calibrate_memoised(localizer, cal_path, config, **kw)
        return value, {**info, "source": f"calibrated on {cal_path.name} (D6, {info['mode']})"}
    log.warning("no calibration split for %s under %s: calibrating U_th on the test set itself", dataset, data_root)
    value, info = calibrate_memoised(localizer, test, config, **kw)
    return value, {**info, "source": "calibrated on the test set itself (no calibration split found)"}
