"""Writing the benchmark: one item (JPEG frame, WAV clip, PNG mask, manifest rows) and the whole dataset.

Each item draws its randomness from `numpy_rng(seed, split, index)`, so the output is identical for
any number of worker processes, and the same seed gives byte-identical files.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from tqdm import tqdm

from sslsan.data.manifest import Sample, write_manifest
from sslsan.data.registry import DATASETS
from sslsan.data.synthetic.scene import make_scene, mask_box
from sslsan.data.synthetic.sound import clip_for
from sslsan.data.synthetic.synth_config import SynthConfig, SynthError, categories
from sslsan.media import jpeg_bytes, mask_png_bytes, wav_bytes
from sslsan.utils.io import atomic_write_text, make_folder
from sslsan.utils.seed import numpy_rng

GENERATOR = "sslsan.data.synthetic"
GENERATOR_VERSION = 1

# split name -> manifest file name (the registry names the test manifests) and rng key
SPLIT_MANIFESTS = {
    "train": "train.jsonl",
    "val": DATASETS["synth-val"].manifest,
    "test_vggss": DATASETS["synth-vggss"].manifest,
    "test_is3": DATASETS["synth-is3"].manifest,
}
_SPLIT_KEY = {"train": 0, "val": 1, "test_vggss": 2, "test_is3": 3}
# SLAVC's extended protocol: test_vggss plus a non-sounding pair per image, drawn from its own stream (key 4)
# after every item is written, so the other splits are byte-identical with or without it
EXTENDED_MANIFEST = DATASETS["synth-vggss-ext"].manifest
_EXTENDED_KEY = 4


def _write(root: Path, rel: str, data: bytes) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)  # the folder is new; manifests (written last, atomically) make it valid
    return rel


def generate_item(split: str, index: int, cfg: SynthConfig, root: Path) -> list[dict[str, Any]]:
    """Render, synthesise and write one scene of `split`; returns its manifest rows (1, or 2 for IS3)."""
    rng = numpy_rng(cfg.seed, _SPLIT_KEY[split], index)
    stem = f"{index:06d}"
    if split == "test_is3":
        scene = make_scene(rng, cfg, 2, 2, min_sep=1.0)
        annotations = [[o] for o in scene.objects]
    else:
        n_obj = int(rng.integers(1, cfg.max_objects + 1))
        two = split != "test_vggss" and n_obj >= 2 and rng.random() < cfg.p_two_sounding
        n_snd = 2 if two else 1
        scene = make_scene(rng, cfg, n_obj, n_snd, min_sep=0.75)
        sounding = [o for o in scene.objects if o.sounding]
        rng.shuffle(sounding)  # which sounding object is loudest is random
        annotations = [sounding]
    image_rel = _write(root, f"{split}/images/{stem}.jpg", jpeg_bytes(scene.image, cfg.jpeg_quality))
    scene_cats = sorted(set(scene.names))
    rows = []
    for k, objs in enumerate(annotations):
        suffix = f"_{k}" if split == "test_is3" else ""
        wave_, snr, gains = clip_for(objs, rng, cfg)
        idx = [scene.objects.index(o) for o in objs]
        mask = np.zeros_like(scene.masks[0])
        for i in idx:
            mask |= scene.masks[i]
        names = [scene.names[i] for i in idx]
        rows.append(
            vars(Sample(
                id=f"{split}_{stem}{suffix}",
                image=image_rel,
                audio=_write(root, f"{split}/audio/{stem}{suffix}.wav", wav_bytes(wave_, cfg.sample_rate)),
                boxes=[b for b in (mask_box(scene.masks[i]) for i in idx) if b is not None],  # hidden: no box
                mask=_write(root, f"{split}/masks/{stem}{suffix}.png", mask_png_bytes(mask)),
                category=names[0],
                scene_categories=scene_cats,
                group=f"{split}_{stem}" if split == "test_is3" else None,
                extra={
                    "sounding": names,
                    "gains_db": [round(g, 2) for g in gains],
                    "snr_db": round(snr, 2),
                    "silent": [n for o, n in zip(scene.objects, scene.names) if o not in objs],
                },
            ))
        )
    return rows


def extended_rows(rows: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """The synth-vggss-ext manifest rows: the test_vggss rows, then each image with the clip of another test
    item whose category is not in the image (`visible: false`), drawn uniformly by `numpy_rng(seed, 4, i)`.
    An image for which every other clip's category is in it gets no pair."""
    out = list(rows)
    for i, r in enumerate(rows):
        banned = set(r["scene_categories"])
        eligible = [o for j, o in enumerate(rows) if j != i and o["category"] not in banned]
        if not eligible:
            continue
        o = eligible[int(numpy_rng(seed, _EXTENDED_KEY, i).integers(len(eligible)))]
        out.append(vars(Sample(id=f"{r['id']}+{o['id']}", image=r["image"], audio=o["audio"], category=o["category"],
                               scene_categories=r["scene_categories"], extra={"image_of": r["id"], "audio_of": o["id"]},
                               visible=False)))
    return out


_WORKER_ARGS: tuple[SynthConfig, Path] | None = None


def _init_worker(cfg: SynthConfig, root: Path) -> None:
    global _WORKER_ARGS
    _WORKER_ARGS = (cfg, root)


def _run_item(task: tuple[str, int]) -> list[dict[str, Any]]:
    cfg, root = _WORKER_ARGS  # type: ignore[misc]
    return generate_item(task[0], task[1], cfg, root)


def _written_by_us(meta: Path) -> bool:
    """Whether a dataset.json says `sslsan data synth` wrote its folder; SynthError if it is damaged."""
    try:
        data = json.loads(meta.read_text() or "{}")
    except json.JSONDecodeError as exc:
        raise SynthError(f"{meta}: damaged (not valid JSON: {exc.msg}, line {exc.lineno}), so the folder cannot be "
                         "recognised as a generated benchmark; delete it or choose another --out") from None
    return isinstance(data, dict) and data.get("generator") == GENERATOR


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SynthError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        meta = out / "dataset.json"
        ours = meta.is_file() and _written_by_us(meta)
        if not overwrite:
            raise SynthError(f"{out}: folder is not empty (pass --overwrite to replace a generated benchmark)")
        if not ours:
            raise SynthError(f"{out}: not empty and not written by `sslsan data synth`; refusing to overwrite it")
        for split, manifest in SPLIT_MANIFESTS.items():
            (out / manifest).unlink(missing_ok=True)
            shutil.rmtree(out / split, ignore_errors=True)
        (out / EXTENDED_MANIFEST).unlink(missing_ok=True)
        meta.unlink()
    make_folder(out)


def generate_dataset(
    cfg: SynthConfig, out: str | Path, workers: int = 1, overwrite: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Write every split of the benchmark under `out`; returns the dataset.json content.

    Items are independent (seeded by (seed, split, index)), so `workers` changes speed only.
    """
    cfg.validate()
    out = Path(out)
    _prepare_out(out, overwrite)
    meta = {
        "generator": GENERATOR,
        "version": GENERATOR_VERSION,
        "complete": False,  # an interrupted run leaves this, so --overwrite can recognise the folder
        "seed": cfg.seed,
        "config": dataclasses.asdict(cfg),
        "categories": [c.describe() for c in categories(cfg.n_categories)],
    }
    atomic_write_text(out / "dataset.json", json.dumps(meta, indent=1) + "\n")
    tasks = [(split, i) for split in SPLIT_MANIFESTS for i in range(cfg.split_size(split))]
    rows: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLIT_MANIFESTS}
    bar = tqdm(total=len(tasks), desc="synth scenes", unit="scene", disable=not progress)
    if workers <= 1:
        _init_worker(cfg, out)
        results: Iterator[list[dict[str, Any]]] = map(_run_item, tasks)
        pool = None
    else:
        pool = mp.get_context().Pool(workers, initializer=_init_worker, initargs=(cfg, out))
        results = pool.imap(_run_item, tasks, chunksize=16)
    try:
        for (split, _), items in zip(tasks, results):
            rows[split].extend(items)
            bar.update()
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    for split, manifest in SPLIT_MANIFESTS.items():
        write_manifest(out / manifest, (Sample(**r) for r in rows[split]))
    extended = extended_rows(rows["test_vggss"], cfg.seed)
    write_manifest(out / EXTENDED_MANIFEST, (Sample(**r) for r in extended))
    meta["complete"] = True
    meta["sizes"] = {**{SPLIT_MANIFESTS[s]: len(r) for s, r in rows.items()}, EXTENDED_MANIFEST: len(extended)}
    atomic_write_text(out / "dataset.json", json.dumps(meta, indent=1) + "\n")
    return meta


def default_workers() -> int:
    """Worker processes used when none are asked for: the CPUs this process may use, at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))
