"""metrics.json and the Markdown report: the paper's Tables 1-3 for one run, and runs side by side.

Column sets follow the paper: Table 1 (Magnitude, Alignment, Separability), Table 2 (cIoU and AUC at
the universal and adaptive thresholds, pIA and AUCN per negative type, FLOC, FAUC), Table 3 (P@K and
A@K image→audio and audio→image), Table 4 (the ablation layout: cIoU_U, pIA per type, FLOC, Sep).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from sslsan.evaluation.errors import EvaluationError
from sslsan.evaluation.figures import maxima_from_maps, plot_models_max_distributions
from sslsan.evaluation.scoring import load_maps
from sslsan.utils.io import atomic_write_text

# (header, section, key, decimals); section None = top level
TABLE1 = [("Magnitude ↓", "alignment", "magnitude", 2), ("Alignment ↑", "alignment", "alignment", 2),
          ("Separability ↑", "separability", "sep", 4)]
TABLE2 = [
    ("cIoU Uth ↑", "localization", "ciou_u", 2), ("cIoU Adap ↑", "localization", "ciou_a", 2),
    ("AUC Uth ↑", "localization", "auc_u", 2), ("AUC Adap ↑", "localization", "auc_a", 2),
    ("pIA S ↓", "localization", "pia_silence", 2), ("AUCN S ↑", "localization", "aucn_silence", 2),
    ("pIA N ↓", "localization", "pia_noise", 2), ("AUCN N ↑", "localization", "aucn_noise", 2),
    ("pIA O ↓", "localization", "pia_offscreen", 2), ("AUCN O ↑", "localization", "aucn_offscreen", 2),
    ("FLOC ↑", "localization", "floc", 2), ("FAUC ↑", "localization", "fauc", 2),
]
TABLE3 = [(f"{d} {m}@{k} ↑", "retrieval", f"{key}_{m}@{k}", 2)
          for d, key in (("I→A", "i2a"), ("A→I", "a2i")) for m in ("P", "A") for k in (1, 5, 10)]
TABLE4 = [("cIoU Uth ↑", "localization", "ciou_u", 2), ("pIA S ↓", "localization", "pia_silence", 2),
          ("pIA N ↓", "localization", "pia_noise", 2), ("pIA O ↓", "localization", "pia_offscreen", 2),
          ("FLOC ↑", "localization", "floc", 2), ("Sep ↑", "separability", "sep", 4)]
REFERENCE = [("cIoU Uth", "ciou_u", 2), ("AUC Uth", "auc_u", 2), ("cIoU Adap", "ciou_a", 2), ("AUC Adap", "auc_a", 2)]
# the other protocols of the field (docs/metrics.md §7-8), each in its own table with its settings
EXTENDED = [("AP ↑", "extended", "ap", 2), ("max-F1 ↑", "extended", "max_f1", 2), ("LocAcc ↑", "extended", "locacc", 2),
            ("Prec@50 (≥) ↑", "extended", "precision_visible", 2), ("AUC vis ↑", "extended", "auc_visible", 2),
            ("visible", "extended", "n_visible", 0), ("non-sounding", "extended", "n_nonvisible", 0)]
INSTANCE = [("cIoU ↑", "instance", "ciou", 2), ("cIoU Adap ↑", "instance", "ciou_adap", 2), ("AUC ↑", "instance", "auc", 2),
            ("AUC Adap ↑", "instance", "auc_adap", 2), ("iIoU ↑", "instance", "iiou", 2), ("iIoU Adap ↑", "instance", "iiou_adap", 2),
            ("iAUC ↑", "instance", "iauc", 2), ("iAUC Adap ↑", "instance", "iauc_adap", 2), ("images", "instance", "n_images", 0)]


def _get(m: dict, section: str | None, key: str) -> Any:
    d = m.get(section, {}) if section else m
    return d.get(key) if isinstance(d, dict) else None


def _fmt(v: Any, decimals: int) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, (int, float)):
        return f"{v:.{decimals}f}"
    return str(v)


def markdown_table(header: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def table(named: dict[str, dict], columns: list[tuple], first: str = "run") -> str:
    """One Markdown table: a row per run (name → metrics dict), the given columns."""
    header = [first] + [c[0] for c in columns]
    rows = [[name] + [_fmt(_get(m, sec, key), dec) for _, sec, key, dec in columns] for name, m in named.items()]
    return markdown_table(header, rows)


def reference_table(named: dict[str, dict]) -> str:
    """Chance baselines (uniform and centre-prior maps) of each run's data."""
    rows = []
    for name, m in named.items():
        for ref, vals in (m.get("reference_maps") or {}).items():
            label = f"{ref} map" if len(named) == 1 else f"{ref} map ({name} data)"
            rows.append([label] + [_fmt(vals.get(k), d) for _, k, d in REFERENCE])
    return markdown_table(["reference"] + [c[0] for c in REFERENCE], rows)


def _threshold_line(m: dict) -> str:
    t = m.get("threshold_info") or {}
    src = t.get("source", "given")
    d = t.get("details") or {}
    if d.get("manifest"):
        src += f", calibrated on {Path(d['manifest']).name} ({d.get('mode', 'per_type')}) when trained"
    return f"Universal threshold U_th = {_fmt(m.get('threshold'), 4)} ({src})."


def _box_fix_lines(m: dict) -> list[str]:
    """A note when the ground-truth boxes needed fixing (counted in metrics.json `gt_box_fixes`)."""
    fixes = {k: n for k, n in (m.get("gt_box_fixes") or {}).items() if n}
    if not fixes:
        return []
    return ["", "Ground truth: " + ", ".join(f"{n} box(es) {k.replace('_', ' ')}" for k, n in fixes.items())
            + " (coordinates outside [0, 1] are clipped to the image; inverted boxes add no pixel)."]


def extended_settings(m: dict) -> str:
    """SLAVC's protocol settings of a run, in words (printed beside its numbers)."""
    st = (m.get("extended") or {}).get("settings") or {}
    if not st:
        return ""
    pred = (f"relative_prediction on (each map min-max normalised, pixels ≥ the value at {st.get('pred_size')} of its sort)"
            if st.get("relative_prediction") else f"relative_prediction off (scores ≥ {st.get('pred_thr')})")
    lo, hi = st.get("bounds", [0.0, 1.0])
    scores = ("the 224 × 224 map itself (its range is 0..1)" if (lo, hi) == (0.0, 1.0) else
              f"(map − {lo:g}) / ({hi:g} − {lo:g}) of the 224 × 224 map (its range)")
    return (f"IoU threshold {st.get('iou_thr')}; {pred}; confidence = mean of the top quarter of the scores; "
            f"scores = {scores}, upsampled {st.get('upsample', 'bilinear')}")


def protocol_sections(named: dict[str, dict], level: str = "##") -> list[str]:
    """The tables of the other protocols (SLAVC's extended, SSL-Align's instance) that any run has, with
    each run's settings; [] when no run has them."""
    parts: list[str] = []
    have = {n: m for n, m in named.items() if m.get("extended")}
    if have:
        runs_of: dict[str, list[str]] = {}
        for n, m in have.items():
            runs_of.setdefault(extended_settings(m), []).append(n)
        parts += [f"{level} SLAVC extended protocol: sounding and non-sounding pairs (percent)", "",
                  table(have, EXTENDED, "model" if len(named) == 1 else "run"), ""]
        parts += ([f"Settings: {next(iter(runs_of))}."] if len(runs_of) == 1 else
                  ["Settings differ between runs:", ""] + [f"- {', '.join(runs)}: {st}." for st, runs in runs_of.items()])
        parts += [""]
        parts += ["AP over all pairs (a non-sounding pair above the confidence threshold is a false positive); max-F1 = "
                  "the largest F1 at SLAVC's ten thresholds; LocAcc = share of sounding pairs with cIoU > 0.5 (strict, "
                  "as SLAVC's `precision_at_50`); Prec@50 (≥) is the same with ≥ (SLAVC's Precision-visible@50).", ""]
    have = {n: m for n, m in named.items() if m.get("instance")}
    if have:
        parts += [f"{level} SSL-Align instance protocol: every object of an image (percent)", "",
                  table(have, INSTANCE, "model" if len(named) == 1 else "run"), "",
                  "Settings: each map min-max normalised; cIoU at the median (> value at n/2 of its sort), adaptive at the "
                  "ground-truth area (> value at n − #GT); success at cIoU ≥ 0.5; iIoU / iAUC count an image only when "
                  "all its annotated objects succeed (samples grouped by the manifest's `group`).", ""]
    return parts


def run_report(m: dict, title: str, figures: list[str] | None = None) -> str:
    """The Markdown report of one evaluation run."""
    name = m.get("model", "model")
    named = {name: m}
    parts = [
        f"# {title}",
        "",
        f"{m.get('n_samples')} samples"
        + (f" (and {m['extended']['n_nonvisible']} non-sounding pairs for SLAVC's protocol)" if m.get("extended") else "")
        + f", {m.get('repetitions')} repetitions of the negatives, native map "
        f"{'x'.join(map(str, m.get('map_size', [])))}. {_threshold_line(m)}",
        *_box_fix_lines(m),
        "",
        "## Table 1: cross-modal alignment and separability",
        "",
        table(named, TABLE1, "model"),
        "",
        "Magnitude = distance between the centroids of the L2-normalised image and audio embeddings; "
        "Alignment = mean positive-pair cosine (DECISIONS D11). Sep = Q1(positive max) − Q3(negative max), "
        "negatives = silence, noise and offscreen pooled over repetitions.",
        "",
        "## Table 2: localization with positive and negative audio (percent)",
        "",
        table(named, TABLE2, "model"),
        "",
        "cIoU Uth is the mean cIoU at U_th; cIoU Adap the fraction of samples with adaptive-threshold "
        "cIoU ≥ 0.5, as the reference evaluation computes them.",
        "",
        "Chance baselines on the same ground truth (a constant map and a centre-prior Gaussian, thresholded "
        "at 0.5 and adaptively):",
        "",
        reference_table(named),
        "",
        "## Table 3: cross-modal retrieval (percent)",
        "",
        table(named, TABLE3, "model") if "retrieval" in m else m.get("retrieval_note", "retrieval not computed"),
        "",
        "Similarity of image i and audio j = max of their map; relevant = same manifest `category`; the gallery "
        "includes each query's own pair (DECISIONS D12). P@K = hits in the top K / K, A@K = at least one hit.",
        "",
        *protocol_sections(named),
        "## Per-sample maximum similarity",
        "",
        markdown_table(["audio", "mean", "median", "Q1", "Q3"],
                       [[k] + [_fmt(v.get(s), 4) for s in ("mean", "median", "q1", "q3")] for k, v in m.get("max_similarity", {}).items()]),
    ]
    if figures:
        parts += ["", "## Figures", ""] + [f"![{Path(f).stem}]({Path(f).name})" for f in figures]
    return "\n".join(parts) + "\n"


def comparison_markdown(named: dict[str, dict]) -> str:
    """Several runs side by side: Tables 2, 1, 3 and the ablation layout (Table 4)."""
    if not named:
        raise EvaluationError("nothing to compare")
    datasets = {m.get("dataset") for m in named.values()}
    parts = []
    if len(datasets) > 1:
        parts += [f"**Warning:** the runs were evaluated on different data ({', '.join(sorted(map(str, datasets)))}).", ""]
    thr = markdown_table(["run", "dataset", "U_th", "source"],
                         [[n, str(m.get("dataset")), _fmt(m.get("threshold"), 4), str((m.get("threshold_info") or {}).get("source", "given"))]
                          for n, m in named.items()])
    parts += [
        "## Localization with positive and negative audio (Table 2, percent)", "", table(named, TABLE2), "",
        "## Chance baselines", "", reference_table(named if len(datasets) > 1 else dict([next(iter(named.items()))])), "",
        "## Alignment and separability (Table 1)", "", table(named, TABLE1), "",
        "## Retrieval (Table 3, percent)", "", table(named, TABLE3), "",
        "## Ablation layout (Table 4)", "", table(named, TABLE4), "",
        *protocol_sections(named),
        "## Thresholds", "", thr,
    ]
    return "\n".join(parts) + "\n"


def load_run(path: str | Path) -> tuple[str, dict]:
    """(name, metrics) of a run directory or a metrics.json file; the name is the evaluated model's."""
    path = Path(path)
    f = path / "metrics.json" if path.is_dir() else path
    if not f.exists():
        raise EvaluationError(f"{f}: no metrics.json (run `sslsan evaluate` or `sslsan score` first)")
    try:
        m = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise EvaluationError(f"{f}: not valid JSON ({exc.msg})") from None
    if not isinstance(m, dict):
        raise EvaluationError(f"{f}: not the metrics of an evaluation (a JSON {type(m).__name__}, not an object)")
    name = m.get("model") or (path.name if path.is_dir() else (path.parent.name or path.stem))
    return str(name), m


def named_runs(paths: Iterable[str | Path], names: list[str] | None = None) -> dict[str, tuple[dict, Path]]:
    """Unique row name → (metrics, run folder) for runs given as folders or metrics.json paths.

    Default names are the evaluated models', with the dataset appended when the runs differ in it."""
    paths = [Path(p) for p in paths]
    loaded = [load_run(p) for p in paths]
    if names:
        if len(names) != len(loaded):
            raise EvaluationError(f"{len(names)} names for {len(loaded)} runs")
        loaded = [(n, m) for n, (_, m) in zip(names, loaded)]
    elif len({m.get("dataset") for _, m in loaded}) > 1:
        loaded = [(f"{n} @ {m.get('dataset')}", m) for n, m in loaded]
    named: dict[str, tuple[dict, Path]] = {}
    for (n, m), p in zip(loaded, paths):
        key, k = n, 2
        while key in named:
            key, k = f"{n} ({k})", k + 1
        named[key] = (m, p if p.is_dir() else p.parent)
    return named


def compare_runs(paths: Iterable[str | Path], names: list[str] | None = None) -> str:
    """Markdown comparison of runs given as run directories or metrics.json paths."""
    return comparison_markdown({n: m for n, (m, _) in named_runs(paths, names).items()})


def compare_figure(paths: Iterable[str | Path], names: list[str] | None, out: str | Path) -> Path:
    """Fig. 1 of several runs side by side, from their maps.npz files (run folders or metrics.json paths)."""
    runs = {}
    for name, (_, folder) in named_runs(paths, names).items():
        arrays = load_maps(folder / "maps.npz")
        runs[name] = (maxima_from_maps(arrays), float(arrays["threshold"]) if "threshold" in arrays else None)
    return plot_models_max_distributions(runs, out)


def write_metrics(path: str | Path, metrics: dict) -> Path:
    return atomic_write_text(path, json.dumps(metrics, indent=1, allow_nan=False) + "\n")
