"""The full training objective: SSL-TIE (contrastive + TE) plus SSL-SaN's silence/noise terms.

L = 0.5·(L_cl + L_cl_T) + te_weight·L_TE + λ_SN·(L_S + L_N)   (model_spec §4-5, DECISIONS D2, D14)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from sslsan.losses.contrastive import ContrastiveLoss, top1_accuracy
from sslsan.losses.equivariance import EquivarianceLoss, EquivarianceTransform
from sslsan.losses.silence_noise import SilenceNoiseLoss
from sslsan.models.localizer import Localizer


@dataclass
class ObjectiveConfig:
    """Constants of the objective and the four SSL-SaN switches (all on = SSL-SaN, all off = SSL-TIE)."""

    epsilon: float = 0.65  # positive-mask threshold ε
    epsilon2: float = 0.4  # tri-map negative-mask threshold ε2
    tau: float = 0.03  # mask sharpness τ
    temperature: float = 0.07  # logit temperature T
    te_weight: float = 1.0  # weight of L_TE
    max_angle: int = 30  # TE rotation: integer degrees in [-max_angle, max_angle]
    scales: tuple[float, ...] = (1.0, 0.5)  # TE scale, one per batch, uniform over these
    flip_p: float = 0.5  # TE horizontal flip probability (one per batch)
    image_size: int = 224  # TE canvas (the training image size)
    use_silence: bool = True  # D14: silence map (spatial mean) as an extra contrastive negative
    use_noise: bool = True  # D14: noise map as an extra contrastive negative
    loss_silence: bool = True  # D2: add L_S
    loss_noise: bool = True  # D2: add L_N
    lambda_sn: float = 1.0  # λ_SN
    san_reduction: Literal["sum", "mean"] = "sum"  # D2: L_S/L_N over pixels
    negatives_in_te_view: bool = True  # D14 logits also in L_cl_T (L_S/L_N stay on the original view)
    batch_views: bool = True  # one image forward for both views when they share a size (BN sees 2B)

    @property
    def needs_silence(self) -> bool:
        return self.use_silence or self.loss_silence

    @property
    def needs_noise(self) -> bool:
        return self.use_noise or self.loss_noise


def _check_spec(name: str, spec: torch.Tensor | None, rows: int, like: torch.Tensor) -> torch.Tensor:
    if spec is None:
        raise ValueError(f"{name} is required by the objective's switches but was not given")
    if spec.ndim != 4 or spec.shape[0] != rows or spec.shape[1:] != like.shape[1:]:
        raise ValueError(f"{name} must have shape ({rows}, {', '.join(map(str, like.shape[1:]))}), "
                         f"got {tuple(spec.shape)}")
    return spec.to(device=like.device, dtype=like.dtype)


class SSLSaNObjective(nn.Module):
    """Computes the loss of one training step from the model and the batch.

    Every tower call goes through one `model(...)` call (DDP-safe): the audio tower once for the
    positives (the original runs it twice on identical input), both image views in one batch when
    their sizes match, and the negatives (1 silence + B noise) in one extra audio batch whose
    embeddings meet the already computed image features.
    """

    def __init__(self, cfg: ObjectiveConfig = ObjectiveConfig()):
        super().__init__()
        self.cfg = cfg
        self.contrastive = ContrastiveLoss(cfg.epsilon, cfg.epsilon2, cfg.tau, cfg.temperature)
        self.transform = EquivarianceTransform(cfg.image_size, cfg.max_angle, cfg.scales, cfg.flip_p)
        self.equivariance = EquivarianceLoss(self.transform)
        self.silence_noise = SilenceNoiseLoss(cfg.san_reduction)

    def forward(self, model: nn.Module, images: torch.Tensor, specs: torch.Tensor,
                silence_spec: torch.Tensor | None = None, noise_specs: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """images (B,3,H,W) augmented; specs (B,1,F,T); silence_spec (1,1,F,T); noise_specs (B,1,F,T).

        Returns (loss, terms): terms holds every loss term, the top-1 accuracy of both views and
        the mean negative maps, all detached. TE draws come from `generator` (CPU generator).
        """
        cfg, b = self.cfg, images.shape[0]
        if images.ndim != 4 or tuple(images.shape[-2:]) != (cfg.image_size, cfg.image_size):
            raise ValueError(f"images must be (B, 3, {cfg.image_size}, {cfg.image_size}) for the TE canvas "
                             f"(ObjectiveConfig.image_size), got {tuple(images.shape)}")
        params = self.transform.draw(b, generator, device=images.device)
        grid = self.transform.sampling_grid(params)
        images_t = self.transform(images, params, grid).to(images.dtype)
        if images.is_contiguous(memory_format=torch.channels_last):
            images_t = images_t.contiguous(memory_format=torch.channels_last)

        negatives = []
        if cfg.needs_silence:
            negatives.append(_check_spec("silence_spec", silence_spec, 1, specs))
        if cfg.needs_noise:
            negatives.append(_check_spec("noise_specs", noise_specs, b, specs))
        spec_batches = [specs] + ([torch.cat(negatives)] if negatives else [])
        same_size = images_t.shape == images.shape
        image_batches = [torch.cat([images, images_t])] if cfg.batch_views and same_size else [images, images_t]

        feats, embs = model(image_batches, spec_batches)
        v, v_t = feats[0].split(b) if len(feats) == 1 else feats
        aud = embs[0]

        with torch.autocast(images.device.type, enabled=False):
            v, v_t, aud = v.float(), v_t.float(), aud.float()
            cross, cross_t = Localizer.cross_map(v, aud), Localizer.cross_map(v_t, aud)
            sim, sim_t = Localizer.pair_map(v, aud), Localizer.pair_map(v_t, aud)
            neg_maps, extra, extra_t = {}, [], []
            if negatives:
                neg = embs[1].float()
                if cfg.needs_silence:  # one shared silence embedding against every image
                    neg_maps["silence"] = (Localizer.cross_map(v, neg[:1]), Localizer.cross_map(v_t, neg[:1]),
                                           cfg.use_silence, cfg.loss_silence)
                if cfg.needs_noise:  # noise clip j against image j
                    neg_maps["noise"] = (Localizer.pair_map(v, neg[-b:]), Localizer.pair_map(v_t, neg[-b:]),
                                         cfg.use_noise, cfg.loss_noise)
            for s_map, s_map_t, as_logit, _ in neg_maps.values():
                if as_logit:
                    extra.append(s_map.mean(dim=(2, 3)))
                    extra_t.append(s_map_t.mean(dim=(2, 3)))
            extra_cols = torch.cat(extra, dim=1) if extra else None
            extra_cols_t = torch.cat(extra_t, dim=1) if extra_t and cfg.negatives_in_te_view else None

            loss_cl, logits = self.contrastive(sim, cross, extra_cols)
            loss_cl_t, logits_t = self.contrastive(sim_t, cross_t, extra_cols_t)
            loss_te = self.equivariance(sim_t, sim, params, grid)
            loss = 0.5 * (loss_cl + loss_cl_t) + cfg.te_weight * loss_te
            terms = {"loss_cl": loss_cl, "loss_cl_t": loss_cl_t, "loss_te": loss_te}
            for name, (s_map, _, _, as_loss) in neg_maps.items():
                if as_loss:
                    terms[f"loss_{name}"] = self.silence_noise(s_map)
                    loss = loss + cfg.lambda_sn * terms[f"loss_{name}"]
                terms[f"{name}_map_mean"] = s_map.mean()
            terms.update(loss=loss, acc_top1=top1_accuracy(logits), acc_top1_t=top1_accuracy(logits_t),
                         te_scale=torch.tensor(params.scale, device=loss.device))
        return loss, {k: t.detach() for k, t in terms.items()}
