"""VGG-SS test set (docs/datasets.md §1) -> vggss.jsonl.

Input (`--root`): `frames/<id>.jpg` (or SSL-TIE's `frame/`), `audio/<id>.wav` (the ~10 s clip) and the
annotation file `vggss.json` (list of {"file", "class", "bbox": [[x1, y1, x2, y2], ...]} with
coordinates normalised to the frame), looked up as `--annotations`, `ROOT/vggss.json`,
`ROOT/metadata/vggss.json` or vssl_eval's `vggss_annotations.json`.

Without frames/audio (VGG-SS is distributed as annotations only), pass `--videos DIR` with your
VGGSound test videos: each annotated clip that has no frame/audio under the root is extracted from
`<id>.mp4` into OUT/vggss_media/: the middle frame (the frame just before the middle, native size,
as the annotators saw it) and the whole audio track as 16 kHz mono PCM16 WAV (evaluation reads the
full clip). Extraction is resumable (complete outputs are kept).

`--extended CSV` (SLAVC's `metadata/vggss_test_plus_silent.csv`: rows `video,audio,non-sounding`) also writes
vggss_ext.jsonl, extended VGG-SS: the VGG-SS samples, then one `visible: false` sample per row, the frame of
`video` with the audio of `audio`, both looked up like the VGG-SS clips (frames/, audio/, or extracted from
`--videos`); a row naming a missing clip and a malformed row are counted skips.

Boxes are stored as the reference loaders use them: every coordinate clipped to [0, 1]
(`np.clip(v, 0, 1)`, which turns the 12 corrupt `-2.88e16` values into 0). A box with a non-numeric or
non-finite coordinate is dropped. Degenerate boxes are kept (they add nothing to the GT map, exactly
as in the reference); clips whose GT map ends up empty (2 in the official file) are kept and flagged
`extra.empty_gt` (metrics fall back as the spec says) unless `--drop-empty-gt`.
"""

from __future__ import annotations

import math
from pathlib import Path

from tqdm import tqdm

from sslsan.data.manifest import Sample
from sslsan.data.prepare.clips import decode_frame_and_track
from sslsan.data.prepare.common import (
    MediaError, PrepareError, SkipReport, complete_jpeg, complete_wav, find_videos, finish_testset,
    first_existing, gt_map_empty, index_folder, load_json, nonsounding_samples, pair_media,
    read_nonsounding_list, rel, strip_media_ext, timer, youtube_id,
)
from sslsan.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, jpeg_bytes, wav_bytes
from sslsan.utils.io import atomic_write_bytes, make_folder

ANNOTATION_NAMES = ("vggss.json", "metadata/vggss.json", "vggss_annotations.json", "metadata/vggss_annotations.json")


def clean_boxes(raw, where: str, report: SkipReport) -> list[list[float]]:
    """Clip normalised boxes to [0, 1]; count corrupt coordinates and drop unusable boxes."""
    if not isinstance(raw, list):
        raise PrepareError(f"{where}: 'bbox' must be a list of [x1, y1, x2, y2], got {type(raw).__name__}")
    boxes: list[list[float]] = []
    corrupt = False
    for b in raw:
        if not (isinstance(b, (list, tuple)) and len(b) == 4 and all(isinstance(v, (int, float)) for v in b)):
            report.note("dropped_box")
            corrupt = True
            continue
        if not all(math.isfinite(v) for v in b):
            report.note("dropped_box")
            corrupt = True
            continue
        clipped = [min(max(float(v), 0.0), 1.0) for v in b]
        if clipped != [float(v) for v in b]:
            corrupt = True
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            report.note("degenerate_box")
        boxes.append(clipped)
    if corrupt:
        report.note("corrupt_coordinates")
    return boxes


def read_ids(path: Path) -> set[str]:
    """Ids of a subset file (vggss_heard_test.csv etc.): first column of each line, extension dropped."""
    if not path.is_file():
        raise PrepareError(f"{path}: id list not found")
    ids = set()
    for line in path.read_text().splitlines():
        v = line.split(",")[0].strip()
        if v and not v.startswith("#"):
            ids.add(strip_media_ext(v))
    return ids


def extract_from_video(video: Path, frame_path: Path, audio_path: Path) -> None:
    """Middle frame (JPEG) and whole track (16 kHz mono WAV) of a VGGSound test video; kept if complete."""
    if complete_jpeg(frame_path) and complete_wav(audio_path):
        return
    image, _, track = decode_frame_and_track(video)
    atomic_write_bytes(frame_path, jpeg_bytes(image))
    atomic_write_bytes(audio_path, wav_bytes(track))


def prepare_vggss(root: str | Path | None, out: str | Path, annotations: str | Path | None = None,
                  ids_file: str | Path | None = None, drop_empty_gt: bool = False,
                  videos: str | Path | None = None, extended: str | Path | None = None, progress: bool = True) -> Path:
    t0 = timer()
    out = Path(out)
    if root is None and (videos is None or annotations is None):
        raise PrepareError("VGG-SS: give --root (frames/, audio/, vggss.json) or --videos with --annotations")
    root = Path(root) if root is not None else None
    if root is not None and not root.is_dir():
        raise PrepareError(f"{root}: VGG-SS root folder not found")
    report = SkipReport()
    pairs = read_nonsounding_list(extended, report) if extended is not None else None
    ann_path = Path(annotations) if annotations else first_existing(*(root / n for n in ANNOTATION_NAMES))
    if ann_path is None:
        raise PrepareError(f"{root}: no VGG-SS annotation file ({', '.join(ANNOTATION_NAMES)}); pass --annotations")
    entries = load_json(ann_path)
    if not isinstance(entries, list):
        raise PrepareError(f"{ann_path}: expected a JSON list of clips, got {type(entries).__name__}")
    frame_dir = first_existing(root / "frames", root / "frame") if root is not None else None
    if frame_dir is None and videos is None:
        raise PrepareError(f"{root}: no frames/ (or frame/) folder (or pass --videos)")
    frames = index_folder(frame_dir, IMAGE_EXTENSIONS) if frame_dir else {}
    audios = index_folder(root / "audio", AUDIO_EXTENSIONS) if root is not None else {}
    video_files = find_videos(Path(videos)) if videos is not None else {}
    media_dir = out / "vggss_media"
    keep = read_ids(Path(ids_file)) if ids_file else None
    make_folder(out)

    def media(clip_id: str, kind: str) -> Path:
        """The frame ("image") or audio of a clip: under the root, else extracted (with the other) from its
        video; MediaError if missing."""
        found = (frames if kind == "image" else audios).get(clip_id)
        if found is None and clip_id in video_files:
            image, audio = media_dir / "frames" / f"{clip_id}.jpg", media_dir / "audio" / f"{clip_id}.wav"
            extract_from_video(video_files[clip_id], image, audio)
            found = image if kind == "image" else audio
        if found is None and kind == "image":
            raise MediaError((frame_dir or Path(videos)) / f"{clip_id}.{'jpg' if frame_dir else 'mp4'}", "missing")
        if found is None:
            raise MediaError((root / "audio" if root else Path(videos)) / f"{clip_id}.wav", "missing")
        return found

    samples: list[Sample] = []
    seen: set[str] = set()
    for i, e in enumerate(tqdm(entries, desc="prepare vggss", unit="clip", disable=not (progress and video_files))):
        where = f"{ann_path}: entry {i}"
        if not isinstance(e, dict) or "file" not in e or "bbox" not in e:
            raise PrepareError(f"{where}: expected an object with 'file' and 'bbox', got {str(e)[:80]}")
        clip_id = str(e["file"]).rsplit(".", 1)[0] if str(e["file"]).endswith((".mp4", ".jpg")) else str(e["file"])
        if keep is not None and clip_id not in keep:
            continue
        if clip_id in seen:
            report.note("duplicate_entry")
            continue
        seen.add(clip_id)
        boxes = clean_boxes(e["bbox"], f"{where} ({clip_id})", report)
        try:
            image, audio, seconds = pair_media(media, clip_id, clip_id, report)
        except MediaError as err:
            report.add_error(clip_id, err)
            continue
        extra = {"audio_seconds": round(seconds, 4)}
        if youtube_id(clip_id):
            extra["youtube_id"] = youtube_id(clip_id)
        if not boxes:
            report.note("no_box")
        if gt_map_empty(boxes):
            report.note("empty_gt")
            extra["empty_gt"] = True
            if drop_empty_gt:
                report.add(clip_id, ann_path, "bad_annotation", "GT map is empty after clipping (--drop-empty-gt)")
                continue
        category = e.get("class")
        samples.append(Sample(id=clip_id, image=rel(image, out), audio=rel(audio, out), boxes=boxes,
                              category=category, scene_categories=[category] if category else [], extra=extra))
    nonsounding = (nonsounding_samples(pairs, media, samples, out, report, progress and bool(video_files))
                   if pairs is not None else None)
    return finish_testset("vggss", out, samples, report, t0, nonsounding=nonsounding, annotations=str(ann_path),
                          **({"extended_list": str(extended)} if extended is not None else {}))
