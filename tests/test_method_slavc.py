"""SLAVC: the original forward pass and momentum update on seeded weights (tests/golden/golden_zoo_slavc.*),
read through the original-checkpoint reader; its loss against a literal restatement; the momentum update
in training only."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from sslsan.methods.base import Views
from sslsan.methods.checkpoint import load_model
from sslsan.methods.slavc import SLAVCModel, SLAVCModelConfig, SLAVCObjective, SLAVCObjectiveConfig
from zoo_golden import assert_close, load_golden

TOP_LEVEL = {"optimizer": {"state": {}, "param_groups": []}, "epoch": 20, "best_Precision": 0.5, "best_AP": 0.5,
             "best_F1": 0.5}
TAU = 0.03


@pytest.fixture(scope="module")
def golden():
    return load_golden("slavc")


@pytest.mark.golden
def test_original_checkpoint_reproduces_the_original_forward_and_momentum_update(golden, tmp_path):
    path = golden.write_original(tmp_path / "latest.pth", "model", TOP_LEVEL)
    loaded = load_model(path)  # recognised without --method: only SLAVC's files have two heads and momentum copies
    assert loaded.method.name == "slavc" and loaded.ignored_keys == [] and not loaded.model.cfg.use_mom_eval
    model, errors, ref = loaded.model, {}, golden.tensor
    with torch.no_grad():
        v, a = model.image_features(golden.images), model.audio_embedding(golden.specs)
        assert_close("img1", v[:, :512], ref("img1"), 1e-5, errors)
        assert_close("img2", v[:, 512:], ref("img2"), 1e-5, errors)
        assert_close("aud1", a[:, :512], ref("aud1"), 1e-5, errors)
        assert_close("aud2", a[:, 512:], ref("aud2"), 1e-5, errors)
        _, aud_trg = model.momentum_targets(golden.images, golden.specs)
        assert_close("aud1_trg", aud_trg[:, :512], ref("aud1_trg"), 1e-5, errors)
        assert_close("aud2_trg", aud_trg[:, 512:], ref("aud2_trg"), 1e-5, errors)
        assert_close("map", model.pair_map(v, a)[:, 0], (ref("savl") * TAU + 1) / 2, 1e-5, errors)
        objective = SLAVCObjective(SLAVCObjectiveConfig(momentum_img=0.9, momentum_aud=0.9))
        views = Views([golden.images], specs=golden.specs)
        parts, _ = objective.loss(model, [v], a, views, lambda view: None)  # eval mode: no momentum update
        assert_close("loss", parts["contrastive"], ref("loss"), 1e-5, errors)
        model.cfg = dataclasses.replace(model.cfg, use_mom_eval=True)
        assert_close("map_mom", model.similarity_map(golden.images, golden.specs)[:, 0],
                     (ref("savl_mom") * TAU + 1) / 2, 1e-5, errors)
        model.cfg = dataclasses.replace(model.cfg, use_mom_eval=False)
        model.update_momentum(0.9, 0.9)  # what forward(mode='train') does first
        state = model.state_dict()
        for key in [k for k in golden.ref if k.startswith("ema/")]:
            assert_close(key, state[key[4:]], ref(key), 1e-6, errors)
        parts, _ = objective.loss(model, [v], a, views, lambda view: None)
        assert_close("loss_after_ema", parts["contrastive"], ref("loss_after_ema"), 1e-5, errors)
    print("slavc golden max abs differences:", {k: f"{e:.2g}" for k, e in errors.items()})


def restated_loss(img1, img2, aud1, aud2, img1_t, img2_t, aud1_t, aud2_t, tau, extra=None) -> torch.Tensor:
    """SLAVC's loss written out. For images x (one head pair) and clips y: at each position p of image n,
    P1(m | n, p) = exp(cos1(n, p; m)/tau) / sum over clips m'; over positions, P2(p | n, m) =
    exp(cos2(n, p; m)/tau) / sum over p'; score(n, m) = log sum_p P1 * P2. i2a: online images, momentum
    clips (plus `extra` clips: one cosine map for both heads); a2i: momentum images, online clips. Loss:
    the two cross-entropies with targets on the diagonal (mean over images), summed."""

    def scores(x1, x2, y1, y2, more):
        b, hw = x1.shape[0], x1.shape[2] * x1.shape[3]
        c1 = [[[float(x1[n, :, p // x1.shape[3], p % x1.shape[3]] @ y1[m]) for p in range(hw)] for m in range(len(y1))]
              for n in range(b)]
        c2 = [[[float(x2[n, :, p // x2.shape[3], p % x2.shape[3]] @ y2[m]) for p in range(hw)] for m in range(len(y2))]
              for n in range(b)]
        if more is not None:
            for n in range(b):
                for j in range(more.shape[1]):
                    c1[n].append(more[n, j].flatten().tolist())
                    c2[n].append(more[n, j].flatten().tolist())
        out = torch.empty(b, len(c1[0]), dtype=torch.float64)
        for n in range(b):
            for m in range(len(c1[n])):
                total = 0.0
                for p in range(hw):
                    p1 = math.exp(c1[n][m][p] / tau) / sum(math.exp(c1[n][k][p] / tau) for k in range(len(c1[n])))
                    p2 = math.exp(c2[n][m][p] / tau) / sum(math.exp(c2[n][m][q] / tau) for q in range(hw))
                    total += p1 * p2
                out[n, m] = math.log(total)
        return out

    def cross_entropy(s):
        return sum(torch.logsumexp(s[n], 0) - s[n, n] for n in range(s.shape[0])) / s.shape[0]

    return cross_entropy(scores(img1_t, img2_t, aud1, aud2, None)) + cross_entropy(scores(img1, img2, aud1_t, aud2_t, extra))


def unit(*shape, g, dim=1):
    return F.normalize(torch.randn(*shape, generator=g), dim=dim)


def test_loss_matches_restatement_with_and_without_negatives():
    g = torch.Generator().manual_seed(0)
    b, c, hw = 3, 8, 2
    online = [unit(b, c, hw, hw, g=g), unit(b, c, hw, hw, g=g), unit(b, c, g=g), unit(b, c, g=g)]
    target = [unit(b, c, hw, hw, g=g), unit(b, c, hw, hw, g=g), unit(b, c, g=g), unit(b, c, g=g)]

    class Fixed(SLAVCModel):  # momentum targets given, no towers
        def __init__(self):
            torch.nn.Module.__init__(self)

        def momentum_targets(self, images, specs):
            return torch.cat(target[:2], dim=1), torch.cat(target[2:], dim=1)

    model, obj = Fixed().eval(), SLAVCObjective(SLAVCObjectiveConfig(tau=0.1))
    views = Views([torch.zeros(b, 3, 4, 4)], specs=torch.zeros(b, 1, 4, 4))
    v, a = torch.cat(online[:2], dim=1), torch.cat(online[2:], dim=1)
    parts, _ = obj.loss(model, [v], a, views, lambda view: None)
    torch.testing.assert_close(parts["contrastive"].double(), restated_loss(*online, *target, 0.1), atol=1e-5, rtol=1e-6)
    neg_maps = torch.rand(b, 2, hw, hw, generator=g)  # evaluation maps (cos + 1) / 2 of two negative clips
    extra = obj.negative_logits(neg_maps)
    assert extra.shape == (b, 2, hw, hw)
    parts, _ = obj.loss(model, [v], a, views, lambda view: extra)
    torch.testing.assert_close(parts["contrastive"].double(), restated_loss(*online, *target, 0.1, 2 * neg_maps - 1),
                               atol=1e-5, rtol=1e-6)


def test_momentum_update_in_training_only_and_small_sizes():
    model = SLAVCModel(SLAVCModelConfig(width=0.125, dim=64), torch.Generator().manual_seed(0))
    online, mom = dict(model.named_parameters()), {k: v for k, v in model.state_dict().items() if k.startswith("momentum_")}
    assert all(not p.requires_grad for k, p in online.items() if k.startswith("momentum_"))
    assert all(torch.equal(v, model.state_dict()[k[len("momentum_"):]]) for k, v in mom.items())  # copies at start
    images, specs = torch.randn(4, 3, 96, 96), torch.randn(4, 1, 96, 64)
    obj = SLAVCObjective(SLAVCObjectiveConfig(momentum_img=0.5, momentum_aud=0.5))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    v, a = model(images, specs)
    assert v.shape == (4, 128, 3, 3) and a.shape == (4, 128)  # two heads of 64
    loss = obj.loss(model, [v], a, Views([images], specs=specs), lambda view: None)[0]["contrastive"]
    opt.zero_grad()
    loss.backward()
    opt.step()
    before = model.momentum_img_proj1.weight.detach().clone()
    with torch.no_grad():  # validation: no update
        obj.loss(model.eval(), [v.detach()], a.detach(), Views([images], specs=specs), lambda view: None)
    assert torch.equal(model.momentum_img_proj1.weight, before)
    model.train()
    v, a = model(images, specs)
    obj.loss(model, [v], a, Views([images], specs=specs), lambda view: None)
    expected = 0.5 * before + 0.5 * model.img_proj1.weight.detach()
    torch.testing.assert_close(model.momentum_img_proj1.weight.detach(), expected)
    m = model.eval().similarity_map(images, specs)
    assert m.shape == (4, 1, 3, 3) and bool(((m >= 0) & (m <= 1)).all())
