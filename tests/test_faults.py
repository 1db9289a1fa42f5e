"""Fault suite: every command on bad inputs, through the dispatcher as a user runs it.

Each row of CASES is one bad input (missing, empty, wrong-type, damaged or out-of-range file, folder,
setting or value) given to one command. The checks are the same for every row: the exit status, a
single line on stderr of the form ``sslsan CMD: error: <file or value>: <what is wrong>`` naming the
input, no traceback, and outputs that existed before left byte for byte as they were. Rows that need
DataLoader worker processes are slow-ish but stay in `make test`; kill -9 tests are marked slow.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pytest
import torch

from conftest import TINY, tiny_localizer, write_audio, write_split, write_tiny_data
from synthetic_media import write_video
from test_media import png_bytes
from sslsan.cli import main as sslsan
from sslsan.media import wav_bytes


def _variant(src: Path, dst: Path, edit: Callable[[list[dict]], None], manifest: str = "test_vggss.jsonl") -> Path:
    """A copy of data root `src` whose manifest rows went through `edit` (files shared by symlinked folder)."""
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.suffix != ".jsonl":
            (dst / f.name).symlink_to(f)
    rows = [json.loads(x) for x in (src / manifest).read_text().splitlines()]
    edit(rows)
    (dst / manifest).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dst


def _point_to(rows: list[dict], key: str, path: Path) -> None:
    rows[1][key] = str(path)


@pytest.fixture(scope="module")
def w(tmp_path_factory):
    """Good inputs, bad inputs, and outputs of earlier runs that a failed command must leave alone."""
    from sslsan.media import jpeg_bytes
    from sslsan.methods.checkpoint import save_checkpoint
    from sslsan.utils.io import atomic_savez

    r = tmp_path_factory.mktemp("faults")
    x = SimpleNamespace(root=r)
    # good: a tiny test set (with a calibration split) and a checkpoint that carries its threshold
    x.data = r / "data"
    x.data.mkdir()
    write_split(x.data, "test_vggss", 4)
    torch.manual_seed(0)
    tiny = tiny_localizer(threshold=0.5)
    x.ckpt = save_checkpoint(r / "run" / "checkpoints" / "best.pt", tiny.model, tiny.spec)
    x.train_data = write_tiny_data(r / "train_data", n_test=0)
    # bad files of every kind
    bad = r / "bad"
    bad.mkdir()
    x.text = bad / "notes.txt"
    x.text.write_text("just some text\n")
    x.empty = bad / "empty.bin"
    x.empty.write_bytes(b"")
    x.folder = bad / "a_folder"
    x.folder.mkdir()
    x.garbage_jpg = bad / "garbage.jpg"
    x.garbage_jpg.write_bytes(b"\xff\xd8\xff" + np.random.default_rng(0).bytes(3000))
    x.bomb = bad / "bomb.png"
    x.bomb.write_bytes(png_bytes(20000, 20000, 1, 0, b""))  # declares 400 MP, holds none
    x.missing = r / "nowhere"
    x.image = x.data / "frames" / "test_vggss_00.jpg"
    x.good_wav = x.data / "audio" / "test_vggss_00.wav"
    x.cut_wav = bad / "cut.wav"
    x.cut_wav.write_bytes(x.good_wav.read_bytes()[: x.good_wav.stat().st_size // 2])
    nan = np.full((1, 8000), 0.1, np.float32)
    nan[0, 10] = np.nan
    x.nan_wav = write_audio(bad / "nan.wav", nan, 16000, codec="pcm_f32le")
    x.short_wav = bad / "short.wav"
    x.short_wav.write_bytes(wav_bytes(np.full(160, 0.2), 16000))  # 0.01 s
    x.fake_mp4 = bad / "fake.mp4"
    x.fake_mp4.write_text("not a video")
    x.video = write_video(bad / "clip.mp4", seconds=1.0, width=64, height=64, codec="mpeg4")
    # videos for the overlay video (localize --video IN --out OUT.mp4)
    x.silent_video = write_video(bad / "silent.mp4", seconds=1.0, width=64, height=64, audio=False)
    x.sound_only = write_audio(bad / "sound.m4a", np.full((1, 8000), 0.1, np.float32), 16000)
    x.empty_video = bad / "empty.mp4"
    x.empty_video.write_bytes(b"")
    for name, faststart in (("cut_index_first.mp4", True), ("cut_index_last.mp4", False)):
        whole = write_video(bad / name, seconds=4.0, width=64, height=64, faststart=faststart).read_bytes()
        (bad / name).write_bytes(whole[: len(whole) * 6 // 10])  # a download stopped at 60 %
    x.cut_video_index_first, x.cut_video_index_last = bad / "cut_index_first.mp4", bad / "cut_index_last.mp4"
    x.cut_ckpt = bad / "cut.pt"
    x.cut_ckpt.write_bytes(x.ckpt.read_bytes()[:5000])
    x.json_damaged = bad / "damaged.json"
    x.json_damaged.write_text('{"ids": [1, 2')
    x.json_list = bad / "list.json"
    x.json_list.write_text("[1, 2, 3]\n")
    x.yaml_damaged = bad / "damaged.yaml"
    x.yaml_damaged.write_text("train: [epochs: 3\n  : :\n")
    x.mask_garbage = bad / "mask.png"
    x.mask_garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    # test sets with one bad row each
    v = r / "variants"
    x.bad_json = _variant(x.data, v / "bad_json", lambda rows: None)
    with open(x.bad_json / "test_vggss.jsonl", "a") as fh:
        fh.write('{"id": "broken", "image": \n')
    x.nan_box = _variant(x.data, v / "nan_box", lambda rows: rows[2].update(boxes=[[0.1, float("nan"), 0.5, 0.5]]))
    x.missing_field = _variant(x.data, v / "missing_field", lambda rows: rows[1].pop("audio"))
    x.dup_id = _variant(x.data, v / "dup_id", lambda rows: rows[3].update(id=rows[0]["id"]))
    x.missing_audio = _variant(x.data, v / "missing_audio", lambda rows: _point_to(rows, "audio", bad / "gone.wav"))
    x.cut_audio = _variant(x.data, v / "cut_audio", lambda rows: _point_to(rows, "audio", x.cut_wav))
    x.nan_audio = _variant(x.data, v / "nan_audio", lambda rows: _point_to(rows, "audio", x.nan_wav))
    x.bad_image = _variant(x.data, v / "bad_image", lambda rows: _point_to(rows, "image", x.garbage_jpg))
    x.bomb_image = _variant(x.data, v / "bomb_image", lambda rows: _point_to(rows, "image", x.bomb))
    x.bad_mask = _variant(x.data, v / "bad_mask", lambda rows: rows[0].update(mask=str(x.mask_garbage)))
    x.empty_set = v / "empty_set"
    x.empty_set.mkdir()
    (x.empty_set / "test_vggss.jsonl").write_text("")
    x.train_cut = _variant(x.train_data, v / "train_cut", lambda rows: _point_to(rows, "audio", x.cut_wav),
                           manifest="train.jsonl")
    # maps files: one good, and the ways one can be wrong
    n, reps = 3, 2
    gt = np.zeros((n, 224, 224), np.uint8)
    gt[:, :112] = 1
    good = dict(ids=np.array(["a", "b", "c"]), pos_maps=np.full((n, 7, 7), 0.6, np.float32), gt_maps=gt,
                neg_maps_silence=np.zeros((reps, n, 7, 7), np.float32), threshold=np.float64(0.5),
                neg_maps_noise=np.zeros((reps, n, 7, 7), np.float32), neg_maps_offscreen=np.zeros((reps, n, 7, 7), np.float32))
    x.maps = atomic_savez(bad / "maps.npz", **good)
    x.maps_dir = r / "scored"  # a run folder holding metrics.json, for compare
    x.maps_dir.mkdir()
    (x.maps_dir / "metrics.json").write_text(json.dumps({"model": "m", "localization": {"ciou_u": 50.0}}))
    nan_maps = {**good, "pos_maps": good["pos_maps"].copy()}
    nan_maps["pos_maps"][1, 2, 3] = np.nan
    x.maps_nan = atomic_savez(bad / "maps_nan.npz", **nan_maps)
    x.maps_gt = atomic_savez(bad / "maps_gt.npz", **{**good, "gt_maps": gt * 255})
    x.maps_thr = atomic_savez(bad / "maps_thr.npz", **{**good, "threshold": np.float64(1.5)})
    x.maps_inf = atomic_savez(bad / "maps_inf.npz", **{**good, "neg_maps_noise": np.full((reps, n, 7, 7), np.inf, np.float32)})
    # earlier outputs that failed runs must not touch
    x.prev_eval = r / "prev_eval"
    x.prev_eval.mkdir()
    for name in ("maps.npz", "metrics.json", "report.md", "offscreen.json", "log.jsonl"):
        (x.prev_eval / name).write_text(f"earlier run: {name}\n")
    x.foreign = r / "my_folder"
    x.foreign.mkdir()
    (x.foreign / "thesis.tex").write_text("precious\n")
    x.prev_loc = r / "prev_loc"
    x.prev_loc.mkdir()
    (x.prev_loc / "localize.json").write_text("[]\n")
    x.prev_video = r / "prev_video"  # an earlier overlay video and its record, alone in their folder
    x.prev_video.mkdir()
    (x.prev_video / "overlay.mp4").write_bytes(x.video.read_bytes())
    (x.prev_video / "overlay.frames.jsonl").write_text('{"kind": "video"}\n')
    x.prev_score = r / "scores.json"
    x.prev_score.write_text('{"earlier": true}\n')
    x.synth_damaged = r / "synth_damaged"
    x.synth_damaged.mkdir()
    (x.synth_damaged / "dataset.json").write_text('{"generator": "sslsan.data.synth')
    (x.synth_damaged / "train.jsonl").write_text("")
    x.synth_list = r / "synth_list"
    x.synth_list.mkdir()
    (x.synth_list / "dataset.json").write_text("[]\n")
    # prepare inputs
    x.vggss_root = r / "vggss"
    (x.vggss_root / "frames").mkdir(parents=True)
    (x.vggss_root / "vggss.json").write_text('[{"file": "abc", "bbox": [[0.1, 0.1')
    (x.vggss_root / "frames" / "abc.jpg").write_bytes(jpeg_bytes(np.zeros((8, 8, 3), np.uint8)))
    return x


@dataclass
class Case:
    """One bad input to one command: argv (built from the fixture), what the error line must hold."""

    id: str
    argv: Callable[[SimpleNamespace], list[str]]
    needle: Callable[[SimpleNamespace], str]  # the file or value the message must name
    what: str  # regex the message must match after the needle
    code: int = 2
    cuda: bool = False  # the case assumes no CUDA device
    # run as a separate `python -m sslsan` process: DataLoader workers left by an error are then ended
    # with the process, as for a user, instead of waiting for the test process's garbage collector
    process: bool = False


def _eval(root_attr: str, *extra: str) -> Callable[[SimpleNamespace], list[str]]:
    return lambda x: ["evaluate", "--checkpoint", str(x.ckpt), "--dataset", "synth-vggss", "--data-root",
                      str(getattr(x, root_attr)), "--out", str(x.prev_eval), "--no-progress", "--device", "cpu", *extra]


def _eval_ckpt(attr: str) -> Callable[[SimpleNamespace], list[str]]:
    return lambda x: ["evaluate", "--checkpoint", str(getattr(x, attr)), "--dataset", "synth-vggss", "--data-root",
                      str(x.data), "--out", str(x.prev_eval), "--no-progress"]


def _loc(**kw: str) -> Callable[[SimpleNamespace], list[str]]:
    """localize of a good image + audio, with options replaced: a fixture attribute, or "=literal"."""
    def argv(x: SimpleNamespace) -> list[str]:
        args = {"checkpoint": x.ckpt, "image": x.image, "audio": x.good_wav, "out": x.prev_loc, "device": "cpu"}
        if "video" in kw or "pairs" in kw:
            del args["image"], args["audio"]
        args.update({k: v[1:] if v.startswith("=") else getattr(x, v) for k, v in kw.items()})
        return ["localize", *(a for k, v in args.items() for a in (f"--{k}", str(v)))]
    return argv


def _vid(video: str, *extra: str) -> Callable[[SimpleNamespace], list[str]]:
    """localize --video of a fixture video into the earlier overlay video, plus `extra` arguments."""
    return lambda x: ["localize", "--checkpoint", str(x.ckpt), "--video", str(getattr(x, video)), "--out",
                      str(x.prev_video / "overlay.mp4"), "--no-progress", "--device", "cpu", *extra]


def _train(*extra: str, root: str = "train_data") -> Callable[[SimpleNamespace], list[str]]:
    """sslsan train of the tiny config on `root` into a new run directory, plus `extra` arguments."""
    def argv(x: SimpleNamespace) -> list[str]:
        run = Path(tempfile.mkdtemp(dir=x.root)) / "run"
        return ["train", "--config", "synth_cpu", *TINY, "train.epochs=1", "train.max_steps_per_epoch=1",
                "--data-root", str(getattr(x, root)), "--run-dir", str(run), "--no-progress", *extra]
    return argv


def _name(attr: str) -> Callable[[SimpleNamespace], str]:
    return lambda x: Path(getattr(x, attr)).name


def _text(s: str) -> Callable[[SimpleNamespace], str]:
    return lambda x: s


CASES = [
    # evaluate: checkpoints
    Case("evaluate/checkpoint missing", _eval_ckpt("missing"), _text("nowhere"), "no such checkpoint file"),
    Case("evaluate/checkpoint empty", _eval_ckpt("empty"), _name("empty"), "empty file"),
    Case("evaluate/checkpoint is a folder", _eval_ckpt("folder"), _name("folder"), "is a folder, not a checkpoint file"),
    Case("evaluate/checkpoint is text", _eval_ckpt("text"), _name("text"), "not a PyTorch checkpoint"),
    Case("evaluate/checkpoint truncated", _eval_ckpt("cut_ckpt"), _name("cut_ckpt"), "checkpoint cut short"),
    # evaluate: data roots and manifests
    Case("evaluate/data root missing", _eval("missing"), _text("nowhere"), "no manifest for dataset"),
    Case("evaluate/data root is a file", _eval("text"), _name("text"), "no manifest for dataset"),
    Case("evaluate/manifest empty", _eval("empty_set"), _text("test_vggss.jsonl"), "test set is empty"),
    Case("evaluate/manifest bad JSON line", _eval("bad_json"), _text("test_vggss.jsonl:5"), "not valid JSON"),
    Case("evaluate/manifest NaN box", _eval("nan_box"), _text("test_vggss.jsonl:3: sample 'test_vggss_02'"),
         "NaN or infinite coordinate"),
    Case("evaluate/manifest missing field", _eval("missing_field"), _text("test_vggss.jsonl:2"), r"missing field.*audio"),
    Case("evaluate/manifest duplicate id", _eval("dup_id"), _text("test_vggss.jsonl:4"), "duplicate id"),
    Case("evaluate/audio missing", _eval("missing_audio"), _text("gone.wav"), "audio file not found"),
    Case("evaluate/audio truncated WAV", _eval("cut_audio"), _name("cut_wav"), "truncated WAV"),
    Case("evaluate/audio NaN samples", _eval("nan_audio"), _name("nan_wav"), "NaN or infinite samples"),
    Case("evaluate/image undecodable", _eval("bad_image"), _name("garbage_jpg"), "cannot decode image"),
    Case("evaluate/image decompression bomb", _eval("bomb_image"), _name("bomb"), "image too large to decode"),
    Case("evaluate/worker: truncated WAV", _eval("cut_audio", "--workers", "2"), _name("cut_wav"), "truncated WAV",
         process=True),
    # evaluate: values
    Case("evaluate/--batch-size 0", _eval("data", "--batch-size", "0"), _text("--batch-size"), "0: must be at least 1"),
    Case("evaluate/--repetitions -1", _eval("data", "--repetitions", "-1"), _text("--repetitions"), "must be at least 1"),
    Case("evaluate/--workers -2", _eval("data", "--workers", "-2"), _text("--workers"), "must be 0 or more"),
    Case("evaluate/--threshold 1.5", _eval("data", "--threshold", "1.5"), _text("threshold '1.5'"), r"number in \[0, 1\]"),
    Case("evaluate/--threshold high", _eval("data", "--threshold", "high"), _text("threshold 'high'"), "'auto', 'calibrate' or a number"),
    Case("evaluate/--device cuda without CUDA", _eval("data", "--device", "cuda"), _text("--device cuda"),
         "CUDA is not available", cuda=True),
    Case("evaluate/--device nonsense", _eval("data", "--device", "tpu9"), _text("--device tpu9"), "not a device"),
    Case("evaluate/--offscreen damaged", lambda x: _eval("data", "--offscreen", str(x.json_damaged))(x),
         _name("json_damaged"), "not a readable offscreen assignment"),
    Case("evaluate/--out is a file", lambda x: _eval("data")(x)[:-5] + ["--out", str(x.text), "--no-progress", "--device", "cpu"],
         _name("text"), "exists and is not a folder"),
    Case("evaluate/--out holds other files", lambda x: _eval("data")(x)[:-5] + ["--out", str(x.foreign), "--device", "cpu"],
         _name("foreign"), "did not write .thesis.tex."),
    Case("evaluate/--out below a file", lambda x: _eval("data")(x)[:-5] + ["--out", str(x.text / "sub"), "--device", "cpu"],
         _name("text"), "is a file, not a folder"),
    # score
    Case("score/maps missing", lambda x: ["score", str(x.root / "nope.npz")], _text("nope.npz"), "maps file not found"),
    Case("score/maps is text", lambda x: ["score", str(x.text)], _name("text"), "not an .npz file"),
    Case("score/maps is a folder", lambda x: ["score", str(x.folder)], _name("folder"), "is a folder, not a maps.npz file"),
    Case("score/maps hold NaN", lambda x: ["score", str(x.maps_nan), "--out", str(x.prev_score)], _name("maps_nan"),
         "pos_maps holds 1 NaN or infinite value"),
    Case("score/maps hold inf", lambda x: ["score", str(x.maps_inf)], _name("maps_inf"), "neg_maps_noise holds 294 NaN"),
    Case("score/GT outside [0, 1]", lambda x: ["score", str(x.maps_gt)], _name("maps_gt"), r"gt_maps holds \d+ value"),
    Case("score/threshold in file 1.5", lambda x: ["score", str(x.maps_thr)], _name("maps_thr"), r"threshold 1.5 is not in \[0, 1\]"),
    Case("score/--threshold 2", lambda x: ["score", str(x.maps), "--threshold", "2"], _text("--threshold"), r"2: must be a number in \[0, 1\]"),
    Case("score/--out is a folder", lambda x: ["score", str(x.maps), "--out", str(x.folder)], _name("folder"),
         "is a folder; give a file name"),
    Case("score/--markdown below a file", lambda x: ["score", str(x.maps), "--markdown", str(x.text / "r.md")], _name("text"),
         "is a file, not a folder"),
    Case("score/--out below a file", lambda x: ["score", str(x.maps), "--out", str(x.text / "m.json")], _name("text"),
         "is a file, not a folder"),
    # compare
    Case("compare/--out is a folder", lambda x: ["compare", str(x.maps_dir), "--out", str(x.folder)], _name("folder"),
         "is a folder; give a file name"),
    Case("compare/no metrics.json", lambda x: ["compare", str(x.folder)], _name("folder"), "no metrics.json"),
    Case("compare/damaged metrics.json", lambda x: ["compare", str(x.json_damaged)], _name("json_damaged"), "not valid JSON"),
    Case("compare/metrics.json is a list", lambda x: ["compare", str(x.json_list)], _name("json_list"),
         "not the metrics of an evaluation"),
    # localize
    Case("localize/image missing", _loc(image="=/nope/photo.jpg"), _text("photo.jpg"), "image file not found"),
    Case("localize/image empty", _loc(image="empty"), _name("empty"), "empty file"),
    Case("localize/image undecodable", _loc(image="garbage_jpg"), _name("garbage_jpg"), "cannot decode image"),
    Case("localize/image decompression bomb", _loc(image="bomb"), _name("bomb"), "image too large to decode"),
    Case("localize/audio is a folder", _loc(audio="folder"), _name("folder"), "is a folder, not an audio file"),
    Case("localize/audio is text", _loc(audio="text"), _name("text"), "cannot decode audio"),
    Case("localize/audio truncated WAV", _loc(audio="cut_wav"), _name("cut_wav"), "truncated WAV"),
    Case("localize/audio NaN samples", _loc(audio="nan_wav"), _name("nan_wav"), "NaN or infinite samples"),
    Case("localize/video is not a video", _loc(video="fake_mp4"), _name("fake_mp4"), "cannot decode video"),
    Case("localize/--time past the end", _loc(video="video", time="=5"), _name("video"), "--time 5 s is outside the video"),
    Case("localize/checkpoint truncated", _loc(checkpoint="cut_ckpt"), _name("cut_ckpt"), "checkpoint cut short"),
    Case("localize/--threshold -0.1", _loc(threshold="=-0.1"), _text("--threshold"), r"must be a number in \[0, 1\]"),
    Case("localize/--pairs not a folder", _loc(pairs="text"), _name("text"), "not a folder"),
    Case("localize/--device cuda without CUDA", _loc(device="=cuda"), _text("--device cuda"), "CUDA is not available", cuda=True),
    Case("localize video/no audio track", _vid("silent_video"), _name("silent_video"), "no audio track"),
    Case("localize video/an audio file", _vid("sound_only"), _name("sound_only"), "no video track"),
    Case("localize video/zero-length file", _vid("empty_video"), _name("empty_video"), "empty file"),
    Case("localize video/not a video", _vid("fake_mp4"), _name("fake_mp4"), "cannot decode video"),
    Case("localize video/cut, index first", _vid("cut_video_index_first"), _name("cut_video_index_first"),
         r"video data ends at \d+\.\d+ s, the track declares 4\.00 s: a cut file"),
    Case("localize video/cut, index last", _vid("cut_video_index_last"), _name("cut_video_index_last"),
         r"cannot decode video .*'mdat' box ends past the end of the file: a cut file"),
    Case("localize video/--fps 0", _vid("video", "--fps", "0"), _text("--fps"), "must be above 0"),
    Case("localize video/--size 640x", _vid("video", "--size", "640x"), _text("--size"), "give WIDTHxHEIGHT"),
    Case("localize video/--panels laughter", _vid("video", "--panels", "silence,laughter"), _text("--panels"),
         "'laughter' is not a panel"),
    Case("localize video/--out .webm", lambda x: _vid("video", "--out", str(x.root / "o.webm"))(x),
         _text("o.webm"), r"H\.264 \+ AAC in \.mp4, \.m4v, \.mov, \.mkv"),
    Case("localize video/--time with a video --out", _vid("video", "--time", "0.5"), _text("--time"),
         "picks one frame"),
    Case("localize video/--out video without --video", _loc(out="=o.mp4"), _text("--out"), "is a video file: give --video"),
    Case("localize/nothing to localize", lambda x: ["localize", "--checkpoint", str(x.ckpt)], _text("give"), "--image and --audio"),
    # train
    Case("train/train.epochs=0", _train("train.epochs=0"), _text("train.epochs=0"), "must be at least 1"),
    Case("train/train.batch_size=0", _train("train.batch_size=0"), _text("train.batch_size=0"), "must be at least 1"),
    Case("train/data.image_size=7", _train("data.image_size=7"), _text("data.image_size=7"), "smaller than the network's stride"),
    Case("train/optim.lr=0", _train("optim.lr=0"), _text("optim.lr=0"), "greater than 0"),
    Case("train/unknown key", _train("train.epoch=3"), _text("train.epoch"), ""),
    Case("train/--ablation unknown row", _train("--ablation", "s_x"), _text("--ablation"), "invalid choice: 's_x'"),
    Case("train/unknown backbone", _train("model.image_backbone=vit"), _text("model.image_backbone"),
         "unknown backbone 'vit'; registered: resnet18"),
    Case("train/config damaged YAML", lambda x: ["train", "--config", str(x.yaml_damaged)], _name("yaml_damaged"), ""),
    Case("train/config missing", lambda x: ["train", "--config", "no_such_config"], _text("no_such_config"), "not found"),
    Case("train/data root missing", _train(root="missing"), _text("nowhere"), "not found"),
    Case("train/--device cuda without CUDA", _train("--device", "cuda"), _text("--device cuda"), "CUDA is not available", cuda=True),
    Case("train/run dir is a file", lambda x: _train()(x) + ["--run-dir", str(x.text)], _name("text"), ""),
    Case("train/worker: truncated WAV", _train("data.num_workers=2", "data.cache_spectrograms=false", "data.val_manifest=null",
                                               "train.max_steps_per_epoch=null", root="train_cut"),  # every item is read
         _name("cut_wav"), "truncated WAV", process=True),
    Case("train/mel cache worker: truncated WAV", _train("data.cache_spectrograms=true", "data.cache_on_disk=false",
                                                         "data.val_manifest=null", root="train_cut"),
         _name("cut_wav"), "truncated WAV", process=True),
    # data synth
    Case("data synth/--out is a file", lambda x: ["data", "synth", "--out", str(x.text), "--preset", "tiny"], _name("text"),
         "not a folder"),
    Case("data synth/damaged dataset.json", lambda x: ["data", "synth", "--out", str(x.synth_damaged), "--preset", "tiny",
                                                       "--overwrite"], _text("dataset.json"), "damaged .not valid JSON"),
    Case("data synth/dataset.json is a list", lambda x: ["data", "synth", "--out", str(x.synth_list), "--preset", "tiny",
                                                         "--overwrite"], _name("synth_list"), "not written by"),
    Case("data synth/--workers 0", lambda x: ["data", "synth", "--out", str(x.root / "s"), "--workers", "0"],
         _text("--workers"), "must be at least 1"),
    Case("data synth/--image-size 8", lambda x: ["data", "synth", "--out", str(x.root / "s"), "--image-size", "8"],
         _text("image_size"), ""),
    # data show / overlap
    Case("data show/folder missing", lambda x: ["data", "show", str(x.root / "nowhere")], _text("nowhere"), "no such folder"),
    Case("data show/mask undecodable", lambda x: ["data", "show", str(x.bad_mask), "--out", str(x.root / "c.png")],
         _name("mask_garbage"), "cannot decode image"),
    Case("data show/manifest bad JSON line", lambda x: ["data", "show", str(x.bad_json)], _text("test_vggss.jsonl:5"),
         "not valid JSON"),
    Case("data show/--out is a folder", lambda x: ["data", "show", str(x.data), "--n", "1", "--out", str(x.folder)],
         _name("folder"), "is a folder; give a file name"),
    Case("data show/--n 0", lambda x: ["data", "show", str(x.data), "--n", "0"], _text("--n"), "must be at least 1"),
    Case("data overlap/test manifest missing", lambda x: ["data", "overlap", str(x.data / "test_vggss.jsonl"),
                                                          str(x.root / "t.jsonl")], _text("t.jsonl"), "manifest not found"),
    Case("data overlap/train manifest NaN box", lambda x: ["data", "overlap", str(x.nan_box / "test_vggss.jsonl"),
                                                           str(x.data / "test_vggss.jsonl")], _text("test_vggss.jsonl:3"),
         "NaN"),
    # prepare
    Case("prepare/vggss root missing", lambda x: ["prepare", "vggss", "--root", str(x.root / "nope"), "--out",
                                                  str(x.root / "o")], _text("nope"), "not found"),
    Case("prepare/vggss damaged annotations", lambda x: ["prepare", "vggss", "--root", str(x.vggss_root), "--out",
                                                         str(x.root / "o")], _text("vggss.json"), "not valid JSON"),
    Case("prepare/vggss --extended list missing", lambda x: ["prepare", "vggss", "--root", str(x.vggss_root), "--out",
                                                             str(x.root / "o"), "--extended", str(x.root / "plus.csv")],
         _text("plus.csv"), "extended list not found"),
    Case("prepare/flickr root missing", lambda x: ["prepare", "flickr", "--root", str(x.root / "nope"), "--out",
                                                   str(x.root / "o")], _text("nope"), "not found"),
    Case("prepare/flickr no annotation folder", lambda x: ["prepare", "flickr", "--root", str(x.folder), "--out",
                                                           str(x.root / "o")], _text("Annotations"), "no annotation folder"),
    Case("prepare/is3 root is a file", lambda x: ["prepare", "is3", "--root", str(x.text), "--out", str(x.root / "o")],
         _name("text"), "not found"),
    Case("prepare/s4 root missing", lambda x: ["prepare", "s4", "--root", str(x.root / "nope"), "--out", str(x.root / "o")],
         _text("nope"), "not found"),
    Case("prepare/vggsound videos missing", lambda x: ["prepare", "vggsound", "--videos", str(x.root / "nope"), "--out",
                                                       str(x.root / "o")], _text("nope"), "not found"),
    Case("prepare/vggsound --workers 0", lambda x: ["prepare", "vggsound", "--videos", str(x.folder), "--out",
                                                    str(x.root / "o"), "--workers", "0"], _text("--workers"), "must be at least 1"),
    # serve (every row fails before a socket is opened)
    Case("serve/no checkpoint", lambda x: ["serve", "--demo", str(x.root / "nowhere")], _text("best.pt"),
         "no checkpoint; give --checkpoint"),
    Case("serve/checkpoint truncated", lambda x: ["serve", "--checkpoint", str(x.cut_ckpt), "--device", "cpu"],
         _name("cut_ckpt"), "checkpoint cut short"),
    Case("serve/--threshold 1.5", lambda x: ["serve", "--checkpoint", str(x.ckpt), "--threshold", "1.5"],
         _text("--threshold"), r"must be a number in \[0, 1\]"),
    Case("serve/--device cuda without CUDA", lambda x: ["serve", "--checkpoint", str(x.ckpt), "--device", "cuda"],
         _text("--device cuda"), "CUDA is not available", cuda=True),
    Case("serve/examples manifest damaged", lambda x: ["serve", "--checkpoint", str(x.ckpt), "--device", "cpu",
                                                      "--examples", str(x.bad_json)], _text("test_vggss.jsonl:5"),
         "not valid JSON"),
    # demo and the dispatcher
    Case("demo/--repetitions 0", lambda x: ["demo", "--repetitions", "0"], _text("--repetitions"), "must be at least 1"),
    Case("demo/--preset unknown", lambda x: ["demo", "--preset", "huge"], _text("--preset"), "invalid choice: 'huge'"),
    Case("demo/unknown override", lambda x: ["demo", "--out", str(x.root / "d"), "train.epoch=1"], _text("train.epoch"),
         "unknown key"),
    Case("demo/--device nonsense", lambda x: ["demo", "--out", str(x.root / "d"), "--device", "tpu9"],
         _text("--device tpu9"), "not a device"),
    Case("demo/--out is a file", lambda x: ["demo", "--out", str(x.text), "--device", "cpu"], _name("text"),
         "is a file, not a folder"),
    Case("dispatcher/unknown command", lambda x: ["frobnicate"], _text("'frobnicate'"), "unknown command"),
    Case("dispatcher/group without a command", lambda x: ["data"], _text("data"), "choose one of"),
]


def _env() -> dict[str, str]:
    """Environment of a `python -m sslsan` child: this checkout's sources, one thread."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}


EARLIER_OUTPUTS = ("prev_eval", "foreign", "prev_loc", "prev_video", "prev_score", "synth_damaged", "synth_list", "data")


def _snapshot(*paths: Path) -> dict[str, str]:
    """Every file under `paths` with the sha256 of its bytes (folders as "dir")."""
    out = {}
    for path in paths:
        for p in [path] if path.is_file() else sorted(path.rglob("*")):
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_line_error(case: Case, w, capsys):
    if case.cuda and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    x = w
    argv = case.argv(x)
    before = _snapshot(*(getattr(x, name) for name in EARLIER_OUTPUTS))
    capsys.readouterr()
    if case.process:
        done = subprocess.run([sys.executable, "-m", "sslsan", *argv], env=_env(), capture_output=True, text=True,
                              timeout=300)
        rc, err = done.returncode, done.stderr
    else:
        try:
            rc = sslsan(argv)
        except SystemExit as exc:  # argparse rejects the value itself (exit status 2, one line: CommandParser)
            rc = exc.code
        err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == case.code, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert re.match(r"^sslsan( [a-z]+)*: error: ", lines[0]), lines[0]
    needle = case.needle(x)
    assert needle in lines[0], (needle, lines[0])
    assert re.search(case.what, lines[0].split(needle, 1)[1]), (case.what, lines[0])
    assert _snapshot(*(getattr(x, name) for name in EARLIER_OUTPUTS)) == before, "an earlier output was changed"


# ---------------------------------------------------------------------------------- beyond one line


def test_user_error_messages():
    """OS errors name their file; errors re-raised from DataLoader workers give the worker's own message."""
    from sslsan.cli import user_error_message

    assert user_error_message(PermissionError(13, "Permission denied", "/data/out")) == "/data/out: permission denied"
    assert user_error_message(OSError(30, "Read-only file system", "/mnt/ro/x")) == "/mnt/ro/x: read-only file system"
    wrapped = ("Caught AudioError in DataLoader worker process 1.\nOriginal Traceback (most recent call last):\n"
               '  File "x.py", line 3, in f\n    raise AudioError(msg)\n'
               "sslsan.media.AudioError: /data/a.wav: truncated WAV: the header declares 9 bytes\n")
    assert user_error_message(ValueError(wrapped)) == "/data/a.wav: truncated WAV: the header declares 9 bytes"
    assert user_error_message(KeyError("bug")) is None and user_error_message(TypeError("bug")) is None


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder no file can be created in: chmod 555, or for root (whom permissions do not bind) /sys/kernel."""
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        yield ro
        ro.chmod(0o755)
    elif Path("/sys/kernel").is_dir():
        yield Path("/sys/kernel")
    else:
        pytest.skip("running as root without /sys: no folder refuses writes")


def test_read_only_output_folder(w, read_only_folder, capsys):
    ro = read_only_folder
    for argv in (["score", str(w.maps), "--out", str(ro / "m.json")],
                 ["evaluate", "--checkpoint", str(w.ckpt), "--dataset", "synth-vggss", "--data-root", str(w.data),
                  "--out", str(ro / "eval"), "--no-progress", "--device", "cpu"],
                 ["localize", "--checkpoint", str(w.ckpt), "--image", str(w.image), "--audio", str(w.good_wav),
                  "--out", str(ro / "loc"), "--device", "cpu"],
                 ["data", "synth", "--out", str(ro / "synth"), "--preset", "tiny"]):
        assert sslsan(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "Traceback" not in err and str(ro) in err, err
        assert re.search("permission denied|operation not permitted|not permitted|Permission denied", err), err


def test_localize_pairs_skips_and_counts_bad_pairs(w, tmp_path, capsys):
    pairs, out = tmp_path / "pairs", tmp_path / "out"
    pairs.mkdir()
    for stem, image, audio in (("good", w.image, w.good_wav), ("cut", w.image, w.cut_wav), ("junk", w.garbage_jpg, w.good_wav)):
        shutil.copy(image, pairs / f"{stem}{image.suffix}")
        shutil.copy(audio, pairs / f"{stem}.wav")
    argv = ["localize", "--checkpoint", str(w.ckpt), "--pairs", str(pairs), "--out", str(out), "--device", "cpu"]
    assert sslsan(argv) == 0
    assert [r["stem"] for r in json.loads((out / "localize.json").read_text())] == ["good"]
    skipped = {s["stem"]: s["error"] for s in map(json.loads, (out / "skipped.jsonl").read_text().splitlines())}
    assert set(skipped) == {"cut", "junk"} and "truncated WAV" in skipped["cut"] and "cannot decode image" in skipped["junk"]
    err = capsys.readouterr().err
    assert "1 localized, 2 skipped" in err and "Traceback" not in err
    for f in pairs.glob("good.*"):
        f.unlink()
    assert sslsan(argv) == 2  # nothing could be localized: an error, and the summary is still written
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sslsan localize: error: ") and "no pair could be localized (2 skipped" in err[-1]
    assert json.loads((out / "localize.json").read_text()) == [] and len((out / "skipped.jsonl").read_text().splitlines()) == 2


def test_short_clip_warns_naming_the_file(w, tmp_path, capsys):
    argv = ["localize", "--checkpoint", str(w.ckpt), "--image", str(w.image), "--audio", str(w.short_wav),
            "--out", str(tmp_path / "o"), "--device", "cpu"]
    assert sslsan(argv) == 0
    warns = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warns) == 1 and warns[0].startswith("sslsan localize: warning: ") and str(w.short_wav) in warns[0]
    assert "0.01 s long; tiling repeats it 100 times" in warns[0]


def test_evaluate_counts_box_fixes_and_replaces_an_earlier_evaluation_whole(w, tmp_path, capsys):
    """Boxes outside the image are clipped and inverted ones add nothing, counted in metrics.json and the
    report; an earlier evaluation in --out is replaced as a whole (no stale file survives)."""
    def boxes(rows: list[dict]) -> None:
        rows[0]["boxes"] = [[-0.2, 0.1, 0.5, 1.3]]
        rows[2]["boxes"] = [[0.6, 0.2, 0.4, 0.5], [0.1, 0.1, 0.3, 0.3]]

    data = _variant(w.data, tmp_path / "data", boxes)
    out = tmp_path / "eval"
    out.mkdir()
    (out / "fig2_stale.png").write_text("an earlier run")
    (out / "metrics.json").write_text("{}")
    argv = ["evaluate", "--checkpoint", str(w.ckpt), "--dataset", "synth-vggss", "--data-root", str(data), "--out",
            str(out), "--repetitions", "1", "--figure-examples", "1", "--no-progress", "--device", "cpu"]
    assert sslsan(argv) == 0
    err = capsys.readouterr().err
    assert "sslsan evaluate: warning: " in err and "1 clipped to image, 1 inverted" in err
    m = json.loads((out / "metrics.json").read_text())
    assert m["gt_box_fixes"] == {"clipped_to_image": 1, "inverted": 1}
    assert "1 box(es) clipped to image, 1 box(es) inverted" in (out / "report.md").read_text()
    assert not (out / "fig2_stale.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "eval"]  # no staging folder left


def test_prepare_counts_a_truncated_wav_as_a_skip(tmp_path, capsys):
    from test_prepare_testsets import IS3, _is3_root

    root = _is3_root(tmp_path)
    stem = next(iter(IS3))
    wav = root / "audio_wav" / f"{stem}.wav"
    wav.write_bytes(wav.read_bytes()[:5000])
    assert sslsan(["prepare", "is3", "--root", str(root), "--out", str(tmp_path / "o")]) == 0
    skipped = {r["id"]: r for r in map(json.loads, (tmp_path / "o" / "skipped.jsonl").read_text().splitlines())}
    assert skipped[stem]["reason"] == "truncated" and "header declares" in skipped[stem]["detail"]
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["skipped_by_reason"]["truncated"] == 1


# ------------------------------------------------------------------------------------------ kill -9


def _run_until(argv: list[str], ready: Callable[[], bool], timeout: float = 120.0) -> subprocess.Popen:
    """Start `python -m sslsan ARGV`, wait until `ready()`, kill it with SIGKILL; returns the dead process."""
    proc = subprocess.Popen([sys.executable, "-m", "sslsan", *argv], env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"finished before it could be killed: {argv}"
        assert time.monotonic() < deadline, f"not ready after {timeout} s: {argv}"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc


@pytest.mark.slow
def test_kill9_train_then_resume_is_bit_identical(w, tmp_path):
    from sslsan.models import read_checkpoint

    argv = ["train", "--config", "synth_cpu", *TINY, "train.epochs=6", "data.val_manifest=null",
            "--data-root", str(w.train_data), "--no-progress", "--device", "cpu"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert sslsan([*argv, "--run-dir", str(whole)]) == 0
    latest = cut / "checkpoints" / "latest.pt"
    _run_until([*argv, "--run-dir", str(cut)], latest.exists)
    assert read_checkpoint(latest)["epoch"] < 6  # killed mid-run; the checkpoint it left is whole
    assert sslsan(["train", "--run-dir", str(cut), "--resume", "--no-progress", "--device", "cpu"]) == 0
    a, b = read_checkpoint(whole / "checkpoints" / "latest.pt"), read_checkpoint(latest)
    assert a["epoch"] == b["epoch"] == 6
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


@pytest.mark.slow
def test_kill9_evaluate_leaves_the_earlier_evaluation(w, tmp_path):
    out = tmp_path / "eval"
    argv = ["evaluate", "--checkpoint", str(w.ckpt), "--dataset", "synth-vggss", "--data-root", str(w.data),
            "--out", str(out), "--figure-examples", "0", "--no-progress", "--device", "cpu"]
    assert sslsan([*argv, "--repetitions", "1"]) == 0
    before = _snapshot(out)
    staging = tmp_path / ".eval.partial"
    _run_until([*argv, "--repetitions", "200"], lambda: (staging / "offscreen.json").exists())
    assert _snapshot(out) == before  # the earlier run, whole; nothing of the killed one
    assert sslsan([*argv, "--repetitions", "2"]) == 0
    assert json.loads((out / "metrics.json").read_text())["repetitions"] == 2 and not staging.exists()


@pytest.mark.slow
def test_kill9_data_synth_then_overwrite(tmp_path):
    argv = ["data", "synth", "--preset", "tiny", "--n-train", "400", "--image-size", "48", "--workers", "1", "--no-progress"]
    clean, cut = tmp_path / "clean", tmp_path / "cut"
    assert sslsan([*argv, "--out", str(clean)]) == 0
    _run_until([*argv, "--out", str(cut)], lambda: (cut / "train" / "images" / "000020.jpg").exists())
    assert json.loads((cut / "dataset.json").read_text())["complete"] is False and not (cut / "train.jsonl").exists()
    assert sslsan([*argv, "--out", str(cut), "--overwrite"]) == 0
    assert _snapshot(clean).keys() == {k.replace(str(cut), str(clean)) for k in _snapshot(cut)}
    assert list(_snapshot(clean).values()) == list(_snapshot(cut).values())  # byte-identical to a clean run


@pytest.mark.slow
def test_kill9_prepare_then_resume(tmp_path):
    videos = tmp_path / "videos"
    for k in range(8):
        write_video(videos / f"{'ABCDEFGH'[k] * 11}_{k:06d}.mp4", seconds=4.0, width=64, height=48)
    argv = ["prepare", "vggsound", "--videos", str(videos), "--workers", "1", "--val-fraction", "0.25", "--no-progress"]
    clean, cut = tmp_path / "clean", tmp_path / "cut"
    assert sslsan([*argv, "--out", str(clean)]) == 0
    progress = cut / "progress.jsonl"
    _run_until([*argv, "--out", str(cut)], lambda: progress.exists() and progress.read_text().count("\n") >= 2)
    assert not (cut / "train.jsonl").exists()
    assert sslsan([*argv, "--out", str(cut)]) == 0
    for name in ("train.jsonl", "val.jsonl"):
        assert (cut / name).read_text() == (clean / name).read_text()
    for f in (clean / "audio").iterdir():
        assert (cut / "audio" / f.name).read_bytes() == f.read_bytes()
