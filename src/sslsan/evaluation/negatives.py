"""Negative audio for evaluation (DECISIONS D1, D7; docs/metrics.md §4-5, docs/datasets.md §5).

* silence: an all-zero waveform; noise: an N(0, 1) waveform drawn per (seed, repetition seed, sample).
  Both go through the same front-end as positives (waveform → spectrogram → log) unless the audio config
  says `negatives_in_db=False` (the vssl_eval convention: linear power reaches the model).
* offscreen: the audio of another test clip. For (seed, repetition seed, sample index) a seeded draw
  picks a category uniformly among the manifest's categories other than the sample's own and other
  than every category visible in its image (`scene_categories`), then a clip of that category
  uniformly. The assignment is written as JSON next to the results so any run can be repeated.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sslsan.audio import AudioConfig, noise, silence
from sslsan.data.manifest import Manifest, manifest_hash
from sslsan.evaluation.errors import EvaluationError
from sslsan.evaluation.eval_config import EvaluationConfig
from sslsan.utils.io import atomic_write_text
from sslsan.utils.seed import make_generator, numpy_rng

log = logging.getLogger(__name__)

NEGATIVE_TYPES = ("silence", "noise", "offscreen")

# The seeds vssl_eval loops over (docs/metrics.md §5); repetition r uses REPETITION_SEEDS[r].
REPETITION_SEEDS = (1234, 2345, 3456, 4567, 5678, 6789, 7890, 8901, 9012, 9999)


def repetition_seeds(repetitions: int) -> list[int]:
    """Seeds of the R repetitions: the reference's ten, then 10000 + r beyond them."""
    if repetitions < 1:
        raise EvaluationError(f"repetitions must be >= 1, got {repetitions}")
    return [REPETITION_SEEDS[r] if r < len(REPETITION_SEEDS) else 10000 + r for r in range(repetitions)]


def negative_spectrograms(
    kind: str,
    indices: list[int] | np.ndarray,
    frontend: nn.Module,
    *,
    seed: int = 0,
    rep_seed: int = REPETITION_SEEDS[0],
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Spectrograms (B, 1, F, T) of silence or noise for the samples `indices` (D1).

    Noise for sample i is drawn from a generator keyed by (seed, rep_seed, i), so it does not depend
    on the batch it falls in. The waveform is `tile_samples` long (the positive clips' length after
    tiling). `frontend.cfg.negatives_in_db=False` returns the linear power instead of its log.
    """
    cfg: AudioConfig = frontend.cfg
    n = cfg.tile_samples
    if kind == "silence":
        waves = silence(n, device=device).unsqueeze(0).repeat(len(indices), 1)
    elif kind == "noise":
        waves = torch.stack([noise(n, make_generator(seed, rep_seed, int(i)), clip=cfg.noise_clip) for i in indices]).to(device)
    else:
        raise ValueError(f"unknown waveform negative {kind!r}; expected 'silence' or 'noise'")
    return frontend(waves, log=cfg.negatives_in_db)


@dataclass
class OffscreenAssignment:
    """index[r, i] = the sample whose audio is sample i's offscreen sound in repetition r."""

    index: np.ndarray  # (R, N) int64
    seeds: list[int]  # repetition seeds
    seed: int
    fallback: int = 0  # draws that had no eligible category and fell back to any other clip
    meta: dict = field(default_factory=dict)

    def to_json(self, manifest: Manifest) -> dict:
        ids = [s.id for s in manifest]
        return {
            "rule": "DECISIONS D7: seeded class-uniform draw over categories other than the sample's own "
            "and its scene_categories, then a uniform clip of that category",
            "seed": self.seed,
            "repetition_seeds": list(self.seeds),
            "manifest": str(manifest.path),
            "manifest_sha256": manifest_hash(manifest.path),
            "fallback_draws": self.fallback,
            "ids": ids,
            "offscreen_ids": [[ids[j] for j in row] for row in self.index.tolist()],
        }

    def save(self, path: str | Path, manifest: Manifest) -> Path:
        obj = self.to_json(manifest)
        # one line per key, one line per repetition: readable and diff-able at 5,000 x 10
        lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in obj.items() if k != "offscreen_ids"]
        rows = ",\n".join(f"  {json.dumps(row)}" for row in obj["offscreen_ids"])
        lines.append(f' "offscreen_ids": [\n{rows}\n ]')
        return atomic_write_text(path, "{\n" + ",\n".join(lines) + "\n}\n")


def assign_offscreen(manifest: Manifest, repetitions: int = EvaluationConfig.repetitions,
                     seed: int = EvaluationConfig.seed) -> OffscreenAssignment:
    """The offscreen clip of every (repetition, sample) pair, per DECISIONS D7.

    A sample with no eligible category (e.g. a single-category manifest) falls back to a uniform
    draw over all other clips; such draws are counted in `fallback` and logged.
    """
    n = len(manifest)
    if n < 2:
        raise EvaluationError(f"{manifest.path}: offscreen negatives need at least 2 samples, found {n}")
    seeds = repetition_seeds(repetitions)
    by_cat: dict[str, list[int]] = {}
    for i, s in enumerate(manifest):
        if s.category is not None:
            by_cat.setdefault(s.category, []).append(i)
    cats = sorted(by_cat)
    index = np.empty((len(seeds), n), dtype=np.int64)
    fallback = 0
    for i, s in enumerate(manifest):
        banned = set(s.scene_categories) | ({s.category} if s.category is not None else set())
        eligible = [c for c in cats if c not in banned]
        for r, rs in enumerate(seeds):
            rng = numpy_rng(seed, rs, i)
            if eligible:
                members = by_cat[eligible[int(rng.integers(len(eligible)))]]
                index[r, i] = members[int(rng.integers(len(members)))]
            else:
                j = int(rng.integers(n - 1))
                index[r, i] = j + (j >= i)  # any clip but the sample's own
                fallback += 1
    if fallback:
        log.warning("%s: %d offscreen draws had no eligible category and used any other clip", manifest.path, fallback)
    return OffscreenAssignment(index=index, seeds=seeds, seed=seed, fallback=fallback)


def load_offscreen_assignment(path: str | Path, manifest: Manifest) -> OffscreenAssignment:
    """Read an assignment written by `OffscreenAssignment.save` back for the same manifest."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
        ids = [s.id for s in manifest]
        if obj["ids"] != ids:
            raise EvaluationError(f"{path}: offscreen assignment was made for a different manifest than {manifest.path}")
        pos = {sid: k for k, sid in enumerate(ids)}
        index = np.array([[pos[j] for j in row] for row in obj["offscreen_ids"]], dtype=np.int64)
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise EvaluationError(f"{path}: not a readable offscreen assignment ({exc})") from None
    return OffscreenAssignment(index=index, seeds=list(obj["repetition_seeds"]), seed=int(obj["seed"]),
                               fallback=int(obj.get("fallback_draws", 0)))
