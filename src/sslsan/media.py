"""Reading and writing media files: every decoder and encoder of the project, one rule each.

* **Audio** (`load_audio`): plain PCM WAVs already at the target rate are read with the standard
  library (~0.5 ms instead of ~15 ms through a demuxer + resampler, which keeps a training loader
  ahead of the GPU); everything else (WAV/FLAC/MP3/OGG, the audio track of MP4/MKV) goes through
  PyAV, one resampler call per track. Channels are averaged, float32 out. A WAV whose header
  declares more audio than the file holds (a cut download) and NaN/infinite samples are errors.
* **Images** (`load_image`): any PIL-readable file to uint8 RGB. 16-bit greyscale is scaled to
  8 bits (v / 257), not clipped. Images above PIL's pixel limit (`PIL.Image.MAX_IMAGE_PIXELS`,
  ~89 megapixels) are refused from their header, before any decoding. `load_image_reduced` decodes
  a JPEG at 1/2, 1/4 or 1/8 scale where its caller can use that (training crops of large frames).
* **Masks** (`load_mask`): grey level > 127 is foreground.
* **Video frames** (`frame_before`, `video_frame`): the frame shown at time t is the decoded frame
  with the largest timestamp *strictly below* t; the middle frame is the one before
  ``start + duration / 2``. For a 25 fps 10 s clip that is the frame at 4.96 s, SSL-TIE's ``125.jpg``
  and slots_ezvsl's ``num_frames // 2``; it is within one frame period of the middle. A time at or
  before the first frame gives the first frame; a time past the end of the video is an error.
* **Boxes from masks** (`box_from_mask`): normalised half-open xyxy of the foreground pixels
  (``[x_min / w, y_min / h, (x_max + 1) / w, (y_max + 1) / h]``); ``inclusive=True`` gives the
  s4_box.json convention ``x_max / w``. An empty mask has no box: None.
* **Video streams** (`probe_video`, `read_frames`, `AudioReader`), for whole videos in bounded memory:
  frames come in presentation order, upright (a display matrix, a phone's rotation metadata, is
  applied to the pixels in quarter turns) and scaled by libswscale; decoding that fails part-way, and
  frames ending more than 1 s before the track declares, are errors (a cut file), never a silently
  shorter video. The sound is decoded a piece at a time, resampled and averaged as `load_audio` does,
  and ends where the track declares (decoders also return the encoder's padding after it).
  `cut_box` tells a cut MP4 (a top-level box running past the end of the file) from a corrupt one.
* **Encoding**: `wav_bytes` (PCM16 WAV), `jpeg_bytes`, `mask_png_bytes` (0/255 PNG); `VideoWriter`
  (H.264 + AAC in MP4/MOV/MKV, what browsers play).
"""

from __future__ import annotations

import io
import struct
import warnings
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

import av
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from sslsan.utils.constants import SAMPLE_RATE
from sslsan.utils.io import check_input_file

# What a file is, by its suffix (lower case). Folders of user media are sorted with these.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma")
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".flv")  # a frame and a sound track


class AudioError(ValueError):
    """An audio file that is missing, empty, corrupt, cut short or has no audio track (message names the file)."""


class ImageError(ValueError):
    """An image or video file that is missing, empty, too large or cannot be decoded (message names the file)."""


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def decoder_message(exc: BaseException) -> str:
    """What a decoder (FFmpeg, PIL, OS) says went wrong, without the errno and the path the message already names."""
    return str(getattr(exc, "strerror", None) or exc)


# ------------------------------------------------------------------------------------------- audio


def wav_truncation(path: str | Path) -> str | None:
    """Why a RIFF/WAVE file is cut short (its data chunk runs past the end of the file), else None.

    Files that are not RIFF/WAVE, and streamed WAVs whose header leaves the length open (0 or
    0xFFFFFFFF), get None: the decoder judges them.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            cid, n = struct.unpack("<4sI", fh.read(8))
            if cid == b"data":
                held = size - pos - 8
                if n in (0, 0xFFFFFFFF) or held >= n:
                    return None
                return f"truncated WAV: the header declares {n} bytes of audio, the file holds {held}"
            pos += 8 + n + (n & 1)
    return "truncated WAV: the file ends before its audio data"


def _read_pcm_wav(path: Path, sample_rate: int) -> np.ndarray | None:
    """(C, N) float32 of a plain PCM WAV already at `sample_rate`, via the standard library; None otherwise."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getframerate() != sample_rate or w.getsampwidth() not in (1, 2, 4) or w.getcomptype() != "NONE":
                return None
            channels, width, frames = w.getnchannels(), w.getsampwidth(), w.getnframes()
            raw = w.readframes(frames)
    except (wave.Error, EOFError, OSError):
        return None  # not a plain PCM WAV (float, extensible, ...): PyAV decides
    if len(raw) != frames * channels * width or frames == 0:
        return None  # streamed (open length) or empty: let PyAV report it
    if width == 1:
        data = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    else:
        dtype, scale = ("<i2", 32768.0) if width == 2 else ("<i4", 2147483648.0)
        data = np.frombuffer(raw, dtype).astype(np.float32) / scale
    return data.reshape(frames, channels).T


def resample_fifo(fifo, sample_rate: int, layout: str | None = None) -> np.ndarray:
    """Everything in a PyAV AudioFifo as float32 (C, N) at `sample_rate`, in one resampler call.

    Per-frame resampler calls cost more than the decoding itself (430 AAC frames per 10 s at 44.1 kHz).
    """
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)
    chunks = [f.to_ndarray() for f in resampler.resample(fifo.read())]
    chunks += [f.to_ndarray() for f in resampler.resample(None)]
    return np.concatenate(chunks, axis=1).astype(np.float32, copy=False)


def _decode_with_av(path: Path, sample_rate: int) -> np.ndarray:
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioError(f"{path}: no audio track")
            stream = container.streams.audio[0]
            channels = stream.codec_context.channels or 1
            fifo = av.AudioFifo()
            for frame in container.decode(stream):
                frame.pts = None  # the fifo checks timestamp continuity; broken timestamps must not drop audio
                fifo.write(frame)
            if fifo.samples == 0:
                raise AudioError(f"{path}: audio track holds no samples")
            data = resample_fifo(fifo, sample_rate, stream.layout.name if stream.layout else None)
    except AudioError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise AudioError(f"{path}: cannot decode audio (corrupt or unsupported file: {decoder_message(exc)})") from None
    if data.shape[1] == 0:
        raise AudioError(f"{path}: audio track holds no samples")
    return data[:channels]


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, mono: bool = True) -> torch.Tensor:
    """Decode an audio file (WAV/FLAC/MP3/OGG, or the audio track of MP4/MKV), resampled to `sample_rate`.

    Returns float32: (N,) when `mono` (mean of the channels), else (C, N). Raises AudioError naming
    the file when it is missing, empty, corrupt, cut short, has no audio or holds NaN/inf samples.
    """
    path = check_input_file(path, "audio", AudioError)
    data = None
    if path.suffix.lower() == ".wav":
        cut = wav_truncation(path)
        if cut is not None:
            raise AudioError(f"{path}: {cut} (incomplete download or copy?)")
        data = _read_pcm_wav(path, sample_rate)
    if data is None:
        data = _decode_with_av(path, sample_rate)
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: audio holds {int(np.count_nonzero(~np.isfinite(data)))} NaN or infinite samples")
    wave_ = torch.from_numpy(np.ascontiguousarray(data))
    return wave_.mean(dim=0) if mono else wave_


def wav_bytes(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """PCM16 WAV file contents of a float waveform in [-1, 1], (N,) mono or (C, N); values beyond are clipped."""
    data = np.atleast_2d(np.asarray(samples, dtype=np.float64))
    pcm = np.round(np.clip(data, -1.0, 1.0) * 32767.0).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(data.shape[0])
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(np.ascontiguousarray(pcm.T).tobytes())  # interleaved frames
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ images


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the header; ImageError if missing, empty, not an image or over the pixel limit."""
    with _open_image(path) as im:
        return im.size


class _open_image:
    """`PIL.Image.open` with the project's checks: the file exists and is not empty, it is an image,
    and it is within PIL's pixel limit (checked from the header, before decoding)."""

    def __init__(self, path: str | Path, what: str = "image"):
        self.path = check_input_file(path, what, ImageError)
        self.im = None

    def __enter__(self):
        limit = Image.MAX_IMAGE_PIXELS
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the check below says it once
                self.im = Image.open(self.path)
        except Image.DecompressionBombError as exc:  # a header claiming hundreds of megapixels
            raise ImageError(f"{self.path}: image too large to decode ({exc})") from None
        except UnidentifiedImageError:
            raise ImageError(f"{self.path}: cannot decode image (not a format PIL reads, or corrupt)") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{self.path}: cannot decode image (corrupt or unsupported: {decoder_message(exc)})") from None
        w, h = self.im.size
        if limit is not None and w * h > limit:
            self.im.close()
            raise ImageError(f"{self.path}: image too large to decode ({w} x {h} = {w * h / 1e6:.0f} megapixels; "
                             f"the limit is {limit / 1e6:.0f}, PIL.Image.MAX_IMAGE_PIXELS)")
        return self.im

    def __exit__(self, *exc) -> None:
        if self.im is not None:
            self.im.close()


def _as_8bit(im):
    """16-bit and 32-bit greyscale scaled to 8 bits ("L"); other modes as they are (PIL converts them right)."""
    if im.mode.startswith("I"):  # I;16*, I: 16-bit PNG/TIFF greyscale (convert("L") would clip at 255)
        a = np.asarray(im, dtype=np.float64)
        return Image.fromarray(np.round(np.clip(a, 0, 65535) / 257.0).astype(np.uint8), "L")
    if im.mode == "F":  # float greyscale: [0, 1] when it fits there, else 8-bit levels
        a = np.asarray(im, dtype=np.float64)
        scale = 255.0 if np.nanmax(a, initial=0.0) <= 1.0 else 1.0
        return Image.fromarray(np.round(np.clip(np.nan_to_num(a) * scale, 0, 255)).astype(np.uint8), "L")
    return im


def _decode(path: Path, im, mode: str) -> np.ndarray:
    try:
        return np.asarray(_as_8bit(im).convert(mode))
    except (OSError, SyntaxError, ValueError) as exc:  # e.g. a cut file: the header read, the pixels do not
        raise ImageError(f"{path}: cannot decode image (corrupt or unsupported: {exc})") from None


def load_image(path: str | Path) -> torch.Tensor:
    """Decode any PIL-readable image to uint8 RGB (3, H, W)."""
    opened = _open_image(path)
    with opened as im:
        arr = _decode(opened.path, im, "RGB")
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def load_image_reduced(path: str | Path, reduction_for: Callable[[int, int], int]) -> tuple[torch.Tensor, int]:
    """`load_image`, a JPEG decoded at 1/2, 1/4 or 1/8 scale when the caller can use it.

    `reduction_for(width, height)` gets the full size from the header and returns the largest
    reduction (1, 2, 4 or 8) the caller accepts; libjpeg then scales while decoding (its DCT
    scaling: far less work than decoding everything and shrinking). Returns uint8 (3, h, w) and the
    reduction applied: 1 for other formats, or when a file does not allow it.
    """
    opened = _open_image(path)
    with opened as im:
        width, height = im.size
        factor, applied = reduction_for(width, height), 1
        if factor > 1 and im.format == "JPEG" and im.mode in ("RGB", "L"):
            im.draft(im.mode, (width // factor, height // factor))
            applied = round(width / im.size[0])
        arr = _decode(opened.path, im, "RGB")
    return torch.from_numpy(arr.copy()).permute(2, 0, 1), applied


def load_mask(path: str | Path) -> np.ndarray:
    """Binary mask (H, W) bool of a mask image: grey level > 127 is foreground."""
    opened = _open_image(path, "mask")
    with opened as im:
        return _decode(opened.path, im, "L") > 127


def jpeg_bytes(image, quality: int = 95) -> bytes:
    """JPEG file contents of a PIL image or a uint8 (H, W, 3) array."""
    im = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def mask_png_bytes(mask: np.ndarray) -> bytes:
    """A binary mask as 0/255 greyscale PNG file contents."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(mask).astype(bool).astype(np.uint8) * 255, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def box_from_mask(mask: np.ndarray, inclusive: bool = False) -> list[float] | None:
    """Normalised xyxy box of the foreground pixels of `mask` (H, W); None for an empty mask (module doc)."""
    ys, xs = np.nonzero(np.asarray(mask))
    if len(xs) == 0:
        return None
    h, w = np.asarray(mask).shape
    end = 0 if inclusive else 1
    return [xs.min() / w, ys.min() / h, (xs.max() + end) / w, (ys.max() + end) / h]


# ------------------------------------------------------------------------------------------- video


_MP4_TOP_LEVEL_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pdin", b"moof", b"mfra",
                        b"styp", b"sidx", b"uuid", b"meta", b"junk"}


def cut_box(path: str | Path) -> str | None:
    """For ISO-BMFF files (MP4/MOV/M4A): the first top-level box that runs past the end of the file.

    A download cut short leaves its last box incomplete; that tells "truncated" from "corrupt".
    """
    path = Path(path)
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
            if n < 8 or kind not in _MP4_TOP_LEVEL_BOXES:
                return None  # not ISO-BMFF (or garbage): no opinion
            if pos + n > size:
                return kind.decode("ascii", "replace")
            pos += n
    return None


def declared_end(stream) -> float | None:
    """Where a stream declares it ends, in seconds of its own timeline (None if it does not say)."""
    if stream.duration is None or stream.time_base is None:
        return None
    return float(((stream.start_time or 0) + stream.duration) * stream.time_base)


def container_span(container) -> tuple[float, float] | None:
    """(start, duration) in seconds of an open PyAV container (streams as fallback); None if unknown."""
    start = container.start_time / 1e6 if container.start_time is not None else 0.0
    if container.duration is not None and container.duration > 0:
        return start, container.duration / 1e6
    for s in list(container.streams.video) + list(container.streams.audio):
        if s.duration is not None and s.time_base is not None and s.duration > 0:
            return start, float(s.duration * s.time_base)
    return None


@dataclass
class FramePick:
    """What `frame_before` decoded: the last frame strictly before t (None when there is none), the
    first frame at or after t (None when decoding ended first), and the decoding error that ended
    it early (None if none)."""

    before: Any
    after: Any
    error: Exception | None = None


def frame_before(container, t: float) -> FramePick:
    """The decoded video frame with the largest timestamp strictly below `t` (the rule of the module doc).

    Seeks to a key frame before `t` first. Decoding errors are returned, not raised, so a caller can
    tell a file cut after that frame from one that never decoded.
    """
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    try:
        container.seek(max(0, int((t - 0.5) / stream.time_base)), stream=stream, backward=True)
    except av.FFmpegError:
        container.seek(0)
    best = None
    try:
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            if frame.time >= t:
                return FramePick(best, frame)
            best = frame
    except av.FFmpegError as exc:
        return FramePick(best, None, exc)
    return FramePick(best, None)


def video_frame(path: str | Path, at: float | None = None) -> tuple[torch.Tensor, float]:
    """uint8 (3, H, W) RGB frame of a video shown at `at` seconds (default: the middle) and its time.

    ImageError for a file that is not a decodable video, and for `at` outside the video.
    """
    path = check_input_file(path, "video", ImageError)
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise ImageError(f"{path}: no video track")
            rate = c.streams.video[0].average_rate
            span = container_span(c)
            if span is None and at is None:
                raise ImageError(f"{path}: the video declares no duration; pass --time")
            start, dur = span if span is not None else (0.0, None)
            if at is not None and (at < 0 or (dur is not None and at > dur)):
                raise ImageError(f"{path}: --time {at:g} s is outside the video (0 to {dur:.2f} s)" if dur is not None
                                 else f"{path}: --time {at:g} s is negative")
            target = start + (dur / 2 if at is None else at)
            pick = frame_before(c, target)
            frame = pick.before if pick.before is not None else pick.after  # before the first frame: the first
            if frame is None:
                detail = f" ({pick.error})" if pick.error is not None else ""
                raise ImageError(f"{path}: video track holds no decodable frame{detail}")
            period = float(1 / rate) if rate else 0.04
            if pick.after is None and target - frame.time > 1.5 * period:
                raise ImageError(f"{path}: --time {at:g} s is past the last frame ({frame.time - start:.2f} s)"
                                 if at is not None else f"{path}: video data ends at {frame.time - start:.2f} s, "
                                 f"before its middle ({target - start:.2f} s): a cut file?")
            arr = frame.to_ndarray(format="rgb24")
            shown = float(frame.time) - start
    except ImageError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise ImageError(f"{path}: cannot decode video ({decoder_message(exc)})") from None
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous(), shown


# ------------------------------------------------------------------------------- video streams


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` reads from a video file's header and first frame. Times are seconds from
    `start`, the container's start time."""

    path: Path
    width: int  # of the upright frame (rotation applied)
    height: int
    quarter_turns: int  # counterclockwise quarter turns (0-3) that make the decoded frames upright
    fps: Fraction | None  # the video track's average frame rate
    start: float
    duration: float | None  # of the container
    video_end: float | None  # where the video track declares it ends
    audio: bool  # has an audio track


def _quarter_turns(frame) -> int:
    """Counterclockwise quarter turns that show a decoded frame upright: its display matrix (a phone's
    rotation metadata) as FFmpeg reads it, rounded to the nearest quarter turn; flips are ignored."""
    return int(round((frame.rotation or 0) / 90.0)) % 4


def probe_video(path: str | Path) -> VideoInfo:
    """A video file's sizes, rate, span, rotation and tracks, after decoding its first frame.

    ImageError (one line naming the file) when it is missing, empty, not a video, has no video track
    or no decodable frame.
    """
    path = check_input_file(path, "video", ImageError)
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise ImageError(f"{path}: no video track (is it an audio file?)")
            stream = c.streams.video[0]
            first = next(iter(c.decode(stream)), None)
            if first is None:
                raise ImageError(f"{path}: video track holds no decodable frame")
            turns = _quarter_turns(first)
            w, h = (first.width, first.height) if turns % 2 == 0 else (first.height, first.width)
            start, duration = container_span(c) or (0.0, None)
            end = declared_end(stream)
            return VideoInfo(path=path, width=w, height=h, quarter_turns=turns, fps=stream.average_rate or None,
                             start=start, duration=duration, video_end=None if end is None else end - start,
                             audio=bool(c.streams.audio))
    except ImageError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        box = cut_box(path)  # a cut MP4 whose index sat at its end cannot even be opened
        cut = f"; the '{box}' box ends past the end of the file: a cut file?" if box else ""
        raise ImageError(f"{path}: cannot decode video ({decoder_message(exc)}){cut}") from None


@dataclass
class DecodedFrame:
    time: float  # seconds from the container start
    duration: float | None  # seconds, when the file says
    image: np.ndarray  # uint8 (H, W, 3) RGB, upright


def read_frames(info: VideoInfo, width: int, height: int) -> Iterator[DecodedFrame]:
    """Every frame of the video track in presentation order, upright and scaled to width x height.

    ImageError when decoding fails part-way, and when the frames end more than a second before the
    video track declares (a cut file): the caller never gets a silently shortened video.
    """
    path, turns = info.path, info.quarter_turns
    dw, dh = (width, height) if turns % 2 == 0 else (height, width)  # decoded (not yet rotated) size
    last = None
    try:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in c.decode(stream):
                if frame.time is None:
                    continue
                image = frame.reformat(width=dw, height=dh, format="rgb24").to_ndarray()
                dur = float(frame.duration * frame.time_base) if frame.duration and frame.time_base else None
                last = float(frame.time) - info.start
                yield DecodedFrame(last, dur, np.ascontiguousarray(np.rot90(image, turns)) if turns else image)
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        where = "before its first frame" if last is None else f"after {last:.2f} s"
        raise ImageError(f"{path}: video cannot be decoded {where} ({decoder_message(exc)}): a cut or damaged file?") from None
    if last is None:
        raise ImageError(f"{path}: video track holds no decodable frame")
    if info.video_end is not None and last < info.video_end - 1.0:
        raise ImageError(f"{path}: video data ends at {last:.2f} s, the track declares {info.video_end:.2f} s: a cut file?")


def _first_samples(frame, n: int):
    """The first `n` samples of a decoded audio frame, as a new frame."""
    data = frame.to_ndarray()  # planar (C, N); packed (1, N x C)
    keep = n if frame.format.is_planar else n * len(frame.layout.channels)
    cut = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, :keep]), format=frame.format.name,
                                     layout=frame.layout.name)
    cut.sample_rate = frame.sample_rate
    return cut


class AudioReader:
    """The first audio track of a file, decoded a piece at a time: memory does not grow with its length.

    Each decoded frame goes to `on_frame` (e.g. an encoder copying the sound into another file), and,
    resampled to `sample_rate` with the channels averaged (as `load_audio`), into a buffer of mono
    samples; the track ends where it declares (decoders also return the encoder's padding after it): `read_until(i)` decodes until sample i is held or the track ends, `samples(i0, i1)` gives
    what is held of [i0, i1), `drop_before(i)` forgets older samples. Sample i lies at
    ``first + i / sample_rate`` seconds from the container start; gaps in the track's timestamps are
    closed, as `load_audio` does. AudioError when there is no audio track or it cannot be decoded.
    """

    def __init__(self, path: str | Path, sample_rate: int = SAMPLE_RATE,
                 on_frame: Callable[[Any], None] | None = None, chunk_seconds: float = 0.5):
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.on_frame = on_frame
        try:
            self._container = av.open(str(self.path))
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            raise AudioError(f"{self.path}: cannot decode audio ({decoder_message(exc)})") from None
        if not self._container.streams.audio:
            self._container.close()
            raise AudioError(f"{self.path}: no audio track")
        stream = self._container.streams.audio[0]
        self.channels = stream.codec_context.channels or 1
        self.rate = stream.rate
        c = self._container
        self._start = c.start_time / 1e6 if c.start_time is not None else 0.0
        self._frames = c.decode(stream)
        self._fifo = av.AudioFifo()
        self._resampler = av.AudioResampler(format="fltp", layout=stream.layout.name if stream.layout else None,
                                            rate=sample_rate)
        self._chunk = max(1, int(chunk_seconds * (stream.rate or sample_rate)))
        self._buf = np.zeros(0, np.float32)
        self._base = 0  # index of _buf[0]
        self._declared_end = declared_end(stream)
        self._room: int | None = None  # samples (at the track's rate) left before its declared end
        self.first: float | None = None  # time of sample 0
        self.done = False

    @property
    def end(self) -> int:
        """One past the last sample held."""
        return self._base + len(self._buf)

    @property
    def held(self) -> int:
        """How many samples are held (what memory the reader takes)."""
        return len(self._buf)

    def _append(self, frames) -> None:
        parts = [f.to_ndarray()[: self.channels].mean(axis=0) for f in frames]
        if parts:
            self._buf = np.concatenate([self._buf, *parts]).astype(np.float32, copy=False)

    def _decode_one(self) -> bool:
        """Decode one more frame; False when the track has ended (then the resampler is flushed)."""
        try:
            frame = next(self._frames, None)
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            held = f"after {self.first + self.end / self.sample_rate:.2f} s" if self.first is not None else "at its start"
            raise AudioError(f"{self.path}: audio cannot be decoded {held} ({decoder_message(exc)}): a cut or "
                             "damaged file?") from None
        if frame is None:
            self._append(self._resampler.resample(self._fifo.read() if self._fifo.samples else None))
            if self._fifo.samples == 0:
                self._append(self._resampler.resample(None))
            self.done = True
            return False
        if self.first is None:
            self.first = (float(frame.time) - self._start) if frame.time is not None else 0.0
            if self._declared_end is not None and frame.time is not None:
                self._room = int(round((self._declared_end - float(frame.time)) * frame.sample_rate))
        if self._room is not None:
            if self._room < frame.samples:
                frame = _first_samples(frame, max(0, self._room))
            self._room -= frame.samples
            if frame.samples == 0:
                return True
        frame.pts = None  # the fifo checks timestamp continuity; broken timestamps must not drop audio
        if self.on_frame is not None:
            self.on_frame(frame)
        self._fifo.write(frame)
        if self._fifo.samples >= self._chunk:
            self._append(self._resampler.resample(self._fifo.read()))
        return True

    def read_until(self, i: int) -> None:
        while not self.done and self.end < i:
            self._decode_one()
        if self.done and self.first is None:
            raise AudioError(f"{self.path}: audio track holds no samples")

    def finish(self) -> None:
        """Decode the rest of the track (its frames still go to `on_frame`), keeping no samples."""
        while not self.done:
            self._decode_one()
            self.drop_before(self.end)

    def samples(self, i0: int, i1: int) -> np.ndarray:
        """The held samples of [i0, i1) (fewer at the track's ends), float32."""
        if max(i0, 0) < self._base and i1 > max(i0, 0):
            raise ValueError(f"samples from {i0} were dropped (held from {self._base})")
        lo, hi = max(i0, self._base) - self._base, max(0, min(i1, self.end) - self._base)
        return self._buf[lo:hi] if hi > lo else np.zeros(0, np.float32)

    def drop_before(self, i: int) -> None:
        k = min(max(0, i - self._base), len(self._buf))
        if k:
            self._buf = self._buf[k:].copy()
            self._base += k

    def close(self) -> None:
        self._container.close()


class VideoWriter:
    """An H.264 (libx264, yuv420p) + AAC video file: frames and decoded audio frames in, `close()` finishes it.

    H.264 + AAC in MP4 is what every browser plays (Chromium included); .mov and .mkv hold the same
    streams. Width and height must be even (yuv420p). It writes `path` as it goes: give it a name from
    `sslsan.utils.io.atomic_path` so a reader never sees a half-written file. Leaving a `with` block by
    an exception closes the file without finishing it.
    """

    CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}

    def __init__(self, path: str | Path, width: int, height: int, fps: Fraction, *, audio_rate: int | None = None,
                 audio_channels: int = 2, container: str = "mp4", crf: int = 20, preset: str = "veryfast"):
        if width % 2 or height % 2 or width < 2 or height < 2:
            raise ValueError(f"{path}: video size must be even for yuv420p, got {width} x {height}")
        self.fps = Fraction(fps)
        self._frames = 0
        self._sound = Fraction(0)  # seconds of sound written
        options = {"movflags": "+faststart"} if container in ("mp4", "mov") else {}  # playable while it downloads
        self._out = av.open(str(path), "w", format=container, options=options)
        try:
            self._video = self._out.add_stream("libx264", rate=self.fps)
            self._video.width, self._video.height, self._video.pix_fmt = width, height, "yuv420p"
            self._video.options = {"crf": str(crf), "preset": preset}
            self._audio = None
            if audio_rate:
                layout = "mono" if audio_channels == 1 else "stereo"
                rates = av.codec.Codec("aac", "w").audio_rates or [audio_rate]
                rate = audio_rate if audio_rate in rates else 48000  # AAC has a fixed set of rates
                self._audio = self._out.add_stream("aac", rate=rate, layout=layout)
                self._audio.bit_rate = 96_000 * min(2, audio_channels)
        except BaseException:
            self._out.close()
            raise

    def write(self, image: np.ndarray) -> None:
        """Append one uint8 (H, W, 3) RGB frame, shown for 1 / fps seconds."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts, frame.time_base = self._frames, 1 / self.fps
        self._frames += 1
        self._mux(self._video.encode(frame))

    def write_audio(self, frame) -> None:
        """Append a decoded audio frame (any rate, layout and sample format), right after the sound so far."""
        # Timestamps from 0 let the encoder date its priming samples before 0, so the muxer writes the edit
        # list that skips them; without them the sound would start 1024 samples (about 21 ms) late.
        frame.pts, frame.time_base = round(self._sound * frame.sample_rate), Fraction(1, frame.sample_rate)
        self._sound += Fraction(frame.samples, frame.sample_rate)
        self._mux(self._audio.encode(frame))

    def write_silence(self, seconds: float) -> None:
        n = int(round(seconds * self._audio.rate))
        if n > 0:
            frame = av.AudioFrame.from_ndarray(np.zeros((len(self._audio.layout.channels), n), np.float32),
                                               format="fltp", layout=self._audio.layout.name)
            frame.sample_rate = self._audio.rate
            self.write_audio(frame)

    def _mux(self, packets) -> None:
        for packet in packets:
            self._out.mux(packet)

    def close(self) -> None:
        """Flush the encoders and close the file."""
        for stream in (self._video, self._audio):
            if stream is not None:
                self._mux(stream.encode(None))
        self._out.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is not None:
            try:
                self._out.close()
            except (av.error.FFmpegError, OSError, ValueError):
                pass  # already failing: the first error is the one to report, and the caller removes the file
