"""One place for seeding: Python, NumPy, torch, and DataLoader workers."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python/numpy/torch (all devices). `deterministic` also asks torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def seed_worker(worker_id: int) -> None:
    """`DataLoader(worker_init_fn=seed_worker)`: derive python/numpy seeds from torch's per-worker seed.

    torch seeds each worker as base_seed + worker_id, but numpy and `random` inherit the parent's
    state in every worker unless reseeded, which makes "random" augmentations identical across workers.
    """
    seed = torch.initial_seed() % (2**32)
    random.seed(seed)
    np.random.seed(seed)


def make_generator(seed: int, *keys: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch Generator seeded from (seed, *keys), e.g. (run seed, sample index): order-independent."""
    ss = np.random.SeedSequence([int(seed), *[int(k) for k in keys]])
    g = torch.Generator(device=device)
    g.manual_seed(int(ss.generate_state(1, dtype=np.uint64)[0] & 0x7FFF_FFFF_FFFF_FFFF))
    return g


def numpy_rng(seed: int, *keys: int) -> np.random.Generator:
    """A NumPy Generator seeded from (seed, *keys)."""
    return np.random.default_rng([int(seed), *[int(k) for k in keys]])
