"""The full training objective: SSL-TIE (contrastive + TE) plus SSL-SaN's silence/noise terms.

L = 0.5·(L_cl + L_cl_T) + te_weight·L_TE + λ_SN·(L_S + L_N)   (docs/model.md §4-5, DECISIONS D2, D14)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from sslsan.losses.contrastive import ContrastiveLoss, cross_entropy_to_first, top1_accuracy
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
    # λ_SN rises linearly from 0 to lambda_sn over this many optimiser steps (0: the paper's constant
    # weight). DECISIONS D16: the short CPU demo warms up over its first epoch; the paper recipe does not.
    lambda_sn_warmup_steps: int = 0
    # How the negatives' audio batch meets the audio tower's BatchNorm (DECISIONS D15):
    #   running_stats  - BatchNorm in inference mode (running statistics of the positives, not updated):
    #                    negatives are normalised in training exactly as every input is at evaluation;
    #   own_batch      - their own train-mode batch (1 silence + B noise): batch statistics in training,
    #                    running statistics (updated by positives AND negatives) at evaluation. Measured on
    #                    the embedded benchmark: L_N 0.02 in training vs 0.75 on validation, and a collapse
    #                    of every positive map (docs/DECISIONS.md, D15);
    #   with_positives - one train-mode batch with the positives (B + 1 + B clips).
    negatives_bn: Literal["running_stats", "own_batch", "with_positives"] = "running_stats"
    negatives_in_te_view: bool = True  # D14 logits also in L_cl_T (L_S/L_N stay on the original view)
    batch_views: bool = True  # one image forward for both views when they share a size (BN sees 2B)

    @property
    def needs_silence(self) -> bool:
        return self.use_silence or self.loss_silence

    @property
    def needs_noise(self) -> bool:
        return self.use_noise or self.loss_noise


NEGATIVES_BN = ("running_stats", "own_batch", "with_positives")


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
    their sizes match, and the negatives (1 silence + B noise) in one extra audio batch (or with the
    positives, per `negatives_bn`) whose embeddings meet the already computed image features.
    """

    def __init__(self, cfg: ObjectiveConfig = ObjectiveConfig()):
        super().__init__()
        if cfg.negatives_bn not in NEGATIVES_BN:
            raise ValueError(f"negatives_bn must be one of {NEGATIVES_BN}, got {cfg.negatives_bn!r}")
        self.cfg = cfg
        self.contrastive = ContrastiveLoss(cfg.epsilon, cfg.epsilon2, cfg.tau, cfg.temperature)
        self.transform = EquivarianceTransform(cfg.image_size, cfg.max_angle, cfg.scales, cfg.flip_p)
        self.equivariance = EquivarianceLoss(self.transform)
        self.silence_noise = SilenceNoiseLoss(cfg.san_reduction)

    def lambda_sn(self, step: int | None) -> float:
        """λ_SN at optimiser step `step` (None: the full weight), after the linear warm-up."""
        warm = self.cfg.lambda_sn_warmup_steps
        if step is None or warm <= 0:
            return self.cfg.lambda_sn
        return self.cfg.lambda_sn * min(1.0, (step + 1) / warm)

    def _encode(self, model, images, images_t, specs, negatives):
        """One model call -> (v, v_t, positive embeddings, negative embeddings or None, audio norms)."""
        cfg, b = self.cfg, images.shape[0]
        same_size = images_t.shape == images.shape
        image_batches = [torch.cat([images, images_t])] if cfg.batch_views and same_size else [images, images_t]
        neg = torch.cat(negatives) if negatives else None
        if neg is None:
            feats, embs = model(image_batches, [specs], with_norms=True)
            (aud, aud_norm), neg_emb, neg_norm = embs[0], None, None
        elif cfg.negatives_bn == "own_batch":
            feats, embs = model(image_batches, [specs, neg], with_norms=True)
            (aud, aud_norm), (neg_emb, neg_norm) = embs
        elif cfg.negatives_bn == "with_positives":
            feats, embs = model(image_batches, [torch.cat([specs, neg])], with_norms=True)
            (both, norms) = embs[0]
            aud, neg_emb = both.split([b, len(neg)])
            aud_norm, neg_norm = norms.split([b, len(neg)])
        else:  # running_stats
            feats, embs, (neg_emb, neg_norm) = model(image_batches, [specs], running_stats_specs=neg, with_norms=True)
            aud, aud_norm = embs[0]
        v, v_t = feats[0].split(b) if len(feats) == 1 else feats
        return v, v_t, aud, neg_emb, {"pos": aud_norm, "neg": neg_norm}

    def forward(self, model: nn.Module, images: torch.Tensor, specs: torch.Tensor,
                silence_spec: torch.Tensor | None = None, noise_specs: torch.Tensor | None = None,
                generator: torch.Generator | None = None, step: int | None = None,
                with_parts: bool = False):
        """images (B,3,H,W) augmented; specs (B,1,F,T); silence_spec (1,1,F,T); noise_specs (B,1,F,T).

        Returns (loss, terms): terms holds every loss term, the top-1 accuracy of both views and
        diagnostics of the maps and embeddings (see `diagnostics`), all detached. TE draws come from
        `generator` (CPU generator); `step` (the optimiser step) sets λ_SN during its warm-up.
        `with_parts=True` adds a third result: the weighted, undetached loss components whose sum is
        the loss (for per-term gradient norms).
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
        v, v_t, aud, neg, norms = self._encode(model, images, images_t, specs, negatives)

        with torch.autocast(images.device.type, enabled=False):
            v, v_t, aud = v.float(), v_t.float(), aud.float()
            cross, cross_t = Localizer.cross_map(v, aud), Localizer.cross_map(v_t, aud)
            sim, sim_t = Localizer.pair_map(v, aud), Localizer.pair_map(v_t, aud)
            neg_maps, neg_embs, extra, extra_t = {}, {}, [], []
            if neg is not None:
                neg = neg.float()
                if cfg.needs_silence:  # one shared silence embedding against every image
                    neg_embs["silence"] = (neg[:1], norms["neg"][:1])
                    neg_maps["silence"] = (Localizer.cross_map(v, neg[:1]), Localizer.cross_map(v_t, neg[:1]),
                                           cfg.use_silence, cfg.loss_silence)
                if cfg.needs_noise:  # noise clip j against image j
                    neg_embs["noise"] = (neg[-b:], norms["neg"][-b:])
                    neg_maps["noise"] = (Localizer.pair_map(v, neg[-b:]), Localizer.pair_map(v_t, neg[-b:]),
                                         cfg.use_noise, cfg.loss_noise)
            for s_map, s_map_t, as_logit, _ in neg_maps.values():
                if as_logit:
                    extra.append(s_map.mean(dim=(2, 3)))
                    extra_t.append(s_map_t.mean(dim=(2, 3)))
            extra_cols = torch.cat(extra, dim=1) if extra else None
            extra_cols_t = torch.cat(extra_t, dim=1) if extra_t and cfg.negatives_in_te_view else None

            logits, pos_mask, neg_mask = self.contrastive.logits(sim, cross, extra_cols)
            logits_t, _, _ = self.contrastive.logits(sim_t, cross_t, extra_cols_t)
            loss_cl, loss_cl_t = cross_entropy_to_first(logits), cross_entropy_to_first(logits_t)
            loss_te = self.equivariance(sim_t, sim, params, grid)
            parts = {"contrastive": 0.5 * (loss_cl + loss_cl_t), "equivariance": cfg.te_weight * loss_te}
            terms = {"loss_cl": loss_cl, "loss_cl_t": loss_cl_t, "loss_te": loss_te}
            lam = self.lambda_sn(step)
            for name, (s_map, _, _, as_loss) in neg_maps.items():
                if as_loss:
                    terms[f"loss_{name}"] = self.silence_noise(s_map)
                    parts[name] = lam * terms[f"loss_{name}"]
                terms[f"{name}_map_mean"] = s_map.mean()
            loss = sum(parts.values())
            if any(c for *_, c in neg_maps.values()):
                terms["lambda_sn"] = torch.full((), lam, device=loss.device)  # a fill, not a host copy: no sync
            terms.update(loss=loss, acc_top1=top1_accuracy(logits), acc_top1_t=top1_accuracy(logits_t),
                         te_scale=torch.full((), params.scale, device=loss.device))
            terms.update(diagnostics(sim, cross, pos_mask, neg_mask, aud, neg_maps, neg_embs, norms, b))
        terms = {k: t.detach() for k, t in terms.items()}
        return (loss, terms, parts) if with_parts else (loss, terms)


@torch.no_grad()
def diagnostics(sim, cross, pos_mask, neg_mask, aud, neg_maps, neg_embs, norms, b) -> dict[str, torch.Tensor]:
    """Scalars that show how the maps and embeddings evolve (logged with the loss terms).

    diag_pos_max / diag_pos_mean: per-image max / mean of the positive map S(a_j, v_j), batch mean;
    diag_cross_max: max of S(a_k, v_j) over other clips k (what the easy negatives see);
    diag_pos_mask / diag_neg_mask: mean of the tri-map masks Pos, Neg (share of the map they cover);
    diag_<neg>_max: per-image max of the negative map; diag_<neg>_cos: cosine of the negative embedding
    with the positive embeddings; diag_<neg>_zero: share of negative embeddings that are exactly zero;
    diag_norm_<pos|silence|noise>: audio vector norms before L2 normalisation.
    """
    off = ~torch.eye(b, dtype=torch.bool, device=sim.device)
    out = {
        "diag_pos_max": sim.amax(dim=(1, 2, 3)).mean(),
        "diag_pos_mean": sim.mean(),
        # a masked mean, not boolean indexing (whose output size the host would have to wait for)
        "diag_cross_max": (cross.amax(dim=(2, 3)) * off).sum() / off.sum() if b > 1 else sim.new_zeros(()),
        "diag_pos_mask": pos_mask.mean(),
        "diag_neg_mask": neg_mask.mean(),
        "diag_norm_pos": norms["pos"].mean(),
    }
    for name, (s_map, *_rest) in neg_maps.items():
        emb, norm = neg_embs[name]
        out[f"diag_{name}_max"] = s_map.amax(dim=(1, 2, 3)).mean()
        out[f"diag_{name}_cos"] = (emb @ aud.T).mean()
        out[f"diag_{name}_zero"] = (norm == 0).float().mean()
        out[f"diag_norm_{name}"] = norm.mean()
    return out
