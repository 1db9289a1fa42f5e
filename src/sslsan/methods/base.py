"""The seam of a localization method: its model, its own objective, and how it is evaluated.

A method is one module of `sslsan.methods` that registers a `Method`:

* its model, an `AVModel`: an image encoder that gives a feature map, an audio encoder that gives one
  embedding per clip, and the similarity map the two define (`cross_map` / `pair_map`: the one
  place where any part of sslsan turns features into a map);
* its own training objective, a `MethodObjective` (SSL-TIE's tri-map contrastive + equivariance,
  EZ-VSL's multiple-instance contrastive, ...); silence and noise (L_S, L_N and the negative logits
  of DECISIONS D14) wrap any of them (`sslsan.losses.silence_noise.SilenceNoiseObjective`);
* how it is evaluated: the map's kind, native range and upsampling (`MapSpec`), the test image
  transform (`ImageSpec`); with the audio front-end and the image size these make the
  `InferenceSpec` that every checkpoint carries;
* optionally a reader of the method's original checkpoint files (`OriginalCheckpoint`).
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sslsan.audio import AudioConfig
from sslsan.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from sslsan.metrics.resample import check_mode

if TYPE_CHECKING:
    from sslsan.engine.train_config import TrainConfig



@dataclass(frozen=True)
class MapSpec:
    """What a method's evaluation map is."""

    kind: str  # e.g. "cosine" (post-ReLU cosine), "cosine01" ((cos + 1) / 2), "gradcam"
    range: tuple[float, float] = (0.0, 1.0)  # the values it can take
    # how it is brought to the 224 x 224 ground truth (sslsan.metrics.resample.UPSAMPLE_MODES): "bilinear"
    # is cv2's half-pixel INTER_LINEAR (the reference protocol, D5); EZ-VSL's and FNAC's own tests use
    # "bilinear_align_corners", SLAVC's "bicubic_align_corners"
    upsample: str = "bilinear"

    def __post_init__(self):
        check_mode(self.upsample)


@dataclass(frozen=True)
class ImageSpec:
    """The test image transform: resize (bicubic), optional centre crop, normalisation."""

    crop: bool = False  # False: squash the whole frame to size x size (D4); True: shorter side to size, centre crop
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


@dataclass
class InferenceSpec:
    """Everything inference needs besides the weights; saved in every checkpoint (`to_dict`)."""

    method: str
    audio: AudioConfig = field(default_factory=AudioConfig)
    image_size: int = 224
    image: ImageSpec = field(default_factory=ImageSpec)
    map: MapSpec = field(default_factory=lambda: MapSpec("cosine"))
    universal_threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InferenceSpec:
        """The inverse of `to_dict` (a TypeError/ValueError for entries that do not fit)."""
        d = dict(d)
        image, map_ = dict(d.pop("image", {})), dict(d.pop("map", {}))
        for key in ("mean", "std"):
            if key in image:
                image[key] = tuple(image[key])
        if "range" in map_:
            map_["range"] = tuple(map_["range"])
        audio = AudioConfig(**d.pop("audio", {}))
        spec = cls(audio=audio, image=ImageSpec(**image), map=MapSpec(**map_), **d)
        if spec.universal_threshold is not None:
            spec.universal_threshold = float(spec.universal_threshold)
        return spec

    def replace(self, **changes: Any) -> InferenceSpec:
        return dataclasses.replace(self, **changes)


# D15's default: how silence/noise negatives meet the audio BatchNorm unless a method names another
DEFAULT_NEGATIVES_BN = "running_stats"

# Front-end policies for a method's released checkpoints: how the authors' own repository feeds and
# reads the model ("original"), or how the SSL-SaN authors' evaluation code (vssl_eval) did for the
# paper's Table 2 ("vssl_eval"): clip length, image transform, map convention, upsampling.
POLICIES = ("original", "vssl_eval")
DEFAULT_POLICY = "original"  # D1: the same front-end for negatives as for positives
# the universal thresholds vssl_eval uses for the released VGG-SS files (eval.py main, `<method>_th_maxq3`: the Q3 of
# the negatives' maxima); its SSL-Align one (0.3175) belongs to ours_sup_previs only
VSSL_EVAL_THRESHOLD = {"ezvsl": 0.6382, "slavc": 0.5450, "fnac": 0.5538, "lvs": 0.6077, "ssl_tie": 0.3338}


def policy(audio: AudioConfig, image: ImageSpec, map: MapSpec, universal_threshold: float | None = None,
           image_size: int = 224) -> InferenceSpec:
    """The spec of one front-end policy, for `Method.policies` (`Method.policy_spec` fills in the method's name);
    `universal_threshold`: one published for the released file, if any."""
    return InferenceSpec(method="", audio=audio, image_size=image_size, image=image, map=map,
                         universal_threshold=universal_threshold)


@contextlib.contextmanager
def batchnorm_running_stats(modules: Sequence[nn.Module]) -> Iterator[None]:
    """Inside the block, the BatchNorm layers of `modules` normalise with (and do not update) their
    running statistics, as every input is normalised at evaluation."""
    norms = [m for mod in modules for m in mod.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    for m in norms:
        m.train(False)
    try:
        yield
    finally:
        for m in norms:
            m.train(True)


TensorOrTensors = torch.Tensor | Sequence[torch.Tensor] | None


class AVModel(nn.Module, abc.ABC):
    """Base class of every method's model.

    A subclass defines `image_features` (B, 3, H, W) -> (B, D, h, w) and `audio_embedding`
    (B, 1, F, T) -> (B, E). The map is defined here once, for every caller (training, evaluation,
    `localize`, `serve`): by default the features hold `heads` stacked L2-normalised vectors per
    position (D = E = heads * C), the cosine of a position with a clip is the mean over heads, and
    `to_map` turns cosines into the method's evaluation map (identity for SSL-TIE). A method whose
    map is not a cosine (e.g. GradCAM) overrides `cross_map` and `pair_map` together.
    """

    heads: int = 1
    audio_modules: tuple[str, ...] = ("audnet",)  # submodules that encode audio (BatchNorm handling, D15)

    @abc.abstractmethod
    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, D, h, w) features whose positions the map is made of."""

    @abc.abstractmethod
    def audio_embedding(self, specs: torch.Tensor, *, with_norm: bool = False):
        """(B, 1, F, T) -> (B, E); `with_norm=True` also returns the (B,) norms before normalisation."""

    def to_map(self, cosine: torch.Tensor) -> torch.Tensor:
        """The evaluation map from cosines (the identity: maps are cosines)."""
        return cosine

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(1, (self.heads, -1))

    def cross_cosine(self, features: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """The cosine of every position of every image with every clip: (N, D, h, w), (K, E) -> (N, K, h, w)."""
        if self.heads == 1:
            return torch.einsum("nchw,kc->nkhw", features, embeddings)
        return torch.einsum("nschw,ksc->nkhw", self._heads(features), self._heads(embeddings)) / self.heads

    def pair_cosine(self, features: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """The cosine map of image b with clip b: (B, D, h, w), (B, E) -> (B, 1, h, w)."""
        if self.heads == 1:
            cos = torch.einsum("bchw,bc->bhw", features, embeddings)
        else:
            cos = torch.einsum("bschw,bsc->bhw", self._heads(features), self._heads(embeddings)) / self.heads
        return cos.unsqueeze(1)

    def cross_map(self, features: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """The evaluation map of every image with every clip: (N, D, h, w), (K, E) -> (N, K, h, w)."""
        return self.to_map(self.cross_cosine(features, embeddings))

    def pair_map(self, features: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """The evaluation map of image b with clip b: (B, D, h, w), (B, E) -> (B, 1, h, w)."""
        return self.to_map(self.pair_cosine(features, embeddings))

    def similarity_map(self, images: torch.Tensor, specs: torch.Tensor) -> torch.Tensor:
        """The map of image b with spectrogram b: (B, 1, h, w)."""
        return self.pair_map(self.image_features(images), self.audio_embedding(specs))

    def image_vector(self, features: torch.Tensor) -> torch.Tensor:
        """One L2-normalised vector per image, for Magnitude/Alignment (DECISIONS D11): the spatial mean
        of the feature map. (B, D, h, w) -> (B, D)."""
        return F.normalize(features.mean(dim=(-2, -1)), dim=1)

    def audio_vector(self, embeddings: torch.Tensor) -> torch.Tensor:
        """One L2-normalised vector per clip, comparable with `image_vector` (D11). (B, E) -> (B, E)."""
        return F.normalize(embeddings, dim=1)

    def audio_parameters(self) -> list[nn.Parameter]:
        return [p for name in self.audio_modules for p in getattr(self, name).parameters()]

    def tower_parameters(self) -> dict[str, list[nn.Parameter]]:
        """{"img": ..., "aud": ...}: the parameters of each encoder (per-tower gradient norms)."""
        aud = {id(p) for p in self.audio_parameters()}
        return {"img": [p for p in self.parameters() if id(p) not in aud], "aud": self.audio_parameters()}

    def forward(self, images: TensorOrTensors = None, specs: TensorOrTensors = None, *,
                running_stats_specs: torch.Tensor | None = None, with_norms: bool = False):
        """Encode images and/or spectrograms -> (image_features, audio_embedding[, running_stats_embedding]).

        Each of `images`, `specs` is a tensor, a sequence of tensors or None; every tensor of a sequence
        is its own encoder call (its own BatchNorm batch), and the result mirrors the argument's
        structure. `running_stats_specs` are encoded with the audio encoder's BatchNorm layers using
        their running statistics, as every input is at evaluation (and without updating them); when
        given, their embeddings come third. `with_norms` makes every audio result an (embedding, norm)
        pair. Putting every encoder call of a training step into one `forward` keeps DDP's hooks correct.
        """
        embed = lambda x: self.audio_embedding(x, with_norm=with_norms)  # noqa: E731
        out = (_map(self.image_features, images), _map(embed, specs))
        if running_stats_specs is None:
            return out
        with batchnorm_running_stats([getattr(self, name) for name in self.audio_modules]):
            return (*out, embed(running_stats_specs))


def _map(fn, x: TensorOrTensors):
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return fn(x)
    return [fn(t) for t in x]


@dataclass
class Views:
    """The image batches one training step encodes (view 0 is the untransformed one) and what the
    objective needs to remember about how the others were made."""

    images: list[torch.Tensor]
    context: Any = None
    batch_together: bool = True  # encode all views as one batch when their shapes match (BatchNorm sees them together)
    # the positive clips' spectrograms (B, 1, F, T), set by SilenceNoiseObjective: for objectives that run
    # encoders of their own (SLAVC's momentum targets)
    specs: torch.Tensor | None = None


class MethodObjective(nn.Module, abc.ABC):
    """A method's own training objective, before silence and noise.

    `SilenceNoiseObjective` calls `views`, encodes every view and the clips in one model call, then
    `loss`. A contrastive objective also says how a negative clip's map enters its logits
    (`negative_logits`, DECISIONS D14); `loss` then appends the columns `extra_logits(view)` gives
    (None: no negatives for that view) to the image-to-audio logits of each view.
    """

    contrastive: bool = False

    def views(self, images: torch.Tensor, generator: torch.Generator | None) -> Views:
        """The image batches to encode (default: the images only)."""
        return Views([images])

    @abc.abstractmethod
    def loss(self, model: AVModel, features: list[torch.Tensor], audio: torch.Tensor, views: Views,
             extra_logits: Callable[[int], torch.Tensor | None]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """-> (parts, terms): the weighted loss components whose sum is the loss (named), and every
        scalar to log (loss terms `loss_*`, accuracies, `diag_*` diagnostics), fp32.

        features[v]: view v's image features (fp32); audio: (B, E) positive embeddings (fp32);
        extra_logits(v): (B, k) extra negative columns for view v (already reduced by
        `negative_logits`, not yet divided by any temperature) or None; call it after computing the
        method's own maps.
        """

    def set_epoch(self, epoch: int) -> None:
        """Called by the training loop before each epoch (0-based): for schedules counted in epochs (FNAC's
        warm-up). Nothing by default."""

    def negative_logits(self, neg_cosines: torch.Tensor) -> torch.Tensor:
        """(B, k, h, w) cosine maps of each image with k negative clips -> (B, k) similarities as this
        method's logits see a pair (before their temperature), or (B, k, h, w) for an objective whose logits
        are per position (SLAVC); the columns of several negatives are concatenated along dim 1."""
        raise TypeError(f"{type(self).__name__} is not contrastive: it takes no negative logits")


@dataclass(frozen=True)
class OriginalCheckpoint:
    """How a method's original checkpoint files are read."""

    # raw checkpoint (a dict as torch.load returns it) -> (our state dict, model config, entries ignored);
    # raises ValueError (one line) when the file does not fit
    convert: Callable[[Mapping[str, Any]], tuple[dict[str, torch.Tensor], Any, list[str]]]
    # does this raw checkpoint look like this method's? (to name the method of a wrong checkpoint)
    recognise: Callable[[Mapping[str, Any]], bool]
    # how the authors link their weights (for docs and messages)
    weights: str = ""


@dataclass(frozen=True)
class Method:
    """A registered localization method (see the module docstring)."""

    name: str  # registry key, run folders, `--method NAME`
    label: str  # how reports show it, e.g. "EZ-VSL"
    model_config: type  # dataclass of the architecture (TrainConfig.model)
    build_model: Callable[[Any, torch.Generator | None], AVModel]  # (model config, init generator) -> model
    objective_config: type  # dataclass of the method's own objective (TrainConfig.objective)
    build_objective: Callable[[Any], MethodObjective]
    map: MapSpec
    image: ImageSpec = ImageSpec()
    architecture: str = ""  # methods sharing weights layouts (ssl_tie / ssl_san) share this; default: the name
    silence_noise: bool = False  # the SaN switches' default (True only for SSL-SaN itself)
    # how its silence/noise negatives meet the audio encoder's BatchNorm by default (DECISIONS D15)
    negatives_bn: str = DEFAULT_NEGATIVES_BN
    audio: AudioConfig = field(default_factory=AudioConfig)  # its own front-end (the original code's): the default
    image_size: int = 224  # the test image size of its original checkpoints
    # fills settings that follow from others (e.g. SSL-TIE's TE canvas = data.image_size) and refuses
    # settings the method cannot train with (ConfigError naming the key)
    resolve: Callable[[TrainConfig], TrainConfig] | None = None
    trainable: bool = True  # False: evaluation of its released files only (its `resolve` refuses training)
    original: OriginalCheckpoint | None = None
    # specs of its released checkpoints per front-end policy (POLICIES; "original" defaults to `audio`,
    # `image_size`, `image`, `map`); universal_threshold: a published one, if any
    policies: Mapping[str, InferenceSpec] = field(default_factory=dict)
    description: str = ""
    reference: str = ""  # paper and code

    @property
    def family(self) -> str:
        return self.architecture or self.name

    def inference_spec(self, audio: AudioConfig, image_size: int, universal_threshold: float | None = None) -> InferenceSpec:
        """The spec of a model this method trained with `audio` and `image_size`."""
        return InferenceSpec(method=self.name, audio=audio, image_size=int(image_size), image=self.image,
                             map=self.map, universal_threshold=universal_threshold)

    def policy_spec(self, policy: str = "original") -> InferenceSpec:
        """The spec of the method's released checkpoints under a front-end policy (POLICIES)."""
        if policy not in POLICIES:
            raise ValueError(f"unknown front-end policy {policy!r}; expected one of {POLICIES}")
        if policy in self.policies:
            return dataclasses.replace(self.policies[policy], method=self.name)
        if policy == "original":
            return self.inference_spec(dataclasses.replace(self.audio), self.image_size)
        raise ValueError(f"{self.label} has no {policy!r} front-end policy (it has: original"
                         f"{''.join(', ' + p for p in self.policies if p != 'original')})")

