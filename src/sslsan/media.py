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
* **Encoding**: `wav_bytes` (PCM16 WAV), `jpeg_bytes`, `mask_png_bytes` (0/255 PNG).
"""

from __future__ import annotations

import io
import struct
import warnings
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

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
