"""The Localizer reproduces the original AVENet forward (tests/golden/golden_model_shared.*).

The weights are rebuilt from the recipe in golden_model_shared.md, written as an original-format
checkpoint (numpy float64 `best_miou`, optionally `module.`-prefixed) and read back by `load_model`.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from sslsan.losses import ContrastiveLoss
from sslsan.methods.checkpoint import load_model

from conftest import REFERENCE, reference_file
from zoo_recipe import recipe_state_dict

NPZ, META = REFERENCE / "golden_model_shared.npz", REFERENCE / "golden_model_shared.json"

pytestmark = pytest.mark.golden


def rebuild_state_dict(meta: dict) -> tuple[dict[str, torch.Tensor], np.random.Generator]:
    """The recipe of golden_model_shared.md (tests/zoo_recipe.py), one draw per entry in sorted key order."""
    weights, rng = recipe_state_dict({e["key"]: tuple(e["shape"]) for e in meta["keys"]}, meta["seed"])
    return {k: torch.from_numpy(v) for k, v in weights.items()}, rng


def fingerprint(sd: dict[str, torch.Tensor]) -> tuple[str, float]:
    h, total = hashlib.sha256(), 0.0
    for key in sorted(sd):
        arr = sd[key].numpy()
        h.update(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
        total += float(np.abs(arr.astype(np.float64)).sum())
    return h.hexdigest(), total


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    meta = json.loads(reference_file(META.name).read_text())
    ref = dict(np.load(reference_file(NPZ.name)))
    sd, rng = rebuild_state_dict(meta)
    sha, total = fingerprint(sd)
    assert sha == meta["weights_fingerprint"]["sha256"], "weight recipe rebuilt wrongly"
    assert total == pytest.approx(meta["weights_fingerprint"]["sum_abs"], rel=1e-9)
    images = rng.normal(0.0, 1.0, size=(2, 3, 224, 224)).astype(np.float32)
    specs = rng.normal(-40.0, 20.0, size=(2, 1, 257, 670)).astype(np.float32)
    np.testing.assert_array_equal(images, ref["images"])
    np.testing.assert_array_equal(specs, ref["specs"])
    tmp = tmp_path_factory.mktemp("golden")
    plain, prefixed = tmp / "vggsound144k.pth.tar", tmp / "dataparallel.pth.tar"
    optimizer = {"state": {}, "param_groups": [{"lr": 1e-4, "weight_decay": 1e-4, "params": []}]}
    for path, prefix in ((plain, ""), (prefixed, "module.")):
        torch.save({"epoch": 0, "state_dict": {prefix + k: v for k, v in sd.items()},
                    "best_miou": np.float64(0.5), "optimizer": optimizer, "iteration": 0}, path)
    return meta, ref, plain, prefixed


def _outputs(model, ref: dict) -> dict[str, torch.Tensor]:
    images, specs = torch.from_numpy(ref["images"]), torch.from_numpy(ref["specs"])
    with torch.no_grad():
        v, a = model.image_features(images), model.audio_embedding(specs)
        cross = model.cross_map(v, a)
        sim = model.similarity_map(images, specs)
        logits, pos, neg = ContrastiveLoss().logits(model.pair_map(v, a), cross)
    return {"sim_map": sim, "image_features": v, "audio_embedding": a, "cross_map": cross,
            "cross_max": cross.amax(dim=(2, 3)), "logits": logits, "pos_mask": pos, "neg_mask": neg}


@pytest.mark.parametrize("which", ["plain", "module_prefix"])
def test_original_checkpoint_reproduces_reference(golden, which, caplog):
    meta, ref, plain, prefixed = golden
    with caplog.at_level("WARNING", logger="sslsan.methods"):
        loaded = load_model(plain if which == "plain" else prefixed)
    model = loaded.model
    assert not model.training and loaded.method.family == "ssl_tie" and loaded.source == "original"
    unused = set(loaded.ignored_keys)
    for name in ("imgnet.conv1_a.weight", "audnet.conv1.weight", "audnet.conv1_flow.weight",
                 "imgnet.fc.weight", "vision_fc1.weight", "conv3.weight", "norm3.running_var"):
        assert name in unused
    assert "ignored" in caplog.text
    assert loaded.spec.audio.n_fft == 512 and loaded.spec.image_size == 224 and loaded.spec.universal_threshold is None
    out = _outputs(model, ref)
    tol = meta["tolerance_abs"]
    for name, value in out.items():
        expected = torch.from_numpy(ref[name])
        assert value.shape == expected.shape, name
        if name == "logits":
            torch.testing.assert_close(value, expected, atol=tol[name]["atol"], rtol=tol[name]["rtol"])
        else:
            err = (value - expected).abs().max().item()
            assert err <= tol[name], f"{name}: max abs error {err:.3g} > {tol[name]}"
