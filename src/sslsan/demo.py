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
from sslsan.evaluation.per_category import map_offset, per_category_markdown
from sslsan.evaluation.report import comparison_markdown, extended_settings
from sslsan.evaluation.scoring import load_maps, protocol_metrics
from sslsan.evaluation.training_curves import plot_training_curves
from sslsan.methods import get_method
from sslsan.models import read_checkpoint
from sslsan.utils.device import resolve_device
from sslsan.utils.io import atomic_write_text, make_folder

MAIN_VARIANTS = ("ssl_san", "ssl_tie")
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


def train_variant(variant: Variant, seed: int, data: Path, opts: DemoOptions, device: str) -> Path:
    """Train one configuration (or pick up a finished/interrupted run); returns its run directory."""
    run_dir = run_dir_of(variant.name, seed, opts)
    method = [f"method={variant.method}"] if variant.method else []
    overrides = [f"data.root={data.resolve()}", f"train.seed={seed}", f"data.image_size={opts.image_size}",
                 *method, *ablation_overrides(variant.row), *opts.overrides]
    cfg = load_config(TrainConfig, "synth_cpu", overrides)
    latest, _ = checkpoint_paths(run_dir)
    resume = latest.exists()
    if resume and read_checkpoint(latest).get("epoch", 0) >= cfg.train.epochs and (run_dir / "threshold.json").exists():
        _log(f"{variant.label} seed {seed}: finished run found in {run_dir}")
        return run_dir
    _log(f"training {variant.label} (seed {seed}) → {run_dir}" + (" (resuming)" if resume else ""))
    train(cfg, run_dir, device=device, resume=resume, progress=opts.progress)
    return run_dir


def dataset_manifest_exists(dataset: str, data: Path) -> bool:
    return (data / DATASETS[dataset].manifest).exists()


def evaluate_variant(run_dir: Path, dataset: str, data: Path, opts: DemoOptions, device: str) -> dict[str, Any]:
    out = eval_dir_of(dataset, run_dir, opts)
    metrics_file = out / "metrics.json"
    _, ckpt = checkpoint_paths(run_dir)
    if metrics_file.exists() and out.joinpath("done").exists():
        m = json.loads(metrics_file.read_text())
    else:
        _log(f"evaluating {run_dir.name} on {dataset}")
        cfg = (EvaluationConfig(repetitions=1, figure_examples=0) if dataset == EXTENDED_SET
               else EvaluationConfig(repetitions=opts.repetitions))
        m = evaluate_checkpoint(ckpt, dataset, data, out, cfg, device=device, name=run_dir.name, progress=opts.progress)
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
        cells = [_fmt(*_mean_std([_get(m, sec, key) for m in runs]), len(runs)) for _, sec, key in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    first = results[0][1][0]
    e = first.get("extended") or {}
    lines += ["", f"{e.get('n_visible')} sounding + {e.get('n_nonvisible')} non-sounding pairs (percent). Settings: "
              f"{extended_settings(first)}. The \"abs\" columns rescore the same maps with relative_prediction off "
              "(SLAVC's own default: scores ≥ 0.5). Relative prediction marks at least half of every map, so an object "
              "whose box covers less than a quarter of the image can never reach cIoU 0.5; the synthetic objects' "
              "boxes cover 3-25 % of it (median 9 %)."]
    return "\n".join(lines)


def _get(m: dict, section: str, key: str) -> float:
    v = (m.get(section) or {}).get(key)
    return float("nan") if v is None else float(v)


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(arr)), float(np.nanstd(arr)) if len(arr) > 1 else 0.0


def _fmt(mean: float, std: float, n: int, decimals: int = 2) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}" if n > 1 else f"{mean:.{decimals}f}"


def key_metrics(results: dict[str, list[dict]], variants: list[str]) -> dict[str, dict[str, tuple[float, float]]]:
    """{variant: {label: (mean, std) over seeds}} of the key metrics."""
    return {v: {lab: _mean_std([_get(m, sec, key) for m in results[v]]) for lab, sec, key, _ in KEY_METRICS}
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


@dataclass
class Finding:
    text: str
    holds: bool
    evidence: str
    per_seed: str = ""


# Margins of the paper's claims as the demo checks them (percentage points / percent of the image).
CIOU_MARGIN = 3.0  # SSL-SaN's cIoU_U and cIoU_A at most this far below SSL-TIE's
QUIET_PIA = 0.1  # SSL-SaN's pIA for silence and noise at most this (and at most SSL-TIE's)
CHANCE_MARGIN = 5.0  # "far above chance": cIoU_U and AUC_U at least this above the best chance map


def findings(results: dict[str, list[dict]], san_name: str = "ssl_san", base_name: str = "ssl_tie",
             S: str = "SSL-SaN", T: str = "SSL-TIE") -> list[Finding]:
    """The paper's claims, checked on the mean over seeds of the measured numbers (never assumed): SSL-SaN
    (`san_name`, shown as `S`) against SSL-TIE (`base_name`, `T`), or any method with silence/noise against
    the same method without.

    Each finding also says on how many seeds it holds seed by seed.
    """
    san, tie = results[san_name], results[base_name]
    n = len(san)

    def val(m, key, section="localization"):
        return _get(m, section, key)

    def mean(runs, key, section="localization"):
        return _mean_std([val(m, key, section) for m in runs])[0]

    def avg(runs) -> dict:
        """The mean over seeds in the layout of one run's metrics."""
        keys = [("localization", k) for k in ("ciou_u", "auc_u", "ciou_a", "pia_silence", "pia_noise", "floc")]
        out: dict = {"localization": {}, "separability": {}}
        for sec, k in keys + [("separability", "sep")]:
            out[sec][k] = mean(runs, k, sec)
        return out

    def per_seed(pred) -> str:
        ok = sum(bool(pred(a, b)) for a, b in zip(san, tie))
        return f"{ok}/{n} seeds"

    ref = san[0].get("reference_maps") or {}
    chance_ciou = max((r.get("ciou_u", 0.0) for r in ref.values()), default=0.0)
    chance_auc = max((r.get("auc_u", 0.0) for r in ref.values()), default=0.0)
    ms, mt = avg(san), avg(tie)

    def beats_chance(a, b):
        return all(val(m, "ciou_u") >= chance_ciou + CHANCE_MARGIN and val(m, "auc_u") >= chance_auc + CHANCE_MARGIN
                   for m in (a, b))

    def as_good(a, b):
        return all(val(a, k) >= val(b, k) - CIOU_MARGIN for k in ("ciou_u", "ciou_a"))

    def quiet(a, b):
        return all(val(a, f"pia_{t}") <= QUIET_PIA and val(a, f"pia_{t}") <= val(b, f"pia_{t}") for t in ("silence", "noise"))

    def separates(a, b):
        return val(a, "sep", "separability") > val(b, "sep", "separability")

    def floc(a, b):
        return val(a, "floc") >= val(b, "floc")

    def finding(text, pred, evidence):
        return Finding(text, bool(pred(ms, mt)), evidence, per_seed(pred))

    return [
        finding(f"Both models localize far better than chance (cIoU_U and AUC_U at least {CHANCE_MARGIN:g} points above "
                "the best chance map).", beats_chance,
                f"cIoU_U {S} {ms['localization']['ciou_u']:.2f}, {T} {mt['localization']['ciou_u']:.2f} vs chance "
                f"{chance_ciou:.2f}; AUC_U {ms['localization']['auc_u']:.2f}, {mt['localization']['auc_u']:.2f} vs chance "
                f"{chance_auc:.2f}"),
        finding(f"{S} localizes positives as well as {T} (cIoU_U and cIoU_A at most {CIOU_MARGIN:g} points below).",
                as_good,
                f"cIoU_U {S} {ms['localization']['ciou_u']:.2f} vs {T} {mt['localization']['ciou_u']:.2f}; "
                f"cIoU_A {ms['localization']['ciou_a']:.2f} vs {mt['localization']['ciou_a']:.2f}"),
        finding(f"{S} stays quiet for silence and noise (pIA ≤ {QUIET_PIA:g} % and no higher than {T}'s).", quiet,
                f"pIA silence {S} {ms['localization']['pia_silence']:.2f} % vs {T} "
                f"{mt['localization']['pia_silence']:.2f} %; noise {ms['localization']['pia_noise']:.2f} % vs "
                f"{mt['localization']['pia_noise']:.2f} %"),
        finding(f"{S} separates positive from negative audio better (higher Separability).", separates,
                f"Sep {S} {ms['separability']['sep']:.4f} vs {T} {mt['separability']['sep']:.4f}"),
        finding(f"{S}'s FLOC is at least the baseline's.", floc,
                f"FLOC {S} {ms['localization']['floc']:.2f} vs {T} {mt['localization']['floc']:.2f}"),
    ]


def write_report(opts: DemoOptions, data: Path, results: dict[str, dict[str, list[dict]]], variants: list[Variant],
                 all_findings: list[tuple[str, list[Finding]]], seconds: float, device: str) -> tuple[Path, str]:
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
        f"Measured on {device}, {len(seeds)} seed(s) ({', '.join(map(str, seeds))}), {seconds / 60:.1f} min in all. "
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
                parts += [f"### Findings{heading}", ""]
                for f in fs:
                    parts.append(f"- **{'HOLDS' if f.holds else 'DOES NOT HOLD'}** ({f.per_seed}): {f.text} {f.evidence}.")
                parts.append("")
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
    for seed in opts.seeds:
        for v in variants:
            run_dir = train_variant(v, seed, data, opts, device)
            for ds in (*EVAL_SETS, EXTENDED_SET):
                results[ds][v.name].append(evaluate_variant(run_dir, ds, data, opts, device))
    seconds = time.time() - t0
    all_findings = [(f": {san.label} vs {base.label}" if len(variants) > 2 else "",
                     findings(results[EVAL_SETS[0]], san.name, base.name, san.label, base.label))
                    for san, base in transfer_pairs(variants)]
    fs = all_findings[0][1]
    report, table = write_report(opts, data, results, variants, all_findings, seconds, device)

    def as_json(f: Finding) -> dict:
        return {"text": f.text, "holds": f.holds, "evidence": f.evidence, "per_seed": f.per_seed}

    summary = {
        "seconds": round(seconds, 1), "device": device, "seeds": opts.seeds, "data_seed": opts.data_seed,
        "variants": names, "methods": list(opts.methods),
        "findings": [as_json(f) for f in fs],
        "transfer": {san.name: [as_json(f) for f in found]
                     for (san, _), (_, found) in zip(transfer_pairs(variants), all_findings)},
        "key_metrics": {ds: key_metrics(results[ds], names) for ds in EVAL_SETS},
        "extended": {v: {f"{key}{suffix.replace(' ', '_')}": _mean_std([_get(m, sec, key) for m in results[EXTENDED_SET][v]])
                         for suffix, sec in EXTENDED_SECTIONS for _, key in EXTENDED_METRICS} for v in names},
    }
    atomic_write_text(opts.out / "summary.json", json.dumps(summary, indent=1, default=str) + "\n")
    print(f"\n{EVAL_SETS[0]} test set, universal threshold per model (percent; Sep raw):\n")
    print(table)
    print(f"\n{EXTENDED_SET}: SLAVC's extended protocol\n")
    print(extended_table([(v.label, results[EXTENDED_SET][v.name]) for v in variants]))
    for heading, found in all_findings:
        print(f"\nFindings{heading}")
        for f in found:
            print(f"{'HOLDS' if f.holds else 'DOES NOT HOLD'} ({f.per_seed}): {f.text}\n    measured: {f.evidence}")
    print(f"\nreport: {report}  ({seconds / 60:.1f} min on {device})")
    return {"report": report, "findings": fs, "results": results, "summary": summary}
