"""Small media files in the real formats, for the tests and benchmarks (test-only helpers, not the library).

The content encodes time so a reader can check what was extracted:
* video frame k shows k as 8 binary blocks (white = 1, most significant bit left) in its top row,
  which survives lossy H.264 / MPEG-4 coding (:func:`read_frame_index` decodes it);
* the audio is a 440 Hz sine whose amplitude grows linearly, ``a(t) = 0.05 + 0.09 t``
  (:func:`audio_amplitude`), identical in every channel.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

BLOCK = 16


def audio_amplitude(t):
    return 0.05 + 0.09 * np.asarray(t, dtype=np.float64)


def read_frame_index(image) -> int:
    """Inverse of the frame pattern: the frame number drawn in the top row of `image` (PIL or array)."""
    a = np.asarray(image.convert("L") if hasattr(image, "convert") else image, dtype=np.float64)
    h, w = a.shape[:2]
    sy, sx = h / 96.0, w / 128.0  # the pattern scales with any resize of the 128x96 frame
    bits = [a[int(2 * sy):int(14 * sy), int((i * BLOCK + 2) * sx):int(((i + 1) * BLOCK - 2) * sx)].mean() > 128
            for i in range(8)]
    return int("".join("1" if b else "0" for b in bits), 2)


def _frame(k: int, width: int, height: int) -> np.ndarray:
    img = np.full((height, width, 3), 60, np.uint8)
    img[height // 2:, :, 1] = 160  # some non-flat content
    for i, bit in enumerate(f"{k % 256:08b}"):
        img[0:BLOCK, i * BLOCK:(i + 1) * BLOCK] = 255 if bit == "1" else 0
    return img


def write_video(path: str | Path, seconds: float = 10.0, fps: int = 25, width: int = 128, height: int = 96,
                audio: bool = True, video: bool = True, sample_rate: int = 44100, channels: int = 2,
                audio_seconds: float | None = None, codec: str = "libx264", faststart: bool = False,
                audio_gain: float = 1.0, frame_times: list[float] | None = None, rotation: int = 0,
                pix_fmt: str = "yuv420p", frames: Callable[[int], np.ndarray] | None = None,
                sound: Callable[[np.ndarray], np.ndarray] | None = None) -> Path:
    """An MP4 (H.264 or MPEG-4 video + AAC audio) with the time-coded content described above.

    `audio_seconds` makes the audio track shorter (or longer) than the video; `faststart` puts the
    index at the front (then a cut file still opens and fails while decoding); `audio_gain` scales
    the sound (0: a muted video). `frame_times` gives a variable frame rate: frame k at
    frame_times[k] seconds (millisecond time base) instead of k / fps. `rotation` stores a display
    matrix (counterclockwise degrees, as a phone's rotation metadata); `pix_fmt` yuv444p allows odd
    sizes. `frames(k)` and `sound(t)` replace the content: uint8 (height, width, 3) of frame k, the
    mono waveform at times t.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as out:
        vs = as_ = None
        if video:
            vs = out.add_stream(codec, rate=fps)
            vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
            if codec == "libx264":
                vs.options = {"preset": "ultrafast", "g": str(fps * 2)}
            if frame_times is not None:
                vs.time_base = vs.codec_context.time_base = Fraction(1, 1000)
            if rotation:
                vs.set_display_rotation(rotation)
        if audio:
            as_ = out.add_stream("aac", rate=sample_rate)
            as_.layout = "stereo" if channels == 2 else "mono"
        if vs is not None:
            count = len(frame_times) if frame_times is not None else int(round(seconds * fps))
            for k in range(count):
                image = frames(k) if frames is not None else _frame(k, width, height)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                if frame_times is not None:
                    frame.pts, frame.time_base = int(round(frame_times[k] * 1000)), Fraction(1, 1000)
                else:
                    frame.pts, frame.time_base = k, Fraction(1, fps)
                for packet in vs.encode(frame):
                    out.mux(packet)
            for packet in vs.encode():
                out.mux(packet)
        if as_ is not None:
            n = int(round((seconds if audio_seconds is None else audio_seconds) * sample_rate))
            t = np.arange(n) / sample_rate
            sig = audio_gain * (sound(t) if sound is not None else audio_amplitude(t) * np.sin(2 * np.pi * 440.0 * t))
            sig = sig.astype(np.float32)
            data = np.repeat(sig[None, :], channels, axis=0)
            hop = 1024
            for i in range(0, n, hop):
                chunk = np.ascontiguousarray(data[:, i:i + hop])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=as_.layout.name)
                frame.sample_rate = sample_rate
                frame.pts = i
                frame.time_base = Fraction(1, sample_rate)
                for packet in as_.encode(frame):
                    out.mux(packet)
            for packet in as_.encode():
                out.mux(packet)
    return path


def write_wav(path: str | Path, seconds: float, sample_rate: int = 16000, channels: int = 1) -> Path:
    """PCM16 WAV with the amplitude-ramp sine (all channels equal)."""
    from sslsan.media import wav_bytes

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    sig = (audio_amplitude(t) * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    data = wav_bytes(np.repeat(sig[None, :], channels, axis=0), sample_rate)
    path.write_bytes(data)
    return path
