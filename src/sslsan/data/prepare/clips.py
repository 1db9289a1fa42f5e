"""Clip extraction from videos for the `prepare` commands: the middle frame and an audio window.

Decoding uses PyAV through sslsan.media, which states the frame rule. The rules here:

* **Clip middle** ``mid = start + duration / 2`` of the container (VGGSound clips are 10 s, so 5.0 s).
* **Frame**: the middle frame of sslsan.media, the frame on screen just before ``mid`` (for a 25 fps
  10 s clip: the frame at 4.96 s, SSL-TIE's ``125.jpg``).
* **Audio window**: ``[mid - clip/2, mid + clip/2)`` (3.5-6.5 s of a 10 s clip), resampled to
  16 kHz by libswresample, channels averaged (as `ffmpeg -ac 1` to PCM16 and load_audio do), stored
  as PCM16 WAV. When the audio track does not cover the window, the window is shifted inside the
  track; a track shorter than the window is stored whole (shorter WAV; the loader tiles it to 10 s,
  docs/model.md §1). Both cases are counted.

A file that cannot give them is a :class:`MediaError` whose reason tells a cut file ("truncated")
from an undecodable one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from sslsan.data.prepare.common import MediaError, check_file, short_detail
from sslsan.media import SAMPLE_RATE, container_span, cut_box, declared_end, frame_before, resample_fifo


@dataclass
class DecodedClip:
    frame: Any  # PIL.Image (RGB)
    frame_time: float  # seconds from the container start
    wave: np.ndarray  # float32 mono at `sample_rate`
    audio_start: float  # seconds of the first stored sample
    duration: float  # container duration used for the middle
    shifted: bool  # window moved to stay inside the audio track
    short: bool  # audio track shorter than the window (stored whole)


def _open(path: Path):
    check_file(path)
    try:
        return av.open(str(path))
    except av.FFmpegError as exc:
        msg = short_detail(exc)
        # A cut MP4 whose index (moov box) sat at the end cannot even be opened.
        box = cut_box(path) if path.suffix.lower() in (".mp4", ".m4v", ".mov", ".m4a") else None
        if box is not None:
            raise MediaError(path, "truncated", f"'{box}' box ends past the end of the file; {msg}") from None
        raise MediaError(path, "undecodable", msg) from None


def _duration(container, path: Path) -> tuple[float, float]:
    """(start, duration) in seconds of the container (streams as fallback)."""
    span = container_span(container)
    if span is None:
        raise MediaError(path, "undecodable", "container declares no duration")
    return span


def _check_track_end(container, path: Path, start: float, decoded_end: float) -> None:
    """A track that decodes to well before its declared end is a cut file."""
    declared = declared_end(container.streams.audio[0])
    if declared is not None and decoded_end < declared - 0.5:
        raise MediaError(path, "truncated",
                         f"audio data ends at {decoded_end - start:.2f} s, the track declares {declared - start:.2f} s")


def _frame_before(container, path: Path, mid: float):
    """The middle frame (sslsan.media.frame_before), with a cut file told from an undecodable one."""
    pick = frame_before(container, mid)
    best = pick.before
    if pick.error is not None:
        if best is None:
            raise MediaError(path, "undecodable", f"video: {short_detail(pick.error)}")
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
            raise MediaError(path, "truncated" if cut_box(path) else "undecodable", f"audio: {short_detail(exc)}") from None
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
        raise MediaError(path, "undecodable", short_detail(exc)) from None
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
    path = Path(path)
    container = _open(path)
    try:
        start, _, image, frame_time = _middle_frame(container, path)
        track, _ = _whole_track(container, path, start, sample_rate)
    except av.FFmpegError as exc:
        raise MediaError(path, "undecodable", short_detail(exc)) from None
    finally:
        container.close()
    return image, frame_time, track
