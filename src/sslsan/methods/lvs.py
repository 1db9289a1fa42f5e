"""LVS (Chen et al., CVPR 2021), as its code does it (github.com/hche11/Localizing-Visual-Sounds-the-Hard-Way,
docs/methods.md).

Model (model.py `AVENet`): SSL-TIE's ancestor and the same network, so it is SSL-TIE's `Localizer`:
two ResNet-18 towers with layer4 stride 1 (a 14x14 map at 224 px), the audio map max-pooled, the
map the cosine of the L2-normalised features (in [0, 1]: both are post-ReLU), upsampled like cv2's
INTER_LINEAR as its test.py does. Its `pretrained=True` loads nothing (the loading code is commented
out in models/base_models.py `_resnet`): both towers train from scratch.

Objective: its forward's logits, the hard-way tri-map contrastive logits, are SSL-TIE's
`ContrastiveLoss` (ε = 0.65, ε2 = 0.4, τ = 0.03, temperature 0.07); the loss is their cross-entropy
with the positive in column 0 on the one (untransformed) view. Audio: its own loader's 10 s (the
first 10 s, tiled when shorter) linear log spectrogram. Test image: Resize(224) then CenterCrop(224).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from sslsan.audio import AudioConfig
from sslsan.config import ConfigError
from sslsan.losses.contrastive import ContrastiveLoss, cross_entropy_to_first, top1_accuracy
from sslsan.losses.ssl_tie import SSLTIEObjective
from sslsan.methods import register_method
from sslsan.methods.base import AVModel, ImageSpec, MapSpec, Method, MethodObjective, OriginalCheckpoint, VSSL_EVAL_THRESHOLD, policy
from sslsan.methods.ssl_tie import convert_original as convert_ssl_tie
from sslsan.methods.ssl_tie import recognise_original as recognise_ssl_tie
from sslsan.models.backbones import get_backbone
from sslsan.models.localizer import Localizer, ModelConfig

if TYPE_CHECKING:
    from sslsan.engine.train_config import TrainConfig

WEIGHTS_KEY = "model_state_dict"  # test.py: checkpoint['model_state_dict'], saved from nn.DataParallel
# datasets/dataloader.py: soundfile at the file's rate, the first 10 s (tiled when shorter), 512/274 spectrogram
AUDIO = AudioConfig(kind="log_linear", n_fft=512, hop_length=238, clip_seconds=10.0, tile_seconds=10.0, spec_augment=False)
IMAGE = ImageSpec(crop=True)  # Resize(224) bicubic, CenterCrop(224)
MAP = MapSpec("cosine", (0.0, 1.0), "bilinear")
# SSLalignment's datasets_lvs.py, which vssl_eval uses for LVS and SSL-Align alike: the file tiled to 10 s, samples
# [16000*3.5, 16000*6.5), 512/353 spectrogram (hop 159), log, Normalize(0, 12); silence and noise through the same
AUDIO_ALIGN = AudioConfig(kind="log_linear", n_fft=512, hop_length=159, clip_seconds=10.0, tile_seconds=10.0,
                          crop_start=3.5, crop_end=6.5, spec_augment=False)
IMAGE_ALIGN = ImageSpec(crop=False)  # ToTensor, Resize((224, 224)) bicubic, CenterCrop(224) (a no-op)


@dataclass
class LVSObjectiveConfig:
    """The constants of AVENet.forward (test.py defaults --epsilon 0.65 --epsilon2 0.4, tri-map and Neg on)."""

    epsilon: float = 0.65  # positive-mask threshold
    epsilon2: float = 0.4  # tri-map negative-mask threshold
    tau: float = 0.03  # mask sharpness
    temperature: float = 0.07  # logits / 0.07


class LVSObjective(MethodObjective):
    """Cross-entropy of the tri-map contrastive logits [sim1 | easy negatives | sim2 | D14 columns] / T,
    target column 0, on the images as given (no second view)."""

    contrastive = True
    negative_logits = SSLTIEObjective.negative_logits  # D14: the spatial mean, as for SSL-TIE

    def __init__(self, cfg: LVSObjectiveConfig = LVSObjectiveConfig()):
        super().__init__()
        self.cfg = cfg
        self.contrastive_loss = ContrastiveLoss(cfg.epsilon, cfg.epsilon2, cfg.tau, cfg.temperature)

    def loss(self, model: AVModel, features, audio, views, extra_logits):
        v = features[0]
        logits, pos, neg = self.contrastive_loss.logits(model.pair_map(v, audio), model.cross_map(v, audio),
                                                        extra_logits(0))
        loss = cross_entropy_to_first(logits)
        terms = {"loss_cl": loss, "acc_top1": top1_accuracy(logits), "diag_pos_mask": pos.detach().mean(),
                 "diag_neg_mask": neg.detach().mean()}
        return {"contrastive": loss}, terms


def convert_original(ckpt: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], ModelConfig, list[str]]:
    """LVS's AVENet has SSL-TIE's tower names (three stems each, `fc`), under `model_state_dict`."""
    sd = ckpt.get(WEIGHTS_KEY)
    if not isinstance(sd, Mapping):
        raise ValueError(f"no weights under '{WEIGHTS_KEY}'")
    out, cfg, unused = convert_ssl_tie({"state_dict": sd})
    return out, cfg, unused + [f"<top level> {k}" for k in ckpt if k != WEIGHTS_KEY]


def recognise_original(ckpt: Mapping[str, Any]) -> bool:
    """LVS's files (and SSL-Align's, the same network): `imgnet.*` / `audnet.*` weights under `model_state_dict`."""
    return isinstance(ckpt.get(WEIGHTS_KEY), Mapping) and recognise_ssl_tie({"state_dict": ckpt[WEIGHTS_KEY]})


def resolve(cfg: TrainConfig) -> TrainConfig:
    """The towers must exist and fit the images."""
    try:
        stride = max(get_backbone(cfg.model.image_backbone).stride, get_backbone(cfg.model.audio_backbone).stride)
    except ValueError as exc:
        raise ConfigError(f"model: {exc}") from None
    if cfg.data.image_size < stride:
        raise ConfigError(f"data.image_size={cfg.data.image_size}: images smaller than the network's stride "
                          f"({stride} pixels) give no map")
    return cfg


def build_model(cfg: ModelConfig, generator: torch.Generator | None) -> Localizer:
    return Localizer(cfg, generator=generator)  # AVENet's init: conv kaiming-normal (fan_out), BN N(1, 0.02)


register_method(Method(
    name="lvs", label="LVS", model_config=ModelConfig, build_model=build_model,
    objective_config=LVSObjectiveConfig, build_objective=LVSObjective,
    map=MAP, image=IMAGE, audio=AUDIO, resolve=resolve,
    negatives_bn="with_positives",  # D15: silence/noise negatives share the positives' BatchNorm batch
    policies={"original": policy(AUDIO, IMAGE, MAP),
              "vssl_eval": policy(AUDIO_ALIGN, IMAGE_ALIGN, MAP, VSSL_EVAL_THRESHOLD["lvs"])},
    original=OriginalCheckpoint(convert=convert_original, recognise=recognise_original,
                                weights="the Google Drive links in the README of github.com/hche11/"
                                        "Localizing-Visual-Sounds-the-Hard-Way (Flickr and VGG-SS models)"),
    description="hard-way tri-map contrastive (SSL-TIE's ancestor, one view), ResNet-18 towers, 14x14 cosine map",
    reference="Chen et al., Localizing Visual Sounds the Hard Way, CVPR 2021; "
              "github.com/hche11/Localizing-Visual-Sounds-the-Hard-Way"))
