"""FNAC: the original forward pass and losses on seeded weights (tests/golden/golden_zoo_fnac.*), read
through the original-checkpoint reader (whose files EZ-VSL's cannot be told from); its regularisers
against a literal restatement; the warm-up in epochs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sslsan.losses.silence_noise import SilenceNoiseConfig, SilenceNoiseObjective
from sslsan.methods.checkpoint import load_model
from sslsan.methods.fnac import FNACObjective, FNACObjectiveConfig
from sslsan.models import CheckpointError
from zoo_golden import assert_close, load_golden

TOP_LEVEL = {"optimizer": {"state": {}, "param_groups": []}, "epoch": 30, "best_cIoU": 0.5, "best_Auc": 0.5}
TAU = 0.03


@pytest.fixture(scope="module")
def golden():
    return load_golden("fnac")


@pytest.mark.golden
def test_original_checkpoint_reproduces_the_original_forward_and_losses(golden, tmp_path):
    path = golden.write_original(tmp_path / "best.pth", "model", TOP_LEVEL)
    with pytest.raises(CheckpointError, match="could be a checkpoint of EZ-VSL, FNAC; name the method with --method"):
        load_model(path)
    loaded = load_model(path, method="fnac")
    assert loaded.method.name == "fnac" and loaded.ignored_keys == [] and loaded.model.cfg.dropout_img == 0.9
    model, errors, ref = loaded.model, {}, golden.tensor
    with torch.no_grad():
        v, a = model.image_features(golden.images), model.audio_embedding(golden.specs)
        assert_close("image_features", v, ref("image_features"), 1e-5, errors)
        assert_close("audio_embedding", a, ref("audio_embedding"), 1e-5, errors)
        assert_close("map", model.pair_map(v, a)[:, 0], (ref("savl") * TAU + 1) / 2, 1e-5, errors)
        objective = FNACObjective().eval()
        parts, terms = objective.loss(model, [v], a, None, lambda view: None)
        assert_close("loss", parts["contrastive"], ref("loss"), 1e-5, errors)
        for name in ("fns1", "tns", "fns2"):
            assert_close(f"loss_{name}", terms[f"loss_{name}"], ref(f"loss_{name}"), 1e-5, errors)
            torch.testing.assert_close(parts[name], 100 * terms[f"loss_{name}"])
    print("fnac golden max abs differences:", {k: f"{e:.2g}" for k, e in errors.items()})
    assert load_model(path, method="ezvsl").method.name == "ezvsl"  # the same layout


def restated_regularisers(img: torch.Tensor, aud: torch.Tensor, tau: float, thr: float) -> dict[str, float]:
    """FNAC's three regularisers written out. With S[n, m] = max over positions of <img[n, :, p], aud[m]> / tau,
    A = aud·audᵀ / tau, I = mean_p(img)·mean_p(img)ᵀ / tau, and F = f·fᵀ / tau where f[n] is the mean over all
    positions of img[n] kept where image n's own map, min-max normalised (+1e-5 in the denominator), exceeds
    thr: FNS-1 = mean |softmax_rows(A) - softmax_rows(S)|, TNS = the same of A and F, FNS-2 of I and S."""
    b, _, h, w = img.shape
    own = torch.einsum("nchw,nc->nhw", img.double(), aud.double()) / tau
    s = torch.tensor([[max(float(img[n, :, i, j].double() @ aud[m].double()) for i in range(h) for j in range(w)) / tau
                       for m in range(b)] for n in range(b)])
    f = []
    for n in range(b):
        lo, hi = own[n].min(), own[n].max()
        keep = (own[n] - lo) / (hi - lo + 1e-5) > thr
        f.append(sum(img[n, :, i, j].double() for i in range(h) for j in range(w) if keep[i, j]) / (h * w))
    f = torch.stack(f)
    avg = img.double().mean(dim=(2, 3))
    aa, ii, ff = aud.double() @ aud.double().T / tau, avg @ avg.T / tau, f @ f.T / tau

    def l1(x, y):
        return float((x.softmax(dim=1) - y.softmax(dim=1)).abs().mean())

    return {"fns1": l1(aa, s), "tns": l1(aa, ff), "fns2": l1(ii, s)}


def test_regularisers_match_restatement_and_warm_up_counts_epochs():
    g = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(4, 16, 3, 3, generator=g), dim=1)
    aud = F.normalize(torch.randn(4, 16, generator=g), dim=1)
    obj = FNACObjective(FNACObjectiveConfig(warmup_epochs=2))
    parts, terms = obj.loss(None, [img], aud, None, lambda view: None)
    expected = restated_regularisers(img, aud, TAU, 0.6)
    for name, value in expected.items():
        assert abs(float(terms[f"loss_{name}"]) - value) <= 1e-6, name
    assert set(parts) == {"contrastive"}  # training, epoch 0 < warm-up
    wrapped = SilenceNoiseObjective(obj, SilenceNoiseConfig().resolved(False))
    wrapped.set_epoch(2)  # what the training loop calls before each epoch
    parts, _ = obj.loss(None, [img], aud, None, lambda view: None)
    assert set(parts) == {"contrastive", "fns1", "tns", "fns2"}
    wrapped.set_epoch(0)
    parts, _ = obj.eval().loss(None, [img], aud, None, lambda view: None)
    assert set(parts) == {"contrastive", "fns1", "tns", "fns2"}  # validation: always the whole objective
