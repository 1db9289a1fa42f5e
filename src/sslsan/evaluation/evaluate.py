"""`evaluate_checkpoint`: a checkpoint on a test set → maps.npz, metrics.json, report.md, figures.

Output folder:
  maps.npz        native positive/negative maps, GT, embeddings, similarity matrix (scoring.py layout)
  metrics.json    every metric (Tables 1-3, chance baselines) + how the run was made
  report.md       the paper's tables for this set, with the figures
  offscreen.json  the offscreen assignment (DECISIONS D7), so the run can be repeated
A threshold calibrated for a checkpoint is memoised beside it (<checkpoint>.uth.json, keyed by the
checkpoint's and the split's hashes and the settings), so several test sets calibrate once.
  fig1_max_similarity.png, fig2_<id>.png, log.jsonl
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sslsan.data.manifest import Manifest, manifest_hash, read_manifest
from sslsan.data.registry import DATASETS, dataset_manifest
from sslsan.evaluation.errors import EvaluationError, check_at_least, check_threshold
from sslsan.evaluation.negatives import NEGATIVE_TYPES, assign_offscreen, load_offscreen_assignment
from sslsan.utils.io import make_folder, sha256_file
from sslsan.utils.logging import JsonlLogger

log = logging.getLogger(__name__)


def read_test_manifest(path: str | Path) -> Manifest:
    manifest = read_manifest(path, allow_empty=True)
    if len(manifest) == 0:
        raise EvaluationError(f"{path}: test set is empty (no samples)")
    return manifest


def _calibrate(model, split: Manifest | Path, cache: Path | None, key: dict, **kw) -> tuple[float, dict]:
    """calibrate_universal_threshold, memoised in `cache` (a JSON list beside the checkpoint) under `key`
    + the split's hash: evaluating one checkpoint on several test sets calibrates once."""
    import json

    from sslsan.evaluation.calibrate import calibrate_universal_threshold
    from sslsan.utils.io import atomic_write_text

    path = Path(split.path if isinstance(split, Manifest) else split)
    full = {**key, "split_sha256": manifest_hash(path), "mode": kw["mode"], "seed": kw["seed"], "repetitions": kw["repetitions"],
            "noise_pool": kw.get("noise_pool")}
    entries: list = []
    if cache is not None and cache.exists():
        try:
            entries = json.loads(cache.read_text())
        except (OSError, json.JSONDecodeError):
            entries = []
        entries = [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []  # a damaged memo
        for e in entries:
            if e.get("key") == full:
                return float(e["info"]["value"]), {**e["info"], "cached": str(cache)}
    value, info = calibrate_universal_threshold(model, split, **kw)
    if cache is not None:
        try:
            atomic_write_text(cache, json.dumps(entries + [{"key": full, "info": info}], indent=1) + "\n")
        except OSError as exc:  # a read-only checkpoint folder only costs the memo
            log.warning("%s: cannot store the calibrated threshold (%s)", cache, exc)
    return value, info


def _training_calibration(checkpoint: Path, value: float) -> dict | None:
    """The calibration record `sslsan train` wrote for this checkpoint (<run>/threshold.json), if it matches."""
    import json

    run = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    try:
        rec = json.loads((run / "threshold.json").read_text())
        if abs(float(rec["universal_threshold"]) - value) > 1e-12:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {k: rec[k] for k in ("manifest", "manifest_sha256", "mode", "seed") if k in rec}


def resolve_threshold(threshold: str | float, model, dataset: str, data_root: str | Path, test: Manifest, *,
                      device, seed: int, repetitions: int, batch_size: int, workers: int = 0,
                      mode: str = "per_type", progress: bool = True, cache: Path | None = None,
                      cache_key: dict | None = None, noise_pool: int | None = None) -> tuple[float, dict[str, Any]]:
    """U_th and where it came from: given; 'auto' = the checkpoint's, else calibrated on the dataset's
    calibration split (DatasetInfo.calibration), else on the test set itself (stated as such).

    `cache` (+ `cache_key`, e.g. the checkpoint's hash) memoises calibrations across test sets."""
    if not (isinstance(threshold, str) and threshold == "auto"):
        value = check_threshold(threshold)
        return value, {"value": value, "source": "given"}
    stored = getattr(model, "universal_threshold", None)
    if stored is not None:
        info = {"value": float(stored), "source": "checkpoint"}
        if cache is not None:  # `sslsan train` records how it calibrated in <run>/threshold.json
            record = _training_calibration(cache.with_name(cache.name[: -len(".uth.json")]), float(stored))
            if record:
                info["details"] = record
        return float(stored), info
    kw = dict(device=device, seed=seed, repetitions=repetitions, mode=mode, batch_size=batch_size, workers=workers,
              progress=progress, noise_pool=noise_pool)
    key = {**(cache_key or {}), "negatives_in_db": bool(getattr(model.audio_config, "negatives_in_db", True))}
    cal_name = DATASETS[dataset].calibration if dataset in DATASETS else None
    cal_path = Path(data_root) / cal_name if cal_name else None
    if cal_path is not None and cal_path.exists() and cal_path.resolve() != Path(test.path).resolve():
        value, info = _calibrate(model, cal_path, cache, key, **kw)
        return value, {**info, "source": f"calibrated on {cal_path.name} (D6, {info['mode']})"}
    log.warning("no calibration split for %s under %s: calibrating U_th on the test set itself", dataset, data_root)
    value, info = _calibrate(model, test, cache, key, **kw)
    return value, {**info, "source": "calibrated on the test set itself (no calibration split found)"}


def default_out_dir(checkpoint: str | Path, dataset: str) -> Path:
    """<run>/eval_<dataset> for <run>/checkpoints/best.pt; eval_<dataset>_<stem> beside other checkpoints."""
    ck = Path(checkpoint)
    base = ck.parent.parent if ck.parent.name == "checkpoints" else ck.parent
    return base / (f"eval_{dataset}" if ck.stem == "best" else f"eval_{dataset}_{ck.stem}")


def _figures(out: Path, res, gt: np.ndarray, manifest: Manifest, threshold: float, n_examples: int, title: str) -> list[Path]:
    from sslsan.evaluation.figures import display_image, maxima_from_maps, plot_max_distributions, plot_overlays

    maxima = maxima_from_maps({"pos_maps": res.pos_maps, **{f"neg_maps_{t}": m for t, m in res.neg_maps.items()}})
    paths = [plot_max_distributions(maxima, threshold, out / "fig1_max_similarity.png", title)]
    n = len(manifest)
    for i in sorted({int(round(k * (n - 1) / max(1, n_examples - 1))) for k in range(min(n_examples, n))}):
        s = manifest[i]
        maps = {"positive": res.pos_maps[i], **{t: res.neg_maps[t][0, i] for t in NEGATIVE_TYPES}}
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in s.id)
        paths.append(plot_overlays(display_image(manifest.resolve(s.image)), maps, threshold, out / f"fig2_{safe}.png",
                                   gt=gt[i], title=f"{s.id} ({s.category or 'no category'})"))
    return paths


def evaluate_checkpoint(
    checkpoint: str | Path,
    dataset: str,
    data_root: str | Path,
    out_dir: str | Path,
    *,
    repetitions: int = 10,
    threshold: str | float = "auto",
    device: str | torch.device = "auto",
    batch_size: int = 64,
    seed: int = 0,
    workers: int = 0,
    figure_examples: int = 3,
    name: str | None = None,
    offscreen: str | Path | None = None,
    threshold_mode: str = "per_type",
    negatives_in_db: bool | None = None,
    noise_pool: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate `checkpoint` on `dataset` (a registry name) under `data_root`; returns the metrics.

    Writes maps.npz, metrics.json, report.md, offscreen.json, figures and log.jsonl into `out_dir`,
    as a whole: into a staging folder beside it, swapped in at the end (`swap_in`), so a failed or
    killed run leaves `out_dir` as it was. An `out_dir` holding an earlier evaluation is replaced; one
    holding other files is refused. `device`: "auto" (CUDA when available), "cpu", "cuda[:N]".
    `threshold`: 'auto' (checkpoint's U_th, else calibrated, see resolve_threshold) or a number.
    `offscreen`: an offscreen.json of an earlier run on the same manifest to reuse its assignment
    (its repetitions and seed then win over `repetitions` and `seed`). `threshold_mode`: calibration
    rule, "per_type" or "pooled" (D6). `negatives_in_db`: override the checkpoint's audio config
    (False = the vssl_eval convention: silence/noise reach the model as linear mel power, D1).
    `noise_pool`: K noise clips per repetition shared by all samples (a speed option; None = one
    clip per sample, the reference protocol); recorded in metrics.json.
    """
    from sslsan.models import load_model
    from sslsan.utils.device import resolve_device

    t0 = time.time()
    check_at_least(1, batch_size=batch_size, repetitions=repetitions, noise_pool=noise_pool)
    check_at_least(0, workers=workers, figure_examples=figure_examples)
    if not (isinstance(threshold, str) and threshold == "auto"):
        check_threshold(threshold)
    device = resolve_device(device)
    checkpoint, out = Path(checkpoint), Path(out_dir)
    manifest_path = dataset_manifest(dataset, data_root)
    manifest = read_test_manifest(manifest_path)
    check_out_dir(out)
    model = load_model(checkpoint, map_location=device)
    if negatives_in_db is not None:
        model.audio_config = dataclasses.replace(model.audio_config, negatives_in_db=bool(negatives_in_db))
    name = name or (checkpoint.parent.parent.name if checkpoint.parent.name == "checkpoints" else checkpoint.stem)
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)  # left by a killed run
    make_folder(staging)
    try:
        metrics = _evaluate_into(staging, model, checkpoint, dataset, data_root, manifest, t0=t0, repetitions=repetitions,
                                 threshold=threshold, device=device, batch_size=batch_size, seed=seed, workers=workers,
                                 figure_examples=figure_examples, name=name, offscreen=offscreen,
                                 threshold_mode=threshold_mode, noise_pool=noise_pool, progress=progress)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    swap_in(staging, out)
    return metrics


# what `sslsan evaluate` writes (and `sslsan demo` adds: "done"); an --out holding anything else is refused
EVALUATION_FILES = ("maps.npz", "metrics.json", "report.md", "offscreen.json", "log.jsonl", "fig1_max_similarity.png", "done")


def check_out_dir(out: Path) -> None:
    """An evaluation output folder must be new, empty, or hold an earlier evaluation (which is replaced)."""
    if out.exists() and not out.is_dir():
        raise EvaluationError(f"{out}: exists and is not a folder (--out names the output folder)")
    if out.is_dir():
        foreign = sorted(f.name for f in out.iterdir()
                         if not (f.name in EVALUATION_FILES or (f.name.startswith("fig2_") and f.suffix == ".png")))
        if foreign:
            raise EvaluationError(f"{out}: holds files `sslsan evaluate` did not write ({', '.join(foreign[:3])}"
                                  f"{', ...' if len(foreign) > 3 else ''}); choose a new or empty --out")


def swap_in(staging: Path, out: Path) -> None:
    """Replace `out` by the finished `staging` folder: two renames, so `out` never mixes two runs."""
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)


def _evaluate_into(out: Path, model, checkpoint: Path, dataset: str, data_root: str | Path, manifest: Manifest, *,
                   t0: float, repetitions: int, threshold, device, batch_size: int, seed: int, workers: int,
                   figure_examples: int, name: str, offscreen, threshold_mode: str, noise_pool: int | None,
                   progress: bool) -> dict[str, Any]:
    """The evaluation itself, every file written into `out` (the staging folder)."""
    from sslsan.evaluation.inference import box_fixes, gt_maps, run_inference
    from sslsan.evaluation.report import run_report, write_metrics
    from sslsan.evaluation.scoring import result_arrays, save_maps, score_arrays
    from sslsan.utils.io import atomic_write_text

    manifest_path = Path(manifest.path)
    gt_kind = DATASETS[dataset].gt
    ckpt_sha = sha256_file(checkpoint)
    with JsonlLogger(out / "log.jsonl") as jlog:
        jlog.log(event="start", checkpoint=str(checkpoint), dataset=dataset, manifest=str(manifest_path),
                 n_samples=len(manifest), repetitions=repetitions, device=str(device), seed=seed)
        gt = gt_maps(manifest, gt_kind)  # fail early on bad GT, before the model runs
        fixes = box_fixes(manifest) if gt_kind == "boxes" else {}
        if any(fixes.values()):
            warnings.warn(f"{manifest_path}: ground-truth boxes fixed: "
                          + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in fixes.items() if n) + " (see metrics.json)")
        if offscreen is not None:  # repeat an earlier run: its assignment, repetitions and seed
            assignment = load_offscreen_assignment(offscreen, manifest)
            repetitions, seed = len(assignment.seeds), assignment.seed
        else:
            assignment = assign_offscreen(manifest, repetitions, seed)
        thr, thr_info = resolve_threshold(threshold, model, dataset, data_root, manifest, device=device, seed=seed,
                                          repetitions=repetitions, batch_size=batch_size, workers=workers,
                                          mode=threshold_mode, progress=progress, noise_pool=noise_pool,
                                          cache=checkpoint.with_name(checkpoint.name + ".uth.json"),
                                          cache_key={"checkpoint_sha256": ckpt_sha, "image_size": model.image_size})
        jlog.log(event="threshold", **thr_info)
        assignment.save(out / "offscreen.json", manifest)
        res = run_inference(model, manifest, repetitions=repetitions, seed=seed, device=device, batch_size=batch_size,
                            workers=workers, offscreen=assignment, progress=progress, noise_pool=noise_pool)
        arrays = result_arrays(res, gt, thr)
        save_maps(out / "maps.npz", arrays)
        metrics = score_arrays(arrays)
        cfg = model.audio_config
        metrics.update({
            "model": name,
            "checkpoint": str(checkpoint),
            "checkpoint_sha256": ckpt_sha,
            "dataset": dataset,
            "manifest": str(manifest_path),
            "manifest_sha256": manifest_hash(manifest_path),
            "gt": gt_kind,
            "threshold_info": thr_info,
            "seed": seed,
            "repetition_seeds": res.repetition_seeds,
            "offscreen_fallback_draws": assignment.fallback,
            "offscreen_source": str(offscreen) if offscreen is not None else "drawn (D7)",
            "gt_box_fixes": fixes,
            "negatives_in_db": bool(cfg.negatives_in_db),
            "noise_pool": noise_pool,
            "image_size": res.extra["image_size"],
            "audio": {k: getattr(cfg, k) for k in ("sample_rate", "tile_seconds", "n_fft", "hop_length", "n_mels")},
            "device": str(device),
            "seconds": round(time.time() - t0, 2),
        })
        figs = _figures(out, res, gt, manifest, thr, figure_examples, f"{name} on {dataset}")
        write_metrics(out / "metrics.json", metrics)
        atomic_write_text(out / "report.md", run_report(metrics, f"{name} on {dataset}", [str(p) for p in figs]))
        jlog.log(event="done", seconds=metrics["seconds"], **{k: metrics["localization"].get(k) for k in ("ciou_u", "floc", "fauc")})
    return metrics
