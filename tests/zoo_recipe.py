"""The seeded-weights recipe of the model zoo's golden files (pure NumPy: imported by the tests and by
tests/golden/make_zoo_goldens.py, which runs the original code in another venv).

It is the recipe of tests/golden/golden_model_shared.md: one draw per state-dict entry in sorted key
order from numpy.random.default_rng(seed); BatchNorm running_var and weight U(0.5, 1.5), running_mean
N(0, 0.1), 1-d biases N(0, 0.1), conv/linear weights N(0, 1)·sqrt(2 / fan_in), counters 0; float64
cast once to float32. The inputs continue the same generator.
"""

from __future__ import annotations

import hashlib

import numpy as np

BATCH = 2
IMAGE_SHAPE = (BATCH, 3, 224, 224)


def recipe_state_dict(shapes: dict[str, tuple[int, ...]], seed: int) -> tuple[dict[str, np.ndarray], np.random.Generator]:
    """-> (state dict as arrays, the generator after the last weight)."""
    rng = np.random.default_rng(seed)
    out = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        if key.endswith("num_batches_tracked"):
            out[key] = np.zeros((), dtype=np.int64)
            continue
        if key.endswith("running_var"):
            v = rng.uniform(0.5, 1.5, size=shape)
        elif key.endswith("running_mean"):
            v = rng.normal(0.0, 0.1, size=shape)
        elif key.endswith("weight") and len(shape) == 1:
            v = rng.uniform(0.5, 1.5, size=shape)
        elif key.endswith("bias") and len(shape) == 1:
            v = rng.normal(0.0, 0.1, size=shape)
        else:
            v = rng.normal(0.0, 1.0, size=shape) * np.sqrt(2.0 / np.prod(shape[1:]))
        out[key] = np.asarray(v, dtype=np.float64).astype(np.float32)
    return out, rng


def draw_inputs(rng: np.random.Generator, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (2, 3, 224, 224) ~ N(0, 1), then normalised log spectrograms (2, 1, 257, n_frames) ~ N(-1, 0.3)."""
    images = rng.normal(0.0, 1.0, size=IMAGE_SHAPE).astype(np.float32)
    specs = rng.normal(-1.0, 0.3, size=(BATCH, 1, 257, n_frames)).astype(np.float32)
    return images, specs


def fingerprint(arrays: dict[str, np.ndarray]) -> dict:
    """sha256 over the little-endian bytes of the arrays in sorted key order, and the sum of |values|."""
    h, total = hashlib.sha256(), 0.0
    for key in sorted(arrays):
        a = np.asarray(arrays[key])
        h.update(a.astype(a.dtype.newbyteorder("<")).tobytes())
        total += float(np.abs(a.astype(np.float64)).sum())
    return {"sha256": h.hexdigest(), "sum_abs": total}
