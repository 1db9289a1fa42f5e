"""Which part of a clip each method hears (`AudioConfig.window`, crops): against literal restatements of
the original loaders (EZ-VSL's centred 3 s, vssl_eval's rolled 10 s and CenterCrop, SSL-Align's 3.5-6.5 s)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sslsan.audio import AudioConfig, build_frontend, place_window, window_segment
from sslsan.methods import get_method

SR = 16000


def ezvsl_load(wave: np.ndarray, dur: float = 3.0) -> np.ndarray:
    """EZ-VSL datasets.py load_spectrogram up to the spectrogram: dur s from max(duration/2 - dur/2, 0), tiled."""
    start = int(max(len(wave) / SR / 2 - dur / 2, 0) * SR)
    audio = wave[start:start + int(SR * dur)]
    if audio.shape[0] < SR * dur:
        audio = np.tile(audio, int(SR * dur / audio.shape[0]) + 1)
    return audio[:int(SR * dur)]


def vssl_eval_load(wave: np.ndarray, dur: float = 10.0) -> np.ndarray:
    """vssl_eval datasets/datasets.py load_spectrogram: the first dur s, tiled, rolled to centre the clip."""
    audio = wave[:int(SR * dur)]
    if audio.shape[0] < SR * dur:
        audio = np.tile(audio, int(SR * dur / audio.shape[0]) + 1)
    audio = audio[:int(SR * dur)]
    audio_center = int(len(wave) / SR / 2 * SR)
    return np.roll(audio, int(SR * dur / 2) - audio_center)


@pytest.mark.parametrize("seconds", [10.0, 4.3, 12.5])
def test_windows_restate_the_loaders(seconds):
    wave = np.random.default_rng(0).normal(size=int(SR * seconds)).astype(np.float32)
    t = torch.from_numpy(wave)
    centre = AudioConfig(tile_seconds=3.0, window="centre")
    np.testing.assert_array_equal(place_window(t, centre).numpy(), ezvsl_load(wave))
    rolled = AudioConfig(tile_seconds=10.0, window="roll_centre")
    np.testing.assert_array_equal(place_window(t, rolled).numpy(), vssl_eval_load(wave))
    start = AudioConfig(tile_seconds=10.0)
    np.testing.assert_array_equal(place_window(t, start).numpy(), np.resize(wave, SR * 10) if seconds < 10 else wave[:SR * 10])
    assert window_segment(t, centre).shape[-1] == min(len(wave), 3 * SR)  # untiled: training tiles on the device


def test_crops_restate_vssl_eval_and_ssl_align():
    wave = torch.randn(2, SR * 10)
    # vssl_eval: the 671-frame spectrogram of 10 s, then torchvision CenterCrop((257, 200)): frames 236..435
    ve = get_method("ezvsl").policy_spec("vssl_eval").audio
    full = build_frontend(AudioConfig(kind="log_linear", n_fft=512, hop_length=238, tile_seconds=10.0))(wave)
    assert full.shape[-1] == 671 and ve.n_frames == 200
    torch.testing.assert_close(build_frontend(ve)(wave), full[..., 236:436])
    # SSL-Align: samples [16000*3.5, 16000*6.5) of the 10 s tiling, hop 159
    al = get_method("sslalign").policy_spec("original").audio
    cut = build_frontend(AudioConfig(kind="log_linear", n_fft=512, hop_length=159, tile_seconds=3.0))(wave[:, 56000:104000])
    torch.testing.assert_close(build_frontend(al)(wave), cut)
    assert al.n_frames == cut.shape[-1] == 1 + (48000 - 512) // 159


def test_bad_windows_are_refused():
    with pytest.raises(ValueError, match="audio.window='middle'"):
        AudioConfig(window="middle")
    with pytest.raises(ValueError, match="crop_start < crop_end <= tile_seconds"):
        AudioConfig(tile_seconds=3.0, crop_start=3.5, crop_end=6.5)
