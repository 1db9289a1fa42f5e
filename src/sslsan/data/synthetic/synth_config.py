"""`SynthConfig`: sizes and knobs of one generated benchmark, its presets, and the categories it uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sslsan.data.synthetic.categories import CATEGORY_LIBRARY, Category
from sslsan.utils.constants import SAMPLE_RATE


class SynthError(ValueError):
    """An invalid generator setting or output folder; the message says which and why."""


def categories(n: int = 12) -> tuple[Category, ...]:
    """The first `n` categories of the library."""
    if not 2 <= n <= len(CATEGORY_LIBRARY):
        raise SynthError(f"n_categories must be between 2 and {len(CATEGORY_LIBRARY)}, got {n}")
    return CATEGORY_LIBRARY[:n]



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
