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
import functools
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image, ImageDraw

from sslsan.data.manifest import Sample, write_manifest
from sslsan.data.registry import DATASETS
from sslsan.media import SAMPLE_RATE, box_from_mask, jpeg_bytes, mask_png_bytes, wav_bytes
from sslsan.utils.io import atomic_write_text, make_folder
from sslsan.utils.seed import numpy_rng

GENERATOR = "sslsan.data.synthetic"
GENERATOR_VERSION = 1

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


_TABLE = 4096  # wavetable length of periodic (integer-partial) sounds
_HARM12 = tuple(float(k) for k in range(1, 13))
_ODD = (1.0, 3.0, 5.0, 7.0, 9.0)

# Shapes, hues and sounds are all distinct between categories; patterns repeat (6 x 2).
CATEGORY_LIBRARY: tuple[Category, ...] = (
    Category("bell", "disc", 0.0, "rings",
             SoundRecipe("harmonic", (380, 480), partials=(1.0, 2.76, 5.40, 8.93), rolloff=0.7,
                         rate=(1.0, 1.8), decay=0.35)),
    Category("engine", "square", 30.0, "stripes",
             SoundRecipe("harmonic", (45, 65), partials=tuple(float(k) for k in range(1, 17)),
                         rolloff=1.0, am_rate=(9, 14), am_depth=0.5)),
    Category("whistle", "triangle", 60.0, "dots",
             SoundRecipe("harmonic", (1800, 2300), partials=(1.0, 2.0), rolloff=3.0,
                         fm_rate=(5, 7), fm_depth=0.03)),
    Category("drum", "star", 90.0, "checker",
             SoundRecipe("noise", (110, 170), bandwidth=1.2, rate=(2.0, 3.5), decay=0.09)),
    Category("rain", "hexagon", 120.0, "gradient",
             SoundRecipe("noise", (6500, 7500), bandwidth=1.2, am_rate=(0.3, 0.8), am_depth=0.3)),
    Category("siren", "cross", 150.0, "solid",
             SoundRecipe("harmonic", (900, 1100), partials=(1.0, 2.0, 3.0), rolloff=1.2,
                         fm_rate=(0.35, 0.6), fm_depth=0.2)),
    Category("cricket", "ring", 180.0, "stripes",
             SoundRecipe("harmonic", (4200, 4700), partials=(1.0,), rate=(2.0, 3.0), duty=0.35,
                         am_rate=(28, 40), am_depth=0.9)),
    Category("organ", "diamond", 210.0, "dots",
             SoundRecipe("harmonic", (210, 290), partials=_ODD, rolloff=1.0,
                         rate=(0.6, 0.9), duty=0.85)),
    Category("buzzer", "crescent", 240.0, "checker",
             SoundRecipe("harmonic", (150, 190), partials=_HARM12, rolloff=0.3,
                         rate=(3.0, 4.5), duty=0.5)),
    Category("bird", "arrow", 270.0, "gradient",
             SoundRecipe("chirp", (2800, 3300), partials=(1.0, 2.0), rolloff=2.5,
                         rate=(4.0, 6.0), duty=0.45, sweep=1.5)),
    Category("clock", "heart", 300.0, "solid",
             SoundRecipe("click", (900, 1100), bandwidth=0.7, rate=(3.0, 4.0), decay=0.025)),
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
        return getattr(self, "n_" + split)  # n_train, n_val, n_test_vggss, n_test_is3 (images)


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


_F32 = np.float32
_TWO_PI = _F32(2 * np.pi)


@functools.lru_cache(maxsize=8)
def _grid(n: int, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cached float32 time axis (n,), rfft frequencies and their log2 (floored at 1 Hz)."""
    f = np.fft.rfftfreq(n, 1.0 / sr).astype(_F32)
    return np.arange(n, dtype=_F32) / _F32(sr), f, np.log2(np.maximum(f, _F32(1.0)))


def _spectral_noise(rng: np.random.Generator, n: int, gain: np.ndarray) -> np.ndarray:
    """Noise with magnitude response `gain` (one value per rfft bin): random-phase spectrum, float32."""
    phase = rng.random(gain.size, dtype=_F32) * _TWO_PI
    return np.fft.irfft(gain * (np.cos(phase) + 1j * np.sin(phase)).astype(np.complex64), n).astype(_F32)


def _bandpass_noise(rng: np.random.Generator, n: int, sr: int, centre: float, octaves: float) -> np.ndarray:
    """Noise band: a Gaussian response on a log-frequency axis around `centre`, peak 1."""
    _, _, logf = _grid(n, sr)
    d = (logf - _F32(np.log2(centre))) / _F32(max(octaves / 2.0, 1e-3))
    x = _spectral_noise(rng, n, np.exp(_F32(-0.5) * d * d))
    return x / (np.abs(x).max() + _F32(1e-12))


def _event_envelope(rng: np.random.Generator, t: np.ndarray, recipe: SoundRecipe) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude envelope and time-since-event-onset (float32) of a (possibly rhythmic) sound."""
    rate = _uniform(rng, recipe.rate)
    if rate <= 0:
        fade = np.minimum(_F32(1.0), np.minimum(t, t[-1] - t) * _F32(50.0))  # 20 ms fades
        return fade, t
    period = 1.0 / rate
    # jittered onsets, starting before t=0 so the clip may open mid-event
    k = np.arange(-1, int(t[-1] / period) + 2)
    onsets = np.sort((k + rng.uniform(0, 1)) * period + rng.normal(0, 0.04 * period, k.size)).astype(_F32)
    idx = np.maximum(np.searchsorted(onsets, t, side="right") - 1, 0)
    tau = np.maximum(t - onsets[idx], _F32(0.0))
    attack = np.minimum(_F32(1.0), tau * _F32(250.0))  # 4 ms attack
    if recipe.decay > 0:
        env = attack * np.exp(tau * _F32(-1.0 / (recipe.decay * rng.uniform(0.8, 1.25))))
    else:
        release = np.clip((_F32(recipe.duty * period) - tau) * _F32(1 / 0.015), _F32(0.0), _F32(1.0))
        env = attack * release
    return env, tau


def synthesize_sound(recipe: SoundRecipe, rng: np.random.Generator, n: int, sr: int = SAMPLE_RATE) -> np.ndarray:
    """One clip of a category's sound, float32 (n,), peak 1. All jitter comes from `rng`."""
    t, _, _ = _grid(n, sr)
    env, tau = _event_envelope(rng, t, recipe)
    if recipe.am_depth > 0:
        am = _F32(2 * np.pi * _uniform(rng, recipe.am_rate)) * t + _F32(rng.uniform(0, 2 * np.pi))
        env = env * (_F32(1.0 - recipe.am_depth / 2) - _F32(recipe.am_depth / 2) * np.sin(am))
    f0 = float(np.exp(rng.uniform(np.log(recipe.f_range[0]), np.log(recipe.f_range[1]))))
    if recipe.kind in ("harmonic", "chirp"):
        freq = np.full(n, _F32(f0))
        if recipe.fm_depth > 0:
            fm = _F32(2 * np.pi * _uniform(rng, recipe.fm_rate)) * t + _F32(rng.uniform(0, 2 * np.pi))
            freq = freq * (_F32(1.0) + _F32(recipe.fm_depth) * np.sin(fm))
        if recipe.kind == "chirp":
            ramp = np.minimum(tau * _F32(max(recipe.rate[0], 1e-3) / max(recipe.duty, 1e-3)), _F32(1.0))
            freq = freq * np.exp(ramp * _F32(np.log(recipe.sweep)))
        # running phase in cycles, accumulated in float64 (float32 would drift over 3 s), then wrapped
        cycles = np.cumsum(freq, dtype=np.float64) / sr
        amps = [(1.0 / (i + 1) ** recipe.rolloff) * rng.uniform(0.7, 1.0) for i in range(len(recipe.partials))]
        phases = rng.uniform(0, 2 * np.pi, len(recipe.partials))
        fmax = float(freq.max())
        keep = [i for i, r in enumerate(recipe.partials) if r * fmax < 0.45 * sr]  # no aliased partials
        if all(float(recipe.partials[i]).is_integer() for i in keep):
            # periodic: one cycle in a table, read at the running phase (cost independent of partials)
            theta = np.arange(_TABLE + 1) * (2 * np.pi / _TABLE)
            table = np.zeros(_TABLE + 1)
            for i in keep:
                table += amps[i] * np.sin(recipe.partials[i] * theta + phases[i])
            table = table.astype(_F32)
            pos = (cycles - np.floor(cycles)).astype(_F32) * _F32(_TABLE)
            i0 = np.minimum(pos.astype(np.intp), _TABLE - 1)  # float32 rounding can give cycles == 1.0
            lo = np.take(table, i0)
            x = lo + (pos - np.floor(pos)) * (np.take(table, i0 + 1) - lo)
        else:
            x = np.zeros(n, dtype=_F32)
            for i in keep:  # inharmonic partials: wrap each partial's own phase before the float32 sin
                c = recipe.partials[i] * cycles
                x += _F32(amps[i]) * np.sin(_TWO_PI * (c - np.floor(c)).astype(_F32) + _F32(phases[i]))
    elif recipe.kind in ("noise", "click"):
        x = _bandpass_noise(rng, n, sr, f0, recipe.bandwidth)
    else:
        raise SynthError(f"unknown sound kind {recipe.kind!r}")
    x = x * env
    return x / (np.abs(x).max() + _F32(1e-12))


def ambience(rng: np.random.Generator, n: int, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Background noise with a random 1/f^alpha colour and slow level drift, float32, unit RMS."""
    t, _, logf = _grid(n, sr)
    alpha = rng.uniform(0.5, 1.6)
    gain = np.exp2(np.maximum(logf, _F32(np.log2(20.0))) * _F32(-alpha / 2.0))
    x = _spectral_noise(rng, n, gain)
    drift = _F32(2 * np.pi * rng.uniform(0.05, 0.3)) * t + _F32(rng.uniform(0, 2 * np.pi))
    x *= _F32(1.0) + _F32(0.3) * np.sin(drift)
    return x / (np.sqrt(np.mean(x * x)) + _F32(1e-12))


def mix_clip(
    sounds: list[np.ndarray], gains_db: list[float], rng: np.random.Generator, snr_db: float, sr: int = SAMPLE_RATE
) -> np.ndarray:
    """Sum the sources at their gains, add ambience at `snr_db`, scale to a random peak; float32 in [-1, 1]."""
    n = sounds[0].size
    src = np.zeros(n, dtype=_F32)
    for s, g in zip(sounds, gains_db):
        src += s * _F32(10.0 ** (g / 20.0))
    rms = float(np.sqrt(np.mean(src * src))) + 1e-12
    x = src + ambience(rng, n, sr) * _F32(rms * 10.0 ** (-snr_db / 20.0))
    peak = rng.uniform(0.25, 0.9)  # loudness variation
    return (x * _F32(peak / (float(np.abs(x).max()) + 1e-12))).astype(_F32)


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
    """Textured, cluttered background, float32 (size, size, 3) in [0, 1].

    A low-saturation colour with a gradient and blotches (a small random field, upsampled), faint
    clutter (lines, outlines, patches that belong to no category) and grain.
    """
    g = int(rng.integers(3, 8))
    base = _hsv(rng.uniform(0, 360), rng.uniform(0.03, 0.25), rng.uniform(0.35, 0.75))
    a = rng.uniform(0, 2 * np.pi)
    ramp = np.linspace(-0.5, 0.5, g)
    grad = (np.cos(a) * ramp[None, :] + np.sin(a) * ramp[:, None]) * rng.uniform(0.1, 0.3)
    blot = (rng.random((g, g, 3)) - 0.5) * rng.uniform(0.1, 0.25)
    field = np.clip(base + grad[..., None] + blot, 0, 1)
    canvas = Image.fromarray((field * 255 + 0.5).astype(np.uint8)).resize((size, size), Image.BICUBIC)
    clutter = canvas.copy()
    draw = ImageDraw.Draw(clutter)
    for _ in range(int(rng.integers(4, 11))):
        col = tuple(int(c * 255) for c in _hsv(rng.uniform(0, 360), rng.uniform(0.0, 0.2), rng.uniform(0.2, 0.9)))
        x0, y0 = (rng.uniform(-0.1, 1.0, 2) * size).tolist()
        w, h = (rng.uniform(0.05, 0.4, 2) * size).tolist()
        kind = int(rng.integers(0, 3))
        width = max(1, int(rng.uniform(0.005, 0.02) * size))
        if kind == 0:
            draw.line([(x0, y0), (x0 + w, y0 + h * float(rng.choice([-1, 1])))], fill=col, width=width)
        elif kind == 1:
            draw.ellipse([x0, y0, x0 + w, y0 + h], outline=col, width=width)
        else:
            draw.rectangle([x0, y0, x0 + w * 0.5, y0 + h * 0.5], fill=col)
    img = np.asarray(Image.blend(canvas, clutter, 0.5), dtype=np.float32) * np.float32(1 / 255)
    img += (rng.random(img.shape, dtype=np.float32) - np.float32(0.5)) * np.float32(0.07)  # grain, std 0.02
    return np.clip(img, 0, 1, out=img)


def _object_alpha(obj: SceneObject, size: int) -> tuple[tuple[slice, slice], np.ndarray]:
    """Anti-aliased coverage of one object: its window (rows, cols) in the image and alpha there in [0, 1].

    Drawn at _SUPERSAMPLE x resolution inside the window only, then box-filtered.
    """
    ss = _SUPERSAMPLE
    c, si = math.cos(obj.angle), math.sin(obj.angle)
    rot = np.array([[c, -si], [si, c]])
    polys = [((poly @ rot.T) * obj.radius + np.array([obj.cx, obj.cy])) * size for poly, _ in SHAPES[CATEGORY_LIBRARY[obj.category].shape]]
    lo = np.floor(np.min([p.min(0) for p in polys], axis=0)).astype(int)
    hi = np.ceil(np.max([p.max(0) for p in polys], axis=0)).astype(int) + 1
    x0, y0 = np.maximum(lo, 0).tolist()
    x1, y1 = np.minimum(hi, size).tolist()
    window = (slice(y0, max(y0, y1)), slice(x0, max(x0, x1)))
    w, h = max(0, x1 - x0), max(0, y1 - y0)
    if w == 0 or h == 0:
        return window, np.zeros((h, w), np.float32)
    layer = Image.new("L", (w * ss, h * ss), 0)
    draw = ImageDraw.Draw(layer)
    for pts, (_, fill) in zip(polys, SHAPES[CATEGORY_LIBRARY[obj.category].shape]):
        draw.polygon([tuple(p) for p in ((pts - [x0, y0]) * ss).tolist()], fill=255 * fill)
    a = np.asarray(layer, dtype=np.float32).reshape(h, ss, w, ss).mean((1, 3))
    return window, a * np.float32(1 / 255)


def _object_texture(obj: SceneObject, size: int, ys: slice, xs: slice) -> np.ndarray:
    """RGB surface of the object over the window (ys, xs), in object coordinates so it rotates with it."""
    cat = CATEGORY_LIBRARY[obj.category]
    py = ((np.arange(ys.start, ys.stop, dtype=np.float32) + 0.5) / size - obj.cy)[:, None]
    px = ((np.arange(xs.start, xs.stop, dtype=np.float32) + 0.5) / size - obj.cx)[None, :]
    c, s = math.cos(obj.angle), math.sin(obj.angle)
    u = (c * px + s * py) / obj.radius
    v = (-s * px + c * py) / obj.radius
    w = PATTERNS[cat.pattern](u, v, obj.pattern_freq).astype(np.float32)[..., None]
    primary = _hsv(obj.hue, obj.sat, obj.val).astype(np.float32)
    secondary = _hsv(obj.hue, obj.sat, obj.val * obj.dark).astype(np.float32)
    shade = (1.0 + 0.12 * (-u - v) / 2.0)[..., None]  # light from the top left
    return np.clip((primary + w * (secondary - primary)) * shade, 0, 1)


def render_scene(objects: list[SceneObject], rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Draw `objects` (in order, later on top) over a random background.

    Returns the image, uint8 (size, size, 3), and each object's *visible* mask, bool (size, size):
    its coverage >= 0.5 minus the pixels of objects drawn over it.
    """
    img = _background(rng, size)
    covers = []
    for obj in objects:
        (ys, xs), alpha = _object_alpha(obj, size)
        cover = np.zeros((size, size), dtype=bool)
        if alpha.size:
            a = alpha[..., None]
            img[ys, xs] += (_object_texture(obj, size, ys, xs) - img[ys, xs]) * a
            cover[ys, xs] = alpha >= 0.5
        covers.append(cover)
    visible = []
    above = np.zeros((size, size), dtype=bool)
    for cover in reversed(covers):
        visible.append(cover & ~above)
        above |= cover
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), visible[::-1]


def mask_box(mask: np.ndarray) -> list[float] | None:
    """sslsan.media.box_from_mask rounded to 6 decimals, as the manifests store it (None: empty mask)."""
    box = box_from_mask(mask)
    return None if box is None else [round(v, 6) for v in box]


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


def make_scene(
    rng: np.random.Generator,
    cfg: SynthConfig,
    n_objects: int,
    n_sounding: int,
    min_sep: float,
    cats: list[int] | None = None,
) -> Scene:
    """Distinct categories (random unless `cats` is given), random poses, `n_sounding` objects sounding."""
    if cats is None:
        cats = [int(c) for c in rng.choice(cfg.n_categories, size=n_objects, replace=False)]
    if len(cats) != n_objects or len(set(cats)) != n_objects:
        raise SynthError(f"a scene needs {n_objects} distinct categories, got {cats}")
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
        n_obj = int(rng.integers(1, cfg.max_objects + 1))
        two = split != "test_vggss" and n_obj >= 2 and rng.random() < cfg.p_two_sounding
        n_snd = 2 if two else 1
        scene = make_scene(rng, cfg, n_obj, n_snd, min_sep=0.75)
        sounding = [o for o in scene.objects if o.sounding]
        rng.shuffle(sounding)  # which sounding object is loudest is random
        annotations = [sounding]
    image_rel = _write(root, f"{split}/images/{stem}.jpg", jpeg_bytes(scene.image, cfg.jpeg_quality))
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
            vars(Sample(
                id=f"{split}_{stem}{suffix}",
                image=image_rel,
                audio=_write(root, f"{split}/audio/{stem}{suffix}.wav", wav_bytes(wave_, cfg.sample_rate)),
                boxes=[b for b in (mask_box(scene.masks[i]) for i in idx) if b is not None],  # hidden: no box
                mask=_write(root, f"{split}/masks/{stem}{suffix}.png", mask_png_bytes(mask)),
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


def _written_by_us(meta: Path) -> bool:
    """Whether a dataset.json says `sslsan data synth` wrote its folder; SynthError if it is damaged."""
    try:
        data = json.loads(meta.read_text() or "{}")
    except json.JSONDecodeError as exc:
        raise SynthError(f"{meta}: damaged (not valid JSON: {exc.msg}, line {exc.lineno}), so the folder cannot be "
                         "recognised as a generated benchmark; delete it or choose another --out") from None
    return isinstance(data, dict) and data.get("generator") == GENERATOR


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SynthError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        meta = out / "dataset.json"
        ours = meta.is_file() and _written_by_us(meta)
        if not overwrite:
            raise SynthError(f"{out}: folder is not empty (pass --overwrite to replace a generated benchmark)")
        if not ours:
            raise SynthError(f"{out}: not empty and not written by `sslsan data synth`; refusing to overwrite it")
        for split, manifest in SPLIT_MANIFESTS.items():
            (out / manifest).unlink(missing_ok=True)
            shutil.rmtree(out / split, ignore_errors=True)
        meta.unlink()
    make_folder(out)


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
    meta = {
        "generator": GENERATOR,
        "version": GENERATOR_VERSION,
        "complete": False,  # an interrupted run leaves this, so --overwrite can recognise the folder
        "seed": cfg.seed,
        "config": dataclasses.asdict(cfg),
        "categories": [c.describe() for c in categories(cfg.n_categories)],
    }
    atomic_write_text(out / "dataset.json", json.dumps(meta, indent=1) + "\n")
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
    meta["complete"] = True
    meta["sizes"] = {SPLIT_MANIFESTS[s]: len(r) for s, r in rows.items()}
    atomic_write_text(out / "dataset.json", json.dumps(meta, indent=1) + "\n")
    return meta


def default_workers() -> int:
    """Worker processes used when none are asked for: the CPUs this process may use, at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))
