"""SSL-SaN's silence and noise negatives, around any method's own objective (docs/model.md §5).

`SilenceNoiseObjective(base, cfg)` is the training objective of every run. Per step it encodes the
method's image views, the positive clips and the negatives (1 silence + B noise clips) in one model
call (DDP-safe; the negatives meet the audio encoder's BatchNorm as `negatives_bn` says, D15), lets
the base objective compute its loss, with the negative clips' maps as extra contrastive negatives
when `use_silence` / `use_noise` are on (D14), and adds λ_SN·(L_S + L_N) when `loss_silence` /
`loss_noise` are on (D2), λ_SN warming up over `lambda_sn_warmup_steps` (D16). With every switch
off it is the base objective alone.

L_S = ‖S(a_S, v_j)‖², L_N = ‖S(a_N_j, v_j)‖²: the cosine similarity map of image j (its untransformed
view) with the silence clip / its noise clip, squared and summed over pixels ("sum", D2) or averaged
("mean"), mean over j (DECISIONS D17). For SSL-TIE and LVS the cosine is also the evaluation map;
for a method whose evaluation map is, e.g., (cos + 1) / 2, `loss_map="evaluation"` squares that map
instead (measured: it drives every feature to anti-align with every clip, D17).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from sslsan.methods.base import DEFAULT_NEGATIVES_BN, AVModel, MethodObjective, Views
from sslsan.models.checkpoint import unwrap_model

REDUCTIONS = ("sum", "mean")
NEGATIVES_BN = ("running_stats", "own_batch", "with_positives")
LOSS_MAPS = ("cosine", "evaluation")
SWITCHES = ("use_silence", "use_noise", "loss_silence", "loss_noise")


@dataclass
class SilenceNoiseConfig:
    """The four SSL-SaN switches (D14: all on = SSL-SaN, all off = the base method) and their settings."""

    # None: the method's default (on for ssl_san, off for every other method); TrainConfig resolves it
    use_silence: bool | None = None  # D14: the silence map (reduced as the method reduces a pair) as an extra negative logit
    use_noise: bool | None = None  # D14: each image's noise map as an extra negative logit
    loss_silence: bool | None = None  # D2: add L_S
    loss_noise: bool | None = None  # D2: add L_N
    lambda_sn: float = 1.0  # λ_SN
    san_reduction: Literal["sum", "mean"] = "sum"  # D2: L_S/L_N over pixels
    # λ_SN rises linearly from 0 to lambda_sn over this many optimiser steps (0: the paper's constant
    # weight). DECISIONS D16: the short CPU demo warms up over its first epoch; the paper recipe does not.
    lambda_sn_warmup_steps: int = 0
    # How the negatives' audio batch meets the audio encoder's BatchNorm (DECISIONS D15):
    #   running_stats  - BatchNorm in inference mode (running statistics of the positives, not updated):
    #                    negatives are normalised in training exactly as every input is at evaluation;
    #   own_batch      - their own train-mode batch (1 silence + B noise): batch statistics in training,
    #                    running statistics (updated by positives AND negatives) at evaluation. Measured on
    #                    the embedded benchmark: L_N 0.02 in training vs 0.75 on validation, and a collapse
    #                    of every positive map (docs/DECISIONS.md, D15);
    #   with_positives - one train-mode batch with the positives (B + 1 + B clips).
    # None: the method's default (`Method.negatives_bn`; TrainConfig resolves it).
    negatives_bn: Literal["running_stats", "own_batch", "with_positives"] | None = None
    negatives_in_te_view: bool = True  # D14 logits also in the loss of every other view (SSL-TIE's L_cl_T)
    # D17: the map L_S / L_N square: the method's cosine similarity ("cosine"), or its evaluation map
    # ("evaluation"; the same for SSL-TIE and LVS, (cos + 1) / 2 for EZ-VSL, SLAVC, FNAC)
    loss_map: Literal["cosine", "evaluation"] = "cosine"

    @property
    def needs_silence(self) -> bool:
        return bool(self.use_silence or self.loss_silence)

    @property
    def needs_noise(self) -> bool:
        return bool(self.use_noise or self.loss_noise)

    def resolved(self, default: bool, negatives_bn: str = DEFAULT_NEGATIVES_BN) -> SilenceNoiseConfig:
        """A copy whose unset switches take `default` and whose unset `negatives_bn` takes `negatives_bn`
        (the method's)."""
        fill = {k: default for k in SWITCHES if getattr(self, k) is None}
        if self.negatives_bn is None:
            fill["negatives_bn"] = negatives_bn
        return dataclasses.replace(self, **fill)


class SilenceNoiseLoss(nn.Module):
    """‖S(a_neg, v_j)‖²: squared map summed over pixels ("sum", D2) or averaged ("mean"), mean over j."""

    def __init__(self, reduction: str = "sum"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"san_reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def forward(self, neg_map: torch.Tensor) -> torch.Tensor:
        """neg_map (B, 1, h, w) -> scalar."""
        with torch.autocast(neg_map.device.type, enabled=False):
            sq = neg_map.float().pow(2).flatten(1)
            per_image = sq.sum(dim=1) if self.reduction == "sum" else sq.mean(dim=1)
            return per_image.mean()


@dataclass
class Negative:
    """One kind of negative clip in a step: its embeddings, their norms and its maps with every view."""

    name: str  # "silence" | "noise"
    embedding: torch.Tensor  # (1, E) silence (shared by every image) or (B, E) noise (clip j with image j)
    norm: torch.Tensor  # norms before L2 normalisation
    cosines: list[torch.Tensor]  # per view: (B, 1, h, w) cosine maps (the D14 logits are made of these)
    maps: list[torch.Tensor]  # per view: the maps L_S / L_N square (`loss_map`)
    as_logit: bool  # D14
    as_loss: bool  # D2


@dataclass
class Encoded:
    """One model call's results: image features per view, positive embeddings, negative embeddings."""

    features: list[torch.Tensor]
    audio: torch.Tensor
    audio_norm: torch.Tensor
    negatives: torch.Tensor | None
    negatives_norm: torch.Tensor | None


def encode(model: nn.Module, views: Views, specs: torch.Tensor, negatives: torch.Tensor | None,
           negatives_bn: str) -> Encoded:
    """Every encoder call of a step in one `model(...)` call: the views (as one batch when their
    shapes match and `views.batch_together`), the positive clips, and the negative clips as
    `negatives_bn` says (D15)."""
    b = specs.shape[0]
    imgs = views.images
    together = len(imgs) > 1 and views.batch_together and all(x.shape == imgs[0].shape for x in imgs)
    batches = [torch.cat(imgs)] if together else list(imgs)
    if negatives is None:
        feats, embs = model(batches, [specs], with_norms=True)
        (aud, aud_norm), neg, neg_norm = embs[0], None, None
    elif negatives_bn == "own_batch":
        feats, embs = model(batches, [specs, negatives], with_norms=True)
        (aud, aud_norm), (neg, neg_norm) = embs
    elif negatives_bn == "with_positives":
        feats, embs = model(batches, [torch.cat([specs, negatives])], with_norms=True)
        both, norms = embs[0]
        aud, neg = both.split([b, len(negatives)])
        aud_norm, neg_norm = norms.split([b, len(negatives)])
    else:  # running_stats
        feats, embs, (neg, neg_norm) = model(batches, [specs], running_stats_specs=negatives, with_norms=True)
        aud, aud_norm = embs[0]
    features = list(feats[0].split(b)) if together else list(feats)
    return Encoded(features, aud, aud_norm, neg, neg_norm)


def _check_spec(name: str, spec: torch.Tensor | None, rows: int, like: torch.Tensor) -> torch.Tensor:
    if spec is None:
        raise ValueError(f"{name} is required by the objective's switches but was not given")
    if spec.ndim != 4 or spec.shape[0] != rows or spec.shape[1:] != like.shape[1:]:
        raise ValueError(f"{name} must have shape ({rows}, {', '.join(map(str, like.shape[1:]))}), "
                         f"got {tuple(spec.shape)}")
    return spec.to(device=like.device, dtype=like.dtype)


class SilenceNoiseObjective(nn.Module):
    """A method's objective (`base`) with SSL-SaN's silence and noise terms (the module docstring)."""

    def __init__(self, base: MethodObjective, cfg: SilenceNoiseConfig):
        super().__init__()
        unset = [k for k in (*SWITCHES, "negatives_bn") if getattr(cfg, k) is None]
        if unset:
            raise ValueError(f"silence/noise settings {unset} are unset (SilenceNoiseConfig.resolved gives them a default)")
        if cfg.loss_map not in LOSS_MAPS:
            raise ValueError(f"loss_map must be one of {LOSS_MAPS}, got {cfg.loss_map!r}")
        if cfg.negatives_bn not in NEGATIVES_BN:
            raise ValueError(f"negatives_bn must be one of {NEGATIVES_BN}, got {cfg.negatives_bn!r}")
        if (cfg.use_silence or cfg.use_noise) and not base.contrastive:
            raise ValueError(f"{type(base).__name__} is not contrastive: use_silence/use_noise (negative logits, D14) "
                             "do not apply; use loss_silence/loss_noise only")
        self.base = base
        self.cfg = cfg
        self.silence_noise = SilenceNoiseLoss(cfg.san_reduction)

    def set_epoch(self, epoch: int) -> None:
        """The training loop's epoch, passed on to the method's objective (MethodObjective.set_epoch)."""
        self.base.set_epoch(epoch)

    def lambda_sn(self, step: int | None) -> float:
        """λ_SN at optimiser step `step` (None: the full weight), after the linear warm-up."""
        warm = self.cfg.lambda_sn_warmup_steps
        if step is None or warm <= 0:
            return self.cfg.lambda_sn
        return self.cfg.lambda_sn * min(1.0, (step + 1) / warm)

    def forward(self, model: nn.Module, images: torch.Tensor, specs: torch.Tensor,
                silence_spec: torch.Tensor | None = None, noise_specs: torch.Tensor | None = None,
                generator: torch.Generator | None = None, step: int | None = None,
                with_parts: bool = False):
        """images (B,3,H,W) augmented; specs (B,1,F,T); silence_spec (1,1,F,T); noise_specs (B,1,F,T).

        Returns (loss, terms): terms holds every loss term, the base's accuracies and diagnostics,
        and the diagnostics of the maps and embeddings (see `diagnostics`), all detached. The base's
        draws (e.g. SSL-TIE's TE transform) come from `generator`; `step` (the optimiser step) sets
        λ_SN during its warm-up. `with_parts=True` adds a third result: the weighted, undetached loss
        components whose sum is the loss (for per-term gradient norms).
        """
        cfg, b = self.cfg, images.shape[0]
        views = self.base.views(images, generator)
        views.specs = specs
        kinds = []
        if cfg.needs_silence:
            kinds.append(("silence", _check_spec("silence_spec", silence_spec, 1, specs)))
        if cfg.needs_noise:
            kinds.append(("noise", _check_spec("noise_specs", noise_specs, b, specs)))
        enc = encode(model, views, specs, torch.cat([s for _, s in kinds]) if kinds else None, cfg.negatives_bn)
        net: AVModel = unwrap_model(model)

        with torch.autocast(images.device.type, enabled=False):
            feats, aud = [f.float() for f in enc.features], enc.audio.float()
            negatives: list[Negative] = []

            def extra_logits(view: int) -> torch.Tensor | None:
                # the negative maps are made on the first call, after the base's own maps: the order of
                # the forward ops fixes the order in which backward sums gradients (so SSL-SaN's float
                # results stay those of the fused objective it replaced)
                if not negatives:
                    negatives.extend(self._negatives(net, feats, enc, [k for k, _ in kinds], b))
                if view > 0 and not cfg.negatives_in_te_view:
                    return None
                cols = [self.base.negative_logits(n.cosines[view]) for n in negatives if n.as_logit]
                return torch.cat(cols, dim=1) if cols else None

            parts, terms = self.base.loss(net, feats, aud, views, extra_logits)
            extra_logits(0)  # the maps L_S / L_N need, when the base took no logits
            lam = self.lambda_sn(step)
            for n in negatives:
                if n.as_loss:
                    terms[f"loss_{n.name}"] = self.silence_noise(n.maps[0])
                    parts[n.name] = lam * terms[f"loss_{n.name}"]
                terms[f"{n.name}_map_mean"] = n.maps[0].mean()
            loss = sum(parts.values())
            if any(n.as_loss for n in negatives):
                terms["lambda_sn"] = torch.full((), lam, device=loss.device)  # a fill, not a host copy: no sync
            terms["loss"] = loss
            terms.update(diagnostics(net, feats[0], aud, enc.audio_norm, negatives))
        terms = {k: t.detach() for k, t in terms.items()}
        return (loss, terms, parts) if with_parts else (loss, terms)

    def _negatives(self, net: AVModel, feats: list[torch.Tensor], enc: Encoded, names: list[str], b: int) -> list[Negative]:
        cfg, out = self.cfg, []
        if not names:
            return out
        neg, norm = enc.negatives.float(), enc.negatives_norm
        as_map = net.to_map if cfg.loss_map == "evaluation" else (lambda cos: cos)
        if "silence" in names:  # one shared silence embedding against every image
            cos = [net.cross_cosine(v, neg[:1]) for v in feats]
            out.append(Negative("silence", neg[:1], norm[:1], cos, [as_map(c) for c in cos],
                                bool(cfg.use_silence), bool(cfg.loss_silence)))
        if "noise" in names:  # noise clip j against image j
            cos = [net.pair_cosine(v, neg[-b:]) for v in feats]
            out.append(Negative("noise", neg[-b:], norm[-b:], cos, [as_map(c) for c in cos],
                                bool(cfg.use_noise), bool(cfg.loss_noise)))
        return out


@torch.no_grad()
def diagnostics(net: AVModel, v: torch.Tensor, aud: torch.Tensor, aud_norm: torch.Tensor,
                negatives: list[Negative]) -> dict[str, torch.Tensor]:
    """Scalars that show how the maps and embeddings evolve (logged with the loss terms).

    diag_pos_max / diag_pos_mean: per-image max / mean of the positive map S(a_j, v_j), batch mean;
    diag_cross_max: max of S(a_k, v_j) over other clips k; diag_<neg>_max: per-image max of the
    negative map; diag_<neg>_cos: cosine of the negative embedding with the positive embeddings;
    diag_<neg>_zero: share of negative embeddings that are exactly zero; diag_norm_<pos|silence|noise>:
    audio vector norms before L2 normalisation.
    """
    b = v.shape[0]
    sim = net.pair_map(v, aud)
    off = ~torch.eye(b, dtype=torch.bool, device=v.device)
    out = {
        "diag_pos_max": sim.amax(dim=(1, 2, 3)).mean(),
        "diag_pos_mean": sim.mean(),
        "diag_norm_pos": aud_norm.mean(),
    }
    if b > 1:  # a masked mean, not boolean indexing (whose output size the host would have to wait for)
        out["diag_cross_max"] = (net.cross_map(v, aud).amax(dim=(2, 3)) * off).sum() / off.sum()
    else:
        out["diag_cross_max"] = sim.new_zeros(())
    for n in negatives:
        out[f"diag_{n.name}_max"] = net.to_map(n.cosines[0]).amax(dim=(1, 2, 3)).mean()  # as diag_pos_max: the evaluation map
        out[f"diag_{n.name}_cos"] = (n.embedding @ aud.T).mean()
        out[f"diag_{n.name}_zero"] = (n.norm == 0).float().mean()
        out[f"diag_norm_{n.name}"] = n.norm.mean()
    return out
