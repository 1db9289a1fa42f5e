"""Backbone registry: a tower's name -> how to build it, so a model config (and a checkpoint) names its towers.

A tower maps (B, in_channels, H, W) to a feature map (B, C, H/stride, W/stride) and has an
`out_channels` attribute (C). The localizer L2-normalises the image tower's map at every position
and max-pools the audio tower's map into one vector, so C must be the same for both towers; SSL-TIE's
towers end in a ReLU, which keeps every similarity in [0, 1] (the metrics' thresholds assume it).

Adding a tower: `register_backbone("name", build, stride=S)` with `build(in_channels, width) ->
nn.Module`, then `ModelConfig(image_backbone="name")` (or the config key `model.image_backbone=name`).
Checkpoints store the names; loading one needs the same registration (import the module that does it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from sslsan.models.resnet import FEATURE_STRIDE, ResNet18Tower


@dataclass(frozen=True)
class Backbone:
    """How to build one kind of tower."""

    build: Callable[[int, float], nn.Module]  # (in_channels, width multiplier) -> tower with `out_channels`
    stride: int  # input pixels per feature-map cell (the smallest usable image size)
    ssl_tie_init: bool = True  # the localizer re-initialises its Conv2d/BatchNorm2d layers as SSL-TIE does


BACKBONES: dict[str, Backbone] = {"resnet18": Backbone(ResNet18Tower, FEATURE_STRIDE)}


def register_backbone(name: str, build: Callable[[int, float], nn.Module], *, stride: int,
                      ssl_tie_init: bool = True) -> None:
    """Make `name` usable as `ModelConfig.image_backbone` / `audio_backbone` (re-registering replaces it)."""
    BACKBONES[name] = Backbone(build, int(stride), ssl_tie_init)


def get_backbone(name: str) -> Backbone:
    """The registered backbone `name`; a ValueError naming the registered ones when there is none."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; registered: {', '.join(BACKBONES)} "
                         "(sslsan.models.register_backbone adds one)")
    return BACKBONES[name]
