"""torch Datasets over manifests. They read files named in the manifest; they never list folders."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import Dataset

from sslsan.audio import AudioConfig, load_audio, place_window, warn_if_short
from sslsan.data.manifest import Manifest, read_manifest
from sslsan.data.transforms import load_image


class AVDataset(Dataset):
    """(image, waveform) pairs of a manifest.

    Item: {"index": i, "image": image_transform(uint8 (3, H, W)) (or the uint8 image without a
    transform), "wave": float32 (audio.tile_samples,)}: the clip at audio.sample_rate, mono, the window
    `audio.window` selects, tiled / truncated to tile_seconds by the SSL-TIE rule so every item has the
    same length.
    """

    def __init__(
        self,
        manifest: Manifest | str | Path,
        image_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        audio: AudioConfig | None = None,
        load_images: bool = True,
    ):
        self.manifest = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
        self.image_transform = image_transform
        self.audio = audio or AudioConfig()
        self.load_images = load_images

    def __len__(self) -> int:
        return len(self.manifest)

    def load_clip(self, i: int) -> torch.Tensor:
        """The clip as read (at audio.sample_rate, mono), untiled; warns when tiling would mostly repeat it."""
        path = self.manifest.resolve(self.manifest[i].audio)
        wave = load_audio(path, sample_rate=self.audio.sample_rate)
        warn_if_short(wave.shape[-1], self.audio.tile_samples, self.audio.sample_rate, path)
        return wave

    def load_wave(self, i: int) -> torch.Tensor:
        return place_window(self.load_clip(i), self.audio)

    def load_image(self, i: int) -> torch.Tensor:
        img = load_image(self.manifest.resolve(self.manifest[i].image))
        return self.image_transform(img) if self.image_transform is not None else img

    def __getitem__(self, i: int) -> dict:
        item = {"index": i, "wave": self.load_wave(i)}
        if self.load_images:
            item["image"] = self.load_image(i)
        return item
