"""Training data: the manifests of a run, the keyed sampler, training items, loaders and the mel cache.

The loader workers only do per-file work: decode the frame and cut the random-resized crop on uint8
(its draws travel with it, sslsan.data.augment), read the clip untiled, and draw the noise clip when
`data.noise_on=loader`. Draws are keyed by (seed, stream, epoch, sample index) (sslsan.engine.streams),
whichever worker serves the sample. `data.cache_spectrograms` replaces the clip by its mel power,
computed once per run (or read back from `.sslsan_cache/` beside the manifest).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate
from tqdm.auto import tqdm

from sslsan.audio import noise, window_segment
from sslsan.config import ConfigError, to_dict
from sslsan.data.augment import decode_crop
from sslsan.data.datasets import AVDataset
from sslsan.data.manifest import Manifest, ManifestError, manifest_hash, read_manifest
from sslsan.data.transforms import ImageEvalTransform, ImageTrainTransform
from sslsan.engine.distributed import DistInfo, barrier
from sslsan.engine.streams import STREAM_IMAGE, STREAM_NOISE, STREAM_VAL_NOISE
from sslsan.engine.train_config import DataConfig, TrainConfig
from sslsan.utils.io import atomic_torch_save
from sslsan.utils.logging import JsonlLogger
from sslsan.utils.seed import make_generator, seed_worker

SUGGEST_DATA = "create data with `sslsan data synth --out DIR` (embedded benchmark) or `sslsan prepare NAME --out DIR`"


class TrainDataError(ValueError):
    """Training data that is missing, empty or too small; the message names the path."""


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


def read_training_splits(cfg: TrainConfig, world_size: int) -> tuple[Manifest, Manifest | None]:
    """The training and validation manifests of `cfg`, checked: files present, at least one batch (and one
    validation sample) per DDP process."""
    train_path = resolve_manifest_path(cfg.data, cfg.data.train_manifest, "training")
    train_m = read_split(train_path, "training")
    val_path = resolve_manifest_path(cfg.data, cfg.data.val_manifest, "validation")
    val_m = read_split(val_path, "validation") if val_path is not None else None
    if val_m is not None and len(val_m) < world_size:
        raise TrainDataError(f"{val_path}: {len(val_m)} samples, fewer than the {world_size} DDP processes")
    if len(train_m) // world_size < cfg.train.batch_size // world_size:
        raise TrainDataError(f"{train_path}: {len(train_m)} samples, fewer than one batch of {cfg.train.batch_size}")
    return train_m, val_m


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
            item["wave"] = window_segment(self.base.load_clip(i), self.audio)
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
    manifest: Manifest, cfg: TrainConfig, frontend: torch.nn.Module, device: torch.device, *, progress: bool
) -> torch.Tensor:
    """Spectrogram power of every clip of `manifest`, (N, 1, n_bins, T) float32 on the CPU in shared memory."""
    n_bins, n_frames = frontend.n_bins, frontend.n_frames
    gib = len(manifest) * n_bins * n_frames * 4 / 2**30
    if gib > cfg.data.cache_max_gib:
        raise ConfigError(
            f"data.cache_spectrograms: {len(manifest)} clips x {n_bins}x{n_frames} bins need {gib:.1f} GiB "
            f"(> data.cache_max_gib={cfg.data.cache_max_gib}); turn the cache off or raise the limit"
        )
    ds = AVDataset(manifest, image_transform=None, audio=cfg.audio, load_images=False)
    # decoding dominates and the main process mostly waits: use every core, whatever training uses
    workers = max(cfg.data.num_workers, min(os.cpu_count() or 1, 8))
    loader = DataLoader(ds, batch_size=32, shuffle=False, num_workers=workers, worker_init_fn=seed_worker)
    cache = torch.empty(len(manifest), 1, n_bins, n_frames, dtype=torch.float32)
    with torch.no_grad():
        for batch in tqdm(loader, desc=f"mel cache {manifest.path.name}", unit="batch", disable=not progress, leave=False):
            power = frontend.power(batch["wave"].to(device, non_blocking=True)).float()
            cache[batch["index"]] = power.cpu()
    return cache.share_memory_()


# front-end settings the cached power depends on (augmentation and negatives do not matter); a front-end
# kind's own settings are all its config's fields but these
_NOT_CACHE_KEYS = ("spec_augment", "specaug_p", "time_mask", "freq_mask", "negatives_in_db", "noise_clip", "clip_seconds")


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
                      **{k: v for k, v in audio.items() if k not in _NOT_CACHE_KEYS}, "v": 1}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return manifest.path.parent / ".sslsan_cache" / f"mel_{manifest.path.stem}_{digest}.pt"


def load_or_compute_power_cache(
    manifest: Manifest, cfg: TrainConfig, frontend: torch.nn.Module, device: torch.device, info: DistInfo,
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
    want = (len(manifest), 1, frontend.n_bins, frontend.n_frames)
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
    """A DataLoader over `items` with the data config's workers, pinning and prefetching."""
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


def build_loaders(
    cfg: TrainConfig, train_m: Manifest, val_m: Manifest | None, info: DistInfo, device: torch.device, *,
    frontend: torch.nn.Module, with_noise: bool, logger: JsonlLogger, progress: bool,
) -> tuple[KeyedSampler, DataLoader, DataLoader | None]:
    """The keyed sampler and loader of the training split (sharded over DDP ranks, whole batches) and the
    loader of this rank's share of the validation split; with the mel cache when `data.cache_spectrograms`."""
    train_cache = val_cache = None
    if cfg.data.cache_spectrograms:
        t0 = time.perf_counter()
        train_cache, source = load_or_compute_power_cache(train_m, cfg, frontend, device, info, progress=progress)
        val_cache = load_or_compute_power_cache(val_m, cfg, frontend, device, info, progress=progress)[0] if val_m else None
        logger.log(kind="mel_cache", clips=len(train_m) + (len(val_m) if val_m else 0), source=source,
                   mib=(train_cache.numel() + (val_cache.numel() if val_cache is not None else 0)) * 4 / 2**20,
                   seconds=time.perf_counter() - t0)
    train_items = TrainItems(train_m, cfg, train=True, power_cache=train_cache, with_noise=with_noise)
    sampler = KeyedSampler(train_items, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                           seed=cfg.train.seed, drop_last=True)
    train_loader = make_loader(train_items, sampler, cfg.train.batch_size // info.world_size, cfg, device, drop_last=True)
    val_loader = None
    if val_m is not None:
        val_items = TrainItems(val_m, cfg, train=False, power_cache=val_cache, with_noise=with_noise)
        shard = list(range(info.rank, len(val_m), info.world_size))
        val_bs = (cfg.train.val_batch_size or cfg.train.batch_size) // info.world_size or 1
        val_loader = make_loader(val_items, shard, val_bs, cfg, device, drop_last=False)
    return sampler, train_loader, val_loader
