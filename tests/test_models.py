"""Localizer shapes/invariants, initialisation, and checkpoints in every format (ours v2 and v1, the original)."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch
from torch import nn

from sslsan.audio import AudioConfig
from sslsan.methods import get_method
from sslsan.methods.checkpoint import load_model, save_checkpoint
from sslsan.models import CheckpointError, Localizer, ModelConfig, read_checkpoint

from test_golden_model import META as GOLDEN_KEYS
from test_losses import one_thread  # noqa: F401  (autouse fixture)


def small(seed=0, width=0.125) -> Localizer:
    torch.manual_seed(seed)
    return Localizer(ModelConfig(width=width))


def spec(audio: AudioConfig | None = None, image_size: int = 224, threshold: float | None = None, method="ssl_san"):
    """The inference spec a trained SSL-SaN model's checkpoint carries."""
    return get_method(method).inference_spec(audio or AudioConfig(), image_size, threshold)


def inputs(b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, 64, 64, generator=g), torch.randn(b, 1, 48, 40, generator=g) * 20 - 40


def test_shapes_and_invariants():
    model = small().eval()
    images, specs = inputs()
    with torch.no_grad():
        v, a = model.image_features(images), model.audio_embedding(specs)
        sim, cross = model.similarity_map(images, specs), model.cross_map(v, a)
    assert v.shape == (3, 64, 4, 4) and a.shape == (3, 64) and model.embed_dim == 64
    torch.testing.assert_close(v.norm(dim=1), torch.ones(3, 4, 4))
    torch.testing.assert_close(a.norm(dim=1), torch.ones(3))
    assert sim.shape == (3, 1, 4, 4) and sim.min() >= 0 and sim.max() <= 1 + 1e-6  # post-ReLU cosines
    assert cross.shape == (3, 3, 4, 4)
    torch.testing.assert_close(cross.diagonal(dim1=0, dim2=1).permute(2, 0, 1), sim[:, 0])
    # forward = encode; sequences are separate tower calls mirroring the input structure
    with torch.no_grad():
        fv, fa = model(images, specs)
        lv, la = model([images, images[:1]], [specs])
    torch.testing.assert_close(fv, v) and torch.testing.assert_close(fa, a)
    assert len(lv) == 2 and lv[1].shape == (1, 64, 4, 4) and len(la) == 1
    assert model(None, specs)[0] is None


@pytest.mark.golden
def test_full_width_image_map_is_14x14_and_names_match_the_original():
    model = Localizer()
    with torch.no_grad():
        assert model.eval().image_features(torch.randn(1, 3, 224, 224)).shape == (1, 512, 14, 14)
    # every entry we have exists in the original with the same shape
    original = {e["key"]: tuple(e["shape"]) for e in json.loads(GOLDEN_KEYS.read_text())["keys"]}
    for key, value in model.state_dict().items():
        name = key.replace("audnet.conv1.", "audnet.conv1_a.")
        assert original[name] == tuple(value.shape), key
    n_params = sum(p.numel() for p in model.parameters())
    # the original's 23,947,732 less what it never uses: per tower the other stems and fc
    # (conv1 or conv1_a, conv1_flow 18,816, fc 513,000), vision_fc1 (524,800), conv3 + norm3 (4)
    assert n_params == 23_947_732 - (3_136 + 18_816 + 513_000) - (9_408 + 18_816 + 513_000) - 524_800 - 4


def test_initialisation_follows_ssl_tie():
    model = Localizer(ModelConfig(width=0.5), generator=torch.Generator().manual_seed(0))
    bn_w = torch.cat([m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)])
    bn_b = torch.cat([m.bias for m in model.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(bn_w.mean().item() - 1) < 0.005 and abs(bn_w.std().item() - 0.02) < 0.003
    assert bn_b.abs().max() == 0
    conv = model.imgnet.layer3[0].conv2.weight  # (128, 128, 3, 3): std sqrt(2 / fan_out)
    assert conv.std().item() == pytest.approx(math.sqrt(2 / (128 * 9)), rel=0.03)
    again = Localizer(ModelConfig(width=0.5), generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters()))


def test_checkpoint_round_trip_keeps_weights_and_metadata(tmp_path):
    model = small()
    model.train()(*inputs())  # move BN running stats away from their defaults
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    audio = AudioConfig(n_mels=64, negatives_in_db=False)
    path = save_checkpoint(tmp_path / "run" / "latest.pt", nn.DataParallel(model), spec(audio, 112, 0.3338),
                           epoch=3, optimizer=opt.state_dict())
    assert sorted(p.name for p in path.parent.iterdir()) == ["latest.pt"]  # no temp file left
    raw = read_checkpoint(path)
    assert raw["epoch"] == 3 and "state" in raw["optimizer"] and raw["model_config"] == {"width": 0.125, "image_backbone": "resnet18", "audio_backbone": "resnet18"}
    assert raw["version"] == 2 and raw["method"] == "ssl_san" and raw["inference"]["map"]["upsample"] == "bilinear"
    assert all(not k.startswith("module.") for k in raw["state_dict"])
    loaded = load_model(path)
    assert not loaded.model.training and loaded.model.cfg.width == 0.125 and loaded.method.name == "ssl_san"
    assert loaded.spec.audio == audio and loaded.spec.image_size == 112 and loaded.spec.universal_threshold == 0.3338
    assert loaded.ignored_keys == [] and loaded.source == "sslsan"
    for (k, v), w in zip(model.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(v, w), k
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "x.pt", model, spec(), state_dict={})


def test_version1_checkpoints_still_load(tmp_path):
    """Checkpoints written before the method registry: SSL-TIE's towers, audio_config/image_size/threshold."""
    model = small()
    audio = AudioConfig(n_mels=64)
    v1 = {"format": "sslsan-localizer", "version": 1, "model_config": {"width": 0.125}, "audio_config": vars(audio) | {},
          "image_size": 96, "universal_threshold": 0.5, "state_dict": model.state_dict(), "epoch": 2}
    v1["audio_config"].pop("kind")
    torch.save(v1, tmp_path / "v1.pt")
    loaded = load_model(tmp_path / "v1.pt")
    assert loaded.method.family == "ssl_tie" and loaded.spec.image_size == 96 and loaded.spec.audio == audio
    assert loaded.spec.universal_threshold == 0.5
    from sslsan.methods.checkpoint import set_universal_threshold

    set_universal_threshold(tmp_path / "v1.pt", 0.25)
    assert load_model(tmp_path / "v1.pt").spec.universal_threshold == 0.25


class TinyTower(nn.Module):
    """A user's own tower: two strided convs, post-ReLU, stride 4."""

    def __init__(self, in_channels: int, width: float):
        super().__init__()
        self.out_channels = max(1, round(512 * width))  # as ResNet-18: the towers must agree
        self.net = nn.Sequential(nn.Conv2d(in_channels, 16, 3, 2, 1), nn.ReLU(),
                                 nn.Conv2d(16, self.out_channels, 3, 2, 1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_backbone_registry_builds_saves_and_loads_a_new_tower(tmp_path):
    """A tower added by name, without touching the localizer: trained-from-config, saved, loaded by name."""
    from sslsan.models import BACKBONES, get_backbone, register_backbone

    register_backbone("tiny_test", TinyTower, stride=4, ssl_tie_init=False)
    try:
        torch.manual_seed(0)
        model = Localizer(ModelConfig(width=0.125, image_backbone="tiny_test")).eval()
        assert isinstance(model.imgnet, TinyTower) and type(model.audnet).__name__ == "ResNet18Tower"
        images, specs = inputs()
        with torch.no_grad():
            sim = model.similarity_map(images, specs)
        assert sim.shape == (3, 1, 16, 16) and sim.min() >= 0  # stride 4 at 64 px
        path = save_checkpoint(tmp_path / "tiny.pt", model, spec(image_size=64))
        assert read_checkpoint(path)["model_config"]["image_backbone"] == "tiny_test"
        loaded = load_model(path).model
        assert isinstance(loaded.imgnet, TinyTower)
        with torch.no_grad():
            torch.testing.assert_close(loaded.similarity_map(images, specs), sim)
        # ssl_tie_init=False keeps the tower's own initialisation (here PyTorch's conv default: bias not zero)
        assert model.imgnet.net[0].bias.abs().sum() > 0
    finally:
        del BACKBONES["tiny_test"]
    with pytest.raises(CheckpointError, match=r"tiny.pt: unknown backbone 'tiny_test'; registered: resnet18"):
        load_model(path)
    with pytest.raises(ValueError, match="unknown backbone 'vit'"):
        get_backbone("vit")


def original_format(model: Localizer, prefix="module.") -> dict:
    """A small-width file laid out like the released SSL-TIE/SSL-SaN checkpoints."""
    sd = {}
    c0 = model.imgnet.conv1.weight.shape[0]
    for key, value in model.state_dict().items():
        sd[key.replace("audnet.conv1.", "audnet.conv1_a.")] = value
    sd["audnet.conv1.weight"] = torch.randn(c0, 3, 7, 7)
    sd["imgnet.conv1_a.weight"] = torch.randn(c0, 1, 7, 7)
    for tower in ("imgnet", "audnet"):
        sd[f"{tower}.conv1_flow.weight"] = torch.randn(c0, 6, 7, 7)
        sd[f"{tower}.fc.weight"], sd[f"{tower}.fc.bias"] = torch.randn(1000, 8 * c0), torch.randn(1000)
    sd.update({"conv3.weight": torch.randn(1, 1, 1, 1), "conv3.bias": torch.zeros(1),
               "norm3.weight": torch.ones(1), "norm3.running_mean": torch.zeros(1)})
    return {"epoch": 12, "state_dict": {prefix + k: v for k, v in sd.items()}, "best_miou": np.float64(0.41),
            "optimizer": {"state": {}, "param_groups": []}, "iteration": 0, "epsilon": torch.tensor([0.61])}


def test_original_format_loads_and_reports_extras(tmp_path, caplog):
    model = small().eval()
    path = tmp_path / "sslsan.pth.tar"
    torch.save(original_format(model), path)
    with caplog.at_level(logging.WARNING, logger="sslsan.methods"):
        loaded = load_model(path)
    assert loaded.model.cfg.width == 0.125 and loaded.spec.image_size == 224
    # a released file is read with its authors' front-end by default (negatives as positives, D1); the
    # vssl_eval policy: linear negatives and SSL-TIE's published U_th (SSL-SaN's is not published)
    assert loaded.policy == "original" and loaded.spec.audio == AudioConfig() and loaded.method.name == "ssl_tie"
    paper = load_model(path, method="ssl_tie", policy="vssl_eval")
    assert paper.spec.audio == AudioConfig(negatives_in_db=False) and paper.spec.universal_threshold == 0.3338
    assert load_model(path, method="ssl_san", policy="vssl_eval").spec.universal_threshold is None
    assert loaded.source == "original" and loaded.method.family == "ssl_tie"
    unused = loaded.ignored_keys
    assert "audnet.conv1.weight" in unused and "conv3.weight" in unused and "<top level> epsilon" in unused
    assert "imgnet.conv1.weight" not in unused and "learned epsilon = 0.6100" in caplog.text
    images, specs = inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.similarity_map(images, specs), model.similarity_map(images, specs))
    # a bare state dict (what `torch.save(model.state_dict())` gives) loads too
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    assert load_model(tmp_path / "bare.pt").ignored_keys == []
    # strict: an entry no reader declares is an error, not a silent extra
    extra = original_format(model)
    extra["state_dict"]["module.imgnet.layer9.weight"] = torch.zeros(1)
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match=r"extra.pt: does not fit .* 1 unexpected: imgnet.layer9.weight"):
        load_model(tmp_path / "extra.pt")


def test_bad_files_give_one_line_errors_naming_the_file(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError, match="notes.txt: not a PyTorch checkpoint"):
        load_model(text)
    with pytest.raises(CheckpointError, match="missing.pt: no such checkpoint file"):
        load_model(tmp_path / "missing.pt")
    other = tmp_path / "resnet50.pt"
    torch.save({"state_dict": nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)).state_dict()}, other)
    with pytest.raises(CheckpointError, match=r"resnet50.pt: not an sslsan checkpoint, and no method recognises it"):
        load_model(other)
    with pytest.raises(CheckpointError, match=r"resnet50.pt: not a SSL-TIE checkpoint: no image tower"):
        load_model(other, method="ssl_tie")
    wrong = tmp_path / "wrong_width.pt"
    ckpt = read_checkpoint(save_checkpoint(tmp_path / "ok.pt", small(), spec()))
    ckpt["model_config"] = {"width": 0.25}
    torch.save(ckpt, wrong)
    with pytest.raises(CheckpointError, match=r"wrong_width.pt: shapes differ .*imgnet.bn1.bias \(8,\) vs \(16,\)"):
        load_model(wrong)
    odd = tmp_path / "list.pt"
    torch.save([1, 2, 3], odd)
    with pytest.raises(CheckpointError, match="list.pt: not a localizer checkpoint"):
        load_model(odd)
    pickled = tmp_path / "pickled.pt"
    torch.save({"state_dict": {}, "cfg": AudioConfig()}, pickled)
    with pytest.raises(CheckpointError, match="trusted=True"):
        read_checkpoint(pickled)
    assert read_checkpoint(pickled, trusted=True)["cfg"] == AudioConfig()
    assert issubclass(CheckpointError, ValueError)
