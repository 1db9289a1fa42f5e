"""Audio front-ends: SSL-TIE / SSL-SaN's log-mel (docs/model.md §1) and the linear log spectrogram of
LVS, EZ-VSL, SLAVC and FNAC (docs/methods.md).

"mel_db" (`LogMelSpectrogram`): waveform (16 kHz mono) → tile to 10 s (repeat, then truncate) → |STFT|² (n_fft 512, hop 239, periodic
Hann, reflect centre padding, normalised by sqrt(Σw²)) → HTK mel filterbank (257 filters, no area
normalisation; 28 of them are empty at 16 kHz) → 10·log10(max(P, 1e-10)).

Pure torch (no torchaudio), batched, identical on CPU and CUDA; matches torchaudio's MelSpectrogram +
AmplitudeToDB (checked against tests/golden/golden_mel_shared.npz).

"log_linear" (`LogLinearSpectrogram`): waveform → tile to `tile_seconds` → scipy.signal.spectrogram as
those repositories call it (nperseg 512, noverlap 274: hop 238; periodic Tukey(0.25) window, each
segment's mean removed, no padding, one-sided PSD "density" scaling) → (log(S + 1e-7) − 0) / 12 (their
torchvision Normalize(0, 12)). Pure torch as well; checked against scipy in
tests/golden/golden_zoo_log_linear.npz.

"log_stft_standardised" (`StandardisedLogSTFT`): RCGrad's input: |STFT|² as torchaudio's Spectrogram
(n_fft 512, hop 353), log(S + 1e-7), standardised per clip.

Which part of a clip the model hears is the config's `window` (`place_window`: its first `tile_seconds`,
or those around its middle, or vssl_eval's rolled tiling) and optional crops (`crop_start`/`crop_end` of
the window, `crop_frames` of the spectrogram), as each method's own loader does (docs/methods.md,
"Front-end policies"). Files are decoded by sslsan.media.
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
    (`FRONTENDS`: "mel_db" is SSL-TIE's log-mel spectrogram, "log_linear" the linear log spectrogram of
    LVS / EZ-VSL / SLAVC / FNAC, whose settings are the `tukey_alpha` / `log_*` fields)."""

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
    # log_linear only: the STFT window is a periodic Tukey window with this taper fraction (scipy's default
    # for signal.spectrogram), and the model sees (log(power + log_offset) - log_mean) / log_std
    tukey_alpha: float = 0.25
    log_offset: float = 1e-7
    log_mean: float = 0.0
    log_std: float = 12.0
    # which `tile_seconds` of a longer clip the model hears (`WINDOWS`, `place_window`): "start" (the first
    # ones: SSL-TIE, LVS), "centre" (centred on the clip's middle: EZ-VSL/SLAVC/FNAC's load_spectrogram),
    # "roll_centre" (the first ones, tiled, then rolled so that the clip's middle sits in the middle of the
    # window: vssl_eval's load_spectrogram for EZ-VSL and SLAVC)
    window: str = "start"
    # then only [crop_start, crop_end) seconds of that window reach the STFT (crop_end 0: all of it), e.g.
    # SSL-Align's 3.5-6.5 s of a 10 s tiling; and only the centre `crop_frames` frames of the spectrogram
    # are kept (0: all; torchvision CenterCrop's rounding), e.g. vssl_eval's CenterCrop((257, 200))
    crop_start: float = 0.0
    crop_end: float = 0.0
    crop_frames: int = 0

    def __post_init__(self):
        if self.window not in WINDOWS:
            raise ValueError(f"audio.window={self.window!r}: expected one of {', '.join(WINDOWS)}")
        if self.crop_end and not 0.0 <= self.crop_start < self.crop_end <= self.tile_seconds:
            raise ValueError(f"audio.crop_start/crop_end = {self.crop_start}/{self.crop_end}: must satisfy "
                             f"0 <= crop_start < crop_end <= tile_seconds ({self.tile_seconds})")
        if self.crop_frames < 0:
            raise ValueError(f"audio.crop_frames={self.crop_frames}: must be >= 0 (0 keeps every frame)")

    @property
    def stft_samples(self) -> int:
        """Samples the STFT sees: the window, or its [crop_start, crop_end) part."""
        if self.crop_end:
            return _sample(self.crop_end, self.sample_rate) - _sample(self.crop_start, self.sample_rate)
        return self.tile_samples

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def tile_samples(self) -> int:
        return int(round(self.tile_seconds * self.sample_rate))

    @property
    def n_frames(self) -> int:
        """Spectrogram frames: centred STFT frames (mel_db, log_stft_standardised) or whole frames only, no
        padding (log_linear); at most `crop_frames`."""
        if self.kind == "log_linear":
            n = 1 + (self.stft_samples - self.n_fft) // self.hop_length
        else:
            n = 1 + self.stft_samples // self.hop_length
        return min(n, self.crop_frames) if self.crop_frames else n


WINDOWS = ("start", "centre", "roll_centre")


def _sample(seconds: float, sample_rate: int) -> int:
    """The sample index of a time, as the original loaders compute it (int(sr * t))."""
    return int(sample_rate * seconds)


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


def window_segment(wave: torch.Tensor, cfg: AudioConfig) -> torch.Tensor:
    """The part of a whole clip (..., L) that `cfg.window` selects, before tiling: at most tile_samples
    long for "start" and "centre"; for "roll_centre" the tiled, rolled window itself."""
    n, length = cfg.tile_samples, wave.shape[-1]
    if cfg.window == "start":
        return wave[..., :n]
    if cfg.window == "centre":  # their load_spectrogram: start at max(duration / 2 - window / 2, 0) seconds
        sr = cfg.sample_rate
        start = _sample(max(length / sr / 2 - cfg.tile_seconds / 2, 0.0), sr)
        return wave[..., start:start + n]
    # vssl_eval: np.roll(tiled first window, int(sr * window / 2) - int(duration / 2 * sr))
    return torch.roll(tile_to_length(wave, n), n // 2 - length // 2, dims=-1)


def place_window(wave: torch.Tensor, cfg: AudioConfig) -> torch.Tensor:
    """The window of a whole clip (..., L) the model hears (`cfg.window`), tiled to tile_samples."""
    return tile_to_length(window_segment(wave, cfg), cfg.tile_samples)


def stft_input(wave: torch.Tensor, cfg: AudioConfig) -> torch.Tensor:
    """A (B, N) batch of windows -> float32 (B, stft_samples): tiled to tile_samples, then
    [crop_start, crop_end) of it."""
    if wave.dim() == 1:
        wave = wave.unsqueeze(0)
    if wave.dim() != 2:
        raise ValueError(f"expected a waveform of shape (N,) or (B, N), got {tuple(wave.shape)}")
    wave = tile_to_length(wave.float(), cfg.tile_samples)
    if cfg.crop_end:
        wave = wave[:, _sample(cfg.crop_start, cfg.sample_rate):_sample(cfg.crop_end, cfg.sample_rate)]
    return wave


def crop_frames(spec: torch.Tensor, cfg: AudioConfig) -> torch.Tensor:
    """The centre `cfg.crop_frames` frames of (..., F, T) (torchvision CenterCrop: top = round((T - n) / 2))."""
    t = spec.shape[-1]
    if not cfg.crop_frames or cfg.crop_frames >= t:
        return spec
    start = int(round((t - cfg.crop_frames) / 2.0))
    return spec[..., start:start + cfg.crop_frames]


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


def centred_stft(wave: torch.Tensor, cfg: AudioConfig, window: torch.Tensor) -> torch.Tensor:
    """torch.stft as torchaudio's Spectrogram calls it: centred frames, reflect padding, one-sided, complex."""
    return torch.stft(wave, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.n_fft, window=window,
                      center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True)


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
        spec = centred_stft(stft_input(wave, self.cfg), self.cfg, self.window) / self.norm
        pw = spec.real.square() + spec.imag.square()  # (B, F, T)
        mel = torch.matmul(pw.transpose(1, 2), self.fb).transpose(1, 2)  # (B, n_mels, T)
        return crop_frames(mel.unsqueeze(1), self.cfg)

    @staticmethod
    def to_log(power: torch.Tensor) -> torch.Tensor:
        """AmplitudeToDB (power, ref 1, no top_db): 10·log10(max(P, 1e-10))."""
        return 10.0 * torch.log10(torch.clamp(power, min=DB_FLOOR_POWER))

    def forward(self, wave: torch.Tensor, log: bool = True) -> torch.Tensor:
        """The model's input (log=True), or the linear power (`negatives_in_db=False`, D1)."""
        p = self.power(wave)
        return self.to_log(p) if log else p


def tukey_window(n: int, alpha: float) -> torch.Tensor:
    """Periodic Tukey window of n points (scipy.signal.get_window(("tukey", alpha), n)), float64.

    alpha is the tapered fraction: 0 gives a rectangle, 1 a periodic Hann window.
    """
    m = n + 1  # periodic: the symmetric window of n + 1 points without its last point
    if alpha <= 0:
        return torch.ones(n, dtype=torch.float64)
    if alpha >= 1:
        return torch.hann_window(n, periodic=True, dtype=torch.float64)
    k = torch.arange(m, dtype=torch.float64)
    width = int(math.floor(alpha * (m - 1) / 2.0))
    w = torch.ones(m, dtype=torch.float64)
    head, tail = k[: width + 1], k[m - width - 1:]
    w[: width + 1] = 0.5 * (1 + torch.cos(math.pi * (-1 + 2.0 * head / alpha / (m - 1))))
    w[m - width - 1:] = 0.5 * (1 + torch.cos(math.pi * (-2.0 / alpha + 1 + 2.0 * tail / alpha / (m - 1))))
    return w[:n]


class LinearFrequencyFrontEnd(nn.Module):
    """A front-end whose bins are the STFT's own (n_fft / 2 + 1 linear frequencies), `cfg.n_frames` frames."""

    cfg: AudioConfig

    @property
    def n_frames(self) -> int:
        return self.cfg.n_frames

    @property
    def n_bins(self) -> int:
        return self.cfg.n_fft // 2 + 1


class LogLinearSpectrogram(LinearFrequencyFrontEnd):
    """Waveform (B, N) or (N,) → tiled → linear-frequency PSD or its normalised log, (B, 1, n_fft/2 + 1, T).

    The PSD is scipy.signal.spectrogram(x, fs, nperseg=n_fft, noverlap=n_fft - hop_length) with its
    defaults: frames of n_fft samples every hop_length (no padding), each frame's mean removed
    ("constant" detrend), a periodic Tukey window, |rfft|² · 1 / (fs · Σw²) ("density"), doubled except
    at DC and Nyquist (one-sided).
    """

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.n_fft > cfg.stft_samples:
            raise ValueError(f"audio: n_fft={cfg.n_fft} is longer than the {cfg.stft_samples}-sample window "
                             f"(tile_seconds={cfg.tile_seconds}, crop {cfg.crop_start}-{cfg.crop_end} s at "
                             f"{cfg.sample_rate} Hz)")
        window = tukey_window(cfg.n_fft, cfg.tukey_alpha)
        self.register_buffer("window", window.float(), persistent=False)
        sides = torch.full((cfg.n_fft // 2 + 1,), 2.0, dtype=torch.float64)
        sides[0] = 1.0
        if cfg.n_fft % 2 == 0:
            sides[-1] = 1.0  # the unpaired Nyquist bin
        # density scaling and the one-sided doubling, one factor per bin (float64, then rounded once)
        self.register_buffer("scale", (sides / (cfg.sample_rate * window.pow(2).sum())).float()[:, None],
                             persistent=False)

    def power(self, wave: torch.Tensor) -> torch.Tensor:
        """PSD (B, 1, n_bins, T) of the tiled waveform, float32."""
        c = self.cfg
        frames = stft_input(wave, c).unfold(-1, c.n_fft, c.hop_length)  # (B, T, n_fft)
        frames = crop_frames(frames.transpose(1, 2), c).transpose(1, 2)  # frames are independent: crop first
        frames = (frames - frames.mean(dim=-1, keepdim=True)) * self.window
        spec = torch.fft.rfft(frames, dim=-1).transpose(1, 2)  # (B, n_bins, T)
        return ((spec.real.square() + spec.imag.square()) * self.scale).unsqueeze(1)

    def to_log(self, power: torch.Tensor) -> torch.Tensor:
        """(log(power + log_offset) − log_mean) / log_std."""
        c = self.cfg
        return (torch.log(power + c.log_offset) - c.log_mean) / c.log_std

    def to_linear(self, power: torch.Tensor) -> torch.Tensor:
        """(power − log_mean) / log_std: the normalisation without the log, as vssl_eval feeds its silence and
        noise to EZ-VSL, SLAVC and FNAC (`negatives_in_db=False`, D1)."""
        c = self.cfg
        return (power - c.log_mean) / c.log_std

    def forward(self, wave: torch.Tensor, log: bool = True) -> torch.Tensor:
        """The model's input (log=True), or the normalised linear PSD (`negatives_in_db=False`, D1)."""
        p = self.power(wave)
        return self.to_log(p) if log else self.to_linear(p)


class StandardisedLogSTFT(LinearFrequencyFrontEnd):
    """RCGrad's audio input (its ResNetSpec computes it inside the model; here a front-end, pure torch):
    waveform (B, N) or (N,) → tiled → |STFT|² as torchaudio's Spectrogram(n_fft, hop_length) computes it
    (periodic Hann window, centred frames with reflect padding, no normalisation) → log(power + log_offset)
    → standardised by the clip's own mean and (unbiased) standard deviation + 1e-9, (B, 1, n_fft/2 + 1, T).

    The original standardises over its whole input tensor; its evaluation feeds one clip at a time, so
    here every clip is standardised on its own (a batch gives each clip the map it gets alone). Silence
    becomes all zeros (a constant log spectrogram has no spread).
    """

    STD_EPS = 1e-9  # RC:modules/resnet.py ResNetSpec.forward

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("window", torch.hann_window(cfg.n_fft, periodic=True, dtype=torch.float32),
                             persistent=False)

    def power(self, wave: torch.Tensor) -> torch.Tensor:
        """|STFT|² (B, 1, n_bins, T) of the tiled waveform, float32."""
        spec = centred_stft(stft_input(wave, self.cfg), self.cfg, self.window)
        return crop_frames((spec.real.square() + spec.imag.square()).unsqueeze(1), self.cfg)

    def to_log(self, power: torch.Tensor) -> torch.Tensor:
        """log(power + log_offset), standardised per clip. The statistics are taken in float64: a constant
        spectrogram (silence) then gives exactly 0, where a float32 mean one rounding step off the constant
        would turn it into an arbitrary ±1 (the original's float32 result depends on its summation order)."""
        x = torch.log(power + self.cfg.log_offset).double()
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        return ((x - mean) / (std + self.STD_EPS)).float()

    def forward(self, wave: torch.Tensor, log: bool = True) -> torch.Tensor:
        """The model's input (log=True), or the linear power (`negatives_in_db=False`, D1)."""
        p = self.power(wave)
        return self.to_log(p) if log else p


# Front-end kinds: AudioConfig.kind -> the module class. A front-end maps a waveform (B, N) or (N,) to
# (B, 1, n_bins, n_frames): `power` (linear; SpecAugment and the training cache work on it), `to_log`
# (what the model sees), `forward(wave, log=True)` both, and has `cfg`, `n_bins`, `n_frames`.
FRONTENDS: dict[str, type[nn.Module]] = {"mel_db": LogMelSpectrogram, "log_linear": LogLinearSpectrogram,
                                         "log_stft_standardised": StandardisedLogSTFT}


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
