"""Diagnostic views of saved maps (sslsan.evaluation.diagnostics): identities and known geometry."""

from __future__ import annotations

import numpy as np
import pytest

from sslsan.evaluation.diagnostics import (alignment_parts, category_alignment, retrieval_biases, rf_aligned_ciou_a,
                                           rf_offset_px, rf_shift_cells, shifted_upsample)
from sslsan.metrics import alignment_magnitude, retrieval, upsample


def test_receptive_field_geometry_of_the_stride_16_towers():
    assert rf_shift_cells(16) == pytest.approx(15 / 32)
    assert rf_offset_px(6) == pytest.approx(17.5) and rf_offset_px(10) == pytest.approx(10.5) and rf_offset_px(14) == pytest.approx(7.5)
    # where a stride-16 conv stack centres its cells: the gradient of cell (i, j) of a real ResNet tower
    torch = pytest.importorskip("torch")
    from sslsan.models.resnet import ResNet18Tower

    net = ResNet18Tower(3, width=0.125).eval()
    # random positive input (max-pooling ties would send every gradient to the top-left), large enough that
    # the receptive field meets no border
    x = torch.rand(1, 3, 640, 640, generator=torch.Generator().manual_seed(0)).requires_grad_()
    with torch.no_grad():
        for p in net.parameters():  # all-positive weights: every path counts, the centroid is the centre
            p.abs_()
    net(x)[0, :, 20, 21].sum().backward()
    g = x.grad[0].sum(0).double().numpy()
    ys, xs = np.mgrid[:640, :640]
    cy, cx = (g * ys).sum() / g.sum(), (g * xs).sum() / g.sum()
    assert cy == pytest.approx(16 * 20, abs=1.5) and cx == pytest.approx(16 * 21, abs=1.5)  # pixel 16 i, not 16 i + 7.5


def test_shifted_upsample_at_zero_is_the_reference_placement():
    rng = np.random.default_rng(0)
    maps = rng.random((3, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(shifted_upsample(maps, (224, 224), 0.0), upsample(maps, 224), atol=1e-6)
    # a shift by whole cells moves the content by whole cells (away from the clamped border)
    shifted = shifted_upsample(maps, (60, 60), 1.0)
    np.testing.assert_allclose(shifted[:, 15:35, 15:35], shifted_upsample(maps, (60, 60), 0.0)[:, 25:45, 25:45], atol=1e-6)


def test_rf_aligned_view_recovers_a_blob_drawn_at_receptive_field_centres():
    # each map peaks on the cell whose receptive field is centred on the object: the reference placement
    # draws it 17.5 px right and down of the object, the aligned view on it
    n, gt = 8, np.zeros((8, 224, 224), dtype=np.uint8)
    maps = np.zeros((n, 6, 6), dtype=np.float32)
    for k in range(n):
        i, j = 1 + k % 4, 1 + (k // 4) * 2
        cy, cx = (16 * i + 0.5) * 224 / 96, (16 * j + 0.5) * 224 / 96
        gt[k, int(cy) - 20 : int(cy) + 20, int(cx) - 20 : int(cx) + 20] = 1
        maps[k, i, j] = 1.0
    arrays = {"pos_maps": maps, "gt_maps": gt}
    assert rf_aligned_ciou_a(arrays) > 50.0
    from sslsan.evaluation.per_category import map_offset

    dx, dy = map_offset(arrays)
    assert dx == pytest.approx(17.5, abs=1.5) and dy == pytest.approx(17.5, abs=1.5)


def test_alignment_parts_add_up():
    rng = np.random.default_rng(1)
    common = rng.normal(size=16)
    v = rng.normal(size=(50, 16)) + 2 * common
    a = v + rng.normal(size=(50, 16)) + common
    parts = alignment_parts(v, a, labels=np.arange(50) % 5)
    ref = alignment_magnitude(v, a)
    assert parts["alignment"] == pytest.approx(ref["alignment"]) and parts["magnitude"] == pytest.approx(ref["magnitude"])
    assert parts["alignment"] == pytest.approx(parts["unpaired"] + parts["paired_gain"])
    assert parts["magnitude"] ** 2 == pytest.approx(parts["image_centroid"] ** 2 + parts["audio_centroid"] ** 2
                                                    - 2 * parts["unpaired"])
    vu, au = v / np.linalg.norm(v, axis=1, keepdims=True), a / np.linalg.norm(a, axis=1, keepdims=True)
    assert parts["unpaired"] == pytest.approx(float(np.mean(vu @ au.T)))  # the mean cosine of every image with every audio
    assert parts["paired_gain"] > 0


def test_category_alignment_is_table_1_on_each_category():
    rng = np.random.default_rng(2)
    v, a = rng.normal(size=(30, 8)), rng.normal(size=(30, 8))
    labels = np.array(["a", "b", "c"] * 10)
    per = category_alignment({"image_emb": v, "audio_emb": a, "labels": labels})
    assert per["b"]["n"] == 10 and per["b"]["alignment"] == pytest.approx(alignment_magnitude(v[1::3], a[1::3])["alignment"])


def test_retrieval_biases_each_direction_is_blind_to_one_bias():
    rng = np.random.default_rng(3)
    labels = np.arange(40) % 4
    sim = (labels[:, None] == labels[None, :]) * 0.3 + rng.normal(scale=0.2, size=(40, 40))
    biased = sim + rng.normal(scale=1.0, size=(40, 1)) + rng.normal(scale=0.5, size=(1, 40))
    out = retrieval_biases(biased, labels)
    assert out["image_bias_std"] > out["audio_bias_std"] > 0.2
    # the image bias (rows) never changes image->audio ranking, the audio bias never audio->image
    assert out["a2i_P@1"] == retrieval(biased, labels, ks=(1,))["a2i_P@1"]
    assert out["a2i_P@1_without_image_bias"] >= out["a2i_P@1"]
    assert retrieval(biased - biased.mean(1, keepdims=True), labels, ks=(1,))["i2a_P@1"] == out["i2a_P@1"]


def test_negative_view_against_brute_force():
    from sslsan.evaluation.diagnostics import negative_view

    rng = np.random.default_rng(4)
    n, r = 6, 3
    arrays = {"pos_maps": rng.random((n, 6, 6), dtype=np.float32), "gt_maps": np.zeros((n, 224, 224), np.uint8),
              "threshold": np.float64(0.6)}
    for t in ("silence", "noise", "offscreen"):
        arrays[f"neg_maps_{t}"] = rng.random((r, n, 6, 6), dtype=np.float32) * (0.5 if t == "silence" else 0.9)
    view = negative_view(arrays)
    off = arrays["neg_maps_offscreen"]
    q3 = float(np.quantile(off.max(axis=(-2, -1)).ravel(), 0.75))
    assert view["q3_offscreen"] == pytest.approx(q3)
    assert view["sep_offscreen"] == pytest.approx(float(np.quantile(arrays["pos_maps"].max(axis=(1, 2)), 0.25)) - q3)
    up = upsample(off.reshape(-1, 6, 6), 224)
    assert view["pia_offscreen"] == pytest.approx(100 * float((up > np.float32(0.6)).mean()))
    assert view["pia_offscreen_own_q3"] == pytest.approx(100 * float((up > np.float32(q3)).mean()))


def test_region_similarity_splits_object_and_background():
    from sslsan.evaluation.diagnostics import region_similarity

    gt = np.zeros((2, 224, 224), np.uint8)
    gt[:, :112] = 1  # the top half is the object
    pos = np.zeros((2, 6, 6), np.float32)
    pos[:, :3] = 0.8  # the top half of the map
    pos[:, 3:] = 0.2
    off = np.full((1, 2, 6, 6), 0.1, np.float32)
    out = region_similarity({"pos_maps": pos, "gt_maps": gt, "neg_maps_offscreen": off})
    up = upsample(pos, 224).astype(np.float64)
    assert out["pos_object"] == pytest.approx(up[:, :112].mean()) and out["pos_background"] == pytest.approx(up[:, 112:].mean())
    assert out["off_object"] == pytest.approx(0.1) and out["object_share"] == pytest.approx(0.5)


def test_retrieval_by_scene_counts_visible_categories():
    from sslsan.evaluation.diagnostics import retrieval_by_scene

    labels = np.array(["a", "b", "c", "a"])
    scenes = [["a", "b"], ["b"], ["c", "a", "b"], ["a"]]
    sim = np.array([[0.1, 0.9, 0.0, 0.0],   # image 0 (a, b visible) -> audio 1 (b): wrong label, visible
                    [0.0, 0.9, 0.1, 0.0],   # image 1 -> b: right
                    [0.9, 0.1, 0.2, 0.0],   # image 2 (c, a, b) -> a: wrong, visible
                    [0.0, 0.0, 0.9, 0.1]])  # image 3 (a) -> c: wrong, not visible
    out = retrieval_by_scene(sim, labels, scenes)
    assert out["i2a_P@1"] == pytest.approx(25.0) == retrieval(sim, labels, ks=(1,))["i2a_P@1"]
    assert out["i2a_P@1_any_visible"] == pytest.approx(75.0)
    assert out["share_k1"] == 50.0 and out["i2a_P@1_k1"] == 50.0 and out["i2a_P@1_k2"] == 0.0
    assert out["bound"] == pytest.approx(100 * (0.5 + 1 + 1 / 3 + 1) / 4)
