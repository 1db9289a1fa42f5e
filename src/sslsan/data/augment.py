"""The MoCo-v2 training augmentation split where its work belongs: per file on the CPU, batched on the device.

Loader workers (`decode_crop`): draw the sample's augmentation from its keyed generator, decode the
frame (a JPEG at reduced scale when the crop still covers the output size) and cut the
random-resized crop to size×size on uint8. The training device (`ImageDeviceAugment`): horizontal
flip, colour jitter in random order, grayscale, Gaussian blur and ImageNet normalisation of the
whole batch at once, with no host-device synchronisation (what is applied where is read from the
host copy of the draws).

The draws are `ImageTrainTransform`'s for one image, in the same order from the same generator, so
a sample's augmentation is the per-sample reference transform's (tests/test_augment.py); only the
crop's resampling differs (the same antialiased bilinear resize, on uint8 instead of float: within
one grey level), and, for large JPEGs decoded at reduced scale, the decoder's downscaling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sslsan.data.transforms import (
    BLUR,
    BRIGHTNESS,
    GRAY,
    HUE,
    JITTER,
    N_COLOUR,
    ORDER,
    SIGMA,
    CropParams,
    ImageError,
    ImageTrainTransform,
    _as_float_batch,
    _blend,
    _gaussian_blur,
    _grayscale,
    _hue_shift,
    normalize,
    resize,
)
from sslsan.media import load_image_reduced
from sslsan.utils.device import to_device

# Columns of a sample's augmentation parameters (`draw_params`): the flip, then the colour draws
# (sslsan.data.transforms.JITTER ... SIGMA) shifted by one.
FLIP = 0
COLOUR = 1
N_PARAMS = COLOUR + N_COLOUR

_DRAFT_FACTORS = (8, 4, 2)  # the scales libjpeg can decode at directly (1/8, 1/4, 1/2)


def draw_params(transform: ImageTrainTransform, height: int, width: int,
                generator: torch.Generator | None = None) -> tuple[CropParams, torch.Tensor]:
    """One image's draws, as `transform(img, generator)` makes them: crop box + flip, then colour.

    Returns the crop (flip included) and the (N_PARAMS,) float32 parameters the device half reads.
    """
    crop = transform.crop_params(height, width, generator)
    return crop, torch.cat((torch.tensor([float(crop.flip)]), transform.colour_params(1, generator)[0]))


def draft_factor(crop: CropParams, size: int) -> int:
    """The largest JPEG decode reduction (8, 4, 2, else 1) that keeps the crop at least size×size pixels."""
    for f in _DRAFT_FACTORS:
        if crop.width >= f * size and crop.height >= f * size:
            return f
    return 1


def decode_crop(path: str | Path, transform: ImageTrainTransform, generator: torch.Generator | None = None,
                *, reduced_decode: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The loader-worker half of the training augmentation for one image file.

    Draws the sample's augmentation (`draw_params`) on the frame's size, decodes the frame and
    returns the random-resized crop as uint8 (3, size, size), not flipped, with the (N_PARAMS,)
    parameters. The crop is resized as the reference does it (torch's antialiased bilinear), on
    uint8. With `reduced_decode`, a JPEG is decoded at 1/2, 1/4 or 1/8 scale when the crop still
    covers size×size pixels there (`sslsan.media.load_image_reduced`); the crop box is then rounded
    to the reduced grid. Raises ImageError naming the file when it is missing or cannot be decoded.
    """
    drawn: dict[str, Any] = {}

    def reduction_for(width: int, height: int) -> int:
        drawn["size"] = (height, width)
        drawn["crop"], drawn["params"] = draw_params(transform, height, width, generator)
        return draft_factor(drawn["crop"], transform.size) if reduced_decode else 1

    img, scale = load_image_reduced(path, reduction_for)
    crop = drawn["crop"]
    top, left = round(crop.top / scale), round(crop.left / scale)
    bottom, right = round((crop.top + crop.height) / scale), round((crop.left + crop.width) / scale)
    region = img[None, :, top:bottom, left:right]
    if region.shape[-2] < 1 or region.shape[-1] < 1:
        raise ImageError(f"{path}: decoded size {tuple(img.shape[1:])} does not hold the crop drawn for {drawn['size']}")
    return resize(region, (transform.size, transform.size))[0].contiguous(), drawn["params"]


class ImageDeviceAugment:
    """The batched device half of the MoCo-v2 augmentation: flip, colour jitter, grayscale, blur, normalise.

    `images`: uint8 (B, 3, S, S) crops from `decode_crop` (or float in [0, 1]); `params`: their
    (B, N_PARAMS) draws on the same device; `host_params`: the same draws on the CPU, which decide
    which ops run on which samples without reading device memory (omitted: copied back, a sync).
    Jitter ops of one position in the random order run as one blend for the whole batch (brightness,
    contrast and saturation all blend with a reference image) plus one hue rotation of the samples
    that drew hue there; blur runs on the blurred samples only. On a CPU it goes one image at a time
    by default (`per_sample`), which is faster there.
    """

    def __init__(self, transform: ImageTrainTransform, per_sample: bool | None = None):
        self.max_sigma = transform.blur_sigma[1]
        # None: one image at a time on a CPU (it stays in cache and only its own ops run; measured at
        # 224 px with the paper's probabilities: 3.2 instead of 7.0 ms a sample), the batch at once elsewhere
        self.per_sample = per_sample

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, params: torch.Tensor,
                 host_params: torch.Tensor | None = None) -> torch.Tensor:
        if images.shape[0] != params.shape[0] or params.shape[1:] != (N_PARAMS,):
            raise ValueError(f"augmentation parameters must be ({images.shape[0]}, {N_PARAMS}), got {tuple(params.shape)}")
        hp = params.cpu() if host_params is None else host_params
        per_sample = images.device.type == "cpu" if self.per_sample is None else self.per_sample
        if per_sample and images.shape[0] > 1:
            return torch.cat([self._augment(images[i : i + 1], params[i : i + 1], hp[i : i + 1])
                              for i in range(images.shape[0])])
        return self._augment(images, params, hp)

    def _augment(self, images: torch.Tensor, params: torch.Tensor, hp: torch.Tensor) -> torch.Tensor:
        x, _ = _as_float_batch(images)
        p = params.to(device=x.device, dtype=torch.float32)
        c = p[:, COLOUR:]
        if bool((hp[:, FLIP] > 0).any()):
            x = torch.where(p[:, FLIP, None, None, None] > 0, x.flip(-1), x)
        hc = hp[:, COLOUR:]
        jitter = hc[:, JITTER] > 0
        for pos in range(4):
            op_host = hc[:, ORDER + pos].long()
            if bool((jitter & (op_host < 3)).any()):
                x = self._blend_position(x, c, pos)
            x = _subset(x, torch.nonzero(jitter & (op_host == 3))[:, 0],
                        lambda xs, idx: _hue_shift(xs, c[idx, HUE][:, None, None, None]))
        if bool((hc[:, GRAY] > 0).any()):
            x = torch.where(c[:, GRAY, None, None, None] > 0, _grayscale(x).expand_as(x), x)
        x = _subset(x, torch.nonzero(hc[:, BLUR] > 0)[:, 0],
                    lambda xs, idx: _gaussian_blur(xs, c[idx, SIGMA], self.max_sigma))
        return normalize(x)

    @staticmethod
    def _blend_position(x: torch.Tensor, c: torch.Tensor, pos: int) -> torch.Tensor:
        """Brightness, contrast or saturation, whichever each sample drew at `pos`; a factor of 1 elsewhere.

        All three are `_blend(x, reference, factor)` with reference 0, the mean grey level or the grey
        image; the samples that drew hue or no jitter get factor 1, which leaves them unchanged.
        """
        op = c[:, ORDER + pos].long()
        factor = c[:, BRIGHTNESS:HUE + 1].gather(1, op[:, None])[:, 0]
        factor = torch.where((c[:, JITTER] > 0) & (op < 3), factor, torch.ones_like(factor))
        gray = _grayscale(x)
        mean = gray.mean(dim=(1, 2, 3), keepdim=True)
        op4 = op[:, None, None, None]
        ref = torch.where(op4 == 0, torch.zeros_like(mean), torch.where(op4 == 1, mean, gray))
        return _blend(x, ref.expand_as(x), factor[:, None, None, None])


def _subset(x: torch.Tensor, idx_host: torch.Tensor, fn) -> torch.Tensor:
    """`fn` applied to the samples `idx_host` (host indices) of the batch `x`, the others unchanged."""
    if idx_host.numel() == 0:
        return x
    if idx_host.numel() == x.shape[0]:
        return fn(x, slice(None))
    idx = to_device(idx_host, x.device)
    return x.index_copy(0, idx, fn(x.index_select(0, idx), idx))
