"""SSL-Align: its released layout through the original-checkpoint reader against its test.py forward and
datasets_lvs.py audio on seeded weights (tests/golden/golden_released_sslalign.*); recognising it beside
LVS; strict reading; no training."""

from __future__ import annotations

import pytest
import torch

from conftest import command
from released_golden import load_released_golden
from sslsan.methods.checkpoint import load_model
from sslsan.models import CheckpointError
from zoo_golden import max_abs


@pytest.fixture(scope="module")
def golden():
    return load_released_golden("sslalign")


def released_file(golden, path, prefix: str = "", **changes):
    """{'model_state_dict': weights} as SSL-Align's files hold them (no prefix), with `changes` (None deletes)."""
    sd = {prefix + k: v for k, v in golden.weights.items()}
    sd.update(changes)
    torch.save({"model_state_dict": {k: v for k, v in sd.items() if v is not None}}, path)
    return path


@pytest.mark.golden
@pytest.mark.parametrize("policy", ["original", "vssl_eval"])
def test_released_file_reproduces_test_py(golden, tmp_path, policy):
    path = released_file(golden, tmp_path / "ours_sup_previs.pth.tar")
    loaded = load_model(path, method="sslalign", policy=policy)
    assert loaded.method.name == "sslalign" and loaded.source == "original"
    assert sorted(loaded.ignored_keys) == sorted(f"{t}.{k}" for t in ("imgnet", "audnet")
                                                 for k in ("conv1_a.weight" if t == "imgnet" else "conv1.weight",
                                                           "conv1_flow.weight", "fc.weight", "fc.bias"))
    errors = {}
    specs = loaded.frontend()(torch.from_numpy(golden.waves))
    errors["spectrogram"] = max_abs(specs, golden.tensor("specs"))
    images = loaded.image_transform()(torch.from_numpy(golden.images).permute(0, 3, 1, 2))
    with torch.no_grad():
        maps = loaded.model.similarity_map(images, golden.tensor("specs"))
    errors["map"] = max_abs(maps, golden.tensor("heatmap"))
    print(f"sslalign golden max abs differences ({policy}):", {k: f"{e:.2g}" for k, e in errors.items()})
    assert errors["spectrogram"] <= 1e-5 and errors["map"] <= 1e-5


def test_told_apart_from_lvs_and_read_strictly(golden, tmp_path):
    align = released_file(golden, tmp_path / "ours_sup.pth.tar")
    with pytest.raises(CheckpointError, match="could be a checkpoint of LVS, SSL-Align; name the method with --method"):
        load_model(align)  # the same network: LVS's reader also takes it
    lvs = released_file(golden, tmp_path / "lvs.pth.tar", prefix="module.")  # LVS's own files: saved from DataParallel
    with pytest.raises(CheckpointError, match=r"a checkpoint of LVS \(--method lvs\), not of SSL-Align"):
        load_model(lvs, method="sslalign")
    missing = released_file(golden, tmp_path / "missing.pth.tar", **{"audnet.layer4.1.bn2.weight": None})
    with pytest.raises(CheckpointError, match=r"missing.pth.tar: does not fit a SSL-Align model.*1 of \d+ entries missing: "
                                              r"audnet.layer4.1.bn2.weight"):
        load_model(missing, method="sslalign")
    extra = released_file(golden, tmp_path / "extra.pth.tar", **{"img_proj.weight": torch.zeros(4, 4)})
    with pytest.raises(CheckpointError, match=r"extra.pth.tar: .*1 unexpected: img_proj.weight"):
        load_model(extra, method="sslalign")
    cut = tmp_path / "cut.pth.tar"
    cut.write_bytes(align.read_bytes()[:4096])
    with pytest.raises(CheckpointError, match="cut.pth.tar: checkpoint cut short"):
        load_model(cut, method="sslalign")


def test_train_refuses_sslalign(capsys):
    assert command("train")(["--config", "synth_cpu", "--method", "sslalign", "--run-dir", "/nonexistent/x"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "SSL-Align's training code is not released" in err[0]
