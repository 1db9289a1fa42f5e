"""Sound synthesis: a category's recipe -> a clip, coloured ambience, and the mixture of a scene's sounding objects.

Everything is float32 and draws only from the `rng` passed in, so a clip depends on (seed, split,
index) alone.
"""

from __future__ import annotations

import functools

import numpy as np

from sslsan.data.synthetic.categories import CATEGORY_LIBRARY, SoundRecipe
from sslsan.data.synthetic.scene import SceneObject
from sslsan.data.synthetic.synth_config import SynthConfig, SynthError
from sslsan.media import SAMPLE_RATE


def _uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    lo, hi = lo_hi
    return float(lo if hi <= lo else rng.uniform(lo, hi))


_F32 = np.float32
_TWO_PI = _F32(2 * np.pi)
_TABLE = 4096  # wavetable length of periodic (integer-partial) sounds


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


def clip_for(objs: list[SceneObject], rng: np.random.Generator, cfg: SynthConfig) -> tuple[np.ndarray, float, list[float]]:
    """Audio of the given sounding objects (first = loudest) in ambience; returns (wave, snr_db, gains_db)."""
    n = cfg.clip_samples
    sounds = [synthesize_sound(CATEGORY_LIBRARY[o.category].sound, rng, n, cfg.sample_rate) for o in objs]
    gains = [0.0] + [float(rng.uniform(-9.0, -3.0)) for _ in objs[1:]]
    snr = float(rng.uniform(*cfg.snr_db))
    return mix_clip(sounds, gains, rng, snr, cfg.sample_rate), snr, gains
