"""SLAVC (Mo & Morgado, NeurIPS 2022), as its code does it (github.com/stoneMo/SLAVC, docs/methods.md).

Model (model.py `SLAVC`): EZ-VSL's towers with dropout on the image map (0.9 in the released training
script) and two projection heads per modality, each L2-normalised; momentum (EMA) copies of the towers
and heads. The map is the mean of the two heads' cosines (AVModel.heads = 2), evaluated as (cos + 1) / 2
(its own test scores the same quantity, (S + 1/τ) / (2/τ)), upsampled bicubically with align_corners=True
as its test.py does; with `use_mom_eval` the momentum encoders make the map.

Objective (`forward`): with τ = 0.03, per image n and clip m, head 1 gives at each position p a softmax
over the clips and head 2 a softmax over the positions; i2a[n, m] = log Σ_p of their product, with the
online image and the momentum (target) audio; a2i the same with the momentum image and the online
audio; loss = CE(a2i) + CE(i2a), targets on the diagonal. In training the momentum encoders are first
updated, p_m ← m·p_m + (1 − m)·p (m = 0.999 in the released script), inside the objective as the
original does inside its forward, so no hook after the optimiser step is needed. The code has no
false-negative handling (its `num_neg` is unused) and no other loss term.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sslsan.methods import register_method
from sslsan.methods.base import (
    VSSL_EVAL_THRESHOLD,
    AVModel,
    Method,
    MethodObjective,
    policy,
)
from sslsan.methods.ezvsl import (
    AUDIO_3S,
    AUDIO_VSSL_EVAL,
    EZVSL_TOP_LEVEL,
    SLAVC_KEYS,
    SQUASH_224,
    init_like_ezvsl,
    init_like_torchvision,
    load_imagenet_weights,
    original_reader,
    torchvision_resnet18,
)
from sslsan.methods.ezvsl import (
    MAP as EZVSL_MAP,
)
from sslsan.methods.ezvsl import resolve as resolve_ezvsl


@dataclass
class SLAVCModelConfig:
    """SLAVC's model (model.py `SLAVC`); defaults from scripts/train_vggsound144k.sh and test.py."""

    width: float = 1.0  # channel multiplier of both towers (1.0 = the original ResNet-18s)
    dim: int = 512  # projection size (--out_dim)
    dropout_img: float = 0.9  # on the image tower's map before the heads (--dropout_img 0.9; train.py's default 0)
    dropout_aud: float = 0.0  # on the pooled audio vector before the heads (--dropout_aud 0)
    # the momentum encoders make the evaluation map (--use_mom_eval: off in test.py and its scripts; the
    # training script passes it, which only changes its validation during training)
    use_mom_eval: bool = False
    imagenet_weights: str | None = None  # as EZ-VSL's: a torchvision ResNet-18 state dict file; None: from scratch


# online module -> its momentum copy, image side then audio side (the original's order)
IMAGE_PAIRS = (("imgnet", "momentum_imgnet"), ("img_proj1", "momentum_img_proj1"), ("img_proj2", "momentum_img_proj2"))
AUDIO_PAIRS = (("audnet", "momentum_audnet"), ("aud_proj1", "momentum_aud_proj1"), ("aud_proj2", "momentum_aud_proj2"))


class SLAVCModel(AVModel):
    """Online towers and heads (`imgnet`, `img_proj1/2`, `audnet`, `aud_proj1/2`) and their momentum copies
    (`momentum_*`, not trained by gradients); parameter names are the original's."""

    heads = 2
    audio_modules = ("audnet", "aud_proj1", "aud_proj2")

    def __init__(self, cfg: SLAVCModelConfig = SLAVCModelConfig(), generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = dataclasses.replace(cfg, imagenet_weights=None)  # an initialisation, not part of the architecture
        self.img_dropout = nn.Dropout(cfg.dropout_img)
        self.aud_dropout = nn.Dropout(cfg.dropout_aud)
        for prefix in ("", "momentum_"):
            imgnet, audnet = torchvision_resnet18(3, cfg.width), torchvision_resnet18(1, cfg.width)
            channels = imgnet.out_channels
            setattr(self, prefix + "imgnet", imgnet)
            setattr(self, prefix + "audnet", audnet)
            for k in (1, 2):
                setattr(self, f"{prefix}img_proj{k}", nn.Conv2d(channels, cfg.dim, kernel_size=1))
                setattr(self, f"{prefix}aud_proj{k}", nn.Linear(channels, cfg.dim))
        init_like_torchvision(self.imgnet, generator)
        init_like_ezvsl([self.audnet, self.img_proj1, self.aud_proj1, self.img_proj2, self.aud_proj2], generator)
        if cfg.imagenet_weights is not None:
            load_imagenet_weights(self.imgnet, cfg.imagenet_weights)
        for online, momentum in IMAGE_PAIRS + AUDIO_PAIRS:  # the copies start equal and take no gradients
            getattr(self, momentum).load_state_dict(getattr(self, online).state_dict())
            getattr(self, momentum).requires_grad_(False)

    def _image_heads(self, prefix: str, images: torch.Tensor) -> torch.Tensor:
        x = self.img_dropout(getattr(self, prefix + "imgnet")(images))
        return torch.cat([F.normalize(getattr(self, f"{prefix}img_proj{k}")(x).float(), dim=1) for k in (1, 2)], dim=1)

    def _audio_heads(self, prefix: str, specs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.aud_dropout(getattr(self, prefix + "audnet")(specs).amax(dim=(2, 3)))
        proj = [getattr(self, f"{prefix}aud_proj{k}")(x).float() for k in (1, 2)]
        norm = torch.stack([p.detach().norm(dim=1) for p in proj]).amin(dim=0)  # zero when a head's vector is
        return torch.cat([F.normalize(p, dim=1) for p in proj], dim=1), norm

    def _eval_prefix(self) -> str:
        return "momentum_" if self.cfg.use_mom_eval and not self.training else ""

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 2·dim, H/32, W/32): head 1 then head 2, each L2-normalised (float32)."""
        return self._image_heads(self._eval_prefix(), images)

    def audio_embedding(self, specs: torch.Tensor, *, with_norm: bool = False):
        """(B, 1, F, T) -> (B, 2·dim): head 1 then head 2, each L2-normalised."""
        emb, norm = self._audio_heads(self._eval_prefix(), specs)
        return (emb, norm) if with_norm else emb

    def to_map(self, cosine: torch.Tensor) -> torch.Tensor:
        """(cos + 1) / 2 of the heads' mean cosine: vssl_eval's map, = SLAVC's own scores (S + 1/τ) / (2/τ)."""
        return (cosine + 1.0) / 2.0

    @torch.no_grad()
    def momentum_targets(self, images: torch.Tensor, specs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The momentum encoders' image features and audio embeddings (no gradients)."""
        return self._image_heads("momentum_", images), self._audio_heads("momentum_", specs)[0]

    @torch.no_grad()
    def update_momentum(self, m_img: float, m_aud: float) -> None:
        """p_m ← p_m·m + p·(1 − m) for every parameter of the momentum copies (buffers are their own)."""
        for pairs, m in ((IMAGE_PAIRS, m_img), (AUDIO_PAIRS, m_aud)):
            for online, momentum in pairs:
                for p, p_m in zip(getattr(self, online).parameters(), getattr(self, momentum).parameters()):
                    p_m.copy_(p_m * m + p * (1.0 - m))


@dataclass
class SLAVCObjectiveConfig:
    tau: float = 0.03  # temperature (--tau)
    momentum_img: float = 0.999  # EMA of the image encoders (--m_img 0.999 in the script; train.py's default 0.9)
    momentum_aud: float = 0.999  # EMA of the audio encoders (--m_aud)


def heads(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 2·C, ...) -> the two heads' (B, C, ...)."""
    return x.chunk(2, dim=1)


def soft_mil_logits(img1: torch.Tensor, img2: torch.Tensor, aud1: torch.Tensor, aud2: torch.Tensor, tau: float,
                    extra: torch.Tensor | None = None) -> torch.Tensor:
    """log Σ_p softmax_clips(head-1 cos/τ) · softmax_positions(head-2 cos/τ): (B, B[+k]) logits, rows images.

    `extra` (B, k, h, w): cosine maps of k more clips per image, standing for both heads (D14 negatives).
    """
    s1 = torch.einsum("nchw,mc->nmhw", img1, aud1).flatten(2)
    s2 = torch.einsum("nchw,mc->nmhw", img2, aud2).flatten(2)
    if extra is not None:
        s1, s2 = torch.cat([s1, extra.flatten(2)], dim=1), torch.cat([s2, extra.flatten(2)], dim=1)
    return torch.log((F.softmax(s1 / tau, dim=1) * F.softmax(s2 / tau, dim=2)).sum(dim=2))


class SLAVCObjective(MethodObjective):
    """SLAVC's loss (the module docstring), the momentum update first when training.

    D14 negatives: a negative clip joins the clips of the image→audio term (i2a): its cosine map (the
    evaluation map's, the mean of the two heads with the online encoders) stands for both heads' maps in
    the softmax over clips and the softmax over positions. `negative_logits` therefore keeps the maps
    ((B, k, h, w) cosines, not one number per pair): SLAVC's logits see a pair as a whole map.
    """

    contrastive = True

    def __init__(self, cfg: SLAVCObjectiveConfig = SLAVCObjectiveConfig()):
        super().__init__()
        self.cfg = cfg

    def negative_logits(self, neg_cosines: torch.Tensor) -> torch.Tensor:
        return neg_cosines

    def loss(self, model: SLAVCModel, features, audio, views, extra_logits):
        cfg = self.cfg
        if views.specs is None:
            raise ValueError("SLAVC's objective needs the clips' spectrograms (Views.specs) for its momentum targets")
        if model.training and torch.is_grad_enabled():
            model.update_momentum(cfg.momentum_img, cfg.momentum_aud)
        img_trg, aud_trg = model.momentum_targets(views.images[0], views.specs)
        (img1, img2), (aud1, aud2) = heads(features[0]), heads(audio)
        (img1_t, img2_t), (aud1_t, aud2_t) = heads(img_trg.float()), heads(aud_trg.float())
        i2a = soft_mil_logits(img1, img2, aud1_t, aud2_t, cfg.tau, extra_logits(0))
        a2i = soft_mil_logits(img1_t, img2_t, aud1, aud2, cfg.tau)
        labels = torch.arange(a2i.shape[0], device=a2i.device)
        loss_i2a, loss_a2i = F.cross_entropy(i2a, labels), F.cross_entropy(a2i, labels)
        terms = {"loss_i2a": loss_i2a, "loss_a2i": loss_a2i, "acc_top1": (i2a.argmax(dim=1) == labels).float().mean()}
        return {"contrastive": loss_a2i + loss_i2a}, terms


def config_from_weights(sd) -> SLAVCModelConfig:
    stem, head = sd.get("imgnet.bn1.weight"), sd.get("img_proj1.weight")
    if not isinstance(stem, torch.Tensor) or stem.ndim != 1 or not isinstance(head, torch.Tensor) or head.ndim != 4:
        raise ValueError("no image tower (imgnet.bn1.weight) or first head (img_proj1.weight)")
    return SLAVCModelConfig(width=stem.shape[0] / 64, dim=int(head.shape[0]))


# train.py saves {'model', 'optimizer', 'epoch', 'best_Precision', 'best_AP', 'best_F1'}; EZ-VSL-like names are tolerated
ORIGINAL = original_reader(
    ("optimizer", "epoch", "best_Precision", "best_AP", "best_F1", *EZVSL_TOP_LEVEL), config_from_weights,
    ("imgnet.bn1.weight", "audnet.bn1.weight", "aud_proj1.weight", *SLAVC_KEYS), (),
    weights="the Google Drive file linked in the README of github.com/stoneMo/SLAVC (VGG-Sound 144k)")


def build_model(cfg: SLAVCModelConfig, generator: torch.Generator | None) -> SLAVCModel:
    return SLAVCModel(cfg, generator)


SLAVC_MAP = dataclasses.replace(EZVSL_MAP, upsample="bicubic_align_corners")

register_method(Method(
    name="slavc", label="SLAVC", model_config=SLAVCModelConfig, build_model=build_model,
    objective_config=SLAVCObjectiveConfig, build_objective=SLAVCObjective,
    map=SLAVC_MAP, image=SQUASH_224, audio=AUDIO_3S,
    resolve=resolve_ezvsl, original=ORIGINAL,
    negatives_bn="with_positives",  # D15: silence/noise negatives share the positives' BatchNorm batch
    # its test.py upsamples bicubically (align_corners=True); vssl_eval's eval() bilinearly, at 10 s rolled
    policies={"original": policy(AUDIO_3S, SQUASH_224, SLAVC_MAP),
              "vssl_eval": policy(AUDIO_VSSL_EVAL, SQUASH_224, EZVSL_MAP,
                                  VSSL_EVAL_THRESHOLD["slavc"])},
    description="two heads (softmax over clips x softmax over positions), momentum targets, dropout 0.9, "
                "torchvision ResNet-18 towers, 7x7 map, mean of the heads' (cos+1)/2",
    reference="Mo & Morgado, A Closer Look at Weakly-Supervised Audio-Visual Source Localization, NeurIPS 2022; "
              "github.com/stoneMo/SLAVC"))
