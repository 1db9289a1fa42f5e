"""`sslsan serve`: the API through Starlette's test client, the real command as a process, and the page
in a real headless Chromium (Playwright driving Debian's /usr/bin/chromium; `make test` installs it).

Media are written with real encoders (PIL JPEG/PNG, the stdlib wave module, PyAV MP4/FLAC); the
checkpoint is a tiny real model whose stored universal threshold sits inside its own map's range, so
the overlay is partly coloured.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import sine, tiny_localizer, write_audio

from sslsan.data.manifest import Sample, write_manifest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _image(seed: int, size=(80, 60), square=(250, 40, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    arr[size[1] // 4: size[1] // 2, size[0] // 4: size[0] // 2] = square
    return Image.fromarray(arr)


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height RGB pixels (with a few bytes of data)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    from synthetic_media import write_video
    from sslsan.media import wav_bytes

    d = tmp_path_factory.mktemp("media")
    _image(0).save(d / "cat.jpg", quality=90)
    _image(1, size=(50, 70), square=(40, 40, 250)).save(d / "drum.png")
    (d / "cat.wav").write_bytes(wav_bytes(sine(440.0, 1.3, 44100), 44100))  # stdlib wave; resampled to 16 kHz
    write_audio(d / "drum.flac", sine(900.0, 0.8, 22050), 22050)
    write_video(d / "clip.mp4", seconds=2.0, width=64, height=64, codec="mpeg4")  # frames + 440 Hz AAC
    write_video(d / "silent.mp4", seconds=1.0, width=64, height=64, codec="mpeg4", audio=False)
    (d / "notes.txt").write_text("this is not an image\n")
    (d / "huge.png").write_bytes(_png_claiming(20000, 20000))  # a 0.1 kB decompression bomb
    (d / "broken.mp3").write_bytes(np.random.default_rng(2).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    return d


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, media):
    """A tiny real model whose universal threshold is the midpoint of its map of cat.jpg + cat.wav."""
    from sslsan.evaluation.inference import localize_files
    from sslsan.methods.checkpoint import save_checkpoint

    tiny = tiny_localizer()
    m = localize_files(tiny, media / "cat.jpg", media / "cat.wav")
    thr = float((m.min() + m.max()) / 2)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt", tiny.model, tiny.spec.replace(universal_threshold=thr))


@pytest.fixture(scope="module")
def examples_manifest(tmp_path_factory):
    """Three scenes of the embedded benchmark's VGG-SS-style test split (JPEG + WAV + boxes), as `sslsan demo` writes."""
    from sslsan.data.synthetic import generate_item, preset_config

    root = tmp_path_factory.mktemp("benchmark")
    cfg = preset_config("tiny", image_size=96)
    rows = [row for i in range(3) for row in generate_item("test_vggss", i, cfg, root)]
    return write_manifest(root / "test_vggss.jsonl", [Sample(**row) for row in rows])


@pytest.fixture(scope="module")
def service(checkpoint):
    from sslsan.serve.service import LocalizationService

    return LocalizationService.from_checkpoint(checkpoint)


@pytest.fixture(scope="module")
def client(service, examples_manifest):
    from starlette.testclient import TestClient

    from sslsan.serve.app import create_app
    from sslsan.serve.service import load_examples

    with TestClient(create_app(service, load_examples(examples_manifest))) as c:
        yield c


def _post(client, url="/api/localize", **files):
    return client.post(url, files={k: (Path(p).name, Path(p).read_bytes()) for k, p in files.items()})


def _decode(entry: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(entry["values"]), dtype="<f4").reshape(224, 224)


def _reference_maps(checkpoint, image, audio) -> dict[str, np.ndarray]:
    """The maps computed directly with the model's public calls: similarity_map of the eval-transformed
    image with the spectrogram of the audio, of an all-zero waveform and of the seeded noise."""
    from sslsan.audio import LogMelSpectrogram, load_audio, noise
    from sslsan.data.transforms import ImageEvalTransform, load_image
    from sslsan.methods.checkpoint import load_model
    from sslsan.utils.seed import make_generator
    from sslsan.evaluation.negatives import REPETITION_SEEDS

    loaded = load_model(checkpoint)
    model, cfg = loaded.model, loaded.spec.audio
    img = ImageEvalTransform(loaded.spec.image_size)(load_image(image))[None]
    front = LogMelSpectrogram(cfg)
    waves = {"positive": load_audio(audio, sample_rate=cfg.sample_rate),
             "silence": torch.zeros(cfg.tile_samples),
             "noise": noise(cfg.tile_samples, make_generator(0, REPETITION_SEEDS[0], 0), clip=cfg.noise_clip)}
    with torch.no_grad():
        return {k: model.similarity_map(img, front(w[None]))[0, 0].numpy() for k, w in waves.items()}


# ------------------------------------------------------------------------------------------- API


def test_localize_returns_the_maps_of_the_library(client, checkpoint, media, service):
    from sslsan.evaluation.inference import localize_files
    from sslsan.metrics import upsample

    r = _post(client, image=media / "cat.jpg", audio=media / "cat.wav")
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["name"] == "cat.jpg + cat.wav" and data["size"] == 224 and data["threshold"] == service.threshold
    assert [m["name"] for m in data["maps"]] == ["positive", "silence", "noise"]
    ref = _reference_maps(checkpoint, media / "cat.jpg", media / "cat.wav")
    same_as_cli = localize_files(service.localizer, media / "cat.jpg", media / "cat.wav")
    np.testing.assert_allclose(ref["positive"], same_as_cli, atol=1e-6)
    for m in data["maps"]:
        native = ref[m["name"]]
        assert m["shape"] == [4, 4] and m["min"] == pytest.approx(native.min(), abs=1e-6)
        assert m["max"] == pytest.approx(native.max(), abs=1e-6)
        assert m["above_threshold"] == bool(m["max"] > np.float32(data["threshold"]))
        np.testing.assert_allclose(_decode(m), upsample(native), atol=1e-6)
    assert data["maps"][0]["min"] < data["threshold"] < data["maps"][0]["max"]  # the fixture's choice
    frame = Image.open(io.BytesIO(base64.b64decode(data["image"].split(",", 1)[1])))
    assert frame.size == (224, 224) and frame.mode == "RGB"
    # the same input gives byte-identical answers
    assert _post(client, image=media / "cat.jpg", audio=media / "cat.wav").content == r.content


def test_png_figure_and_its_threshold(client, media):
    r = _post(client, "/api/localize.png", image=media / "drum.png", audio=media / "drum.flac")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    fig = Image.open(io.BytesIO(r.content))
    assert fig.width > 2 * fig.height  # three panels side by side
    r2 = client.post("/api/localize.png?threshold=-1", files={"image": ("d.png", (media / "drum.png").read_bytes()),
                                                             "audio": ("d.flac", (media / "drum.flac").read_bytes())})
    assert r2.status_code == 200 and r2.content != r.content


def test_video_alone_gives_frame_and_sound(client, media, service):
    from sslsan.evaluation.inference import localize_files

    r = _post(client, video=media / "clip.mp4")
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["name"] == "clip.mp4"
    ref = localize_files(service.localizer, media / "clip.mp4", media / "clip.mp4")
    assert data["maps"][0]["max"] == pytest.approx(float(ref.max()), abs=1e-6)


BAD = [  # (files, status, message pattern)
    ({"image": "notes.txt", "audio": "cat.wav"}, 422, r"^notes\.txt: cannot decode image"),
    ({"image": "huge.png", "audio": "cat.wav"}, 422, r"^huge\.png: image too large to decode \(Image size \(400000000 pixels\)"),
    ({"image": "cat.jpg", "audio": "broken.mp3"}, 422, r"^broken\.mp3: cannot decode audio"),
    ({"video": "silent.mp4"}, 422, r"^silent\.mp4: no audio track"),
    ({"image": "cat.jpg"}, 400, r"give an image and an audio file, or one video file \(got: image\)"),
    ({"image": "cat.jpg", "audio": "cat.wav", "video": "clip.mp4"}, 400, r"or one video file"),
    ({}, 400, r"got: nothing"),
]


@pytest.mark.parametrize("files,status,pattern", BAD, ids=["not-image", "bomb", "corrupt-audio", "silent-video",
                                                             "no-audio", "both", "empty"])
def test_bad_uploads_get_a_4xx_and_one_line(client, media, files, status, pattern):
    r = _post(client, **{k: media / v for k, v in files.items()})
    assert r.status_code == status
    body = r.json()
    assert list(body) == ["error"] and re.search(pattern, body["error"]), body
    assert "\n" not in body["error"] and "Traceback" not in body["error"] and "sslsan-serve-" not in body["error"]


def test_malformed_requests_and_the_size_limit(service, media):
    from starlette.testclient import TestClient

    from sslsan.serve import MAX_UPLOAD_MB
    from sslsan.serve.app import create_app

    assert MAX_UPLOAD_MB == 50
    with TestClient(create_app(service, max_upload_mb=0.2)) as c:  # 209,715 bytes
        big = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
        r = c.post("/api/localize", files={"image": ("big.jpg", big), "audio": ("a.wav", b"x")})
        assert r.status_code == 413 and r.json()["error"] == "upload too large: 0.3 MB; the limit is 0.2 MB per request"
        assert c.post("/api/localize", json={"image": "cat.jpg"}).json()["error"].startswith("give an image")
        r = c.post("/api/localize", files={"sound": ("a.wav", b"x")})
        assert r.status_code == 400 and "unexpected form field 'sound'" in r.json()["error"]
        r = c.post("/api/localize?threshold=high", files={"video": ("v.mp4", b"x")})
        assert r.status_code == 400 and "threshold must be a number" in r.json()["error"]
        r = c.post("/api/localize", content=b"--xx\r\nnonsense", headers={"content-type": "multipart/form-data; boundary=xx"})
        assert 400 <= r.status_code < 500 and list(r.json()) == ["error"]
        assert c.get("/api/localize").status_code == 405 and "error" in c.get("/api/nothing").json()
        # after all that it still serves
        ok = _post(c, image=media / "cat.jpg", audio=media / "cat.wav")
        assert ok.status_code == 200


def test_an_unexpected_failure_is_a_json_500(service, media, monkeypatch):
    from starlette.testclient import TestClient

    from sslsan.serve.app import create_app

    def boom(*a, **k):
        raise RuntimeError("CUDA out of memory\nwith a second line")

    with TestClient(create_app(service), raise_server_exceptions=False) as c:
        monkeypatch.setattr(service, "localize", boom)
        r = _post(c, image=media / "cat.jpg", audio=media / "cat.wav")
        assert r.status_code == 500 and r.json() == {"error": "internal error (RuntimeError); the server log has the details"}
        monkeypatch.undo()
        assert _post(c, image=media / "cat.jpg", audio=media / "cat.wav").status_code == 200


def _finished(client, status_url: str, timeout: float = 120.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(status_url).json()
        if job["state"] in ("done", "error"):
            return job
        time.sleep(0.1)
    pytest.fail(f"the video job did not finish in {timeout:.0f} s: {job}")


def test_video_job_makes_the_overlay_video(client, media, tmp_path):
    """POST /api/video queues a job; its status counts frames; the result is H.264 + AAC with every frame."""
    import av

    r = _post(client, "/api/video?panels=silence,noise", video=media / "clip.mp4")
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["status"] == f"/api/video/{started['id']}"
    job = _finished(client, started["status"])
    assert job["state"] == "done" and job["done"] == job["total"] == 50 and job["rate"] > 0 and job["error"] is None
    assert job["seconds"] == 2.0 and job["threshold"] == client.get("/api/info").json()["threshold"]
    video = client.get(job["video"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert 'filename="clip_overlay.mp4"' in video.headers["content-disposition"]
    (tmp_path / "o.mp4").write_bytes(video.content)
    with av.open(str(tmp_path / "o.mp4")) as c:
        assert [s.codec_context.name for s in c.streams] == ["h264", "aac"]
        assert (c.streams.video[0].width, c.streams.video[0].frames) == (3 * 64, 50)  # your audio, silence, noise
    rows = [json.loads(line) for line in client.get(job["frames"]).text.splitlines()]
    assert [r["kind"] for r in rows] == ["video"] + ["frame"] * 50 + ["summary"]
    assert sum(r["above_threshold"] for r in rows[1:-1]) == job["above_threshold_frames"]


def test_video_jobs_refuse_what_they_cannot_make(service, media):
    from starlette.testclient import TestClient

    from sslsan.serve.app import create_app

    app = create_app(service, max_video_seconds=1.5)
    with TestClient(app) as c:
        assert c.get("/api/info").json()["max_video_seconds"] == 1.5
        r = _post(c, "/api/video", video=media / "clip.mp4")  # 2 s
        assert r.status_code == 422 and r.json()["error"] == (
            "clip.mp4: video too long (2.0 s); this server makes overlay videos of up to 1.5 s "
            "(sslsan serve --max-video-seconds), and `sslsan localize --video` has no limit")
        r = _post(c, "/api/video", video=media / "silent.mp4")
        assert r.status_code == 422 and r.json()["error"].startswith("silent.mp4: no audio track")
        r = _post(c, "/api/video", video=media / "notes.txt")
        assert r.status_code == 422 and r.json()["error"].startswith("notes.txt: cannot decode video")
        r = _post(c, "/api/video", image=media / "cat.jpg", audio=media / "cat.wav")
        assert r.status_code == 400 and r.json()["error"] == "send one file named video (got: audio, image)"
        r = _post(c, "/api/video?panels=laughter", video=media / "clip.mp4")
        assert r.status_code == 400 and "unknown panel 'laughter'" in r.json()["error"]
        r = c.get("/api/video/0123456789abcdef")
        assert r.status_code == 404 and "no video job 0123456789abcdef" in r.json()["error"]
        assert c.get("/api/video/0123456789abcdef/overlay.mp4").status_code == 404
        assert list(app.state.jobs.root.iterdir()) == []  # refused uploads are not kept
    assert not app.state.jobs.root.exists()  # the server stopped: its videos are gone


def test_examples(client, examples_manifest):
    from sslsan.data.manifest import read_manifest

    samples = list(read_manifest(examples_manifest))
    info = client.get("/api/info").json()
    assert info["max_upload_mb"] == 50 and info["threshold"] is not None
    assert [(e["id"], e["category"]) for e in info["examples"]] == [(s.id, s.category) for s in samples]
    first = read_manifest(examples_manifest).resolve(samples[0].image)
    assert client.get(info["examples"][0]["image"]).content == first.read_bytes()
    r = client.post("/api/examples/0")
    assert r.status_code == 200 and r.json()["boxes"] == samples[0].boxes and r.json()["name"] == samples[0].id
    m = read_manifest(examples_manifest)
    upload = _post(client, image=m.resolve(samples[0].image), audio=m.resolve(samples[0].audio)).json()
    assert [e["values"] for e in r.json()["maps"]] == [e["values"] for e in upload["maps"]]
    assert client.post("/api/examples/1.png").headers["content-type"] == "image/png"
    r = client.post("/api/examples/7")
    assert r.status_code == 404 and r.json() == {"error": "no example 7 (there are 3)"}


def test_examples_put_one_per_category_first(tmp_path):
    from sslsan.serve.service import load_examples

    samples = [Sample(id=f"s{i}", image="i.jpg", audio="a.wav", category=c) for i, c in enumerate("aabacb")]
    ids = [e.id for e in load_examples(write_manifest(tmp_path / "m.jsonl", samples), n=4)]
    assert ids == ["s0", "s2", "s4", "s1"]


def test_page_is_self_contained(client):
    page = client.get("/").text
    assert 'id="localize"' in page and "50</span> MB" in page
    for path in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert path.startswith("/static/") or path.startswith("data:"), f"the page must not load {path} from elsewhere"
        if path.startswith("/static/"):
            asset = client.get(path)
            assert asset.status_code == 200 and not re.search(r"https?://", asset.text), path


# --------------------------------------------------------------------------------- the command


def test_serve_without_checkpoint_says_how_to_get_one(tmp_path, capsys, monkeypatch):
    from sslsan.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "make demo" in err and "sslsan train" in err and "--checkpoint" in err


def test_serve_reports_a_busy_port(checkpoint, capsys):
    import socket

    from conftest import command

    main = command("serve")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        assert main(["--checkpoint", str(checkpoint), "--port", str(s.getsockname()[1]), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "cannot listen on 127.0.0.1:" in err and "choose another --port" in err


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, checkpoint, examples_manifest):
    """`sslsan serve` as a user starts it: the demo folder layout, no --checkpoint, a free port."""
    demo = tmp_path_factory.mktemp("cwd") / "demo_out"
    (demo / "runs" / "ssl_san_seed0" / "checkpoints").mkdir(parents=True)
    shutil.copy(checkpoint, demo / "runs" / "ssl_san_seed0" / "checkpoints" / "best.pt")
    shutil.copytree(examples_manifest.parent, demo / "data")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "sslsan", "serve", "--port", "0", "--device", "auto"], cwd=demo.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if found := re.search(r"open (http://127\.0\.0\.1:\d+/)", line):
                yield {"url": found.group(1), "banner": "".join(lines)}
                break
        else:
            pytest.fail("sslsan serve did not start in 120 s")
        if not found:
            pytest.fail(f"sslsan serve exited: {''.join(lines)}{proc.stderr.read()}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_command_serves_the_demo_model_and_examples(live_server):
    import json
    import urllib.request

    assert "demo_out/runs/ssl_san_seed0/checkpoints/best.pt" in live_server["banner"]
    assert "3 examples from demo_out/data/test_vggss.jsonl" in live_server["banner"]
    with urllib.request.urlopen(live_server["url"] + "api/info", timeout=30) as r:
        info = json.loads(r.read())
    auto = "cuda" if torch.cuda.is_available() else "cpu"  # --device auto
    assert len(info["examples"]) == 3 and info["device"].split(":")[0] == auto and f" on {info['device']}" in live_server["banner"]


def test_concurrent_requests_do_not_mix(live_server, media):
    """Two inputs, interleaved from 4 threads against the real server: every answer is its input's."""
    from sslsan.serve.client import post_files

    inputs = {"cat": {"image": media / "cat.jpg", "audio": media / "cat.wav"},
              "drum": {"image": media / "drum.png", "audio": media / "drum.flac"}}

    def one(name):
        return name, *post_files(live_server["url"] + "api/localize", inputs[name], timeout=60)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, ["cat", "drum"] * 6))
    assert {status for _, status, _ in results} == {200}
    for name in inputs:
        bodies = {body for n, _, body in results if n == name}
        assert len(bodies) == 1, f"{name}: {len(bodies)} different answers"
    assert len({body for _, _, body in results}) == 2


# ------------------------------------------------------------------------------------- the page


@pytest.fixture(scope="module")
def chromium():
    """Playwright and the system Chromium (Debian's package; SSLSAN_CHROMIUM overrides). No browser is
    downloaded. Missing either fails the test unless SSLSAN_ALLOW_NO_BROWSER=1."""
    given = os.environ.get("SSLSAN_CHROMIUM")
    candidates = [given] if given else ["/usr/bin/chromium", *(shutil.which(n) for n in ("chromium", "chromium-browser"))]
    exe = next((p for p in candidates if p and Path(p).is_file()), None)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        exe = None
    if exe is None:
        msg = ("no headless browser for the page test: `make test` installs Debian's chromium and the Playwright "
               "package; or set SSLSAN_CHROMIUM=/path/to/chromium (SSLSAN_ALLOW_NO_BROWSER=1 skips this test)")
        if os.environ.get("SSLSAN_ALLOW_NO_BROWSER") == "1":
            pytest.skip(msg)
        pytest.fail(msg)
    return sync_playwright, exe


def _expected_active(entry: dict, threshold: float) -> int:
    from sslsan.evaluation.figures import thresholded

    return int((thresholded(_decode(entry), threshold) > 0).sum())


def test_page_in_a_real_browser(chromium, live_server, media, tmp_path, client):
    sync_playwright, exe = chromium
    expected = client.post("/api/localize", files={"image": ("cat.jpg", (media / "cat.jpg").read_bytes()),
                                                   "audio": ("cat.wav", (media / "cat.wav").read_bytes())}).json()
    positive = expected["maps"][0]
    problems = []
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=exe, headless=True,
                                                    args=CHROMIUM_FLAGS, viewport={"width": 1040, "height": 900})
        try:
            page = ctx.new_page()
            page.set_default_timeout(30_000)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" and " 422 " not in m.text else None)
            page.goto(live_server["url"])
            page.wait_for_selector("#example-2")  # the demo's examples are one click away
            assert "universal threshold" in page.inner_text("#model")

            page.set_input_files("#image-input", str(media / "cat.jpg"))
            page.set_input_files("#audio-input", str(media / "cat.wav"))
            page.click("#localize")
            page.wait_for_selector("#overlay-positive[data-active]")
            assert page.is_visible("#overlay-positive") and page.is_visible("#overlay-silence") and page.is_visible("#overlay-noise")
            assert page.inner_text("#max-positive") == f"{positive['max']:.4f}"
            assert page.inner_text("#threshold-value") == f"{expected['threshold']:.4f}"
            active = int(page.get_attribute("#overlay-positive", "data-active"))
            assert 0 < active < 224 * 224 and active == _expected_active(positive, expected["threshold"])
            before = page.evaluate("document.getElementById('overlay-positive').toDataURL()")
            page.screenshot(path=str(tmp_path / "serve_page.png"), full_page=True)

            page.focus("#threshold")
            page.keyboard.press("Home")  # the slider's low end: more of the map is coloured
            thr = float(page.get_attribute("#overlay-positive", "data-threshold"))
            assert thr < expected["threshold"] and page.inner_text("#threshold-value") == f"{thr:.4f}"
            moved = int(page.get_attribute("#overlay-positive", "data-active"))
            assert moved > active and moved == _expected_active(positive, thr)
            assert page.evaluate("document.getElementById('overlay-positive').toDataURL()") != before
            with page.expect_download() as download:  # the Fig. 2 PNG at the slider's threshold
                page.click("#download")
            assert download.value.suggested_filename == "sslsan_overlay.png"
            assert Image.open(download.value.path()).format == "PNG"

            page.set_input_files("#audio-input", str(media / "broken.mp3"))
            page.click("#localize")
            page.wait_for_selector("#error:not([hidden])")
            assert page.inner_text("#error").startswith("broken.mp3: cannot decode audio")
            assert page.is_hidden("#result")

            page.set_input_files("#video-input", str(media / "clip.mp4"))  # and it still serves
            page.click("#localize")
            page.wait_for_selector("#result:not([hidden])")
            assert page.inner_text("#result-name") == "clip.mp4" and page.is_hidden("#error")

            # the overlay video of every frame: progress, then a <video> that plays it (H.264 + AAC)
            page.click("#video-overlay")
            page.wait_for_selector("#video-result:not([hidden])")
            page.wait_for_selector("#overlay-video:not([hidden])", timeout=120_000)
            assert page.inner_text("#video-title") == "clip.mp4: every frame"
            assert page.inner_text("#video-name").startswith("clip.mp4 (")  # the drop zone keeps the file's name
            assert page.get_attribute("#video-progress", "value") == page.get_attribute("#video-progress", "max") == "50"
            assert page.inner_text("#video-status").startswith("done: 50 frames, 2.00 s")
            page.wait_for_function("document.getElementById('overlay-video').readyState >= 2")
            playing = page.evaluate("""async () => {
                const v = document.getElementById('overlay-video');
                v.muted = true;
                await v.play();
                await new Promise((resolve) => setTimeout(resolve, 700));
                return {duration: v.duration, time: v.currentTime, width: v.videoWidth, height: v.videoHeight,
                        error: v.error && v.error.message};
            }""")
            assert playing["error"] is None and (playing["width"], playing["height"]) == (64, 64)
            assert abs(playing["duration"] - 2.0) <= 1 / 25 and playing["time"] > 0.2, playing
            assert page.get_attribute("#video-download", "href").endswith("/overlay.mp4")
            page.screenshot(path=str(tmp_path / "serve_video.png"), full_page=True)

            page.click("#example-1")  # one click: a scene of the embedded benchmark, its box drawn in green
            page.wait_for_function("document.getElementById('result-name').textContent.startsWith('test_vggss_000001')")
            page.wait_for_selector("#overlay-positive[data-active]")
            page.screenshot(path=str(tmp_path / "serve_example.png"), full_page=True)
        finally:
            ctx.close()
    assert not problems, problems
    shot = Image.open(tmp_path / "serve_page.png")
    assert shot.width >= 1000 and shot.height > 600
    print(f"screenshots: {tmp_path / 'serve_page.png'}, {tmp_path / 'serve_video.png'}, {tmp_path / 'serve_example.png'}")
