"""The linear log-spectrogram front-end ("log_linear") of LVS / EZ-VSL / SLAVC / FNAC: scipy's golden
output, a literal float64 restatement of scipy.signal.spectrogram, and the front-end interface."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import reference_file
from sslsan.audio import AudioConfig, LogLinearSpectrogram, build_frontend, tukey_window
from sslsan.evaluation.negatives import negative_spectrograms


def log_linear(**kw) -> AudioConfig:
    return AudioConfig(**{"kind": "log_linear", "hop_length": 238, "clip_seconds": 3.0, "tile_seconds": 3.0, **kw})


@pytest.mark.golden
def test_matches_scipy_golden():
    """tests/golden/golden_zoo_log_linear.*: scipy 1.17 in float64 (make_zoo_goldens.py log_linear)."""
    meta = json.loads(reference_file("golden_zoo_log_linear.json").read_text())
    data = np.load(reference_file("golden_zoo_log_linear.npz"))
    for clip in meta["clips"]:
        cfg = log_linear(sample_rate=clip["sample_rate"], clip_seconds=clip["clip_seconds"],
                         tile_seconds=clip["window_seconds"])
        fe = build_frontend(cfg)
        out = fe(torch.from_numpy(data[f"wave_{clip['name']}"])).numpy()
        ref = data[f"spec_{clip['name']}"]
        assert out.shape == (1, 1, fe.n_bins, fe.n_frames) == (1, *ref.shape), clip["name"]
        err = float(np.abs(out[0] - ref).max())
        assert err <= 1e-5, f"{clip['name']}: max abs error {err:.3g} (measured 1.4e-6)"


def _tukey_literal(n: int, alpha: float) -> np.ndarray:
    """The periodic Tukey window from its definition: cosine tapers over alpha/2 of each end of n + 1 points."""
    m = n + 1
    w = np.ones(m)
    edge = alpha * (m - 1) / 2.0
    for k in range(m):
        if k < edge:
            w[k] = 0.5 * (1 - math.cos(math.pi * k / edge))
        elif k > (m - 1) - edge:
            w[k] = 0.5 * (1 - math.cos(math.pi * ((m - 1) - k) / edge))
    return w[:n]


@pytest.mark.parametrize("n, alpha", [(512, 0.25), (64, 0.5), (33, 0.25), (16, 1.0), (16, 0.0)])
def test_tukey_window(n, alpha):
    np.testing.assert_allclose(tukey_window(n, alpha).numpy(), _tukey_literal(n, alpha), atol=1e-12)


def _reference(wave: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    """scipy.signal.spectrogram's defaults restated frame by frame in float64, then the log and Normalize."""
    n = cfg.tile_samples
    x = np.tile(wave.astype(np.float64), n // len(wave) + 1)[:n] if len(wave) < n else wave[:n].astype(np.float64)
    win = _tukey_literal(cfg.n_fft, cfg.tukey_alpha)
    cols = []
    for start in range(0, n - cfg.n_fft + 1, cfg.hop_length):
        seg = x[start:start + cfg.n_fft]
        p = np.abs(np.fft.rfft((seg - seg.mean()) * win)) ** 2 / (cfg.sample_rate * np.sum(win**2))
        p[1:-1 if cfg.n_fft % 2 == 0 else None] *= 2  # one-sided; an even n_fft's Nyquist bin is unpaired
        cols.append(p)
    return (np.log(np.stack(cols, axis=1) + cfg.log_offset) - cfg.log_mean) / cfg.log_std


@pytest.mark.parametrize("n_fft, hop, alpha", [(64, 20, 0.25), (63, 17, 0.5), (32, 32, 0.0)])
def test_matches_literal_reference(n_fft, hop, alpha):
    cfg = log_linear(sample_rate=8000, n_fft=n_fft, hop_length=hop, tukey_alpha=alpha, tile_seconds=0.1,
                     log_offset=1e-6, log_mean=-3.0, log_std=5.0)
    rng = np.random.default_rng(0)
    wave = (0.3 * rng.normal(size=530) + 0.2).astype(np.float32)  # shorter than the window: tiled; with a DC offset
    out = build_frontend(cfg)(torch.from_numpy(wave)).numpy()[0, 0]
    ref = _reference(wave, cfg)
    assert out.shape == ref.shape == (n_fft // 2 + 1, cfg.n_frames)
    assert np.abs(out - ref).max() <= 1e-5


def test_interface_batches_and_negatives():
    cfg = log_linear()
    fe = build_frontend(cfg)
    assert isinstance(fe, LogLinearSpectrogram) and (fe.n_bins, fe.n_frames) == (257, 200)
    waves = torch.randn(3, 30000)
    power = fe.power(waves)
    assert power.shape == (3, 1, 257, 200) and power.dtype == torch.float32 and bool((power >= 0).all())
    torch.testing.assert_close(fe(waves), fe.to_log(power))
    torch.testing.assert_close(fe(waves, log=False), power / 12.0)  # vssl_eval: Normalize(0, 12) without the log
    for i in range(3):  # one batch = item by item
        torch.testing.assert_close(fe(waves[i]), fe(waves)[i:i + 1], atol=1e-5, rtol=0)
    sil = negative_spectrograms("silence", [0, 1], fe)
    torch.testing.assert_close(sil, torch.full_like(sil, math.log(1e-7) / 12.0))
    lin = negative_spectrograms("noise", [0], build_frontend(log_linear(negatives_in_db=False)))
    assert bool((lin >= 0).all()) and lin.shape == (1, 1, 257, 200)


def test_window_longer_than_clip_is_refused():
    with pytest.raises(ValueError, match="n_fft=512 is longer"):
        build_frontend(log_linear(tile_seconds=0.01))
