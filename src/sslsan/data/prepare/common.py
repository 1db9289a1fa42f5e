"""Shared machinery of the `prepare` commands: clip extraction, file checks, the skip report.

Decoding (VGGSound videos) uses PyAV through sslsan.media, which states the frame rule. Here:

* **Clip middle** ``mid = start + duration / 2`` of the container (VGGSound clips are 10 s, so 5.0 s).
* **Frame**: the middle frame of sslsan.media, the frame on screen just before ``mid`` (for a 25 fps
  10 s clip: the frame at 4.96 s, SSL-TIE's ``125.jpg``).
* **Audio window**: ``[mid - clip/2, mid + clip/2)`` (3.5-6.5 s of a 10 s clip), resampled to
  16 kHz by libswresample, channels averaged (as `ffmpeg -ac 1` to PCM16 and load_audio do), stored
  as PCM16 WAV. When the audio track does not cover the window, the window is shifted inside the
  track; a track shorter than the window is stored whole (shorter WAV; the loader tiles it to 10 s,
  model_spec section 1). Both cases are counted.

Every failure of an item is a :class:`MediaError` with a ``reason`` (one of :data:`SKIP_REASONS`),
turned into a counted line of the skip report by the caller, never into a crash.
"""

from __future__ import annotations

import json
import os
import re
import struct
import time
import wave
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sslsan.media import (
    SAMPLE_RATE, VIDEO_EXTENSIONS, ImageError, container_span, frame_before, image_size, resample_fifo, wav_truncation,
)
from sslsan.utils.io import atomic_write_bytes, atomic_write_text

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
    import av

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
        raise MediaError(path, "undecodable", _short(exc)) from None


def check_image(path: Path) -> tuple[int, int]:
    """(width, height) of an image from its header; MediaError if missing/empty/not an image/too large."""
    check_file(path)
    try:
        return image_size(path)
    except ImageError as exc:
        raise undecodable(path, exc) from None


def undecodable(path: Path, exc: ValueError) -> MediaError:
    """A media reader's error (AudioError, ImageError) as an "undecodable" skip; the skip names the file."""
    return MediaError(path, "undecodable", _short(str(exc).split(": ", 1)[-1]))


def _short(exc: BaseException) -> str:
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


# --------------------------------------------------------------------------------------------
# Video decoding (PyAV)


@dataclass
class DecodedClip:
    frame: Any  # PIL.Image (RGB)
    frame_time: float  # seconds from the container start
    wave: np.ndarray  # float32 mono at `sample_rate`
    audio_start: float  # seconds of the first stored sample
    duration: float  # container duration used for the middle
    shifted: bool  # window moved to stay inside the audio track
    short: bool  # audio track shorter than the window (stored whole)


_TOP_LEVEL_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pdin", b"moof", b"mfra",
                    b"styp", b"sidx", b"uuid", b"meta", b"junk"}


def _cut_box(path: Path) -> str | None:
    """For ISO-BMFF files (MP4/MOV/M4A): the first top-level box that runs past the end of the file.

    A download cut short leaves its last box incomplete; that tells "truncated" from "corrupt".
    """
    size = path.stat().st_size
    pos = 0
    with open(path, "rb") as fh:
        while pos + 8 <= size:
            fh.seek(pos)
            head = fh.read(16)
            n, kind = struct.unpack(">I", head[:4])[0], head[4:8]
            if n == 1 and len(head) == 16:
                n = struct.unpack(">Q", head[8:16])[0]
            elif n == 0:
                n = size - pos
            if n < 8 or kind not in _TOP_LEVEL_BOXES:
                return None  # not ISO-BMFF (or garbage): no opinion
            if pos + n > size:
                return kind.decode("ascii", "replace")
            pos += n
    return None


def _open(path: Path):
    import av

    check_file(path)
    try:
        return av.open(str(path))
    except av.FFmpegError as exc:
        msg = _short(exc)
        # A cut MP4 whose index (moov box) sat at the end cannot even be opened.
        box = _cut_box(path) if path.suffix.lower() in (".mp4", ".m4v", ".mov", ".m4a") else None
        if box is not None:
            raise MediaError(path, "truncated", f"'{box}' box ends past the end of the file; {msg}") from None
        raise MediaError(path, "undecodable", msg) from None


def _duration(container, path: Path) -> tuple[float, float]:
    """(start, duration) in seconds of the container (streams as fallback)."""
    span = container_span(container)
    if span is None:
        raise MediaError(path, "undecodable", "container declares no duration")
    return span


def _declared_end(stream) -> float | None:
    if stream.duration is None or stream.time_base is None:
        return None
    return float(((stream.start_time or 0) + stream.duration) * stream.time_base)


def _check_track_end(container, path: Path, start: float, decoded_end: float) -> None:
    """A track that decodes to well before its declared end is a cut file."""
    declared = _declared_end(container.streams.audio[0])
    if declared is not None and decoded_end < declared - 0.5:
        raise MediaError(path, "truncated",
                         f"audio data ends at {decoded_end - start:.2f} s, the track declares {declared - start:.2f} s")


def _frame_before(container, path: Path, mid: float):
    """The middle frame (sslsan.media.frame_before), with a cut file told from an undecodable one."""
    pick = frame_before(container, mid)
    best = pick.before
    if pick.error is not None:
        if best is None:
            raise MediaError(path, "undecodable", f"video: {_short(pick.error)}")
        # decoding broke after the last frame before `mid` (cut file): we cannot know that frame
        # was really the last one before the middle
        raise MediaError(path, "truncated", f"video data ends at {best.time:.2f} s before the middle {mid:.2f} s")
    if best is None:
        raise MediaError(path, "undecodable" if pick.after is not None else "truncated",
                         "no video frame before the clip middle")
    if pick.after is None:
        # stream ended: fine only if that frame is the last one of a complete stream (mid at the end)
        rate = container.streams.video[0].average_rate
        period = float(1 / rate) if rate else 0.04
        if mid - best.time > 1.5 * period:
            raise MediaError(path, "truncated", f"video data ends at {best.time:.2f} s before the middle {mid:.2f} s")
    return best


def decode_audio_span(container, path: Path, t0: float, t1: float | None,
                      sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, float]:
    """Mono float32 audio at `sample_rate` covering [t0, t1) of the first audio track (t1=None: to the end).

    Returns (samples, time of the first sample); sample i lies at `first + i / sample_rate`. Seeks
    near `t0`, gathers the decoded frames in an AudioFifo and resamples them in one call
    (sslsan.media.resample_fifo). Channels are averaged, as sslsan.media.load_audio does. A decoding
    error after some audio keeps what decoded (the caller checks the coverage); before any audio it
    is a MediaError.
    """
    import av

    stream = container.streams.audio[0]
    container.seek(max(0, int((t0 - 0.25) / stream.time_base)) if t0 > 0.25 else 0, stream=stream, backward=True)
    fifo = av.AudioFifo()
    first = None
    try:
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            if first is None:
                first = float(frame.time)
            if t1 is not None and frame.time >= t1:
                break
            frame.pts = None  # the fifo checks timestamp continuity; the count of samples is what we keep
            fifo.write(frame)
    except av.FFmpegError as exc:
        if fifo.samples == 0:
            raise MediaError(path, "truncated" if _cut_box(path) else "undecodable", f"audio: {_short(exc)}") from None
    if fifo.samples == 0:
        return np.zeros(0, np.float32), (first if first is not None else t0)
    return resample_fifo(fifo, sample_rate).mean(axis=0).astype(np.float32), first


def _middle_frame(container, path: Path) -> tuple[float, float, Any, float]:
    """(start, duration, middle frame as PIL image, its time from the start) after the stream checks."""
    if not container.streams.video:
        raise MediaError(path, "no_video")
    if not container.streams.audio:
        raise MediaError(path, "no_audio")
    start, duration = _duration(container, path)
    frame = _frame_before(container, path, start + duration / 2.0)
    return start, duration, frame.to_image(), float(frame.time) - start


def _whole_track(container, path: Path, start: float, sample_rate: int) -> tuple[np.ndarray, float]:
    """The whole first audio track (MediaError when it is empty or ends well before its declared end)."""
    track, a0 = decode_audio_span(container, path, 0.0, None, sample_rate)
    if len(track) == 0:
        raise MediaError(path, "no_audio", "audio track holds no samples")
    _check_track_end(container, path, start, a0 + len(track) / sample_rate)
    return track, a0


def decode_clip(path: str | Path, clip_seconds: float = 3.0, sample_rate: int = SAMPLE_RATE) -> DecodedClip:
    """Middle frame and the centred `clip_seconds` audio window of a video file (rules: module doc)."""
    import av

    path = Path(path)
    container = _open(path)
    try:
        start, duration, image, frame_time = _middle_frame(container, path)
        want = int(round(clip_seconds * sample_rate))
        w0 = start + duration / 2.0 - clip_seconds / 2.0
        track, a0 = decode_audio_span(container, path, w0, w0 + clip_seconds + 0.05, sample_rate)
        a1 = a0 + len(track) / sample_rate
        if a0 > w0 + 0.5 / sample_rate or a1 < w0 + clip_seconds - 0.5 / sample_rate:
            # the track does not cover the window (starts late, ends early, or the file is cut)
            track, a0 = _whole_track(container, path, start, sample_rate)
            a1 = a0 + len(track) / sample_rate
    except av.FFmpegError as exc:
        raise MediaError(path, "undecodable", _short(exc)) from None
    finally:
        container.close()

    shifted = short = False
    if len(track) < want:
        short, w0 = True, a0
    elif w0 < a0 - 0.5 / sample_rate or w0 + clip_seconds > a1 + 0.5 / sample_rate:
        shifted, w0 = True, min(max(w0, a0), a1 - clip_seconds)
    i0 = max(0, int(round((w0 - a0) * sample_rate)))
    wave_out = np.ascontiguousarray(track[i0:i0 + want], dtype=np.float32)
    return DecodedClip(image, frame_time, wave_out, w0 - start, duration, shifted, short)


def decode_frame_and_track(path: str | Path, sample_rate: int = SAMPLE_RATE) -> tuple[Any, float, np.ndarray]:
    """(middle frame as PIL image, its time, the whole audio track mono at `sample_rate`) of a video.

    For test clips (VGG-SS from VGGSound test videos): the annotated frame is the middle one and the
    evaluation reads the whole ~10 s clip.
    """
    import av

    path = Path(path)
    container = _open(path)
    try:
        start, _, image, frame_time = _middle_frame(container, path)
        track, _ = _whole_track(container, path, start, sample_rate)
    except av.FFmpegError as exc:
        raise MediaError(path, "undecodable", _short(exc)) from None
    finally:
        container.close()
    return image, frame_time, track


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


def finish_testset(name: str, out: Path, samples: list, report: SkipReport, t0: float, **extra: Any) -> Path:
    """Write the dataset's manifest (file name from the registry), skip report and summary; print the summary."""
    from sslsan.data.manifest import write_manifest
    from sslsan.data.registry import DATASETS

    if not samples:
        raise PrepareError(f"{name}: no usable sample; {len(report)} skipped "
                           f"({', '.join(f'{k}: {v}' for k, v in report.by_reason().items()) or 'nothing found'})")
    manifest = write_manifest(out / DATASETS[name].manifest, samples)
    report.write(out / "skipped.jsonl")
    seconds = timer() - t0
    write_summary(out, name, len(samples), report, seconds, manifest=manifest.name, **extra)
    print(format_summary(name, len(samples), report, seconds, out) + f"\n  manifest: {manifest}")
    return manifest
