"""`sslsan demo`: the main job on a fresh machine.

Generates the embedded benchmark, trains SSL-SaN (all four silence/noise switches on) and the SSL-TIE
baseline (all off) with the same seed, data and budget, evaluates both with positive, silence, noise
and offscreen audio, and writes a report directory with the paper's tables side by side, Fig. 1 and
Fig. 2, and the logs. It prints what it measured, finding by finding, including findings that do not
hold. `--ablation` adds the seven configurations of the paper's Table 4; `--seeds` runs more seeds.
`--methods M ...` trains other registered methods the same way, each without and with silence/noise
(M and M_san), and reports whether SSL-SaN's findings transfer to them (SSL-SaN vs SSL-TIE is `ssl_tie`,
the default).
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
from sslsan.data.registry import DATASETS
from sslsan.data.synthetic import default_workers, generate_dataset, preset_config
from sslsan.engine import ABLATIONS, TrainConfig, ablation_overrides, train
from sslsan.engine.run import checkpoint_paths
from sslsan.engine.train_config import validate_train_config
from sslsan.evaluation import EvaluationConfig
from sslsan.evaluation.evaluate import evaluate_checkpoint
from sslsan.evaluation.diagnostics import embedding_report, rf_aligned_ciou_a
from sslsan.evaluation.findings import Finding, findings, metric_value
from sslsan.evaluation.per_category import map_offset, per_category_markdown
from sslsan.evaluation.report import comparison_markdown, extended_settings, markdown_table
from sslsan.evaluation.scoring import load_maps, protocol_metrics
from sslsan.evaluation.training_curves import plot_training_curves
from sslsan.methods import get_method
from sslsan.models import read_checkpoint
from sslsan.utils.device import resolve_device
from sslsan.utils.io import atomic_write_text, make_folder

MAIN_VARIANTS = ("ssl_san", "ssl_tie")
DIAG_PARTS = ("alignment", "unpaired", "paired_gain", "magnitude", "image_centroid", "audio_centroid", "pos_object",
              "pos_background")
DISPLAY = {name: row.label for name, row in ABLATIONS.items()}
DEFAULT_METHODS = ("ssl_tie",)  # the base methods the demo trains (with and without silence/noise)
EVAL_SETS = ("synth-vggss", "synth-is3")
# SLAVC's extended protocol on the synth-vggss images, each also paired with a sound not in it: inference only
# (its AP / max-F1 / LocAcc need no negative repetitions; the other metrics there repeat synth-vggss with R = 1)
EXTENDED_SET = "synth-vggss-ext"
EXTENDED_METRICS = [("AP", "ap"), ("max-F1", "max_f1"), ("LocAcc", "locacc")]
# both readings of SLAVC's prediction: its published one (relative, the run's) and its default (absolute, rescored
# from the same maps.npz), since relative prediction cannot localize objects smaller than a quarter of the image
EXTENDED_SECTIONS = [("", "extended"), (" abs", "extended_absolute")]
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
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))  # base methods (ssl_tie: SSL-SaN vs SSL-TIE)
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
        if meta.get("complete") and meta.get("config") == to_dict(cfg) and dataset_manifest_exists(EXTENDED_SET, data):
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


@dataclass(frozen=True)
class Variant:
    """One trained configuration: a base method and a row of Table 4 (its silence/noise switches)."""

    name: str  # run folders, summary.json: the Table-4 row for SSL-TIE's family (ssl_san, ssl_tie, s, ...), else
    #            <method> (row ssl_tie: no silence/noise), <method>_san (row ssl_san), <method>_<row>
    method: str | None  # None: the config's default (SSL-TIE's architecture)
    row: str
    label: str


def variants_of(opts: DemoOptions) -> list[Variant]:
    """The configurations `opts` asks for, the two main ones of each method first."""
    rows = list(MAIN_VARIANTS) + ([r for r in ABLATIONS if r not in MAIN_VARIANTS] if opts.ablation else [])
    out = []
    for name in opts.methods:
        m = get_method(name)
        if m.family == "ssl_tie":
            out += [Variant(r, None, r, DISPLAY[r]) for r in rows]
            continue
        for r in rows:
            suffix = {"ssl_tie": "", "ssl_san": "_san"}.get(r, f"_{r}")
            label = {"ssl_tie": m.label, "ssl_san": f"{m.label} + SaN"}.get(r, f"{m.label} {DISPLAY[r]}")
            out.append(Variant(f"{m.name}{suffix}", m.name, r, label))
    names = [v.name for v in out]
    if len(set(names)) != len(names):
        raise ValueError(f"--methods names a method twice: {' '.join(opts.methods)}")
    return out


def transfer_pairs(variants: list[Variant]) -> list[tuple[Variant, Variant]]:
    """(with silence/noise, without) of each method, SSL-SaN vs SSL-TIE first."""
    by = {(v.method, v.row): v for v in variants}
    return [(by[(m, "ssl_san")], by[(m, "ssl_tie")]) for m in dict.fromkeys(v.method for v in variants)]


def as_variant(variant: Variant | str) -> Variant:
    """A `Variant`, or a Table-4 row of SSL-TIE's family by name (ssl_san, ssl_tie, s, ...)."""
    return variant if isinstance(variant, Variant) else Variant(variant, None, variant, DISPLAY[variant])


def variant_config(variant: Variant | str, seed: int, data: Path, opts: DemoOptions,
                   extra: tuple[str, ...] = ()) -> TrainConfig:
    """The training config of one demo model: `synth_cpu`, the data, seed and size, the method and its Table-4
    row's switches, the demo's overrides, then `extra` (e.g. `train.epochs=1` for a study's snapshot)."""
    variant = as_variant(variant)
    method = [f"method={variant.method}"] if variant.method else []
    overrides = [f"data.root={data.resolve()}", f"train.seed={seed}", f"data.image_size={opts.image_size}",
                 *method, *ablation_overrides(variant.row), *opts.overrides, *extra]
    return load_config(TrainConfig, "synth_cpu", overrides)


def run_finished(run_dir: Path, cfg: TrainConfig) -> bool:
    """Has `run_dir` trained all of `cfg`'s epochs and calibrated its threshold?"""
    latest = checkpoint_paths(run_dir)[0]
    return (latest.exists() and read_checkpoint(latest).get("epoch", 0) >= cfg.train.epochs
            and (run_dir / "threshold.json").exists())


def train_variant(variant: Variant | str, seed: int, data: Path, opts: DemoOptions, device: str) -> Path:
    """Train one configuration (or pick up a finished/interrupted run); returns its run directory."""
    return _train_or_reuse(variant, seed, data, opts, device)[0]


def _train_or_reuse(variant: Variant | str, seed: int, data: Path, opts: DemoOptions, device: str) -> tuple[Path, bool]:
    """`train_variant`, also saying whether a finished run was reused."""
    variant = as_variant(variant)
    run_dir = run_dir_of(variant.name, seed, opts)
    cfg = variant_config(variant, seed, data, opts)
    if run_finished(run_dir, cfg):
        _log(f"{variant.label} seed {seed}: finished run found in {run_dir}")
        return run_dir, True
    resume = checkpoint_paths(run_dir)[0].exists()
    _log(f"training {variant.label} (seed {seed}) → {run_dir}" + (" (resuming)" if resume else ""))
    train(cfg, run_dir, device=device, resume=resume, progress=opts.progress)
    return run_dir, False


def dataset_manifest_exists(dataset: str, data: Path) -> bool:
    return (data / DATASETS[dataset].manifest).exists()


def evaluate_variant(run_dir: Path, dataset: str, data: Path, opts: DemoOptions, device: str, *,
                     checkpoint: Path | None = None, out: Path | None = None) -> dict[str, Any]:
    """Evaluate a run's best.pt (or `checkpoint`) on `dataset` into its eval folder (or `out`), once:
    a finished evaluation there is read back. On the extended set, the same maps are also scored with
    SLAVC's absolute prediction (`extended_absolute`)."""
    out = out or eval_dir_of(dataset, run_dir, opts)
    metrics_file = out / "metrics.json"
    ckpt = checkpoint or checkpoint_paths(run_dir)[1]
    if metrics_file.exists() and out.joinpath("done").exists():
        m = json.loads(metrics_file.read_text())
    else:
        _log(f"evaluating {out.name} on {dataset}")
        cfg = (EvaluationConfig(repetitions=1, figure_examples=0) if dataset == EXTENDED_SET
               else EvaluationConfig(repetitions=opts.repetitions))
        m = evaluate_checkpoint(ckpt, dataset, data, out, cfg, device=device, name=out.name, progress=opts.progress)
        out.joinpath("done").write_text("")
    if dataset == EXTENDED_SET:
        arrays = load_maps(out / "maps.npz")
        arrays["relative_prediction"] = np.bool_(False)
        m = {**m, "extended_absolute": protocol_metrics(arrays)["extended"]}
    return m


def extended_table(results: list[tuple[str, list[dict]]]) -> str:
    """Markdown: SLAVC's extended protocol per configuration (mean ± std over seeds) with relative and absolute
    prediction, the settings below."""
    cols = [(f"{lab}{suffix}", sec, key) for suffix, sec in EXTENDED_SECTIONS for lab, key in EXTENDED_METRICS]
    lines = ["| model | " + " | ".join(f"{lab} ↑" for lab, _, _ in cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for name, runs in results:
        cells = [_fmt(*_mean_std([metric_value(m, sec, key) for m in runs]), len(runs)) for _, sec, key in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    first = results[0][1][0]
    e = first.get("extended") or {}
    lines += ["", f"{e.get('n_visible')} sounding + {e.get('n_nonvisible')} non-sounding pairs (percent). Settings: "
              f"{extended_settings(first)}. The \"abs\" columns rescore the same maps with relative_prediction off "
              "(SLAVC's own default: scores ≥ 0.5). Relative prediction marks at least half of every map, so an object "
              "whose box covers less than a quarter of the image can never reach cIoU 0.5; the synthetic objects' "
              "boxes cover 3-25 % of it (median 9 %)."]
    return "\n".join(lines)


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


def summary_table(results: dict[str, list[dict]], variants: list[str], labels: dict[str, str] = DISPLAY) -> str:
    """Markdown: one row per configuration (shown by `labels`), mean ± std over seeds of the key metrics."""
    head = "| model | " + " | ".join(lab + (" ↓" if low else " ↑") for lab, _, _, low in KEY_METRICS) + " |"
    lines = [head, "|" + "---|" * (len(KEY_METRICS) + 1)]
    for v, values in key_metrics(results, variants).items():
        cells = [_fmt(*values[lab], len(results[v]), 4 if key == "sep" else 2) for lab, _, key, _ in KEY_METRICS]
        lines.append(f"| {labels.get(v, v)} | " + " | ".join(cells) + " |")
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


def method_findings(results: dict[str, list[dict]], variants: list[Variant]) -> list[tuple[str, list[Finding]]]:
    """(heading, findings) per base method: the paper's claims with SSL-SaN read as the method with silence/noise
    and SSL-TIE as the method without (each method's variants keyed by their Table-4 row)."""
    out = []
    for san, base in transfer_pairs(variants):
        mine = [v for v in variants if v.method == san.method]
        found = findings({v.row: results[v.name] for v in mine}, {v.row: v.label for v in mine})
        out.append((f": {san.label} vs {base.label}" if len(variants) > len(mine) else "", found))
    return out


def findings_text(fs: list[Finding]) -> str:
    """The findings as the demo prints them: one verdict line and one line of numbers each."""
    return "\n".join(f"{f.label} ({f.per_seed}) [{f.table}] {f.text}\n    measured: {f.evidence}\n    paper:    {f.paper}"
                     for f in fs)


def write_report(opts: DemoOptions, data: Path, results: dict[str, dict[str, list[dict]]], variants: list[Variant],
                 all_findings: list[tuple[str, list[Finding]]], seconds: float, device: str,
                 reused: int = 0) -> tuple[Path, str]:
    """report.md + figures/ (Fig. 1, Fig. 2 of the first seed) + the full paper tables of the first seed."""
    report_dir = opts.out
    figs = report_dir / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    seeds = opts.seeds
    names, labels = [v.name for v in variants], {v.name: v.label for v in variants}
    main_pair = [v.name for v in transfer_pairs(variants)[0]]
    title = " · ".join(f"{a.label} vs {b.label}" for a, b in transfer_pairs(variants))
    parts = [
        f"# sslsan demo: {title} on the embedded benchmark", "",
        f"Measured on {device}, {len(seeds)} seed(s) ({', '.join(map(str, seeds))}), {seconds / 60:.1f} min in all"
        f"{f' (this invocation; {reused} of {len(variants) * len(seeds)} trained models were reused from an earlier one)' if reused else ''}. "
        f"Data: `{data}` ({opts.preset} preset, {opts.image_size} px, data seed {opts.data_seed}). Negatives: silence, noise, offscreen; "
        f"{opts.repetitions} repetitions. Universal threshold per model, calibrated on the validation split (D6).", "",
    ]
    printed = ""
    for ds in EVAL_SETS:
        res = results[ds]
        table = summary_table(res, names, labels)
        parts += [f"## {ds}: key metrics" + (" (mean ± std over seeds)" if len(seeds) > 1 else ""), "", table, ""]
        if ds == EVAL_SETS[0]:
            printed = table
            for heading, fs in all_findings:
                parts += [f"### Findings{heading}", "", f"The paper's findings that the embedded benchmark can test, "
                          f"judged on {ds} (mean over seeds; the rule: `sslsan.evaluation.findings`). Each that does "
                          "not hold is explained, with measurements, in docs/demo_results.md.", "", findings_table(fs), ""]
            # each maps.npz read once, for both the per-category table and the map offset
            maps = {labels[v]: [load_maps(eval_dir_of(ds, run_dir_of(v, s, opts), opts) / "maps.npz")
                                for s in seeds] for v in main_pair}
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
        first = {labels[v]: res[v][0] for v in names}
        parts += [f"### {ds}: the paper's tables (seed {seeds[0]})", "", comparison_markdown(first)]
        for v in names:
            src = eval_dir_of(ds, run_dir_of(v, seeds[0], opts), opts)
            for png in sorted(src.glob("*.png")):
                dst = figs / f"{ds}_{v}_{png.name}"
                shutil.copyfile(png, dst)
    parts += [f"## {EXTENDED_SET}: SLAVC's extended protocol" + (" (mean ± std over seeds)" if len(seeds) > 1 else ""),
              "", "Each synth-vggss image is also paired with the clip of a category it does not show; AP counts a "
              "confident non-sounding pair as a false positive (docs/metrics.md §7).", "",
              extended_table([(labels[v], results[EXTENDED_SET][v]) for v in names]), ""]
    plot_training_curves({labels[v]: run_dir_of(v, seeds[0], opts) for v in names},
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
    variants = variants_of(opts)  # before any work: an unknown method fails here
    make_folder(opts.out)
    data = prepare_data(opts)
    names = [v.name for v in variants]
    results: dict[str, dict[str, list[dict]]] = {ds: {v: [] for v in names} for ds in (*EVAL_SETS, EXTENDED_SET)}
    reused = 0
    for seed in opts.seeds:
        for v in variants:
            run_dir, was_reused = _train_or_reuse(v, seed, data, opts, device)
            reused += was_reused
            for ds in (*EVAL_SETS, EXTENDED_SET):
                results[ds][v.name].append(evaluate_variant(run_dir, ds, data, opts, device))
    seconds = time.time() - t0
    all_findings = method_findings(results[EVAL_SETS[0]], variants)
    fs = all_findings[0][1]
    report, table = write_report(opts, data, results, variants, all_findings, seconds, device, reused)
    summary = {
        "seconds": round(seconds, 1), "reused_runs": reused, "device": device, "seeds": opts.seeds, "data_seed": opts.data_seed,
        "variants": names, "methods": list(opts.methods),
        "findings": [f.as_dict() for f in fs],
        "transfer": {san.name: [f.as_dict() for f in found]
                     for (san, _), (_, found) in zip(transfer_pairs(variants), all_findings)},
        "key_metrics": {ds: key_metrics(results[ds], names) for ds in EVAL_SETS},
        "extended": {v: {f"{key}{suffix.replace(' ', '_')}": _mean_std([metric_value(m, sec, key) for m in results[EXTENDED_SET][v]])
                         for suffix, sec in EXTENDED_SECTIONS for _, key in EXTENDED_METRICS} for v in names},
    }
    atomic_write_text(opts.out / "summary.json", json.dumps(summary, indent=1, default=str) + "\n")
    print(f"\n{EVAL_SETS[0]} test set, universal threshold per model (percent; Sep raw):\n")
    print(table)
    print(f"\n{EXTENDED_SET}: SLAVC's extended protocol\n")
    print(extended_table([(v.label, results[EXTENDED_SET][v.name]) for v in variants]))
    for heading, found in all_findings:
        print(f"\nFindings{heading}")
        print(findings_text(found))
    print(f"\nreport: {report}  ({seconds / 60:.1f} min on {device})")
    return {"report": report, "findings": fs, "results": results, "summary": summary}
