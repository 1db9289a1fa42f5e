"""The tables of docs/demo_results.md from what benchmarks/demo_studies.py trained and evaluated.

`python benchmarks/demo_studies.py report` writes <root>/tables.md and <root>/tables.json. Every
number comes from the runs' metrics.json / maps.npz (and, for the negatives' embeddings, best.pt);
sizes, rows, seeds or epochs not trained yet are left out. Test numbers are on synth-vggss (the
demo's findings); the diagnostics are repeated on the validation split (synth-val).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sslsan.data.registry import DATASETS
from sslsan.demo import DISPLAY
from sslsan.engine import ABLATIONS
from sslsan.evaluation.diagnostics import (alignment_parts, category_alignment, embedding_report, negative_view,
                                           retrieval_by_scene, rf_aligned_ciou_a, rf_offset_px, shifted_ciou_a)
from sslsan.evaluation.findings import metric_value
from sslsan.evaluation.per_category import map_offset
from sslsan.evaluation.report import markdown_table
from sslsan.evaluation.scoring import load_maps
from sslsan.utils.io import atomic_write_text

SIZES = (96, 160, 224)
MAIN = ("ssl_tie", "ssl_san")
TEST, VAL = "synth-vggss", "synth-val"


def seeds_of(root: Path, size: int, variant: str, dataset: str) -> list[int]:
    """Training seeds of `variant` at `size` whose evaluation on `dataset` is finished."""
    found = []
    for d in (root / f"px{size}" / "eval" / dataset).glob(f"{variant}_seed*"):
        m = re.fullmatch(rf"{variant}_seed(\d+)", d.name)
        if m and (d / "done").exists():
            found.append(int(m.group(1)))
    return sorted(found)


def eval_dir(root: Path, size: int, dataset: str, variant: str, seed: int) -> Path:
    return root / f"px{size}" / "eval" / dataset / f"{variant}_seed{seed}"


def mean_std(values: list[float]) -> tuple[float, float, int]:
    a = np.asarray(values, dtype=np.float64)
    return (float(a.mean()), float(a.std()), len(a)) if len(a) else (float("nan"), float("nan"), 0)


def fmt(ms: tuple[float, float, int], decimals: int = 2) -> str:
    mean, std, n = ms
    if n == 0 or np.isnan(mean):
        return "–"
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}" if n > 1 else f"{mean:.{decimals}f}"


def per_seed(root: Path, size: int, variant: str, dataset: str, fn: Callable[[Path], dict[str, float]]) -> dict[str, list[float]]:
    """{quantity: [value per seed]} of `fn(eval folder)` over the finished seeds."""
    out: dict[str, list[float]] = {}
    for seed in seeds_of(root, size, variant, dataset):
        for k, v in fn(eval_dir(root, size, dataset, variant, seed)).items():
            out.setdefault(k, []).append(v)
    return out


def over_sizes(root: Path, dataset: str, view: Callable[[Path], dict[str, float]]):
    """(size, variant, {quantity: per-seed values}, {quantity: mean_std}) of SSL-TIE and SSL-SaN at each size."""
    for size in SIZES:
        for v in MAIN:
            vals = per_seed(root, size, v, dataset, view)
            if vals:
                yield size, v, vals, {k: mean_std(x) for k, x in vals.items()}


def localization_view(folder: Path) -> dict[str, float]:
    """cIoU_U, cIoU_A, the map offset and the receptive-field-aligned cIoU_A of one evaluation."""
    m = json.loads((folder / "metrics.json").read_text())
    arrays = load_maps(folder / "maps.npz")
    dx, dy = map_offset(arrays)
    cell = arrays["gt_maps"].shape[1] / arrays["pos_maps"].shape[1]  # GT pixels per map cell
    return {"ciou_u": metric_value(m, "localization", "ciou_u"), "ciou_a": metric_value(m, "localization", "ciou_a"),
            "dx": dx, "dy": dy, "ciou_a_rf": rf_aligned_ciou_a(arrays),
            "ciou_a_own": shifted_ciou_a(arrays, (dy / cell, dx / cell)),
            "magnitude": metric_value(m, "alignment", "magnitude"), "alignment": metric_value(m, "alignment", "alignment"),
            "sep": metric_value(m, "separability", "sep"),
            "i2a_P@1": metric_value(m, "retrieval", "i2a_P@1"), "a2i_P@1": metric_value(m, "retrieval", "a2i_P@1")}


def embedding_view(folder: Path) -> dict[str, float]:
    m = json.loads((folder / "metrics.json").read_text())
    out = embedding_report(load_maps(folder / "maps.npz"))
    out.update(ciou_u=metric_value(m, "localization", "ciou_u"), ciou_a=metric_value(m, "localization", "ciou_a"),
               sep=metric_value(m, "separability", "sep"), pia_o=metric_value(m, "localization", "pia_offscreen"))
    return out


def resolution_table(root: Path, dataset: str) -> tuple[str, list[dict[str, Any]]]:
    header = ["input (map)", "model", "seeds", "cIoU_U", "cIoU_A", "offset dx, dy (px at 224)", "RF offset (px)",
              "cIoU_A, cells at RF centres", "cIoU_A, own median offset removed", "Magnitude", "Alignment", "Sep"]
    rows, data = [], []
    for size, v, vals, ms in over_sizes(root, dataset, localization_view):
        data.append({"size": size, "variant": v, **vals})
        rows.append([f"{size} px ({size // 16} × {size // 16})", DISPLAY[v], str(ms["ciou_u"][2]), fmt(ms["ciou_u"]),
                     fmt(ms["ciou_a"]), f"{fmt(ms['dx'], 1)}, {fmt(ms['dy'], 1)}", f"{rf_offset_px(size // 16):.1f}",
                     fmt(ms["ciou_a_rf"]), fmt(ms["ciou_a_own"]), fmt(ms["magnitude"], 3), fmt(ms["alignment"], 3),
                     fmt(ms["sep"], 3)])
    return markdown_table(header, rows), data


EMBED_COLS = [("Alignment", "alignment", 3), ("unpaired v̄·ā", "unpaired", 3), ("paired gain", "paired_gain", 3),
              ("same category", "same_category", 3), ("Magnitude", "magnitude", 3), ("|v̄|", "image_centroid", 3),
              ("|ā|", "audio_centroid", 3), ("object cos", "pos_object", 3), ("background cos", "pos_background", 3),
              ("offscreen: object cos", "off_object", 3), ("offscreen: background cos", "off_background", 3),
              ("cIoU_U", "ciou_u", 1), ("Sep", "sep", 3)]


def embedding_table(root: Path, dataset: str, variants, size: int = 96) -> tuple[str, list[dict[str, Any]]]:
    header = ["row", "seeds"] + [c[0] for c in EMBED_COLS]
    rows, data = [], []
    for v in variants:
        vals = per_seed(root, size, v, dataset, embedding_view)
        if not vals:
            continue
        ms = {k: mean_std(x) for k, x in vals.items()}
        data.append({"variant": v, **vals})
        rows.append([DISPLAY[v], str(ms["alignment"][2])] + [fmt(ms[k], d) for _, k, d in EMBED_COLS])
    return markdown_table(header, rows), data


def budget_table(root: Path) -> tuple[str, list[dict[str, Any]]]:
    """Table 1's parts after each epoch (96 px, validation split), from the budget snapshots."""
    base = root / "px96" / "budget_eval" / VAL
    header = ["model", "epoch", "seeds"] + [c[0] for c in EMBED_COLS]
    rows, data = [], []
    for v in MAIN:
        for k in range(1, 11):
            folders = sorted(d for d in base.glob(f"{v}_seed*_epoch{k}") if (d / "done").exists())
            if not folders:
                continue
            vals: dict[str, list[float]] = {}
            for d in folders:
                for key, x in embedding_view(d).items():
                    vals.setdefault(key, []).append(x)
            ms = {key: mean_std(x) for key, x in vals.items()}
            data.append({"variant": v, "epoch": k, **vals})
            rows.append([DISPLAY[v], str(k), str(len(folders))] + [fmt(ms[key], d) for _, key, d in EMBED_COLS])
    return markdown_table(header, rows), data


def category_table(root: Path, dataset: str) -> tuple[str, dict[str, Any]]:
    """Alignment / Magnitude per category (96 px, mean over seeds)."""
    per: dict[str, dict[str, dict[str, list[float]]]] = {}
    for v in MAIN:
        for seed in seeds_of(root, 96, v, dataset):
            for cat, s in category_alignment(eval_dir(root, 96, dataset, v, seed) / "maps.npz").items():
                d = per.setdefault(v, {}).setdefault(cat, {})
                for k in ("n", "alignment", "magnitude"):
                    d.setdefault(k, []).append(s[k])
    if not per:
        return "", {}
    cats = sorted(set().union(*(p.keys() for p in per.values())))
    header = ["category", "n"] + [f"{DISPLAY[v]} {q}" for v in per for q in ("Alignment", "Magnitude")] + ["Alignment SaN − TIE"]
    rows = []
    for c in cats:
        cells = [c, str(int(np.mean(per[next(iter(per))][c]["n"])))]
        for v in per:
            cells += [f"{np.mean(per[v][c]['alignment']):.3f}", f"{np.mean(per[v][c]['magnitude']):.3f}"]
        if len(per) == 2:
            cells.append(f"{np.mean(per['ssl_san'][c]['alignment']) - np.mean(per['ssl_tie'][c]['alignment']):+.3f}")
        rows.append(cells)
    return markdown_table(header, rows), {v: {c: {k: list(x) for k, x in d.items()} for c, d in p.items()} for v, p in per.items()}


def negative_pull_table(root: Path, dataset: str) -> tuple[str, list[dict[str, Any]]]:
    """Where the silence and noise embeddings sit relative to the positives' centroids, and Table 1 with
    their two directions projected out of both modalities (96 px, best.pt of each run)."""
    from sslsan.evaluation.inference import negative_embeddings  # noqa: PLC0415 (torch)
    from sslsan.methods.checkpoint import load_model  # noqa: PLC0415

    header = ["model", "seeds", "cos(ā, a_S)", "cos(ā, a_N)", "cos(v̄, a_S)", "cos(v̄, a_N)", "mean cos(a_i, a_N)",
              "Alignment", "Alignment, a_S/a_N removed", "Magnitude", "Magnitude, a_S/a_N removed"]
    rows, data = [], []
    for v in MAIN:
        vals: dict[str, list[float]] = {}
        for seed in seeds_of(root, 96, v, dataset):
            ckpt = root / "px96" / "runs" / f"{v}_seed{seed}" / "checkpoints" / "best.pt"
            neg = {k: t.numpy().astype(np.float64) for k, t in negative_embeddings(load_model(ckpt)).items()}
            arrays = load_maps(eval_dir(root, 96, dataset, v, seed) / "maps.npz")
            img, aud = arrays["image_emb"].astype(np.float64), arrays["audio_emb"].astype(np.float64)
            unit = lambda x: x / np.linalg.norm(x)  # noqa: E731
            vbar, abar = unit(img.mean(0)), unit(aud.mean(0))
            basis = np.linalg.qr(np.stack([neg["silence"], neg["noise"]], axis=1))[0]  # (C, 2) orthonormal
            drop = lambda x: x - (x @ basis) @ basis.T  # noqa: E731
            before, after = alignment_parts(img, aud), alignment_parts(drop(img), drop(aud))
            row = {"cos_abar_s": float(abar @ unit(neg["silence"])), "cos_abar_n": float(abar @ unit(neg["noise"])),
                   "cos_vbar_s": float(vbar @ unit(neg["silence"])), "cos_vbar_n": float(vbar @ unit(neg["noise"])),
                   "mean_cos_a_n": float(np.mean(aud @ unit(neg["noise"]) / np.linalg.norm(aud, axis=1))),
                   "alignment": before["alignment"], "alignment_removed": after["alignment"],
                   "magnitude": before["magnitude"], "magnitude_removed": after["magnitude"]}
            for k, x in row.items():
                vals.setdefault(k, []).append(x)
        if not vals:
            continue
        ms = {k: mean_std(x) for k, x in vals.items()}
        data.append({"variant": v, **vals})
        rows.append([DISPLAY[v], str(ms["alignment"][2])] + [fmt(ms[k], 3) for k in (
            "cos_abar_s", "cos_abar_n", "cos_vbar_s", "cos_vbar_n", "mean_cos_a_n", "alignment", "alignment_removed",
            "magnitude", "magnitude_removed")])
    return markdown_table(header, rows), data


def scene_view(folder: Path) -> dict[str, float]:
    """`retrieval_by_scene` of one evaluation, with each image's categories from its data's manifest."""
    arrays = load_maps(folder / "maps.npz")
    metrics = json.loads((folder / "metrics.json").read_text())
    data = folder.parents[2] / "data"
    manifest = data / next(d.manifest for d in DATASETS.values() if d.name == metrics["dataset"])
    scenes = {r["id"]: r.get("scene_categories") or [r["category"]] for r in map(json.loads, manifest.read_text().splitlines())}
    return retrieval_by_scene(arrays["similarity"], arrays["labels"], [scenes[i] for i in arrays["ids"].astype(str)])


RETRIEVAL_COLS = [("I→A P@1", "i2a_P@1", 2), ("A→I P@1", "a2i_P@1", 2), ("image bias std", "image_bias_std", 4),
                  ("audio bias std", "audio_bias_std", 4), ("rest std", "rest_std", 4),
                  ("A→I P@1 w/o image bias", "a2i_P@1_without_image_bias", 2),
                  ("I→A P@1 w/o audio bias", "i2a_P@1_without_audio_bias", 2),
                  ("I→A top-1 any visible category", "i2a_P@1_any_visible", 2), ("I→A P@1, 1 object", "i2a_P@1_k1", 2),
                  ("2 objects", "i2a_P@1_k2", 2), ("3 objects", "i2a_P@1_k3", 2), ("bound mean 1/k", "bound", 2)]


def retrieval_table(root: Path, dataset: str) -> tuple[str, list[dict[str, Any]]]:
    header = ["input", "model", "seeds"] + [c[0] for c in RETRIEVAL_COLS]
    rows, data = [], []
    for size, v, vals, ms in over_sizes(root, dataset, lambda f: {**embedding_view(f), **scene_view(f)}):
        data.append({"size": size, "variant": v, **{k: vals[k] for _, k, _ in RETRIEVAL_COLS}})
        rows.append([f"{size} px", DISPLAY[v], str(ms["rest_std"][2])] + [fmt(ms[k], d) for _, k, d in RETRIEVAL_COLS])
    return markdown_table(header, rows), data


def offscreen_table(root: Path, dataset: str) -> tuple[str, list[dict[str, Any]]]:
    """Which negative type sets each model's U_th (per-type Q3 of the validation maxima) and pIA_O at it."""
    header = ["input", "model", "seeds", "U_th", "Q3 silence", "Q3 noise", "Q3 offscreen", "pIA_O", "AUCN_O",
              "pIA_O at the offscreen Q3 (test)", "Q1(pos) − Q3(offscreen) (test)"]
    rows, data = [], []
    for size in SIZES:
        for v in MAIN:
            vals: dict[str, list[float]] = {}
            for seed in seeds_of(root, size, v, dataset):
                t = json.loads((root / f"px{size}" / "runs" / f"{v}_seed{seed}" / "threshold.json").read_text())
                q3 = (t.get("details") or {}).get("q3_by_type") or {}
                m = json.loads((eval_dir(root, size, dataset, v, seed) / "metrics.json").read_text())
                row = {"u_th": float(t["universal_threshold"]), **{f"q3_{k}": float(q3.get(k, np.nan)) for k in ("silence", "noise", "offscreen")},
                       "pia_o": metric_value(m, "localization", "pia_offscreen"),
                       "aucn_o": metric_value(m, "localization", "aucn_offscreen")}
                view = negative_view(eval_dir(root, size, dataset, v, seed) / "maps.npz")
                row.update(pia_o_own=view["pia_offscreen_own_q3"], sep_o=view["sep_offscreen"])
                for k, x in row.items():
                    vals.setdefault(k, []).append(x)
            if not vals:
                continue
            ms = {k: mean_std(x) for k, x in vals.items()}
            data.append({"size": size, "variant": v, **vals})
            rows.append([f"{size} px", DISPLAY[v], str(ms["u_th"][2]), fmt(ms["u_th"], 3), fmt(ms["q3_silence"], 3),
                         fmt(ms["q3_noise"], 3), fmt(ms["q3_offscreen"], 3), fmt(ms["pia_o"]), fmt(ms["aucn_o"]),
                         fmt(ms["pia_o_own"]), fmt(ms["sep_o"], 3)])
    return markdown_table(header, rows), data


def write_tables(root: Path) -> Path:
    """Every table, as markdown (<root>/tables.md) and the per-seed numbers as JSON (<root>/tables.json)."""
    sections, data = [], {}
    table4 = list(ABLATIONS)
    for title, key, (md, d) in [
        (f"Resolution ({TEST}, test)", "resolution_test", resolution_table(root, TEST)),
        (f"Resolution ({VAL})", "resolution_val", resolution_table(root, VAL)),
        (f"Table 1's parts per Table-4 row, 96 px ({TEST})", "embedding_rows_test", embedding_table(root, TEST, table4)),
        (f"Table 1's parts per Table-4 row, 96 px ({VAL})", "embedding_rows_val", embedding_table(root, VAL, table4)),
        (f"Table 1's parts per input size ({TEST})", "embedding_sizes_test",
         _per_size(root, TEST)),
        (f"Table 1's parts after each epoch, 96 px ({VAL})", "budget_val", budget_table(root)),
        (f"Alignment per category, 96 px ({VAL})", "categories_val", category_table(root, VAL)),
        (f"The silence and noise embeddings, 96 px ({VAL})", "negatives_val", negative_pull_table(root, VAL)),
        (f"Retrieval and its biases ({TEST})", "retrieval_test", retrieval_table(root, TEST)),
        (f"Offscreen pIA and the universal threshold ({TEST})", "offscreen_test", offscreen_table(root, TEST)),
    ]:
        if md:
            sections += [f"## {title}", "", md, ""]
        data[key] = d
    atomic_write_text(root / "tables.json", json.dumps(data, indent=1, default=float) + "\n")
    return atomic_write_text(root / "tables.md", "# demo studies\n\n" + "\n".join(sections))


def _per_size(root: Path, dataset: str) -> tuple[str, list[dict[str, Any]]]:
    parts, data = [], []
    for size in SIZES:
        md, d = embedding_table(root, dataset, MAIN, size)
        if d:
            parts += [f"{size} px:", "", md, ""]
            data.append({"size": size, "rows": d})
    return "\n".join(parts), data
