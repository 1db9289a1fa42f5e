"""The inputs and reading of tests/golden/golden_released_<method>.* (made by make_released_goldens.py):
media drawn from the zoo recipe's generator after the seeded weights (pure NumPy, shared with the script),
weights rebuilt and checked against the stored fingerprints."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

from zoo_recipe import fingerprint, recipe_state_dict

SR = 16000
N_CLIPS = 2
IMAGE_SIZE = 224


def draw_media(rng: np.random.Generator, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """N_CLIPS uint8 RGB images (224 x 224: every resize is the identity) and waveforms at 16 kHz: a chirp
    and tone with noise, and noise alone; float32 in [-1, 1]."""
    images = rng.integers(0, 256, size=(N_CLIPS, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    n = int(SR * seconds)
    t = np.arange(n) / SR
    tone = 0.3 * np.sin(2 * np.pi * (300 * t + 40 * t**2)) + 0.2 * np.sin(2 * np.pi * 880 * t) + 0.05 * rng.normal(size=n)
    waves = np.stack([tone, 0.2 * rng.normal(size=n)])
    return images, np.clip(waves, -1.0, 1.0).astype(np.float32)


@dataclass
class ReleasedGolden:
    meta: dict
    ref: dict[str, np.ndarray]
    weights: dict[str, torch.Tensor]  # the recipe's state dict (the original model's names)
    images: np.ndarray  # (N, 224, 224, 3) uint8
    waves: np.ndarray  # (N, samples) float32 at 16 kHz

    def tensor(self, name: str) -> torch.Tensor:
        return torch.from_numpy(self.ref[name])


def load_released_golden(name: str) -> ReleasedGolden:
    from conftest import reference_file

    meta = json.loads(reference_file(f"golden_released_{name}.json").read_text())
    ref = dict(np.load(reference_file(f"golden_released_{name}.npz")))
    weights, rng = recipe_state_dict({e["key"]: tuple(e["shape"]) for e in meta["keys"]}, meta["seed"])
    assert fingerprint(weights)["sha256"] == meta["weights_fingerprint"]["sha256"], "weight recipe rebuilt wrongly"
    images, waves = draw_media(rng, meta["inputs"]["waves"][-1] / SR)
    assert fingerprint({"images": images, "waves": waves})["sha256"] == meta["inputs"]["fingerprint"]["sha256"]
    return ReleasedGolden(meta, ref, {k: torch.from_numpy(v) for k, v in weights.items()}, images, waves)
