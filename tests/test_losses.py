"""Objective terms against slow, literal re-statements of docs/model.md §4-5 and DECISIONS D2/D14."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from sslsan.losses import (
    ContrastiveLoss,
    EquivarianceLoss,
    EquivarianceTransform,
    SilenceNoiseConfig,
    SilenceNoiseLoss,
    SilenceNoiseObjective,
    SSLTIEObjective,
    TIEObjectiveConfig,
    TransformParams,
)
from sslsan.models import Localizer, ModelConfig

SAN_FIELDS = {f.name for f in dataclasses.fields(SilenceNoiseConfig)}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: extra threads only add contention on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


EPS, EPS2, TAU, TEMP = 0.65, 0.4, 0.03, 0.07
IMG, SPEC = 64, (1, 1, 48, 40)  # small inputs: 4x4 image maps, tiny audio tower input


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def slow_logits(cross: torch.Tensor) -> list[list[float]]:
    """docs/model.md §4.1 by loops in float64; A is the diagonal of A0."""
    b, _, h, w = cross.shape
    rows = []
    for n in range(b):
        px = [(i, j) for i in range(h) for j in range(w)]
        a = [float(cross[n, n, i, j]) for i, j in px]
        pos = [sigmoid((x - EPS) / TAU) for x in a]
        neg = [1 - sigmoid((x - EPS2) / TAU) for x in a]
        sim1 = sum(p * x for p, x in zip(pos, a)) / sum(pos)
        sim2 = sum(q * x for q, x in zip(neg, a)) / sum(neg)
        row = [sim1]
        for k in range(b):
            vals = [float(cross[n, k, i, j]) for i, j in px]
            p_all = [sigmoid((x - EPS) / TAU) for x in vals]
            easy = sum(p * x for p, x in zip(p_all, vals)) / sum(p_all)
            row.append(easy * (1 - 100 * (n == k)))
        row.append(sim2)
        rows.append([x / TEMP for x in row])
    return rows


def slow_cross_entropy(rows: list[list[float]]) -> float:
    return sum(math.log(sum(math.exp(x - max(r)) for x in r)) + max(r) - r[0] for r in rows) / len(rows)


def random_cross(b=3, h=4, w=5, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.3 + 0.5 * torch.rand(b, b, h, w, generator=g)  # straddles ε2 and ε


def diag_map(cross: torch.Tensor) -> torch.Tensor:
    return cross.diagonal(dim1=0, dim2=1).permute(2, 0, 1).unsqueeze(1)


def test_contrastive_matches_literal_formula():
    cross = random_cross()
    loss, logits = ContrastiveLoss()(diag_map(cross), cross)
    ref = slow_logits(cross.double())
    torch.testing.assert_close(logits, torch.tensor(ref, dtype=torch.float32), rtol=1e-5, atol=1e-4)
    assert loss.item() == pytest.approx(slow_cross_entropy(ref), rel=1e-5)
    assert logits.shape == (3, 5)


def test_contrastive_extra_negatives_are_appended_over_temperature():
    cross = random_cross(seed=1)
    extra = torch.rand(3, 2)
    _, base = ContrastiveLoss()(diag_map(cross), cross)
    loss, logits = ContrastiveLoss()(diag_map(cross), cross, extra)
    torch.testing.assert_close(logits[:, :5], base)
    torch.testing.assert_close(logits[:, 5:], extra / TEMP)
    rows = [r + [float(e) / TEMP for e in ex] for r, ex in zip(slow_logits(cross.double()), extra.double())]
    assert loss.item() == pytest.approx(slow_cross_entropy(rows), rel=1e-5)


def test_contrastive_stays_fp32_under_autocast_and_low_precision_maps():
    cross = torch.full((2, 2, 4, 4), 0.05)  # far below ε: masks ~1e-9, 0/0 in half precision
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, logits = ContrastiveLoss()(diag_map(cross).half(), cross.half())
    assert logits.dtype == torch.float32 and torch.isfinite(loss)
    torch.testing.assert_close(logits[:, 0], torch.full((2,), 0.05 / TEMP), rtol=1e-3, atol=1e-3)


def slow_bilinear_sample(img: torch.Tensor, u: float, v: float) -> float:
    """Bilinear read at pixel coordinates (u, v); neighbours outside the image count as 0."""
    h, w = img.shape
    x0, y0 = math.floor(u), math.floor(v)
    total = 0.0
    for yy, wy in ((y0, 1 - (v - y0)), (y0 + 1, v - y0)):
        for xx, wx in ((x0, 1 - (u - x0)), (x0 + 1, u - x0)):
            if 0 <= xx < w and 0 <= yy < h:
                total += wx * wy * float(img[yy, xx])
    return total


def slow_resize(img: torch.Tensor, out: int) -> torch.Tensor:
    """Bilinear resize, half-pixel centres, no antialias (F.interpolate align_corners=False)."""
    n = img.shape[0]
    res = torch.empty(out, out, dtype=torch.float64)

    def src(i):
        s = max((i + 0.5) * n / out - 0.5, 0.0)
        i0 = min(int(math.floor(s)), n - 1)
        return i0, min(i0 + 1, n - 1), s - i0

    for y in range(out):
        y0, y1, fy = src(y)
        for x in range(out):
            x0, x1, fx = src(x)
            res[y, x] = ((1 - fy) * ((1 - fx) * img[y0, x0] + fx * img[y0, x1])
                         + fy * ((1 - fx) * img[y1, x0] + fx * img[y1, x1]))
    return res


def slow_te_transform(x: torch.Tensor, angle: int, scale: float, flip: bool, size: int) -> torch.Tensor:
    """docs/model.md §4.2 literally: upsample, rotate+scale about (size/2, size/2), resize, flip."""
    h = x.shape[0]
    canvas = slow_resize(x.double(), size) if h != size else x.double()
    a, c = math.radians(angle), size / 2.0
    alpha, beta = scale * math.cos(a), scale * math.sin(a)
    m = torch.tensor([[alpha, beta, (1 - alpha) * c - beta * c],
                      [-beta, alpha, beta * c + (1 - alpha) * c], [0, 0, 1]], dtype=torch.float64)
    inv = torch.linalg.inv(m)
    warped = torch.zeros(size, size, dtype=torch.float64)
    for y in range(size):
        for x_ in range(size):
            u, v, _ = (inv @ torch.tensor([x_, y, 1.0], dtype=torch.float64)).tolist()
            warped[y, x_] = slow_bilinear_sample(canvas, u, v)
    out_size = int(round(h * scale))
    out = slow_resize(warped, out_size) if out_size != size else warped
    return out.flip(-1) if flip else out


@pytest.mark.parametrize("scale,flip,in_size", [(1.0, False, 10), (1.0, True, 5), (0.5, True, 10), (0.5, False, 4)])
def test_te_transform_matches_per_pixel_warp(scale, flip, in_size):
    size = 10
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 1, in_size, in_size, generator=g)
    params = TransformParams(torch.tensor([17, -29]), scale, flip)
    out = EquivarianceTransform(size=size)(x, params)
    assert out.shape == (2, 1, int(round(in_size * scale)), int(round(in_size * scale)))
    for i, angle in enumerate((17, -29)):
        ref = slow_te_transform(x[i, 0], angle, scale, flip, size)
        torch.testing.assert_close(out[i, 0].double(), ref, atol=2e-6, rtol=0)


def test_te_transform_identity_and_channels():
    x = torch.rand(2, 3, 8, 8)
    same = EquivarianceTransform(size=8)(x, TransformParams(torch.tensor([0, 0]), 1.0, False))
    torch.testing.assert_close(same, x, atol=1e-6, rtol=0)
    flipped = EquivarianceTransform(size=8)(x, TransformParams(torch.tensor([0, 0]), 1.0, True))
    torch.testing.assert_close(flipped, x.flip(-1), atol=1e-6, rtol=0)
    # positive angles turn counter-clockwise on screen (y down) about (size/2, size/2)
    dot = torch.zeros(1, 1, 10, 10)
    dot[0, 0, 5, 8] = 1.0  # 3 px right of the centre (5, 5)
    turned = EquivarianceTransform(size=10)(dot, TransformParams(torch.tensor([90]), 1.0, False))
    assert turned[0, 0, 2, 5].item() == pytest.approx(1.0, abs=1e-5) and turned.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_te_draws_are_seeded_and_distributed_as_specified():
    t = EquivarianceTransform(max_angle=30)
    a = t.draw(8, torch.Generator().manual_seed(5))
    b = t.draw(8, torch.Generator().manual_seed(5))
    assert torch.equal(a.angles, b.angles) and (a.scale, a.flip) == (b.scale, b.flip)
    g = torch.Generator().manual_seed(0)
    draws = [t.draw(16, g) for _ in range(400)]
    angles = torch.cat([d.angles for d in draws])
    assert angles.dtype == torch.int64 and angles.min() == -30 and angles.max() == 30
    assert set(angles.unique().tolist()) == set(range(-30, 31))
    assert {d.scale for d in draws} == {1.0, 0.5}
    assert 0.4 < sum(d.scale == 0.5 for d in draws) / 400 < 0.6
    assert 0.4 < sum(d.flip for d in draws) / 400 < 0.6


def test_equivariance_loss_is_mse_to_transformed_map():
    t = EquivarianceTransform(size=16)
    params = TransformParams(torch.tensor([10, -5, 30]), 0.5, True)
    sim = torch.rand(3, 1, 4, 4)
    sim_t = torch.rand(3, 1, 2, 2)
    expected = ((sim_t - t(sim, params)) ** 2).mean()
    assert EquivarianceLoss(t)(sim_t, sim, params).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError):
        EquivarianceLoss(t)(torch.rand(3, 1, 4, 4), sim, params)


def test_silence_noise_loss_literal_and_zero_map():
    m = torch.rand(3, 1, 4, 5)
    slow = sum(sum(float(m[j, 0, i, k]) ** 2 for i in range(4) for k in range(5)) for j in range(3)) / 3
    assert SilenceNoiseLoss()(m).item() == pytest.approx(slow, rel=1e-6)
    assert SilenceNoiseLoss("mean")(m).item() == pytest.approx(slow / 20, rel=1e-6)
    assert SilenceNoiseLoss()(torch.zeros(3, 1, 14, 14)).item() == 0.0
    with pytest.raises(ValueError):
        SilenceNoiseLoss("max")


# ---------------------------------------------------------------- the full objective


def batch(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(b, 3, IMG, IMG, generator=g)
    specs = torch.randn(b, *SPEC[1:], generator=g) * 20 - 40
    silence = torch.full(SPEC, -100.0)
    noise = torch.randn(b, *SPEC[1:], generator=g) * 5
    return images, specs, silence, noise


def small_model(seed=0) -> Localizer:
    torch.manual_seed(seed)
    return Localizer(ModelConfig(width=0.125))


def objective(**settings) -> SilenceNoiseObjective:
    """SSL-SaN's objective (switches on unless `settings` say otherwise): SSL-TIE's inside the wrapper."""
    san = {k: v for k, v in settings.items() if k in SAN_FIELDS}
    tie = {k: v for k, v in settings.items() if k not in SAN_FIELDS}
    return SilenceNoiseObjective(SSLTIEObjective(TIEObjectiveConfig(image_size=IMG, **tie)),
                                 SilenceNoiseConfig(**san).resolved(True))


OFF = dict(use_silence=False, use_noise=False, loss_silence=False, loss_noise=False)


def literal_ssl_tie_loss(model, obj, images, specs, seed):
    """The SSL-TIE step as written: two full forwards (audio twice), separate views."""
    params = obj.base.transform.draw(images.shape[0], torch.Generator().manual_seed(seed))

    def avenet(img, spec):
        v, a = model.image_features(img), model.audio_embedding(spec)
        return model.pair_map(v, a), model.cross_map(v, a)

    sim, cross = avenet(images, specs)
    loss_cl, _ = ContrastiveLoss()(sim, cross)
    sim_t, cross_t = avenet(obj.base.transform(images, params), specs)
    loss_cl_t, _ = ContrastiveLoss()(sim_t, cross_t)
    loss_te = F.mse_loss(sim_t, obj.base.transform(sim, params))
    return 0.5 * (loss_cl + loss_cl_t) + loss_te


@pytest.mark.parametrize("scales", [(1.0,), (0.5,)])
def test_all_switches_off_is_the_ssl_tie_loss(scales):
    images, specs, _, _ = batch()
    model = small_model()
    obj = objective(batch_views=False, scales=scales, **OFF)
    loss, terms = obj(model, images, specs, generator=torch.Generator().manual_seed(7))
    ref = literal_ssl_tie_loss(model, obj, images, specs, seed=7)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    assert {k for k in terms if not k.startswith("diag_")} == {
        "loss", "loss_cl", "loss_cl_t", "loss_te", "acc_top1", "acc_top1_t", "te_scale"}
    # batching both views changes only BatchNorm batch statistics: identical in eval mode
    model.eval()
    batched, _ = objective(scales=scales, **OFF)(model, images, specs, generator=torch.Generator().manual_seed(7))
    assert batched.item() == pytest.approx(literal_ssl_tie_loss(model, obj, images, specs, seed=7).item(), rel=1e-5)


class TowerCalls:
    """Records the batch size of every call of the two towers."""

    def __init__(self, model: Localizer):
        self.image, self.audio = [], []
        model.imgnet.register_forward_hook(lambda m, i, o: self.image.append(i[0].shape[0]))
        model.audnet.register_forward_hook(lambda m, i, o: self.audio.append(i[0].shape[0]))


def run(switches: dict, model=None, with_negatives=True, scales=(1.0,)):
    images, specs, silence, noise = batch()
    model = model or small_model()
    calls = TowerCalls(model)
    obj = objective(scales=scales, **switches)
    seen = {}

    logits_fn = obj.base.contrastive_loss.logits

    def keep_first_logits(*args, **kw):
        out = logits_fn(*args, **kw)
        seen.setdefault("logits", out[0])
        return out

    obj.base.contrastive_loss.logits = keep_first_logits
    neg = dict(silence_spec=silence, noise_specs=noise) if with_negatives else {}
    loss, terms = obj(model, images, specs, generator=torch.Generator().manual_seed(1), **neg)
    return loss, terms, seen["logits"], calls, model


def test_switches_change_exactly_what_they_say():
    b = 4
    loss0, terms0, logits0, calls0, _ = run(OFF, with_negatives=False)
    assert logits0.shape == (b, b + 2) and calls0.audio == [b] and calls0.image == [2 * b]

    _, terms, logits, calls, model = run({**OFF, "use_silence": True}, with_negatives=True)
    assert logits.shape == (b, b + 3) and calls.audio == [b, 1]
    assert "loss_silence" not in terms and "loss_noise" not in terms
    _, terms, logits, calls, _ = run({**OFF, "use_noise": True})
    assert logits.shape == (b, b + 3) and calls.audio == [b, b]
    _, terms, logits, calls, _ = run({**OFF, "use_silence": True, "use_noise": True})
    assert logits.shape == (b, b + 4) and calls.audio == [b, b + 1]

    loss, terms, logits, calls, _ = run({**OFF, "loss_silence": True})
    assert logits.shape == (b, b + 2) and calls.audio == [b, 1]
    new = {k for k in set(terms) - set(terms0) if not k.startswith("diag_")}
    assert new == {"loss_silence", "silence_map_mean", "lambda_sn"}
    base = 0.5 * (terms["loss_cl"] + terms["loss_cl_t"]) + terms["loss_te"]
    assert loss.item() == pytest.approx((base + terms["loss_silence"]).item(), rel=1e-6)

    _, terms, logits, calls, _ = run({**OFF, "loss_noise": True})
    assert logits.shape == (b, b + 2) and calls.audio == [b, b] and "loss_noise" in terms

    loss, terms, logits, calls, _ = run({})  # SSL-SaN: all on
    assert logits.shape == (b, b + 4) and calls.audio == [b, b + 1]
    expected = (0.5 * (terms["loss_cl"] + terms["loss_cl_t"]) + terms["loss_te"]
                + terms["loss_silence"] + terms["loss_noise"])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_negative_logits_and_losses_match_independent_computation():
    """In eval mode (no BN batch effects) every SSL-SaN term can be recomputed from the model's API."""
    images, specs, silence, noise = batch()
    model = small_model().eval()
    obj = objective(scales=(1.0,), lambda_sn=0.5)
    seen = []
    logits_fn = obj.base.contrastive_loss.logits
    obj.base.contrastive_loss.logits = lambda *a, **k: seen.append(logits_fn(*a, **k)[0]) or logits_fn(*a, **k)
    with torch.no_grad():
        loss, terms = obj(model, images, specs, silence, noise, generator=torch.Generator().manual_seed(2))
        v, a = model.image_features(images), model.audio_embedding(specs)
        s_map = model.cross_map(v, model.audio_embedding(silence))
        n_map = model.pair_map(v, model.audio_embedding(noise))
        ref_logits, _, _ = ContrastiveLoss().logits(model.pair_map(v, a), model.cross_map(v, a))
    torch.testing.assert_close(seen[0][:, :-2], ref_logits)
    torch.testing.assert_close(seen[0][:, -2], s_map.mean(dim=(1, 2, 3)) / TEMP)
    torch.testing.assert_close(seen[0][:, -1], n_map.mean(dim=(1, 2, 3)) / TEMP)
    ls = (s_map ** 2).sum(dim=(1, 2, 3)).mean()
    ln = (n_map ** 2).sum(dim=(1, 2, 3)).mean()
    torch.testing.assert_close(terms["loss_silence"], ls)
    torch.testing.assert_close(terms["loss_noise"], ln)
    base = 0.5 * (terms["loss_cl"] + terms["loss_cl_t"]) + terms["loss_te"]
    assert loss.item() == pytest.approx((base + 0.5 * (ls + ln)).item(), rel=1e-6)
    _, mean_terms = objective(scales=(1.0,), san_reduction="mean")(
        model, images, specs, silence, noise, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(mean_terms["loss_silence"], ls / 16)


def test_gradients_reach_both_towers_and_terms_are_detached():
    images, specs, silence, noise = batch()
    model = small_model()
    loss, terms = objective(scales=(0.5,))(model, images, specs, silence, noise,
                                           generator=torch.Generator().manual_seed(0))
    loss.backward()
    for tower in (model.imgnet, model.audnet):
        grads = [p.grad for p in tower.parameters()]
        assert all(g is not None for g in grads)
        assert sum(float(g.abs().sum()) for g in grads) > 0
    assert all(not t.requires_grad for t in terms.values())
    assert 0.0 <= float(terms["acc_top1"]) <= 1.0 and float(terms["te_scale"]) == 0.5


def test_objective_is_reproducible_and_validates_inputs():
    images, specs, silence, noise = batch()
    model = small_model().eval()
    obj = objective()
    a, _ = obj(model, images, specs, silence, noise, generator=torch.Generator().manual_seed(9))
    b, _ = obj(model, images, specs, silence, noise, generator=torch.Generator().manual_seed(9))
    assert a.item() == b.item()
    with pytest.raises(ValueError, match="noise_specs"):
        obj(model, images, specs, silence, None)
    with pytest.raises(ValueError, match="silence_spec"):
        obj(model, images, specs, silence.repeat(2, 1, 1, 1), noise)
    with pytest.raises(ValueError, match="image_size"):
        obj(model, images[:, :, :32, :32], specs, silence, noise)


def test_objective_under_bf16_autocast_is_finite():
    images, specs, silence, noise = batch()
    model = small_model()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, terms = objective()(model, images, specs, silence, noise, generator=torch.Generator().manual_seed(0))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()


def test_benchmark_original_step_computes_our_loss():
    """benchmarks/train_step.py compares like with like: in eval mode (no BatchNorm batch effects)
    the literal original call pattern and our fused step give the same loss."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "train_step.py"
    spec = importlib.util.spec_from_file_location("train_step_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    images, specs, silence, noise = batch()
    model = small_model().eval()
    obj = objective(negatives_in_te_view=False)
    for seed in (0, 1, 2, 3):  # covers s = 1 (batched views) and s = 0.5
        ours, _ = obj(model, images, specs, silence, noise, generator=torch.Generator().manual_seed(seed))
        ref = bench.original_step(model, obj, images, specs, silence.expand(4, -1, -1, -1), noise,
                                  torch.Generator().manual_seed(seed))
        assert ours.item() == pytest.approx(ref.item(), rel=1e-5)


def test_objective_configs_round_trip_through_the_config_machinery(tmp_path):
    from sslsan.config import load_config, save_config

    cfg = load_config(SilenceNoiseConfig, None, ["use_noise=false", "san_reduction=mean"])
    assert cfg.use_noise is False and cfg.use_silence is None and cfg.san_reduction == "mean"
    assert cfg.resolved(True).use_silence is True and cfg.resolved(True).use_noise is False
    save_config(cfg, tmp_path / "san.yaml")
    assert load_config(SilenceNoiseConfig, tmp_path / "san.yaml") == cfg
    with pytest.raises(ValueError):
        load_config(SilenceNoiseConfig, None, ["san_reduction=max"])
    tie = load_config(TIEObjectiveConfig, None, ["scales=[1.0]"])
    assert tie.scales == (1.0,)
    with pytest.raises(ValueError, match="unset"):  # a wrapper never guesses its switches
        SilenceNoiseObjective(SSLTIEObjective(), SilenceNoiseConfig())


def _bn_buffers(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items() if "running" in k}


def _negative_embeddings(mode: str):
    """(negative embeddings the objective used in a train-mode step, the model after it, its BN buffers before)."""
    images, specs, silence, noise = batch()
    model = small_model()
    before = _bn_buffers(model.audnet)
    obj = objective(scales=(1.0,), negatives_bn=mode)
    captured = {}
    cross_map, pair_map = model.cross_map, model.pair_map

    def spy(v, a):  # the silence embedding meets the image features through cross_map
        if a.shape[0] == 1:
            captured.setdefault("silence", a.detach().clone())
        return cross_map(v, a)

    def spy_pair(v, a):
        captured.setdefault("pair", []).append(a.detach().clone())
        return pair_map(v, a)

    model.cross_map, model.pair_map = spy, spy_pair  # instance attributes: the objective calls the model's
    obj(model, images, specs, silence, noise, generator=torch.Generator().manual_seed(3))
    # pair maps: positive (view 1), positive (TE view), noise (view 1), noise (TE view)
    return torch.cat([captured["silence"], captured["pair"][2]]), model, before, (specs, silence, noise)


def test_running_stats_negatives_are_normalised_as_at_evaluation():
    """D15 default: in training the negatives meet BatchNorm exactly as every input does at evaluation
    (running statistics), and they leave those statistics untouched (only positives update them)."""
    neg_emb, model, before, (specs, silence, noise) = _negative_embeddings("running_stats")
    after = _bn_buffers(model.audnet)
    # the running statistics moved by exactly one update from the positive batch
    ref = small_model()
    ref.train()
    with torch.no_grad():
        ref.audnet(specs)
    for k, v in _bn_buffers(ref.audnet).items():
        torch.testing.assert_close(after[k], v)
        if "running_mean" in k:
            assert not torch.equal(after[k], before[k])
    # evaluation normalises with those same statistics: identical negative embeddings
    with torch.no_grad():
        model.eval()
        at_eval = model.audio_embedding(torch.cat([silence, noise]))
    torch.testing.assert_close(neg_emb, at_eval, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["own_batch", "with_positives"])
def test_train_mode_negatives_use_batch_statistics(mode):
    """The other two D15 readings: the negatives' train-time embedding comes from batch statistics
    (their own batch, or one batch with the positives), so it differs from evaluation's."""
    neg_emb, model, _, (specs, silence, noise) = _negative_embeddings(mode)
    fresh = small_model()
    fresh.train()
    with torch.no_grad():
        negs = torch.cat([silence, noise])
        expected = fresh.audio_embedding(negs) if mode == "own_batch" else \
            fresh.audio_embedding(torch.cat([specs, negs]))[len(specs):]
        torch.testing.assert_close(neg_emb, expected, rtol=1e-5, atol=1e-6)
        model.eval()
        assert not torch.allclose(neg_emb, model.audio_embedding(negs), atol=1e-3)
