"""Every method of the zoo (every registered method outside SSL-TIE's family, which test_train.py covers)
trains a step on the tiny data set with and without SSL-SaN's silence/noise terms, and the checkpoint
is loaded, evaluated and served as any other."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import tiny_config

from sslsan.data.manifest import read_manifest
from sslsan.engine import ablation_overrides, train
from sslsan.methods import get_method, method_names
from sslsan.methods.checkpoint import load_model
from sslsan.utils.logging import read_jsonl

ZOO = [name for name in method_names() if get_method(name).family != "ssl_tie" and get_method(name).trainable]
ONE_STEP = ("train.epochs=1", "train.max_steps_per_epoch=1", "train.log_every=1")


@pytest.mark.parametrize("san", [False, True], ids=["own", "san"])
@pytest.mark.parametrize("method", ZOO)
def test_trains_saves_loads_evaluates_and_serves(method, san, tiny_data, tmp_path):
    from sslsan.evaluation import evaluate_checkpoint
    from sslsan.serve.service import LocalizationService

    m = get_method(method)
    cfg = tiny_config(tiny_data, f"method={method}", *ablation_overrides("ssl_san" if san else "ssl_tie"), *ONE_STEP)
    assert cfg.audio.kind == m.audio.kind and cfg.san.use_noise == san
    run = train(cfg, tmp_path / "run", device="cpu", progress=False)
    step = next(r for r in read_jsonl(run / "log.jsonl") if r.get("kind") == "train")
    assert math.isfinite(step["loss"]) and ("loss_silence" in step) == san
    loaded = load_model(run / "checkpoints" / "best.pt")
    assert loaded.method.name == method and loaded.spec.map == m.map and loaded.spec.image == m.image
    assert loaded.spec.audio.kind == m.audio.kind
    if not san:  # evaluation reads the map and spec of any method (once per method is enough)
        metrics = evaluate_checkpoint(run / "checkpoints" / "best.pt", "synth-vggss", tiny_data, tmp_path / "eval",
                                      repetitions=1, batch_size=4, figure_examples=0, device="cpu", progress=False)
        saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
        assert saved["map"]["upsample"] == m.map.upsample and metrics
    sample = read_manifest(tiny_data / "test_vggss.jsonl")[0]
    service = LocalizationService.from_checkpoint(run / "checkpoints" / "best.pt")
    loc = service.localize(tiny_data / sample.image, tiny_data / sample.audio)
    for name, arr in loc.maps.items():
        lo, hi = m.map.range
        assert np.isfinite(arr).all() and lo - 1e-6 <= arr.min() and arr.max() <= hi + 1e-6, name
