"""The embedded benchmark: procedural audio-visual scenes written to disk in real formats.

Every category has a visual identity (shape family, hue, surface pattern) and an acoustic identity
(a sound recipe: harmonic tones, inharmonic strikes, band-limited noise, chirps, clicks; with AM/FM
and a rhythm). A scene is a cluttered background with 1-3 objects; the audio clip mixes the sounds
of the *sounding* objects with coloured ambience noise at a random SNR, and the other objects are
silent distractors. Splits and protocols (file names from `sslsan.data.registry`):

  train.jsonl / val.jsonl   1-3 objects, 1 or 2 of them sounding
  test_vggss.jsonl          exactly one sounding object (+ up to two silent distractors), its box
  test_is3.jsonl            two objects per image; two samples per image sharing `image` and
                            `group`, each with the audio, box and mask of the object that makes it

Modules: `categories` (what each category looks and sounds like), `synth_config` (SynthConfig,
presets), `sound` (sound synthesis and mixing), `scene` (scene drawing and masks), `writer` (one
item, the whole dataset). Each item draws its randomness from `numpy_rng(seed, split, index)`, so the
output is identical for any number of worker processes, and the same seed gives byte-identical files.
"""

from __future__ import annotations

import importlib
from typing import Any

from sslsan.data.synthetic.categories import CATEGORY_LIBRARY, Category, SoundRecipe
from sslsan.data.synthetic.synth_config import (
    PRESETS,
    SynthConfig,
    SynthError,
    categories,
    preset_config,
)

# drawing, synthesis and writing load on first use (they need torch): `sslsan data synth --help` stays fast
_LAZY = {
    **{n: "sslsan.data.synthetic.scene" for n in ("Scene", "SceneObject", "make_scene", "mask_box", "render_scene")},
    **{n: "sslsan.data.synthetic.sound" for n in ("ambience", "clip_for", "mix_clip", "synthesize_sound")},
    **{n: "sslsan.data.synthetic.writer" for n in ("GENERATOR", "SPLIT_MANIFESTS", "default_workers", "generate_dataset",
                                                  "generate_item")},
}

__all__ = ["CATEGORY_LIBRARY", "Category", "SoundRecipe", "PRESETS", "SynthConfig", "SynthError", "categories",
           "preset_config", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sslsan.data.synthetic' has no attribute {name!r}")
