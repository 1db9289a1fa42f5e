"""SSL-Align (Senocak, Ryu, Kim et al., "Sound Source Localization is All about Cross-Modal Alignment",
ICCV 2023; github.com/kaistmm/SSLalignment), evaluation of its released checkpoints.

Model: its test.py builds LVS's network for its own files (`model_lvs.py AVENet`: `imgnet`, `audnet`,
ResNet-18 towers with layer4 stride 1; a parameter-free sigmoid and max pool), so it is LVS's model
here (`sslsan.methods.lvs`): the map is the cosine of the L2-normalised features, in [0, 1]. Its three
VGGSound-144K releases, `ours_sup.pth.tar` (NN w/ Sup. Pre. Enc.), `ours_selfsup.pth.tar` (NN w/
Self-Sup. Pre. Enc.) and `ours_sup_previs.pth.tar` (NN w/ Sup. Pre. Enc. Pre-trained Vision), are all
loaded by that one code path into that one model: the variants differ in training, not in modules.

Checkpoints: `{'model_state_dict': weights}` without a `module.` prefix; test.py adds the prefix and loads
with `strict=False` into a DataParallel model it first fills with its own random weights, so a missing
entry silently keeps a random weight and an unexpected one is silently dropped. sslsan reads the
same entries strictly (`convert_original`): every `imgnet.*` / `audnet.*` weight must be there with
its shape, the unused stems and classifier of the towers are reported, anything else is refused.

Front-end (datasets_lvs.py `GetAudioVideoDataset.__getitem__`): the file tiled to 10 s, samples
[16000·3.5, 16000·6.5), scipy.signal.spectrogram(nperseg=512, noverlap=353) (hop 159), log(S + 1e-7),
Normalize(0, 12); the image ToTensor, Resize((224, 224)) bicubic, CenterCrop(224) (a no-op), ImageNet
mean/std. The SSL-SaN authors' evaluation (vssl_eval) uses the same loader for LVS and SSL-Align,
feeding silence and noise through the same log spectrogram. SSL-Align's training code is not
released: sslsan does not train it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from sslsan.config import ConfigError
from sslsan.methods import register_method
from sslsan.methods.base import MapSpec, Method, OriginalCheckpoint, policy
from sslsan.methods.lvs import AUDIO_ALIGN, IMAGE_ALIGN, WEIGHTS_KEY, LVSObjectiveConfig, build_model
from sslsan.methods.lvs import convert_original as convert_lvs
from sslsan.methods.lvs import recognise_original as recognise_lvs
from sslsan.models.checkpoint import WRAPPER_PREFIXES, strip_wrapper_prefixes
from sslsan.models.localizer import ModelConfig

if TYPE_CHECKING:
    from sslsan.engine.train_config import TrainConfig

AUDIO, IMAGE = AUDIO_ALIGN, IMAGE_ALIGN  # datasets_lvs.py (sslsan.methods.lvs)
MAP = MapSpec("cosine", (0.0, 1.0), "bilinear")  # test.py on VGG-SS: cv2.resize INTER_LINEAR
TOWERS = ("imgnet.", "audnet.")
VARIANTS = {
    "ours_sup.pth.tar": "VGGSound-144K, NN w/ Sup. Pre. Enc. (weakly supervised)",
    "ours_selfsup.pth.tar": "VGGSound-144K, NN w/ Self-Sup. Pre. Enc. (self-supervised)",
    "ours_sup_previs.pth.tar": "VGGSound-144K, NN w/ Sup. Pre. Enc. Pre-trained Vision (weakly supervised)",
}


def convert_original(ckpt: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], ModelConfig, list[str]]:
    """{'model_state_dict'} (no prefix) -> LVS's model (LVS's reader), strictly: AVENet has no parameters outside
    its towers, so an entry outside `imgnet.*` / `audnet.*` stays in for `load_strict` to report as unexpected
    (test.py's strict=False would drop it silently)."""
    out, cfg, unused = convert_lvs(ckpt)
    foreign = {k: v for k, v in strip_wrapper_prefixes(ckpt[WEIGHTS_KEY]).items() if not k.startswith(TOWERS)}
    return {**out, **foreign}, cfg, [k for k in unused if k not in foreign]


def recognise_original(ckpt: Mapping[str, Any]) -> bool:
    """LVS's layout under `model_state_dict`, saved without a wrapper prefix (LVS's own files carry `module.`)."""
    return recognise_lvs(ckpt) and not any(str(k).startswith(WRAPPER_PREFIXES) for k in ckpt[WEIGHTS_KEY])


def resolve(cfg: TrainConfig) -> TrainConfig:
    raise ConfigError("method sslalign: SSL-Align's training code is not released and sslsan does not train it; "
                      "evaluate its released checkpoints with `sslsan evaluate --method sslalign`")


register_method(Method(
    name="sslalign", label="SSL-Align", model_config=ModelConfig, build_model=build_model,
    objective_config=LVSObjectiveConfig, build_objective=lambda cfg: resolve(None),
    map=MAP, image=IMAGE, audio=AUDIO, resolve=resolve, trainable=False,
    original=OriginalCheckpoint(
        convert=convert_original, recognise=recognise_original,
        weights="the Google Drive links in the README of github.com/kaistmm/SSLalignment (VGGSound-144K: "
                "ours_sup.pth.tar, ours_selfsup.pth.tar, ours_sup_previs.pth.tar)"),
    policies={
        "original": policy(AUDIO, IMAGE, MAP),
        # vssl_eval (datasets/datasets_lvs.py, eval.py eval_lvs): the same loader, silence and noise through the
        # same log spectrogram; its one SSL-Align threshold (0.3175) is that of ours_sup_previs (eval.py renames
        # that file "sslalign"), so it is not attached to every variant here (docs/methods.md)
        "vssl_eval": policy(AUDIO, IMAGE, MAP),
    },
    description="LVS's network trained for cross-modal alignment; its released VGGSound-144K files (three "
                "variants), evaluation only",
    reference="Senocak et al., Sound Source Localization is All about Cross-Modal Alignment, ICCV 2023; "
              "github.com/kaistmm/SSLalignment"))
