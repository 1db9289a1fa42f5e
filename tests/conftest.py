"""Shared test fixtures: small real media files written with PyAV / PIL inside the tests, and the one tiny
data set (JPEG frames, PCM16 WAV clips, JSONL manifests) that training, evaluation and fault tests run on."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sslsan.config import load_config
from sslsan.data.manifest import Sample, write_manifest
from sslsan.engine import TrainConfig
from sslsan.engine.train_config import resolve_train_config
from sslsan.media import wav_bytes

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


# ------------------------------------------------------------------------------------------ the tiny data set

TINY_CATEGORIES = ("dog", "drum", "siren")  # square colour channel 0, 1, 2
TONE_HZ = {"dog": 300.0, "drum": 900.0, "siren": 2500.0}
TINY_SR = 16000


def write_split(root: Path, name: str, n: int, seed: int = 0) -> Path:
    """`n` samples listed in `root/<name>.jsonl`, ids `<name>_00`, ...; returns the manifest path.

    Sample i is of category TINY_CATEGORIES[i % 3]: a JPEG frame (root/frames/, sizes 40-56 x 36-40 px:
    the evaluation transform squashes them) of dark noise with a bright 16 px square in the category's
    colour channel at a seeded place, its box (sample 1 has none: an empty ground truth); a PCM16 WAV
    clip (root/audio/, 0.5-0.7 s) of the category's tone plus a little noise. Every 4th scene also
    shows the next category (`scene_categories`), for the offscreen draw.
    """
    rng = np.random.default_rng(seed)
    (root / "frames").mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(exist_ok=True)
    samples = []
    for i in range(n):
        cat = TINY_CATEGORIES[i % 3]
        sid = f"{name}_{i:02d}"
        w, h = 40 + 8 * (i % 3), 36 + 4 * (i % 2)
        img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
        x0, y0 = int(rng.integers(0, w - 16)), int(rng.integers(0, h - 16))
        img[y0: y0 + 16, x0: x0 + 16, TINY_CATEGORIES.index(cat)] = 230
        Image.fromarray(img).save(root / "frames" / f"{sid}.jpg", quality=90)
        t = np.arange(int((0.5 + 0.1 * (i % 3)) * TINY_SR)) / TINY_SR
        clip = 0.3 * np.sin(2 * np.pi * TONE_HZ[cat] * (1 + 0.05 * i) * t) + 0.02 * rng.standard_normal(t.size)
        (root / "audio" / f"{sid}.wav").write_bytes(wav_bytes(clip, TINY_SR))
        box = [x0 / w, y0 / h, (x0 + 16) / w, (y0 + 16) / h]
        scene = [cat] + ([TINY_CATEGORIES[(i + 1) % 3]] if i % 4 == 0 else [])
        samples.append(Sample(id=sid, image=f"frames/{sid}.jpg", audio=f"audio/{sid}.wav", boxes=[box] if i != 1 else [],
                              category=cat, scene_categories=scene))
    return write_manifest(root / f"{name}.jsonl", samples)


def write_tiny_data(root: Path, n_train: int = 8, n_val: int = 4, n_test: int = 7) -> Path:
    """A data root as `sslsan prepare` writes one: train.jsonl, val.jsonl (also the calibration split of
    the registry's synth-* test sets) and test_vggss.jsonl (the `synth-vggss` test set)."""
    for name, n, seed in (("train", n_train, 0), ("val", n_val, 1), ("test_vggss", n_test, 2)):
        if n:
            write_split(root, name, n, seed)
    return root


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """The tiny data set, shared by the test modules that only read it (training writes a mel cache beside it)."""
    return write_tiny_data(tmp_path_factory.mktemp("tiny_data"))


# training: a width-0.125 model, 32 px images and 16-band spectrograms of 0.5 s, so a run takes seconds
TINY = [
    "model.width=0.125",
    "audio.clip_seconds=0.5",
    "audio.tile_seconds=0.5",
    "audio.n_fft=256",
    "audio.hop_length=250",
    "audio.n_mels=16",
    "audio.time_mask=8",
    "audio.freq_mask=4",
    "data.image_size=32",
    "data.num_workers=0",
    "train.batch_size=4",
    "train.epochs=2",
    "train.log_every=1",
    "train.seed=7",
    "train.threads=1",
    "optim.lr=1e-3",
    "eval.calibrate_threshold=false",
]


def tiny_config(root: Path, *more: str) -> TrainConfig:
    """The shipped synth_cpu config with TINY and `more` on top, on data root `root`, resolved."""
    return resolve_train_config(load_config(TrainConfig, "synth_cpu", [*TINY, f"data.root={root}", *more]))


# evaluation: the audio front-end of the tiny checkpoints evaluation tests build (same code as the paper's setting)
TINY_AUDIO = dict(sample_rate=16000, clip_seconds=1.0, tile_seconds=1.0, n_fft=256, hop_length=128, n_mels=32)


def tiny_spec(image_size: int = 64, threshold: float | None = None, audio: dict | None = None, method: str = "ssl_san"):
    """The inference spec of the tiny checkpoints evaluation tests build (TINY_AUDIO front-end)."""
    from sslsan.audio import AudioConfig
    from sslsan.methods import get_method

    return get_method(method).inference_spec(AudioConfig(**(audio or TINY_AUDIO)), image_size, threshold)


def tiny_localizer(width: float = 0.125, seed: int = 0, **spec_settings):
    """An untrained SSL-TIE-architecture model (seeded) with `tiny_spec(**spec_settings)`, in eval mode."""
    from sslsan.methods.checkpoint import LoadedModel
    from sslsan.models import Localizer, ModelConfig

    torch.manual_seed(seed)
    return LoadedModel.of(Localizer(ModelConfig(width=width)).eval(), tiny_spec(**spec_settings))
