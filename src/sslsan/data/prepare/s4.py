"""AVSBench S4 (single source) test split (docs/datasets.md §4) -> s4.jsonl.

Input (`--root`: AVSBench's `Single-source/` folder, or its `s4_data/` with the CSV beside or inside):
  s4_meta_data.csv                                   columns name, <start>, category, split
  s4_data/visual_frames/test/<cat>/<name>/<name>_<k>.png   k = 1..5, 224x224
  s4_data/gt_masks/test/<cat>/<name>/<name>_<k>.png        binary masks
  s4_data/audio_wav/test/<cat>/<name>.wav                  5 s, shared by the 5 frames

One sample per frame: id `<name>_<k>`, group = the video name (its five frames share audio), category
from the CSV. Masks are referenced in place. Boxes: from SSLalignment's `s4_box.json` when given
(`--boxes`, 224-pixel xyxy), else derived from the mask the same way (x2/y2 = the last foreground
column/row, which is how s4_box.json was made); an empty mask (6 frames in the official split) gives
no box and `extra.empty_gt`, counted. A missing frame or audio file is a counted skip.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from sslsan.data.manifest import Sample
from sslsan.data.prepare.common import (
    MediaError, PrepareError, SkipReport, check_file, check_image, finish_testset, first_existing,
    gt_map_empty, load_json, note_audio, rel, timer, undecodable, youtube_id,
)
from sslsan.media import ImageError, box_from_mask, load_mask
from sslsan.utils.io import make_folder

FRAMES_PER_VIDEO = 5
FRAME = 224.0


def read_meta(path: Path, split: str) -> list[tuple[str, str]]:
    """(name, category) of the rows of `split` in s4_meta_data.csv (header with name, category, split)."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        cols = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in ("name", "category", "split") if c not in cols]
        if missing:
            raise PrepareError(f"{path}: CSV header lacks column(s) {missing} (found {cols})")
        rows = []
        for row in reader:
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            if row["split"] == split:
                rows.append((row["name"], row["category"]))
    if not rows:
        raise PrepareError(f"{path}: no row with split == {split!r}")
    return rows


def read_s4_boxes(path: Path) -> dict[str, list[float]]:
    """`<name>_<k>` -> normalised box from s4_box.json (224-pixel xyxy; [0,0,0,0] = empty mask -> dropped)."""
    data = load_json(path)
    if not isinstance(data, list):
        raise PrepareError(f"{path}: expected a JSON list of {{image, audio, gt_box}} objects")
    out = {}
    for i, e in enumerate(data):
        if not isinstance(e, dict) or "image" not in e or "gt_box" not in e:
            raise PrepareError(f"{path}: entry {i} lacks 'image' or 'gt_box'")
        out[Path(e["image"]).stem] = [min(max(float(v), 0.0), FRAME) / FRAME for v in e["gt_box"]]
    return out


def _read_mask(path: Path) -> np.ndarray:
    try:
        return load_mask(path)
    except ImageError as exc:
        raise undecodable(path, exc) from None


def prepare_s4(root: str | Path, out: str | Path, split: str = "test", boxes: str | Path | None = None,
               meta: str | Path | None = None) -> Path:
    t0 = timer()
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise PrepareError(f"{root}: S4 root folder not found")
    data = first_existing(root / "s4_data", root)
    meta_path = Path(meta) if meta else first_existing(root / "s4_meta_data.csv", root.parent / "s4_meta_data.csv")
    if meta_path is None or not meta_path.is_file():
        raise PrepareError(f"{root}: s4_meta_data.csv not found; pass --meta")
    if not (data / "visual_frames" / split).is_dir():
        raise PrepareError(f"{data}: no visual_frames/{split}/ folder")
    rows = read_meta(meta_path, split)
    box_of = read_s4_boxes(Path(boxes)) if boxes else {}
    make_folder(out)

    report = SkipReport()
    samples: list[Sample] = []
    for name, cat in rows:
        audio = data / "audio_wav" / split / cat / f"{name}.wav"
        try:
            seconds = note_audio(audio, report)
        except MediaError as err:
            for k in range(1, FRAMES_PER_VIDEO + 1):
                report.add(f"{name}_{k}", err.path, err.reason, err.detail)
            continue
        for k in range(1, FRAMES_PER_VIDEO + 1):
            sid = f"{name}_{k}"
            image = data / "visual_frames" / split / cat / name / f"{sid}.png"
            mask = data / "gt_masks" / split / cat / name / f"{sid}.png"
            from_mask = sid not in box_of
            try:
                check_image(image)
                check_file(mask)
                box = box_from_mask(_read_mask(mask), inclusive=True) if from_mask else box_of[sid]
            except MediaError as err:
                report.add(sid, err.path, err.reason, err.detail)
                continue
            if from_mask and box_of:
                report.note("box_from_mask")
            extra = {"audio_seconds": round(seconds, 4), "frame": k, "video": name}
            if youtube_id(name):
                extra["youtube_id"] = youtube_id(name)
            if box is None or gt_map_empty([box]):
                report.note("empty_gt")
                extra["empty_gt"] = True
                box = None
            samples.append(Sample(id=sid, image=rel(image, out), audio=rel(audio, out),
                                  boxes=[box] if box else [], mask=rel(mask, out), category=cat,
                                  scene_categories=[cat], group=name, extra=extra))
    return finish_testset("s4", out, samples, report, t0, split=split, meta=str(meta_path),
                          box_file=str(boxes) if boxes else None)
