"""SSL-TIE's transformation-equivariance branch (docs/model.md §4.2), without kornia.

T = upsample to `size` (if needed) → rotate by an integer angle and scale by s about the centre
(size/2, size/2) with bilinear sampling, zero padding, align_corners=True (kornia 0.5.6
`warp_affine` with `get_rotation_matrix2d`) → resize to input size × s → horizontal flip.
Angles are per sample; s ∈ {1, 0.5} and the flip are shared by the batch, each with p = 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sslsan.utils.device import device_constant, to_device


@dataclass
class TransformParams:
    """One draw of the TE transform for a batch."""

    angles: torch.Tensor  # (B,) integer degrees, positive = counter-clockwise
    scale: float
    flip: bool


def rotation_matrix(angles_deg: torch.Tensor, scale: float, center: tuple[float, float]) -> torch.Tensor:
    """(B, 3, 3) pixel-space matrices mapping source to destination (OpenCV/kornia convention)."""
    theta = angles_deg.double() * (math.pi / 180.0)
    alpha, beta = scale * torch.cos(theta), scale * torch.sin(theta)
    cx, cy = center
    m = torch.zeros(angles_deg.shape[0], 3, 3, dtype=torch.float64, device=angles_deg.device)
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = alpha, beta, (1 - alpha) * cx - beta * cy
    m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = -beta, alpha, beta * cx + (1 - alpha) * cy
    m[:, 2, 2] = 1.0
    return m


class EquivarianceTransform(nn.Module):
    """The TE transform T; `draw` makes the random parameters, `forward(x, params)` applies them."""

    def __init__(self, size: int = 224, max_angle: int = 30, scales: tuple[float, ...] = (1.0, 0.5),
                 flip_p: float = 0.5):
        super().__init__()
        self.size, self.max_angle, self.scales, self.flip_p = size, int(max_angle), tuple(scales), flip_p

    def draw(self, batch_size: int, generator: torch.Generator | None = None,
             device: torch.device | str | None = None) -> TransformParams:
        """Angles uniform in [-max_angle, max_angle] per sample; one scale and one flip per batch."""
        angles = torch.randint(-self.max_angle, self.max_angle + 1, (batch_size,), generator=generator)
        scale = self.scales[int(torch.randint(len(self.scales), (1,), generator=generator))]
        flip = bool(torch.rand(1, generator=generator) < self.flip_p)
        return TransformParams(to_device(angles, device) if device is not None else angles, float(scale), flip)

    def sampling_grid(self, params: TransformParams, channels: int = 1) -> torch.Tensor:
        """grid_sample grid (B, size, size, 2) realising the warp at `size`×`size`."""
        n, c = self.size, self.size / 2.0
        # destination -> source: the inverse of a scaled rotation about c is rotation by -θ, scale 1/s
        inverse = rotation_matrix(-params.angles, 1.0 / params.scale, (c, c))
        # pixel -> [-1, 1] with align_corners=True: u = 2x/(n-1) - 1
        k = 2.0 / (n - 1)
        dev = inverse.device  # the two constants are built and copied to the device once (device_constant)
        norm = device_constant((k, 0.0, -1.0, 0.0, k, -1.0, 0.0, 0.0, 1.0), dev, torch.float64).view(3, 3)
        norm_inv = device_constant((1 / k, 0.0, 1 / k, 0.0, 1 / k, 1 / k, 0.0, 0.0, 1.0), dev, torch.float64).view(3, 3)
        theta = norm @ inverse @ norm_inv
        with torch.autocast(inverse.device.type, enabled=False):
            return F.affine_grid(theta[:, :2].float(), [inverse.shape[0], channels, n, n], align_corners=True)

    def forward(self, x: torch.Tensor, params: TransformParams,
                grid: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, round(H·s), round(W·s)), float32."""
        out_hw = (int(round(x.shape[-2] * params.scale)), int(round(x.shape[-1] * params.scale)))
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            if tuple(x.shape[-2:]) != (self.size, self.size):
                x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
            if grid is None:
                grid = self.sampling_grid(params, x.shape[1])
            x = F.grid_sample(x, grid.to(device=x.device, dtype=x.dtype), mode="bilinear", padding_mode="zeros", align_corners=True)
            if out_hw != (self.size, self.size):
                x = F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False)
            if params.flip:
                x = x.flip(-1)
        return x


class EquivarianceLoss(nn.Module):
    """L_TE = MSE(A_T, T(A)): the map of the transformed image against the transformed map."""

    def __init__(self, transform: EquivarianceTransform):
        super().__init__()
        self.transform = transform

    def forward(self, map_of_transformed: torch.Tensor, sim_map: torch.Tensor,
                params: TransformParams, grid: torch.Tensor | None = None) -> torch.Tensor:
        target = self.transform(sim_map, params, grid)
        if target.shape != map_of_transformed.shape:
            raise ValueError(f"TE maps differ in shape: {tuple(map_of_transformed.shape)} vs {tuple(target.shape)}")
        with torch.autocast(sim_map.device.type, enabled=False):
            return F.mse_loss(map_of_transformed.float(), target)
