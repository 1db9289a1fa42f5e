"""The SSL-TIE / SSL-SaN audio-visual localizer (docs/model.md §3.2)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sslsan.models.backbones import get_backbone
from sslsan.models.resnet import init_weights

TensorOrTensors = torch.Tensor | Sequence[torch.Tensor] | None


@dataclass
class ModelConfig:
    """Architecture of the two towers (sslsan.models.backbones names them; both ResNet-18 in the paper)."""

    width: float = 1.0  # channel multiplier of both towers (1.0 = the paper, 512-d features)
    image_backbone: str = "resnet18"  # a name registered in sslsan.models.backbones
    audio_backbone: str = "resnet18"


class Localizer(nn.Module):
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
        # Inference metadata; `load_model` fills these from the checkpoint.
        self.audio_config = None
        self.image_size = 224
        self.universal_threshold: float | None = None
        self.unused_checkpoint_keys: list[str] = []

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

    def similarity_map(self, images: torch.Tensor, specs: torch.Tensor) -> torch.Tensor:
        """S(a_j, v_j) for each pair: (B, 1, h, w) raw cosine map."""
        return self.pair_map(self.image_features(images), self.audio_embedding(specs))

    @staticmethod
    def pair_map(image_features: torch.Tensor, audio_embedding: torch.Tensor) -> torch.Tensor:
        """Map of image j with audio j: (B, C, h, w), (B, C) -> (B, 1, h, w)."""
        return torch.einsum("bchw,bc->bhw", image_features, audio_embedding).unsqueeze(1)

    @staticmethod
    def cross_map(image_features: torch.Tensor, audio_embedding: torch.Tensor) -> torch.Tensor:
        """Every image against every audio: (N, C, h, w), (K, C) -> (N, K, h, w)."""
        return torch.einsum("nchw,kc->nkhw", image_features, audio_embedding)

    def forward(self, images: TensorOrTensors = None, specs: TensorOrTensors = None, *,
                running_stats_specs: torch.Tensor | None = None, with_norms: bool = False):
        """Encode images and/or spectrograms -> (image_features, audio_embedding[, running_stats_embedding]).

        Each of `images`, `specs` is a tensor, a sequence of tensors or None; every tensor of a sequence
        is its own tower call (its own BatchNorm batch), and the result mirrors the argument's
        structure. `running_stats_specs` are encoded with the audio tower's BatchNorm layers using their
        running statistics, as every input is at evaluation (and without updating them); when given,
        their embeddings come third. `with_norms` makes every audio result an (embedding, norm) pair.
        Putting every tower call of a training step into one `forward` keeps DDP's hooks correct.
        """
        embed = lambda x: self.audio_embedding(x, with_norm=with_norms)  # noqa: E731
        out = (_map(self.image_features, images), _map(embed, specs))
        if running_stats_specs is None:
            return out
        with batchnorm_running_stats(self.audnet):
            return (*out, embed(running_stats_specs))


@contextlib.contextmanager
def batchnorm_running_stats(module: nn.Module) -> Iterator[None]:
    """Inside the block, `module`'s BatchNorm layers normalise with (and do not update) their running statistics."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    for m in norms:
        m.train(False)
    try:
        yield
    finally:
        for m in norms:
            m.train(True)


def _map(fn, x: TensorOrTensors):
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return fn(x)
    return [fn(t) for t in x]
