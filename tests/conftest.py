"""Shared test fixtures: small real media files written with PyAV / PIL inside the tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

# Golden reference outputs live in the repository (tests/golden/, see its README): a golden test never skips.
REFERENCE = Path(__file__).resolve().parent / "golden"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A golden test (marker `golden`) that skips is a failure: golden data is part of the repository."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.get_closest_marker("golden") is not None:
        report.outcome = "failed"
        report.longrepr = f"golden test skipped ({report.longrepr}); golden tests must run on every machine"


def reference_file(name: str) -> Path:
    """A golden file from tests/golden/; a missing one fails the test (it is part of the repository)."""
    path = REFERENCE / name
    if not path.is_file():
        pytest.fail(f"{path}: golden file missing from the checkout")
    return path


def command(*words: str):
    """`sslsan WORDS ARGV...` as a function of ARGV, run through the dispatcher (the error boundary) as a user runs it."""
    from sslsan.cli import main

    return lambda argv: main([*words, *argv])


def write_audio(path: Path, wave: np.ndarray, sample_rate: int, codec: str | None = None) -> Path:
    """Write (C, N) or (N,) float waveform in [-1, 1] with PyAV; codec chosen from the suffix."""
    import av

    wave = np.atleast_2d(np.asarray(wave, dtype=np.float32))
    channels = wave.shape[0]
    codec = codec or {".wav": "pcm_s16le", ".flac": "flac", ".mp3": "libmp3lame", ".ogg": "libopus", ".m4a": "aac"}[path.suffix]
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=sample_rate, layout=layout)
        fmt = stream.codec_context.codec.audio_formats[0].name
        frame_size = 1024
        pts = 0
        for start in range(0, wave.shape[1], frame_size):
            chunk = np.ascontiguousarray(wave[:, start : start + frame_size])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate = sample_rate
            frame.pts = pts
            pts += chunk.shape[1]
            resampler = av.AudioResampler(format=fmt, layout=layout, rate=sample_rate)
            for f in resampler.resample(frame):
                for packet in stream.encode(f):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def sine(freq: float, seconds: float, sample_rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
