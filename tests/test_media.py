"""sslsan.media: decoding and encoding audio, images, masks and video frames, one rule each."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import sine, write_audio
from synthetic_media import read_frame_index, write_video
from sslsan.media import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    AudioError,
    ImageError,
    _decode_with_av,
    _read_pcm_wav,
    box_from_mask,
    load_audio,
    load_image,
    load_mask,
    video_frame,
    wav_bytes,
)


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG written by hand (any size and bit depth; `rows` = the unfiltered scanlines, filter bytes included)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("suffix,sr", [(".wav", 44100), (".flac", 22050), (".ogg", 48000), (".mp3", 44100)])
def test_load_audio_formats_resample_and_downmix(tmp_path, suffix, sr):
    left = sine(440, 1.0, sr)
    stereo = np.stack([left, left])
    try:
        path = write_audio(tmp_path / f"tone{suffix}", stereo, sr)
    except Exception as exc:  # an encoder missing from this PyAV build
        pytest.skip(f"cannot encode {suffix}: {exc}")
    wave = load_audio(path)
    assert wave.dtype == torch.float32 and wave.dim() == 1
    assert abs(len(wave) - 16000) < 2000  # codecs add priming / padding samples
    spec = np.abs(np.fft.rfft(wave.numpy()))
    peak_hz = np.argmax(spec) * 16000 / len(wave)
    assert abs(peak_hz - 440) < 5
    assert load_audio(path, mono=False).shape[0] == 2


def test_load_audio_exact_wav(tmp_path):
    w = sine(1000, 3.0, 16000, amp=0.25)
    wave = load_audio(write_audio(tmp_path / "a.wav", w, 16000))
    assert wave.shape == (48000,)
    assert np.abs(wave.numpy() - w).max() < 1e-4  # PCM16 quantisation


def test_load_audio_from_mp4(tmp_path):
    path = write_video(tmp_path / "clip.mp4", seconds=2.0, codec="mpeg4")  # AAC 44.1 kHz stereo, 440 Hz
    wave = load_audio(path)
    assert abs(len(wave) - 32000) < 3000
    peak_hz = np.argmax(np.abs(np.fft.rfft(wave.numpy()))) * 16000 / len(wave)
    assert abs(peak_hz - 440) < 5


def test_load_audio_errors(tmp_path):
    with pytest.raises(AudioError, match="missing.wav: audio file not found"):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty.wav: empty file"):
        load_audio(tmp_path / "empty.wav")
    (tmp_path / "junk.wav").write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(AudioError, match="junk.wav: cannot decode"):
        load_audio(tmp_path / "junk.wav")
    silent_video = write_video(tmp_path / "silent.mp4", seconds=1.0, audio=False, codec="mpeg4")
    with pytest.raises(AudioError, match="silent.mp4: no audio track"):
        load_audio(silent_video)


def test_wav_fast_path_equals_pyav_decode(tmp_path):
    rng = np.random.default_rng(0)
    stereo = (0.3 * rng.standard_normal((2, 16000))).clip(-1, 1)
    path = write_audio(tmp_path / "s.wav", stereo, 16000)
    fast = _read_pcm_wav(path, 16000)
    assert fast is not None and fast.shape == (2, 16000)
    assert np.array_equal(fast, _decode_with_av(path, 16000))
    assert _read_pcm_wav(path, 22050) is None  # another rate: PyAV resamples
    # a truncated WAV (the header declares more than the file holds) is an error, not a shorter clip
    (tmp_path / "cut.wav").write_bytes(path.read_bytes()[:30000])
    with pytest.raises(AudioError, match=r"cut.wav: truncated WAV: the header declares 64000 bytes of audio, the file holds \d+ "):
        load_audio(tmp_path / "cut.wav")

def test_load_image_formats(tmp_path):
    arr = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    Image.fromarray(arr).convert("L").save(tmp_path / "gray.png")
    Image.fromarray(arr).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(arr).save(tmp_path / "a.jpg", quality=95)
    png = load_image(tmp_path / "a.png")
    assert png.dtype == torch.uint8 and png.shape == (3, 30, 40)
    assert np.array_equal(png.permute(1, 2, 0).numpy(), arr)
    assert load_image(tmp_path / "gray.png").shape == (3, 30, 40)
    assert load_image(tmp_path / "rgba.png").shape == (3, 30, 40)
    smooth = np.broadcast_to(np.linspace(0, 255, 40, dtype=np.uint8)[None, :, None], (30, 40, 3))
    Image.fromarray(np.ascontiguousarray(smooth)).save(tmp_path / "s.jpg", quality=95)
    jpg = load_image(tmp_path / "s.jpg").permute(1, 2, 0).float().numpy()
    assert np.abs(jpg - smooth).mean() < 3


def test_load_image_errors(tmp_path):
    with pytest.raises(ImageError, match="nope.jpg: image file not found"):
        load_image(tmp_path / "nope.jpg")
    (tmp_path / "e.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="e.jpg: empty file"):
        load_image(tmp_path / "e.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff" + bytes(100))
    with pytest.raises(ImageError, match="bad.jpg: cannot decode"):
        load_image(tmp_path / "bad.jpg")


def test_truncated_float_wav_and_nan_samples(tmp_path):
    x = np.stack([np.linspace(-0.5, 0.5, 8000, dtype=np.float32)] * 2)
    path = write_audio(tmp_path / "f.wav", x, 22050, codec="pcm_f32le")  # float WAV: decoded by PyAV
    assert load_audio(path).shape[0] == pytest.approx(8000 * 16000 / 22050, abs=50)
    (tmp_path / "fcut.wav").write_bytes(path.read_bytes()[:20000])
    with pytest.raises(AudioError, match="fcut.wav: truncated WAV"):
        load_audio(tmp_path / "fcut.wav")
    x[0, 100] = np.nan
    x[1, 7] = np.inf
    with pytest.raises(AudioError, match=r"nan.wav: audio holds \d+ NaN or infinite samples"):
        load_audio(write_audio(tmp_path / "nan.wav", x, 16000, codec="pcm_f32le"))


def test_wav_bytes_round_trip_and_clipping(tmp_path):
    x = np.array([[0.0, 0.5, -0.5, 1.0, -1.0, 2.0], [0.25, 0.0, 0.0, 0.0, 0.0, -3.0]])
    (tmp_path / "w.wav").write_bytes(wav_bytes(x, 16000))
    got = load_audio(tmp_path / "w.wav", mono=False).numpy()
    want = np.round(np.clip(x, -1, 1) * 32767) / 32768  # PCM16, clipped to [-1, 1]
    np.testing.assert_array_equal(got, want.astype(np.float32))


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    grey = np.full((6, 5), 32896, np.uint16)  # 128 * 257: mid-grey in 16 bits
    grey[0, 0], grey[0, 1] = 0, 65535
    Image.fromarray(grey).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I;16")
    img = load_image(tmp_path / "g16.png")
    assert img.dtype == torch.uint8 and img.shape == (3, 6, 5)
    assert img[:, 1, 1].tolist() == [128, 128, 128] and img[:, 0, 0].tolist() == [0, 0, 0]
    assert img[:, 0, 1].tolist() == [255, 255, 255]
    rows = b"".join(b"\x00" + np.full((4, 3), 32896, ">u2").tobytes() for _ in range(4))  # 16-bit RGB
    (tmp_path / "rgb16.png").write_bytes(png_bytes(4, 4, 16, 2, rows))
    assert load_image(tmp_path / "rgb16.png")[:, 0, 0].tolist() == [128, 128, 128]
    mask = np.zeros((4, 4), np.uint16)
    mask[1:3, 1:3] = 65535
    Image.fromarray(mask).save(tmp_path / "m16.png")
    assert load_mask(tmp_path / "m16.png").sum() == 4


def test_image_size_guard_reads_the_header_only(tmp_path):
    limit = Image.MAX_IMAGE_PIXELS
    side = int((1.5 * limit) ** 0.5)  # above the limit, below PIL's own error at twice the limit
    (tmp_path / "big.png").write_bytes(png_bytes(side, side, 1, 0, b""))  # header only: no pixels to decode
    with pytest.raises(ImageError, match=rf"big.png: image too large to decode \({side} x {side}"):
        load_image(tmp_path / "big.png")
    (tmp_path / "bomb.png").write_bytes(png_bytes(20000, 20000, 1, 0, b""))  # 400 MP: PIL's bomb error
    with pytest.raises(ImageError, match="bomb.png: image too large to decode"):
        load_image(tmp_path / "bomb.png")
    with pytest.raises(ImageError, match="bomb.png: image too large"):
        load_mask(tmp_path / "bomb.png")
    cut = tmp_path / "cut.png"  # a header that reads and pixels that do not
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(cut)
    cut.write_bytes(cut.read_bytes()[:400])
    with pytest.raises(ImageError, match="cut.png: cannot decode image"):
        load_image(cut)


def _box_loop(mask: np.ndarray, inclusive: bool) -> list[float] | None:
    """Obvious reference: scan every pixel."""
    h, w = mask.shape
    pts = [(x, y) for y in range(h) for x in range(w) if mask[y, x]]
    if not pts:
        return None
    end = 0 if inclusive else 1
    return [min(p[0] for p in pts) / w, min(p[1] for p in pts) / h, (max(p[0] for p in pts) + end) / w,
            (max(p[1] for p in pts) + end) / h]


def test_box_from_mask_conventions():
    rng = np.random.default_rng(3)
    for _ in range(20):
        m = np.zeros((int(rng.integers(3, 30)), int(rng.integers(3, 30))), bool)
        y0, x0 = rng.integers(0, m.shape[0]), rng.integers(0, m.shape[1])
        m[y0:y0 + int(rng.integers(1, 8)), x0:x0 + int(rng.integers(1, 8))] = True
        m[rng.integers(0, m.shape[0]), rng.integers(0, m.shape[1])] = bool(rng.integers(0, 2))
        for inclusive in (False, True):
            assert box_from_mask(m, inclusive) == _box_loop(m, inclusive)
    m = np.zeros((10, 20), bool)
    m[2:5, 4:8] = True
    assert box_from_mask(m) == [4 / 20, 2 / 10, 8 / 20, 5 / 10]  # half-open: pixels [x1, x2) x [y1, y2)
    assert box_from_mask(m, inclusive=True) == [4 / 20, 2 / 10, 7 / 20, 4 / 10]  # the s4_box.json convention
    assert box_from_mask(np.zeros((4, 4), bool)) is None and box_from_mask(np.zeros((4, 4), bool), True) is None


def test_video_frame_rule(tmp_path):
    """The frame shown at t is the last one strictly before t; the middle frame is the one before the middle."""
    path = write_video(tmp_path / "v.mp4", seconds=2.0, fps=25, codec="mpeg4")
    frame, t = video_frame(path)
    assert read_frame_index(frame.permute(1, 2, 0).numpy()) == 24 and t == pytest.approx(0.96)  # middle 1.0 s
    assert read_frame_index(video_frame(path, 1.0)[0].permute(1, 2, 0).numpy()) == 24  # strictly before
    assert read_frame_index(video_frame(path, 1.01)[0].permute(1, 2, 0).numpy()) == 25
    assert read_frame_index(video_frame(path, 0.0)[0].permute(1, 2, 0).numpy()) == 0  # before the first: the first
    assert read_frame_index(video_frame(path, 2.0)[0].permute(1, 2, 0).numpy()) == 49
    with pytest.raises(ImageError, match=r"v.mp4: --time 7 s is outside the video \(0 to 2.00 s\)"):
        video_frame(path, 7.0)
    with pytest.raises(ImageError, match="outside the video"):
        video_frame(path, -1.0)
    with pytest.raises(ImageError, match="no video track"):
        video_frame(write_video(tmp_path / "a.mp4", seconds=1.0, video=False))


def test_extension_sets_are_disjoint():
    sets = [set(IMAGE_EXTENSIONS), set(AUDIO_EXTENSIONS), set(VIDEO_EXTENSIONS)]
    assert all(not (a & b) for i, a in enumerate(sets) for b in sets[i + 1:])
    assert all(e.startswith(".") and e == e.lower() for s in sets for e in s)
