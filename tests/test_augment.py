"""The training augmentation split between loader workers and the device equals the per-sample reference.

Reference: `ImageTrainTransform(img, generator)` on one image (tested in test_transforms.py). The
split: `decode_crop` (draws + uint8 crop in the worker) and `ImageDeviceAugment` (batched flip,
colour, grayscale, blur, normalisation). Same keys -> same draws -> the same output.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from sslsan.data.augment import FLIP, N_PARAMS, ImageDeviceAugment, decode_crop, draft_factor, draw_params
from sslsan.data.transforms import ImageError, ImageTrainTransform, _as_float_batch, load_image
from sslsan.utils.seed import make_generator

PAPER = dict(jitter_p=0.8, grayscale_p=0.2, blur_p=0.5)  # the MoCo-v2 probabilities (the defaults)


def _frame(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth colour blobs + mild noise: JPEG-friendly like a video frame, with structure to crop."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.zeros((h, w, 3))
    for _ in range(6):
        cy, cx, r = rng.uniform(0, 1, 3) * [h / max(h, w), w / max(h, w), 0.4]
        img += rng.uniform(0, 255, 3) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (0.05 + r) ** 2))[..., None]
    img = 255 * img / img.max() + rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _reference_split(img: torch.Tensor, tf: ImageTrainTransform, g: torch.Generator):
    """The worker half done in float (as the reference resizes), unflipped, + the draws."""
    crop, params = draw_params(tf, img.shape[1], img.shape[2], g)
    x, _ = _as_float_batch(img)
    return tf.geometry(x, [dataclasses.replace(crop, flip=False)])[0], params


@pytest.mark.parametrize("probs", [PAPER, dict(jitter_p=1.0, grayscale_p=0.5, blur_p=1.0),
                                   dict(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)])
def test_device_augment_equals_per_sample_reference(probs):
    rng = np.random.default_rng(0)
    tf = ImageTrainTransform(48, **probs)
    imgs = [torch.from_numpy(_frame(rng, 60 + 7 * (i % 3), 80 - 5 * (i % 4))).permute(2, 0, 1) for i in range(24)]
    keys = [(3, 1, 0, i) for i in range(len(imgs))]
    reference = torch.stack([tf(img, make_generator(*k)) for img, k in zip(imgs, keys)])
    crops, params = zip(*(_reference_split(img, tf, make_generator(*k)) for img, k in zip(imgs, keys)))
    params = torch.stack(params)
    assert params.shape == (24, N_PARAMS) and 0 < params[:, FLIP].sum() < 24
    batched = ImageDeviceAugment(tf, per_sample=False)(torch.stack(crops), params, host_params=params)
    torch.testing.assert_close(batched, reference, rtol=0, atol=2e-5)
    # one image at a time (the CPU default) gives the same; the host copy is optional (read back if omitted)
    torch.testing.assert_close(ImageDeviceAugment(tf)(torch.stack(crops), params), reference, rtol=0, atol=2e-5)


def test_draws_are_the_reference_draws():
    """draw_params consumes the generator exactly as the reference does on one image: same distribution."""
    tf = ImageTrainTransform(64, **PAPER)
    img = torch.zeros(3, 90, 120, dtype=torch.uint8)
    for key in range(20):
        g_ref, g_new = make_generator(9, key), make_generator(9, key)
        tf(img, g_ref)
        crop, params = draw_params(tf, 90, 120, g_new)
        assert torch.equal(g_ref.get_state(), g_new.get_state())
        g = make_generator(9, key)
        assert crop == tf.crop_params(90, 120, g)
        assert torch.equal(params[1:], tf.colour_params(1, g)[0])


def test_decode_crop_matches_the_reference_crop(tmp_path):
    rng = np.random.default_rng(1)
    arr = _frame(rng, 75, 100)
    Image.fromarray(arr).save(tmp_path / "f.jpg", quality=92)
    Image.fromarray(arr).save(tmp_path / "f.png")
    Image.fromarray(arr).convert("L").save(tmp_path / "g.jpg", quality=92)
    Image.fromarray(arr).convert("CMYK").save(tmp_path / "c.jpg", quality=92)
    Image.fromarray(arr[..., 0].astype(np.uint16) * 257).save(tmp_path / "h16.png")  # 16-bit greyscale
    tf = ImageTrainTransform(56, **PAPER)
    for name in ("f.jpg", "f.png", "g.jpg", "c.jpg", "h16.png"):
        for key in range(8):
            out, params = decode_crop(tmp_path / name, tf, make_generator(5, key))
            ref, ref_params = _reference_split(load_image(tmp_path / name), tf, make_generator(5, key))
            assert out.dtype == torch.uint8 and out.shape == (3, 56, 56) and out.is_contiguous()
            assert torch.equal(params, ref_params)
            # the same resampling on uint8 instead of float: within one grey level (rounding)
            assert (out.float() - 255 * ref).abs().max() <= 1.0 + 1e-3, (name, key)


def test_reduced_jpeg_decode(tmp_path):
    """Large frames: decoded at 1/2..1/8 scale when the crop allows, close to the full decode."""
    rng = np.random.default_rng(2)
    Image.fromarray(_frame(rng, 600, 800)).save(tmp_path / "big.jpg", quality=92)
    tf = ImageTrainTransform(64, scale=(0.3, 1.0), **PAPER)
    factors = []
    for key in range(6):
        crop, _ = draw_params(tf, 600, 800, make_generator(6, key))
        factors.append(draft_factor(crop, 64))
        fast, p1 = decode_crop(tmp_path / "big.jpg", tf, make_generator(6, key))
        full, p2 = decode_crop(tmp_path / "big.jpg", tf, make_generator(6, key), reduced_decode=False)
        assert torch.equal(p1, p2)
        diff = (fast.float() - full.float()).abs()
        assert diff.mean() < 2.0 and diff.max() < 40, (key, factors[-1], diff.mean(), diff.max())
    assert max(factors) >= 4  # the test exercises the reduced decode
    assert draft_factor(dataclasses.replace(crop, height=127, width=500), 64) == 1


def test_decode_crop_errors_name_the_file(tmp_path):
    tf = ImageTrainTransform(32)
    with pytest.raises(ImageError, match="nope.jpg: image file not found"):
        decode_crop(tmp_path / "nope.jpg", tf)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff" + bytes(100))
    with pytest.raises(ImageError, match="bad.jpg: cannot decode"):
        decode_crop(tmp_path / "bad.jpg", tf)
    Image.fromarray(_frame(np.random.default_rng(3), 40, 40)).save(tmp_path / "cut.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "cut.jpg").read_bytes()[:300])
    with pytest.raises(ImageError, match="cut.jpg: cannot decode"):
        decode_crop(tmp_path / "cut.jpg", tf)


def test_device_augment_checks_its_parameters():
    aug = ImageDeviceAugment(ImageTrainTransform(16))
    with pytest.raises(ValueError, match="augmentation parameters"):
        aug(torch.zeros(2, 3, 16, 16, dtype=torch.uint8), torch.zeros(3, N_PARAMS))
