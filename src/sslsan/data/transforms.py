"""Image front-end (docs/model.md §2), in torch so it runs per sample on the CPU or batched on a GPU.

Training: MoCo-v2 augmentation as SSL-TIE uses it — RandomResizedCrop(224, scale (0.3, 1), ratio
(3/4, 4/3)), ColorJitter(0.4, 0.4, 0.4, 0.1) with p 0.8 (random order), RandomGrayscale(p 0.2),
Gaussian blur σ ~ U(0.1, 2) with p 0.5, horizontal flip p 0.5, ImageNet normalisation.
Evaluation: squash the whole frame to 224×224 (bicubic, no crop; DECISIONS D4), ImageNet normalisation.

Every random draw comes from an explicit `torch.Generator` (CPU), so a transform is deterministic
given its generator whatever device the pixels are on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sslsan.media import ImageError, load_image  # noqa: F401  (public names of this module)
from sslsan.utils.device import device_constant

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_GRAY = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, as PIL/torchvision grayscale


# Columns of the per-sample colour draws (`ImageTrainTransform.colour_params`): whether the jitter
# applies, its four factors, the order of the jitter ops (0 brightness, 1 contrast, 2 saturation,
# 3 hue: the factor of op k is column BRIGHTNESS + k), then grayscale and blur flags and the blur σ.
JITTER, BRIGHTNESS, CONTRAST, SATURATION, HUE, ORDER, GRAY, BLUR, SIGMA = 0, 1, 2, 3, 4, 5, 9, 10, 11
N_COLOUR = 12


def _as_float_batch(img: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """uint8 or float [0, 1] image(s) → float32 (B, 3, H, W) in [0, 1]; also says if input was unbatched."""
    single = img.dim() == 3
    x = img.unsqueeze(0) if single else img
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected an image (3, H, W) or batch (B, 3, H, W), got {tuple(img.shape)}")
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return x, single


def normalize(x: torch.Tensor, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> torch.Tensor:
    """(x - mean) / std per channel (ImageNet's by default)."""
    mean = device_constant(mean, x.device, x.dtype).view(1, 3, 1, 1)
    std = device_constant(std, x.device, x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Inverse of `normalize`: back to [0, 1] RGB for display."""
    mean = device_constant(IMAGENET_MEAN, x.device, x.dtype).view(1, 3, 1, 1)
    std = device_constant(IMAGENET_STD, x.device, x.dtype).view(1, 3, 1, 1)
    return (x * std + mean).clamp(0, 1)


def resize(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Antialiased resize (PIL-like when shrinking) of a float batch (B, C, H, W)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True)


class ImageEvalTransform:
    """Squash the whole frame to size×size (bicubic, no crop; D4), clamp to [0, 1], normalise (ImageNet's
    mean/std by default). `crop=True`: resize the shorter side to `size`, then the centre crop (LVS's test)."""

    def __init__(self, size: int = 224, *, crop: bool = False, mean: tuple[float, ...] = IMAGENET_MEAN,
                 std: tuple[float, ...] = IMAGENET_STD):
        self.size, self.crop, self.mean, self.std = size, crop, tuple(mean), tuple(std)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        x, single = _as_float_batch(img)
        if self.crop:
            h, w = x.shape[-2:]  # torchvision's Resize(int) then CenterCrop: long side truncated, offsets rounded
            nh, nw = (self.size, int(self.size * w / h)) if h <= w else (int(self.size * h / w), self.size)
            x = resize(x, (nh, nw), mode="bicubic")
            top, left = int(round((nh - self.size) / 2.0)), int(round((nw - self.size) / 2.0))
            x = x[..., top:top + self.size, left:left + self.size]
        else:
            x = resize(x, (self.size, self.size), mode="bicubic")
        x = normalize(x.clamp(0, 1), self.mean, self.std)
        return x[0] if single else x


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    w = device_constant(_GRAY, x.device, x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (factor * a + (1 - factor) * b).clamp(0, 1)


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    maxc, argmax = x.max(dim=1)
    delta = maxc - x.min(dim=1).values
    s = delta / maxc.clamp_min(1e-12)
    safe = delta.clamp_min(1e-12)
    # hue sector by the channel holding the maximum (ties resolve to the first, as colorsys does)
    h = torch.where(argmax == 0, (g - b) / safe, torch.where(argmax == 1, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    h = torch.remainder(h / 6.0, 1.0) * (delta > 0)
    return torch.stack([h, s, maxc], dim=1)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    # closed form of the six-sector rule: c = v - v*s*clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6
    h, s, v = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    n = device_constant((5.0, 3.0, 1.0), x.device, x.dtype).view(1, 3, 1, 1)
    k = torch.remainder(n + 6.0 * h, 6.0)
    return v - v * s * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)


def _hue_shift(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of a batch by per-sample `shift` (B, 1, 1, 1), in turns."""
    hsv = _rgb_to_hsv(x)
    return _hsv_to_rgb(torch.stack([(hsv[:, 0] + shift[:, 0]) % 1.0, hsv[:, 1], hsv[:, 2]], dim=1))


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, max_sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample σ (B,), reflect padding."""
    b, c, h, w = x.shape
    radius = int(math.ceil(3 * max_sigma))
    k = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kern = torch.exp(-0.5 * (k[None, :] / sigma[:, None].to(x)) ** 2)
    kern = kern / kern.sum(dim=1, keepdim=True)  # (B, K)
    weight = kern.repeat_interleave(c, dim=0)  # (B*C, K)
    y = x.reshape(1, b * c, h, w)
    pad_h, pad_w = min(radius, h - 1), min(radius, w - 1)
    y = F.pad(y, (pad_w, pad_w, 0, 0), mode="reflect")
    y = F.conv2d(y, weight[:, None, None, radius - pad_w : radius + pad_w + 1], groups=b * c)
    y = F.pad(y, (0, 0, pad_h, pad_h), mode="reflect")
    y = F.conv2d(y, weight[:, None, radius - pad_h : radius + pad_h + 1, None], groups=b * c)
    return y.reshape(b, c, h, w)


@dataclass
class CropParams:
    """Geometry drawn for one image: crop box in pixels (top, left, height, width) and flip."""

    top: int
    left: int
    height: int
    width: int
    flip: bool


class ImageTrainTransform:
    """MoCo-v2 training augmentation (SSL-TIE `--img_aug moco_v2`), batched or per sample."""

    def __init__(
        self,
        size: int = 224,
        scale: tuple[float, float] = (0.3, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        blur_p: float = 0.5,
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        flip_p: float = 0.5,
    ):
        self.size, self.scale, self.ratio = size, scale, ratio
        self.jitter, self.jitter_p, self.grayscale_p = jitter, jitter_p, grayscale_p
        self.blur_p, self.blur_sigma, self.flip_p = blur_p, blur_sigma, flip_p

    def crop_params(self, height: int, width: int, generator: torch.Generator | None = None) -> CropParams:
        """RandomResizedCrop box (torchvision rule: 10 tries, then a centre crop within `ratio`) + flip."""
        area = height * width
        log_r = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        box = None
        for _ in range(10):
            u = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
            target = area * (self.scale[0] + u[0] * (self.scale[1] - self.scale[0]))
            aspect = math.exp(log_r[0] + u[1] * (log_r[1] - log_r[0]))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                i = int(torch.randint(0, height - h + 1, (1,), generator=generator))
                j = int(torch.randint(0, width - w + 1, (1,), generator=generator))
                box = (i, j, h, w)
                break
        if box is None:
            in_ratio = width / height
            if in_ratio < self.ratio[0]:
                w, h = width, int(round(width / self.ratio[0]))
            elif in_ratio > self.ratio[1]:
                h, w = height, int(round(height * self.ratio[1]))
            else:
                w, h = width, height
            box = ((height - h) // 2, (width - w) // 2, h, w)
        flip = bool(torch.rand(1, generator=generator, dtype=torch.float64) < self.flip_p)
        return CropParams(*box, flip=flip)

    def geometry(self, x: torch.Tensor, params: list[CropParams], mode: str = "bilinear") -> torch.Tensor:
        """Apply crop+resize+flip to a float batch (also to masks, with mode='nearest')."""
        out = []
        for xi, p in zip(x, params):
            crop = xi[:, p.top : p.top + p.height, p.left : p.left + p.width].unsqueeze(0)
            if mode == "nearest":
                crop = F.interpolate(crop, size=(self.size, self.size), mode="nearest")
            else:
                crop = resize(crop, (self.size, self.size), mode=mode)
            out.append(crop.flip(-1) if p.flip else crop)
        return torch.cat(out, dim=0)

    @staticmethod
    def transform_boxes(boxes: torch.Tensor, p: CropParams, height: int, width: int) -> torch.Tensor:
        """Map normalised xyxy boxes (N, 4) of the source image through the crop/flip (clipped to [0, 1])."""
        b = boxes.clone().double()
        x1 = (b[:, 0] * width - p.left) / p.width
        x2 = (b[:, 2] * width - p.left) / p.width
        y1 = (b[:, 1] * height - p.top) / p.height
        y2 = (b[:, 3] * height - p.top) / p.height
        if p.flip:
            x1, x2 = 1 - x2, 1 - x1
        return torch.stack([x1, y1, x2, y2], dim=1).clamp(0, 1)

    def colour_params(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-sample colour draws, (batch, N_COLOUR) float32 with the columns named above."""
        bri, con, sat, hue = self.jitter
        (s0, s1) = self.blur_sigma
        u = torch.rand(batch, 8, generator=generator, dtype=torch.float64).tolist()
        orders = [torch.randperm(4, generator=generator).tolist() for _ in range(batch)]
        rows = [  # float64 arithmetic, then float32: the loader computes these per sample, cheaply
            [float(r[0] < self.jitter_p), 1 - bri + 2 * bri * r[1], 1 - con + 2 * con * r[2],
             1 - sat + 2 * sat * r[3], -hue + 2 * hue * r[4], *order,
             float(r[5] < self.grayscale_p), float(r[6] < self.blur_p), s0 + r[7] * (s1 - s0)]
            for r, order in zip(u, orders)
        ]
        return torch.tensor(rows, dtype=torch.float32)

    def colour(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Colour jitter (random order), grayscale and blur, with per-sample draws (`colour_params`).

        The per-sample reference: each op runs on the whole batch and is kept where drawn.
        `sslsan.data.augment.ImageDeviceAugment` is the batched equivalent the training step uses.
        """
        p = self.colour_params(x.shape[0], generator)
        dev = x.device
        apply_jit = (p[:, JITTER] > 0).to(dev)
        order = p[:, ORDER : ORDER + 4].long()
        for pos in range(4):
            for op in range(4):
                sel = apply_jit & (order[:, pos] == op).to(dev)
                if not bool(sel.any()):
                    continue
                f = p[:, BRIGHTNESS + op].to(dev)[:, None, None, None]
                if op == 0:
                    y = _blend(x, torch.zeros_like(x), f)
                elif op == 1:
                    mean = _grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
                    y = _blend(x, mean.expand_as(x), f)
                elif op == 2:
                    y = _blend(x, _grayscale(x).expand_as(x), f)
                else:
                    y = _hue_shift(x, f)
                x = y if bool(sel.all()) else torch.where(sel[:, None, None, None], y, x)
        gray = (p[:, GRAY] > 0).to(dev)
        x = torch.where(gray[:, None, None, None], _grayscale(x).expand_as(x), x)
        blur = (p[:, BLUR] > 0).to(dev)
        if bool(blur.any()):
            x = torch.where(blur[:, None, None, None], _gaussian_blur(x, p[:, SIGMA], self.blur_sigma[1]), x)
        return x

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 / [0, 1] float image (3, H, W) or batch (B, 3, H, W) → normalised float32 size×size."""
        x, single = _as_float_batch(img)
        params = [self.crop_params(x.shape[-2], x.shape[-1], generator) for _ in range(x.shape[0])]
        x = self.colour(self.geometry(x, params), generator)
        x = normalize(x)
        return x[0] if single else x
