"""RCGrad: the closed-form GradCAM against autograd GradCAM, the original inference on seeded weights
(tests/golden/golden_released_rcgrad.*) through the original-checkpoint reader, strict reading, and
the refusal to train."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import command
from released_golden import load_released_golden
from sslsan.audio import build_frontend
from sslsan.methods import get_method
from sslsan.methods.checkpoint import load_model
from sslsan.methods.rcgrad import RCGradModel, RCGradModelConfig, original_postprocess
from sslsan.models import CheckpointError
from zoo_golden import max_abs


@pytest.fixture(scope="module")
def golden():
    return load_released_golden("rcgrad")


def released_file(golden, path, **changes):
    """The weights as rc_grad.pt holds them: a flat state dict, the loss's scale as loss_fn.logit_scale."""
    sd = {("loss_fn.logit_scale" if k == "logit_scale" else k): v for k, v in golden.weights.items()}
    sd["audio_encoder.spectrogram.window"] = torch.hann_window(512)  # torchaudio's buffer (the recipe's draw is reset)
    sd.update(changes)
    torch.save({k: v for k, v in sd.items() if v is not None}, path)
    return path


def autograd_gradcam(model: RCGradModel, image: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """GradCAM as pytorch-grad-cam computes it for RCGrad: the activations A of image_encoder.layer4[-1], the
    gradient of <avgpool(A), emb> with respect to them, channel weights = its spatial mean, ReLU(sum_c w_c A_c)."""
    store = {}
    hook = model.image_encoder.layer4[-1].register_forward_hook(lambda m, i, o: store.update(a=o) or o.retain_grad())
    try:
        with torch.enable_grad():
            score = (model.image_encoder(image).mean(dim=(2, 3)) * emb).sum()
            score.backward()
    finally:
        hook.remove()
    a, g = store["a"].detach(), store["a"].grad
    return (g.mean(dim=(2, 3))[:, :, None, None] * a).sum(dim=1).relu()


def test_closed_form_is_autograd_gradcam():
    torch.manual_seed(0)
    model = RCGradModel(RCGradModelConfig(width=0.25), torch.Generator().manual_seed(1)).eval()
    for p in model.parameters():
        p.data.add_(0.1 * torch.randn_like(p))  # away from the init's symmetries
    images, specs = torch.randn(3, 3, 64, 80), torch.randn(3, 1, 257, 60)
    with torch.no_grad():
        feats, embs = model.image_features(images), model.audio_embedding(specs)
    for b in range(3):
        ref = autograd_gradcam(model, images[b:b + 1], embs[b:b + 1])
        ours = model.raw_cam(feats[b:b + 1], embs[b:b + 1])[:, 0]
        assert max_abs(ours, ref) <= 1e-6 * float(ref.abs().max())
    # the evaluation map: the raw CAM over ||avgpool(A)|| ||a||, in [0, 1], summing to the embeddings' cosine
    maps = model.cross_map(feats, embs)
    assert maps.shape == (3, 3, 4, 5) and float(maps.min()) >= 0 and float(maps.max()) <= 1
    cos = F.cosine_similarity(feats.mean(dim=(2, 3))[:, None], embs[None], dim=-1)
    torch.testing.assert_close(maps.sum(dim=(2, 3)), cos, atol=1e-5, rtol=1e-5)
    raw = model.raw_cam(feats, embs)[:, 0]
    scale = feats.mean(dim=(2, 3)).norm(dim=1) * embs.norm(dim=1)
    torch.testing.assert_close(maps[torch.arange(3), torch.arange(3)], raw / scale[:, None, None], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(model.pair_map(feats, embs)[:, 0], maps[torch.arange(3), torch.arange(3)])


@pytest.mark.golden
def test_released_file_reproduces_the_original_inference(golden, tmp_path):
    path = released_file(golden, tmp_path / "rc_grad.pt")
    loaded = load_model(path)  # recognised without --method
    assert loaded.method.name == "rcgrad" and loaded.source == "original" and loaded.policy == "original"
    assert sorted(loaded.ignored_keys) == ["audio_encoder.spectrogram.window", "image_encoder.conv1_a.weight",
                                           "image_encoder.conv1_flow.weight", "image_encoder.fc.bias", "image_encoder.fc.weight",
                                           "loss_fn.logit_scale"]
    model, errors = loaded.model, {}
    transform, frontend = loaded.image_transform(), loaded.frontend()
    images = transform(torch.from_numpy(golden.images).permute(0, 3, 1, 2))
    specs = frontend(torch.from_numpy(golden.waves))
    with torch.no_grad():
        feats, embs = model.image_features(images), model.audio_embedding(specs)
        img_emb = feats.mean(dim=(2, 3))
        ref_img, ref_aud = golden.tensor("image_embedding"), golden.tensor("audio_embedding")
        errors["image_embedding (relative)"] = max_abs(img_emb, ref_img) / float(ref_img.abs().max())
        errors["audio_embedding"] = max_abs(embs, ref_aud)
        raw = model.raw_cam(feats, embs)[:, 0]
        errors["raw_cam (relative)"] = max_abs(raw, golden.tensor("raw_cam")) / float(golden.tensor("raw_cam").max())
        maps = model.pair_map(feats, embs)[:, 0]
        want = golden.tensor("raw_cam") / (ref_img.norm(dim=1) * ref_aud.norm(dim=1))[:, None, None]
        errors["map"] = max_abs(maps, want)
    pred = original_postprocess(maps.numpy())
    errors["pred_audio"] = max_abs(torch.from_numpy(pred), golden.tensor("pred_audio"))
    print("rcgrad golden max abs differences:", {k: f"{e:.2g}" for k, e in errors.items()})
    assert errors["image_embedding (relative)"] <= 1e-6 and errors["audio_embedding"] <= 1e-5
    assert errors["raw_cam (relative)"] <= 1e-5 and errors["map"] <= 1e-5 and errors["pred_audio"] <= 1e-5


def test_per_clip_batchnorm_is_a_batch_of_one_in_training_mode():
    model = RCGradModel(RCGradModelConfig(width=0.25), torch.Generator().manual_seed(2)).eval()
    running = RCGradModel(RCGradModelConfig(width=0.25, audio_norm="running"), torch.Generator().manual_seed(2)).eval()
    running.load_state_dict(model.state_dict())
    specs = torch.randn(3, 1, 257, 40)
    with torch.no_grad():
        batched = model.audio_embedding(specs)
        running.audio_encoder.train()
        one_by_one = torch.cat([running.audio_embedding(specs[b:b + 1]) for b in range(3)])
    torch.testing.assert_close(batched, one_by_one, atol=1e-5, rtol=1e-5)


def test_frontend_standardises_each_clip():
    fe = build_frontend(get_method("rcgrad").audio)
    waves = torch.randn(2, 16000 * 10) * torch.tensor([[0.1], [3.0]])
    specs = fe(waves)
    assert specs.shape == (2, 1, 257, 1 + 160000 // 353)
    torch.testing.assert_close(specs[1:], fe(waves[1:]))
    torch.testing.assert_close(specs.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
    assert bool((fe(torch.zeros(1, 16000 * 10)) == 0).all())  # silence: no spread, all zeros


def test_reader_is_strict_and_names_the_method(golden, tmp_path):
    extra = released_file(golden, tmp_path / "extra.pt", **{"image_encoder.head.weight": torch.zeros(3)})
    with pytest.raises(CheckpointError, match=r"extra.pt: does not fit a RCGrad model.*1 unexpected: image_encoder.head.weight"):
        load_model(extra, method="rcgrad")
    missing = released_file(golden, tmp_path / "missing.pt", **{"audio_encoder.layer4.1.bn2.bias": None})
    with pytest.raises(CheckpointError, match=r"missing.pt: .*1 of \d+ entries missing: audio_encoder.layer4.1.bn2.bias"):
        load_model(missing)
    window = released_file(golden, tmp_path / "window.pt", **{"audio_encoder.spectrogram.window": torch.ones(512)})
    with pytest.raises(CheckpointError, match="window.pt: not a RCGrad checkpoint: .*not the periodic Hann window"):
        load_model(window, method="rcgrad")
    rc = released_file(golden, tmp_path / "rc_grad.pt")
    with pytest.raises(CheckpointError, match=r"a checkpoint of RCGrad \(--method rcgrad\), not of EZ-VSL \(--method ezvsl\)"):
        load_model(rc, method="ezvsl")
    with pytest.raises(CheckpointError, match="RCGrad has no 'vssl_eval' front-end policy"):
        load_model(rc, policy="vssl_eval")


def test_train_refuses_rcgrad(capsys):
    assert command("train")(["--config", "synth_cpu", "--method", "rcgrad", "--run-dir", "/nonexistent/x"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sslsan evaluates RCGrad's released checkpoint but does not train it" in err[0]
