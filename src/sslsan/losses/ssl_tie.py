"""SSL-TIE's own objective: the tri-map contrastive loss on two views plus transformation equivariance.

L = 0.5·(L_cl + L_cl_T) + te_weight·L_TE   (docs/model.md §4). SSL-SaN is this objective inside
`SilenceNoiseObjective` with its four switches on (+ λ_SN·(L_S + L_N), D2, D14).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sslsan.losses.contrastive import (
    ContrastiveLoss,
    cross_entropy_to_first,
    top1_accuracy,
)
from sslsan.losses.equivariance import EquivarianceLoss, EquivarianceTransform
from sslsan.methods.base import AVModel, MethodObjective, Views


@dataclass
class TIEObjectiveConfig:
    """Constants of SSL-TIE's objective (docs/model.md §4)."""

    epsilon: float = 0.65  # positive-mask threshold ε
    epsilon2: float = 0.4  # tri-map negative-mask threshold ε2
    tau: float = 0.03  # mask sharpness τ
    temperature: float = 0.07  # logit temperature T
    te_weight: float = 1.0  # weight of L_TE
    max_angle: int = 30  # TE rotation: integer degrees in [-max_angle, max_angle]
    scales: tuple[float, ...] = (1.0, 0.5)  # TE scale, one per batch, uniform over these
    flip_p: float = 0.5  # TE horizontal flip probability (one per batch)
    image_size: int = 224  # TE canvas (the training image size; TrainConfig keeps them equal)
    batch_views: bool = True  # one image forward for both views when they share a size (BN sees 2B)


class SSLTIEObjective(MethodObjective):
    """Views: the augmented images and their TE transform (drawn from the step's generator). Loss: the
    tri-map contrastive loss of each view (easy negatives = the other clips; the D14 columns appended)
    and the equivariance loss between the transformed view's map and the transformed map."""

    contrastive = True

    def __init__(self, cfg: TIEObjectiveConfig = TIEObjectiveConfig()):
        super().__init__()
        self.cfg = cfg
        self.contrastive_loss = ContrastiveLoss(cfg.epsilon, cfg.epsilon2, cfg.tau, cfg.temperature)
        self.transform = EquivarianceTransform(cfg.image_size, cfg.max_angle, cfg.scales, cfg.flip_p)
        self.equivariance = EquivarianceLoss(self.transform)

    def views(self, images: torch.Tensor, generator: torch.Generator | None) -> Views:
        cfg = self.cfg
        if images.ndim != 4 or tuple(images.shape[-2:]) != (cfg.image_size, cfg.image_size):
            raise ValueError(f"images must be (B, 3, {cfg.image_size}, {cfg.image_size}) for the TE canvas "
                             f"(objective.image_size), got {tuple(images.shape)}")
        params = self.transform.draw(images.shape[0], generator, device=images.device)
        grid = self.transform.sampling_grid(params)
        images_t = self.transform(images, params, grid).to(images.dtype)
        if images.is_contiguous(memory_format=torch.channels_last):
            images_t = images_t.contiguous(memory_format=torch.channels_last)
        return Views([images, images_t], context=(params, grid), batch_together=cfg.batch_views)

    def negative_logits(self, neg_maps: torch.Tensor) -> torch.Tensor:
        """D14: the spatial mean of the map, as the easy negatives' soft-masked averages see a pair."""
        return neg_maps.mean(dim=(2, 3))

    def loss(self, model: AVModel, features, audio, views: Views, extra_logits):
        (v, v_t), (params, grid) = features, views.context
        cross, cross_t = model.cross_map(v, audio), model.cross_map(v_t, audio)
        sim, sim_t = model.pair_map(v, audio), model.pair_map(v_t, audio)
        logits, pos_mask, neg_mask = self.contrastive_loss.logits(sim, cross, extra_logits(0))
        logits_t, _, _ = self.contrastive_loss.logits(sim_t, cross_t, extra_logits(1))
        loss_cl, loss_cl_t = cross_entropy_to_first(logits), cross_entropy_to_first(logits_t)
        loss_te = self.equivariance(sim_t, sim, params, grid)
        parts = {"contrastive": 0.5 * (loss_cl + loss_cl_t), "equivariance": self.cfg.te_weight * loss_te}
        terms = {"loss_cl": loss_cl, "loss_cl_t": loss_cl_t, "loss_te": loss_te,
                 "acc_top1": top1_accuracy(logits), "acc_top1_t": top1_accuracy(logits_t),
                 "te_scale": torch.full((), params.scale, device=v.device),
                 # share of the map the tri-map masks Pos / Neg cover
                 "diag_pos_mask": pos_mask.detach().mean(), "diag_neg_mask": neg_mask.detach().mean()}
        return parts, terms
