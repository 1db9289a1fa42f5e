"""Released files given to the wrong method, cut short or with entries that do not fit: one clear line each,
never a partial load; the policy a released file is read with."""

from __future__ import annotations

import pytest
import torch

from conftest import command
from sslsan.methods.checkpoint import load_model
from sslsan.models import CheckpointError
from zoo_golden import load_golden

EZVSL_TOP = {"optimizer": {}, "epoch": 1, "best_cIoU": 0.5, "best_Auc": 0.5}


@pytest.fixture(scope="module")
def ezvsl_file(tmp_path_factory):
    return load_golden("ezvsl").write_original(tmp_path_factory.mktemp("ez") / "best.pth", "model", EZVSL_TOP)


def test_wrong_method_is_refused_by_name(ezvsl_file):
    with pytest.raises(CheckpointError, match=r"best.pth: a checkpoint of EZ-VSL \(--method ezvsl\), not of LVS \(--method lvs\)"):
        load_model(ezvsl_file, method="lvs")
    with pytest.raises(CheckpointError, match=r"a checkpoint of EZ-VSL \(--method ezvsl\), not of RCGrad"):
        load_model(ezvsl_file, method="rcgrad")


def test_cli_gives_one_line(ezvsl_file, tiny_data, tmp_path, capsys):
    argv = ["--checkpoint", str(ezvsl_file), "--method", "sslalign", "--dataset", "synth-vggss", "--data-root",
            str(tiny_data), "--out", str(tmp_path / "out")]
    assert command("evaluate")(argv) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not of SSL-Align (--method sslalign)" in err[0]


def test_cut_and_misfit_files(ezvsl_file, tmp_path):
    cut = tmp_path / "cut.pth"
    cut.write_bytes(ezvsl_file.read_bytes()[: ezvsl_file.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cut.pth: checkpoint cut short"):
        load_model(cut, method="ezvsl")
    ckpt = torch.load(ezvsl_file)
    ckpt["model"]["module.img_proj.extra"] = torch.zeros(2)
    del ckpt["model"]["module.aud_proj.bias"]
    torch.save(ckpt, tmp_path / "misfit.pth")
    with pytest.raises(CheckpointError, match=r"misfit.pth: does not fit a EZ-VSL model of this configuration; 1 of \d+ "
                                              r"entries missing: aud_proj.bias; 1 unexpected: img_proj.extra"):
        load_model(tmp_path / "misfit.pth", method="ezvsl")


def test_policy_of_a_released_file(ezvsl_file):
    paper = load_model(ezvsl_file, method="ezvsl", policy="vssl_eval")
    assert paper.policy == "vssl_eval" and paper.spec.audio.window == "roll_centre"
    assert paper.spec.universal_threshold == pytest.approx(0.6382)
    own = load_model(ezvsl_file, method="ezvsl")  # the default: the authors' own front-end (D1 for negatives)
    assert own.policy == "original" and own.spec.audio.window == "centre" and own.spec.universal_threshold is None
    torch.testing.assert_close(paper.model.state_dict(), own.model.state_dict())  # the same weights
