"""RCGrad (Wu, Fuentes, Seetharaman & Bello, "How to Listen? Rethinking Visual Sound Localization",
INTERSPEECH 2022; github.com/hohsiangwu/rethinking-visual-sound-localization), evaluation only.

Model (RC:models.py `RCGrad`, RC:modules/resnet.py): an image ResNet-18 whose layer4 keeps stride 1 (a
14x14 map at 224 px), globally average-pooled to a 512-d embedding; an audio ResNet-18 (torchvision
strides) on a standardised log spectrogram it computes itself (here the `log_stft_standardised`
front-end), average-pooled to 512-d. Trained with a CLIP loss on the two pooled embeddings.

Map (RC:modules/gradcam.py): GradCAM on the last layer4 block with the audio embedding as the backward
target, i.e. of the score s = <avgpool(A), a> (A: the block's output, (C, h, w); a: the audio
embedding). Because avgpool is the only operation between A and s, ds/dA[c, y, x] = a[c] / (h w) at
every position, so GradCAM's channel weights (the spatial mean of that gradient) are a / (h w) and its
raw map has a closed form without autograd:

    cam[y, x] = ReLU(<A[:, y, x], a>) / (h w)

(`RCGradModel.raw_cam`; tests/test_method_rcgrad.py checks it against autograd GradCAM). Both A and a
are post-ReLU (non-negative), so the ReLU never bites. The raw CAM's range is [0, inf): its scale is
that of ||a|| ||avgpool(A)||, which the model's cosine (CLIP) loss leaves free, so no fixed constant maps
it into [0, 1], and comparing raw CAMs across pairs (what a universal threshold does) would compare
embedding norms. sslsan evaluates the CAM of the *cosine* instead (`MapSpec` kind "gradcam_cosine"):

    map[y, x] = cam[y, x] / (||avgpool(A)|| ||a||) = ReLU(<A[:, y, x], a / ||a||>) / ||sum_yx A[:, y, x]||

a positive rescaling per pair (the same shape as GradCAM's map: its min-max normalisation is RCGrad's
own map exactly), which lies in [0, 1] (A >= 0 gives ||A[:, y, x]|| <= ||sum A||) and sums over the
positions to the cosine of the two embeddings the model was trained on. The universal threshold,
Separability and pIA apply to it as to any [0, 1] map. RCGrad's own post-processing (RC:eval_utils.py
`clean_pred`: min-max, cv2 resize to 224, min-max, values below the median set to 0) is what the
original repository scores; tests/golden/make_released_goldens.py runs it on our maps.

RCGrad's own inference never calls eval() on its audio encoder, so each clip is normalised by its own
BatchNorm statistics (`RCGradModelConfig.audio_norm`, "per_clip" by default, as the released numbers
were made; "running" uses the stored statistics).

Checkpoints: the released `rc_grad.pt` is a flat state dict, `image_encoder.*` and `audio_encoder.*`
(plus, as a Lightning module's state, `loss_fn.logit_scale`); read strictly by `convert_original`.
sslsan does not train RCGrad (`resolve` refuses): its training data pipeline and learned logit scale
are not implemented.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sslsan.audio import AudioConfig
from sslsan.config import ConfigError
from sslsan.methods import register_method
from sslsan.methods.base import AVModel, ImageSpec, MapSpec, Method, OriginalCheckpoint, policy
from sslsan.metrics.localization import minmax_normalize
from sslsan.metrics.resample import upsample
from sslsan.models.checkpoint import strip_wrapper_prefixes
from sslsan.models.resnet import STAGE_STRIDES, ResNet18Tower

if TYPE_CHECKING:
    from sslsan.engine.train_config import TrainConfig

# CLIP's normalisation, which RC:eval_utils.py `preprocess` uses: Resize((224, 224)) bicubic, no crop
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_SQUASH_224 = ImageSpec(crop=False, mean=CLIP_MEAN, std=CLIP_STD)
# RC:modules/resnet.py ResNetSpec: torchaudio Spectrogram(n_fft=512, hop_length=353) of 16 kHz audio (librosa),
# log(x + 1e-7), standardised; its evaluation feeds the whole file: sslsan feeds the clip's first 10 s
# (a VGG-SS clip whole), tiled when shorter
AUDIO = AudioConfig(kind="log_stft_standardised", n_fft=512, hop_length=353, clip_seconds=10.0, tile_seconds=10.0,
                    spec_augment=False, log_offset=1e-7)
AUDIO_STRIDES = (1, 2, 2, 2)  # ResNetSpec: torchvision's strides
MAP = MapSpec("gradcam_cosine", (0.0, 1.0), "bilinear")  # pytorch-grad-cam's scale_cam_image: cv2.resize (linear)


AUDIO_NORMS = ("per_clip", "running")


@dataclass
class RCGradModelConfig:
    width: float = 1.0  # channel multiplier of both towers (1.0: the released ResNet-18s, 512 channels)
    # how the audio tower's BatchNorm layers normalise at inference: "per_clip", by each clip's own statistics,
    # as RC's pred_audio does (RCGrad() never puts its audio encoder in eval mode and feeds one clip at a
    # time: training-mode BatchNorm on a batch of one); "running", by the stored running statistics
    audio_norm: str = "per_clip"

    def __post_init__(self):
        if self.audio_norm not in AUDIO_NORMS:
            raise ValueError(f"model.audio_norm={self.audio_norm!r}: expected one of {', '.join(AUDIO_NORMS)}")


class PerClipBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that normalises every sample by its own per-channel statistics over its positions (biased
    variance), i.e. training-mode BatchNorm on a batch of one, for a whole batch at once; running statistics
    are kept (the state dict is BatchNorm2d's) but neither used nor updated."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class RCGradModel(AVModel):
    """`image_encoder` (layer4 map, (B, 512, H/16, W/16)) and `audio_encoder` (average-pooled, (B, 512));
    parameter names are the released file's. The map is GradCAM's in closed form (module docstring)."""

    audio_modules = ("audio_encoder",)

    def __init__(self, cfg: RCGradModelConfig = RCGradModelConfig(), generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        self.image_encoder = ResNet18Tower(3, cfg.width, STAGE_STRIDES)
        self.audio_encoder = ResNet18Tower(1, cfg.width, AUDIO_STRIDES)
        init_like_rcgrad(self.image_encoder, generator, bn_weight_std=0.0)
        init_like_rcgrad(self.audio_encoder, generator, bn_weight_std=0.02)
        if cfg.audio_norm == "per_clip":
            for m in self.audio_encoder.modules():
                if type(m) is nn.BatchNorm2d:
                    m.__class__ = PerClipBatchNorm2d  # same parameters and buffers, another forward

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> the last layer4 block's output A, (B, C, H/16, W/16), float32 (not normalised)."""
        return self.image_encoder(images).float()

    def audio_embedding(self, specs: torch.Tensor, *, with_norm: bool = False):
        """(B, 1, F, T) -> the average-pooled audio map a, (B, C), float32 (not normalised: GradCAM's target)."""
        emb = self.audio_encoder(specs).float().mean(dim=(2, 3))
        return (emb, emb.detach().norm(dim=1)) if with_norm else emb

    @staticmethod
    def _scale(features: torch.Tensor) -> torch.Tensor:
        """1 / ||sum over positions of A|| per image, (N,) (0 for an all-zero map, whose CAM is 0 anyway)."""
        norm = features.sum(dim=(2, 3)).norm(dim=1)
        return torch.where(norm > 0, 1.0 / norm.clamp_min(torch.finfo(norm.dtype).tiny), torch.zeros_like(norm))

    def cross_map(self, features: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """Every image against every clip: (N, C, h, w), (K, C) -> (N, K, h, w), GradCAM of the cosine."""
        cam = torch.einsum("nchw,kc->nkhw", features, F.normalize(embeddings, dim=1)).relu()
        return cam * self._scale(features)[:, None, None, None]

    def pair_map(self, features: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """Image b with clip b: (B, C, h, w), (B, C) -> (B, 1, h, w)."""
        cam = torch.einsum("bchw,bc->bhw", features, F.normalize(embeddings, dim=1)).relu()
        return (cam * self._scale(features)[:, None, None]).unsqueeze(1)

    def raw_cam(self, features: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """GradCAM's own raw map (before pytorch-grad-cam's min-max), image b with clip b: (B, 1, h, w),
        ReLU(<A[:, y, x], a>) / (h w); range [0, inf)."""
        h, w = features.shape[-2:]
        return (torch.einsum("bchw,bc->bhw", features, embeddings).relu() / (h * w)).unsqueeze(1)


def init_like_rcgrad(tower: nn.Module, generator: torch.Generator | None, bn_weight_std: float) -> None:
    """RC:modules/resnet.py's initialisation: conv weights kaiming-normal (fan_out, relu); BatchNorm bias 0 and
    weight 1 (the image ResNet) or N(1, 0.02) (ResNetSpec)."""
    for m in tower.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
        elif isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.normal_(1.0, bn_weight_std, generator=generator) if bn_weight_std else m.weight.fill_(1.0)
                m.bias.zero_()


def original_postprocess(maps: np.ndarray) -> np.ndarray:
    """RCGrad's own map from native maps (N, h, w) -> (N, 224, 224), as RC:models.py pred_audio makes it:
    pytorch-grad-cam's scale_cam_image (x - min, / (1e-7 + max), cv2.resize linear to 224), again without
    the resize, then RC:eval_utils.py clean_pred (min-max; values below the median s[N/2] set to 0).
    Any positive rescaling of a map gives the same result. For comparing with RCGrad's own scores; the
    SSL-SaN metrics take the native maps."""
    def scale(x: np.ndarray) -> np.ndarray:
        x = x - x.min(axis=(-2, -1), keepdims=True)
        return x / (1e-7 + x.max(axis=(-2, -1), keepdims=True))

    x = scale(np.maximum(scale(upsample(np.asarray(maps, dtype=np.float32), mode=MAP.upsample)), 0))
    x = minmax_normalize(x)
    flat = np.sort(x.reshape(x.shape[0], -1), axis=1)
    median = flat[:, flat.shape[1] // 2][:, None, None]
    return np.where(x < median, 0.0, x).astype(np.float32)


# ------------------------------------------------------------------------------------ checkpoints

TOWERS = ("image_encoder.", "audio_encoder.")
# entries of the released file the model does not use: the image ResNet's other stems and classifier (its forward
# never calls them), the audio tower's Spectrogram window (the front-end computes it) and the training loss's scale
UNUSED_PREFIXES = ("image_encoder.conv1_a.", "image_encoder.conv1_flow.", "image_encoder.fc.")
UNUSED_KEYS = ("audio_encoder.spectrogram.window", "loss_fn.logit_scale")


def _weights(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """The flat state dict (read_checkpoint files a bare state dict under "state_dict")."""
    sd = ckpt.get("state_dict")
    return strip_wrapper_prefixes(sd) if isinstance(sd, Mapping) else {}


def convert_original(ckpt: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], RCGradModelConfig, list[str]]:
    """The released flat state dict -> (our state dict, config, entries declared unused). Keys keep their
    names; anything outside the two towers and the declared entries stays in (load_strict reports it)."""
    sd = _weights(ckpt)
    window = sd.get("audio_encoder.spectrogram.window")
    if isinstance(window, torch.Tensor):
        want = torch.hann_window(AUDIO.n_fft, periodic=True, dtype=window.dtype)
        if window.shape != want.shape or not torch.allclose(window, want, atol=1e-6):
            raise ValueError(f"its audio_encoder.spectrogram.window {tuple(window.shape)} is not the periodic "
                             f"Hann window of {AUDIO.n_fft} points the front-end uses")
    stem = sd.get("image_encoder.bn1.weight")
    if not isinstance(stem, torch.Tensor) or stem.ndim != 1:
        raise ValueError("no image tower (image_encoder.bn1.weight)")
    unused = [k for k in sd if k.startswith(UNUSED_PREFIXES) or k in UNUSED_KEYS]
    out = {k: v for k, v in sd.items() if k not in unused}
    unused += [f"<top level> {k}" for k in ckpt if k != "state_dict"]
    return out, RCGradModelConfig(width=stem.shape[0] / 64), unused


def recognise_original(ckpt: Mapping[str, Any]) -> bool:
    """RCGrad's file: a flat state dict with both `image_encoder.*` and `audio_encoder.*` tensors."""
    keys = [k for k, v in _weights(ckpt).items() if isinstance(v, torch.Tensor)]
    return all(any(k.startswith(p) for k in keys) for p in TOWERS)


ORIGINAL = OriginalCheckpoint(
    convert=convert_original, recognise=recognise_original,
    weights="rc_grad.pt, the v0.1.0-alpha release asset of github.com/hohsiangwu/rethinking-visual-sound-localization "
            "(MODEL_URL in its models.py)")


# -------------------------------------------------------------------------------------- not trained


@dataclass
class NoObjectiveConfig:
    """RCGrad is evaluation-only in sslsan: it has no objective settings."""


def not_trainable(_cfg: Any = None):
    raise ConfigError("method rcgrad: sslsan evaluates RCGrad's released checkpoint but does not train it "
                      "(its CLIP-loss training pipeline is not implemented); use `sslsan evaluate --method rcgrad`")


def resolve(cfg: TrainConfig) -> TrainConfig:
    not_trainable()
    return cfg


def build_model(cfg: RCGradModelConfig, generator: torch.Generator | None) -> RCGradModel:
    return RCGradModel(cfg, generator)


register_method(Method(
    name="rcgrad", label="RCGrad", model_config=RCGradModelConfig, build_model=build_model,
    objective_config=NoObjectiveConfig, build_objective=not_trainable, map=MAP, image=CLIP_SQUASH_224, audio=AUDIO,
    resolve=resolve, trainable=False, original=ORIGINAL,
    # the SSL-SaN authors' evaluation code has no RCGrad branch (docs/methods.md): only the original policy
    policies={"original": policy(AUDIO, CLIP_SQUASH_224, MAP)},
    description="GradCAM of the image-audio similarity on the image ResNet-18's last block (closed form), "
                "CLIP-loss towers; evaluation only",
    reference="Wu et al., How to Listen? Rethinking Visual Sound Localization, INTERSPEECH 2022; "
              "github.com/hohsiangwu/rethinking-visual-sound-localization"))
