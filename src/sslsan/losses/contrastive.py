"""SSL-TIE's localisation-aware tri-map contrastive loss (docs/model.md §4.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ContrastiveLoss(nn.Module):
    """Image-anchored InfoNCE over soft-masked map averages; the positive is column 0.

    logits = [sim1 | easy negatives (B columns, diagonal × (1 − 100)) | sim2 | extra negatives] / T
      sim1 = Σ Pos·A / Σ Pos,  Pos = σ((A − ε)/τ)          own audio, foreground
      sim2 = Σ Neg·A / Σ Neg,  Neg = 1 − σ((A − ε2)/τ)     own audio, background (hard negative)
      easy[n, k] = Σ Pos_all·A0 / Σ Pos_all over (h, w),  Pos_all = σ((A0 − ε)/τ)
    The diagonal quirk (multiplied by −99, not masked out) is the original's. All reductions run in
    float32 with autocast off: the masks are ~1e-10 far below ε, and 0/0 appears in half precision.
    """

    def __init__(self, epsilon: float = 0.65, epsilon2: float = 0.4, tau: float = 0.03,
                 temperature: float = 0.07):
        super().__init__()
        self.epsilon, self.epsilon2, self.tau, self.temperature = epsilon, epsilon2, tau, temperature

    def logits(self, sim_map: torch.Tensor, cross_map: torch.Tensor,
               extra_negatives: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """-> (logits (B, B+2+k), Pos (B,1,h,w), Neg (B,1,h,w)).

        sim_map A (B, 1, h, w); cross_map A0 (B, B, h, w) (rows images, columns audios);
        extra_negatives (B, k) similarities (already spatially reduced, not yet divided by T).
        """
        with torch.autocast(sim_map.device.type, enabled=False):
            a, a0 = sim_map.float(), cross_map.float()
            b = a.shape[0]
            if a0.shape[:2] != (b, b):
                raise ValueError(f"cross map must be (B, B, h, w) with B={b}, got {tuple(a0.shape)}")
            pos = torch.sigmoid((a - self.epsilon) / self.tau)
            neg = 1.0 - torch.sigmoid((a - self.epsilon2) / self.tau)
            sim1 = (pos * a).sum(dim=(1, 2, 3)) / pos.sum(dim=(1, 2, 3))
            sim2 = (neg * a).sum(dim=(1, 2, 3)) / neg.sum(dim=(1, 2, 3))
            pos_all = torch.sigmoid((a0 - self.epsilon) / self.tau)
            easy = (pos_all * a0).sum(dim=(2, 3)) / pos_all.sum(dim=(2, 3))
            easy = easy * (1.0 - 100.0 * torch.eye(b, device=a.device, dtype=a.dtype))
            cols = [sim1[:, None], easy, sim2[:, None]]
            if extra_negatives is not None:
                cols.append(extra_negatives.float().reshape(b, -1))
            return torch.cat(cols, dim=1) / self.temperature, pos, neg

    def forward(self, sim_map: torch.Tensor, cross_map: torch.Tensor,
                extra_negatives: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (cross-entropy with target 0, mean over the batch; logits)."""
        logits, _, _ = self.logits(sim_map, cross_map, extra_negatives)
        return cross_entropy_to_first(logits), logits


def cross_entropy_to_first(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (B, K) logits whose positive is column 0, mean over the batch."""
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, target)


def top1_accuracy(logits: torch.Tensor) -> torch.Tensor:
    """Fraction of rows whose largest logit is the positive (column 0)."""
    return (logits.argmax(dim=1) == 0).float().mean()
