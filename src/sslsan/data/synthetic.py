"""The embedded benchmark: procedural audio-visual scenes written to disk in real formats.

Every category has a visual identity (shape family, hue, surface pattern) and an acoustic identity
(a sound recipe: harmonic tones, inharmonic strikes, band-limited noise, chirps, clicks; with AM/FM
and a rhythm). A scene is a cluttered background with 1-3 objects; the audio clip mixes the sounds
of the *sounding* objects with coloured ambience noise at a random SNR, and the other objects are
silent distractors. Splits and protocols (file names from `sslsan.data.registry`):

  train.jsonl / val.jsonl   1-3 objects, 1 or 2 of them sounding
  test_vggss.jsonl          exactly one sounding object (+ up to two silent distractors), its box
  test_is3.jsonl            two objects per image; two samples per image sharing `image` and
                            `group`, each with the audio, box and mask of the object that makes it

Each item draws its randomness from `numpy_rng(seed, split, index)`, so the output is identical for
any number of worker processes, and the same seed gives byte-identical files.
"""

from __future__ import annotations

import colorsys
import dataclasses
import io
import json
import math
import os
import shutil
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image, ImageDraw

from sslsan.data.manifest import Sample, write_manifest
from sslsan.data.registry import DATASETS
from sslsan.utils.io import atomic_write_text
from sslsan.utils.seed import numpy_rng

GENERATOR = "sslsan.data.synthetic"
GENERATOR_VERSION = 1
SAMPLE_RATE = 16000

# split name -> manifest file name (the registry names the test manifests) and rng key
SPLIT_MANIFESTS = {
    "train": "train.jsonl",
    "val": DATASETS["synth-val"].manifest,
    "test_vggss": DATASETS["synth-vggss"].manifest,
    "test_is3": DATASETS["synth-is3"].manifest,
}
_SPLIT_KEY = {"train": 0, "val": 1, "test_vggss": 2, "test_is3": 3}


class SynthError(ValueError):
    """An invalid generator setting or output folder; the message says which and why."""


# --------------------------------------------------------------------------------------------
# categories
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoundRecipe:
    """Parameters of one category's sound; every range is sampled per clip (within-class variation).

    kind: "harmonic" (sum of partials of f0), "noise" (band-limited noise centred on f0),
    "chirp" (harmonic with an exponential sweep inside each event), "click" (short noise taps).
    """

    kind: str
    f_range: tuple[float, float]  # f0 (harmonic/chirp) or band centre (noise/click), Hz
    partials: tuple[float, ...] = (1.0,)  # frequency ratios of the partials to f0
    rolloff: float = 1.0  # partial k has amplitude 1 / (k-th index + 1) ** rolloff
    bandwidth: float = 0.5  # noise band width in octaves (noise/click)
    rate: tuple[float, float] = (0.0, 0.0)  # events per second; 0 = continuous
    duty: float = 0.6  # sounding fraction of each event period (ignored when decay > 0)
    decay: float = 0.0  # exponential decay time constant of struck events, s
    am_rate: tuple[float, float] = (0.0, 0.0)  # amplitude modulation rate, Hz
    am_depth: float = 0.0
    fm_rate: tuple[float, float] = (0.0, 0.0)  # vibrato / siren rate, Hz
    fm_depth: float = 0.0  # relative frequency deviation
    sweep: float = 1.0  # chirp: end / start frequency of each event


@dataclass(frozen=True)
class Category:
    name: str
    shape: str  # a key of SHAPES
    hue: float  # degrees
    pattern: str  # a key of PATTERNS
    sound: SoundRecipe

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": self.shape,
            "hue": self.hue,
            "pattern": self.pattern,
            "sound": dataclasses.asdict(self.sound),
        }


_HARM8 = tuple(float(k) for k in range(1, 9))
_ODD = (1.0, 3.0, 5.0, 7.0, 9.0)

# Shapes, hues and sounds are all distinct between categories; patterns repeat (6 x 2).
CATEGORY_LIBRARY: tuple[Category, ...] = (
    Category("bell", "disc", 0.0, "rings",
             SoundRecipe("harmonic", (520, 700), partials=(1.0, 2.76, 5.40, 8.93), rolloff=0.7,
                         rate=(1.0, 1.8), decay=0.35)),
    Category("engine", "square", 30.0, "stripes",
             SoundRecipe("harmonic", (55, 80), partials=tuple(float(k) for k in range(1, 25)),
                         rolloff=0.6, am_rate=(9, 14), am_depth=0.5)),
    Category("whistle", "triangle", 60.0, "dots",
             SoundRecipe("harmonic", (1900, 2500), partials=(1.0, 2.0), rolloff=3.0,
                         fm_rate=(5, 7), fm_depth=0.03)),
    Category("drum", "star", 90.0, "checker",
             SoundRecipe("noise", (110, 170), bandwidth=1.2, rate=(2.0, 3.5), decay=0.09)),
    Category("rain", "hexagon", 120.0, "gradient",
             SoundRecipe("noise", (5000, 6200), bandwidth=0.8, am_rate=(0.3, 0.8), am_depth=0.3)),
    Category("siren", "cross", 150.0, "solid",
             SoundRecipe("harmonic", (650, 800), partials=(1.0, 2.0, 3.0), rolloff=1.2,
                         fm_rate=(0.35, 0.6), fm_depth=0.25)),
    Category("cricket", "ring", 180.0, "stripes",
             SoundRecipe("harmonic", (4200, 4700), partials=(1.0,), rate=(2.0, 3.0), duty=0.35,
                         am_rate=(28, 40), am_depth=0.9)),
    Category("organ", "diamond", 210.0, "dots",
             SoundRecipe("harmonic", (210, 290), partials=_ODD, rolloff=1.0,
                         rate=(0.6, 0.9), duty=0.85)),
    Category("buzzer", "crescent", 240.0, "checker",
             SoundRecipe("harmonic", (120, 160), partials=_HARM8, rolloff=0.3,
                         rate=(3.0, 4.5), duty=0.5)),
    Category("bird", "arrow", 270.0, "gradient",
             SoundRecipe("chirp", (2300, 2900), partials=(1.0, 2.0), rolloff=2.5,
                         rate=(4.0, 6.0), duty=0.45, sweep=1.6)),
    Category("clock", "heart", 300.0, "solid",
             SoundRecipe("click", (1300, 1700), bandwidth=0.7, rate=(1.8, 2.6), decay=0.012)),
    Category("wind", "capsule", 330.0, "rings",
             SoundRecipe("noise", (450, 650), bandwidth=1.0, am_rate=(0.2, 0.45), am_depth=0.7)),
)


def categories(n: int = 12) -> tuple[Category, ...]:
    """The first `n` categories of the library."""
    if not 2 <= n <= len(CATEGORY_LIBRARY):
        raise SynthError(f"n_categories must be between 2 and {len(CATEGORY_LIBRARY)}, got {n}")
    return CATEGORY_LIBRARY[:n]


# --------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------


@dataclass
class SynthConfig:
    """Sizes and knobs of one generated benchmark. `n_test_is3` counts images (2 samples each)."""

    seed: int = 0
    n_train: int = 3000
    n_val: int = 300
    n_test_vggss: int = 500
    n_test_is3: int = 250
    image_size: int = 224
    n_categories: int = 12
    clip_seconds: float = 3.0
    sample_rate: int = SAMPLE_RATE
    snr_db: tuple[float, float] = (6.0, 24.0)  # sounding mixture vs ambience
    max_objects: int = 3
    p_two_sounding: float = 0.2  # train/val scenes with >= 2 objects: chance of two sounding ones
    object_radius: tuple[float, float] = (0.12, 0.21)  # fraction of the image side
    jpeg_quality: int = 90

    def validate(self) -> "SynthConfig":
        categories(self.n_categories)
        for name in ("n_train", "n_val", "n_test_vggss", "n_test_is3"):
            if getattr(self, name) < 0:
                raise SynthError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.image_size < 32:
            raise SynthError(f"image_size must be >= 32 px, got {self.image_size}")
        if not 1 <= self.max_objects <= 3:
            raise SynthError(f"max_objects must be 1, 2 or 3, got {self.max_objects}")
        if self.n_categories < 3 and self.max_objects > self.n_categories:
            raise SynthError("max_objects cannot exceed n_categories (objects of a scene are distinct)")
        if self.snr_db[0] > self.snr_db[1]:
            raise SynthError(f"snr_db range is reversed: {self.snr_db}")
        if not 0 < self.object_radius[0] <= self.object_radius[1] <= 0.3:
            raise SynthError(f"object_radius must satisfy 0 < lo <= hi <= 0.3, got {self.object_radius}")
        if self.clip_seconds <= 0 or self.sample_rate <= 0:
            raise SynthError("clip_seconds and sample_rate must be positive")
        if not 1 <= self.jpeg_quality <= 100:
            raise SynthError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        return self

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    def split_size(self, split: str) -> int:
        return getattr(self, {"train": "n_train", "val": "n_val"}.get(split, "n_" + split))


PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # a few dozen items in a couple of seconds: for tests and smoke runs
    "tiny": {"n_train": 24, "n_val": 8, "n_test_vggss": 12, "n_test_is3": 6, "image_size": 64},
}


def preset_config(name: str = "default", **overrides: Any) -> SynthConfig:
    """A SynthConfig from a named preset; keyword overrides with value None are ignored."""
    if name not in PRESETS:
        raise SynthError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    values = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
    return SynthConfig(**values).validate()


# --------------------------------------------------------------------------------------------
# audio
# --------------------------------------------------------------------------------------------


def _uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    lo, hi = lo_hi
    return float(lo if hi <= lo else rng.uniform(lo, hi))


def _bandpass_noise(rng: np.random.Generator, n: int, sr: int, centre: float, octaves: float) -> np.ndarray:
    """White noise shaped in the frequency domain by a Gaussian on a log-frequency axis."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    with np.errstate(divide="ignore"):
        d = np.log2(np.maximum(f, 1.0) / centre) / max(octaves / 2.0, 1e-3)
    x = np.fft.irfft(spec * np.exp(-0.5 * d * d), n)
    return x / (np.abs(x).max() + 1e-12)


def _event_envelope(rng: np.random.Generator, t: np.ndarray, recipe: SoundRecipe) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude envelope and time-since-event-onset of a (possibly rhythmic) sound."""
    rate = _uniform(rng, recipe.rate)
    if rate <= 0:
        tau = t.copy()
        fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
        return fade, tau
    period = 1.0 / rate
    # jittered onsets, starting before t=0 so the clip may open mid-event
    k = np.arange(-1, int(t[-1] / period) + 2)
    onsets = (k + rng.uniform(0, 1)) * period + rng.normal(0, 0.04 * period, k.size)
    onsets.sort()
    idx = np.clip(np.searchsorted(onsets, t, side="right") - 1, 0, onsets.size - 1)
    tau = t - onsets[idx]
    valid = tau >= 0
    tau = np.where(valid, tau, 0.0)
    attack = np.minimum(1.0, tau / 0.004)
    if recipe.decay > 0:
        env = attack * np.exp(-tau / (recipe.decay * rng.uniform(0.8, 1.25)))
    else:
        dur = recipe.duty * period
        release = np.clip((dur - tau) / 0.015, 0.0, 1.0)
        env = attack * release
    return env * valid, tau


def synthesize_sound(recipe: SoundRecipe, rng: np.random.Generator, n: int, sr: int = SAMPLE_RATE) -> np.ndarray:
    """One clip of a category's sound, float64 (n,), peak 1. All jitter comes from `rng`."""
    t = np.arange(n) / sr
    env, tau = _event_envelope(rng, t, recipe)
    if recipe.am_depth > 0:
        am_rate = _uniform(rng, recipe.am_rate)
        env = env * (1.0 - recipe.am_depth * (0.5 + 0.5 * np.sin(2 * np.pi * am_rate * t + rng.uniform(0, 2 * np.pi))))
    f0 = float(np.exp(rng.uniform(np.log(recipe.f_range[0]), np.log(recipe.f_range[1]))))
    if recipe.kind in ("harmonic", "chirp"):
        freq = np.full(n, f0)
        if recipe.fm_depth > 0:
            fm_rate = _uniform(rng, recipe.fm_rate)
            freq = freq * (1.0 + recipe.fm_depth * np.sin(2 * np.pi * fm_rate * t + rng.uniform(0, 2 * np.pi)))
        if recipe.kind == "chirp":
            rate = max(recipe.rate[0], 1e-3)
            freq = freq * recipe.sweep ** np.clip(tau * rate / max(recipe.duty, 1e-3), 0.0, 1.0)
        phase = 2 * np.pi * np.cumsum(freq) / sr
        x = np.zeros(n)
        for i, ratio in enumerate(recipe.partials):
            audible = freq * ratio < 0.45 * sr  # no aliased partials
            if not audible.any():
                continue
            amp = (1.0 / (i + 1) ** recipe.rolloff) * rng.uniform(0.7, 1.0)
            x += amp * audible * np.sin(ratio * phase + rng.uniform(0, 2 * np.pi))
    elif recipe.kind in ("noise", "click"):
        x = _bandpass_noise(rng, n, sr, f0, recipe.bandwidth)
    else:
        raise SynthError(f"unknown sound kind {recipe.kind!r}")
    x = x * env
    return x / (np.abs(x).max() + 1e-12)


def ambience(rng: np.random.Generator, n: int, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Background noise with a random 1/f^alpha colour and slow level drift, unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    alpha = rng.uniform(0.5, 1.6)
    spec *= 1.0 / np.maximum(f, 20.0) ** (alpha / 2.0)
    x = np.fft.irfft(spec, n)
    drift = 1.0 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * np.arange(n) / sr + rng.uniform(0, 2 * np.pi))
    x = x * drift
    return x / (np.sqrt(np.mean(x * x)) + 1e-12)


def mix_clip(
    sounds: list[np.ndarray], gains_db: list[float], rng: np.random.Generator, snr_db: float, sr: int = SAMPLE_RATE
) -> np.ndarray:
    """Sum the sources at their gains, add ambience at `snr_db`, scale to a random peak; float32 in [-1, 1]."""
    n = sounds[0].size
    src = np.zeros(n)
    for s, g in zip(sounds, gains_db):
        src += s * 10.0 ** (g / 20.0)
    rms = np.sqrt(np.mean(src * src)) + 1e-12
    x = src + ambience(rng, n, sr) * rms * 10.0 ** (-snr_db / 20.0)
    peak = rng.uniform(0.25, 0.9)  # loudness variation
    return (x * (peak / (np.abs(x).max() + 1e-12))).astype(np.float32)


def wav_bytes(x: np.ndarray, sr: int = SAMPLE_RATE) -> bytes:
    """Mono PCM16 WAV file contents of a float waveform in [-1, 1]."""
    pcm = np.clip(np.round(np.asarray(x, dtype=np.float64) * 32767.0), -32768, 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------


def _circle(n: int = 48, r: float = 1.0, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], 1)


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, 2 * points, endpoint=False) - np.pi / 2
    r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(a), r * np.sin(a)], 1)


def _heart() -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    x = 16 * np.sin(a) ** 3
    y = -(13 * np.cos(a) - 5 * np.cos(2 * a) - 2 * np.cos(3 * a) - np.cos(4 * a))
    return np.stack([x, y + 2.5], 1) / 16.5


def _capsule() -> np.ndarray:
    right = _circle(24, 0.45, 0.55, 0.0)[np.r_[18:24, 0:7]]  # right half-circle
    left = _circle(24, 0.45, -0.55, 0.0)[6:19]  # left half-circle
    return np.concatenate([right, left])


# each shape: list of (polygon in unit coordinates, fill) drawn in order; fill 0 cuts a hole
SHAPES: dict[str, list[tuple[np.ndarray, int]]] = {
    "disc": [(_circle(), 1)],
    "square": [(np.array([[-0.85, -0.85], [0.85, -0.85], [0.85, 0.85], [-0.85, 0.85]]), 1)],
    "triangle": [(np.array([[0.0, -1.0], [0.95, 0.7], [-0.95, 0.7]]), 1)],
    "star": [(_star(), 1)],
    "hexagon": [(_circle(6), 1)],
    "cross": [(np.array([[-0.3, -1], [0.3, -1], [0.3, -0.3], [1, -0.3], [1, 0.3], [0.3, 0.3], [0.3, 1],
                         [-0.3, 1], [-0.3, 0.3], [-1, 0.3], [-1, -0.3], [-0.3, -0.3]]), 1)],
    "ring": [(_circle(), 1), (_circle(40, 0.5), 0)],
    "diamond": [(np.array([[0.0, -1.0], [0.6, 0.0], [0.0, 1.0], [-0.6, 0.0]]), 1)],
    "crescent": [(_circle(), 1), (_circle(48, 0.8, 0.45, -0.2), 0)],
    "arrow": [(np.array([[1.0, 0.0], [0.2, -0.75], [0.2, -0.3], [-1.0, -0.3], [-1.0, 0.3], [0.2, 0.3],
                         [0.2, 0.75]]), 1)],
    "heart": [(_heart(), 1)],
    "capsule": [(_capsule(), 1)],
}

# pattern(u, v, freq) -> mix weight of the secondary colour in [0, 1]; (u, v) are object coordinates
PATTERNS = {
    "solid": lambda u, v, f: np.zeros_like(u),
    "stripes": lambda u, v, f: (np.sin(u * f * np.pi) > 0).astype(np.float64),
    "dots": lambda u, v, f: ((np.mod(u * f / 2, 1) - 0.5) ** 2 + (np.mod(v * f / 2, 1) - 0.5) ** 2 < 0.09).astype(np.float64),
    "checker": lambda u, v, f: ((np.floor(u * f / 2) + np.floor(v * f / 2)) % 2).astype(np.float64),
    "rings": lambda u, v, f: (np.sin(np.hypot(u, v) * f * np.pi) > 0).astype(np.float64),
    "gradient": lambda u, v, f: np.clip(0.5 + 0.5 * u, 0, 1),
}

_SUPERSAMPLE = 2  # shapes are drawn at 2x and box-filtered: anti-aliased edges, exact masks


@dataclass
class SceneObject:
    category: int
    cx: float  # centre, fraction of the image side
    cy: float
    radius: float  # fraction of the image side
    angle: float  # radians
    hue: float  # degrees, jittered
    sat: float
    val: float
    dark: float  # value factor of the secondary (pattern) colour
    pattern_freq: float
    sounding: bool = False


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((h / 360.0) % 1.0, s, v))


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Textured, cluttered background: low-saturation gradient + blotches + faint clutter + grain."""
    base = _hsv(rng.uniform(0, 360), rng.uniform(0.03, 0.25), rng.uniform(0.35, 0.75))
    yy, xx = np.mgrid[0:size, 0:size] / size
    a = rng.uniform(0, 2 * np.pi)
    grad = (np.cos(a) * (xx - 0.5) + np.sin(a) * (yy - 0.5)) * rng.uniform(0.1, 0.3)
    g = int(rng.integers(3, 8))
    blot = Image.fromarray((rng.random((g, g, 3)) * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)
    blot = (np.asarray(blot, dtype=np.float64) / 255.0 - 0.5) * rng.uniform(0.1, 0.25)
    img = np.clip(base[None, None, :] + grad[..., None] + blot, 0, 1)
    # clutter: thin low-saturation lines, outlines and patches that belong to no category
    canvas = Image.fromarray((img * 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(4, 11))):
        col = tuple(int(c * 255) for c in _hsv(rng.uniform(0, 360), rng.uniform(0.0, 0.2), rng.uniform(0.2, 0.9)))
        x0, y0 = rng.uniform(-0.1, 1.0, 2) * size
        w, h = rng.uniform(0.05, 0.4, 2) * size
        kind = int(rng.integers(0, 3))
        width = max(1, int(rng.uniform(0.005, 0.02) * size))
        if kind == 0:
            draw.line([(x0, y0), (x0 + w, y0 + h * rng.choice([-1, 1]))], fill=col, width=width)
        elif kind == 1:
            draw.ellipse([x0, y0, x0 + w, y0 + h], outline=col, width=width)
        else:
            draw.rectangle([x0, y0, x0 + w * 0.5, y0 + h * 0.5], fill=col)
    img = 0.5 * img + 0.5 * np.asarray(canvas, dtype=np.float64) / 255.0
    img += rng.normal(0, 0.02, img.shape)
    return np.clip(img, 0, 1)


def _object_alpha(obj: SceneObject, size: int) -> np.ndarray:
    """Anti-aliased coverage (size, size) in [0, 1] of one object."""
    s = size * _SUPERSAMPLE
    layer = Image.new("L", (s, s), 0)
    draw = ImageDraw.Draw(layer)
    c, si = math.cos(obj.angle), math.sin(obj.angle)
    rot = np.array([[c, -si], [si, c]])
    for poly, fill in SHAPES[CATEGORY_LIBRARY[obj.category].shape]:
        pts = (poly @ rot.T) * obj.radius * s + np.array([obj.cx, obj.cy]) * s
        draw.polygon([tuple(p) for p in pts.tolist()], fill=255 * fill)
    a = np.asarray(layer, dtype=np.float32).reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean((1, 3))
    return a / 255.0


def _object_texture(obj: SceneObject, size: int, ys: slice, xs: slice) -> np.ndarray:
    """RGB surface of the object over the window (ys, xs), in object coordinates so it rotates with it."""
    cat = CATEGORY_LIBRARY[obj.category]
    yy, xx = np.mgrid[ys, xs]
    px = (xx + 0.5) / size - obj.cx
    py = (yy + 0.5) / size - obj.cy
    c, s = math.cos(obj.angle), math.sin(obj.angle)
    u = (c * px + s * py) / obj.radius
    v = (-s * px + c * py) / obj.radius
    w = PATTERNS[cat.pattern](u, v, obj.pattern_freq)[..., None]
    primary = _hsv(obj.hue, obj.sat, obj.val)
    secondary = _hsv(obj.hue, obj.sat, obj.val * obj.dark)
    shade = (1.0 + 0.12 * (-u - v) / 2.0)[..., None]  # light from the top left
    return np.clip(((1 - w) * primary + w * secondary) * shade, 0, 1)


def render_scene(objects: list[SceneObject], rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Draw `objects` (in order, later on top) over a random background.

    Returns the image, uint8 (size, size, 3), and each object's *visible* mask, bool (size, size):
    its coverage >= 0.5 minus the pixels of objects drawn over it.
    """
    img = _background(rng, size)
    covers = []
    for obj in objects:
        alpha = _object_alpha(obj, size)
        rows = np.flatnonzero(alpha.any(1))
        cols = np.flatnonzero(alpha.any(0))
        if rows.size:
            ys, xs = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
            a = alpha[ys, xs, None]
            img[ys, xs] = img[ys, xs] * (1 - a) + _object_texture(obj, size, ys, xs) * a
        covers.append(alpha >= 0.5)
    visible = []
    for i, cov in enumerate(covers):
        above = np.zeros_like(cov)
        for later in covers[i + 1 :]:
            above |= later
        visible.append(cov & ~above)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), visible


def mask_box(mask: np.ndarray) -> list[float]:
    """Normalised xyxy box of a mask, half-open: pixels [x1, x2) x [y1, y2) scaled by the size."""
    h, w = mask.shape
    rows = np.flatnonzero(mask.any(1))
    cols = np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [round(cols[0] / w, 6), round(rows[0] / h, 6), round((cols[-1] + 1) / w, 6), round((rows[-1] + 1) / h, 6)]


# --------------------------------------------------------------------------------------------
# scenes
# --------------------------------------------------------------------------------------------


def _place_objects(
    rng: np.random.Generator, cats: list[int], cfg: SynthConfig, min_sep: float
) -> list[SceneObject]:
    """Random poses; centres at least `min_sep * (r_i + r_j)` apart (best of 30 tries), so overlap is partial."""
    lo, hi = cfg.object_radius
    radii = rng.uniform(lo, hi, len(cats))
    best, best_gap = None, -np.inf
    for _ in range(30):
        centres = np.stack([rng.uniform(0.7 * radii, 1 - 0.7 * radii), rng.uniform(0.7 * radii, 1 - 0.7 * radii)], 1)
        gap = np.inf
        for i in range(len(cats)):
            for j in range(i + 1, len(cats)):
                d = np.hypot(*(centres[i] - centres[j]))
                gap = min(gap, d / (radii[i] + radii[j]))
        if gap >= min_sep:
            best = centres
            break
        if gap > best_gap:
            best, best_gap = centres, gap
    objs = []
    for k, c in enumerate(cats):
        base = CATEGORY_LIBRARY[c]
        objs.append(
            SceneObject(
                category=c,
                cx=float(best[k, 0]),
                cy=float(best[k, 1]),
                radius=float(radii[k]),
                angle=float(rng.uniform(0, 2 * np.pi)),
                hue=base.hue + float(rng.uniform(-8, 8)),
                sat=float(rng.uniform(0.6, 1.0)),
                val=float(rng.uniform(0.65, 1.0)),
                dark=float(rng.uniform(0.35, 0.6)),
                pattern_freq=float(rng.uniform(2.5, 4.0)),
            )
        )
    return objs


@dataclass
class Scene:
    """One rendered scene: the image, its objects (drawing order) and their visible masks."""

    image: np.ndarray
    objects: list[SceneObject]
    masks: list[np.ndarray]
    names: list[str] = field(default_factory=list)


def make_scene(rng: np.random.Generator, cfg: SynthConfig, n_objects: int, n_sounding: int, min_sep: float) -> Scene:
    """Distinct categories, random poses, `n_sounding` of the objects marked as sounding."""
    cats = [int(c) for c in rng.choice(cfg.n_categories, size=n_objects, replace=False)]
    objs = _place_objects(rng, cats, cfg, min_sep)
    for k in rng.choice(n_objects, size=n_sounding, replace=False):
        objs[int(k)].sounding = True
    image, masks = render_scene(objs, rng, cfg.image_size)
    return Scene(image, objs, masks, [CATEGORY_LIBRARY[o.category].name for o in objs])


def clip_for(objs: list[SceneObject], rng: np.random.Generator, cfg: SynthConfig) -> tuple[np.ndarray, float, list[float]]:
    """Audio of the given sounding objects (first = loudest) in ambience; returns (wave, snr_db, gains_db)."""
    n = cfg.clip_samples
    sounds = [synthesize_sound(CATEGORY_LIBRARY[o.category].sound, rng, n, cfg.sample_rate) for o in objs]
    gains = [0.0] + [float(rng.uniform(-9.0, -3.0)) for _ in objs[1:]]
    snr = float(rng.uniform(*cfg.snr_db))
    return mix_clip(sounds, gains, rng, snr, cfg.sample_rate), snr, gains


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def _jpeg(img: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _png_mask(mask: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _write(root: Path, rel: str, data: bytes) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)  # the folder is new; manifests (written last, atomically) make it valid
    return rel


def generate_item(split: str, index: int, cfg: SynthConfig, root: Path) -> list[dict[str, Any]]:
    """Render, synthesise and write one scene of `split`; returns its manifest rows (1, or 2 for IS3)."""
    rng = numpy_rng(cfg.seed, _SPLIT_KEY[split], index)
    stem = f"{index:06d}"
    if split == "test_is3":
        scene = make_scene(rng, cfg, 2, 2, min_sep=1.0)
        annotations = [[o] for o in scene.objects]
    else:
        if split == "test_vggss":
            n_obj = int(rng.integers(1, cfg.max_objects + 1))
            n_snd = 1
        else:
            n_obj = int(rng.integers(1, cfg.max_objects + 1))
            n_snd = 2 if n_obj >= 2 and rng.random() < cfg.p_two_sounding else 1
        scene = make_scene(rng, cfg, n_obj, n_snd, min_sep=0.75)
        sounding = [o for o in scene.objects if o.sounding]
        rng.shuffle(sounding)  # which sounding object is loudest is random
        annotations = [sounding]
    image_rel = _write(root, f"{split}/images/{stem}.jpg", _jpeg(scene.image, cfg.jpeg_quality))
    scene_cats = sorted(set(scene.names))
    rows = []
    for k, objs in enumerate(annotations):
        suffix = f"_{k}" if split == "test_is3" else ""
        wave_, snr, gains = clip_for(objs, rng, cfg)
        idx = [scene.objects.index(o) for o in objs]
        mask = np.zeros_like(scene.masks[0])
        for i in idx:
            mask |= scene.masks[i]
        names = [scene.names[i] for i in idx]
        rows.append(
            dataclasses.asdict(Sample(
                id=f"{split}_{stem}{suffix}",
                image=image_rel,
                audio=_write(root, f"{split}/audio/{stem}{suffix}.wav", wav_bytes(wave_, cfg.sample_rate)),
                boxes=[mask_box(scene.masks[i]) for i in idx],
                mask=_write(root, f"{split}/masks/{stem}{suffix}.png", _png_mask(mask)),
                category=names[0],
                scene_categories=scene_cats,
                group=f"{split}_{stem}" if split == "test_is3" else None,
                extra={
                    "sounding": names,
                    "gains_db": [round(g, 2) for g in gains],
                    "snr_db": round(snr, 2),
                    "silent": [n for o, n in zip(scene.objects, scene.names) if o not in objs],
                },
            ))
        )
    return rows


_WORKER_ARGS: tuple[SynthConfig, Path] | None = None


def _init_worker(cfg: SynthConfig, root: Path) -> None:
    global _WORKER_ARGS
    _WORKER_ARGS = (cfg, root)


def _run_item(task: tuple[str, int]) -> list[dict[str, Any]]:
    cfg, root = _WORKER_ARGS  # type: ignore[misc]
    return generate_item(task[0], task[1], cfg, root)


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SynthError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        meta = out / "dataset.json"
        ours = meta.exists() and json.loads(meta.read_text() or "{}").get("generator") == GENERATOR
        if not overwrite:
            raise SynthError(f"{out}: folder is not empty (pass --overwrite to replace a generated benchmark)")
        if not ours:
            raise SynthError(f"{out}: not empty and not written by `sslsan data synth`; refusing to overwrite it")
        for split, manifest in SPLIT_MANIFESTS.items():
            (out / manifest).unlink(missing_ok=True)
            shutil.rmtree(out / split, ignore_errors=True)
        meta.unlink()
    out.mkdir(parents=True, exist_ok=True)


def generate_dataset(
    cfg: SynthConfig, out: str | Path, workers: int = 1, overwrite: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Write every split of the benchmark under `out`; returns the dataset.json content.

    Items are independent (seeded by (seed, split, index)), so `workers` changes speed only.
    """
    from tqdm import tqdm

    cfg.validate()
    out = Path(out)
    _prepare_out(out, overwrite)
    tasks = [(split, i) for split in SPLIT_MANIFESTS for i in range(cfg.split_size(split))]
    rows: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLIT_MANIFESTS}
    bar = tqdm(total=len(tasks), desc="synth scenes", unit="scene", disable=not progress)
    if workers <= 1:
        _init_worker(cfg, out)
        results: Iterator[list[dict[str, Any]]] = map(_run_item, tasks)
        pool = None
    else:
        import multiprocessing as mp

        pool = mp.get_context().Pool(workers, initializer=_init_worker, initargs=(cfg, out))
        results = pool.imap(_run_item, tasks, chunksize=16)
    try:
        for (split, _), items in zip(tasks, results):
            rows[split].extend(items)
            bar.update()
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    for split, manifest in SPLIT_MANIFESTS.items():
        write_manifest(out / manifest, (Sample(**r) for r in rows[split]))
    meta = {
        "generator": GENERATOR,
        "version": GENERATOR_VERSION,
        "seed": cfg.seed,
        "config": dataclasses.asdict(cfg),
        "sizes": {SPLIT_MANIFESTS[s]: len(r) for s, r in rows.items()},
        "categories": [c.describe() for c in categories(cfg.n_categories)],
    }
    atomic_write_text(out / "dataset.json", json.dumps(meta, indent=1) + "\n")
    return meta


def default_workers() -> int:
    """Worker processes used when none are asked for: the CPUs this process may use, at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))
