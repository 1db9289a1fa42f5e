"""Flickr-SoundNet test set (docs/datasets.md §8) -> flickr.jsonl, and extended Flickr -> flickr_ext.jsonl.

Input (`--root`, the layout of the LVS / EZ-VSL / SLAVC test scripts):
  frames/<id>.jpg            the test frames
  audio/<id>.wav             their sounds
  Annotations/<id>.xml       the annotation of Senocak et al. (CVPR 2018): every `bbox` element below a child of
                             the root is one annotator's box; its first child is skipped and the next four are
                             xmin, ymin, xmax, ymax in pixels of the 256 x 256 frame (also accepted: --annotations)
  flickr_test.csv            the 250 test ids (first column; looked up as --list, ROOT/flickr_test.csv,
                             ROOT/metadata/flickr_test.csv; without a list every annotation file is a test id)

Boxes are stored divided by 256, whatever the frame's size, as the original code does (it maps them to
`int(224 * v / 256)` pixels of the 224 x 224 map: sslsan's truncation of v / 256 * 224 gives the same integers).
The ground truth is the annotators' consensus, each box adding 1/2, capped at 1 (the registry's
`gt="consensus"`). The list's second column becomes `category` when it is a name (ACL-SSL's copy) and
`extra.list_label` when it is a number (LVS's / SLAVC's copy, whose meaning is not documented).

`--extended CSV` (SLAVC's `metadata/flickr_test_plus_silent.csv`: rows `video,audio,non-sounding`, each test frame
with the sound of another test clip) also writes flickr_ext.jsonl: the test samples, then one `visible: false`
sample per row, `frames/<video>.jpg` with `audio/<audio>.wav`.

Skips, counted with the reason: an id without frame, audio or annotation file (`missing`), an annotation file
that is not XML or has no usable box (`bad_annotation`), a list row naming a missing clip or malformed.
A box with a non-integer or missing coordinate is dropped (`dropped_box`); coordinates outside [0, 256] are
clipped (`corrupt_coordinates`; the original would wrap a negative one around the map).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from sslsan.data.manifest import Sample
from sslsan.data.prepare.common import (
    MediaError, PrepareError, SkipReport, check_file, finish_testset, first_existing, index_folder,
    nonsounding_samples, pair_media, read_nonsounding_list, rel, strip_media_ext, timer,
)
from sslsan.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
from sslsan.utils.io import make_folder

FRAME = 256  # the annotation's pixel frame
LIST_NAMES = ("flickr_test.csv", "metadata/flickr_test.csv")


def read_annotation(path: Path, report: SkipReport) -> list[list[float]]:
    """The annotators' boxes of one XML file, normalised (divided by 256, clipped to [0, 1]).

    MediaError `bad_annotation` for a file that is not XML or holds no usable box."""
    check_file(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise MediaError(path, "bad_annotation", f"not valid XML ({exc})") from None
    boxes = []
    for child in root:
        for node in child:
            if node.tag != "bbox":
                continue
            values = [c.text for c in list(node)[1:]]  # the original skips the first child and keeps the rest
            try:
                coords = [int(v) for v in values]  # the original's int(ch.text)
            except (TypeError, ValueError):
                coords = []
            if len(coords) != 4:
                report.note("dropped_box")
                continue
            if any(not 0 <= v <= FRAME for v in coords):
                report.note("corrupt_coordinates")
            boxes.append([min(max(v, 0), FRAME) / FRAME for v in coords])
    if not boxes:
        raise MediaError(path, "bad_annotation", "no bbox with four integer coordinates")
    return boxes


def read_test_list(path: Path | None, annotations: dict[str, Path]) -> list[tuple[str, str]]:
    """(id, second column) of the test list in file order; every annotated id (sorted) without a list."""
    if path is None:
        return [(i, "") for i in sorted(annotations)]
    if not path.is_file():
        raise PrepareError(f"{path}: test list not found")
    rows, seen = [], set()
    for line in path.read_text().splitlines():
        fields = [f.strip() for f in line.split(",")]
        if not fields[0] or fields[0].startswith("#"):
            continue
        clip_id = strip_media_ext(fields[0])
        if clip_id not in seen:
            seen.add(clip_id)
            rows.append((clip_id, fields[1] if len(fields) > 1 else ""))
    if not rows:
        raise PrepareError(f"{path}: the test list names no clip")
    return rows


def prepare_flickr(root: str | Path, out: str | Path, *, test_list: str | Path | None = None,
                   annotations: str | Path | None = None, extended: str | Path | None = None) -> Path:
    """Prepare Flickr-SoundNet into OUT/flickr.jsonl (and OUT/flickr_ext.jsonl with `extended`)."""
    t0 = timer()
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise PrepareError(f"{root}: Flickr-SoundNet root folder not found")
    ann_dir = Path(annotations) if annotations else root / "Annotations"
    if not ann_dir.is_dir():
        raise PrepareError(f"{ann_dir}: no annotation folder (Annotations/<id>.xml); pass --annotations")
    list_path = Path(test_list) if test_list else first_existing(*(root / n for n in LIST_NAMES))
    frames = index_folder(root / "frames", IMAGE_EXTENSIONS)
    audios = index_folder(root / "audio", AUDIO_EXTENSIONS)
    xmls = index_folder(ann_dir, (".xml",))
    rows = read_test_list(list_path, xmls)
    report = SkipReport()
    pairs = read_nonsounding_list(extended, report) if extended is not None else None
    make_folder(out)

    def media(clip_id: str, kind: str) -> Path:
        found = (frames if kind == "image" else audios).get(clip_id)
        if found is None:
            raise MediaError(root / ("frames" if kind == "image" else "audio") / f"{clip_id}.{'jpg' if kind == 'image' else 'wav'}",
                             "missing")
        return found

    samples: list[Sample] = []
    for clip_id, label in rows:
        try:
            if clip_id not in xmls:
                raise MediaError(ann_dir / f"{clip_id}.xml", "missing")
            boxes = read_annotation(xmls[clip_id], report)
            image, audio, seconds = pair_media(media, clip_id, clip_id, report)
        except MediaError as err:
            report.add_error(clip_id, err)
            continue
        named = bool(label) and not label.isdigit()
        extra = {"audio_seconds": round(seconds, 4), "annotators": len(boxes)}
        if label and not named:
            extra["list_label"] = label
        samples.append(Sample(id=clip_id, image=rel(image, out), audio=rel(audio, out), boxes=boxes,
                              category=label if named else None, scene_categories=[label] if named else [], extra=extra))
    nonsounding = nonsounding_samples(pairs, media, samples, out, report) if pairs is not None else None
    return finish_testset("flickr", out, samples, report, t0, nonsounding=nonsounding,
                          test_list=str(list_path) if list_path else None, annotations=str(ann_dir),
                          **({"extended_list": str(extended)} if extended is not None else {}))
