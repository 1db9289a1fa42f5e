"""The SSL-TIE / SSL-SaN audio-visual localizer (docs/model.md §3.2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sslsan.methods.base import AVModel
from sslsan.models.backbones import get_backbone
from sslsan.models.resnet import init_weights


@dataclass
class ModelConfig:
    """Architecture of the two towers (sslsan.models.backbones names them; both ResNet-18 in the paper)."""

    width: float = 1.0  # channel multiplier of both towers (1.0 = the paper, 512-d features)
    image_backbone: str = "resnet18"  # a name registered in sslsan.models.backbones
    audio_backbone: str = "resnet18"


class Localizer(AVModel):
    """Image tower `imgnet` (3-channel) and audio tower `audnet` (1-channel spectrogram), built by the
    backbones `cfg` names.

    S(a, v)[h, w] = <v[:, h, w], a>, the cosine between the L2-normalised image feature at each
    position and the L2-normalised, globally max-pooled audio embedding; it lies in [0, 1] because
    both are post-ReLU. `forward` encodes (use it under DDP so gradients are synchronised).
    """

    def __init__(self, cfg: ModelConfig = ModelConfig(), generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        image, audio = get_backbone(cfg.image_backbone), get_backbone(cfg.audio_backbone)
        self.imgnet = image.build(3, cfg.width)
        self.audnet = audio.build(1, cfg.width)
        if self.imgnet.out_channels != self.audnet.out_channels:
            raise ValueError(f"the image tower gives {self.imgnet.out_channels} channels, the audio tower "
                             f"{self.audnet.out_channels}: the similarity needs the same number")
        for tower, backbone in ((self.imgnet, image), (self.audnet, audio)):  # image first: the draws of one generator
            if backbone.ssl_tie_init:
                init_weights(tower, generator)

    @property
    def embed_dim(self) -> int:
        return self.imgnet.out_channels

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, C, H/16, W/16), L2-normalised over C (float32 even under autocast)."""
        # fp32 from here on: cosine maps near the mask thresholds need more than bf16's 8 bits.
        return F.normalize(self.imgnet(images).float(), dim=1)

    def audio_embedding(self, specs: torch.Tensor, *, with_norm: bool = False):
        """(B, 1, F, T) spectrograms -> (B, C): global max pool of layer4, L2-normalised.

        `with_norm=True` also returns the (B,) norms before normalisation (a zero norm means the
        embedding, and so every map made with it, is exactly zero).
        """
        pooled = self.audnet(specs).amax(dim=(2, 3)).float()
        emb = F.normalize(pooled, dim=1)
        return (emb, pooled.detach().norm(dim=1)) if with_norm else emb
