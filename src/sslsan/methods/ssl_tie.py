"""SSL-TIE (Liu et al., ACM MM 2022) and SSL-SaN (Juanola et al., BMVC 2025): one architecture, two methods.

Model: `sslsan.models.Localizer` (two ResNet-18 towers, layer4 stride 1, cosine map; docs/model.md §3).
Objective: `sslsan.losses.SSLTIEObjective` (tri-map contrastive + equivariance, §4). SSL-SaN is
SSL-TIE with the four silence/noise switches on by default (§5, DECISIONS D14). Original
checkpoints (github.com/jinxiang-liu/SSL-TIE; SSL-SaN's release) load as they are (D10).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from sslsan.audio import AudioConfig
from sslsan.config import ConfigError
from sslsan.losses.ssl_tie import SSLTIEObjective, TIEObjectiveConfig
from sslsan.methods import register_method
from sslsan.methods.base import VSSL_EVAL_THRESHOLD, ImageSpec, MapSpec, Method, OriginalCheckpoint, policy
from sslsan.models.backbones import get_backbone
from sslsan.models.checkpoint import strip_wrapper_prefixes
from sslsan.models.localizer import Localizer, ModelConfig

if TYPE_CHECKING:
    from sslsan.engine.train_config import TrainConfig

# top-level entries of SSL-TIE's own training checkpoints (docs/model.md §3.4)
ORIGINAL_TOP_LEVEL = ("epoch", "state_dict", "best_miou", "optimizer", "iteration")
DEAD_HEAD = ("conv3.", "norm3.", "vision_fc1.")  # AVENet modules its forward never uses

log = logging.getLogger("sslsan.methods")


def resolve(cfg: TrainConfig) -> TrainConfig:
    """The towers must exist and fit the images; the TE canvas is the training image size."""
    for key in ("image_backbone", "audio_backbone"):
        try:
            get_backbone(getattr(cfg.model, key))
        except ValueError as exc:
            raise ConfigError(f"model.{key}: {exc}") from None
    stride = get_backbone(cfg.model.image_backbone).stride
    if cfg.data.image_size < stride:
        raise ConfigError(f"data.image_size={cfg.data.image_size}: images smaller than the network's stride "
                          f"({stride} pixels) give no map")
    if cfg.objective.image_size != cfg.data.image_size:
        cfg = dataclasses.replace(cfg, objective=dataclasses.replace(cfg.objective, image_size=cfg.data.image_size))
    return cfg


def convert_original(ckpt: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], ModelConfig, list[str]]:
    """Original AVENet names onto ours -> (state dict, model config, entries our model does not use).

    The original towers carry three stems: the image tower uses `conv1` (3 channels), the audio tower
    `conv1_a` (1 channel); ours build only the used stem, always named `conv1`. Unused: the other
    stems, `conv1_flow`, `fc`, the dead `conv3`/`norm3`/`vision_fc1` head, a learned `epsilon`
    (docs/model.md §3.4), and top-level entries other than the training state.
    """
    sd = strip_wrapper_prefixes(ckpt["state_dict"])
    out, unused = {}, []
    for key, value in sd.items():
        if key.startswith("audnet.conv1_a."):
            out["audnet.conv1." + key[len("audnet.conv1_a."):]] = value
        elif "audnet.conv1_a.weight" in sd and key.startswith(("audnet.conv1.", "imgnet.conv1_a.")):
            unused.append(key)
        elif ".conv1_flow." in key or key.startswith(("imgnet.fc.", "audnet.fc.", *DEAD_HEAD)) or key == "epsilon":
            unused.append(key)
        else:  # the towers, and anything unknown: `load_strict` names what does not fit
            out[key] = value
    learned = ckpt.get("epsilon", sd.get("epsilon"))  # learnable-epsilon variant
    if isinstance(learned, (torch.Tensor, float)):
        log.warning("checkpoint carries a learned epsilon = %.4f (used only by the training loss)",
                    float(torch.as_tensor(learned).flatten()[0]))
    stem = out.get("imgnet.bn1.weight")
    if not isinstance(stem, torch.Tensor) or stem.ndim != 1:
        raise ValueError("no image tower (imgnet.bn1.weight) in its state_dict")
    unused += [f"<top level> {k}" for k in ckpt if k not in ORIGINAL_TOP_LEVEL]
    return out, ModelConfig(width=stem.shape[0] / 64), unused


def recognise_original(ckpt: Mapping[str, Any]) -> bool:
    """SSL-TIE's files: weights under `state_dict` with `imgnet.*` / `audnet.*` keys (any wrapper prefix)."""
    sd = ckpt.get("state_dict")
    if not isinstance(sd, Mapping):
        return False
    keys = strip_wrapper_prefixes({k: None for k in sd}).keys()
    return any(k.startswith("imgnet.") for k in keys) and any(k.startswith("audnet.") for k in keys)


def build_model(cfg: ModelConfig, generator: torch.Generator | None) -> Localizer:
    return Localizer(cfg, generator=generator)


ORIGINAL = OriginalCheckpoint(
    convert=convert_original, recognise=recognise_original,
    weights="SSL-TIE: the Google Drive / Baidu Pan links in the README of github.com/jinxiang-liu/SSL-TIE "
            "(vggsound144k.pth.tar); SSL-SaN: github.com/xavijuanola/SSL_SaN")

MAP = MapSpec("cosine", (0.0, 1.0), "bilinear")
# vssl_eval (datasets/datasets_ssltie.py, eval.py eval_ssltie): the same 10 s log-mel, but silence and noise fed as
# their linear mel power (the AmplitudeToDB lines are commented out); SSL-TIE's published U_th is eval.py's
# ssltie_th_maxq3
VSSL_EVAL_AUDIO = AudioConfig(negatives_in_db=False)


def policies(threshold: float | None) -> dict:
    """original: SSL-TIE's own front-end, silence and noise through it (D1); vssl_eval: as the SSL-SaN authors ran it."""
    return {"original": policy(AudioConfig(), ImageSpec(), MAP),
            "vssl_eval": policy(VSSL_EVAL_AUDIO, ImageSpec(), MAP, threshold)}


_COMMON = dict(model_config=ModelConfig, build_model=build_model, objective_config=TIEObjectiveConfig,
               build_objective=SSLTIEObjective, map=MAP, architecture="ssl_tie", audio=AudioConfig(), resolve=resolve,
               original=ORIGINAL)

register_method(Method(
    name="ssl_tie", label="SSL-TIE", silence_noise=False, policies=policies(VSSL_EVAL_THRESHOLD["ssl_tie"]), **_COMMON,
    description="tri-map contrastive + transformation equivariance, ResNet-18 towers, 14x14 cosine map",
    reference="Liu et al., Exploiting Transformation Invariance and Equivariance for Self-supervised Sound "
              "Localisation, ACM MM 2022; github.com/jinxiang-liu/SSL-TIE"))
register_method(Method(
    name="ssl_san", label="SSL-SaN", silence_noise=True, policies=policies(None), **_COMMON,
    description="SSL-TIE + silence and noise negatives (L_S, L_N, negative logits)",
    reference="Juanola et al., Learning to Localize Sounds only when they are Visible, BMVC 2025 "
              "(arXiv 2508.21761)"))
