"""`sslsan demo`: the main job on a fresh machine.

Generates the embedded benchmark, trains SSL-SaN (all four silence/noise switches on) and the SSL-TIE
baseline (all off) with the same seed, data and budget, evaluates both with positive, silence, noise
and offscreen audio, and writes a report directory with the paper's tables side by side, Fig. 1 and
Fig. 2, and the logs. It prints what it measured, finding by finding, including findings that do not
hold. `--ablation` adds the seven configurations of the paper's Table 4; `--seeds` runs more seeds.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sslsan.config import load_config, to_dict
from sslsan.data.synthetic import default_workers, generate_dataset, preset_config
from sslsan.engine import ABLATIONS, TrainConfig, ablation_overrides, train
from sslsan.engine.run import checkpoint_paths
from sslsan.engine.train_config import validate_train_config
from sslsan.evaluation import EvaluationConfig
from sslsan.evaluation.evaluate import evaluate_checkpoint
from sslsan.evaluation.diagnostics import embedding_report, rf_aligned_ciou_a
from sslsan.evaluation.findings import Finding, findings, metric_value
from sslsan.evaluation.per_category import map_offset, per_category_markdown
from sslsan.evaluation.report import comparison_markdown, markdown_table
from sslsan.evaluation.scoring import load_maps
from sslsan.evaluation.training_curves import plot_training_curves
from sslsan.models import read_checkpoint
from sslsan.utils.device import resolve_device
from sslsan.utils.io import atomic_write_text, make_folder

MAIN_VARIANTS = ("ssl_san", "ssl_tie")
DIAG_PARTS = ("alignment", "unpaired", "paired_gain", "magnitude", "image_centroid", "audio_centroid", "pos_object",
              "pos_background")
DISPLAY = {name: row.label for name, row in ABLATIONS.items()}
EVAL_SETS = ("synth-vggss", "synth-is3")
KEY_METRICS = [  # (label, section, key, lower is better)
    ("cIoU_U", "localization", "ciou_u", False),
    ("AUC_U", "localization", "auc_u", False),
    ("cIoU_A", "localization", "ciou_a", False),
    ("pIA_S", "localization", "pia_silence", True),
    ("pIA_N", "localization", "pia_noise", True),
    ("pIA_O", "localization", "pia_offscreen", True),
    ("FLOC", "localization", "floc", False),
    ("FAUC", "localization", "fauc", False),
    ("Sep", "separability", "sep", False),
    ("I→A A@1", "retrieval", "i2a_A@1", False),
]


@dataclass
class DemoOptions:
    out: Path = Path("demo_out")
    seeds: list[int] = field(default_factory=lambda: [0])
    data_seed: int = 0  # seed of the generated benchmark (the training seeds are `seeds`)
    ablation: bool = False
    device: str = "auto"
    preset: str = "default"  # synthetic benchmark size: default | tiny
    image_size: int = 96
    repetitions: int = EvaluationConfig.repetitions
    workers: int | None = None
    overrides: list[str] = field(default_factory=list)  # extra TrainConfig overrides, e.g. train.epochs=2
    progress: bool = True
    diagnostics: bool = False  # add the views of sslsan.evaluation.diagnostics to report.md (not metrics)


def _log(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def prepare_data(opts: DemoOptions) -> Path:
    """Generate the embedded benchmark once (reused when a complete copy with the same settings exists)."""
    data = opts.out / ("data" if opts.data_seed == 0 else f"data_seed{opts.data_seed}")
    cfg = preset_config(opts.preset, image_size=opts.image_size, seed=opts.data_seed)
    meta_path = data / "dataset.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("complete") and meta.get("config") == to_dict(cfg):
            _log(f"reusing the benchmark in {data}")
            return data
    _log(f"generating the embedded benchmark ({opts.preset}, {opts.image_size} px, data seed {opts.data_seed}) in {data}")
    generate_dataset(cfg, data, workers=opts.workers or default_workers(), overwrite=True, progress=opts.progress)
    return data


def run_name(variant: str, seed: int, opts: DemoOptions) -> str:
    """Folder name of one trained model: `ssl_san_seed0`, or `ssl_san_data3_seed0` on data seed 3."""
    return f"{variant}_seed{seed}" if opts.data_seed == 0 else f"{variant}_data{opts.data_seed}_seed{seed}"


def run_dir_of(variant: str, seed: int, opts: DemoOptions) -> Path:
    """Where one trained model lives: `<out>/runs/<run name>`."""
    return opts.out / "runs" / run_name(variant, seed, opts)


def eval_dir_of(dataset: str, run_dir: Path, opts: DemoOptions) -> Path:
    """Where one model's evaluation on `dataset` lives: `<out>/eval/<dataset>/<run name>`."""
    return opts.out / "eval" / dataset / run_dir.name


def variant_config(variant: str, seed: int, data: Path, opts: DemoOptions, extra: tuple[str, ...] = ()) -> TrainConfig:
    """The training config of one demo model: `synth_cpu`, the data, seed and size, the Table-4 row's
    switches, the demo's overrides, then `extra` (e.g. `train.epochs=1` for a study's snapshot)."""
    overrides = [f"data.root={data.resolve()}", f"train.seed={seed}", f"data.image_size={opts.image_size}",
                 *ablation_overrides(variant), *opts.overrides, *extra]
    return load_config(TrainConfig, "synth_cpu", overrides)


def train_variant(variant: str, seed: int, data: Path, opts: DemoOptions, device: str) -> Path:
    """Train one configuration (or pick up a finished/interrupted run); returns its run directory."""
    run_dir = run_dir_of(variant, seed, opts)
    cfg = variant_config(variant, seed, data, opts)
    latest, _ = checkpoint_paths(run_dir)
    resume = latest.exists()
    if resume and read_checkpoint(latest).get("epoch", 0) >= cfg.train.epochs and (run_dir / "threshold.json").exists():
        _log(f"{variant} seed {seed}: finished run found in {run_dir}")
        return run_dir
    _log(f"training {DISPLAY.get(variant, variant)} (seed {seed}) → {run_dir}" + (" (resuming)" if resume else ""))
    train(cfg, run_dir, device=device, resume=resume, progress=opts.progress)
    return run_dir


def evaluate_variant(run_dir: Path, dataset: str, data: Path, opts: DemoOptions, device: str, *,
                     checkpoint: Path | None = None, out: Path | None = None) -> dict[str, Any]:
    """Evaluate a run's best.pt (or `checkpoint`) on `dataset` into its eval folder (or `out`), once:
    a finished evaluation there is read back."""
    out = out or eval_dir_of(dataset, run_dir, opts)
    metrics_file = out / "metrics.json"
    ckpt = checkpoint or checkpoint_paths(run_dir)[1]
    if metrics_file.exists() and out.joinpath("done").exists():
        return json.loads(metrics_file.read_text())
    _log(f"evaluating {out.name} on {dataset}")
    m = evaluate_checkpoint(ckpt, dataset, data, out, EvaluationConfig(repetitions=opts.repetitions), device=device,
                            name=out.name, progress=opts.progress)
    out.joinpath("done").write_text("")
    return m


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(arr)), float(np.nanstd(arr)) if len(arr) > 1 else 0.0


def _fmt(mean: float, std: float, n: int, decimals: int = 2) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}" if n > 1 else f"{mean:.{decimals}f}"


def key_metrics(results: dict[str, list[dict]], variants: list[str]) -> dict[str, dict[str, tuple[float, float]]]:
    """{variant: {label: (mean, std) over seeds}} of the key metrics."""
    return {v: {lab: _mean_std([metric_value(m, sec, key) for m in results[v]]) for lab, sec, key, _ in KEY_METRICS}
            for v in variants}


def summary_table(results: dict[str, list[dict]], variants: list[str]) -> str:
    """Markdown: one row per configuration, mean ± std over seeds of the key metrics."""
    head = "| model | " + " | ".join(lab + (" ↓" if low else " ↑") for lab, _, _, low in KEY_METRICS) + " |"
    lines = [head, "|" + "---|" * (len(KEY_METRICS) + 1)]
    for v, values in key_metrics(results, variants).items():
        cells = [_fmt(*values[lab], len(results[v]), 4 if key == "sep" else 2) for lab, _, key, _ in KEY_METRICS]
        lines.append(f"| {DISPLAY.get(v, v)} | " + " | ".join(cells) + " |")
    ref = results[variants[0]][0].get("reference_maps") or {}
    for name, scores in ref.items():
        # chance maps only have the positive-localization scores; the other columns stay empty
        row = [f"{scores[k]:.2f}" if sec == "localization" and k in scores else "" for _, sec, k, _ in KEY_METRICS]
        lines.append(f"| chance: {name} map | " + " | ".join(row) + " |")
    return "\n".join(lines)


def diagnostics_markdown(maps: dict[str, list[dict]], dataset: str) -> str:
    """`--diagnostics`: views that explain the findings, never metrics of the paper (sslsan.evaluation.diagnostics),
    mean over seeds: cIoU_A with each cell at its receptive-field centre, Table 1's parts, Table 3's biases."""
    rows = []
    for name, runs in maps.items():
        report = [embedding_report(a) for a in runs]
        mean = {k: float(np.mean([r[k] for r in report])) for k in report[0]}
        rows.append([name, f"{np.mean([rf_aligned_ciou_a(a) for a in runs]):.2f}", *(f"{mean[k]:.3f}" for k in DIAG_PARTS),
                     *(f"{mean[k]:.4f}" for k in ("image_bias_std", "audio_bias_std", "rest_std")),
                     f"{mean['a2i_P@1_without_image_bias']:.2f}", f"{mean['i2a_P@1_without_audio_bias']:.2f}"])
    header = ["model", "cIoU_A, cells at RF centres", *DIAG_PARTS, "image bias std", "audio bias std", "rest std",
              "A→I P@1 w/o image bias", "I→A P@1 w/o audio bias"]
    return "\n".join([f"### {dataset}: diagnostics (`--diagnostics`; not metrics of the paper)", "",
                      "cIoU_A with each map cell drawn at its receptive-field centre (15/32 of a cell up and left of the "
                      "reference placement); Alignment = unpaired (v̄·ā, any image with any audio) + paired_gain; "
                      "Magnitude² = |v̄|² + |ā|² − 2 v̄·ā; the positive map's mean on the sounding object (pos_object) "
                      "and on the rest of the image (pos_background); the retrieval similarity split into image (row) "
                      "and audio (column) biases. See sslsan.evaluation.diagnostics and docs/demo_results.md.", "",
                      markdown_table(header, rows)])


def findings_table(fs: list[Finding]) -> str:
    """Markdown: one row per finding — table, the paper's claim and numbers, the verdict, what was measured."""
    rows = [[f.table, f.text, f"**{f.label}** ({f.per_seed})", f.evidence, f.paper, f.rule] for f in fs]
    return markdown_table(["table", "the paper's finding", "verdict", "measured", "paper", "judged"], rows)


def findings_text(fs: list[Finding]) -> str:
    """The findings as the demo prints them: one verdict line and one line of numbers each."""
    return "\n".join(f"{f.label} ({f.per_seed}) [{f.table}] {f.text}\n    measured: {f.evidence}\n    paper:    {f.paper}"
                     for f in fs)


def write_report(opts: DemoOptions, data: Path, results: dict[str, dict[str, list[dict]]], variants: list[str],
                 fs: list[Finding], seconds: float, device: str) -> tuple[Path, str]:
    """report.md + figures/ (Fig. 1, Fig. 2 of the first seed) + the full paper tables of the first seed."""
    report_dir = opts.out
    figs = report_dir / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    seeds = opts.seeds
    parts = [
        "# sslsan demo: SSL-SaN vs SSL-TIE on the embedded benchmark", "",
        f"Measured on {device}, {len(seeds)} seed(s) ({', '.join(map(str, seeds))}), {seconds / 60:.1f} min in all. "
        f"Data: `{data}` ({opts.preset} preset, {opts.image_size} px, data seed {opts.data_seed}). Negatives: silence, noise, offscreen; "
        f"{opts.repetitions} repetitions. Universal threshold per model, calibrated on the validation split (D6).", "",
    ]
    printed = ""
    for ds in EVAL_SETS:
        res = results[ds]
        table = summary_table(res, variants)
        parts += [f"## {ds}: key metrics" + (" (mean ± std over seeds)" if len(seeds) > 1 else ""), "", table, ""]
        if ds == EVAL_SETS[0]:
            printed = table
            parts += ["### Findings", "", f"The paper's findings that the embedded benchmark can test, judged on {ds} "
                      "(mean over seeds; the rule: `sslsan.evaluation.findings`). Each that does not hold is explained, "
                      "with measurements, in docs/demo_results.md.", "", findings_table(fs), ""]
            # each maps.npz read once, for both the per-category table and the map offset
            maps = {DISPLAY.get(v, v): [load_maps(eval_dir_of(ds, run_dir_of(v, s, opts), opts) / "maps.npz")
                                        for s in seeds] for v in MAIN_VARIANTS}
            offsets = {name: np.mean([map_offset(p) for p in paths], axis=0) for name, paths in maps.items()}
            parts += [f"### {ds}: per sound category" + (" (mean over seeds)" if len(seeds) > 1 else ""), "",
                      "Where each model's localization holds and where it fails (percent; max = median of the "
                      "positive-map maxima).", "", per_category_markdown(maps), "",
                      "Map offset (a diagnostic, not a metric of the paper): the median displacement of each "
                      "positive map's adaptive region from the centre of the ground truth, in pixels of the "
                      "224 × 224 ground truth (right, down): "
                      + "; ".join(f"{name} ({dx:+.1f}, {dy:+.1f})" for name, (dx, dy) in offsets.items())
                      + ". A map that sits consistently beside the object it found loses cIoU_A.", ""]
            if opts.diagnostics:
                parts += [diagnostics_markdown(maps, ds), ""]
        first = {DISPLAY.get(v, v): res[v][0] for v in variants}
        parts += [f"### {ds}: the paper's tables (seed {seeds[0]})", "", comparison_markdown(first)]
        for v in variants:
            src = eval_dir_of(ds, run_dir_of(v, seeds[0], opts), opts)
            for png in sorted(src.glob("*.png")):
                dst = figs / f"{ds}_{v}_{png.name}"
                shutil.copyfile(png, dst)
    plot_training_curves({DISPLAY.get(v, v): run_dir_of(v, seeds[0], opts) for v in variants},
                         figs / "training_curves.png", title=f"training diagnostics, seed {seeds[0]}")
    pngs = sorted(figs.glob("*.png"))
    parts += ["## Figures", ""] + [f"![{p.stem}](figures/{p.name})" for p in pngs] + [""]
    parts += ["## Files", "", "- `runs/<model>_seed<k>/`: config.yaml, log.jsonl (every loss term), checkpoints, threshold.json",
              "- `eval/<dataset>/<model>_seed<k>/`: maps.npz, metrics.json, report.md, offscreen.json, figures", ""]
    path = atomic_write_text(report_dir / "report.md", "\n".join(parts))
    return path, printed


def run_demo(opts: DemoOptions) -> dict[str, Any]:
    """Everything `sslsan demo` does; returns {"report": path, "findings": [...], "results": ...}."""
    t0 = time.time()
    device = str(resolve_device(opts.device))
    validate_train_config(load_config(TrainConfig, "synth_cpu", opts.overrides))  # a bad override fails before any work
    make_folder(opts.out)
    data = prepare_data(opts)
    variants = list(MAIN_VARIANTS) + ([v for v in ABLATIONS if v not in MAIN_VARIANTS] if opts.ablation else [])
    results: dict[str, dict[str, list[dict]]] = {ds: {v: [] for v in variants} for ds in EVAL_SETS}
    for seed in opts.seeds:
        for v in variants:
            run_dir = train_variant(v, seed, data, opts, device)
            for ds in EVAL_SETS:
                results[ds][v].append(evaluate_variant(run_dir, ds, data, opts, device))
    seconds = time.time() - t0
    fs = findings(results[EVAL_SETS[0]], DISPLAY)
    report, table = write_report(opts, data, results, variants, fs, seconds, device)
    summary = {
        "seconds": round(seconds, 1), "device": device, "seeds": opts.seeds, "data_seed": opts.data_seed,
        "variants": variants,
        "findings": [f.as_dict() for f in fs],
        "key_metrics": {ds: key_metrics(results[ds], variants) for ds in EVAL_SETS},
    }
    atomic_write_text(opts.out / "summary.json", json.dumps(summary, indent=1, default=str) + "\n")
    print(f"\n{EVAL_SETS[0]} test set, universal threshold per model (percent; Sep raw):\n")
    print(table)
    print()
    print(findings_text(fs))
    print(f"\nreport: {report}  ({seconds / 60:.1f} min on {device})")
    return {"report": report, "findings": fs, "results": results, "summary": summary}
