"""`sslsan localize --video IN --out OUT.mp4`: the overlay video of every frame (sslsan.evaluation.video).

The parts against slow, obviously correct references (the Fig. 2 colouring, the frame-rate rule, the
streamed sound, the batched maps against `media_maps` of one frame and its window), then the command
end to end on time-coded MP4s (tests/synthetic_media.py) with an untrained tiny model, and inputs that
are odd but valid (variable frame rate, odd sizes, a phone's rotation). Bad inputs are rows of the
fault suite (tests/test_faults.py). With a trained SSL-SaN model: test_video_hears_when_the_object_sounds
(slow).
"""

from __future__ import annotations

import argparse
import json
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from conftest import TINY_AUDIO, command, tiny_localizer
from synthetic_media import audio_amplitude, read_frame_index, write_video

from sslsan.audio import AudioConfig

localize = command("localize")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """An untrained tiny model (1 s clips, 64 px) whose universal threshold lies inside its maps' range."""
    from sslsan.methods.checkpoint import save_checkpoint

    tiny = tiny_localizer(threshold=0.45)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt", tiny.model, tiny.spec)


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ------------------------------------------------------------------------------------- the parts


def test_overlay_frames_is_the_fig2_rule():
    """Every pixel against matplotlib's jet of `thresholded`, blended at alpha 0.5 where above U_th."""
    import matplotlib

    from sslsan.evaluation.figures import overlay_frames, thresholded
    from sslsan.metrics import upsample

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 40, 60, 3), dtype=np.uint8)
    maps = rng.random((3, 6, 6)).astype(np.float32)
    maps[2] = 0.1  # everything below the threshold: the frame unchanged
    out = overlay_frames(frames, maps, 0.5)
    for b in range(3):
        heat = thresholded(upsample(maps[b], (40, 60)), 0.5)
        jet = matplotlib.colormaps["jet"](heat)[..., :3] * 255
        want = np.where((heat > 0)[..., None], 0.5 * jet + 0.5 * frames[b], frames[b])
        assert np.abs(out[b].astype(float) - want).max() <= 1.0
    assert np.array_equal(out[2], frames[2]) and not np.array_equal(out[0], frames[0])
    many = rng.random((4, 5, 7))
    assert np.array_equal(thresholded(many, 0.3), np.stack([thresholded(m, 0.3) for m in many]))
    assert np.array_equal(thresholded(many, None), np.stack([thresholded(m, None) for m in many]))


def _shown_reference(times: list[float], durations, fps: float, n: int) -> list[int]:
    """Slow reading of the rule: output frame k shows the last input frame starting at or before k / fps."""
    out = []
    for k in range(n):
        t = k / fps
        starts = [i for i, s in enumerate(times) if s <= t + 1e-9]
        out.append(max(starts, key=lambda i: (times[i], i)) if starts else 0)
    return out


@pytest.mark.parametrize("times,fps", [
    ([i * 0.04 for i in range(10)], 25),  # constant rate, same output rate: one to one
    ([i * 0.04 for i in range(10)], 10),  # fewer output frames
    ([0.0, 0.1, 0.15, 0.4, 0.42, 0.9, 1.3], 10),  # variable rate
    ([0.2, 0.3, 0.3, 0.5], 20),  # late first frame, a repeated timestamp
])
def test_frames_at_rate(times, fps):
    from sslsan.evaluation.video import frames_at_rate
    from sslsan.media import DecodedFrame

    frames = [DecodedFrame(t, None, np.full((1, 1, 3), i, np.uint8)) for i, t in enumerate(times)]
    got = list(frames_at_rate(frames, Fraction(fps)))
    end = times[-1] + 1 / fps  # no duration given: the last frame lasts one output period
    assert [k for k, _ in got] == list(range(math.ceil(end * fps - 1e-6)))
    shown = [int(f.image[0, 0, 0]) for _, f in got]
    want = _shown_reference(times, None, fps, len(got))
    assert [times[i] for i in shown] == [times[i] for i in want]


def test_output_size_rate_and_size_option():
    from sslsan.commands.localize import frame_size
    from sslsan.evaluation.video import output_rate, output_size

    assert output_size(640, 360) == (640, 360)
    assert output_size(127, 95) == (126, 94)  # yuv420p: even sizes
    assert output_size(3840, 2160) == (1280, 720)  # the default cap
    assert output_size(1080, 1920) == (720, 1280)  # a portrait phone video
    assert output_size(1920, 1080, 480) == (480, 270) and output_size(100, 50, (321, 99)) == (320, 98)
    assert output_size(100, 50, 400) == (400, 200)  # an explicit size may enlarge
    assert output_rate(Fraction(30000, 1001)) == Fraction(30000, 1001) and output_rate(Fraction(60)) == 30
    assert output_rate(None) == 25 and output_rate(Fraction(25), 12.5) == Fraction(25, 2)
    with pytest.raises(ValueError, match="at most 120"):
        output_rate(Fraction(25), 500)
    assert frame_size("640x360") == (640, 360) and frame_size("480") == 480
    for bad in ("640x", "wide", "1x1", "9000"):
        with pytest.raises(argparse.ArgumentTypeError, match="WIDTHxHEIGHT"):
            frame_size(bad)


def test_command_constants_match_the_library():
    """The command names the containers and panels without importing the library (its --help stays fast)."""
    from sslsan.commands import localize as cmd
    from sslsan.evaluation.video import PANELS
    from sslsan.media import VIDEO_EXTENSIONS, VideoWriter

    assert cmd.VIDEO_SUFFIXES == tuple(VideoWriter.CONTAINERS) and cmd.PANELS == PANELS
    assert cmd.VIDEO_EXTENSIONS == VIDEO_EXTENSIONS


def test_audio_reader_streams_what_load_audio_reads(tmp_path):
    """Windows taken while the track streams hold load_audio's samples (up to the track's declared end:
    load_audio also keeps the encoder's padding after it), and the buffer stays bounded."""
    from sslsan.audio import place_window
    from sslsan.evaluation.video import audio_windows
    from sslsan.media import AudioReader, load_audio

    video = write_video(tmp_path / "long.mp4", seconds=12.0, width=64, height=64, fps=10)
    cfg = AudioConfig(**TINY_AUDIO)
    whole = load_audio(video, cfg.sample_rate).numpy()
    copied = []
    reader = AudioReader(video, cfg.sample_rate, on_frame=lambda f: copied.append(f.samples))
    held = []
    try:
        times = [k / 10 for k in range(120)]
        for b in range(0, 120, 8):
            windows, counts = audio_windows(reader, times[b:b + 8], cfg)
            held.append(reader.held)
            for row, t in enumerate(times[b:b + 8]):
                i0 = round((t - cfg.clip_seconds / 2 - reader.first) * cfg.sample_rate)
                want = whole[max(0, i0):min(12 * cfg.sample_rate, max(0, i0 + cfg.clip_samples))]
                assert int(counts[row]) == len(want)
                if i0 + cfg.clip_samples <= 12 * cfg.sample_rate - 32:  # away from the resampler's tail
                    np.testing.assert_allclose(windows[row].numpy(), place_window(torch.from_numpy(want), cfg).numpy(),
                                               atol=1e-6)
        assert reader.end == 12 * cfg.sample_rate < len(whole)
        reader.finish()
    finally:
        reader.close()
    assert abs(reader.first) < 1e-3
    assert sum(copied) == 12 * 44100  # every decoded frame went to on_frame, up to the declared end
    span = (cfg.clip_seconds + 8 / 10 + 0.5 + 0.1) * cfg.sample_rate  # a window, a batch, a decoding chunk
    assert max(held) <= span, (max(held), span)  # bounded: not the 12 s track


# ------------------------------------------------------------------------------------ the command


def test_video_command_end_to_end(ckpt, tmp_path, capsys):
    """Every frame, its time, its sound, and maps equal to one frame and its window localized alone."""
    from sslsan.audio import place_window
    from sslsan.evaluation.inference import media_maps, negative_embeddings
    from sslsan.media import load_audio, video_frame
    from sslsan.methods.checkpoint import load_model

    video = write_video(tmp_path / "in.mp4", seconds=3.0, width=128, height=96)  # 75 frames
    out = tmp_path / "res" / "overlay.mp4"
    assert localize(["--checkpoint", str(ckpt), "--video", str(video), "--out", str(out), "--panels", "silence,noise",
                     "--batch-size", "16", "--device", "cpu"]) == 0
    printed = capsys.readouterr()
    assert f"{out}: 75 frames, 3.00 s at 25 fps, 128 x 96" in printed.out and "frame/s" in printed.err
    assert sorted(p.name for p in out.parent.iterdir()) == ["overlay.frames.jsonl", "overlay.mp4"]
    with av.open(str(out)) as c, av.open(str(video)) as src:
        assert [s.codec_context.name for s in c.streams] == ["h264", "aac"]
        v = c.streams.video[0]
        assert (v.width, v.height, v.average_rate) == (3 * 128, 96, 25)
        assert abs(c.duration - src.duration) / 1e6 <= 1 / 25  # the input's duration within one frame
    rows = _rows(tmp_path / "res" / "overlay.frames.jsonl")
    head, frames, tail = rows[0], rows[1:-1], rows[-1]
    assert head["kind"] == "video" and head["maps"] == ["positive", "silence", "noise"] and head["threshold"] == 0.45
    assert tail == {"kind": "summary", "frames": 75, "seconds": 3.0, "output": str(out),
                    "above_threshold_frames": sum(r["above_threshold"] for r in frames),
                    "frames_file": str(tmp_path / "res" / "overlay.frames.jsonl")}
    assert [r["frame"] for r in frames] == list(range(75)) and len(_frames(out)) == 75
    assert all(r["time"] == pytest.approx(r["frame"] / 25) == pytest.approx(r["source_time"]) for r in frames)
    assert [r["audio_seconds"] for r in frames[:3]] == [0.5, 0.54, 0.58]  # the 1 s window, cut at the start
    assert all(0 <= r["pia"] <= 1 and r["above_threshold"] == (r["map_max"] > np.float32(0.45)) for r in frames)
    # the batched maps are those of one frame and its window, localized alone
    localizer = load_model(ckpt)
    cfg = localizer.spec.audio
    wave = load_audio(video, cfg.sample_rate)[: 3 * cfg.sample_rate]  # the track, to its declared end
    negatives = negative_embeddings(localizer)
    for r in (frames[0], frames[37], frames[74]):
        t = r["time"]
        frame, shown = video_frame(video, at=t + 0.02)
        i0 = round((t - cfg.clip_seconds / 2) * cfg.sample_rate)
        window = place_window(wave[max(0, i0):i0 + cfg.clip_samples], cfg)  # as every test clip
        ref = media_maps(localizer, frame, window, negatives=negatives)
        assert shown == pytest.approx(r["source_time"])
        for name in ("positive", "silence", "noise"):
            key = "map_max" if name == "positive" else f"{name}_max"
            assert r[key] == pytest.approx(float(ref[name].max()), abs=1e-5), (t, name)


def test_video_keeps_each_frame_and_the_sound_in_time(ckpt, tmp_path):
    """Output frame k shows input frame k (its time code), and the sound is the input's at the same time."""
    video = write_video(tmp_path / "in.mp4", seconds=2.0, width=128, height=96, sample_rate=48000)
    out = tmp_path / "o.mp4"
    assert localize(["--checkpoint", str(ckpt), "--video", str(video), "--out", str(out), "--threshold", "1",
                     "--no-progress", "--device", "cpu"]) == 0  # threshold 1: no colour over the time code
    assert [read_frame_index(f) for f in _frames(out)] == list(range(50))
    with av.open(str(out)) as c:
        stream = c.streams.audio[0]
        assert stream.rate == 48000
        sound = np.concatenate([f.to_ndarray()[0] for f in c.decode(stream)])
    for t in (0.3, 1.0, 1.7):  # the amplitude ramp a(t) of the input, at the same times
        part = sound[int((t - 0.05) * 48000):int((t + 0.05) * 48000)]
        assert np.sqrt(2 * np.mean(part ** 2)) == pytest.approx(audio_amplitude(t), rel=0.05), t


def test_sound_starts_when_it_starts(ckpt, tmp_path):
    """A sound starting at 1 s starts at 1 s in the output too (the AAC encoder's priming is skipped)."""
    sr = 48000

    def onset(path: Path) -> float:
        with av.open(str(path)) as c:
            frames = list(c.decode(c.streams.audio[0]))
        sound = np.concatenate([f.to_ndarray()[0] for f in frames])
        return float(frames[0].time) + int(np.argmax(np.abs(sound) > 0.05)) / sr

    video = write_video(tmp_path / "in.mp4", seconds=2.0, width=64, height=64, sample_rate=sr,
                        sound=lambda t: np.where(t >= 1.0, 0.5 * np.sin(2 * np.pi * 440 * t), 0.0))
    assert localize(["--checkpoint", str(ckpt), "--video", str(video), "--out", str(tmp_path / "o.mp4"),
                     "--no-progress", "--device", "cpu"]) == 0
    assert onset(video) == pytest.approx(1.0, abs=2e-4) and onset(tmp_path / "o.mp4") == pytest.approx(onset(video), abs=1e-3)


def test_variable_frame_rate_becomes_constant(ckpt, tmp_path):
    times = [0.0, 0.1, 0.15, 0.4, 0.42, 0.9, 1.3]
    video = write_video(tmp_path / "vfr.mp4", seconds=1.4, frame_times=times)
    out = tmp_path / "o.mp4"
    assert localize(["--checkpoint", str(ckpt), "--video", str(video), "--out", str(out), "--fps", "10",
                     "--threshold", "1", "--no-progress", "--device", "cpu"]) == 0
    frames = _frames(out)
    end = 1.3 + 0.1  # the last frame lasts until the track ends
    assert len(frames) == round(end * 10)
    want = _shown_reference(times, None, 10, len(frames))
    assert [read_frame_index(f) for f in frames] == want
    assert [r["source_time"] for r in _rows(tmp_path / "o.frames.jsonl")[1:-1]] == [times[i] for i in want]


def test_odd_size_input(ckpt, tmp_path):
    video = write_video(tmp_path / "odd.mp4", seconds=1.0, width=127, height=95, pix_fmt="yuv444p")
    out = tmp_path / "o.mp4"
    assert localize(["--checkpoint", str(ckpt), "--video", str(video), "--out", str(out), "--no-progress",
                     "--device", "cpu"]) == 0
    with av.open(str(out)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height, c.streams.video[0].frames) == (126, 94, 25)


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotated_phone_video_comes_out_upright(ckpt, tmp_path, rotation):
    """A display matrix (a phone's rotation metadata) is applied: the output is upright and has no matrix."""
    marker = np.full((48, 64, 3), 40, np.uint8)
    marker[:16, :20] = (255, 0, 0)  # a red top left corner in the stored frame
    video = write_video(tmp_path / "phone.mp4", seconds=0.5, width=64, height=48, rotation=rotation,
                        frames=lambda k: marker)
    out = tmp_path / "o.mp4"
    assert localize(["--checkpoint", str(ckpt), "--video", str(video), "--out", str(out), "--threshold", "1",
                     "--no-progress", "--device", "cpu"]) == 0
    first = _frames(out)[0]
    upright = np.rot90(marker, rotation // 90)  # counterclockwise, as the display matrix says
    assert first.shape == upright.shape

    def red_corner(image) -> tuple[int, int]:  # (row, column) half holding the most red: the label cannot move it
        red = (image[..., 0] > 150) & (image[..., 1] < 100)
        h, w = red.shape
        return int(red[h // 2:].sum() > red[:h // 2].sum()), int(red[:, w // 2:].sum() > red[:, :w // 2].sum())

    assert red_corner(first) == red_corner(upright)
    with av.open(str(out)) as c:
        assert next(iter(c.decode(video=0))).rotation == 0
    head = _rows(tmp_path / "o.frames.jsonl")[0]
    assert head["source"]["rotation"] == rotation % 360 and (head["width"], head["height"]) == upright.shape[1::-1]


# ------------------------------------------------------------------------- with the demo's model


SOUNDING = (5.0, 10.0)  # seconds of the test video in which the object sounds; silence elsewhere
VIDEO_SECONDS = 14.0


@pytest.mark.slow
def test_video_hears_when_the_object_sounds(tmp_path_factory):
    """The demo's SSL-SaN model (trained here as `sslsan demo` trains it, ~5 min on 2 cores; or taken from
    SSLSAN_DEMO_OUT, a finished demo folder) on a video of a scene of the embedded benchmark whose object
    sounds only from 5 to 10 s: each frame whose 3 s window lies inside those seconds is above U_th with
    its peak on the object; each frame whose window is silent is below U_th; silence and noise panels stay
    below everywhere. The first test scene the model hears and localizes from its own clip is used (the
    test is about the video carrying the sound's timing, not about the model's accuracy)."""
    import os

    from sslsan.data.manifest import read_manifest
    from sslsan.demo import DemoOptions, prepare_data, train_variant, variants_of
    from sslsan.engine.run import checkpoint_paths
    from sslsan.evaluation.inference import localize_files
    from sslsan.media import load_audio, load_image
    from sslsan.methods.checkpoint import load_model

    opts = DemoOptions(out=Path(os.environ.get("SSLSAN_DEMO_OUT") or tmp_path_factory.mktemp("demo")), progress=False)
    data = prepare_data(opts)
    san = next(v for v in variants_of(opts) if v.name == "ssl_san")
    ckpt = checkpoint_paths(train_variant(san, 0, data, opts, "cpu"))[1]
    localizer = load_model(ckpt)
    thr, sr = localizer.spec.universal_threshold, localizer.spec.audio.sample_rate
    assert thr is not None and localizer.spec.audio.clip_seconds == 3.0
    manifest = read_manifest(data / "test_vggss.jsonl")

    def heard_on_object(sample) -> bool:
        m = localize_files(localizer, manifest.resolve(sample.image), manifest.resolve(sample.audio))
        y, x = np.unravel_index(int(np.argmax(m)), m.shape)
        x0, y0, x1, y1 = sample.boxes[0]
        return m.max() > np.float32(thr) and x0 <= (x + 0.5) / m.shape[1] <= x1 and y0 <= (y + 0.5) / m.shape[0] <= y1

    scene = next(s for s in list(manifest)[:30] if s.boxes and heard_on_object(s))
    image = load_image(manifest.resolve(scene.image)).permute(1, 2, 0).numpy()
    clip = load_audio(manifest.resolve(scene.audio), sr).numpy()
    track = np.zeros(int(VIDEO_SECONDS * sr), np.float32)
    a, b = (int(s * sr) for s in SOUNDING)
    track[a:b] = np.tile(clip, 2)[: b - a]  # the scene's own sound, then silence
    root = tmp_path_factory.mktemp("video")
    video = write_video(root / f"{scene.id}.mp4", seconds=VIDEO_SECONDS, width=image.shape[1], height=image.shape[0],
                        frames=lambda k: image, sound=lambda t: track[: len(t)], sample_rate=sr, channels=1)
    out = root / "overlay.mp4"
    assert localize(["--checkpoint", str(ckpt), "--video", str(video), "--out", str(out), "--panels", "silence,noise",
                     "--no-progress", "--device", "cpu"]) == 0
    rows = _rows(root / "overlay.frames.jsonl")[1:-1]
    half = 1.5  # half the model's clip
    inside = [r for r in rows if SOUNDING[0] + half <= r["time"] <= SOUNDING[1] - half]
    silent = [r for r in rows if r["time"] <= SOUNDING[0] - half or r["time"] >= SOUNDING[1] + half]
    assert len(inside) == 50 and len(silent) == 88 + 62  # frames 163-212; 0-87 and 288-349
    x0, y0, x1, y1 = scene.boxes[0]
    timeline = "".join("#" if r["above_threshold"] else "." for r in rows[::5])
    print(f"{scene.id} ({scene.category}), U_th {thr:.4f}; above U_th every 0.2 s: {timeline}")
    assert all(r["above_threshold"] for r in inside), timeline
    assert all(x0 <= r["peak"][0] <= x1 and y0 <= r["peak"][1] <= y1 for r in inside)
    assert not any(r["above_threshold"] for r in silent), timeline
    assert max(max(r["silence_max"], r["noise_max"]) for r in rows) < thr
    with av.open(str(out)) as c, av.open(str(video)) as src:
        assert c.streams.audio and abs(c.duration - src.duration) / 1e6 <= 1 / 25
