"""Package, CLI, typed configs, seeding, JSONL logging, manifests, atomic writes."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pytest
import torch

import sslsan
from sslsan.cli import COMMANDS, main
from sslsan.config import ConfigError, apply_overrides, load_config, save_config, to_dict
from sslsan.data.manifest import ManifestError, Sample, read_manifest, write_manifest
from sslsan.utils.io import atomic_write_text
from sslsan.utils.logging import JsonlLogger, read_jsonl
from sslsan.utils.seed import make_generator, numpy_rng, seed_everything


def test_cli_help_and_version(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: sslsan COMMAND" in out
    for words in COMMANDS:
        assert " ".join(words) in out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"sslsan {sslsan.__version__}"
    assert main(["frobnicate"]) == 2


def test_python_dash_m_entry_point():
    res = subprocess.run([sys.executable, "-m", "sslsan", "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith("sslsan ")


def test_help_never_loads_torch():
    """The command layer's promise: `--help` (of every command and subcommand) answers without torch."""
    probe = ("import sys\nfrom sslsan.cli import COMMANDS, main\n"
             "for words in COMMANDS:\n"
             "    try:\n        main([*words, '--help'])\n    except SystemExit:\n        pass\n"
             "for sub in ('vggss', 'is3', 's4'):\n"
             "    try:\n        main(['prepare', sub, '--help'])\n    except SystemExit:\n        pass\n"
             "print('TORCH' if 'torch' in sys.modules else 'NO TORCH', file=sys.stderr)\n")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert res.stderr.strip().splitlines()[-1] == "NO TORCH", res.stderr[-2000:]


def test_every_registered_command_has_a_module():
    import importlib

    for words, (module, _) in COMMANDS.items():
        mod = importlib.import_module(module)
        assert callable(mod.main), words


@dataclass
class Inner:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    mode: Literal["sum", "mean"] = "sum"


@dataclass
class Outer:
    name: str = "run"
    epochs: int = 3
    flag: bool = False
    path: str | None = None
    inner: Inner = field(default_factory=Inner)


def test_config_yaml_and_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text("epochs: 5\ninner:\n  lr: 0.001\n")
    cfg = load_config(Outer, tmp_path / "c.yaml", ["inner.mode=mean", "flag=true", "inner.betas=[0.5, 0.6]", "path=/x"])
    assert cfg.epochs == 5 and cfg.inner.lr == 0.001 and cfg.inner.mode == "mean"
    assert cfg.flag is True and cfg.inner.betas == (0.5, 0.6) and cfg.path == "/x"
    save_config(cfg, tmp_path / "out.yaml")
    assert load_config(Outer, tmp_path / "out.yaml") == cfg
    assert apply_overrides(cfg, ["path=null"]).path is None


@pytest.mark.parametrize(
    "override,message",
    [
        ("inner.lrr=1", "unknown key"),
        ("epochs=abc", "expected an integer"),
        ("inner.mode=max", "not one of"),
        ("flag=maybe", "expected true/false"),
        ("epochs", "key.sub=value"),
        ("name.x=1", "not a config section"),
    ],
)
def test_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(Outer(), [override])


def test_config_file_errors(tmp_path):
    (tmp_path / "bad.yaml").write_text("epochz: 1\n")
    with pytest.raises(ConfigError, match="bad.yaml: unknown key 'epochz'"):
        load_config(Outer, tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(Outer, tmp_path / "missing.yaml")
    assert to_dict(Outer())["inner"]["betas"] == [0.9, 0.999]


def test_seeding_and_generators():
    seed_everything(7)
    a = torch.rand(3), np.random.rand(3)
    seed_everything(7)
    b = torch.rand(3), np.random.rand(3)
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    g1, g2, g3 = make_generator(1, 5), make_generator(1, 5), make_generator(1, 6)
    x = torch.rand(4, generator=g1)
    assert torch.equal(x, torch.rand(4, generator=g2)) and not torch.equal(x, torch.rand(4, generator=g3))
    assert numpy_rng(1, 2).integers(1 << 30) == numpy_rng(1, 2).integers(1 << 30)


def test_jsonl_logger(tmp_path):
    with JsonlLogger(tmp_path / "log.jsonl") as log:
        log.log({"step": 1, "loss": torch.tensor(0.5)}, lr=1e-4)
        log.log(step=2, loss=float("nan"))
    recs = read_jsonl(tmp_path / "log.jsonl")
    assert recs[0]["loss"] == 0.5 and recs[0]["lr"] == 1e-4 and "time" in recs[0]
    assert recs[1]["loss"] == "nan"


def test_manifest_roundtrip_and_errors(tmp_path):
    samples = [Sample(id="a", image="i/a.jpg", audio="a/a.wav", boxes=[[0.1, 0.2, 0.3, 0.4]], category="dog")]
    path = write_manifest(tmp_path / "m.jsonl", samples)
    m = read_manifest(path)
    assert m[0] == samples[0] and m.resolve("i/a.jpg") == (tmp_path / "i/a.jpg").resolve()
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ManifestError, match="empty.jsonl: manifest is empty"):
        read_manifest(tmp_path / "empty.jsonl")
    (tmp_path / "bad.jsonl").write_text(json.dumps(dataclasses.asdict(samples[0])) + "\n{oops\n")
    with pytest.raises(ManifestError, match="bad.jsonl:2: not valid JSON"):
        read_manifest(tmp_path / "bad.jsonl")
    (tmp_path / "nofield.jsonl").write_text('{"id": "x", "image": "a.jpg"}\n')
    with pytest.raises(ManifestError, match="missing field"):
        read_manifest(tmp_path / "nofield.jsonl")
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "nothing.jsonl")


def test_manifest_non_sounding_pairs(tmp_path):
    """`visible: false` marks a non-sounding pair; it is written only when false, so older manifests keep their bytes."""
    pos = Sample(id="a", image="a.jpg", audio="a.wav", boxes=[[0.1, 0.2, 0.3, 0.4]])
    neg = Sample(id="a+b", image="a.jpg", audio="b.wav", visible=False)
    assert "visible" not in pos.to_json() and json.loads(neg.to_json())["visible"] is False
    m = read_manifest(write_manifest(tmp_path / "m.jsonl", [pos, neg]))
    assert [s.visible for s in m] == [True, False]
    sounding, silent = m.split_visible()
    assert [s.id for s in sounding] == ["a"] and [s.id for s in silent] == ["a+b"] and silent.path == m.path
    bad = json.loads(neg.to_json())
    (tmp_path / "boxed.jsonl").write_text(json.dumps({**bad, "boxes": [[0, 0, 1, 1]]}) + "\n")
    with pytest.raises(ManifestError, match="boxed.jsonl:1: sample 'a\\+b': a non-sounding pair"):
        read_manifest(tmp_path / "boxed.jsonl")
    (tmp_path / "word.jsonl").write_text(json.dumps({**bad, "visible": "no"}) + "\n")
    with pytest.raises(ManifestError, match="visible must be true or false"):
        read_manifest(tmp_path / "word.jsonl")


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "x.txt"
    atomic_write_text(target, "old")

    class Boom(Exception):
        pass

    from sslsan.utils import io

    with pytest.raises(Boom):
        io._atomic(target, lambda fh: (fh.write("partial"), (_ for _ in ()).throw(Boom())), "w")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_atomic_write_has_usual_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "p.txt", "x")
    finally:
        os.umask(mask)
    assert (tmp_path / "p.txt").stat().st_mode & 0o777 == 0o644
