"""`sslsan prepare vggsound` and the PyAV clip decoder, on small real MP4s written inside the tests."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from conftest import command
from synthetic_media import audio_amplitude, read_frame_index, write_video
from sslsan.audio import load_audio
from sslsan.data.manifest import read_manifest
from sslsan.data.prepare.clips import decode_clip
from sslsan.data.prepare.common import MediaError, PrepareError
from sslsan.data.prepare.vggsound import VGGSoundConfig, prepare_vggsound, val_assignment

prepare = command("prepare")

SR = 16000


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """One of each kind of file a VGGSound download really contains."""
    d = tmp_path_factory.mktemp("media")
    good = write_video(d / "good.mp4", seconds=10.0)  # H.264 + AAC 44.1 kHz stereo
    m = {
        "good": good,
        "mpeg4": write_video(d / "mpeg4.mp4", seconds=4.0, codec="mpeg4", sample_rate=22050, channels=1),
        "short": write_video(d / "short.mp4", seconds=4.0, audio_seconds=1.5),
        "early_end": write_video(d / "early.mp4", seconds=10.0, audio_seconds=5.0),
        "no_audio": write_video(d / "noaudio.mp4", seconds=2.0, audio=False),
        "no_video": write_video(d / "novideo.mp4", seconds=2.0, video=False),
        "faststart": write_video(d / "fast.mp4", seconds=4.0, faststart=True),
    }
    data = good.read_bytes()
    (d / "cut.mp4").write_bytes(data[: len(data) // 2])  # index (moov) at the end: cannot even open
    m["cut"] = d / "cut.mp4"
    fast = m["faststart"].read_bytes()
    (d / "cutfast.mp4").write_bytes(fast[: int(len(fast) * 0.6)])  # index first: fails while decoding
    m["cutfast"] = d / "cutfast.mp4"
    (d / "empty.mp4").write_bytes(b"")
    m["empty"] = d / "empty.mp4"
    (d / "garbage.mp4").write_bytes(b"this is not a video at all" * 50)
    m["garbage"] = d / "garbage.mp4"
    return m


def test_middle_frame_and_centred_window(media):
    clip = decode_clip(media["good"])
    # 25 fps, 10 s: the frame just before the 5.0 s middle is frame 124 at 4.96 s (SSL-TIE's 125.jpg)
    assert read_frame_index(clip.frame) == 124
    assert clip.frame_time == pytest.approx(4.96)
    assert clip.wave.dtype == np.float32 and clip.wave.shape == (3 * SR,)
    assert clip.audio_start == pytest.approx(3.5) and not clip.shifted and not clip.short
    # the window is the 3.5-6.5 s slice of the whole track decoded by sslsan.audio.load_audio (up to
    # the sub-sample phase of the seek point: a 440 Hz tone at amplitude < 0.7 moves < 0.03 per 1/2 sample)...
    full = load_audio(media["good"], sample_rate=SR).numpy()
    np.testing.assert_allclose(clip.wave, full[int(3.5 * SR):int(6.5 * SR)], atol=0.03)
    # ...and the content agrees: the amplitude ramp a(t) at the window edges (AAC is lossy: 0.02)
    first, last = np.abs(clip.wave[:800]).max(), np.abs(clip.wave[-800:]).max()
    assert first == pytest.approx(audio_amplitude(3.5 + 0.05), abs=0.02)
    assert last == pytest.approx(audio_amplitude(6.5), abs=0.02)


def test_mpeg4_mono_22k(media):
    clip = decode_clip(media["mpeg4"])
    assert read_frame_index(clip.frame) == 49  # 1.96 s, just before the 2.0 s middle
    assert clip.wave.shape == (3 * SR,) and clip.audio_start == pytest.approx(0.5)
    assert np.abs(clip.wave[:800]).max() == pytest.approx(audio_amplitude(0.55), abs=0.02)


def test_low_frame_rate(tmp_path):
    clip = decode_clip(write_video(tmp_path / "slow.mp4", seconds=10.0, fps=4))
    assert read_frame_index(clip.frame) == 19 and clip.frame_time == pytest.approx(4.75)  # 4.75 s < 5.0 s


def test_short_and_early_ending_audio(media):
    short = decode_clip(media["short"])  # 1.5 s of audio: stored whole, the loader tiles it
    assert short.short and not short.shifted
    assert 1.5 * SR <= len(short.wave) < 1.6 * SR
    early = decode_clip(media["early_end"])  # audio stops at 5 s: window moved to end with the track
    assert early.shifted and len(early.wave) == 3 * SR
    assert early.audio_start + 3.0 == pytest.approx(5.0, abs=0.05)
    assert np.abs(early.wave[-800:]).max() == pytest.approx(audio_amplitude(5.0), abs=0.02)


@pytest.mark.parametrize("kind,reason", [
    ("no_audio", "no_audio"), ("no_video", "no_video"), ("empty", "empty"), ("cut", "truncated"),
    ("cutfast", "truncated"), ("garbage", "undecodable"),
])
def test_failures_have_reasons(media, kind, reason):
    with pytest.raises(MediaError) as info:
        decode_clip(media[kind])
    assert info.value.reason == reason
    assert str(media[kind]) in str(info.value)  # the message names the file


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="missing"):
        decode_clip(tmp_path / "nope.mp4")


def _videos_dir(tmp_path: Path, media) -> Path:
    """A VGGSound-like folder: clip ids as file names, good and broken files mixed."""
    v = tmp_path / "videos"
    (v / "sub").mkdir(parents=True)
    names = {"good": "AAAAAAAAAAA_000010", "mpeg4": "BBBBBBBBBBB_000020", "short": "CCCCCCCCCCC_000030",
             "no_audio": "DDDDDDDDDDD_000040", "cut": "EEEEEEEEEEE_000050", "empty": "FFFFFFFFFFF_000060",
             "no_video": "GGGGGGGGGGG_000070", "faststart": "AAAAAAAAAAA_000100"}
    for kind, name in names.items():
        target = v / "sub" / f"{name}.mp4" if kind == "faststart" else v / f"{name}.mp4"
        target.write_bytes(media[kind].read_bytes())
    return v


def test_prepare_end_to_end_and_resume(tmp_path, media, capsys):
    videos = _videos_dir(tmp_path, media)
    out = tmp_path / "prepared"
    csv_path = tmp_path / "vggsound.csv"
    csv_path.write_text("AAAAAAAAAAA,10,dog barking,train\nBBBBBBBBBBB,20,playing cello,test\n"
                        "CCCCCCCCCCC,30,rain,train\nAAAAAAAAAAA,100,dog barking,train\n")
    ids = ["AAAAAAAAAAA_000010", "BBBBBBBBBBB_000020", "CCCCCCCCCCC_000030", "DDDDDDDDDDD_000040",
           "EEEEEEEEEEE_000050", "FFFFFFFFFFF_000060", "GGGGGGGGGGG_000070", "AAAAAAAAAAA_000100",
           "HHHHHHHHHHH_000080"]  # the last one has no video
    lst = tmp_path / "list.txt"
    lst.write_text("\n".join(i + ".mp4" if k % 2 else i for k, i in enumerate(ids)) + "\n")
    argv = ["vggsound", "--videos", str(videos), "--list", str(lst), "--csv", str(csv_path), "--out", str(out),
            "--workers", "2", "--val-fraction", "0.5", "--seed", "4", "--no-progress"]
    assert prepare(argv) == 0
    text = capsys.readouterr().out
    assert "4 prepared" in text and "5 skipped" in text

    skipped = {json.loads(line)["id"]: json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()}
    assert {k: v["reason"] for k, v in skipped.items()} == {
        "DDDDDDDDDDD_000040": "no_audio", "EEEEEEEEEEE_000050": "truncated", "FFFFFFFFFFF_000060": "empty",
        "GGGGGGGGGGG_000070": "no_video", "HHHHHHHHHHH_000080": "missing"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prepared"] == 4 and summary["skipped_by_reason"]["truncated"] == 1
    assert summary["notes"]["audio_short"] == 1 and summary["notes"]["vggsound_test_split"] == 1

    train, val = read_manifest(out / "train.jsonl"), read_manifest(out / "val.jsonl", allow_empty=True)
    got = {s.id: s for s in list(train) + list(val)}
    assert set(got) == {"AAAAAAAAAAA_000010", "BBBBBBBBBBB_000020", "CCCCCCCCCCC_000030", "AAAAAAAAAAA_000100"}
    for s in val:
        assert val_assignment(s.id, 4, 0.5)
    for s in train:
        assert not val_assignment(s.id, 4, 0.5)
    # both clips of YouTube video AAAAAAAAAAA land in the same split
    assert len({("val" if val_assignment(i, 4, 0.5) else "train") for i in got if i.startswith("AAAA")}) == 1
    assert got["BBBBBBBBBBB_000020"].category == "playing cello"
    assert got["BBBBBBBBBBB_000020"].extra["vggsound_split"] == "test"
    assert got["AAAAAAAAAAA_000010"].extra["youtube_id"] == "AAAAAAAAAAA"
    m = train if "AAAAAAAAAAA_000010" in {s.id for s in train} else val
    s = got["AAAAAAAAAAA_000010"]
    with wave.open(str(m.resolve(s.audio))) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()) == (SR, 1, 2, 3 * SR)
    from PIL import Image

    with Image.open(m.resolve(s.image)) as im:
        assert im.size == (299, 299) and im.format == "JPEG"
        assert read_frame_index(im) == 124

    # resume: nothing decoded again, same manifests
    before = {p: p.stat().st_mtime_ns for p in (out / "audio").iterdir()}
    train_text = (out / "train.jsonl").read_text()
    one_worker = [("1" if a == "2" else a) for a in argv]
    assert prepare(one_worker) == 0
    assert "4 already done, reused" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (out / "audio").iterdir()} == before
    assert (out / "train.jsonl").read_text() == train_text
    # a damaged output is detected and redone; the others are kept
    victim = out / "audio" / "CCCCCCCCCCC_000030.wav"
    victim.write_bytes(victim.read_bytes()[:100])
    with open(out / "progress.jsonl", "a") as fh:
        fh.write('{"id": "AAAAAAAAAAA_0')  # a line torn by a crash is ignored
    assert prepare(argv) == 0
    assert "3 already done, reused" in capsys.readouterr().out
    assert victim.stat().st_size > 1000
    assert prepare(argv) == 0  # the record written after the torn line is intact
    assert "4 already done, reused" in capsys.readouterr().out


def test_resume_refuses_other_settings(tmp_path, media):
    videos = tmp_path / "v"
    videos.mkdir()
    (videos / "AAAAAAAAAAA_000010.mp4").write_bytes(media["mpeg4"].read_bytes())
    cfg = VGGSoundConfig(videos=str(videos), out=str(tmp_path / "o"))
    prepare_vggsound(cfg, progress=False)
    cfg.frame_size = 0
    with pytest.raises(PrepareError, match="was prepared with"):
        prepare_vggsound(cfg, progress=False)


def test_muted_clips_are_kept_and_counted(tmp_path):
    videos = tmp_path / "v"
    write_video(videos / "MMMMMMMMMMM_000000.mp4", seconds=4.0, audio_gain=0.0)
    write_video(videos / "LLLLLLLLLLL_000000.mp4", seconds=4.0, audio_gain=0.001)  # ~ -65 dBFS
    res = prepare_vggsound(VGGSoundConfig(str(videos), str(tmp_path / "o"), val_fraction=0.0), progress=False)
    assert res.prepared == 2 and res.report.notes["audio_near_silent"] == 2
    rms = {s.id: s.extra["audio_rms"] for s in read_manifest(res.train)}
    assert rms["MMMMMMMMMMM_000000"] == 0.0 and 0 < rms["LLLLLLLLLLL_000000"] < 1e-3


def test_small_sets_still_get_a_validation_video(tmp_path, media):
    videos = tmp_path / "v"
    videos.mkdir()
    for name in ("AAAAAAAAAAA_000010", "AAAAAAAAAAA_000020", "BBBBBBBBBBB_000010"):
        (videos / f"{name}.mp4").write_bytes(media["mpeg4"].read_bytes())
    res = prepare_vggsound(VGGSoundConfig(str(videos), str(tmp_path / "o"), val_fraction=1e-9), progress=False)
    val, train = read_manifest(res.val), read_manifest(res.train)
    assert len({s.group for s in val}) == 1 and {s.group for s in train}.isdisjoint({s.group for s in val})
    assert len(val) + len(train) == 3


def test_subset_is_seeded(tmp_path, media):
    videos = tmp_path / "v"
    videos.mkdir()
    for k in range(6):
        (videos / f"{k:011d}_000000.mp4").write_bytes(media["no_audio"].read_bytes())  # fast to reject
    from sslsan.data.prepare.vggsound import select_items

    def pick(seed: int) -> list[str]:
        return [i for i, _ in select_items(VGGSoundConfig(str(videos), "o", subset=3, seed=seed))]

    assert pick(1) == pick(1) and len(pick(1)) == 3
    assert len({tuple(pick(s)) for s in range(6)}) > 1


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert prepare(["vggsound", "--videos", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "not found" in err and err.count("\n") == 1
    (tmp_path / "v").mkdir()
    assert prepare(["vggsound", "--videos", str(tmp_path / "v"), "--out", str(tmp_path / "o")]) == 2
    assert "no video files" in capsys.readouterr().err
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("AAAAAAAAAAA,10\n")
    assert prepare(["vggsound", "--videos", str(tmp_path / "v"), "--csv", str(bad_csv), "--out", str(tmp_path / "o")]) == 2
    assert "bad.csv:1" in capsys.readouterr().err


def test_prepared_data_feeds_the_training_loader(tmp_path, media):
    import torch

    from sslsan.audio import AudioConfig
    from sslsan.data.datasets import AVDataset
    from sslsan.data.transforms import ImageTrainTransform

    videos = tmp_path / "v"
    videos.mkdir()
    (videos / "CCCCCCCCCCC_000030.mp4").write_bytes(media["short"].read_bytes())
    (videos / "AAAAAAAAAAA_000010.mp4").write_bytes(media["good"].read_bytes())
    res = prepare_vggsound(VGGSoundConfig(str(videos), str(tmp_path / "o"), val_fraction=0.0), progress=False)
    ds = AVDataset(res.train, image_transform=ImageTrainTransform(), audio=AudioConfig())
    items = [ds[i] for i in range(len(ds))]
    for it in items:
        assert it["image"].shape == (3, 224, 224) and it["image"].dtype == torch.float32
        assert it["wave"].shape == (AudioConfig().tile_samples,)
    # the 1.5 s clip was stored short and tiled at load (docs/model.md §1)
    short = items[[s.id for s in ds.manifest].index("CCCCCCCCCCC_000030")]["wave"]
    n = len(load_audio(ds.manifest.resolve(ds.manifest.samples[1].audio)))
    torch.testing.assert_close(short[n:2 * n], short[:n])
