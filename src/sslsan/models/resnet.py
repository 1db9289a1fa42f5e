"""ResNet-18 towers of SSL-TIE (docs/model.md §3.1): layer4 stride 1, no pooling/fc in the forward.

Parameter names follow torchvision's ResNet (`conv1`, `bn1`, `layer1.0.conv1`, ...,
`layer4.0.downsample.0`) so that the original checkpoints map onto these modules by name; the
original's unused modules (`conv1_flow`, `fc`, the other modality's stem) are not built.
"""

from __future__ import annotations

import math

import torch
from torch import nn

STAGE_CHANNELS = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 1)  # layer4 stride 1: total stride 16, a 14x14 map at 224 px
FEATURE_STRIDE = 2 * 2 * STAGE_STRIDES[0] * STAGE_STRIDES[1] * STAGE_STRIDES[2] * STAGE_STRIDES[3]  # stem conv + maxpool


def scaled_channels(width: float) -> tuple[int, ...]:
    """Channels of the four stages for a width multiplier (64·w, 128·w, 256·w, 512·w)."""
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    return tuple(max(1, int(round(c * width))) for c in STAGE_CHANNELS)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual; a 1x1 conv + BN shortcut where shape changes."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18Tower(nn.Module):
    """ResNet-18 trunk returning the post-ReLU layer4 map (B, 512·w, H/16, W/16).

    `strides`: of the four stages; torchvision's (1, 2, 2, 2) gives its ResNet-18 (total stride 32, the
    towers of EZ-VSL, SLAVC and FNAC) with the same parameter names.
    """

    def __init__(self, in_channels: int, width: float = 1.0, strides: tuple[int, int, int, int] = STAGE_STRIDES):
        super().__init__()
        chans = scaled_channels(width)
        self.in_channels = in_channels
        self.out_channels = chans[-1]
        self.stride = 4 * math.prod(strides)  # stem conv and max-pool, then the stages
        self.conv1 = nn.Conv2d(in_channels, chans[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(chans[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        prev = chans[0]
        for i, (ch, stride) in enumerate(zip(chans, strides), start=1):
            self.add_module(f"layer{i}", nn.Sequential(BasicBlock(prev, ch, stride), BasicBlock(ch, ch)))
            prev = ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def init_weights(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """docs/model.md §3.3 as it ends up: conv weights kaiming-normal (fan_out, relu); BN weight ~ N(1, 0.02), bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
        elif isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.normal_(1.0, 0.02, generator=generator)
                m.bias.zero_()
