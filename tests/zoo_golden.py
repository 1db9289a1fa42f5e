"""Reading the model zoo's golden files (tests/golden/golden_zoo_<method>.*, made by make_zoo_goldens.py):
the seeded weights and inputs rebuilt from the recipe (checked against the stored fingerprints), written
as an original-format checkpoint for sslsan's reader."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from conftest import reference_file
from zoo_recipe import draw_inputs, fingerprint, recipe_state_dict


@dataclass
class Golden:
    meta: dict
    ref: dict[str, np.ndarray]
    weights: dict[str, torch.Tensor]  # the original model's state dict (its names, no prefix)
    images: torch.Tensor
    specs: torch.Tensor

    def tensor(self, name: str) -> torch.Tensor:
        return torch.from_numpy(self.ref[name])

    def write_original(self, path: Path, weights_key: str, top_level: dict, prefix: str = "module.") -> Path:
        """The weights as the original training code saves them: {weights_key: state dict, **top_level}."""
        torch.save({weights_key: {prefix + k: v for k, v in self.weights.items()}, **top_level}, path)
        return path


def load_golden(name: str) -> Golden:
    meta = json.loads(reference_file(f"golden_zoo_{name}.json").read_text())
    ref = dict(np.load(reference_file(f"golden_zoo_{name}.npz")))
    weights, rng = recipe_state_dict({e["key"]: tuple(e["shape"]) for e in meta["keys"]}, meta["seed"])
    assert fingerprint(weights)["sha256"] == meta["weights_fingerprint"]["sha256"], "weight recipe rebuilt wrongly"
    images, specs = draw_inputs(rng, meta["inputs"]["specs"][-1])
    assert fingerprint({"images": images, "specs": specs})["sha256"] == meta["inputs"]["fingerprint"]["sha256"]
    return Golden(meta, ref, {k: torch.from_numpy(v) for k, v in weights.items()}, torch.from_numpy(images),
                  torch.from_numpy(specs))


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}"
    return float((a.double() - b.double()).abs().max())


def assert_close(name: str, ours: torch.Tensor, ref: torch.Tensor, tol: float, errors: dict[str, float]) -> None:
    errors[name] = err = max_abs(ours, ref)
    assert err <= tol, f"{name}: max abs difference {err:.3g} > {tol}"
