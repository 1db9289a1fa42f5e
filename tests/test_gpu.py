"""The CUDA path end to end (marker `gpu`; `make test-gpu`; skipped where CUDA is not available).

1. A few training steps on CUDA equal the same steps on the CPU: fp32 on both (TF32 off), the noise
   clips drawn in the loader (`data.noise_on=loader`, so both devices see the same clips), the
   paper's augmentation split between workers and device. Tolerances: the first step's loss (same
   weights, same inputs: only kernel rounding differs) to 1e-4 relative; later steps and the
   validation loss to 2e-3 relative (Adam amplifies rounding in near-zero gradients); the trained
   model's similarity maps to 2e-3 absolute (maps lie in [0, 1]).
2. An evaluation on CUDA equals the same evaluation on the CPU: maps and embeddings to 1e-4
   absolute, the metrics continuous in them (separability, max similarity, magnitude/alignment)
   to 1e-4 absolute.
3. The training step as `sslsan train` runs it on CUDA (bf16 autocast, channels_last, fused Adam, the
   device-side augmentation and noise) never waits for the device: run under
   `torch.cuda.set_sync_debug_mode("error")`, any host-device synchronisation raises.
4. The default CUDA run (bf16, noise drawn on the device) trains, and resuming it replays the run:
   losses to 1e-3 relative (some CUDA backward kernels, e.g. grid_sample's, add atomically).
"""

from __future__ import annotations

import contextlib
import json
import math

import numpy as np
import pytest
import torch

from sslsan.data.manifest import read_manifest
from sslsan.engine import train
from sslsan.engine.data import TrainItems, collate_items
from sslsan.engine.distributed import DistInfo
from sslsan.engine.step import InputBuilder, StepModule, forward_loss
from sslsan.engine.streams import step_generator
from sslsan.engine.loop import Averager, build_model, build_objective, build_optimizer, scalar_terms
from sslsan.methods.checkpoint import load_model
from sslsan.utils.logging import read_jsonl
from conftest import tiny_config, write_tiny_data

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

PAPER_AUG = ("data.jitter_p=0.8", "data.grayscale_p=0.2", "data.blur_p=0.5", "audio.spec_augment=true",
             "train.batch_size=8")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_tiny_data(tmp_path_factory.mktemp("gpu"), n_train=16, n_val=8, n_test=0)


@contextlib.contextmanager
def exact_fp32():
    """fp32 matmuls and convolutions on CUDA (no TF32), as on the CPU."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _losses(run) -> list[float]:
    return [r["loss"] for r in read_jsonl(run / "log.jsonl") if r.get("kind") == "train"]


def _val_loss(run) -> float:
    return [r for r in read_jsonl(run / "log.jsonl") if r.get("kind") == "epoch"][-1]["val"]["loss"]


def _maps(run, device: str, data_root) -> torch.Tensor:
    model = load_model(run / "checkpoints" / "latest.pt", map_location=device).model
    cfg = tiny_config(data_root)
    items = TrainItems(read_manifest(data_root / "val.jsonl"), cfg, train=False)
    batch = collate_items([items[i] for i in range(len(items))])
    builder = InputBuilder(cfg, torch.device(device))
    with torch.no_grad():
        x = builder(batch, augment=False, generator=step_generator(7, 0, 0, 0))
        return model.similarity_map(x["images"], x["specs"]).cpu()


def test_cuda_training_matches_cpu(data_root, tmp_path):
    cfg = tiny_config(data_root, *PAPER_AUG, "data.noise_on=loader", "train.amp=false", "train.epochs=1")
    cpu = train(cfg, tmp_path / "cpu", device="cpu")
    with exact_fp32():
        cuda = train(cfg, tmp_path / "cuda", device="cuda")
    lc, lg = _losses(cpu), _losses(cuda)
    assert len(lc) == len(lg) == 2
    assert lg[0] == pytest.approx(lc[0], rel=1e-4)
    assert lg == pytest.approx(lc, rel=2e-3)
    assert _val_loss(cuda) == pytest.approx(_val_loss(cpu), rel=2e-3)
    with exact_fp32():
        torch.testing.assert_close(_maps(cuda, "cuda", data_root), _maps(cpu, "cpu", data_root), rtol=0, atol=2e-3)


def test_cuda_evaluation_matches_cpu(data_root, tmp_path):
    from sslsan.evaluation import evaluate_checkpoint

    run = train(tiny_config(data_root, "train.epochs=1"), tmp_path / "run", device="cpu")
    ckpt = run / "checkpoints" / "latest.pt"
    kw = dict(repetitions=2, threshold=0.5, batch_size=4, figure_examples=0, progress=False)
    m_cpu = evaluate_checkpoint(ckpt, "synth-val", data_root, tmp_path / "ev_cpu", device="cpu", **kw)
    with exact_fp32():
        m_gpu = evaluate_checkpoint(ckpt, "synth-val", data_root, tmp_path / "ev_gpu", device="cuda", **kw)
    a, b = np.load(tmp_path / "ev_cpu" / "maps.npz"), np.load(tmp_path / "ev_gpu" / "maps.npz")
    assert set(a.files) == set(b.files)
    for k in a.files:
        if a[k].dtype.kind == "f":
            np.testing.assert_allclose(b[k], a[k], rtol=0, atol=1e-4, err_msg=k)
    # the metrics that are continuous in the maps and embeddings (thresholded ones may flip on a tie)
    for section in ("separability", "max_similarity", "alignment"):
        cpu_values, gpu_values = _flat(m_cpu[section]), _flat(m_gpu[section])
        assert cpu_values.keys() == gpu_values.keys() and cpu_values
        for k, v in cpu_values.items():
            assert gpu_values[k] == pytest.approx(v, abs=1e-4), f"{section}.{k}"


def _flat(d: dict, prefix: str = "") -> dict[str, float]:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": float(v)})
    return out


def _pinned(batch: dict) -> dict:
    return {k: v.pin_memory() if torch.is_tensor(v) else v for k, v in batch.items()}


def test_cuda_training_step_never_waits_for_the_device(data_root):
    cfg = tiny_config(data_root, *PAPER_AUG, "train.batch_size=4")  # defaults: bf16 autocast, channels_last, fused Adam
    dev = torch.device("cuda")
    model = build_model(cfg, dev)
    step_module = StepModule(model, build_objective(cfg).to(dev))
    optimizer = build_optimizer(model, cfg, dev)
    builder = InputBuilder(cfg, dev)
    items = TrainItems(read_manifest(data_root / "train.jsonl"), cfg, train=True)
    batches = [_pinned(collate_items([items[(0, i)] for i in range(k * 4, k * 4 + 4)])) for k in range(2)]
    avg = Averager()

    def step(i: int) -> None:
        loss, terms = forward_loss(step_module, builder, batches[i % 2], step_generator(7, 0, i, 0),
                                   augment=True, amp=True, step=i)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        avg.add(scalar_terms(loss, terms))

    for i in range(2):  # warm-up: cuDNN plans, allocator pools, cached constants
        step(i)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i in range(2, 5):
            step(i)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    means = avg.reduce(DistInfo(), dev)  # the one synchronisation, at a log interval
    assert math.isfinite(means["loss"]) and 0.5 <= means["te_scale"] <= 1.0


def test_cuda_default_run_trains_and_resumes(data_root, tmp_path):
    full = train(tiny_config(data_root, *PAPER_AUG), tmp_path / "full", device="cuda")
    part = train(tiny_config(data_root, *PAPER_AUG, "train.epochs=1"), tmp_path / "part", device="cuda")
    train(tiny_config(data_root, *PAPER_AUG), part, device="cuda", resume=True)
    lf, lp = _losses(full), _losses(part)
    assert len(lf) == len(lp) == 4 and all(math.isfinite(x) for x in lf)
    assert lp == pytest.approx(lf, rel=1e-3)
    assert json.loads((full / "run.json").read_text())["sessions"][0]["device"].startswith("cuda")


def test_cuda_overlay_video_matches_cpu(tmp_path):
    """`localize --video` on CUDA gives the CPU's per-frame maps (fp32 on both: 1e-4 absolute) and frames."""
    from conftest import tiny_localizer
    from synthetic_media import write_video

    from sslsan.evaluation.video import VideoOptions, frames_file, localize_video

    video = write_video(tmp_path / "in.mp4", seconds=2.0, width=128, height=96)
    rows = {}
    for device in ("cpu", "cuda"):
        with exact_fp32():
            localize_video(tiny_localizer(threshold=0.45).to(device), video, tmp_path / f"{device}.mp4",
                           VideoOptions(panels=("silence",)), device=device, progress=False)
        rows[device] = [json.loads(line) for line in frames_file(tmp_path / f"{device}.mp4").read_text().splitlines()][1:-1]
    assert len(rows["cpu"]) == len(rows["cuda"]) == 50
    for a, b in zip(rows["cpu"], rows["cuda"]):
        assert a["time"] == b["time"] and a["source_time"] == b["source_time"]
        for key in ("map_max", "map_min", "silence_max"):
            assert abs(a[key] - b[key]) <= 1e-4, (a["frame"], key, a[key], b[key])
