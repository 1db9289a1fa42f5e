"""EZ-VSL (Mo & Morgado, ECCV 2022), as its code does it (github.com/stoneMo/EZ-VSL, docs/methods.md).

Model (model.py `EZVSL`): torchvision-layout ResNet-18 towers (layer4 stride 2: a 7x7 map at 224 px),
the image tower ImageNet-initialised in the original (here: from a local torchvision state dict file
when `model.imagenet_weights` names one, from scratch otherwise), a 1x1 conv projection of the image
map and a linear projection of the max-pooled audio map, both L2-normalised. The map is the cosine;
sslsan evaluates (cos + 1) / 2, the convention of the SSL-SaN authors' evaluation code (vssl_eval),
upsampled bilinearly with align_corners=True as EZ-VSL's own test.py does.

Objective (`max_xmil_loss`): multiple-instance contrastive loss, τ = 0.03: the logit of image n with
clip m is the spatial max of cos/τ; cross-entropy image→audio plus audio→image, summed.

The towers, initialisation, ImageNet loading and checkpoint reader here are shared with SLAVC and FNAC,
whose code is EZ-VSL's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from sslsan.audio import AudioConfig
from sslsan.config import ConfigError
from sslsan.methods import register_method
from sslsan.methods.base import AVModel, ImageSpec, MapSpec, Method, MethodObjective, OriginalCheckpoint, VSSL_EVAL_THRESHOLD, policy
from sslsan.models.checkpoint import strip_wrapper_prefixes
from sslsan.models.resnet import ResNet18Tower

if TYPE_CHECKING:
    from sslsan.engine.train_config import TrainConfig

TORCHVISION_STRIDES = (1, 2, 2, 2)  # torchvision's ResNet-18: total stride 32, a 7x7 map at 224 px
# their load_spectrogram: 3 s around the clip's middle (tiled when shorter), scipy.signal.spectrogram(nperseg=512,
# noverlap=274), log(S + 1e-7), Normalize(0, 12); no SpecAugment in their training
AUDIO_3S = AudioConfig(kind="log_linear", n_fft=512, hop_length=238, clip_seconds=3.0, tile_seconds=3.0,
                       window="centre", spec_augment=False)
# vssl_eval's load_spectrogram for EZ-VSL and SLAVC (datasets/datasets.py, audio_length 10): the first 10 s, tiled,
# rolled so the clip's middle is at 5 s, then CenterCrop((257, 200)) of the spectrogram (about 3.51-6.50 s);
# silence and noise fed as Normalize(0, 12) of their linear PSD, not its log
AUDIO_VSSL_EVAL = AudioConfig(kind="log_linear", n_fft=512, hop_length=238, clip_seconds=10.0, tile_seconds=10.0,
                              window="roll_centre", crop_frames=200, negatives_in_db=False, spec_augment=False)
# their test transform: Resize((224, 224)) bicubic, no crop, ImageNet mean/std (datasets.py get_test_dataset)
SQUASH_224 = ImageSpec(crop=False)


# ----------------------------------------------------------------------------------------- towers


def torchvision_resnet18(in_channels: int, width: float) -> ResNet18Tower:
    """torchvision's ResNet-18 trunk (conv1 ... layer4, no pooling or fc), its parameter names."""
    return ResNet18Tower(in_channels, width, TORCHVISION_STRIDES)


def default_bias_(layer: nn.Conv2d | nn.Linear, generator: torch.Generator | None) -> None:
    """PyTorch's default bias init, U(±1/sqrt(fan_in)) (the original code leaves biases at it)."""
    if layer.bias is not None:
        bound = 1.0 / math.sqrt(layer.weight[0].numel())
        with torch.no_grad():
            layer.bias.uniform_(-bound, bound, generator=generator)


def init_like_ezvsl(modules: Iterable[nn.Module], generator: torch.Generator | None) -> None:
    """EZ-VSL's re-initialisation of everything but the image tower: conv weights kaiming-normal (fan_out, relu),
    linear weights truncated N(0, 0.01), BatchNorm weight N(1, 0.02) and bias 0; biases at PyTorch's default."""
    for net in modules:
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                default_bias_(m, generator)
            elif isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, generator=generator)
                default_bias_(m, generator)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                with torch.no_grad():
                    m.weight.normal_(1.0, 0.02, generator=generator)
                    m.bias.zero_()


def init_like_torchvision(tower: nn.Module, generator: torch.Generator | None) -> None:
    """torchvision's ResNet init (the image tower when no ImageNet weights are given): conv weights
    kaiming-normal (fan_out, relu), BatchNorm weight 1 and bias 0."""
    for m in tower.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


IMAGENET_UNUSED = ("fc.weight", "fc.bias")  # torchvision's classifier: the towers drop it


def load_imagenet_weights(tower: nn.Module, path: str | Path) -> None:
    """Load a torchvision-format ResNet-18 state dict file (e.g. torchvision's resnet18-f37072fd.pth) into an
    image tower, strictly: every trunk weight of its shape; only the classifier (`fc.*`) may be left over."""
    from sslsan.methods.checkpoint import load_strict
    from sslsan.models.checkpoint import read_checkpoint

    path = Path(path)
    sd = strip_wrapper_prefixes(read_checkpoint(path).get("state_dict") or {})
    load_strict(tower, {k: v for k, v in sd.items() if k not in IMAGENET_UNUSED}, path,
                what="torchvision ResNet-18 (model.imagenet_weights)")


def check_image_size(cfg: TrainConfig, stride: int) -> None:
    if cfg.data.image_size < stride:
        raise ConfigError(f"data.image_size={cfg.data.image_size}: images smaller than the network's stride "
                          f"({stride} pixels) give no map")


def check_imagenet_weights(cfg: TrainConfig) -> None:
    """A named ImageNet file must exist and fit the towers (width 1.0: ImageNet's ResNet-18)."""
    path = cfg.model.imagenet_weights
    if path is None:
        return
    if not Path(path).is_file():
        raise ConfigError(f"model.imagenet_weights={path}: no such file")
    if cfg.model.width != 1.0:
        raise ConfigError(f"model.imagenet_weights: ImageNet's ResNet-18 fits model.width=1.0 only, got {cfg.model.width}")


# ------------------------------------------------------------------------------------------ model


@dataclass
class EZVSLModelConfig:
    """EZ-VSL's model (model.py `EZVSL(tau, dim)`); the dropouts are FNAC's (0 here: EZ-VSL has none)."""

    width: float = 1.0  # channel multiplier of both towers (1.0 = the original ResNet-18s, 512 channels)
    dim: int = 512  # projection size (--out_dim)
    dropout_img: float = 0.0  # dropout on the image tower's map before its projection
    dropout_aud: float = 0.0  # dropout on the pooled audio vector before its projection
    # a torchvision-format ResNet-18 state dict file for the image tower (the original loads ImageNet weights);
    # None: trained from scratch. Read when the model is built for training, not recorded in its checkpoints.
    imagenet_weights: str | None = None


class EZVSLModel(AVModel):
    """Image tower `imgnet` + `img_proj` (1x1 conv), audio tower `audnet` (global max pool) + `aud_proj`
    (linear); the parameter names are the original's (its checkpoints load as they are)."""

    audio_modules = ("audnet", "aud_proj")

    def __init__(self, cfg: EZVSLModelConfig = EZVSLModelConfig(), generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = dataclasses.replace(cfg, imagenet_weights=None)  # an initialisation, not part of the architecture
        self.imgnet = torchvision_resnet18(3, cfg.width)
        channels = self.imgnet.out_channels
        self.img_dropout = nn.Dropout(cfg.dropout_img)
        self.img_proj = nn.Conv2d(channels, cfg.dim, kernel_size=1)
        self.audnet = torchvision_resnet18(1, cfg.width)
        self.aud_dropout = nn.Dropout(cfg.dropout_aud)
        self.aud_proj = nn.Linear(channels, cfg.dim)
        init_like_torchvision(self.imgnet, generator)
        init_like_ezvsl([self.audnet, self.img_proj, self.aud_proj], generator)
        if cfg.imagenet_weights is not None:
            load_imagenet_weights(self.imgnet, cfg.imagenet_weights)

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, dim, H/32, W/32), L2-normalised over channels (float32)."""
        return F.normalize(self.img_proj(self.img_dropout(self.imgnet(images))).float(), dim=1)

    def audio_embedding(self, specs: torch.Tensor, *, with_norm: bool = False):
        """(B, 1, F, T) -> (B, dim): global max pool of layer4, projection, L2 normalisation."""
        proj = self.aud_proj(self.aud_dropout(self.audnet(specs).amax(dim=(2, 3)))).float()
        emb = F.normalize(proj, dim=1)
        return (emb, proj.detach().norm(dim=1)) if with_norm else emb

    def to_map(self, cosine: torch.Tensor) -> torch.Tensor:
        """(cos + 1) / 2 in [0, 1]: vssl_eval's map of EZ-VSL, SLAVC and FNAC (their own tests min-max cos/τ)."""
        return (cosine + 1.0) / 2.0


def pair_logits(cos: torch.Tensor) -> torch.Tensor:
    """(N, K, h, w) cosines -> (N, K): the multiple-instance reduction, the spatial max."""
    return cos.flatten(2).amax(dim=2)


# -------------------------------------------------------------------------------------- objective


@dataclass
class MILObjectiveConfig:
    tau: float = 0.03  # temperature (--tau)


class EZVSLObjective(MethodObjective):
    """max_xmil_loss: logits[n, m] = max over positions of cos(image n, clip m) / τ; cross-entropy with the
    diagonal as target, image→audio plus audio→image. D14 negatives: extra image→audio columns, reduced
    as a pair is (the spatial max)."""

    contrastive = True

    def __init__(self, cfg: MILObjectiveConfig = MILObjectiveConfig()):
        super().__init__()
        self.cfg = cfg

    def negative_logits(self, neg_cosines: torch.Tensor) -> torch.Tensor:
        return pair_logits(neg_cosines)

    def contrastive_loss(self, v: torch.Tensor, audio: torch.Tensor, extra_logits):
        """-> (parts, terms, cross): the MIL loss of image features v (B, C, h, w) and clips (B, C) with the D14
        columns of view 0, and the cosines of every image with every clip (B, B, h, w)."""
        cross = torch.einsum("nchw,mc->nmhw", v, audio)
        sim = pair_logits(cross)
        extra = extra_logits(0)
        i2a = sim if extra is None else torch.cat([sim, extra.reshape(sim.shape[0], -1)], dim=1)
        i2a, logits = i2a / self.cfg.tau, sim / self.cfg.tau
        labels = torch.arange(logits.shape[0], device=logits.device)
        loss_i2a, loss_a2i = F.cross_entropy(i2a, labels), F.cross_entropy(logits.T, labels)
        terms = {"loss_i2a": loss_i2a, "loss_a2i": loss_a2i, "acc_top1": (i2a.argmax(dim=1) == labels).float().mean()}
        return {"contrastive": loss_i2a + loss_a2i}, terms, cross

    def loss(self, model: AVModel, features, audio, views, extra_logits):
        parts, terms, _ = self.contrastive_loss(features[0], audio, extra_logits)
        return parts, terms


# ------------------------------------------------------------------------------------ checkpoints


def original_reader(top_level: tuple[str, ...], config: Callable[[Mapping[str, torch.Tensor]], Any],
                    has: tuple[str, ...], lacks: tuple[str, ...], weights: str) -> OriginalCheckpoint:
    """The reader of an EZ-VSL-style training file, {"model": state dict (`module.` prefixed under DDP),
    <top-level entries>}: the state dict's names are ours; `config(state dict)` gives the model config;
    files are recognised by the weights they have and lack."""

    def convert(ckpt: Mapping[str, Any]):
        sd = ckpt.get("model")
        if not isinstance(sd, Mapping):
            raise ValueError("no weights under 'model'")
        sd = strip_wrapper_prefixes(sd)
        missing = [k for k in has if k not in sd]
        if missing:
            raise ValueError(f"its 'model' lacks {', '.join(missing)}")
        unused = [f"<top level> {k}" for k in ckpt if k != "model" and k not in top_level]
        return sd, config(sd), unused

    def recognise(ckpt: Mapping[str, Any]) -> bool:
        sd = ckpt.get("model")
        if not isinstance(sd, Mapping):
            return False
        keys = strip_wrapper_prefixes({k: None for k in sd}).keys()
        return all(k in keys for k in has) and not any(k in keys for k in lacks)

    return OriginalCheckpoint(convert=convert, recognise=recognise, weights=weights)


def config_from_weights(sd: Mapping[str, torch.Tensor], proj: str = "img_proj.weight", **extra: Any) -> dict[str, Any]:
    """width and dim of EZ-VSL-style weights (the image tower's stem, the image projection)."""
    stem, head = sd.get("imgnet.bn1.weight"), sd.get(proj)
    if not isinstance(stem, torch.Tensor) or stem.ndim != 1 or not isinstance(head, torch.Tensor) or head.ndim != 4:
        raise ValueError(f"no image tower (imgnet.bn1.weight) or projection ({proj})")
    return dict(width=stem.shape[0] / 64, dim=int(head.shape[0]), **extra)


# training files: train.py saves {'model', 'optimizer', 'epoch', 'best_cIoU', 'best_Auc'}
EZVSL_TOP_LEVEL = ("optimizer", "epoch", "best_cIoU", "best_Auc")
EZVSL_KEYS = ("imgnet.bn1.weight", "img_proj.weight", "audnet.bn1.weight", "aud_proj.weight")
SLAVC_KEYS = ("img_proj1.weight", "momentum_imgnet.bn1.weight")

ORIGINAL = original_reader(
    EZVSL_TOP_LEVEL, lambda sd: EZVSLModelConfig(**config_from_weights(sd)), EZVSL_KEYS, SLAVC_KEYS,
    weights="the Google Drive folder linked in the README of github.com/stoneMo/EZ-VSL (best.pth per training "
            "set); FNAC's files have the same layout: name the method with --method")


def resolve(cfg: TrainConfig) -> TrainConfig:
    """Images must cover the stride-32 towers; a named ImageNet file must exist and fit."""
    check_image_size(cfg, 4 * math.prod(TORCHVISION_STRIDES))
    check_imagenet_weights(cfg)
    return cfg


def build_model(cfg: EZVSLModelConfig, generator: torch.Generator | None) -> EZVSLModel:
    return EZVSLModel(cfg, generator)


MAP = MapSpec("cosine01", (0.0, 1.0), "bilinear_align_corners")

register_method(Method(
    name="ezvsl", label="EZ-VSL", model_config=EZVSLModelConfig, build_model=build_model,
    objective_config=MILObjectiveConfig, build_objective=EZVSLObjective,
    map=MAP, image=SQUASH_224, audio=AUDIO_3S, resolve=resolve, original=ORIGINAL,
    negatives_bn="with_positives",  # D15: silence/noise negatives share the positives' BatchNorm batch
    policies={"original": policy(AUDIO_3S, SQUASH_224, MAP),
              "vssl_eval": policy(AUDIO_VSSL_EVAL, SQUASH_224, MAP, VSSL_EVAL_THRESHOLD["ezvsl"])},
    description="multiple-instance contrastive (max over positions, both directions, τ=0.03), torchvision "
                "ResNet-18 towers with projections, 7x7 map, (cos+1)/2",
    reference="Mo & Morgado, Localizing Visual Sounds the Easy Way, ECCV 2022; github.com/stoneMo/EZ-VSL"))
