"""sslsan.metrics against slow per-pixel / per-entry loops (tests/metrics_reference.py) and hand values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from metrics_reference import (
    adaptive_threshold_loop,
    auc_loop,
    aucn_loop,
    ciou_loop,
    gt_map_loop,
    localization_metrics_loop,
    median_threshold_loop,
    pia_loop,
    quantile_loop,
    retrieval_loop,
    upsample_loop,
)

import sslsan.metrics as M

F32 = np.float32


def _close(a, b, tol=1e-12):
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return abs(a - b) <= tol * max(1.0, abs(b))


def _assert_dicts(got, want, tol=1e-9):
    assert list(got) == list(want)
    for k in want:
        assert _close(got[k], want[k], tol), (k, got[k], want[k])


# ---------------------------------------------------------------- upsampling


@pytest.mark.parametrize("shape,out", [((14, 14), (40, 40)), ((3, 5), (17, 9)), ((7, 7), (224, 224)), ((6, 4), (4, 3))])
def test_upsample_equals_per_pixel_loop(shape, out):
    m = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    np.testing.assert_array_equal(M.upsample(m, out), upsample_loop(m, *out))


def test_upsample_hand_values_and_edge_clamp():
    # 2x2 -> 4x4: source coordinates -0.25, 0.25, 0.75, 1.25 clamp to 0, .25, .75, 1
    m = np.array([[0.0, 1.0], [2.0, 3.0]], dtype=np.float32)
    f = np.array([0.0, 0.25, 0.75, 1.0])
    np.testing.assert_array_equal(M.upsample(m, 4), (f[None, :] + 2 * f[:, None]).astype(np.float32))
    # 14 -> 224: the first and last 8 rows / columns copy the edge, constant maps stay exact
    rng = np.random.default_rng(1)
    m = rng.random((14, 14), dtype=np.float32)
    up = M.upsample(m)
    assert up.shape == (224, 224) and up.dtype == np.float32
    np.testing.assert_array_equal(up[:8, :8], np.full((8, 8), m[0, 0]))
    np.testing.assert_array_equal(up[-8:, -8:], np.full((8, 8), m[-1, -1]))
    np.testing.assert_array_equal(M.upsample(np.full((14, 14), 0.3, np.float32)), np.full((224, 224), F32(0.3)))
    assert up.max() <= m.max() and up.min() >= m.min()
    # identity at the same size
    np.testing.assert_array_equal(M.upsample(up), up)


def test_upsample_matches_torch_bilinear_and_float64_formula():
    torch = pytest.importorskip("torch")
    m = np.random.default_rng(2).uniform(-1, 1, size=(4, 14, 14)).astype(np.float32)
    up = M.upsample(m)
    ref = torch.nn.functional.interpolate(torch.from_numpy(m)[:, None], size=(224, 224), mode="bilinear", align_corners=False)
    assert np.abs(up - ref[:, 0].numpy()).max() <= 3e-7
    # exact real-valued bilinear (float64): within a few float32 ulps (docs/metrics.md §1.2: cv2 within 1.8e-7)
    src = np.clip((np.arange(224) + 0.5) / 16 - 0.5, 0, 13)
    i0 = np.minimum(np.floor(src).astype(int), 12)
    w = src - i0
    rows = m[:, i0, :] * (1 - w)[:, None] + m[:, i0 + 1, :] * w[:, None]
    exact = rows[:, :, i0] * (1 - w) + rows[:, :, i0 + 1] * w
    assert np.abs(up - exact).max() <= 3e-7


def test_upsample_vectorised_over_leading_axes():
    m = np.random.default_rng(3).random((2, 3, 14, 14), dtype=np.float32)
    up = M.upsample(m, chunk_size=4)
    assert up.shape == (2, 3, 224, 224)
    np.testing.assert_array_equal(up[1, 2], M.upsample(m[1, 2]))


# ---------------------------------------------------------------- counting pixels above tau


def _count_cases():
    rng = np.random.default_rng(4)
    maps = [rng.random((14, 14), dtype=np.float32) for _ in range(20)]
    maps += [np.full((14, 14), 0.25, np.float32), np.zeros((14, 14), np.float32)]
    maps += [rng.random((14, 14), dtype=np.float32) * 0.1, 0.9 + rng.random((14, 14), dtype=np.float32) * 0.1]
    plateau = rng.random((14, 14), dtype=np.float32)
    plateau[3:9, 2:11] = 0.25
    maps.append(plateau)
    steps = np.round(rng.random((14, 14)) * 4).astype(np.float32) / 4  # many ties, exact quarter values
    maps.append(steps)
    return np.stack(maps)


@pytest.mark.parametrize("inclusive", [False, True])
def test_count_above_equals_dense_comparison(inclusive):
    maps = _count_cases()
    up = M.upsample(maps)
    pick = up[0].ravel()[[0, 1234, 40000]]
    for tau in [0.25, 0.5, 0.0, 1.0, float(pick[0]), float(pick[1]), float(pick[2]), float(np.nextafter(pick[1], F32(0)))]:
        want = np.count_nonzero(np.greater_equal(up, F32(tau)) if inclusive else np.greater(up, F32(tau)), axis=(1, 2))
        np.testing.assert_array_equal(M.count_above(maps, tau, inclusive=inclusive), want)


@pytest.mark.parametrize("native,out", [(14, 224), (7, 224), (7, (50, 31)), (5, 5)])
def test_count_above_stress_against_dense(native, out):
    """Random, smooth, tied, huge and tiny maps, thresholds on and next to upsampled pixel values."""
    rng = np.random.default_rng(native)
    n = 24
    smooth = np.cumsum(np.cumsum(rng.normal(size=(n, native, native)), axis=1), axis=2) * 0.05
    kinds = [
        rng.uniform(-1, 1, size=(n, native, native)),
        smooth,
        np.round(rng.uniform(0, 1, size=(n, native, native)) * 3) / 3,
        rng.uniform(-1, 1, size=(n, native, native)) * 1e3,
        rng.uniform(0, 1, size=(n, native, native)) * 1e-30,
    ]
    for maps in kinds:
        maps = maps.astype(np.float32)
        up = M.upsample(maps, out)
        picks = up.ravel()[rng.integers(0, up.size, size=4)]
        taus = [0.0, 1 / 3, float(np.median(maps))] + [float(p) for p in picks]
        taus += [float(np.nextafter(picks[0], F32(np.inf))), float(np.nextafter(picks[1], F32(-np.inf)))]
        for tau in taus:
            want = np.count_nonzero(up > F32(tau), axis=(1, 2))
            np.testing.assert_array_equal(M.count_above(maps, tau, out, chunk_size=7), want)


def test_threads_do_not_change_results():
    pos, gt, negs = _localization_case(7, n=9, reps=2)
    one = M.localization_scores(pos, gt, negs, 0.3, chunk_size=2, workers=1)
    two = M.localization_scores(pos, gt, negs, 0.3, chunk_size=2, workers=2)
    for k in one:
        np.testing.assert_array_equal(one[k], two[k])
    np.testing.assert_array_equal(M.upsample(pos, chunk_size=2, workers=2), M.upsample(pos, workers=1))


def test_count_above_nan_maps_and_other_sizes():
    rng = np.random.default_rng(5)
    maps = rng.random((3, 7, 9), dtype=np.float32)
    maps[1, 2, 3] = np.nan
    up = M.upsample(maps, (50, 31))
    np.testing.assert_array_equal(M.count_above(maps, 0.4, (50, 31)), np.count_nonzero(up > F32(0.4), axis=(1, 2)))


# ---------------------------------------------------------------- cIoU, pIA, thresholds


def _pred_gt_cases():
    rng = np.random.default_rng(6)
    pred = rng.random((16, 16), dtype=np.float32)
    box = M.gt_map_from_boxes([[3, 2, 11, 9]], size=16)
    flickr = M.gt_map_from_boxes([[3, 2, 11, 9], [6, 6, 16, 16]], mode="consensus", size=16)
    ties = (np.round(pred * 3) / 3).astype(np.float32)
    return [
        (pred, box),
        (pred, flickr),
        (pred, np.zeros((16, 16))),  # empty GT
        (pred, np.ones((16, 16))),  # full GT
        (ties, box),
        (np.full((16, 16), 0.5, np.float32), box),  # constant map
        (np.full((16, 16), 0.5, np.float32), np.zeros((16, 16))),  # constant map, empty GT
    ]


@pytest.mark.parametrize("case", range(7))
def test_ciou_pia_adaptive_median_equal_loops(case):
    pred, gt = _pred_gt_cases()[case]
    taus = [0.5, 0.0, 1.0, float(pred[4, 5]), float(np.sort(pred.ravel())[100]), 0.3]
    for tau in taus:
        for inclusive in (False, True):
            got = M.ciou(pred, gt, tau, inclusive=inclusive)
            want = ciou_loop(pred, gt, tau, inclusive)
            assert all(_close(g, w) for g, w in zip(got, want)), (tau, got, want)
            assert M.pia(pred, tau, inclusive=inclusive) == pia_loop(pred, tau, inclusive)
    tau_a = M.adaptive_threshold(pred, gt)
    assert tau_a == adaptive_threshold_loop(pred, gt)
    assert M.median_threshold(pred) == median_threshold_loop(pred)
    got_a = M.ciou(pred, gt, tau_a)[0]
    want_a = ciou_loop(pred, gt, adaptive_threshold_loop(pred, gt))[0]
    assert _close(got_a, want_a)


def test_ciou_known_values_and_nan():
    gt = M.gt_map_from_boxes([[0, 0, 2, 2]], size=4)  # 4 GT pixels
    pred = np.zeros((4, 4), np.float32)
    pred[0, 0:3] = 1.0  # 2 inside, 1 outside
    assert M.ciou(pred, gt, 0.5) == (2 / 5, 2.0, 5.0)
    assert math.isnan(M.ciou(pred * 0, np.zeros((4, 4)), 0.5)[0])  # empty GT, empty prediction: 0/0
    assert M.ciou(pred, np.zeros((4, 4)), 0.5)[0] == 0.0  # empty GT, non-empty prediction
    assert M.ciou(pred * 0, gt, 0.5)[0] == 0.0  # empty prediction
    # a threshold equal to a pixel value excludes it (strict >); >= only on request
    assert M.ciou(pred, gt, 1.0)[0] == 0.0 and M.ciou(pred, gt, 1.0, inclusive=True)[0] == 2 / 5
    # Flickr consensus: a 0.5 pixel adds 0.5 to inter and to the union
    soft = M.gt_map_from_boxes([[0, 0, 2, 2], [0, 0, 1, 1]], mode="consensus", size=4)
    assert M.ciou(pred, soft, 0.5) == ((1 + 0.5) / (1 + 0.5 * 3 + 1), 1.5, 3.5)


def test_threshold_compared_in_float32():
    # decimal_vs_float32_pixel: the pixel float32(0.3) is NOT above the threshold 0.3
    pred = np.full((4, 4), F32(0.3))
    gt = np.ones((4, 4))
    assert float(F32(0.3)) > 0.3
    assert M.ciou(pred, gt, 0.3)[0] == 0.0
    assert M.pia(pred, 0.3) == 0.0
    assert M.count_above(pred[None], 0.3, 4)[0] == 0


def test_adaptive_threshold_rules():
    pred = np.arange(16, dtype=np.float32).reshape(4, 4)
    gt = np.zeros((4, 4))
    gt[0, :3] = 1  # B = 3 -> tau = s[13] = 13 -> prediction {14, 15} (B - 1 pixels)
    assert M.adaptive_threshold(pred, gt) == 13.0
    assert M.adaptive_threshold(pred, np.zeros((4, 4))) == 8.0  # empty GT: B = n // 2
    assert M.adaptive_threshold(pred, np.ones((4, 4))) == 0.0  # full GT: tau = min
    # batched: one threshold per map, float32 array
    both = M.adaptive_threshold(np.stack([pred, pred]), np.stack([gt, np.zeros((4, 4))]))
    assert both.dtype == np.float32 and both.tolist() == [13.0, 8.0]
    # constant map: the prediction is empty -> cIoU 0, or NaN with an empty GT (docs/metrics.md §6, item 5)
    flat = np.full((4, 4), 0.2, np.float32)
    assert M.ciou(flat, gt, M.adaptive_threshold(flat, gt))[0] == 0.0
    assert math.isnan(M.ciou(flat, gt * 0, M.adaptive_threshold(flat, gt * 0))[0])
    assert M.median_threshold(pred) == 8.0


def test_batched_ciou_with_per_map_thresholds():
    cases = _pred_gt_cases()
    pred = np.stack([p for p, _ in cases])
    gt = np.stack([g for _, g in cases])
    taus = M.adaptive_threshold(pred, gt)
    values, inter, union = M.ciou(pred, gt, taus)
    for i, (p, g) in enumerate(cases):
        want = ciou_loop(p, g, taus[i])
        assert _close(values[i], want[0]) and inter[i] == want[1] and union[i] == want[2]
    np.testing.assert_array_equal(M.pia(pred, 0.5), [pia_loop(p, 0.5) for p, _ in cases])


# ---------------------------------------------------------------- AUC, AUCN, F


def test_auc_grid_is_python_floats():
    assert M.AUC_GRID[3] == 0.15000000000000002 and M.AUC_GRID[6] == 0.30000000000000004
    assert M.AUC_GRID[4] == 0.2 and M.AUC_GRID[20] == 1.0


def test_auc_aucn_known_values():
    assert M.auc([0.0, 0.0]) == pytest.approx(0.025, abs=1e-15)  # the floor
    assert M.auc([1.0]) == pytest.approx(1.0, abs=1e-15)
    assert M.auc([math.nan, math.nan]) == 0.0  # NaN fails even at x = 0
    # 0.15 == 3/20 fails at x_3 = 0.15000000000000002: y = [1, 1, 1, 0, ...]
    assert 3 / 20 == 0.15
    assert M.auc([0.15]) == pytest.approx(0.125, abs=1e-15)
    assert M.auc([0.2]) == pytest.approx(0.225, abs=1e-15)  # x_4 == 0.2 exactly: counted
    assert M.aucn([0.0]) == pytest.approx(1.0, abs=1e-15)
    assert M.aucn([1.0]) == pytest.approx(0.025, abs=1e-15)
    assert M.aucn([0.15]) == pytest.approx(0.875, abs=1e-15)  # <= counts it at x_3
    assert M.aucn([math.nan]) == 0.0
    with pytest.raises(M.MetricsError):
        M.auc([])


def test_auc_aucn_equal_loops_on_grid_values_ties_and_nan():
    rng = np.random.default_rng(7)
    grid_values = [k / 20 for k in range(21)] + [0.05 * k for k in range(21)]
    values = grid_values + rng.random(40).tolist() + [math.nan, math.nan, 0.0, 1.0, 0.5, 0.5]
    for subset in (values, values[:21], values[21:42], rng.random(7).tolist()):
        assert M.auc(subset) == pytest.approx(auc_loop(subset), abs=1e-15)
        assert M.aucn(subset) == pytest.approx(aucn_loop(subset), abs=1e-15)


def test_f_score():
    assert M.f_score(50.0, 100.0) == pytest.approx(200 / 3)
    assert M.f_score(0.0, 80.0) == 0.0
    assert math.isnan(M.f_score(0.0, 0.0))


# ---------------------------------------------------------------- localization_metrics


def _localization_case(seed, n=5, reps=2, size=24, native=6):
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, 0.6, size=(n, native, native)).astype(np.float32)
    pos[1] = 0.2  # constant map
    gt = np.stack([M.gt_map_from_boxes([[2 + i, 3, 14 + i, 20]], size=size) for i in range(n)])
    gt[2] = 0  # empty GT -> NaN cIoU
    if n > 3:
        gt[3] = M.gt_map_from_boxes([[0, 0, 12, 12], [6, 6, 24, 24]], mode="consensus", size=size)
    negs = {
        "silence": np.full((reps, n, native, native), 0.1, np.float32),  # wholly below
        "noise": rng.uniform(0, 0.6, size=(reps, n, native, native)).astype(np.float32),
        "offscreen": rng.uniform(0.2, 0.5, size=(reps, n, native, native)).astype(np.float32),
    }
    negs["offscreen"][0, 0] = 0.9  # wholly above
    return pos, gt, negs


@pytest.mark.parametrize("seed", [0, 1])
def test_localization_metrics_equals_reference_pipeline(seed):
    pos, gt, negs = _localization_case(seed)
    tau = float(M.upsample(pos[0], gt.shape[1:])[5, 7])  # a threshold equal to a pixel value
    got = M.localization_metrics(pos, gt, negs, tau, chunk_size=2)
    want = localization_metrics_loop(pos, gt, negs, tau)
    _assert_dicts(got, want)


def test_localization_metrics_224_and_keys():
    pos, _, negs = _localization_case(3, n=3, reps=2, native=14)
    gt = np.stack([M.gt_map_from_boxes(M.boxes_to_pixels([[0.1, 0.2, 0.6, 0.7]]))] * 3)
    got = M.localization_metrics(pos, gt.astype(np.uint8), negs, 0.3338)
    want = localization_metrics_loop(pos, gt, negs, 0.3338)
    _assert_dicts(got, want)
    expected = ["ciou_u", "auc_u", "ciou_a", "auc_a", "ciou_u_success", "ciou_a_mean"]
    for t in ("silence", "noise", "offscreen"):
        expected += [f"pia_{t}", f"aucn_{t}"]
    expected += ["floc", "fauc"] + [f"{f}_{t}" for t in ("silence", "noise", "offscreen") for f in ("floc", "fauc")]
    assert list(got) == expected
    assert got["pia_silence"] == 0.0 and got["aucn_silence"] == pytest.approx(100.0)


def test_localization_scores_shapes_and_pooling():
    pos, gt, negs = _localization_case(4, n=4, reps=3)
    pos[2] = 0.0  # empty GT and empty prediction
    scores = M.localization_scores(pos, gt, negs, 0.3)
    assert scores["ciou_u"].shape == (4,) and scores["threshold_a"].dtype == np.float32
    assert scores["pia_noise"].shape == (3, 4)
    # constant map on an empty GT: NaN for both thresholds (the adaptive one sits on the plateau)
    assert math.isnan(scores["ciou_u"][2]) and math.isnan(scores["ciou_a"][2])
    # pooling R repetitions = concatenating them
    single = [M.localization_scores(pos, gt, {"noise": negs["noise"][r]}, 0.3)["pia_noise"] for r in range(3)]
    np.testing.assert_array_equal(scores["pia_noise"], np.concatenate(single))
    # a (N, h, w) negative array counts as one repetition; no negatives -> positive keys only
    only_pos = M.localization_metrics(pos, gt, {}, 0.3)
    assert "floc" not in only_pos and set(only_pos) >= {"ciou_u", "auc_a"}


def test_localization_metrics_bad_input():
    pos, gt, negs = _localization_case(5, n=3)
    with pytest.raises(M.MetricsError, match="gt_maps"):
        M.localization_metrics(pos, gt[:2], negs, 0.3)
    with pytest.raises(M.MetricsError, match="noise"):
        M.localization_metrics(pos, gt, {"noise": negs["noise"][:, :2]}, 0.3)
    with pytest.raises(M.MetricsError, match="threshold"):
        M.localization_metrics(pos, gt, negs, float("nan"))


def test_classic_protocol_equals_loop():
    pos, gt, _ = _localization_case(6, n=4)
    got = M.classic_localization_metrics(pos, gt)
    values = []
    for p, g in zip(pos, gt):
        up = upsample_loop(p, *gt.shape[1:])
        lo, hi = up.min(), up.max()
        pred = up if hi <= lo else ((up - lo) / (hi - lo)).astype(np.float32)
        values.append(ciou_loop(pred, g, median_threshold_loop(pred))[0])
    assert got["ciou_classic"] == pytest.approx(100 * sum(v >= 0.5 for v in values) / len(values))
    assert got["auc_classic"] == pytest.approx(100 * auc_loop(values))
    # every normalised map predicts (just under) half of the image, whatever its values
    assert M.pia(M.minmax_normalize(M.upsample(pos[0], 24)), M.median_threshold(M.minmax_normalize(M.upsample(pos[0], 24)))) < 0.5


# ---------------------------------------------------------------- universal threshold, Sep, alignment


def test_universal_threshold_modes():
    negs = {"silence": np.array([[1.0, 2.0], [3.0, 4.0]]), "noise": np.array([5.0]), "offscreen": np.arange(10.0)}
    per_type = max(quantile_loop([1, 2, 3, 4], 0.75), 5.0, quantile_loop(list(range(10)), 0.75))
    assert M.universal_threshold(negs) == pytest.approx(per_type, abs=1e-12) == pytest.approx(6.75)
    pooled = quantile_loop([1, 2, 3, 4, 5] + list(range(10)), 0.75)
    assert M.universal_threshold(negs, mode="pooled") == pytest.approx(pooled, abs=1e-12)
    with pytest.raises(M.MetricsError, match="mode"):
        M.universal_threshold(negs, mode="mean")
    with pytest.raises(M.MetricsError):
        M.universal_threshold({})


def test_separability():
    rng = np.random.default_rng(8)
    pos, neg = rng.random(37), rng.random((3, 11))
    want = quantile_loop(pos.tolist(), 0.25) - quantile_loop(neg.ravel().tolist(), 0.75)
    assert M.separability(pos, neg) == pytest.approx(want, abs=1e-12)
    assert M.separability([0, 1, 2, 3, 4], {"silence": [0.0], "noise": [0.4]}) == pytest.approx(0.7)


def test_alignment_magnitude_known_values():
    v = np.array([[1.0, 0.0], [0.0, 3.0]])  # normalised inside
    a = np.array([[2.0, 0.0], [1.0, 0.0]])
    got = M.alignment_magnitude(v, a)
    assert got["alignment"] == pytest.approx(0.5)
    assert got["magnitude"] == pytest.approx(math.sqrt(0.5))
    assert got["pair_distance"] == pytest.approx(math.sqrt(2) / 2)
    with pytest.raises(M.MetricsError):
        M.alignment_magnitude(v, a[:1])


# ---------------------------------------------------------------- retrieval


@pytest.mark.parametrize("exclude_self", [False, True])
def test_retrieval_equals_loop_with_ties_and_nan(exclude_self):
    rng = np.random.default_rng(9)
    n = 23
    sim = rng.integers(0, 4, size=(n, n)).astype(float)  # heavy ties
    sim[3, 5] = np.nan
    labels = rng.integers(0, 4, size=n)
    ks = (1, 5, 10, 30)
    got = M.retrieval(sim, labels, ks, exclude_self=exclude_self, chunk_size=7)
    _assert_dicts(got, retrieval_loop(sim, labels, ks, exclude_self))


def test_retrieval_known_values():
    # 3 pairs; labels a, a, b. Row = image query, column = audio.
    sim = np.array([[0.9, 0.9, 0.1], [0.5, 0.2, 0.5], [0.3, 0.3, 0.3]])
    got = M.retrieval(sim, ["a", "a", "b"], ks=(1, 2))
    # i2a top-1: image0 -> audio0 (tie with 1, lower index) hit; image1 -> audio0 hit; image2 -> audio0 miss
    assert got["i2a_P@1"] == pytest.approx(200 / 3) and got["i2a_A@1"] == pytest.approx(200 / 3)
    # i2a top-2: image0 {0,1} 2 hits; image1 {0,2} 1 hit; image2 {0,1} 0 hits
    assert got["i2a_P@2"] == pytest.approx(100 * (1 + 0.5 + 0) / 3)
    # a2i top-1: audio0 -> image0 hit; audio1 -> image0 hit; audio2 -> image1 (0.5) miss
    assert got["a2i_P@1"] == pytest.approx(200 / 3)
    ex = M.retrieval(sim, ["a", "a", "b"], ks=(1,), exclude_self=True)
    # without self: image0 -> audio1 hit; image1 -> audio0 (0.5 vs 0.5 tie, lower index) hit; image2 -> audio0 miss
    assert ex["i2a_P@1"] == pytest.approx(200 / 3)
    with pytest.raises(M.MetricsError):
        M.retrieval(sim[:2], ["a", "a"])


# ---------------------------------------------------------------- GT maps


def test_boxes_to_pixels_truncates_after_clipping():
    got = M.boxes_to_pixels([[0.5, 0.25, 1.2, -0.1], [0.999, 0.0, 1.0, 0.00446]])
    assert got.tolist() == [[112, 56, 224, 0], [223, 0, 224, 0]]
    assert M.boxes_to_pixels([]).shape == (0, 4)


@pytest.mark.parametrize("mode", ["union", "consensus"])
def test_gt_map_from_boxes_equals_loop(mode):
    boxes = [[2, 3, 9, 7], [5, 5, 12, 20], [4, 4, 4, 9], [10, 1, 30, 3]]  # a zero-width box, one past the edge
    got = M.gt_map_from_boxes(boxes, mode=mode, size=16)
    np.testing.assert_array_equal(got, gt_map_loop(boxes, mode, 16))
    assert got.dtype == np.float64
    assert not M.gt_map_from_boxes([], size=16).any()
    assert M.gt_map_from_boxes([[0, 0, 224, 224]]).shape == (224, 224)
    with pytest.raises(M.MetricsError, match="negative"):
        M.gt_map_from_boxes([[-1, 0, 3, 3]])
    with pytest.raises(M.MetricsError, match="mode"):
        M.gt_map_from_boxes(boxes, mode="flickr")


def test_gt_map_from_mask():
    mask = np.array([[0, 255], [127, 128]], dtype=np.uint8)
    got = M.gt_map_from_mask(mask, size=4)
    np.testing.assert_array_equal(got, np.kron(np.array([[0, 1], [0, 1]]), np.ones((2, 2))))
    assert M.gt_map_from_mask(mask.astype(bool), size=4).sum() == 12  # bool: True is foreground
    big = np.zeros((300, 500), np.uint8)
    big[150:, 250:] = 200
    gt = M.gt_map_from_mask(big)
    assert gt.shape == (224, 224) and gt.dtype == np.float64 and gt[112:, 112:].all() and not gt[:112].any()
    with pytest.raises(M.MetricsError):
        M.gt_map_from_mask(np.zeros((3, 4, 4)))
