"""The training engine: end-to-end run directory, exact resume, DDP (gloo) = single process, configs, errors.

Everything runs on the tiny data set of conftest (JPEG frames, PCM16 WAV clips, JSONL manifests), a
width-0.125 model, 32 px images and 16x33 spectrograms (conftest.TINY), so the file takes seconds.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY, command, tiny_config

from sslsan.audio import tile_to_length
from sslsan.config import ConfigError, load_config, save_config, to_dict
from sslsan.data.manifest import read_manifest
from sslsan.engine import ABLATIONS, TrainConfig, ablation_overrides, train
from sslsan.engine.data import KeyedSampler, TrainItems, collate_items, load_or_compute_power_cache, power_cache_path
from sslsan.engine.distributed import DistInfo
from sslsan.engine.step import InputBuilder, StepModule, forward_loss
from sslsan.engine.streams import step_generator
from sslsan.engine.loop import build_model, build_objective, build_optimizer
from sslsan.methods.checkpoint import load_model
from sslsan.models import read_checkpoint
from sslsan.utils.logging import read_jsonl

train_main = command("train")


def _params(state_dict: dict) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state_dict.items() if v.is_floating_point()}


def test_end_to_end_run_directory(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, "eval.calibrate_threshold=true", "eval.calibration_repetitions=2")
    run = train(cfg, tmp_path / "run", device="cpu")
    assert (run / "config.yaml").exists()
    assert load_config(TrainConfig, run / "config.yaml") == cfg  # the resolved config round-trips

    meta = json.loads((run / "run.json").read_text())
    assert meta["seed"] == 7 and "git_sha" in meta
    assert meta["manifests"]["train"]["samples"] == 8
    assert len(meta["manifests"]["train"]["sha256"]) == 64

    log = read_jsonl(run / "log.jsonl")
    steps = [r for r in log if r.get("kind") == "train"]
    assert len(steps) == 4  # 8 samples / batch 4 = 2 steps a epoch, 2 epochs, logged every step
    for r in steps:
        for key in ("loss", "lr", "samples_per_s", "data_wait_s", "epoch", "step"):
            assert key in r, key
        assert math.isfinite(r["loss"]) and r["samples_per_s"] > 0 and r["data_wait_s"] >= 0
    assert len(steps[0]) > 10  # every loss term of the objective is logged, not only the total
    epochs = [r for r in log if r.get("kind") == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert all(math.isfinite(r["val"]["loss"]) for r in epochs)
    best_epoch = min(epochs, key=lambda r: r["val"]["loss"])["epoch"]

    for name in ("latest", "best"):
        path = run / "checkpoints" / f"{name}.pt"
        model = load_model(path).model
        assert not model.training
        raw = read_checkpoint(path)
        assert raw["epoch"] == (2 if name == "latest" else best_epoch) and raw["step"] == 2 * raw["epoch"]
        assert raw["config"] == to_dict(cfg)
        assert {"optimizer", "scheduler", "rng", "best_val"} <= set(raw["train_state"])
    # the scheduler is ReduceLROnPlateau, stepped on the validation loss (D9)
    assert read_checkpoint(run / "checkpoints" / "latest.pt")["train_state"]["scheduler"]["best"] == pytest.approx(
        min(r["val"]["loss"] for r in epochs)
    )

    cal = [r for r in log if r.get("kind") == "calibration"]
    assert len(cal) == 1
    record = json.loads((run / "threshold.json").read_text())
    thr = record["universal_threshold"]
    assert cal[0]["universal_threshold"] == thr
    assert record["details"]["repetitions"] == 2 and record["manifest"] == str(tiny_data / "val.jsonl")
    assert load_model(run / "checkpoints" / "best.pt").spec.universal_threshold == pytest.approx(thr)


def test_resume_gives_the_same_weights(tiny_data, tmp_path):
    """Epochs 1+2 in one go == epoch 1, stop, resume for epoch 2 (also with a different worker count), bit for bit.

    With the paper's augmentation (colour jitter, grayscale, blur on the device; SpecAugment), so that
    every keyed draw of the step is replayed.
    """
    paper_aug = ("data.jitter_p=0.8", "data.grayscale_p=0.2", "data.blur_p=0.5", "audio.spec_augment=true")
    full = train(tiny_config(tiny_data, *paper_aug), tmp_path / "full", device="cpu")
    part = train(tiny_config(tiny_data, *paper_aug, "train.epochs=1"), tmp_path / "part", device="cpu")
    assert read_checkpoint(part / "checkpoints" / "latest.pt")["epoch"] == 1
    train(tiny_config(tiny_data, *paper_aug, "data.num_workers=2"), part, device="cpu", resume=True)

    a = read_checkpoint(full / "checkpoints" / "latest.pt")
    b = read_checkpoint(part / "checkpoints" / "latest.pt")
    wa, wb = load_model(full / "checkpoints" / "latest.pt").model.state_dict(), load_model(part / "checkpoints" / "latest.pt").model.state_dict()
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=0, atol=0, msg=k)
    assert a["step"] == b["step"] == 4
    # and the logged losses of epoch 2 replay too
    la = [r["loss"] for r in read_jsonl(full / "log.jsonl") if r.get("kind") == "train"]
    lb = [r["loss"] for r in read_jsonl(part / "log.jsonl") if r.get("kind") == "train"]
    assert lb == la
    # another seed gives other weights, so the comparison above can fail
    other = train(tiny_config(tiny_data, *paper_aug, "train.seed=8", "train.epochs=1"), tmp_path / "other", device="cpu")
    wo = load_model(other / "checkpoints" / "latest.pt").model.state_dict()
    assert any(not torch.equal(wo[k], wb[k]) for k in _params(wo))


def test_ddp_gloo_two_processes_equals_single_process(tiny_data, tmp_path):
    """One DDP step on 2 CPU processes (gloo, via torchrun and the real CLI) == one single-process step.

    BatchNorm: under DDP each rank normalises its own half-batch with that half's statistics, so the
    single-process reference reproduces exactly that: it computes the loss of each rank's half-batch
    separately (same keyed data, augmentation, noise and TE draws as that rank), back-propagates
    (loss_0 + loss_1) / 2 -- the gradient DDP's all-reduce averages -- and takes one Adam step.
    Parameters are compared; BN running statistics are not (rank 0's buffers only saw its half).
    """
    cfg = tiny_config(tiny_data, "train.epochs=1", "train.max_steps_per_epoch=1", "data.val_manifest=null")
    cfg_path = tmp_path / "cfg.yaml"
    save_config(cfg, cfg_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "sslsan", "train", "--config", str(cfg_path), "--run-dir", str(tmp_path / "ddp"), "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp_weights = load_model(tmp_path / "ddp" / "checkpoints" / "latest.pt").model.state_dict()
    ddp_loss = [r for r in read_jsonl(tmp_path / "ddp" / "log.jsonl") if r.get("kind") == "train"][0]["loss"]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the torchrun processes (OMP_NUM_THREADS=1): same kernels, same rounding
    try:
        losses, model = _reference_ddp_step(cfg, tiny_data)
    finally:
        torch.set_num_threads(threads)

    assert ddp_loss == pytest.approx(sum(losses) / 2, abs=1e-5)
    ref = _params(model.state_dict())
    init = build_model(cfg, torch.device("cpu")).state_dict()
    changed = 0
    for k, v in ref.items():
        if "running_" in k:
            continue
        torch.testing.assert_close(ddp_weights[k], v, rtol=1e-5, atol=1e-6, msg=k)
        changed += not torch.equal(v, init[k])
    assert changed > 0  # the step moved the weights, so the comparison is not trivially of the init


def _reference_ddp_step(cfg: TrainConfig, tiny_data: Path):
    """Single process: each rank's half-batch separately, gradients averaged, one Adam step."""
    model = build_model(cfg, torch.device("cpu"))
    step_module = StepModule(model, build_objective(cfg))
    optimizer = build_optimizer(model, cfg, torch.device("cpu"))
    builder = InputBuilder(cfg, torch.device("cpu"))
    items = TrainItems(read_manifest(tiny_data / "train.jsonl"), cfg, train=True, with_noise=builder.need_noise)
    half = cfg.train.batch_size // 2
    losses = []
    optimizer.zero_grad()
    # every rank starts the step from the same BatchNorm buffers (DDP broadcasts rank 0's); the negatives
    # are normalised with the running statistics (D15), so rank 1 must not see rank 0's update of them
    buffers = {k: v.clone() for k, v in model.state_dict().items() if "running_" in k or "num_batches" in k}
    for rank in range(2):
        model.load_state_dict(buffers, strict=False)
        sampler = KeyedSampler(items, num_replicas=2, rank=rank, shuffle=True, seed=cfg.train.seed, drop_last=True)
        sampler.set_epoch(0)
        keys = list(sampler)[:half]
        batch = collate_items([items[k] for k in keys])
        loss, _ = forward_loss(step_module, builder, batch, step_generator(cfg.train.seed, 0, 0, rank), augment=True, amp=False,
                               step=0)
        (loss / 2).backward()
        losses.append(loss.item())
    optimizer.step()
    return losses, model


def test_input_builder_negatives_and_spectrogram_cache(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data)
    dev = torch.device("cpu")
    builder = InputBuilder(cfg, dev)
    items = TrainItems(read_manifest(tiny_data / "train.jsonl"), cfg, train=True, with_noise=True)
    batch = collate_items([items[(0, i)] for i in range(4)])
    x = builder(batch, augment=False, generator=step_generator(7, 0, 0, 0))
    n_frames = 1 + cfg.audio.tile_samples // cfg.audio.hop_length
    assert x["specs"].shape == (4, 1, 16, n_frames) and x["images"].shape == (4, 3, 32, 32)
    # D1: silence = the dB front-end of an all-zero waveform, computed once: -100 dB everywhere
    assert x["silence_spec"].shape == (1, 1, 16, n_frames)
    assert torch.all(x["silence_spec"] == -100.0)
    assert x["noise_specs"].shape == (4, 1, 16, n_frames)
    # noise on the device (default): keyed by the step's generator: replays, and is redrawn every step
    def device_noise(epoch, step):
        return builder._noise(batch, step_generator(7, epoch, step, 0))

    assert "noise" not in items[(0, 2)] and device_noise(0, 0).shape == (4, cfg.audio.tile_samples)
    assert torch.equal(device_noise(0, 0), device_noise(0, 0)) and not torch.equal(device_noise(0, 0), device_noise(0, 1))
    assert not torch.equal(device_noise(0, 0), device_noise(1, 0))
    assert device_noise(0, 0).std() == pytest.approx(1.0, abs=0.05)  # N(0, 1)
    # noise in the loader: keyed by (seed, epoch, index): replays, and is redrawn every epoch
    loader_items = TrainItems(items.manifest, tiny_config(tiny_data, "data.noise_on=loader"), train=True, with_noise=True)
    assert torch.equal(loader_items[(0, 2)]["noise"], loader_items[(0, 2)]["noise"])
    assert not torch.equal(loader_items[(0, 2)]["noise"], loader_items[(1, 2)]["noise"])
    assert not torch.equal(loader_items[(0, 2)]["noise"], loader_items[(0, 3)]["noise"])
    assert loader_items[(0, 2)]["noise"].std() == pytest.approx(1.0, abs=0.05)  # N(0, 1)
    # the vssl_eval convention: negatives as linear power (silence = an all-zero tensor)
    lin = InputBuilder(tiny_config(tiny_data, "audio.negatives_in_db=false"), dev)
    y = lin(batch, augment=False, generator=step_generator(7, 0, 0, 0))
    assert torch.all(y["silence_spec"] == 0)
    torch.testing.assert_close(builder.frontend.to_log(y["noise_specs"]), x["noise_specs"])
    # SpecAugment only when augmenting, on power before dB: masked cells are -100 dB
    specaug = InputBuilder(tiny_config(tiny_data, "audio.spec_augment=true", "audio.specaug_p=1.0"), dev)
    aug = specaug(batch, augment=True, generator=step_generator(7, 0, 0, 0))
    assert (aug["specs"] == -100).sum() > (x["specs"] == -100).sum()
    # switches off -> no negatives computed at all
    tie = InputBuilder(tiny_config(tiny_data, *ablation_overrides("ssl_tie")), dev)
    z = tie(batch, augment=False, generator=step_generator(7, 0, 0, 0))
    assert z["silence_spec"] is None and z["noise_specs"] is None
    # the mel cache holds exactly what the front-end computes per batch; stored once, then read back
    copy = tmp_path / "copy"
    shutil.copytree(tiny_data, copy, ignore=shutil.ignore_patterns(".sslsan_cache"))
    m = read_manifest(copy / "train.jsonl")
    cache, source = load_or_compute_power_cache(m, cfg, builder.frontend, dev, DistInfo(), progress=False)
    assert source == "computed" and power_cache_path(m, cfg).exists()
    again, source = load_or_compute_power_cache(m, cfg, builder.frontend, dev, DistInfo(), progress=False)
    assert source == "disk" and torch.equal(again, cache)
    other = tiny_config(tiny_data, "audio.n_mels=12")  # another front-end: another cache file
    assert power_cache_path(m, other) != power_cache_path(m, cfg)
    # the key covers the audio files themselves: replaced clips (same manifest) give another cache
    wav = m.resolve(m[0].audio)
    key = power_cache_path(m, cfg)
    wav.write_bytes(wav.read_bytes())
    os.utime(wav, ns=(wav.stat().st_atime_ns, wav.stat().st_mtime_ns + 10**9))
    assert power_cache_path(m, cfg) != key
    # a cut cache file is recomputed (and replaced), not a crash
    key = power_cache_path(m, cfg)
    load_or_compute_power_cache(m, cfg, builder.frontend, dev, DistInfo(), progress=False)  # stores the new key
    key.write_bytes(key.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="mel cache unreadable"):
        fresh, source = load_or_compute_power_cache(m, cfg, builder.frontend, dev, DistInfo(), progress=False)
    assert source == "computed" and torch.equal(fresh, cache)
    assert torch.equal(torch.load(key, weights_only=True), cache)
    cached = TrainItems(items.manifest, cfg, train=True, power_cache=cache, with_noise=True)
    cb = collate_items([cached[(0, i)] for i in range(4)])
    xc = builder(cb, augment=False, generator=step_generator(7, 0, 0, 0))
    torch.testing.assert_close(xc["specs"], x["specs"], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(xc["images"], x["images"])


def test_clips_of_any_length_collate_and_tile_on_the_device(tiny_data):
    """The loader sends clips untiled (zero-padded to the batch's longest); the device tiles each as SSL-TIE does."""
    cfg = tiny_config(tiny_data)
    builder = InputBuilder(cfg, torch.device("cpu"))
    items = TrainItems(read_manifest(tiny_data / "train.jsonl"), cfg, train=True)
    wave = items[(0, 0)]["wave"]
    assert wave.shape == (cfg.audio.tile_samples,)  # a 0.5 s clip with a 0.5 s tile: read whole, not tiled
    clips = [wave[:3000], wave[:8000], wave[:5000]]  # shorter than the tile: repeated, rows of their own period
    batch = collate_items([{**items[(0, i)], "wave": c} for i, c in enumerate(clips)])
    assert batch["wave"].shape == (3, 8000) and batch["wave_len"].tolist() == [3000, 8000, 5000]
    x = builder(batch, augment=False, generator=step_generator(7, 0, 0, 0))
    for i, c in enumerate(clips):
        torch.testing.assert_close(x["specs"][i], builder.frontend(tile_to_length(c, cfg.audio.tile_samples))[0])


def test_shipped_configs_and_table4_rows():
    paper = load_config(TrainConfig, "vggsound144k")
    assert (paper.train.batch_size, paper.optim.lr, paper.optim.weight_decay, paper.train.epochs) == (32, 1e-4, 1e-4, 100)
    assert paper.optim.scheduler == "plateau" and paper.data.image_size == 224 and paper.model.width == 1.0
    a = paper.audio
    assert (a.n_fft, a.hop_length, a.n_mels, a.sample_rate, a.tile_seconds) == (512, 239, 257, 16000, 10.0)
    cpu = load_config(TrainConfig, "synth_cpu")
    assert cpu.model.width == 0.5 and cpu.data.image_size == 96 and cpu.audio.n_mels == 64
    assert 1 + cpu.audio.tile_samples // cpu.audio.hop_length == 65 and cpu.data.cache_spectrograms
    # Table 4 (S, N, L_S, L_N), row by row; row 1 = SSL-TIE, row 7 = SSL-SaN
    rows = {
        "ssl_tie": (0, 0, 0, 0), "s": (1, 0, 0, 0), "s_ls": (1, 0, 1, 0), "n": (0, 1, 0, 0),
        "n_ln": (0, 1, 0, 1), "s_n": (1, 1, 0, 0), "ssl_san": (1, 1, 1, 1),
    }
    assert list(rows) == list(ABLATIONS)
    for name, want in rows.items():
        for config in ("vggsound144k", "synth_cpu"):
            for method in ("ssl_san", "ssl_tie"):  # a row's switches win over the method's default
                cfg = load_config(TrainConfig, config, [f"method={method}", *ablation_overrides(name)])
                o = cfg.san
                assert (o.use_silence, o.use_noise, o.loss_silence, o.loss_noise) == tuple(map(bool, want)), name
    # the SaN switches default to the method's: on for SSL-SaN only
    assert load_config(TrainConfig, "synth_cpu").san.use_noise is True
    assert load_config(TrainConfig, "synth_cpu", ["method=ssl_tie"]).san.loss_silence is False
    # so does the way the negatives meet BatchNorm (D15); an explicit setting wins
    from sslsan.methods import get_method, method_names

    for name in method_names():
        if get_method(name).trainable:
            assert load_config(TrainConfig, "synth_cpu", [f"method={name}"]).san.negatives_bn == get_method(name).negatives_bn
    assert load_config(TrainConfig, "vggsound144k").san.negatives_bn == "running_stats"
    assert load_config(TrainConfig, "synth_cpu").san.negatives_bn == "running_stats"
    for name in ("lvs", "ezvsl", "slavc", "fnac"):  # one-view objectives (D15)
        assert load_config(TrainConfig, "synth_cpu", [f"method={name}"]).san.negatives_bn == "with_positives"
    assert load_config(TrainConfig, "synth_cpu", ["method=lvs", "san.negatives_bn=own_batch"]).san.negatives_bn == "own_batch"
    # settings written before the method registry (objective.use_*) still load, as san.*
    legacy = load_config(TrainConfig, "synth_cpu", ["objective.use_noise=false", "objective.lambda_sn_warmup_steps=5"])
    assert legacy.san.use_noise is False and legacy.san.lambda_sn_warmup_steps == 5
    assert [r.label for r in ABLATIONS.values()] == ["SSL-TIE", "S", "S+LS", "N", "N+LN", "S+N", "SSL-SaN"]
    with pytest.raises(ConfigError, match="unknown ablation 'x'; Table 4 rows: ssl_tie, s, s_ls"):
        ablation_overrides("x")
    over = load_config(TrainConfig, "synth_cpu", ["train.epochs=3", "optim.betas=[0.8, 0.9]", "data.val_manifest=null"])
    assert over.train.epochs == 3 and over.optim.betas == (0.8, 0.9) and over.data.val_manifest is None


def test_cli_errors_are_one_clear_line(tiny_data, tmp_path, capsys):
    def run(*argv: str) -> str:
        assert train_main(list(argv)) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0, err
        return err

    assert "train.epoch" in run("--config", "synth_cpu", "train.epoch=3")  # unknown key, named
    assert "valid" in run("--config", "synth_cpu", "optim.lrr=1")
    assert "not found" in run("--config", "no_such_config")
    empty = tmp_path / "empty"
    empty.mkdir()
    msg = run("--config", "synth_cpu", "--data-root", str(empty), "--run-dir", str(tmp_path / "r"))
    assert str(empty) in msg and "empty" in msg and "sslsan data synth" in msg
    msg = run("--config", "synth_cpu", "--data-root", str(tmp_path / "missing"), "--run-dir", str(tmp_path / "r"))
    assert "not found" in msg and "sslsan data synth" in msg
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "notes.txt").write_text("x")
    msg = run("--config", "synth_cpu", "--data-root", str(wrong), "--run-dir", str(tmp_path / "r"))
    assert str(wrong / "train.jsonl") in msg and "sslsan prepare" in msg
    # a manifest naming files that are not there: counted, the first one named
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.jsonl").write_text((tiny_data / "train.jsonl").read_text())
    msg = run("--config", "synth_cpu", "--data-root", str(bad), "--run-dir", str(tmp_path / "r"))
    assert "16 file(s)" in msg and str(bad / "frames" / "train_00.jpg") in msg
    (wrong / "train.jsonl").write_text("")
    assert "empty" in run("--config", "synth_cpu", "--data-root", str(wrong), "--run-dir", str(tmp_path / "r"))
    assert "nothing to resume" in run("--config", "synth_cpu", "--data-root", str(tiny_data), "--run-dir", str(tmp_path / "r"), "--resume")
    big = run("--config", "synth_cpu", *TINY, "train.batch_size=64", "--data-root", str(tiny_data), "--run-dir", str(tmp_path / "r"))
    assert "fewer than one batch" in big


def test_cli_trains_then_refuses_to_overwrite_and_resumes(tiny_data, tmp_path, capsys):
    run_dir = tmp_path / "cli"
    args = ["--config", "synth_cpu", *TINY, "train.epochs=1", "train.max_steps_per_epoch=1", "--data-root", str(tiny_data),
            "--run-dir", str(run_dir), "--device", "cpu", "--no-progress"]
    assert train_main(args) == 0
    assert "epoch 1/1" in capsys.readouterr().err
    assert train_main(args) == 2
    assert "--resume" in capsys.readouterr().err
    # resume with the run directory's own config, extended by one epoch (overrides before and after flags)
    assert train_main(["train.log_every=2", "--run-dir", str(run_dir), "--resume", "--no-progress", "train.epochs=2"]) == 0
    assert read_checkpoint(run_dir / "checkpoints" / "latest.pt")["epoch"] == 2
    assert len(json.loads((run_dir / "run.json").read_text())["sessions"]) == 2
    # a resume that changes what is learned is refused
    assert train_main(["--run-dir", str(run_dir), "--resume", "optim.lr=0.5", "--no-progress"]) == 2
    assert "optim.lr" in capsys.readouterr().err
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["epochs"] == 2


def test_table4_switches_reach_the_objective(tiny_data, tmp_path):
    """SSL-TIE logs no silence/noise terms and feeds no negatives; silence-only logs exactly L_S
    (through `sslsan train --ablation`, which applies a Table-4 row on top of --config)."""
    one_step = ["train.epochs=1", "train.max_steps_per_epoch=1", "data.val_manifest=null"]

    def terms(run: Path) -> set[str]:
        rec = [r for r in read_jsonl(run / "log.jsonl") if r.get("kind") == "train"][0]
        assert math.isfinite(rec["loss"])
        return {k for k in rec if k.startswith(("loss_", "silence_", "noise_"))}

    tie = train(tiny_config(tiny_data, *ablation_overrides("ssl_tie"), *one_step), tmp_path / "ssl_tie", device="cpu")
    assert terms(tie) == {"loss_cl", "loss_cl_t", "loss_te"}
    s_ls = tmp_path / "s_ls"
    assert train_main(["--config", "synth_cpu", *TINY, "--ablation", "s_ls", *one_step, "--data-root", str(tiny_data),
                       "--run-dir", str(s_ls), "--device", "cpu", "--no-progress"]) == 0
    assert terms(s_ls) == {"loss_cl", "loss_cl_t", "loss_te", "loss_silence", "silence_map_mean"}
    o = yaml.safe_load((s_ls / "config.yaml").read_text())["san"]
    assert (o["use_silence"], o["use_noise"], o["loss_silence"], o["loss_noise"]) == (True, False, True, False)


def test_resume_check_treats_keys_a_run_predates_as_defaults(tmp_path):
    """A run saved before a config key existed resumes (the key's default reproduces the old behaviour);
    a saved value that differs in anything learned is refused."""
    from sslsan.engine.run import check_resume_config

    cfg = TrainConfig()
    saved = to_dict(cfg)
    del saved["model"]["image_backbone"], saved["san"]["negatives_bn"]
    check_resume_config(saved, cfg, tmp_path / "latest.pt")
    # a run saved before the method registry: no method, the silence/noise settings under objective
    legacy = to_dict(cfg)
    del legacy["method"]
    from sslsan.engine.train_config import LEGACY_SAN_KEYS

    legacy["objective"].update({k: v for k, v in legacy.pop("san").items() if k in LEGACY_SAN_KEYS})
    check_resume_config(legacy, cfg, tmp_path / "latest.pt")
    saved["optim"]["lr"] = 0.5
    with pytest.raises(ConfigError, match=r"optim.lr: 0.5 -> 0.0001\); use a new --run-dir"):
        check_resume_config(saved, cfg, tmp_path / "latest.pt")


def test_a_model_that_fails_only_in_evaluation_mode_is_flagged():
    """LVS + SaN with running-statistics negatives (D15), epoch 1 of seed 0: maps formed in training, gone at
    evaluation; healthy runs (LVS seed 0 epoch 2, SSL-SaN's demo run) are not flagged."""
    from sslsan.engine.loop import evaluation_mode_gap

    msg = evaluation_mode_gap({"diag_pos_max": 0.688}, {"diag_pos_max": 0.022})
    assert msg and "maximum 0.022" in msg and "(0.688)" in msg and "san.negatives_bn" in msg
    assert evaluation_mode_gap({"diag_pos_max": 0.759}, {"diag_pos_max": 0.548}) is None
    assert evaluation_mode_gap({"diag_pos_max": 0.73}, {"diag_pos_max": 0.70}) is None
    assert evaluation_mode_gap({"diag_pos_max": 0.1}, {"diag_pos_max": 0.01}) is None  # no map formed yet
    assert evaluation_mode_gap({"diag_pos_max": 0.75}, {}) is None  # no validation split
