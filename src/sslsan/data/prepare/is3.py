"""IS3 and IS3+ test sets (docs/datasets.md §2-3) -> is3.jsonl / is3plus.jsonl.

IS3 (`--root`, the SSLalignment download):
  images/<stem>.jpg            one image copy per annotation (also accepted: visual_frames/)
  audio_wav/<stem>.wav         the annotation's sound (also accepted: the README's typo audio_waw/)
  gt_segmentation/<stem>.jpg   JPEG binary mask (also accepted: gt_masks/); thresholded at > 127
  synthetic3240_bbox.json      [{"image": ".../<stem>.jpg", "audio": ..., "gt_box": [x1,y1,x2,y2]}],
                               pixel xyxy in the 224x224 frame (also looked up under metadata/)
  IS3_class_files_dict.json    {category: [stem, ...]} (optional; else IS3_annotation.json, else the
                               target token of the stem, counted as `category_from_stem`)

A stem is `<objA>_<objB>[_<sceneid>]_<target>`; `group` is the stem without its last token (exact
membership, not vssl_eval's glob), and `scene_categories` lists the categories of every annotation of
that group, so offscreen draws avoid both objects. Masks are re-encoded as binary PNGs under
OUT/masks/. Boxes are divided by 224 (normalised xyxy); without a box file they come from the mask.

IS3+ is not public (docs/datasets.md §3). The layout assumed here, every piece overridable:
the IS3+ `--root` holds `audio_wav/<stem>.wav` (clean, 16 kHz, 1.2-10 s) and `category_map.json`
({fine VGGSound name: simple name}); images, masks, boxes and categories come from the IS3+ root when
present there, else from `--is3-root`. Categories (own and scene) are mapped through the category map.
Clips shorter than 3 s are kept and counted (`audio_short`); the loader tiles each clip by its own length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sslsan.data.manifest import Sample
from sslsan.data.prepare.common import (
    MediaError, PrepareError, SkipReport, check_file, finish_testset, first_existing,
    gt_map_empty, index_folder, load_json, note_audio, rel, timer, undecodable,
)
from sslsan.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, ImageError, box_from_mask, load_mask, mask_png_bytes
from sslsan.utils.io import atomic_write_bytes, make_folder

IMAGE_DIRS = ("images", "visual_frames")
AUDIO_DIRS = ("audio_wav", "audio_waw", "audio")
MASK_DIRS = ("gt_segmentation", "gt_masks")
BOX_FILES = ("synthetic3240_bbox.json", "metadata/synthetic3240_bbox.json")
CLASS_DICT_FILES = ("IS3_class_files_dict.json", "metadata/IS3_class_files_dict.json")
ANNOTATION_FILES = ("IS3_annotation.json", "metadata/IS3_annotation.json", "annotations.json")
CATEGORY_KEYS = ("category", "class", "label", "cls")
BOX_KEYS = ("gt_box", "bbox", "box")
FRAME = 224.0  # the IS3 boxes live in the 224x224 resized frame


def _stem(p: Any) -> str:
    return Path(str(p)).stem


def _dir(roots: list[Path], names: tuple[str, ...], given: str | Path | None) -> Path | None:
    if given:
        return Path(given)
    return first_existing(*(r / n for r in roots for n in names))


def _file(roots: list[Path], names: tuple[str, ...], given: str | Path | None) -> Path | None:
    if given:
        if not Path(given).is_file():
            raise PrepareError(f"{given}: file not found")
        return Path(given)
    return first_existing(*(r / n for r in roots for n in names))


def read_boxes(path: Path, report: SkipReport) -> dict[str, list[float]]:
    """stem -> normalised box from an SSLalignment *_bbox.json (224-pixel xyxy; coordinates clipped)."""
    data = load_json(path)
    if not isinstance(data, list):
        raise PrepareError(f"{path}: expected a JSON list of {{image, audio, gt_box}} objects")
    out: dict[str, list[float]] = {}
    for i, e in enumerate(data):
        if not isinstance(e, dict) or "image" not in e or "gt_box" not in e:
            raise PrepareError(f"{path}: entry {i} lacks 'image' or 'gt_box'")
        b = e["gt_box"]
        if not (isinstance(b, list) and len(b) == 4 and all(isinstance(v, (int, float)) and np.isfinite(v) for v in b)):
            report.note("dropped_box")
            continue
        clipped = [min(max(float(v), 0.0), FRAME) / FRAME for v in b]
        if any(not 0.0 <= float(v) <= FRAME for v in b):
            report.note("corrupt_coordinates")
        out[_stem(e["image"])] = clipped
    return out


def read_categories(class_dict: Path | None, annotations: Path | None) -> tuple[dict[str, str], str]:
    """stem -> category, and where it came from."""
    if class_dict is not None:
        data = load_json(class_dict)
        if not isinstance(data, dict):
            raise PrepareError(f"{class_dict}: expected {{category: [stem, ...]}}")
        return {_stem(s): str(cat) for cat, stems in data.items() for s in stems}, class_dict.name
    if annotations is not None:
        data = load_json(annotations)
        items = data if isinstance(data, list) else list(data.values()) if isinstance(data, dict) else []
        out = {}
        for e in items:
            if isinstance(e, dict) and "image" in e:
                key = next((k for k in CATEGORY_KEYS if isinstance(e.get(k), str)), None)
                if key:
                    out[_stem(e["image"])] = e[key]
        if out:
            return out, annotations.name
    return {}, "stem"


def read_category_map(path: Path) -> dict[str, str]:
    data = load_json(path)
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise PrepareError(f"{path}: expected {{fine category: simple category}} with string values")
    return data


def binary_mask_png(src: Path, dst: Path) -> tuple[np.ndarray, bool]:
    """Threshold a (JPEG) mask at > 127 and write it as a 0/255 PNG; returns (mask, empty)."""
    check_file(src)
    try:
        m = load_mask(src)
    except ImageError as exc:
        raise undecodable(src, exc) from None
    atomic_write_bytes(dst, mask_png_bytes(m))
    return m, not m.any()


def prepare_is3(root: str | Path, out: str | Path, *, plus: bool = False, is3_root: str | Path | None = None,
                images: str | Path | None = None, audio: str | Path | None = None,
                masks: str | Path | None = None, boxes: str | Path | None = None,
                class_dict: str | Path | None = None, annotations: str | Path | None = None,
                category_map: str | Path | None = None) -> Path:
    """Prepare IS3 (plus=False) or IS3+ (plus=True) into OUT/is3.jsonl or OUT/is3plus.jsonl."""
    t0 = timer()
    name = "is3plus" if plus else "is3"
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise PrepareError(f"{root}: {name} root folder not found")
    if is3_root is not None and not Path(is3_root).is_dir():
        raise PrepareError(f"{is3_root}: IS3 root folder not found")
    # IS3+ audio only from its own root; everything else from the IS3+ root first, then the IS3 root
    roots = [root] + ([Path(is3_root)] if is3_root else [])
    image_dir = _dir(roots, IMAGE_DIRS, images)
    audio_dir = _dir([root], AUDIO_DIRS, audio)
    mask_dir = _dir(roots, MASK_DIRS, masks)
    if image_dir is None or not image_dir.is_dir():
        raise PrepareError(f"{root}: no image folder ({'/, '.join(IMAGE_DIRS)}/)" + ("; pass --is3-root" if plus else ""))
    if audio_dir is None or not audio_dir.is_dir():
        raise PrepareError(f"{root}: no audio folder ({'/, '.join(AUDIO_DIRS)}/)")
    box_file = _file(roots, BOX_FILES, boxes)
    cat_map_file = _file([root], ("category_map.json",), category_map) if plus else None
    if plus and cat_map_file is None:
        raise PrepareError(f"{root}: IS3+ needs its category map (category_map.json); pass --category-map")
    cats, cat_source = read_categories(_file(roots, CLASS_DICT_FILES, class_dict), _file(roots, ANNOTATION_FILES, annotations))
    cat_map = read_category_map(cat_map_file) if cat_map_file else {}

    report = SkipReport()
    image_files = index_folder(image_dir, IMAGE_EXTENSIONS)
    audio_files = index_folder(audio_dir, AUDIO_EXTENSIONS)
    mask_files = index_folder(mask_dir, IMAGE_EXTENSIONS) if mask_dir else {}
    box_of = read_boxes(box_file, report) if box_file else {}
    stems = sorted(box_of) if box_of else sorted(image_files)
    if not stems:
        raise PrepareError(f"{image_dir}: no images and no box file: nothing to prepare")
    make_folder(out)

    def category(stem: str) -> str:
        fine = cats.get(stem)
        if fine is None:
            report.note("category_from_stem")
            fine = stem.rsplit("_", 1)[-1]
        if not plus:
            return fine
        if fine in cat_map:
            return cat_map[fine]
        if fine not in set(cat_map.values()):
            report.note("category_unmapped")
        return fine

    rows: list[dict[str, Any]] = []
    for stem in stems:
        image = image_files.get(stem, image_dir / f"{stem}.jpg")
        audio_path = audio_files.get(stem, audio_dir / f"{stem}.wav")
        try:
            check_file(image)
            seconds = note_audio(audio_path, report)
        except MediaError as err:
            report.add_error(stem, err)
            continue
        mask_rel, box = None, box_of.get(stem)
        if stem in mask_files:
            try:
                m, empty = binary_mask_png(mask_files[stem], out / "masks" / f"{name}" / f"{stem}.png")
                mask_rel = f"masks/{name}/{stem}.png"
                if empty:
                    report.note("empty_mask")
                if box is None:
                    box = box_from_mask(m)
                    report.note("box_from_mask")
            except MediaError as err:
                report.note(f"mask_{err.reason}")
        elif mask_dir is not None:
            report.note("mask_missing")
        if box is None:
            report.add(stem, box_file or image, "bad_annotation", "no box in the box file and no usable mask")
            continue
        if gt_map_empty([box]):
            report.note("empty_gt")
        rows.append({"stem": stem, "image": image, "audio": audio_path, "mask": mask_rel, "box": box,
                     "category": category(stem), "group": stem.rsplit("_", 1)[0], "seconds": seconds})

    groups: dict[str, set[str]] = {}
    sizes: dict[str, int] = {}
    for r in rows:
        groups.setdefault(r["group"], set()).add(r["category"])
        sizes[r["group"]] = sizes.get(r["group"], 0) + 1
    report.notes["groups_not_two_annotations"] = sum(1 for n in sizes.values() if n != 2)
    samples = [Sample(id=r["stem"], image=rel(r["image"], out), audio=rel(r["audio"], out), boxes=[r["box"]],
                      mask=r["mask"], category=r["category"], scene_categories=sorted(groups[r["group"]]),
                      group=r["group"], extra={"audio_seconds": round(r["seconds"], 4)})
               for r in rows]
    return finish_testset(name, out, samples, report, t0, category_source=cat_source,
                          box_file=str(box_file) if box_file else None,
                          category_map=str(cat_map_file) if cat_map_file else None,
                          layout={"images": str(image_dir), "audio": str(audio_dir),
                                  "masks": str(mask_dir) if mask_dir else None})
