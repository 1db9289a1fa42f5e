"""`evaluate_checkpoint`: a checkpoint on a test set → maps.npz, metrics.json, report.md, figures.

Output folder:
  maps.npz        native positive/negative maps, GT, embeddings, similarity matrix (scoring.py layout)
  metrics.json    every metric (Tables 1-3, chance baselines) + how the run was made
  report.md       the paper's tables for this set, with the figures
  offscreen.json  the offscreen assignment (DECISIONS D7), so the run can be repeated
  fig1_max_similarity.png, fig2_<id>.png, log.jsonl
The universal threshold comes from sslsan.evaluation.calibrate (`resolve_threshold`).
"""

from __future__ import annotations

import dataclasses
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
from sslsan.evaluation.calibrate import resolve_threshold, run_dir_of
from sslsan.evaluation.errors import EvaluationError
from sslsan.evaluation.eval_config import EvaluationConfig
from sslsan.evaluation.figures import (
    display_image,
    maxima_from_maps,
    plot_max_distributions,
    plot_overlays,
)
from sslsan.evaluation.inference import box_fixes, gt_maps, pair_maps, run_inference
from sslsan.evaluation.negatives import (
    NEGATIVE_TYPES,
    assign_offscreen,
    load_offscreen_assignment,
)
from sslsan.evaluation.report import run_report, write_metrics
from sslsan.evaluation.scoring import protocol_arrays, result_arrays, save_maps, score_arrays
from sslsan.methods.checkpoint import LoadedModel, load_model
from sslsan.utils.device import resolve_device
from sslsan.utils.io import atomic_write_text, make_folder, sha256_file
from sslsan.utils.logging import JsonlLogger


def read_test_manifest(path: str | Path) -> Manifest:
    manifest = read_manifest(path, allow_empty=True)
    if len(manifest) == 0:
        raise EvaluationError(f"{path}: test set is empty (no samples)")
    return manifest


def default_out_dir(checkpoint: str | Path, dataset: str) -> Path:
    """<run>/eval_<dataset> for <run>/checkpoints/best.pt; eval_<dataset>_<stem> beside other checkpoints."""
    ck = Path(checkpoint)
    base = run_dir_of(ck)
    return base / (f"eval_{dataset}" if ck.stem == "best" else f"eval_{dataset}_{ck.stem}")


def _figures(out: Path, res, gt: np.ndarray, manifest: Manifest, threshold: float, n_examples: int, title: str,
             upsample_mode: str) -> list[Path]:
    maxima = maxima_from_maps({"pos_maps": res.pos_maps, **{f"neg_maps_{t}": m for t, m in res.neg_maps.items()}})
    paths = [plot_max_distributions(maxima, threshold, out / "fig1_max_similarity.png", title)]
    n = len(manifest)
    for i in sorted({int(round(k * (n - 1) / max(1, n_examples - 1))) for k in range(min(n_examples, n))}):
        s = manifest[i]
        maps = {"positive": res.pos_maps[i], **{t: res.neg_maps[t][0, i] for t in NEGATIVE_TYPES}}
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in s.id)
        paths.append(plot_overlays(display_image(manifest.resolve(s.image)), maps, threshold, out / f"fig2_{safe}.png",
                                   gt=gt[i], title=f"{s.id} ({s.category or 'no category'})", upsample_mode=upsample_mode))
    return paths


def evaluate_checkpoint(
    checkpoint: str | Path,
    dataset: str,
    data_root: str | Path,
    out_dir: str | Path,
    config: EvaluationConfig | None = None,
    *,
    device: str | torch.device = "auto",
    name: str | None = None,
    method: str | None = None,
    policy: str | None = None,
    progress: bool = True,
    **settings: Any,
) -> dict[str, Any]:
    """Evaluate `checkpoint` on `dataset` (a registry name) under `data_root`; returns the metrics.

    `method`: the method the checkpoint must be of (needed for original files no reader recognises
    alone; sslsan checkpoints name their own). `policy`: the front-end policy of an original file
    (sslsan.methods.base.POLICIES).
    `config` (default: the reference protocol) holds the protocol's settings; `settings` are changes
    to it by field name (e.g. `repetitions=2, threshold=0.3338`): see `EvaluationConfig`.
    Writes maps.npz, metrics.json, report.md, offscreen.json, figures and log.jsonl into `out_dir`,
    as a whole: into a staging folder beside it, swapped in at the end (`swap_in`), so a failed or
    killed run leaves `out_dir` as it was. An `out_dir` holding an earlier evaluation is replaced; one
    holding other files is refused. `device`: "auto" (CUDA when available), "cpu", "cuda[:N]".
    `name`: the model's name in the report (default: the run folder's name).
    """
    t0 = time.time()
    cfg = (config or EvaluationConfig()).with_(**settings).check()
    device = resolve_device(device)
    checkpoint, out = Path(checkpoint), Path(out_dir)
    manifest_path = dataset_manifest(dataset, data_root)
    manifest = read_test_manifest(manifest_path)
    check_out_dir(out)
    localizer = load_model(checkpoint, map_location=device, method=method, policy=policy)
    if cfg.negatives_in_db is not None:
        localizer = localizer.with_spec(audio=dataclasses.replace(localizer.spec.audio,
                                                                  negatives_in_db=bool(cfg.negatives_in_db)))
    name = name or (checkpoint.parent.parent.name if checkpoint.parent.name == "checkpoints" else checkpoint.stem)
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)  # left by a killed run
    make_folder(staging)
    try:
        metrics = _evaluate_into(staging, localizer, checkpoint, dataset, data_root, manifest, cfg, t0=t0, device=device,
                                 name=name, progress=progress)
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


def _evaluate_into(out: Path, localizer: LoadedModel, checkpoint: Path, dataset: str, data_root: str | Path, manifest: Manifest,
                   cfg: EvaluationConfig, *, t0: float, device, name: str, progress: bool) -> dict[str, Any]:
    """The evaluation itself, every file written into `out` (the staging folder)."""
    manifest_path = Path(manifest.path)
    gt_kind = DATASETS[dataset].gt
    # an extended set: every metric on the sounding pairs; the non-sounding ones only feed SLAVC's protocol
    manifest, nonsounding = manifest.split_visible()
    if not len(manifest):
        raise EvaluationError(f"{manifest_path}: no sounding pair (every sample has visible: false)")
    ckpt_sha = sha256_file(checkpoint)
    with JsonlLogger(out / "log.jsonl") as jlog:
        jlog.log(event="start", checkpoint=str(checkpoint), dataset=dataset, manifest=str(manifest_path),
                 n_samples=len(manifest), n_nonsounding=len(nonsounding), repetitions=cfg.repetitions, device=str(device), seed=cfg.seed)
        gt = gt_maps(manifest, gt_kind)  # fail early on bad GT, before the model runs
        fixes = box_fixes(manifest) if gt_kind in ("boxes", "consensus") else {}
        if any(fixes.values()):
            warnings.warn(f"{manifest_path}: ground-truth boxes fixed: "
                          + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in fixes.items() if n) + " (see metrics.json)")
        if cfg.offscreen is not None:  # repeat an earlier run: its assignment, repetitions and seed
            assignment = load_offscreen_assignment(cfg.offscreen, manifest)
            cfg = cfg.with_(repetitions=len(assignment.seeds), seed=assignment.seed)
        else:
            assignment = assign_offscreen(manifest, cfg.repetitions, cfg.seed)
        thr, thr_info = resolve_threshold(localizer, dataset, data_root, manifest, cfg, device=device, progress=progress,
                                          checkpoint=checkpoint,
                                          cache_key={"checkpoint_sha256": ckpt_sha, "image_size": localizer.spec.image_size})
        jlog.log(event="threshold", **thr_info)
        assignment.save(out / "offscreen.json", manifest)
        res = run_inference(localizer, manifest, repetitions=cfg.repetitions, seed=cfg.seed, device=device,
                            batch_size=cfg.batch_size, workers=cfg.workers, offscreen=assignment, progress=progress,
                            noise_pool=cfg.noise_pool)
        spec = localizer.spec
        arrays = result_arrays(res, gt, thr, spec.map.upsample)
        groups = [s.group or s.id for s in manifest] if DATASETS[dataset].groups else None
        ns_maps = pair_maps(localizer, nonsounding, device=device, batch_size=cfg.batch_size, workers=cfg.workers,
                            progress=progress, desc="non-sounding pairs") if len(nonsounding) else None
        arrays.update(protocol_arrays(groups, [s.id for s in nonsounding], ns_maps, cfg.relative_prediction,
                                      spec.map.range))
        save_maps(out / "maps.npz", arrays)
        metrics = score_arrays(arrays)
        audio = spec.audio
        metrics.update({
            "model": name,
            "method": spec.method,
            "checkpoint_source": localizer.source,
            "policy": localizer.policy,
            "map": {"kind": spec.map.kind, "range": list(spec.map.range), "upsample": spec.map.upsample},
            "checkpoint": str(checkpoint),
            "checkpoint_sha256": ckpt_sha,
            "dataset": dataset,
            "manifest": str(manifest_path),
            "manifest_sha256": manifest_hash(manifest_path),
            "gt": gt_kind,
            "threshold_info": thr_info,
            "seed": cfg.seed,
            "repetition_seeds": res.repetition_seeds,
            "offscreen_fallback_draws": assignment.fallback,
            "offscreen_source": str(cfg.offscreen) if cfg.offscreen is not None else "drawn (D7)",
            "gt_box_fixes": fixes,
            "negatives_in_db": bool(audio.negatives_in_db),
            "noise_pool": cfg.noise_pool,
            "image_size": res.extra["image_size"],
            "audio": dataclasses.asdict(audio),
            "device": str(device),
            "seconds": round(time.time() - t0, 2),
        })
        figs = _figures(out, res, gt, manifest, thr, cfg.figure_examples, f"{name} on {dataset}", spec.map.upsample)
        write_metrics(out / "metrics.json", metrics)
        atomic_write_text(out / "report.md", run_report(metrics, f"{name} on {dataset}", [str(p) for p in figs]))
        jlog.log(event="done", seconds=metrics["seconds"], **{k: metrics["localization"].get(k) for k in ("ciou_u", "floc", "fauc")})
    return metrics
