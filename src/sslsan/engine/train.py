"""The training loop: data, spectrograms on the device, the SSL-SaN objective, validation, checkpoints.

Reproducibility (DECISIONS D13): every random draw is a function of (seed, stream, epoch, step or
sample index, rank) through `sslsan.utils.seed.make_generator`, never of a global RNG's history or
of which DataLoader worker handles a sample. So an interrupted run resumed from `latest.pt` replays
exactly the data order, image augmentations, noise clips, SpecAugment masks and TE transforms of an
uninterrupted one, whatever the worker count.

Per step (model_spec §8): the loader workers only do per-file work — decode the frame and cut the
random-resized crop on uint8 (its draws travel with it), read the clip; on the device, batched: the
rest of the image augmentation (sslsan.data.augment), tiling, the mel front-end, SpecAugment (on
power) and dB in fp32, and the noise clips (D1: the same front-end; drawn on the device unless
`data.noise_on=loader`); the silence spectrogram is computed once per run. The objective
(sslsan.losses) runs under bf16 autocast on CUDA. Nothing in a step waits for the device except at
log intervals: parameters reach it by non-blocking copies from pinned memory, decisions are made
on host copies of the draws, and loss terms are summed on the device.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import random
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate
from tqdm.auto import tqdm

from sslsan import __version__
from sslsan.audio import LogMelSpectrogram, SpecAugment, noise, silence, tile_rows
from sslsan.config import ConfigError, save_config, to_dict
from sslsan.data.augment import ImageDeviceAugment, decode_crop
from sslsan.data.datasets import AVDataset
from sslsan.data.manifest import Manifest, ManifestError, manifest_hash, read_manifest
from sslsan.data.transforms import ImageEvalTransform, ImageTrainTransform
from sslsan.engine.config import DataConfig, TrainConfig, resolve_train_config
from sslsan.engine.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    init_distributed,
    resolve_device,
)
from sslsan.losses import SSLSaNObjective
from sslsan.models import Localizer, load_model, read_checkpoint, save_checkpoint, unwrap_model
from sslsan.utils.io import atomic_torch_save, atomic_write_text
from sslsan.utils.logging import JsonlLogger
from sslsan.utils.seed import make_generator, seed_everything, seed_worker

# Independent random streams (first key after the seed of make_generator).
STREAM_INIT = 0  # model initialisation
STREAM_IMAGE = 1  # image augmentation, per (epoch, sample index)
STREAM_NOISE = 2  # noise waveform, per (epoch, sample index) (data.noise_on=loader)
STREAM_STEP = 3  # noise seed (data.noise_on=device), SpecAugment, TE transforms, per (epoch, step, rank)
STREAM_VAL_NOISE = 12  # validation noise, per sample index (fixed across epochs) (data.noise_on=loader)
STREAM_VAL_STEP = 13  # validation noise seed and TE transforms, per validation batch (fixed across epochs)

SUGGEST_DATA = "create data with `sslsan data synth --out DIR` (embedded benchmark) or `sslsan prepare NAME --out DIR`"


class TrainDataError(ValueError):
    """Training data that is missing, empty or too small; the message names the path."""


# ----------------------------------------------------------------------------------------------
# data


def resolve_manifest_path(data: DataConfig, name: str | None, what: str) -> Path | None:
    """Path of a manifest named in the data config, checked to exist, with a message saying what to do."""
    if name is None:
        return None
    path = Path(name)
    if data.root is not None:
        root = Path(data.root)
        if not root.exists():
            raise TrainDataError(f"{root}: data folder not found; {SUGGEST_DATA}")
        if root.is_dir() and not any(root.iterdir()):
            raise TrainDataError(f"{root}: data folder is empty; {SUGGEST_DATA}")
        if not path.is_absolute():
            path = root / path
    if not path.exists():
        where = f" under data root {data.root}" if data.root is not None else ""
        raise TrainDataError(f"{path}: {what} manifest not found{where}; {SUGGEST_DATA}")
    return path


def read_split(path: Path, what: str) -> Manifest:
    """Read a manifest and check that every file it names exists (one clear error instead of a worker crash)."""
    try:
        manifest = read_manifest(path)
    except ManifestError as exc:
        raise TrainDataError(f"{exc} ({what} split); {SUGGEST_DATA}") from None
    missing = [p for smp in manifest for p in (manifest.resolve(smp.image), manifest.resolve(smp.audio)) if not p.exists()]
    if missing:
        raise TrainDataError(f"{path}: {len(missing)} file(s) named in the {what} manifest are missing, e.g. {missing[0]}")
    return manifest


class KeyedSampler(DistributedSampler):
    """`DistributedSampler` that yields (epoch, index) keys, so workers know which epoch they serve.

    The epoch travels with each key instead of living in worker state, which would go stale with
    persistent workers. One process = `num_replicas=1, rank=0`.
    """

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        return ((epoch, int(i)) for i in super().__iter__())


def train_image_transform(cfg: TrainConfig) -> ImageTrainTransform:
    """The training augmentation the data config asks for (split between workers and device)."""
    d = cfg.data
    return ImageTrainTransform(d.image_size, scale=d.crop_scale, jitter_p=d.jitter_p, grayscale_p=d.grayscale_p,
                               blur_p=d.blur_p, flip_p=d.flip_p)


class TrainItems(Dataset):
    """Training items keyed by (epoch, index): the per-file half of the work, done in the loader workers.

    Training: "image" is the uint8 random-resized crop and "aug" its draws (sslsan.data.augment; the
    device applies the rest). Validation: "image" is the normalised evaluation frame. "wave" is the
    clip as read (at most tile_samples long; `collate_items` pads a batch and adds "wave_len"), or
    "power" the cached mel power; "noise" a noise clip when `data.noise_on=loader`. Draws use
    generators seeded by (seed, stream, epoch, index).
    """

    def __init__(
        self,
        manifest: Manifest,
        cfg: TrainConfig,
        *,
        train: bool,
        power_cache: torch.Tensor | None = None,
        with_noise: bool = True,
    ):
        self.manifest = manifest
        self.seed = cfg.train.seed
        self.train = train
        self.audio = cfg.audio
        self.reduced_decode = cfg.data.reduced_decode
        self.transform = train_image_transform(cfg) if train else ImageEvalTransform(cfg.data.image_size)
        self.power_cache = power_cache
        self.with_noise = with_noise and cfg.data.noise_on == "loader"
        self.base = AVDataset(manifest, image_transform=None, audio=cfg.audio, load_images=True)

    def __len__(self) -> int:
        return len(self.manifest)

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, Any]:
        epoch, i = key if isinstance(key, tuple) else (0, int(key))
        smp = self.manifest[i]
        item: dict[str, Any] = {"index": i}
        if self.train:
            g = make_generator(self.seed, STREAM_IMAGE, epoch, i)
            item["image"], item["aug"] = decode_crop(self.manifest.resolve(smp.image), self.transform, g,
                                                     reduced_decode=self.reduced_decode)
        else:
            item["image"] = self.transform(self.base.load_image(i))
        if self.power_cache is not None:
            item["power"] = self.power_cache[i]
        else:  # untiled: a 3 s clip is 30 % of the 10 s the front-end tiles it to on the device
            item["wave"] = self.base.load_clip(i)[: self.audio.tile_samples]
        if self.with_noise:
            g = (
                make_generator(self.seed, STREAM_NOISE, epoch, i)
                if self.train
                else make_generator(self.seed, STREAM_VAL_NOISE, i)
            )
            item["noise"] = noise(self.audio.tile_samples, generator=g, clip=self.audio.noise_clip)
        return item


def collate_items(items: list[dict[str, Any]]) -> dict[str, Any]:
    """`default_collate`, except that clips of different lengths are zero-padded to the longest.

    "wave_len" holds each clip's length (`sslsan.audio.tile_rows` tiles them on the device).
    """
    if "wave" not in items[0]:
        return default_collate(items)
    waves = [it["wave"] for it in items]
    longest = max(w.shape[0] for w in waves)
    padded = [w if w.shape[0] == longest else F.pad(w, (0, longest - w.shape[0])) for w in waves]
    batch = default_collate([{k: v for k, v in it.items() if k != "wave"} for it in items])
    batch["wave"] = default_collate(padded)
    batch["wave_len"] = torch.tensor([w.shape[0] for w in waves])
    return batch


def compute_power_cache(
    manifest: Manifest, cfg: TrainConfig, frontend: LogMelSpectrogram, device: torch.device, *, progress: bool
) -> torch.Tensor:
    """Mel power of every clip of `manifest`, (N, 1, n_mels, T) float32 on the CPU in shared memory."""
    n_mels, n_frames = cfg.audio.n_mels, frontend.n_frames
    gib = len(manifest) * n_mels * n_frames * 4 / 2**30
    if gib > cfg.data.cache_max_gib:
        raise ConfigError(
            f"data.cache_spectrograms: {len(manifest)} clips x {n_mels}x{n_frames} mel bins need {gib:.1f} GiB "
            f"(> data.cache_max_gib={cfg.data.cache_max_gib}); turn the cache off or raise the limit"
        )
    ds = AVDataset(manifest, image_transform=None, audio=cfg.audio, load_images=False)
    # decoding dominates and the main process mostly waits: use every core, whatever training uses
    workers = max(cfg.data.num_workers, min(os.cpu_count() or 1, 8))
    loader = DataLoader(ds, batch_size=32, shuffle=False, num_workers=workers, worker_init_fn=seed_worker)
    cache = torch.empty(len(manifest), 1, n_mels, n_frames, dtype=torch.float32)
    with torch.no_grad():
        for batch in tqdm(loader, desc=f"mel cache {manifest.path.name}", unit="batch", disable=not progress, leave=False):
            power = frontend.power(batch["wave"].to(device, non_blocking=True)).float()
            cache[batch["index"]] = power.cpu()
    return cache.share_memory_()


# front-end settings the cached mel power depends on (augmentation and negatives do not matter)
_CACHE_KEYS = ("sample_rate", "tile_seconds", "n_fft", "hop_length", "n_mels")


def audio_files_signature(manifest: Manifest) -> str:
    """sha256 over (path, size, mtime) of every audio file of `manifest`: replacing a clip changes it."""
    h = hashlib.sha256()
    for smp in manifest:
        path = manifest.resolve(smp.audio)
        st = path.stat()
        h.update(f"{path}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def power_cache_path(manifest: Manifest, cfg: TrainConfig) -> Path:
    """Where the mel cache of `manifest` is kept on disk: beside the manifest, keyed by its hash, its audio
    files (paths, sizes, modification times) and the front-end."""
    audio = to_dict(cfg.audio)
    key = json.dumps({"manifest": manifest_hash(manifest.path), "audio_files": audio_files_signature(manifest),
                      **{k: audio[k] for k in _CACHE_KEYS}, "v": 1}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return manifest.path.parent / ".sslsan_cache" / f"mel_{manifest.path.stem}_{digest}.pt"


def load_or_compute_power_cache(
    manifest: Manifest, cfg: TrainConfig, frontend: LogMelSpectrogram, device: torch.device, info: DistInfo,
    *, progress: bool,
) -> tuple[torch.Tensor, str]:
    """The mel cache and where it came from ("disk" or "computed").

    With `data.cache_on_disk`, a cache an earlier run stored for the same manifest and front-end is
    read back; otherwise rank 0 computes and stores it (atomically) while the other DDP ranks wait
    and read. A data folder that cannot be written to only loses the reuse.
    """
    if not cfg.data.cache_on_disk:
        return compute_power_cache(manifest, cfg, frontend, device, progress=progress), "computed"
    path = power_cache_path(manifest, cfg)
    want = (len(manifest), 1, cfg.audio.n_mels, frontend.n_frames)
    if info.is_main and not path.exists():
        cache = compute_power_cache(manifest, cfg, frontend, device, progress=progress)
        try:
            atomic_torch_save(cache, path)
        except OSError as exc:
            print(f"sslsan train: mel cache not stored ({path}: {exc})", file=sys.stderr)
        barrier(info)
        return cache, "computed"
    barrier(info)
    if path.exists():
        try:
            cache = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a cut or damaged file (any unpickling error): the cache is only a shortcut
            warnings.warn(f"{path}: mel cache unreadable ({type(exc).__name__}); recomputing it")
            cache = None
        if isinstance(cache, torch.Tensor) and tuple(cache.shape) == want:
            return cache.share_memory_(), "disk"
    cache = compute_power_cache(manifest, cfg, frontend, device, progress=progress)
    if info.is_main and path.exists():  # damaged or of another shape: replace it
        with contextlib.suppress(OSError):
            atomic_torch_save(cache, path)
    return cache, "computed"


def make_loader(items: TrainItems, sampler, batch_size: int, cfg: TrainConfig, device: torch.device, *, drop_last: bool) -> DataLoader:
    workers = cfg.data.num_workers
    return DataLoader(
        items,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=cfg.data.pin_memory and device.type == "cuda",
        persistent_workers=cfg.data.persistent_workers and workers > 0,
        prefetch_factor=cfg.data.prefetch_factor if workers > 0 else None,
        worker_init_fn=seed_worker,
        collate_fn=collate_items,
        drop_last=drop_last,
    )


# ----------------------------------------------------------------------------------------------
# model inputs and the loss


class InputBuilder:
    """Batch from the loader → the objective's inputs on the device (images augmented, spectrograms in fp32).

    Draws come from the step's generator in this order: the noise seed (`data.noise_on=device`),
    then SpecAugment; the objective then draws the TE transform.
    """

    def __init__(self, cfg: TrainConfig, device: torch.device):
        self.cfg = cfg
        self.device = device
        self.frontend = LogMelSpectrogram(cfg.audio).to(device)
        a = cfg.audio
        self.specaug = SpecAugment(p=a.specaug_p, time_mask=a.time_mask, freq_mask=a.freq_mask) if a.spec_augment else None
        self.image_aug = ImageDeviceAugment(train_image_transform(cfg))
        o = cfg.objective
        self.need_silence = o.needs_silence
        self.need_noise = o.needs_noise
        self.noise_on_device = cfg.data.noise_on == "device"
        self._noise_generator = torch.Generator(device=device)
        self.channels_last = cfg.train.channels_last and device.type == "cuda"
        self.silence_spec = None
        if self.need_silence:
            with torch.no_grad():  # one constant spectrogram for the whole run (model_spec §8)
                self.silence_spec = self._negative(silence(a.tile_samples)[None].to(device))

    def _negative(self, wave: torch.Tensor) -> torch.Tensor:
        power = self.frontend.power(wave)
        return self.frontend.to_db(power) if self.cfg.audio.negatives_in_db else power

    def _noise(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        if not self.noise_on_device:
            return batch["noise"].to(self.device, non_blocking=True)
        self._noise_generator.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        return noise((len(batch["index"]), self.cfg.audio.tile_samples), generator=self._noise_generator,
                     clip=self.cfg.audio.noise_clip, device=self.device)

    @torch.no_grad()
    def __call__(self, batch: dict[str, torch.Tensor], *, augment: bool, generator: torch.Generator) -> dict[str, Any]:
        dev = self.device
        images = batch["image"].to(dev, non_blocking=True)
        if "aug" in batch:  # training crops: the device half of the augmentation
            images = self.image_aug(images, batch["aug"].to(dev, non_blocking=True), host_params=batch["aug"])
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if "power" in batch:
            power = batch["power"].to(dev, non_blocking=True)
        else:
            wave = batch["wave"].to(dev, non_blocking=True)
            if "wave_len" in batch:  # zero-padded clips (collate_items); otherwise all rows are whole clips
                wave = tile_rows(wave, batch["wave_len"], self.cfg.audio.tile_samples)
            power = self.frontend.power(wave)
        noise_wave = self._noise(batch, generator) if self.need_noise else None
        if augment and self.specaug is not None:
            power = self.specaug(power, generator=generator)  # on power, before dB (model_spec §1.4)
        out: dict[str, Any] = {"images": images, "specs": self.frontend.to_db(power)}
        out["silence_spec"] = self.silence_spec
        out["noise_specs"] = self._negative(noise_wave) if noise_wave is not None else None
        return out


class StepModule(nn.Module):
    """Model + objective as one module, so DDP's forward wraps every tower call of a step."""

    def __init__(self, model: Localizer, objective: SSLSaNObjective):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, images, specs, silence_spec=None, noise_specs=None, generator=None, step=None, with_parts=False):
        return self.objective(self.model, images, specs, silence_spec=silence_spec, noise_specs=noise_specs,
                              generator=generator, step=step, with_parts=with_parts)


def step_generator(seed: int, epoch: int, step: int, rank: int) -> torch.Generator:
    """The generator of one training step on one rank (SpecAugment masks, then TE transforms)."""
    return make_generator(seed, STREAM_STEP, epoch, step, rank)


def forward_loss(
    step_module: nn.Module,
    builder: InputBuilder,
    batch: dict[str, torch.Tensor],
    generator: torch.Generator,
    *,
    augment: bool,
    amp: bool,
    step: int | None = None,
    with_parts: bool = False,
):
    """Loss and its terms for one batch (used by training, validation and the DDP equivalence test).

    `step`: the optimiser step (λ_SN warm-up; None = full weight); `with_parts`: also return the
    undetached weighted loss components (see SSLSaNObjective.forward).
    """
    inputs = builder(batch, augment=augment, generator=generator)
    with autocast(builder.device, amp):
        return step_module(**inputs, generator=generator, step=step, with_parts=with_parts)


def gradient_norms(parts: dict[str, torch.Tensor], model: Localizer) -> dict[str, float]:
    """L2 norm of the gradient of each loss component w.r.t. each tower's parameters (one backward each)."""
    towers = {"img": [p for p in model.imgnet.parameters() if p.requires_grad],
              "aud": [p for p in model.audnet.parameters() if p.requires_grad]}
    out = {}
    for name, part in parts.items():
        for tower, params in towers.items():
            grads = torch.autograd.grad(part, params, retain_graph=True, allow_unused=True)
            sq = sum((g.float().pow(2).sum() for g in grads if g is not None), torch.zeros((), device=part.device))
            out[f"grad_{tower}_{name}"] = float(sq.sqrt())
    return out


def autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def build_model(cfg: TrainConfig, device: torch.device) -> Localizer:
    """The localizer, initialised from (seed, STREAM_INIT) whatever the global RNG state."""
    model = Localizer(cfg.model, generator=make_generator(cfg.train.seed, STREAM_INIT)).to(device)
    if cfg.train.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def build_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    o = cfg.optim
    fused = (device.type == "cuda") if o.fused is None else o.fused
    return torch.optim.Adam(
        model.parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay, fused=fused or None
    )


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig):
    o = cfg.optim
    if o.scheduler == "constant":
        return None
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="min",
        factor=o.plateau_factor,
        patience=o.plateau_patience,
        threshold=o.plateau_threshold,
        cooldown=o.plateau_cooldown,
        min_lr=o.min_lr,
    )


# ----------------------------------------------------------------------------------------------
# run directory


# keys that may differ between the original run and its resumption (they change nothing learned)
RESUMABLE_CHANGES = {
    "train.epochs",
    "train.device",
    "train.log_every",
    "train.grad_diagnostics",
    "train.threads",
    "train.compile",
    "data.num_workers",
    "data.pin_memory",
    "data.persistent_workers",
    "data.prefetch_factor",
    "data.root",
    "data.cache_spectrograms",
    "data.cache_on_disk",
    "data.cache_max_gib",
    "eval.calibrate_threshold",
    "eval.calibration_manifest",
    "eval.calibration_mode",
    "eval.calibration_seed",
    "eval.calibration_repetitions",
}


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_resume_config(saved: dict, cfg: TrainConfig, path: Path) -> None:
    old, new = _flatten(saved), _flatten(to_dict(cfg))
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
    if diff:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:5])
        raise ConfigError(f"{path}: cannot resume with a different config ({shown}); use a new --run-dir")


def git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def rng_states() -> dict[str, Any]:
    """Global RNG states in types a weights_only checkpoint load accepts (our draws are keyed; this is belt and braces)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    n = states["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def _manifest_record(m: Manifest | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return {"path": str(m.path.resolve()), "sha256": manifest_hash(m.path), "samples": len(m)}


# ----------------------------------------------------------------------------------------------
# the loop


class _Averager:
    """Sums of detached loss terms on the device, one stacked vector per step; one host sync when read."""

    def __init__(self):
        self.sums: dict[tuple[str, ...], torch.Tensor] = {}  # key set -> summed vector (the set stays the same in a run)
        self.count = 0.0

    def add(self, terms: dict[str, torch.Tensor], weight: float = 1.0) -> None:
        keys = tuple(sorted(terms))
        vec = torch.stack([terms[k].detach().float().reshape(()) for k in keys])
        if weight != 1.0:
            vec = vec * weight
        self.sums[keys] = self.sums[keys] + vec if keys in self.sums else vec
        self.count += weight

    def reduce(self, info: DistInfo, device: torch.device) -> dict[str, float]:
        """Mean over everything added on every rank."""
        if not self.sums and not info.enabled:
            return {}
        per_key: dict[str, torch.Tensor] = {}
        for keys, vec in self.sums.items():
            for k, v in zip(keys, vec.unbind()):
                per_key[k] = per_key[k] + v if k in per_key else v
        keys = sorted(per_key)
        count = torch.tensor([self.count], dtype=torch.float32, device=device)
        vec = torch.cat([torch.stack([per_key[k].to(device) for k in keys]), count]) if keys else count
        vec = all_reduce_sum(vec, info).cpu()
        total = float(vec[-1])
        return {k: float(vec[i]) / max(total, 1e-12) for i, k in enumerate(keys)}

    def reset(self) -> None:
        self.sums, self.count = {}, 0.0


def _terms(loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {k: v for k, v in terms.items() if torch.is_tensor(v) and v.numel() == 1}
    out["loss"] = loss
    return out


def train_one_epoch(
    state: "_RunState",
    epoch: int,
    logger: JsonlLogger,
    progress: bool,
) -> dict[str, float]:
    """One pass over the training loader; returns the epoch's mean loss terms (over all ranks)."""
    s = state
    cfg, info, device = s.cfg, s.info, s.device
    s.train_module.train()
    s.sampler.set_epoch(epoch)
    steps = len(s.train_loader)
    if cfg.train.max_steps_per_epoch is not None:
        steps = min(steps, cfg.train.max_steps_per_epoch)
    per_rank_batch = s.train_loader.batch_size
    epoch_avg, log_avg = _Averager(), _Averager()
    bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{cfg.train.epochs}", unit="step", disable=not progress, dynamic_ncols=True)
    it = iter(s.train_loader)
    t_log, wait_log, n_log = time.perf_counter(), 0.0, 0
    for step in range(steps):
        t0 = time.perf_counter()
        batch = next(it)
        wait_log += time.perf_counter() - t0
        g = step_generator(cfg.train.seed, epoch, step, info.rank)
        log_step = (step + 1) % cfg.train.log_every == 0 or step + 1 == steps
        grad_diag = cfg.train.grad_diagnostics and log_step and not info.enabled
        out = forward_loss(s.train_module, s.builder, batch, g, augment=True, amp=cfg.train.amp,
                           step=s.global_step, with_parts=grad_diag)
        loss, terms = out[:2]
        grads = gradient_norms(out[2], s.model) if grad_diag else {}
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        s.optimizer.step()
        s.global_step += 1
        terms = _terms(loss, terms)
        epoch_avg.add(terms)
        log_avg.add(terms)
        n_log += 1
        bar.update(1)
        if log_step:
            means = log_avg.reduce(info, device)  # syncs the device, so the timing below is honest
            elapsed = time.perf_counter() - t_log
            rec = {
                "kind": "train",
                "epoch": epoch + 1,
                "step": s.global_step,
                **means,
                "lr": s.optimizer.param_groups[0]["lr"],
                "samples_per_s": n_log * per_rank_batch * info.world_size / max(elapsed, 1e-9),
                "data_wait_s": wait_log / n_log,
                "step_time_s": elapsed / n_log,
                **grads,
            }
            if info.is_main:
                logger.log(rec)
            bar.set_postfix(loss=f"{means.get('loss', float('nan')):.3f}", sps=f"{rec['samples_per_s']:.0f}")
            log_avg.reset()
            t_log, wait_log, n_log = time.perf_counter(), 0.0, 0
    bar.close()
    del it
    return epoch_avg.reduce(info, device)


@torch.no_grad()
def evaluate(state: "_RunState") -> dict[str, float]:
    """Validation loss: the objective in eval mode, no augmentation, fixed noise and TE draws (D9)."""
    s = state
    if s.val_loader is None:
        return {}
    module = s.step_module  # never the DDP wrapper: ranks see different numbers of val batches
    module.eval()
    avg = _Averager()
    for bi, batch in enumerate(s.val_loader):
        g = make_generator(s.cfg.train.seed, STREAM_VAL_STEP, int(batch["index"][0]))
        loss, terms = forward_loss(module, s.builder, batch, g, augment=False, amp=s.cfg.train.amp)
        avg.add(_terms(loss, terms), weight=float(len(batch["index"])))
    module.train()
    return avg.reduce(s.info, s.device)


class _RunState:
    """Everything a run holds (built by `train`)."""

    cfg: TrainConfig
    info: DistInfo
    device: torch.device
    model: Localizer
    step_module: StepModule
    train_module: nn.Module
    builder: InputBuilder
    optimizer: torch.optim.Optimizer
    scheduler: Any
    sampler: KeyedSampler
    train_loader: DataLoader
    val_loader: DataLoader | None
    global_step: int = 0
    epoch: int = 0  # completed epochs
    best_val: float = math.inf


def _save(state: _RunState, path: Path, val: dict[str, float], universal_threshold: float | None = None) -> None:
    s = state
    save_checkpoint(
        path,
        s.model,
        audio_config=s.cfg.audio,
        image_size=s.cfg.data.image_size,
        universal_threshold=universal_threshold,
        config=to_dict(s.cfg),
        epoch=s.epoch,  # completed epochs
        step=s.global_step,
        train_state={
            "best_val": s.best_val,
            "val": val,
            "optimizer": s.optimizer.state_dict(),
            "scheduler": s.scheduler.state_dict() if s.scheduler is not None else None,
            "objective": s.step_module.objective.state_dict(),
            "rng": rng_states(),
        },
    )


def _restore(state: _RunState, path: Path) -> None:
    s = state
    raw = read_checkpoint(path, map_location="cpu")
    ts = raw.get("train_state")
    if not isinstance(ts, dict):
        raise ConfigError(f"{path}: not a training checkpoint (no train_state); cannot resume from it")
    weights = load_model(path, map_location="cpu").state_dict()
    s.model.load_state_dict(weights)
    s.optimizer.load_state_dict(ts["optimizer"])
    if s.scheduler is not None and ts.get("scheduler") is not None:
        s.scheduler.load_state_dict(ts["scheduler"])
    s.step_module.objective.load_state_dict(ts.get("objective") or {})
    s.epoch, s.global_step, s.best_val = int(raw["epoch"]), int(raw["step"]), float(ts["best_val"])
    set_rng_states(ts["rng"])


def _calibrate(state: _RunState, run_dir: Path, logger: JsonlLogger, val_manifest: Path | None, progress: bool) -> None:
    """Universal threshold (D6) of the best model on the calibration split; stored in best.pt + threshold.json."""
    cfg = state.cfg
    manifest = resolve_manifest_path(cfg.data, cfg.eval.calibration_manifest, "calibration") or val_manifest
    if manifest is None:
        logger.log(kind="calibration", skipped="no calibration or validation manifest")
        return
    try:
        from sslsan.evaluation import calibrate_universal_threshold
    except ImportError as exc:  # the evaluation package is optional at this point of the pipeline
        logger.log(kind="calibration", skipped=f"sslsan.evaluation unavailable ({exc})")
        print(f"sslsan train: threshold calibration skipped: sslsan.evaluation unavailable ({exc})", file=sys.stderr)
        return
    best = run_dir / "checkpoints" / "best.pt"
    model = load_model(best, map_location=state.device)
    threshold, details = calibrate_universal_threshold(
        model, manifest, device=state.device, seed=cfg.eval.calibration_seed, mode=cfg.eval.calibration_mode,
        repetitions=cfg.eval.calibration_repetitions, progress=progress,
    )
    record = {"universal_threshold": float(threshold), "manifest": str(manifest), "manifest_sha256": manifest_hash(manifest),
              "mode": cfg.eval.calibration_mode, "seed": cfg.eval.calibration_seed, "checkpoint": str(best), "details": details}
    atomic_write_text(run_dir / "threshold.json", json.dumps(record, indent=2, default=float) + "\n")
    raw = read_checkpoint(best, map_location="cpu")
    save_checkpoint(best, model, audio_config=cfg.audio, image_size=cfg.data.image_size,
                    universal_threshold=float(threshold), config=raw.get("config"), epoch=raw.get("epoch"),
                    step=raw.get("step"), train_state=raw.get("train_state"))
    logger.log(kind="calibration", universal_threshold=float(threshold), manifest=str(manifest))


def train(
    cfg: TrainConfig,
    run_dir: str | Path,
    device: str | torch.device | None = "cpu",
    resume: bool = False,
    *,
    progress: bool | None = None,
) -> Path:
    """Train a localizer as `cfg` says; returns the run directory.

    `run_dir` receives config.yaml, run.json, log.jsonl, checkpoints/{latest,best}.pt and
    threshold.json (when calibration runs). `resume=True` continues from checkpoints/latest.pt.
    Under torchrun, every rank calls this; rank 0 writes. `progress`: tqdm bars (default: on a TTY).
    """
    cfg = resolve_train_config(cfg)
    if Path(run_dir).exists() and not Path(run_dir).is_dir():
        raise ConfigError(f"{run_dir}: exists and is not a folder (the run directory)")
    dev = resolve_device(device if device is not None else cfg.train.device)
    threads = torch.get_num_threads()
    if cfg.train.threads is not None and dev.type == "cpu":
        torch.set_num_threads(cfg.train.threads)
    try:
        return _train(cfg, Path(run_dir), dev, resume, progress)
    finally:
        torch.set_num_threads(threads)  # a process-wide setting: give the caller back its own


def _train(cfg: TrainConfig, run_dir: Path, dev: torch.device, resume: bool, progress: bool | None) -> Path:
    info = init_distributed(dev)
    if info.enabled and dev.type == "cuda":
        dev = torch.device("cuda", info.local_rank)
    if cfg.train.batch_size % info.world_size:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} is not divisible by the {info.world_size} DDP processes")
    if progress is None:
        progress = sys.stderr.isatty()
    progress = progress and info.is_main

    ckpt_dir = run_dir / "checkpoints"
    latest = ckpt_dir / "latest.pt"
    if resume:
        if not latest.exists():
            raise ConfigError(f"{latest}: nothing to resume (no latest checkpoint in this run directory)")
        check_resume_config(read_checkpoint(latest, map_location="cpu").get("config") or {}, cfg, latest)
    elif latest.exists():
        raise ConfigError(f"{run_dir}: already holds a run (checkpoints/latest.pt); pass --resume or use a new --run-dir")

    seed_everything(cfg.train.seed, cfg.train.deterministic)
    train_path = resolve_manifest_path(cfg.data, cfg.data.train_manifest, "training")
    train_m = read_split(train_path, "training")
    val_path = resolve_manifest_path(cfg.data, cfg.data.val_manifest, "validation")
    val_m = read_split(val_path, "validation") if val_path is not None else None
    if val_m is not None and len(val_m) < info.world_size:
        raise TrainDataError(f"{val_path}: {len(val_m)} samples, fewer than the {info.world_size} DDP processes")
    per_rank = cfg.train.batch_size // info.world_size
    if len(train_m) // info.world_size < per_rank:
        raise TrainDataError(f"{train_path}: {len(train_m)} samples, fewer than one batch of {cfg.train.batch_size}")

    s = _RunState()
    s.cfg, s.info, s.device = cfg, info, dev
    s.model = build_model(cfg, dev)
    objective = SSLSaNObjective(cfg.objective).to(dev)
    s.step_module = StepModule(torch.compile(s.model) if cfg.train.compile else s.model, objective)
    s.train_module = s.step_module
    if info.enabled:
        if cfg.train.sync_bn:
            s.step_module = nn.SyncBatchNorm.convert_sync_batchnorm(s.step_module)
            s.model = unwrap_model(s.step_module.model)
        s.train_module = nn.parallel.DistributedDataParallel(
            s.step_module,
            device_ids=[dev.index] if dev.type == "cuda" else None,
            find_unused_parameters=cfg.train.find_unused_parameters,
        )
    s.optimizer = build_optimizer(s.model, cfg, dev)
    s.scheduler = build_scheduler(s.optimizer, cfg)
    if resume:
        _restore(s, latest)
    s.builder = InputBuilder(cfg, dev)

    logger = JsonlLogger(run_dir / "log.jsonl", enabled=info.is_main)
    if info.is_main:
        save_config(cfg, run_dir / "config.yaml")
        run_json = run_dir / "run.json"
        record = json.loads(run_json.read_text()) if resume and run_json.exists() else {}
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        record.setdefault("started", now)
        record.setdefault("sessions", []).append(
            {"at": now, "resumed_from_epoch": s.epoch if resume else None, "device": str(dev), "world_size": info.world_size,
             "git_sha": git_sha(), "sslsan": __version__, "torch": torch.__version__, "python": platform.python_version(),
             "argv": sys.argv}
        )
        record.update({"seed": cfg.train.seed, "git_sha": git_sha(),
                       "manifests": {"train": _manifest_record(train_m), "val": _manifest_record(val_m)}})
        atomic_write_text(run_json, json.dumps(record, indent=2) + "\n")
        logger.log(kind="start", epoch=s.epoch, step=s.global_step, device=str(dev), world_size=info.world_size,
                   resumed=resume, train_samples=len(train_m), val_samples=len(val_m) if val_m else 0)

    train_cache = val_cache = None
    if cfg.data.cache_spectrograms:
        t0 = time.perf_counter()
        fe = s.builder.frontend
        train_cache, source = load_or_compute_power_cache(train_m, cfg, fe, dev, info, progress=progress)
        val_cache = load_or_compute_power_cache(val_m, cfg, fe, dev, info, progress=progress)[0] if val_m else None
        logger.log(kind="mel_cache", clips=len(train_m) + (len(val_m) if val_m else 0), source=source,
                   mib=(train_cache.numel() + (val_cache.numel() if val_cache is not None else 0)) * 4 / 2**20,
                   seconds=time.perf_counter() - t0)
    with_noise = s.builder.need_noise
    train_items = TrainItems(train_m, cfg, train=True, power_cache=train_cache, with_noise=with_noise)
    s.sampler = KeyedSampler(train_items, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                             seed=cfg.train.seed, drop_last=True)
    s.train_loader = make_loader(train_items, s.sampler, per_rank, cfg, dev, drop_last=True)
    s.val_loader = None
    if val_m is not None:
        val_items = TrainItems(val_m, cfg, train=False, power_cache=val_cache, with_noise=with_noise)
        shard = list(range(info.rank, len(val_m), info.world_size))
        val_bs = (cfg.train.val_batch_size or cfg.train.batch_size) // info.world_size or 1
        s.val_loader = make_loader(val_items, shard, val_bs, cfg, dev, drop_last=False)

    t_start = time.perf_counter()
    start_epoch = s.epoch
    try:
        for epoch in range(start_epoch, cfg.train.epochs):
            t_epoch = time.perf_counter()
            train_means = train_one_epoch(s, epoch, logger, progress)
            t_val = time.perf_counter()
            val = evaluate(s)
            val_s = time.perf_counter() - t_val
            s.epoch = epoch + 1
            monitored = val.get("loss", train_means.get("loss", math.nan))
            if s.scheduler is not None:
                s.scheduler.step(monitored)
            is_best = monitored < s.best_val
            if is_best:
                s.best_val = monitored
            epoch_s = time.perf_counter() - t_epoch
            done = s.epoch - start_epoch
            eta_s = (time.perf_counter() - t_start) / done * (cfg.train.epochs - s.epoch)
            if info.is_main:
                _save(s, latest, val)
                if is_best:
                    _save(s, ckpt_dir / "best.pt", val)
                logger.log(kind="epoch", epoch=s.epoch, step=s.global_step, train=train_means,
                           val=val, monitored="val_loss" if val else "train_loss", best=is_best, best_val=s.best_val,
                           lr=s.optimizer.param_groups[0]["lr"], epoch_s=epoch_s, val_s=val_s)
                vtxt = f"val loss {val['loss']:.4f}" if val else "no val split"
                print(f"epoch {s.epoch}/{cfg.train.epochs}: train loss {train_means.get('loss', math.nan):.4f}, {vtxt}"
                      f"{' (best)' if is_best else ''}, lr {s.optimizer.param_groups[0]['lr']:.2e}, "
                      f"{epoch_s:.0f} s, eta {eta_s / 60:.1f} min", file=sys.stderr, flush=True)
            barrier(info)
        # rank 0 alone; the other ranks are done (no collective follows, so no barrier can time out)
        if info.is_main and cfg.eval.calibrate_threshold and (ckpt_dir / "best.pt").exists():
            _calibrate(s, run_dir, logger, val_path, progress)
    finally:
        logger.close()
    return run_dir
