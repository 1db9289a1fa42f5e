"""L_S and L_N of SSL-SaN (DECISIONS D2): push the map of an image with negative audio to zero."""

from __future__ import annotations

import torch
from torch import nn

REDUCTIONS = ("sum", "mean")


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
