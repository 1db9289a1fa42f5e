"""Audio front-end, faithful to SSL-TIE / SSL-SaN pre-processing (docs/model.md §1).

waveform (16 kHz mono) → tile to 10 s (repeat, then truncate) → |STFT|² (n_fft 512, hop 239, periodic
Hann, reflect centre padding, normalised by sqrt(Σw²)) → HTK mel filterbank (257 filters, no area
normalisation; 28 of them are empty at 16 kHz) → 10·log10(max(P, 1e-10)).

Pure torch (no torchaudio), batched, identical on CPU and CUDA; matches torchaudio's MelSpectrogram +
AmplitudeToDB (checked against tests/golden/golden_mel_shared.npz). Files are decoded by sslsan.media.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from sslsan.media import SAMPLE_RATE, AudioError, load_audio  # noqa: F401  (public names of this module)
from sslsan.utils.device import to_device

DB_FLOOR_POWER = 1e-10  # AmplitudeToDB amin: the floor is -100 dB


@dataclass
class AudioConfig:
    """The audio front-end. Defaults are the paper's (SSL-TIE) values; `kind` names the front-end
    (`FRONTENDS`: "mel_db" is SSL-TIE's log-mel spectrogram)."""

    kind: str = "mel_db"
    sample_rate: int = SAMPLE_RATE
    clip_seconds: float = 3.0  # length of the clip a sample holds
    tile_seconds: float = 10.0  # the clip is tiled to this length before the STFT
    n_fft: int = 512
    hop_length: int = 239
    n_mels: int = 257
    spec_augment: bool = True  # training only
    specaug_p: float = 0.8
    time_mask: int = 180
    freq_mask: int = 35
    negatives_in_db: bool = True  # DECISIONS D1; False = vssl_eval convention (linear power)
    noise_clip: bool = False  # clip N(0, 1) noise to [-1, 1] like the project-page demo files

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def tile_samples(self) -> int:
        return int(round(self.tile_seconds * self.sample_rate))

    @property
    def n_frames(self) -> int:
        return 1 + self.tile_samples // self.hop_length


# ----------------------------------------------------------------------------------- waveform ops


def tile_to_length(wave: torch.Tensor, n: int) -> torch.Tensor:
    """SSL-TIE rule: shorter clips are repeated floor(n/len)+1 times, then everything is cut to n."""
    length = wave.shape[-1]
    if length == 0:
        raise ValueError("cannot tile an empty waveform")
    if length < n:
        reps = n // length + 1
        wave = wave.repeat(*([1] * (wave.dim() - 1)), reps)
    return wave[..., :n]


def tile_rows(wave: torch.Tensor, lengths: torch.Tensor, n: int) -> torch.Tensor:
    """`tile_to_length` of every row of a zero-padded batch: row b of (B, L) holds lengths[b] samples -> (B, n).

    `lengths` (B,) on the host decides, without reading device memory, whether one tiling serves the
    whole batch (all rows equally long, the usual case); otherwise each row is gathered on the device.
    """
    lengths = lengths.cpu()
    if bool((lengths < 1).any()) or int(lengths.max()) > wave.shape[-1]:
        raise ValueError(f"row lengths must lie in [1, {wave.shape[-1]}], got {lengths.tolist()}")
    if bool((lengths == lengths[0]).all()):
        return tile_to_length(wave[:, : int(lengths[0])], n)
    # the (B, n) index is built where it is used: only the B lengths cross to the device
    idx = torch.arange(n, device=wave.device)[None, :] % to_device(lengths, wave.device)[:, None]
    return wave.gather(1, idx)


SHORT_CLIP_REPEATS = 10  # a clip repeated more often than this to fill the window is mostly repetition


class ShortClipWarning(UserWarning):
    """A clip so much shorter than the model's window that tiling repeats it many times."""


def warn_if_short(n_samples: int, window: int, sample_rate: int, where: str | Path) -> None:
    """Warn, naming `where`, when a clip of `n_samples` is tiled more than SHORT_CLIP_REPEATS times to `window`."""
    if 0 < n_samples and window / n_samples > SHORT_CLIP_REPEATS:
        warnings.warn(f"{where}: clip is {n_samples / sample_rate:.3g} s long; tiling repeats it "
                      f"{math.ceil(window / n_samples)} times to fill the {window / sample_rate:g} s window",
                      ShortClipWarning, stacklevel=2)


def silence(n: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """All-zero waveform of n samples (DECISIONS D1)."""
    return torch.zeros(n, dtype=torch.float32, device=device)


def noise(n: int | tuple[int, ...], generator: torch.Generator | None = None, clip: bool = False,
          device: str | torch.device = "cpu") -> torch.Tensor:
    """N(0, 1) waveform of n samples, or a batch of shape n (DECISIONS D1), optionally hard-clipped to [-1, 1].

    Drawn on the generator's device: a CUDA generator draws on the GPU with nothing to copy.
    """
    gen_device = generator.device if generator is not None else device
    w = torch.randn(n, generator=generator, dtype=torch.float32, device=gen_device).to(device)
    return w.clamp_(-1.0, 1.0) if clip else w


# -------------------------------------------------------------------------------------- features


def mel_filterbank(n_freqs: int, n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None) -> torch.Tensor:
    """HTK-scale triangular filters, no area normalisation: (n_freqs, n_mels), float32.

    Computed in float32 on purpose, as torchaudio does: near the triangle edges the weights are tiny
    and their float32 rounding is visible in the lowest dB values of released models' inputs.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs, dtype=torch.float32)

    def hz_to_mel(f: float) -> float:
        return 2595.0 * math.log10(1.0 + f / 700.0)

    m_pts = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2, dtype=torch.float32)
    f_pts = 700.0 * (10 ** (m_pts / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)  # (n_freqs, n_mels + 2)
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return torch.clamp(torch.minimum(down, up), min=0.0)


class LogMelSpectrogram(nn.Module):
    """Waveform (B, N) or (N,) → tiled → mel power or dB, shape (B, 1, n_mels, T)."""

    def __init__(self, cfg: AudioConfig | None = None):
        super().__init__()
        self.cfg = cfg or AudioConfig()
        c = self.cfg
        # float32 like torchaudio: far-off-peak leakage (the lowest dB values) depends on its rounding
        window = torch.hann_window(c.n_fft, periodic=True, dtype=torch.float32)
        self.register_buffer("window", window, persistent=False)
        self.register_buffer(
            "fb", mel_filterbank(c.n_fft // 2 + 1, c.n_mels, c.sample_rate), persistent=False
        )
        self.norm = float(window.double().pow(2).sum().sqrt())  # torchaudio normalized=True ("window")

    @property
    def n_frames(self) -> int:
        return self.cfg.n_frames

    @property
    def n_bins(self) -> int:
        return self.cfg.n_mels

    def power(self, wave: torch.Tensor) -> torch.Tensor:
        """Mel power spectrogram (B, 1, n_mels, T) of the tiled waveform, float32."""
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        if wave.dim() != 2:
            raise ValueError(f"expected a waveform of shape (N,) or (B, N), got {tuple(wave.shape)}")
        wave = tile_to_length(wave.float(), self.cfg.tile_samples)
        spec = torch.stft(
            wave,
            n_fft=self.cfg.n_fft,
            hop_length=self.cfg.hop_length,
            win_length=self.cfg.n_fft,
            window=self.window,
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        spec = spec / self.norm
        pw = spec.real.square() + spec.imag.square()  # (B, F, T)
        mel = torch.matmul(pw.transpose(1, 2), self.fb).transpose(1, 2)  # (B, n_mels, T)
        return mel.unsqueeze(1)

    @staticmethod
    def to_log(power: torch.Tensor) -> torch.Tensor:
        """AmplitudeToDB (power, ref 1, no top_db): 10·log10(max(P, 1e-10))."""
        return 10.0 * torch.log10(torch.clamp(power, min=DB_FLOOR_POWER))

    def forward(self, wave: torch.Tensor, log: bool = True) -> torch.Tensor:
        """The model's input (log=True), or the linear power (`negatives_in_db=False`, D1)."""
        p = self.power(wave)
        return self.to_log(p) if log else p


# Front-end kinds: AudioConfig.kind -> the module class. A front-end maps a waveform (B, N) or (N,) to
# (B, 1, n_bins, n_frames): `power` (linear; SpecAugment and the training cache work on it), `to_log`
# (what the model sees), `forward(wave, log=True)` both, and has `cfg`, `n_bins`, `n_frames`.
FRONTENDS: dict[str, type[nn.Module]] = {"mel_db": LogMelSpectrogram}


def build_frontend(cfg: AudioConfig | None = None) -> nn.Module:
    """The front-end `cfg.kind` names (a ValueError naming the known kinds otherwise)."""
    cfg = cfg or AudioConfig()
    if cfg.kind not in FRONTENDS:
        raise ValueError(f"unknown audio front-end {cfg.kind!r}; known: {', '.join(FRONTENDS)}")
    return FRONTENDS[cfg.kind](cfg)


_DEFAULT_FRONTENDS: dict[tuple, LogMelSpectrogram] = {}


def spectrogram(wave: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """The paper's front-end: (B, N) or (N,) → (B, 1, 257, 670) float32 dB (for 16 kHz input)."""
    key = (sample_rate, str(wave.device))
    if key not in _DEFAULT_FRONTENDS:
        _DEFAULT_FRONTENDS[key] = LogMelSpectrogram(AudioConfig(sample_rate=sample_rate)).to(wave.device)
    return _DEFAULT_FRONTENDS[key](wave)


class SpecAugment(nn.Module):
    """With probability p per sample: one time mask (width ~ U·180) then one frequency mask (U·35).

    Applied to the mel POWER before dB, filling 0 (so masked cells become -100 dB), as SSL-TIE does
    with torchaudio TimeMasking/FrequencyMasking. Draws come from `generator` (CPU) for reproducibility.
    """

    def __init__(self, p: float = 0.8, time_mask: int = 180, freq_mask: int = 35):
        super().__init__()
        self.p, self.time_mask, self.freq_mask = p, time_mask, freq_mask

    @staticmethod
    def _mask(size: int, param: int, u_width: torch.Tensor, u_start: torch.Tensor, device) -> torch.Tensor:
        # torchaudio mask_along_axis: width = U·param, start = U·(size − width), mask [floor(start), floor(start + width))
        width = u_width * param
        start = u_start * (size - width)
        lo, hi = start.floor(), (start + width).floor()
        idx = torch.arange(size, device=device, dtype=lo.dtype)
        return (idx >= to_device(lo[:, None], device)) & (idx < to_device(hi[:, None], device))  # (B, size)

    def forward(self, power: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, _, f, t = power.shape
        u = torch.rand(b, 5, generator=generator, dtype=torch.float64)
        apply = to_device(u[:, 0] < self.p, power.device)
        tmask = self._mask(t, self.time_mask, u[:, 1], u[:, 2], power.device)  # (B, T)
        fmask = self._mask(f, self.freq_mask, u[:, 3], u[:, 4], power.device)  # (B, F)
        masked = (tmask[:, None, None, :] | fmask[:, None, :, None]) & apply[:, None, None, None]
        return power.masked_fill(masked, 0.0)
