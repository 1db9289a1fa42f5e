"""EZ-VSL: the original forward pass on seeded weights (tests/golden/golden_zoo_ezvsl.*), read through
the original-checkpoint reader; its loss against a literal restatement; ImageNet weights; small sizes."""

from __future__ import annotations

import math

import pytest
import torch

from sslsan.methods import get_method
from sslsan.methods.checkpoint import load_model
from sslsan.methods.ezvsl import EZVSLModel, EZVSLModelConfig, EZVSLObjective, MILObjectiveConfig
from sslsan.models import CheckpointError
from zoo_golden import assert_close, load_golden

TOP_LEVEL = {"optimizer": {"state": {}, "param_groups": []}, "epoch": 20, "best_cIoU": 0.5, "best_Auc": 0.5}
TAU = 0.03


@pytest.fixture(scope="module")
def golden():
    return load_golden("ezvsl")


@pytest.mark.golden
def test_original_checkpoint_reproduces_the_original_forward(golden, tmp_path):
    path = golden.write_original(tmp_path / "best.pth", "model", TOP_LEVEL)  # DDP's `module.` prefix
    loaded = load_model(path, method="ezvsl")
    assert loaded.source == "original" and loaded.method.name == "ezvsl" and not loaded.model.training
    assert loaded.ignored_keys == [] and loaded.spec.audio.kind == "log_linear"
    model, errors = loaded.model, {}
    with torch.no_grad():
        v, a = model.image_features(golden.images), model.audio_embedding(golden.specs)
        assert_close("image_features", v, golden.tensor("image_features"), 1e-5, errors)
        assert_close("audio_embedding", a, golden.tensor("audio_embedding"), 1e-5, errors)
        # the evaluation map is (cos + 1) / 2 of the original's cos/τ
        assert_close("cross_map", model.cross_map(v, a), (golden.tensor("cross_logits") * TAU + 1) / 2, 1e-5, errors)
        assert_close("map", model.similarity_map(golden.images, golden.specs)[:, 0],
                     (golden.tensor("savl") * TAU + 1) / 2, 1e-5, errors)
        parts, _ = EZVSLObjective().loss(model, [v], a, None, lambda view: None)
        assert_close("loss", parts["contrastive"], golden.tensor("loss"), 1e-5, errors)
    print("ezvsl golden max abs differences:", {k: f"{e:.2g}" for k, e in errors.items()})


def restated_mil_loss(img: torch.Tensor, aud: torch.Tensor, tau: float, extra: torch.Tensor | None = None) -> torch.Tensor:
    """EZ-VSL's max_xmil_loss written out: score(n, m) = max over positions of <img[n, :, p], aud[m]> / tau;
    -log softmax of the diagonal along each row (image->audio, with any extra negative columns) plus
    along each column (audio->image), each averaged over the batch."""
    b = img.shape[0]
    score = torch.empty(b, b, dtype=torch.float64)
    for n in range(b):
        for m in range(b):
            score[n, m] = max(float(img[n, :, i, j] @ aud[m]) for i in range(img.shape[2]) for j in range(img.shape[3])) / tau
    rows = score if extra is None else torch.cat([score, extra.double() / tau], dim=1)
    i2a = sum(torch.logsumexp(rows[n], 0) - score[n, n] for n in range(b)) / b
    a2i = sum(torch.logsumexp(score[:, m], 0) - score[m, m] for m in range(b)) / b
    return i2a + a2i


def random_features(b=4, c=16, hw=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = torch.nn.functional.normalize(torch.randn(b, c, hw, hw, generator=g), dim=1)
    aud = torch.nn.functional.normalize(torch.randn(b, c, generator=g), dim=1)
    return img, aud, g


def test_loss_matches_restatement_with_and_without_negatives():
    img, aud, g = random_features()
    obj = EZVSLObjective(MILObjectiveConfig(tau=TAU))
    parts, terms = obj.loss(None, [img], aud, None, lambda view: None)
    torch.testing.assert_close(parts["contrastive"].double(), restated_mil_loss(img, aud, TAU), atol=1e-5, rtol=1e-6)
    assert set(terms) >= {"loss_i2a", "loss_a2i", "acc_top1"}
    # D14: a negative clip's map enters as one more image->audio column, reduced as a pair (spatial max of cos)
    neg = torch.nn.functional.normalize(torch.randn(1, 16, generator=g), dim=1)
    neg_maps = (torch.einsum("nchw,kc->nkhw", img, neg) + 1) / 2
    extra = obj.negative_logits(neg_maps)
    assert extra.shape == (4, 1)
    parts, _ = obj.loss(None, [img], aud, None, lambda view: extra)
    expected = restated_mil_loss(img, aud, TAU, torch.einsum("nchw,kc->nkhw", img, neg).flatten(2).amax(2))
    torch.testing.assert_close(parts["contrastive"].double(), expected, atol=1e-5, rtol=1e-6)


def test_small_sizes_train():
    """Narrow towers at the CPU demo's 96 px: a 3x3 map, and Adam steps lower the loss on a fixed batch."""
    model = EZVSLModel(EZVSLModelConfig(width=0.25), torch.Generator().manual_seed(0))
    assert model.imgnet.out_channels == 128 and model.imgnet.stride == 32
    images, specs = torch.randn(4, 3, 96, 96), torch.randn(4, 1, 96, 64)
    obj, opt = EZVSLObjective(), torch.optim.Adam(model.parameters(), lr=1e-4)
    losses = []
    for _ in range(3):
        v, a = model(images, specs)
        assert v.shape == (4, 512, 3, 3) and a.shape == (4, 512)
        loss = obj.loss(model, [v], a, None, lambda view: None)[0]["contrastive"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    m = model.eval().similarity_map(images, specs)
    assert m.shape == (4, 1, 3, 3) and bool(((m >= 0) & (m <= 1)).all())


def test_initialisation_follows_the_original():
    model = EZVSLModel(EZVSLModelConfig(), torch.Generator().manual_seed(0))
    assert torch.equal(model.imgnet.bn1.weight, torch.ones(64))  # torchvision's init (no ImageNet file)
    bn = model.audnet.bn1.weight
    bn = bn.detach()
    assert abs(float(bn.mean()) - 1) < 0.01 and 0.01 < float(bn.std()) < 0.03  # N(1, 0.02)
    w = model.aud_proj.weight.detach()
    assert abs(float(w.std()) - 0.01) < 1e-3  # truncated N(0, 0.01)
    conv = model.img_proj.weight.detach()
    assert abs(float(conv.std()) - math.sqrt(2 / 512)) < 0.01 * math.sqrt(2 / 512) * 10  # kaiming fan_out
    again = EZVSLModel(EZVSLModelConfig(), torch.Generator().manual_seed(0))
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), again.state_dict().values()))


def test_imagenet_weights_from_a_torchvision_file(tmp_path):
    donor = EZVSLModel(EZVSLModelConfig(), torch.Generator().manual_seed(1)).imgnet.state_dict()
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save({**donor, "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}, path)
    model = EZVSLModel(EZVSLModelConfig(imagenet_weights=str(path)), torch.Generator().manual_seed(0))
    assert all(torch.equal(v, donor[k]) for k, v in model.imgnet.state_dict().items())
    assert model.cfg.imagenet_weights is None  # an initialisation: checkpoints do not need the file
    del donor["layer4.1.bn2.weight"]
    torch.save(donor, path)
    with pytest.raises(CheckpointError, match=r"resnet18-f37072fd.pth: does not fit.*layer4.1.bn2.weight"):
        EZVSLModel(EZVSLModelConfig(imagenet_weights=str(path)))


def test_method_entry():
    m = get_method("ezvsl")
    assert m.map.upsample == "bilinear_align_corners" and m.map.kind == "cosine01" and not m.image.crop
    assert (m.audio.kind, m.audio.hop_length, m.audio.tile_seconds, m.audio.spec_augment) == ("log_linear", 238, 3.0, False)
