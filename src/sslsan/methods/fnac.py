"""FNAC (Sun et al., CVPR 2023), as its code does it (github.com/OpenNLPLab/FNAC_AVL, docs/methods.md).

Model (model.py `FNAC`): EZ-VSL's, with dropout 0.9 on the image tower's map (its training scripts);
the same weights layout, map, test transform and 3 s audio. Its test.py reports two upsamplings of the
map: `validate` (bilinear, align_corners=True: sslsan's choice, also vssl_eval's) and `validate2`
(bicubic, align_corners=False).

Objective (`calculate_loss`, train.py): EZ-VSL's multiple-instance contrastive loss plus three
regularisers, each the mean absolute difference of two row-softmaxed B x B similarity matrices (all
divided by τ = 0.03):
  FNS-1: audio-audio similarities vs the MIL logits;
  TNS:   audio-audio vs foreground-image similarities (each image's features where its own min-max
         normalised map exceeds 0.6, averaged over the whole map);
  FNS-2: image-image similarities (spatial means of the features) vs the MIL logits;
weighted 100 each after `warmup_epochs` epochs of the contrastive loss alone (5 in its scripts).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sslsan.methods import register_method
from sslsan.methods.base import VSSL_EVAL_THRESHOLD, AVModel, Method, policy
from sslsan.methods.ezvsl import (
    AUDIO_3S,
    EZVSL_KEYS,
    EZVSL_TOP_LEVEL,
    SLAVC_KEYS,
    SQUASH_224,
    EZVSLModel,
    EZVSLModelConfig,
    EZVSLObjective,
    config_from_weights,
    original_reader,
    pair_logits,
)
from sslsan.methods.ezvsl import (
    MAP as EZVSL_MAP,
)
from sslsan.methods.ezvsl import resolve as resolve_ezvsl


@dataclass
class FNACModelConfig(EZVSLModelConfig):
    """EZ-VSL's model with FNAC's dropout (train_*.sh: --dropout_img 0.9 --dropout_aud 0)."""

    dropout_img: float = 0.9


@dataclass
class FNACObjectiveConfig:
    tau: float = 0.03  # temperature (--tau)
    fns1_weight: float = 100.0  # --fnac_loss1_weight: audio-audio vs MIL logits
    tns_weight: float = 100.0  # --fnac_loss2_weight: audio-audio vs foreground-image
    fns2_weight: float = 100.0  # --fnac_loss3_weight: image-image vs MIL logits
    foreground_threshold: float = 0.6  # model.py high_conf_thresh, on the min-max normalised map
    # epochs of the contrastive loss alone before the regularisers join (train_*.sh --warmup 5; train.py's
    # default 3). Training only: validation losses always include them, so epochs stay comparable.
    warmup_epochs: int = 5


def row_softmax_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean |softmax(a) - softmax(b)| with softmax along rows (F.l1_loss of FNAC's pairs)."""
    return F.l1_loss(F.softmax(a, dim=1), F.softmax(b, dim=1))


class FNACObjective(EZVSLObjective):
    """EZ-VSL's MIL contrastive loss (D14 negatives as its extra image→audio columns) plus FNS-1, TNS, FNS-2
    on the B x B similarities (the negatives do not enter them)."""

    def __init__(self, cfg: FNACObjectiveConfig = FNACObjectiveConfig()):
        super().__init__(cfg)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def regularisers(self, img: torch.Tensor, aud: torch.Tensor, cross: torch.Tensor) -> dict[str, torch.Tensor]:
        """FNS-1, TNS, FNS-2 of image features (B, C, h, w), clip embeddings (B, C) and their cosines (B, B, h, w)."""
        tau, b = self.cfg.tau, img.shape[0]
        slogits = cross / tau
        logits = pair_logits(slogits)
        aud_attn = aud @ aud.T / tau
        img_avg = img.mean(dim=(2, 3))
        own = torch.arange(b, device=img.device)
        loc = slogits[own, own]  # each image's map with its own clip, min-max normalised
        low, high = loc.amin(dim=(1, 2), keepdim=True), loc.amax(dim=(1, 2), keepdim=True)
        loc = (loc - low) / (high - low + 1e-5)
        foreground = (img * (loc > self.cfg.foreground_threshold).unsqueeze(1)).flatten(2).mean(dim=2)
        return {"fns1": row_softmax_l1(aud_attn, logits), "tns": row_softmax_l1(aud_attn, foreground @ foreground.T / tau),
                "fns2": row_softmax_l1(img_avg @ img_avg.T / tau, logits)}

    def loss(self, model: AVModel, features, audio, views, extra_logits):
        cfg = self.cfg
        parts, terms, cross = self.contrastive_loss(features[0], audio, extra_logits)
        reg = self.regularisers(features[0], audio, cross)
        terms.update({f"loss_{k}": v for k, v in reg.items()})
        if not self.training or self.epoch >= cfg.warmup_epochs:
            parts.update({k: w * reg[k] for k, w in (("fns1", cfg.fns1_weight), ("tns", cfg.tns_weight),
                                                     ("fns2", cfg.fns2_weight))})
        return parts, terms


ORIGINAL = original_reader(
    EZVSL_TOP_LEVEL, lambda sd: FNACModelConfig(**config_from_weights(sd)), EZVSL_KEYS, SLAVC_KEYS,
    weights="the Google Drive folder linked in the README of github.com/OpenNLPLab/FNAC_AVL (best.pth per training "
            "set); EZ-VSL's files have the same layout: name the method with --method")


def build_model(cfg: FNACModelConfig, generator: torch.Generator | None) -> EZVSLModel:
    return EZVSLModel(cfg, generator)


register_method(Method(
    name="fnac", label="FNAC", model_config=FNACModelConfig, build_model=build_model,
    objective_config=FNACObjectiveConfig, build_objective=FNACObjective,
    map=EZVSL_MAP, image=SQUASH_224, audio=AUDIO_3S,
    resolve=resolve_ezvsl, original=ORIGINAL,
    negatives_bn="with_positives",  # D15: silence/noise negatives share the positives' BatchNorm batch
    # its test.py reports validate (bilinear, align_corners=True) and validate2 (bicubic, align_corners=False): the
    # first here; vssl_eval keeps its 3 s centred clip (load_spectrogram_fnac) and feeds silence and noise linear
    policies={"original": policy(AUDIO_3S, SQUASH_224, EZVSL_MAP),
              "vssl_eval": policy(dataclasses.replace(AUDIO_3S, negatives_in_db=False), SQUASH_224,
                                  EZVSL_MAP, VSSL_EVAL_THRESHOLD["fnac"])},
    description="EZ-VSL + false-negative-aware regularisers (FNS-1, TNS, FNS-2, weight 100 after 5 warm-up "
                "epochs), dropout 0.9, 7x7 map, (cos+1)/2",
    reference="Sun et al., Learning Audio-Visual Source Localization via False Negative Aware Contrastive "
              "Learning, CVPR 2023; github.com/OpenNLPLab/FNAC_AVL"))
