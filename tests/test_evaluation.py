"""Evaluation suite: tiny end-to-end evaluate on real JPEG/WAV files, score/compare/localize CLIs,
negatives (D1), offscreen assignment (D7), and the error messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY_AUDIO, command, tiny_localizer, write_audio, write_split

from sslsan.audio import AudioConfig, LogMelSpectrogram
from sslsan.data.manifest import Sample, read_manifest, write_manifest

REPS = 2


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_data):
    """The tiny data set (test_vggss: 7 samples, val: 4) and an untrained width-0.125 checkpoint."""
    from sslsan.methods.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("tiny")
    data = tiny_data
    tiny = tiny_localizer()
    ckpt = save_checkpoint(root / "run" / "checkpoints" / "best.pt", tiny.model, tiny.spec)
    return {"root": root, "data": data, "ckpt": ckpt}


@pytest.fixture(scope="module")
def evaluated(tiny):
    from sslsan.evaluation import evaluate_checkpoint

    out = tiny["root"] / "eval"
    m = evaluate_checkpoint(tiny["ckpt"], "synth-vggss", tiny["data"], out, repetitions=REPS, batch_size=3,
                            figure_examples=2, progress=False)
    return {**tiny, "out": out, "metrics": m}


def _box_pixels(box: list[float]) -> int:
    """GT pixels of one normalised box at 224 px: coordinates floored (D4), half-open."""
    x1, y1, x2, y2 = (int(np.floor(v * 224)) for v in box)
    return (x2 - x1) * (y2 - y1)


def test_evaluate_writes_everything(evaluated):
    out, m = evaluated["out"], evaluated["metrics"]
    areas = [sum(map(_box_pixels, s.boxes)) for s in read_manifest(evaluated["data"] / "test_vggss.jsonl")]
    for f in ("maps.npz", "metrics.json", "report.md", "offscreen.json", "fig1_max_similarity.png", "log.jsonl"):
        assert (out / f).stat().st_size > 0, f
    assert len(list(out.glob("fig2_*.png"))) == 2
    with np.load(out / "maps.npz") as z:
        assert z["pos_maps"].shape == (7, 4, 4) and z["pos_maps"].dtype == np.float32
        for t in ("silence", "noise", "offscreen"):
            assert z[f"neg_maps_{t}"].shape == (REPS, 7, 4, 4)
        assert z["gt_maps"].shape == (7, 224, 224) and z["gt_maps"].dtype == np.uint8
        assert areas[1] == 0 and areas[0] > 0  # sample 1 has no box
        assert z["gt_maps"].reshape(7, -1).sum(axis=1).tolist() == areas
        assert z["similarity"].shape == (7, 7) and z["image_emb"].shape == z["audio_emb"].shape == (7, 64)
        assert list(z["ids"]) == [s.id for s in read_manifest(evaluated["data"] / "test_vggss.jsonl")]
        # silence does not depend on the repetition; noise does
        assert np.array_equal(z["neg_maps_silence"][0], z["neg_maps_silence"][1])
        assert not np.array_equal(z["neg_maps_noise"][0], z["neg_maps_noise"][1])
        # retrieval diagonal = positive max: both are the max of the same cosine map
        np.testing.assert_allclose(np.diag(z["similarity"]), z["pos_maps"].max(axis=(1, 2)), atol=1e-6)
    # no stored threshold, val.jsonl exists: calibrated there, and the record says so
    assert "val.jsonl" in m["threshold_info"]["source"] and m["threshold_info"]["n_samples"] == 4
    assert set(m["localization"]) >= {"ciou_u", "auc_u", "ciou_a", "auc_a", "floc", "fauc", "pia_silence", "aucn_offscreen"}
    assert {"uniform", "centre"} <= set(m["reference_maps"])
    assert "i2a_P@1" in m["retrieval"] and "magnitude" in m["alignment"]
    # uniform map predicts everything: its mean cIoU is the GT area fraction, averaged
    gt_frac = np.mean(areas) / 224**2
    assert m["reference_maps"]["uniform"]["ciou_u"] == pytest.approx(100 * gt_frac)
    report = (out / "report.md").read_text()
    for head in ("Table 1", "Table 2", "Table 3", "FLOC", "Separability", "A→I P@10", "centre map"):
        assert head in report


def test_maps_match_a_direct_model_call(evaluated):
    """Fast batched maps == the model's own similarity_map on the same inputs (slow, obvious path)."""
    from sslsan.data.datasets import AVDataset
    from sslsan.data.transforms import ImageEvalTransform
    from sslsan.evaluation.negatives import negative_spectrograms
    from sslsan.methods.checkpoint import load_model

    loaded = load_model(evaluated["ckpt"])
    model = loaded.model
    man = read_manifest(evaluated["data"] / "test_vggss.jsonl")
    ds = AVDataset(man, ImageEvalTransform(64), audio=loaded.spec.audio)
    fe = LogMelSpectrogram(loaded.spec.audio)
    z = np.load(evaluated["out"] / "maps.npz")
    off = json.loads((evaluated["out"] / "offscreen.json").read_text())
    ids = [s.id for s in man]
    with torch.no_grad():
        for i in (0, 5):
            img = ds[i]["image"][None]
            direct = model.similarity_map(img, fe(ds[i]["wave"][None]))[0, 0].numpy()
            np.testing.assert_allclose(z["pos_maps"][i], direct, atol=1e-5)
            j = ids.index(off["offscreen_ids"][1][i])
            np.testing.assert_allclose(z["neg_maps_offscreen"][1, i], model.similarity_map(img, fe(ds[j]["wave"][None]))[0, 0].numpy(), atol=1e-5)
            spec = negative_spectrograms("noise", [i], fe, seed=0, rep_seed=off["repetition_seeds"][1])
            np.testing.assert_allclose(z["neg_maps_noise"][1, i], model.similarity_map(img, spec)[0, 0].numpy(), atol=1e-5)
            spec = negative_spectrograms("silence", [i], fe)
            np.testing.assert_allclose(z["neg_maps_silence"][0, i], model.similarity_map(img, spec)[0, 0].numpy(), atol=1e-5)


def test_noise_pool_shares_clips(evaluated):
    """noise_pool=K: sample i hears noise clip i mod K (the same clip keyed (seed, rep, i mod K))."""
    from sslsan.evaluation.inference import run_inference
    from sslsan.methods.checkpoint import load_model

    loaded = load_model(evaluated["ckpt"])
    model = loaded.model
    man = read_manifest(evaluated["data"] / "test_vggss.jsonl")
    full = np.load(evaluated["out"] / "maps.npz")
    res = run_inference(loaded, man, repetitions=REPS, batch_size=3, noise_pool=2, retrieval=False, progress=False)
    np.testing.assert_allclose(res.neg_maps["noise"][:, :2], full["neg_maps_noise"][:, :2], atol=1e-6)  # keys 0, 1
    assert not np.allclose(res.neg_maps["noise"][:, 2:], full["neg_maps_noise"][:, 2:], atol=1e-6)
    np.testing.assert_allclose(res.neg_maps["offscreen"], full["neg_maps_offscreen"], atol=1e-6)
    # sample 2 hears clip 0 of the repetition
    from sslsan.data.transforms import ImageEvalTransform, load_image
    from sslsan.evaluation.negatives import negative_spectrograms

    img = ImageEvalTransform(64)(load_image(man.resolve(man[2].image)))[None]
    spec = negative_spectrograms("noise", [0], LogMelSpectrogram(loaded.spec.audio), seed=0, rep_seed=1234)
    with torch.no_grad():
        np.testing.assert_allclose(res.neg_maps["noise"][0, 2], model.similarity_map(img, spec)[0, 0].numpy(), atol=1e-5)
    assert res.extra["noise_pool"] == 2


def test_score_reproduces_metrics_json(evaluated, capsys):
    from sslsan.evaluation import score_maps
    score_main = command("score")

    saved = json.loads((evaluated["out"] / "metrics.json").read_text())
    scored = score_maps(evaluated["out"] / "maps.npz")
    assert scored and all(saved[k] == v for k, v in scored.items()), [k for k, v in scored.items() if saved[k] != v]
    out_json = evaluated["root"] / "rescored.json"
    assert score_main([str(evaluated["out"] / "maps.npz"), "--out", str(out_json)]) == 0
    rescored = json.loads(out_json.read_text())
    assert all(rescored[k] == saved[k] for k in scored)
    assert "Table 2" in capsys.readouterr().out
    # another threshold changes the universal metrics but not the adaptive ones
    other = score_maps(evaluated["out"] / "maps.npz", threshold=saved["threshold"] + 0.05)
    assert other["threshold"] != saved["threshold"]
    assert other["localization"]["ciou_a"] == saved["localization"]["ciou_a"]


def test_compare_two_runs(evaluated, tmp_path, capsys):
    compare_main = command("compare")

    second = tmp_path / "given_threshold"
    from sslsan.evaluation import evaluate_checkpoint

    cache = json.loads(evaluated["ckpt"].with_name("best.pt.uth.json").read_text())
    assert len(cache) == 1 and cache[0]["info"]["value"] == evaluated["metrics"]["threshold"]
    # repeat the first run from its offscreen.json (its repetitions and seed win), at a given threshold
    m2 = evaluate_checkpoint(evaluated["ckpt"], "synth-vggss", evaluated["data"], second, repetitions=5, seed=9,
                             threshold=0.5, batch_size=3, figure_examples=1, offscreen=evaluated["out"] / "offscreen.json",
                             progress=False)
    assert m2["threshold_info"] == {"value": 0.5, "source": "given"} and m2["repetitions"] == REPS
    m3 = evaluate_checkpoint(evaluated["ckpt"], "synth-vggss", evaluated["data"], tmp_path / "again", repetitions=REPS,
                             batch_size=8, figure_examples=0, progress=False)  # same calibration: memoised
    assert m3["threshold"] == evaluated["metrics"]["threshold"] and m3["threshold_info"]["cached"].endswith("best.pt.uth.json")
    with np.load(evaluated["out"] / "maps.npz") as a, np.load(second / "maps.npz") as b:
        for k in ("pos_maps", "neg_maps_silence", "neg_maps_noise", "neg_maps_offscreen", "similarity", "offscreen_index"):
            assert np.array_equal(a[k], b[k]), k  # bit-exact repeat (same device and batch size)
    assert compare_main([str(evaluated["out"]), str(second / "metrics.json"), "--names", "SSL-SaN", "SSL-TIE",
                         "--out", str(tmp_path / "cmp.md"), "--figure", str(tmp_path / "fig1.png")]) == 0
    text = capsys.readouterr().out
    assert (tmp_path / "fig1.png").stat().st_size > 0
    assert "| SSL-SaN |" in text and "| SSL-TIE |" in text
    for head in ("Table 2", "Table 1", "Table 3", "Table 4", "uniform map", "FLOC ↑", "Sep ↑"):
        assert head in text
    assert text.startswith((tmp_path / "cmp.md").read_text())
    from sslsan.evaluation import compare_runs

    default = compare_runs([evaluated["out"], second])  # same model twice: unique default row names
    assert "| run |" in default and "| run (2) |" in default
    assert compare_main([str(evaluated["out"]), "--names", "a", "b"]) == 2
    assert "2 names for 1 runs" in capsys.readouterr().err


def test_offscreen_assignment_rules():
    from sslsan.data.manifest import Manifest
    from sslsan.evaluation.negatives import assign_offscreen

    cats = ["a", "b", "c", "d"]
    samples = [Sample(id=f"s{i}", image="x.jpg", audio="x.wav", category=cats[i % 4],
                      scene_categories=[cats[i % 4], cats[(i + 1) % 4]] if i % 2 else []) for i in range(40)]
    man = Manifest(path=Path("/nonexistent/m.jsonl"), samples=samples)
    a = assign_offscreen(man, repetitions=10, seed=3)
    assert a.index.shape == (10, 40) and a.fallback == 0
    for r in range(10):
        for i, s in enumerate(samples):
            other = samples[a.index[r, i]]
            assert other.category != s.category and other.category not in s.scene_categories
    assert np.array_equal(a.index, assign_offscreen(man, repetitions=10, seed=3).index)
    assert not np.array_equal(a.index, assign_offscreen(man, repetitions=10, seed=4).index)
    assert len(np.unique(a.index[:, 0])) > 1  # repetitions draw differently
    # prefix property: the first R repetitions do not depend on how many are drawn
    assert np.array_equal(assign_offscreen(man, repetitions=3, seed=3).index, a.index[:3])
    # class-uniform: sample 0 (cat a, no scene) draws b, c, d about equally often
    big = assign_offscreen(man, repetitions=300, seed=0).index[:, 0]
    counts = np.bincount([cats.index(samples[j].category) for j in big], minlength=4)
    assert counts[0] == 0 and counts[1:].min() > 70
    # single category: falls back to any other clip, counted
    one = Manifest(path=man.path, samples=[Sample(id=f"t{i}", image="x", audio="y", category="a") for i in range(3)])
    b = assign_offscreen(one, repetitions=4)
    assert b.fallback == 12 and all(b.index[r, i] != i for r in range(4) for i in range(3))


def test_offscreen_json_roundtrip(evaluated):
    from sslsan.evaluation.negatives import load_offscreen_assignment

    man = read_manifest(evaluated["data"] / "test_vggss.jsonl")
    a = load_offscreen_assignment(evaluated["out"] / "offscreen.json", man)
    z = np.load(evaluated["out"] / "maps.npz")
    assert np.array_equal(a.index, z["offscreen_index"]) and a.seeds == list(z["repetition_seeds"])
    assert a.seeds == [1234, 2345]


def test_negative_spectrograms_front_end():
    from sslsan.evaluation.negatives import negative_spectrograms

    fe = LogMelSpectrogram(AudioConfig(**TINY_AUDIO))
    sil = negative_spectrograms("silence", [0, 1], fe)
    assert sil.shape == (2, 1, 32, fe.n_frames) and torch.all(sil == -100.0)  # 10·log10(1e-10), D1
    lin = LogMelSpectrogram(AudioConfig(**TINY_AUDIO, negatives_in_db=False))
    assert torch.all(negative_spectrograms("silence", [0], lin) == 0)  # vssl_eval: linear power
    a = negative_spectrograms("noise", [4, 7], fe, seed=1, rep_seed=1234)
    b = negative_spectrograms("noise", [7], fe, seed=1, rep_seed=1234)
    # per-sample generator: batch composition does not matter (up to the float rounding of a batched matmul)
    torch.testing.assert_close(a[1], b[0], rtol=0, atol=1e-3)
    assert not torch.allclose(a[0], a[1], rtol=0, atol=1.0)
    assert not torch.equal(b, negative_spectrograms("noise", [7], fe, seed=1, rep_seed=2345))
    assert torch.all(negative_spectrograms("noise", [7], lin, seed=1, rep_seed=1234) >= 0)
    with pytest.raises(ValueError, match="unknown waveform negative"):
        negative_spectrograms("music", [0], fe)


def test_localize_png_and_odd_stereo_flac(tiny, tmp_path, capsys):
    localize_main = command("localize")

    Image.fromarray((np.random.default_rng(0).random((37, 51, 4)) * 255).astype(np.uint8), "RGBA").save(tmp_path / "me.png")
    t = np.arange(44101 * 2 + 1) / 44100.0  # odd length, 44.1 kHz, stereo
    write_audio(tmp_path / "me.flac", np.stack([np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 220 * t)]) * 0.5, 44100)
    out = tmp_path / "out"
    assert localize_main(["--checkpoint", str(tiny["ckpt"]), "--image", str(tmp_path / "me.png"),
                          "--audio", str(tmp_path / "me.flac"), "--out", str(out), "--threshold", "0.3"]) == 0
    res = json.loads((out / "localize.json").read_text())[0]
    m = np.load(out / "me_map.npy")
    assert m.shape == (4, 4) and res["map_max"] == pytest.approx(float(m.max()))
    assert (out / "me_overlay.png").stat().st_size > 0 and "map max" in capsys.readouterr().out
    # folder of pairs: stems pair up, a lonely file is reported and skipped
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    for stem in ("a", "b"):
        (pairs / f"{stem}.png").write_bytes((tmp_path / "me.png").read_bytes())
        (pairs / f"{stem}.flac").write_bytes((tmp_path / "me.flac").read_bytes())
    (pairs / "c.jpg").write_bytes(b"")
    assert localize_main(["--checkpoint", str(tiny["ckpt"]), "--pairs", str(pairs), "--out", str(out)]) == 0
    assert [r["stem"] for r in json.loads((out / "localize.json").read_text())] == ["a", "b"]
    assert "without a partner: c.jpg" in capsys.readouterr().err
    # a broken audio file: one-line error naming it
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    assert localize_main(["--checkpoint", str(tiny["ckpt"]), "--image", str(tmp_path / "me.png"),
                          "--audio", str(tmp_path / "bad.wav"), "--out", str(out)]) == 2
    assert "bad.wav" in capsys.readouterr().err


def test_errors(tiny, tmp_path, capsys):
    from sslsan.evaluation import EvaluationError, MapsFileError, evaluate_checkpoint, score_maps
    evaluate_main = command("evaluate")
    from sslsan.evaluation.inference import _run
    from sslsan.utils.io import atomic_savez

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "test_vggss.jsonl").write_text("")
    with pytest.raises(EvaluationError, match="test_vggss.jsonl: test set is empty"):
        evaluate_checkpoint(tiny["ckpt"], "synth-vggss", empty, tmp_path / "o", progress=False)
    with pytest.raises(FileNotFoundError, match="no manifest for dataset 'synth-is3'"):
        evaluate_checkpoint(tiny["ckpt"], "synth-is3", empty, tmp_path / "o", progress=False)
    # maps file lacking arrays: they are named
    atomic_savez(tmp_path / "partial.npz", ids=np.array(["a"]), pos_maps=np.zeros((1, 4, 4), np.float32))
    with pytest.raises(MapsFileError, match="missing array.*neg_maps_silence, neg_maps_noise, neg_maps_offscreen, gt_maps"):
        score_maps(tmp_path / "partial.npz")
    with pytest.raises(MapsFileError, match="maps file not found"):
        score_maps(tmp_path / "nope.npz")
    # checkpoint that does not fit (audio tower of another width): CLI exits 2 with a one-line message
    ck = torch.load(tiny["ckpt"], weights_only=False)
    ck["state_dict"] = {k: (v[:, :0] if k == "audnet.conv1.weight" else v) for k, v in ck["state_dict"].items()}
    torch.save(ck, tmp_path / "bad.pt")
    rc = evaluate_main(["--checkpoint", str(tmp_path / "bad.pt"), "--dataset", "synth-vggss",
                        "--data-root", str(tiny["data"]), "--out", str(tmp_path / "o2"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "bad.pt" in err and len(err.strip().splitlines()) == 1
    # a model call that fails on the data's shapes becomes a mismatch error naming the data

    def boom():
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x8 and 16x2)\nmore")

    with pytest.raises(EvaluationError, match="data.jsonl: the checkpoint cannot process this data"):
        _run(boom, "data.jsonl")


def test_threshold_sources(tiny, tmp_path):
    """auto: the checkpoint's stored U_th; else the calibration split; else the test set (stated)."""
    from sslsan.data.manifest import read_manifest as rm
    from sslsan.evaluation import EvaluationConfig
    from sslsan.evaluation.calibrate import resolve_threshold
    from sslsan.evaluation.evaluate import read_test_manifest
    from sslsan.methods.checkpoint import load_model, save_checkpoint

    model = load_model(tiny["ckpt"])
    test = read_test_manifest(tiny["data"] / "test_vggss.jsonl")
    cfg = EvaluationConfig(seed=0, repetitions=1, batch_size=8)
    kw = dict(device="cpu", progress=False)
    given = cfg.with_(threshold="0.25")
    assert resolve_threshold(model, "synth-vggss", tiny["data"], test, given, **kw) == (0.25, {"value": 0.25, "source": "given"})
    # no val.jsonl beside this test manifest (absolute paths): calibrated on the test set, and said so
    lone = tmp_path / "lone"
    lone.mkdir()
    samples = [dataclass_replace(s, image=str(test.resolve(s.image)), audio=str(test.resolve(s.audio))) for s in test]
    write_manifest(lone / "test_vggss.jsonl", samples)
    v, info = resolve_threshold(model, "synth-vggss", lone, rm(lone / "test_vggss.jsonl"), cfg, **kw)
    assert "test set itself" in info["source"] and info["n_samples"] == 7 and info["value"] == v
    assert max(info["q3_by_type"].values()) == v  # D6 per-type: max over types of the per-type Q3
    stored = save_checkpoint(tmp_path / "thr.pt", model.model, model.spec.replace(universal_threshold=0.4242))
    v, info = resolve_threshold(load_model(stored), "synth-vggss", lone, test, cfg, **kw)
    assert (v, info["source"]) == (0.4242, "checkpoint")
    v, info = resolve_threshold(load_model(stored), "synth-vggss", lone, test, cfg.with_(threshold="calibrate"), **kw)
    assert v != 0.4242 and info["source"].startswith("calibrated")  # 'calibrate' ignores the stored one
    with pytest.raises(ValueError, match="'auto', 'calibrate' or a number"):
        resolve_threshold(model, "synth-vggss", lone, test, cfg.with_(threshold="high"), **kw)


def dataclass_replace(obj, **kw):
    import dataclasses

    return dataclasses.replace(obj, **kw)


def test_mask_ground_truth(tmp_path):
    from sslsan.data.manifest import Manifest
    from sslsan.evaluation import EvaluationError
    from sslsan.evaluation.inference import gt_maps

    mask = np.zeros((100, 50), np.uint8)
    mask[:50, :25] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    man = Manifest(path=tmp_path / "x.jsonl", samples=[Sample(id="a", image="i.jpg", audio="a.wav", mask="m.png"),
                                                       Sample(id="b", image="i.jpg", audio="a.wav", boxes=[[0, 0, 0.5, 0.5]])])
    with pytest.raises(EvaluationError, match="sample 'b' has no mask"):
        gt_maps(man, "mask")
    g = gt_maps(Manifest(path=man.path, samples=man.samples[:1]), "mask")
    assert g.dtype == np.uint8 and g[0, :112, :112].all() and g[0].sum() == 112 * 112
    assert np.array_equal(gt_maps(Manifest(path=man.path, samples=man.samples[1:]), "boxes")[0], g[0])


def test_localize_video(tiny, tmp_path, capsys):
    """A video alone gives both the frame (middle) and the sound around it; also inside --pairs."""
    from synthetic_media import write_video
    localize_main = command("localize")

    write_video(tmp_path / "clip.mp4", seconds=2.0, width=64, height=64, codec="mpeg4")  # 440 Hz AAC track
    out = tmp_path / "out"
    assert localize_main(["--checkpoint", str(tiny["ckpt"]), "--video", str(tmp_path / "clip.mp4"), "--out", str(out)]) == 0
    assert np.load(out / "clip_map.npy").shape == (4, 4) and (out / "clip_overlay.png").exists()
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    (pairs / "v.mp4").write_bytes((tmp_path / "clip.mp4").read_bytes())
    assert localize_main(["--checkpoint", str(tiny["ckpt"]), "--pairs", str(pairs), "--out", str(out)]) == 0
    assert [r["stem"] for r in json.loads((out / "localize.json").read_text())] == ["v"]


def test_score_maps_of_another_model(tmp_path, capsys):
    """A hand-made maps.npz (7 x 7 maps, required arrays only) scores to known values."""
    from sslsan.evaluation import score_maps
    score_main = command("score")
    from sslsan.utils.io import atomic_savez

    n, r = 4, 3
    gt = np.zeros((n, 224, 224), np.uint8)
    gt[:, :112, :] = 1  # half the image
    pos = np.ones((n, 7, 7), np.float32)  # everything above U_th: cIoU = 0.5 for every sample
    neg = np.zeros((r, n, 7, 7), np.float32)
    neg_noise = neg.copy()
    neg_noise[:, 0] = 1.0  # sample 0 fully highlighted under noise in every repetition
    atomic_savez(tmp_path / "other.npz", ids=np.array([f"s{i}" for i in range(n)]), pos_maps=pos, gt_maps=gt,
                 neg_maps_silence=neg[0], neg_maps_noise=neg_noise, neg_maps_offscreen=neg)  # (N, h, w): repeated R times
    with pytest.raises(ValueError, match="no 'threshold' array"):
        score_maps(tmp_path / "other.npz")
    m = score_maps(tmp_path / "other.npz", threshold=0.5)
    loc = m["localization"]
    assert loc["ciou_u"] == pytest.approx(50.0) and loc["pia_silence"] == 0.0 and loc["aucn_silence"] == pytest.approx(100.0)
    assert loc["pia_noise"] == pytest.approx(25.0)  # one sample in four at 100 %
    assert loc["floc"] == pytest.approx(2 * 50 * (100 - 25 / 3) / (50 + 100 - 25 / 3))
    assert m["separability"]["sep_silence"] == pytest.approx(1.0) and m["repetitions"] == 3 and m["map_size"] == [7, 7]
    assert "alignment" not in m and "retrieval" not in m
    assert score_main([str(tmp_path / "other.npz"), "--threshold", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "| 50.00 |" in out and "retrieval not computed" in out
    atomic_savez(tmp_path / "bad.npz", ids=np.array(["a", "b"]), pos_maps=pos[:2], gt_maps=gt[:2],
                 neg_maps_silence=neg[:, :2], neg_maps_noise=neg[:2, :2], neg_maps_offscreen=neg[:, :1])
    assert score_main([str(tmp_path / "bad.npz"), "--threshold", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "bad.npz" in err and "neg_maps_offscreen has shape (3, 1, 7, 7)" in err


@pytest.mark.slow
def test_paper_setting_end_to_end(tmp_path):
    """The paper's setting (ResNet-18 width 1, 224 px, 257 x 670 spectrograms of 10 s) gives 14 x 14 maps."""
    from sslsan.evaluation import evaluate_checkpoint
    from sslsan.methods import get_method
    from sslsan.methods.checkpoint import save_checkpoint
    from sslsan.models import Localizer

    data = tmp_path / "data"
    data.mkdir()
    write_split(data, "test_vggss", 3)
    torch.manual_seed(0)
    paper = get_method("ssl_tie").inference_spec(AudioConfig(), 224, 0.3338)  # SSL-TIE's published U_th
    ckpt = save_checkpoint(tmp_path / "paper.pt", Localizer(), paper)
    m = evaluate_checkpoint(ckpt, "synth-vggss", data, tmp_path / "eval", repetitions=1, batch_size=3,
                            figure_examples=1, progress=False)
    assert m["map_size"] == [14, 14] and m["threshold_info"]["source"] == "checkpoint" and m["threshold"] == 0.3338
    with np.load(tmp_path / "eval" / "maps.npz") as z:
        assert z["image_emb"].shape == (3, 512) and z["neg_maps_noise"].shape == (1, 3, 14, 14)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(evaluated, tmp_path, monkeypatch):
    """The same evaluation on CUDA gives the CPU's maps (TF32 off) and the same offscreen/noise draws."""
    from sslsan.evaluation import evaluate_checkpoint

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    evaluate_checkpoint(evaluated["ckpt"], "synth-vggss", evaluated["data"], tmp_path / "gpu", repetitions=REPS,
                        batch_size=3, figure_examples=0, device="cuda", progress=False)
    with np.load(evaluated["out"] / "maps.npz") as a, np.load(tmp_path / "gpu" / "maps.npz") as b:
        assert np.array_equal(a["offscreen_index"], b["offscreen_index"])
        for k in ("pos_maps", "neg_maps_silence", "neg_maps_noise", "neg_maps_offscreen", "similarity"):
            np.testing.assert_allclose(a[k], b[k], atol=1e-4, err_msg=k)


def test_per_category_scores_match_the_overall_metrics(tmp_path):
    """Category scores are the overall metrics restricted to each category's samples."""
    from sslsan.evaluation.per_category import category_scores, per_category_markdown
    from sslsan.metrics import localization_metrics

    rng = np.random.default_rng(0)
    n = 12
    pos = rng.random((n, 4, 4)).astype(np.float32)
    gt = np.zeros((n, 224, 224), np.uint8)
    gt[:, 20:120, 30:140] = 1
    neg = rng.random((1, n, 4, 4)).astype(np.float32) * 0.3
    labels = np.array(["a", "b", "c"] * 4)
    arrays = {"ids": np.array([f"s{i}" for i in range(n)]), "pos_maps": pos, "gt_maps": gt, "labels": labels,
              "threshold": np.float64(0.5), **{f"neg_maps_{t}": neg for t in ("silence", "noise", "offscreen")}}
    path = tmp_path / "maps.npz"
    np.savez(path, **arrays)
    per_cat = category_scores(path)
    assert set(per_cat) == {"a", "b", "c"} and all(v["n"] == 4 for v in per_cat.values())
    for cat in ("a", "b"):
        sel = labels == cat
        ref = localization_metrics(pos[sel], gt[sel], {"silence": neg[:, sel]}, 0.5)
        assert per_cat[cat]["ciou_u"] == pytest.approx(ref["ciou_u"], abs=1e-9)
        assert per_cat[cat]["ciou_a"] == pytest.approx(ref["ciou_a"], abs=1e-9)
        assert per_cat[cat]["max"] == pytest.approx(float(np.median(pos[sel].reshape(4, -1).max(1))))
    table = per_category_markdown({"A": [path], "B": [path, path]})
    assert table.count("\n") == 2 + 3 - 1 and "| a | 4 |" in table


def test_map_offset_measures_a_known_shift(tmp_path):
    """Gaussian maps centred (+9, -5) px from each GT box's centre give that offset."""
    from sslsan.evaluation.per_category import map_offset

    n, size = 4, 224
    ys, xs = np.mgrid[0:size, 0:size]
    gt = np.zeros((n, size, size), np.uint8)
    pos = np.zeros((n, size, size), np.float32)
    for i, (x0, y0) in enumerate([(40, 50), (100, 30), (60, 120), (130, 140)]):
        gt[i, y0 : y0 + 40, x0 : x0 + 50] = 1
        cx, cy = x0 + 24.5 + 9, y0 + 19.5 - 5
        pos[i] = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * 20.0**2))
    np.savez(tmp_path / "maps.npz", ids=np.array(["a", "b", "c", "d"]), pos_maps=pos, gt_maps=gt,
             **{f"neg_maps_{t}": pos[None] * 0 for t in ("silence", "noise", "offscreen")})
    dx, dy = map_offset(tmp_path / "maps.npz")
    assert dx == pytest.approx(9, abs=0.5) and dy == pytest.approx(-5, abs=0.5)
