"""Shared machinery of the `prepare` commands: the skip report, file checks, test-set pieces.

Clips are extracted from videos by sslsan.data.prepare.clips. Every failure of an item is a :class:`MediaError` with a ``reason`` (one of :data:`SKIP_REASONS`),
turned into a counted line of the skip report by the caller, never into a crash.
"""

from __future__ import annotations

import csv
import json
import os
import re
import struct
import time
import wave
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import av
from tqdm import tqdm

from sslsan.data.manifest import Sample, write_manifest
from sslsan.data.registry import DATASETS
from sslsan.media import VIDEO_EXTENSIONS, ImageError, image_size, wav_truncation
from sslsan.utils.io import atomic_write_text

# Why an item was skipped. Kept short and stable: they are keys of the summary.
SKIP_REASONS = {
    "missing": "file not found",
    "empty": "file has zero bytes",
    "truncated": "file ends before the data needed (cut download)",
    "no_video": "container has no video stream",
    "no_audio": "container has no audio track, or the track holds no samples",
    "undecodable": "file could not be opened or decoded",
    "bad_annotation": "annotation entry unusable (no valid box/mask/audio reference)",
}

# Kept-but-counted facts ("notes") that the summary explains.
NOTES = {
    "audio_short": "audio shorter than the 3 s clip: stored as is, tiled to 10 s at load",
    "audio_shifted": "audio track does not cover the centred window: window moved inside the track",
    "audio_near_silent": "clips with audio RMS < -60 dBFS (muted videos): kept; silence-like positives",
    "vggsound_test_split": "clips of the VGGSound *test* split (check `sslsan data overlap`)",
    "no_csv_label": "clips without a row in the VGGSound CSV (category null)",
    "corrupt_coordinates": "clips with box coordinates outside [0, 1]: clipped like the reference loaders",
    "dropped_box": "boxes with non-numeric / non-finite coordinates: dropped",
    "degenerate_box": "zero-area boxes after clipping: kept, they add no GT pixel",
    "empty_gt": "samples whose GT map is empty: kept and flagged extra.empty_gt",
    "no_box": "samples without any box",
    "empty_mask": "all-zero masks",
    "box_from_mask": "boxes derived from the mask (no box in the box file)",
    "mask_missing": "no mask file: mask null",
    "category_from_stem": "no category in the annotation files: target token of the file name used",
    "category_unmapped": "categories absent from the category map: kept as they are",
    "groups_not_two_annotations": "IS3 scenes without exactly two annotations",
    "duplicate_entry": "repeated annotation entries: first one kept",
    "nonsounding": "non-sounding pairs (image + a sound whose source is not in it) in the extended manifest",
    "nonsounding_own_clip": "non-sounding pairs whose image and sound come from the same clip (as listed)",
}


class PrepareError(ValueError):
    """Unusable input for a whole prepare run (missing root, malformed annotation file...)."""


class MediaError(ValueError):
    """One item cannot be prepared; ``reason`` is a key of :data:`SKIP_REASONS`."""

    def __init__(self, path: str | Path, reason: str, detail: str = ""):
        assert reason in SKIP_REASONS, reason
        self.path, self.reason, self.detail = str(path), reason, detail
        super().__init__(f"{path}: {reason} ({detail or SKIP_REASONS[reason]})")


# --------------------------------------------------------------------------------------------
# Skip report


@dataclass
class Skip:
    id: str
    path: str
    reason: str
    detail: str = ""


@dataclass
class SkipReport:
    """Collects skipped items; written as JSONL (id, path, reason, detail) next to the manifest."""

    skips: list[Skip] = field(default_factory=list)
    notes: Counter = field(default_factory=Counter)  # kept-but-noteworthy items, e.g. short audio

    def add(self, id: str, path: str | Path, reason: str, detail: str = "") -> None:
        assert reason in SKIP_REASONS, reason
        self.skips.append(Skip(str(id), str(path), reason, detail))

    def add_error(self, id: str, err: MediaError) -> None:
        self.add(id, err.path, err.reason, err.detail)

    def note(self, what: str, n: int = 1) -> None:
        self.notes[what] += n

    def by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(s.reason for s in self.skips).items()))

    def __len__(self) -> int:
        return len(self.skips)

    def write(self, path: str | Path) -> Path:
        text = "".join(json.dumps(asdict(s), separators=(",", ":")) + "\n" for s in self.skips)
        return atomic_write_text(path, text)


def format_summary(name: str, prepared: int, report: SkipReport, seconds: float, out: Path,
                   reused: int = 0) -> str:
    """Human summary printed at the end of every prepare command."""
    lines = [f"sslsan prepare {name}: {prepared} prepared"
             + (f" ({reused} already done, reused)" if reused else "")
             + f", {len(report)} skipped, {seconds:.1f} s"]
    for reason, n in report.by_reason().items():
        lines.append(f"  skipped {reason:<26} {n:>7}  ({SKIP_REASONS[reason]})")
    for what, n in sorted(report.notes.items()):
        if n:
            lines.append(f"  kept    {what:<26} {n:>7}  ({NOTES.get(what, 'kept, counted')})")
    if len(report):
        lines.append(f"  skipped items listed in {out / 'skipped.jsonl'}")
    return "\n".join(lines)


def write_summary(out: Path, name: str, prepared: int, report: SkipReport, seconds: float,
                  **extra: Any) -> Path:
    data = {"dataset": name, "prepared": prepared, "skipped": len(report),
            "skipped_by_reason": report.by_reason(), "notes": dict(report.notes),
            "seconds": round(seconds, 3), **extra}
    return atomic_write_text(out / "summary.json", json.dumps(data, indent=2) + "\n")


# --------------------------------------------------------------------------------------------
# Small file helpers


def check_file(path: Path) -> None:
    """Raise MediaError('missing' / 'empty') for an absent or zero-byte file."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise MediaError(path, "missing") from None
    if size == 0:
        raise MediaError(path, "empty")


def index_folder(folder: Path, extensions: tuple[str, ...]) -> dict[str, Path]:
    """stem -> path for files in `folder` (not recursive) with one of `extensions`; {} if absent.

    One listdir instead of one stat per item: test sets have thousands of files.
    """
    out: dict[str, Path] = {}
    if not folder.is_dir():
        return out
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        stem, ext = os.path.splitext(entry.name)
        if ext.lower() in extensions and stem not in out:
            out[stem] = Path(entry.path)
    return out


def find_videos(folder: Path) -> dict[str, Path]:
    """Clip id (file stem) -> video path, searching `folder` recursively."""
    if not folder.is_dir():
        raise PrepareError(f"{folder}: videos folder not found")
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            stem, ext = os.path.splitext(name)
            if ext.lower() in VIDEO_EXTENSIONS and not name.startswith("."):
                found.setdefault(stem, Path(dirpath) / name)
    return found


def rel(path: Path, start: Path) -> str:
    """Manifest paths are relative to the manifest's folder (absolute when no relative path exists)."""
    try:
        return os.path.relpath(Path(path).resolve(), Path(start).resolve())
    except ValueError:  # other drive on Windows
        return str(Path(path).resolve())


def youtube_id(clip_id: str) -> str | None:
    """The 11-character YouTube id of a VGGSound-style clip id (``<ytid>_<start>[_<end>]``), else None."""
    m = re.match(r"^([A-Za-z0-9_-]{11})(?:_\d+){1,2}$", clip_id)
    return m.group(1) if m else None


def audio_seconds(path: Path) -> float:
    """Duration of an audio file: from the WAV header when possible, else from PyAV. MediaError if unreadable
    or cut short (a WAV whose header declares more audio than the file holds)."""
    check_file(path)
    if path.suffix.lower() == ".wav":
        cut = wav_truncation(path)
        if cut is not None:
            raise MediaError(path, "truncated", cut)
        try:
            with wave.open(str(path), "rb") as w:
                return w.getnframes() / float(w.getframerate())
        except (wave.Error, EOFError, struct.error):
            pass  # float / extensible WAVs: let FFmpeg read them

    try:
        with av.open(str(path)) as c:
            if not c.streams.audio:
                raise MediaError(path, "no_audio")
            s = c.streams.audio[0]
            if s.duration is not None and s.time_base is not None:
                return float(s.duration * s.time_base)
            if c.duration is not None:
                return c.duration / 1e6
            n = sum(f.samples for f in c.decode(audio=0))
            return n / float(s.rate)
    except av.FFmpegError as exc:
        raise MediaError(path, "undecodable", short_detail(exc)) from None


def check_image(path: Path) -> tuple[int, int]:
    """(width, height) of an image from its header; MediaError if missing/empty/not an image/too large."""
    check_file(path)
    try:
        return image_size(path)
    except ImageError as exc:
        raise undecodable(path, exc) from None


def undecodable(path: Path, exc: ValueError) -> MediaError:
    """A media reader's error (AudioError, ImageError) as an "undecodable" skip; the skip names the file."""
    return MediaError(path, "undecodable", short_detail(str(exc).split(": ", 1)[-1]))


def short_detail(exc: BaseException | str) -> str:
    """An error as one short line for the skip report."""
    return " ".join(str(exc).split())[:200]


# --------------------------------------------------------------------------------------------
# Outputs


def complete_wav(path: Path) -> bool:
    """True if `path` is a PCM WAV with audio whose header length matches the bytes on disk (not truncated)."""
    try:
        with wave.open(str(path), "rb") as w:
            n = w.getnframes()
        return n > 0 and wav_truncation(path) is None
    except (OSError, wave.Error, EOFError, struct.error):
        return False


def complete_jpeg(path: Path) -> bool:
    """True if `path` starts with the JPEG SOI marker and ends with EOI (a cut file does not)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            fh.seek(-2, os.SEEK_END)
            return head == b"\xff\xd8" and fh.read(2) == b"\xff\xd9"
    except OSError:
        return False


def timer() -> float:
    return time.perf_counter()


# --------------------------------------------------------------------------------------------
# Test sets: shared pieces


def first_existing(*candidates: Path | None) -> Path | None:
    """The first candidate path that exists (None entries are ignored)."""
    for c in candidates:
        if c is not None and Path(c).exists():
            return Path(c)
    return None


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PrepareError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise PrepareError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None


def gt_map_empty(boxes: list[list[float]], size: int = 224) -> bool:
    """True if the boxes cover no pixel of the size x size GT map (floor to ints, half-open; DECISIONS D4)."""
    for x1, y1, x2, y2 in boxes:
        if int(x2 * size) > int(x1 * size) and int(y2 * size) > int(y1 * size):
            return False
    return True


def note_audio(path: Path, report: SkipReport, clip_seconds: float = 3.0) -> float:
    """Duration of a test clip; clips shorter than `clip_seconds` are kept (tiled at load) and counted."""
    seconds = audio_seconds(path)
    if seconds <= 0:
        raise MediaError(path, "no_audio", "audio file holds no samples")
    if seconds < clip_seconds:
        report.note("audio_short")
    return seconds


def finish_testset(name: str, out: Path, samples: list, report: SkipReport, t0: float,
                   nonsounding: list[Sample] | None = None, **extra: Any) -> Path:
    """Write the dataset's manifest (file name from the registry), skip report and summary; print the summary.

    `nonsounding` (an extended set, SLAVC): also write the `<name>-ext` manifest, the samples then these pairs."""
    if not samples:
        raise PrepareError(f"{name}: no usable sample; {len(report)} skipped "
                           f"({', '.join(f'{k}: {v}' for k, v in report.by_reason().items()) or 'nothing found'})")
    if nonsounding is not None and not nonsounding:
        raise PrepareError(f"{name}: no usable non-sounding pair in the extended list; {len(report)} skipped")
    manifest = write_manifest(out / DATASETS[name].manifest, samples)
    lines = f"\n  manifest: {manifest}"
    if nonsounding:
        ext = write_manifest(out / DATASETS[f"{name}-ext"].manifest, [*samples, *nonsounding])
        report.notes["nonsounding"] = len(nonsounding)
        extra["extended_manifest"] = ext.name
        lines += f"\n  extended manifest: {ext} ({len(samples)} sounding + {len(nonsounding)} non-sounding pairs)"
    report.write(out / "skipped.jsonl")
    seconds = timer() - t0
    write_summary(out, name, len(samples), report, seconds, manifest=manifest.name, **extra)
    print(format_summary(name, len(samples), report, seconds, out) + lines)
    return manifest


# --------------------------------------------------------------------------------------------
# Extended test sets (SLAVC): lists of non-sounding pairs

NONSOUNDING_LABEL = "non-sounding"


def read_nonsounding_list(path: str | Path, report: SkipReport) -> list[tuple[str, str]]:
    """(image clip id, audio clip id) of each row of SLAVC's `metadata/*_test_plus_silent.csv`
    (`video,audio,label`, label `non-sounding`), in file order.

    The header row is skipped; a row without three fields, with an empty id or another label, and a repeated
    pair are counted skips (`bad_annotation`, `duplicate_entry`) naming the line."""
    path = Path(path)
    if not path.is_file():
        raise PrepareError(f"{path}: extended list not found")
    pairs: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    with open(path, newline="") as fh:
        for line, row in enumerate(csv.reader(fh), 1):
            fields = [f.strip() for f in row]
            if line == 1 and fields[:3] == ["video", "audio", "label"]:
                continue
            if not any(fields):
                continue
            where = f"{path.name}:{line}"
            if len(fields) != 3 or not fields[0] or not fields[1]:
                report.add(where, path, "bad_annotation", f"line {line}: expected video,audio,{NONSOUNDING_LABEL}, "
                           f"got {','.join(row)[:80]!r}")
                continue
            if fields[2] != NONSOUNDING_LABEL:
                report.add(where, path, "bad_annotation", f"line {line}: label {fields[2][:40]!r}, not {NONSOUNDING_LABEL!r}")
                continue
            pair = (strip_media_ext(fields[0]), strip_media_ext(fields[1]))
            if pair in seen:
                report.note("duplicate_entry")
                continue
            seen.add(pair)
            pairs.append(pair)
    return pairs


def strip_media_ext(name: str) -> str:
    """A clip id without a .jpg/.wav/.mp4 extension (lists name clips either way)."""
    return name.rsplit(".", 1)[0] if name.lower().endswith((".mp4", ".jpg", ".jpeg", ".png", ".wav")) else name


MediaFinder = Callable[[str, str], Path]  # (clip id, "image" | "audio") -> path; MediaError if it has none


def pair_media(media: MediaFinder, image_id: str, audio_id: str, report: SkipReport) -> tuple[Path, Path, float]:
    """(image, audio, audio seconds) of the frame of `image_id` and the sound of `audio_id` (the same clip for a
    test sample), both checked; MediaError if one is missing or unusable."""
    image, audio = media(image_id, "image"), media(audio_id, "audio")
    check_image(image)
    return image, audio, note_audio(audio, report)


def nonsounding_samples(pairs: list[tuple[str, str]], media: MediaFinder, samples: list[Sample], out: Path,
                        report: SkipReport, progress: bool = False) -> list[Sample]:
    """The manifest samples of the listed non-sounding pairs (`visible: false`, no boxes, id `<image>+<audio>`,
    the category of the sound when it is a test sample's); a pair with a missing or unusable file is a skip."""
    categories = {s.id: s.category for s in samples}
    found = []
    for a, b in tqdm(pairs, desc="non-sounding pairs", unit="pair", disable=not progress):
        try:
            image, audio, seconds = pair_media(media, a, b, report)
        except MediaError as err:
            report.add_error(f"{a}+{b}", err)
            continue
        if a == b:
            report.note("nonsounding_own_clip")
        found.append(Sample(id=f"{a}+{b}", image=rel(image, out), audio=rel(audio, out), category=categories.get(b),
                            extra={"image_of": a, "audio_of": b, "audio_seconds": round(seconds, 4)}, visible=False))
    return found
