"""LVS: the original forward pass on seeded weights (tests/golden/golden_zoo_lvs.*), read through the
original-checkpoint reader; its loss against a literal restatement; its front-end and test transform."""

from __future__ import annotations

import math

import pytest
import torch

from sslsan.methods import get_method
from sslsan.methods.checkpoint import load_model
from sslsan.methods.lvs import LVSObjective
from sslsan.models import CheckpointError, Localizer, ModelConfig
from zoo_golden import assert_close, load_golden


@pytest.fixture(scope="module")
def golden():
    return load_golden("lvs")


@pytest.mark.golden
def test_original_checkpoint_reproduces_the_original_forward(golden, tmp_path):
    path = golden.write_original(tmp_path / "lvs_vggss.pth.tar", "model_state_dict", {})
    loaded = load_model(path, policy="original")  # recognised without --method: AVENet weights under model_state_dict
    assert loaded.method.name == "lvs" and loaded.spec.image.crop and loaded.spec.audio.tile_seconds == 10.0
    unused = set(loaded.ignored_keys)
    assert {"imgnet.conv1_a.weight", "imgnet.conv1_flow.weight", "audnet.conv1.weight", "imgnet.fc.weight"} <= unused
    model, errors, ref = loaded.model, {}, golden.tensor
    with torch.no_grad():
        v, a = model.image_features(golden.images), model.audio_embedding(golden.specs)
        assert_close("image_features", v, ref("image_features"), 1e-5, errors)
        assert_close("audio_embedding", a, ref("audio_embedding"), 1e-5, errors)
        assert_close("sim_map", model.similarity_map(golden.images, golden.specs), ref("sim_map"), 1e-5, errors)
        objective = LVSObjective()
        parts, _ = objective.loss(model, [v], a, None, lambda view: None)
        logits, pos, neg = objective.contrastive_loss.logits(model.pair_map(v, a), model.cross_map(v, a))
        torch.testing.assert_close(logits, ref("logits"), atol=1e-4, rtol=1e-5)  # entries near -750 (the masked diagonal)
        errors["logits"] = float((logits - ref("logits")).abs().max())
        assert_close("pos_mask", pos, ref("pos_mask"), 1e-4, errors)
        assert_close("neg_mask", neg, ref("neg_mask"), 1e-4, errors)
        assert_close("loss", parts["contrastive"], ref("loss"), 1e-5, errors)
    print("lvs golden max abs differences:", {k: f"{e:.2g}" for k, e in errors.items()})
    # an SSL-TIE file (weights under 'state_dict') is not an LVS one
    torch.save({"state_dict": dict(golden.weights)}, tmp_path / "tie.pth.tar")
    with pytest.raises(CheckpointError, match=r"a checkpoint of SSL-TIE \(--method ssl_tie\), not of LVS"):
        load_model(tmp_path / "tie.pth.tar", method="lvs")


def restated_loss(sim: torch.Tensor, cross: torch.Tensor, extra: torch.Tensor | None = None) -> float:
    """AVENet's logits and their cross-entropy with target 0, written out. sig(x) = 1 / (1 + e^-x). For image
    n with map A = sim[n] and maps A0[k] = cross[n, k]: Pos = sig((A - 0.65) / 0.03), Neg = 1 - sig((A - 0.4) / 0.03);
    row = [sum(Pos A) / sum(Pos), for each clip k: sum(P_k A0[k]) / sum(P_k) with P_k = sig((A0[k] - 0.65) / 0.03),
    times -99 when k = n, then sum(Neg A) / sum(Neg), then the extra negatives] / 0.07; loss = mean over n of
    log sum exp(row) - row[0]."""
    def sig(x):
        return 1.0 / (1.0 + math.exp(-x))

    b, total = sim.shape[0], 0.0
    for n in range(b):
        a = sim[n, 0].flatten().tolist()
        pos, neg = [sig((x - 0.65) / 0.03) for x in a], [1 - sig((x - 0.4) / 0.03) for x in a]
        row = [sum(p * x for p, x in zip(pos, a)) / sum(pos)]
        for k in range(b):
            a0 = cross[n, k].flatten().tolist()
            pk = [sig((x - 0.65) / 0.03) for x in a0]
            row.append(sum(p * x for p, x in zip(pk, a0)) / sum(pk) * (-99.0 if k == n else 1.0))
        row.append(sum(q * x for q, x in zip(neg, a)) / sum(neg))
        row += [] if extra is None else extra[n].tolist()
        row = [r / 0.07 for r in row]
        top = max(row)
        total += top + math.log(sum(math.exp(r - top) for r in row)) - row[0]
    return total / b


def test_loss_matches_restatement_with_and_without_negatives():
    model = Localizer(ModelConfig(width=0.125), torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    v = torch.nn.functional.normalize(torch.rand(3, 64, 4, 4, generator=g), dim=1)
    a = torch.nn.functional.normalize(torch.rand(3, 64, generator=g), dim=1)
    obj = LVSObjective()
    parts, terms = obj.loss(model, [v], a, None, lambda view: None)
    sim, cross = model.pair_map(v, a), model.cross_map(v, a)
    # 1e-4: far above ε2 the float32 Neg = 1 - σ(...) (~1e-4 here) keeps few digits, as in the original (measured 2e-5)
    assert abs(float(parts["contrastive"]) - restated_loss(sim, cross)) <= 1e-4
    silence = torch.nn.functional.normalize(torch.rand(1, 64, generator=g), dim=1)
    extra = obj.negative_logits(model.cross_map(v, silence))  # D14: the spatial mean of the map
    parts, _ = obj.loss(model, [v], a, None, lambda view: extra)
    assert abs(float(parts["contrastive"]) - restated_loss(sim, cross, model.cross_map(v, silence).mean(dim=(2, 3)))) <= 1e-4


def test_method_entry():
    m = get_method("lvs")
    assert (m.map.kind, m.map.upsample, m.image.crop) == ("cosine", "bilinear", True)
    assert (m.audio.kind, m.audio.hop_length, m.audio.tile_seconds, m.audio.spec_augment) == ("log_linear", 238, 10.0, False)
    model = m.build_model(ModelConfig(width=0.125), torch.Generator().manual_seed(0))
    assert model.image_features(torch.randn(1, 3, 96, 96)).shape[-2:] == (6, 6)  # stride 16: 6x6 at 96 px
