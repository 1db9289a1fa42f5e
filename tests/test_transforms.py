"""Image front-end: eval squash, MoCo-v2 train augmentation, geometry kept consistent for boxes/masks."""

from __future__ import annotations

import numpy as np
import torch

from sslsan.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageEvalTransform,
    ImageTrainTransform,
    denormalize,
)


def test_eval_transform_squash_and_normalise():
    img = torch.full((3, 90, 160), 128, dtype=torch.uint8)
    out = ImageEvalTransform(224)(img)
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32
    expect = (128 / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(out.mean(dim=(1, 2)), expect, atol=1e-5)
    # a squash keeps the whole frame: the left half of a half-red image stays the left half
    img = torch.zeros(3, 60, 200, dtype=torch.uint8)
    img[0, :, :100] = 255
    red = denormalize(ImageEvalTransform(224)(img)[None])[0, 0]
    assert red[:, :100].mean() > 0.95 and red[:, 124:].mean() < 0.05
    assert ImageEvalTransform(64)(torch.zeros(5, 3, 20, 30, dtype=torch.uint8)).shape == (5, 3, 64, 64)


def test_train_transform_deterministic_and_random():
    x = torch.randint(0, 256, (4, 3, 80, 100), dtype=torch.uint8)
    t = ImageTrainTransform(64)
    a = t(x, torch.Generator().manual_seed(0))
    b = t(x, torch.Generator().manual_seed(0))
    c = t(x, torch.Generator().manual_seed(1))
    assert a.shape == (4, 3, 64, 64) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert t(x[0], torch.Generator().manual_seed(0)).shape == (3, 64, 64)


def test_crop_params_follow_randomresizedcrop():
    t = ImageTrainTransform(224)
    g = torch.Generator().manual_seed(0)
    fracs, ratios, flips = [], [], []
    for _ in range(2000):
        p = t.crop_params(200, 300, g)
        assert 0 <= p.top and p.top + p.height <= 200 and 0 <= p.left and p.left + p.width <= 300
        fracs.append(p.height * p.width / (200 * 300))
        ratios.append(p.width / p.height)
        flips.append(p.flip)
    assert 0.28 < min(fracs) and max(fracs) <= 1.0
    assert 3 / 4 - 0.02 < min(ratios) and max(ratios) < 4 / 3 + 0.02
    assert 0.45 < np.mean(flips) < 0.55


def test_colour_probabilities():
    t = ImageTrainTransform(32, jitter_p=0.0, blur_p=0.0, grayscale_p=1.0)
    x = torch.rand(3, 3, 32, 32)
    g = t.colour(x.clone())
    assert torch.allclose(g[:, 0], g[:, 1]) and torch.allclose(g[:, 1], g[:, 2])
    ident = ImageTrainTransform(32, jitter_p=0.0, blur_p=0.0, grayscale_p=0.0).colour(x.clone())
    assert torch.equal(ident, x)
    blurred = ImageTrainTransform(32, jitter_p=0.0, blur_p=1.0, grayscale_p=0.0).colour(x.clone())
    assert blurred.std() < x.std()  # blur smooths noise
    assert torch.allclose(blurred.mean(), x.mean(), atol=0.02)  # and keeps the mean


def test_geometry_keeps_boxes_and_masks_consistent():
    t = ImageTrainTransform(96)
    g = torch.Generator().manual_seed(5)
    h, w = 120, 160
    box = torch.tensor([[0.25, 0.3, 0.6, 0.8]])
    mask = torch.zeros(1, 1, h, w)
    mask[0, 0, int(0.3 * h) : int(0.8 * h), int(0.25 * w) : int(0.6 * w)] = 1
    checked = 0
    for _ in range(30):
        p = t.crop_params(h, w, g)
        out = t.geometry(mask, [p], mode="nearest")[0, 0]
        tb = t.transform_boxes(box, p, h, w)[0]
        ys, xs = torch.nonzero(out > 0.5, as_tuple=True)
        if len(ys) < 20:
            continue
        got = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float64) / 96
        assert torch.allclose(got, tb, atol=2.5 / 96), (p, got, tb)
        checked += 1
    assert checked > 10


def test_hsv_conversion_matches_colorsys():
    import colorsys

    from sslsan.data.transforms import _hsv_to_rgb, _rgb_to_hsv

    y = torch.rand(2, 3, 6, 6)
    y[0, :, 0, 0] = 0.5  # grey: hue 0
    y[0, :, 0, 1] = torch.tensor([1.0, 1.0, 0.0])  # a tie between two maxima
    hsv = _rgb_to_hsv(y)
    ref = torch.tensor([colorsys.rgb_to_hsv(*y[b, :, i, j].tolist()) for b in range(2) for i in range(6) for j in range(6)])
    assert torch.allclose(hsv, ref.view(2, 6, 6, 3).permute(0, 3, 1, 2), atol=1e-6)
    assert torch.allclose(_hsv_to_rgb(hsv), y, atol=1e-6)
