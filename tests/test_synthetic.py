"""The embedded benchmark: determinism, real formats, mask/box geometry, IS3 pairing, distinct classes."""

from __future__ import annotations

import colorsys
import json
import wave
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import command
from sslsan.audio import AudioConfig, LogMelSpectrogram, load_audio
from sslsan.data.datasets import AVDataset
from sslsan.data.manifest import read_manifest
from sslsan.data.registry import DATASETS, dataset_manifest
from sslsan.data.synthetic import (
    CATEGORY_LIBRARY,
    SPLIT_MANIFESTS,
    SceneObject,
    SynthConfig,
    SynthError,
    generate_dataset,
    generate_item,
    make_scene,
    mask_box,
    mix_clip,
    preset_config,
    render_scene,
    synthesize_sound,
)
from sslsan.data.transforms import ImageEvalTransform, load_image
from sslsan.utils.seed import numpy_rng


def _generate(root: Path, seed: int, workers: int) -> Path:
    generate_dataset(preset_config("tiny", seed=seed), root, workers=workers, progress=False)
    return root


@pytest.fixture(scope="module")
def seed0(tmp_path_factory) -> Path:
    return _generate(tmp_path_factory.mktemp("seed0_w1"), 0, 1)


@pytest.fixture(scope="module")
def seed0_parallel(tmp_path_factory) -> Path:
    return _generate(tmp_path_factory.mktemp("seed0_w2"), 0, 2)


@pytest.fixture(scope="module")
def seed1(tmp_path_factory) -> Path:
    return _generate(tmp_path_factory.mktemp("seed1"), 1, 1)


def _manifests(root: Path):
    return {split: read_manifest(root / name, allow_empty=True) for split, name in SPLIT_MANIFESTS.items()}


def _mask(manifest, sample) -> np.ndarray:
    with Image.open(manifest.resolve(sample.mask)) as im:
        assert im.mode == "L"
        m = np.asarray(im)
    assert set(np.unique(m).tolist()) <= {0, 255}
    return m > 127


# ------------------------------------------------------------------------------------ determinism


def test_same_seed_gives_identical_files_for_any_worker_count(seed0, seed0_parallel):
    for name in [*SPLIT_MANIFESTS.values(), "dataset.json"]:
        assert (seed0 / name).read_bytes() == (seed0_parallel / name).read_bytes(), name
    files = sorted(p.relative_to(seed0) for p in seed0.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(seed0_parallel) for p in seed0_parallel.rglob("*") if p.is_file())
    for rel in files:
        assert (seed0 / rel).read_bytes() == (seed0_parallel / rel).read_bytes(), rel
    m = read_manifest(seed0 / "test_vggss.jsonl")
    m2 = read_manifest(seed0_parallel / "test_vggss.jsonl")
    for a, b in zip(m, m2):
        assert torch.equal(load_image(m.resolve(a.image)), load_image(m2.resolve(b.image)))
        assert torch.equal(load_audio(m.resolve(a.audio)), load_audio(m2.resolve(b.audio)))


def test_different_seeds_give_different_scenes(seed0, seed1):
    assert (seed0 / "train.jsonl").read_bytes() != (seed1 / "train.jsonl").read_bytes()
    a, b = read_manifest(seed0 / "train.jsonl"), read_manifest(seed1 / "train.jsonl")
    for x, y in zip(a, b):
        assert a.resolve(x.image).read_bytes() != b.resolve(y.image).read_bytes()
        assert a.resolve(x.audio).read_bytes()[44:] != b.resolve(y.audio).read_bytes()[44:]  # past the header
    x, y = a[0], b[0]
    assert not torch.equal(load_image(a.resolve(x.image)), load_image(b.resolve(y.image)))
    assert not torch.equal(load_audio(a.resolve(x.audio)), load_audio(b.resolve(y.audio)))


# ---------------------------------------------------------------------------------- formats, fields


def test_files_decode_with_the_project_loaders(seed0):
    cfg = preset_config("tiny")
    meta = json.loads((seed0 / "dataset.json").read_text())
    assert meta["generator"] == "sslsan.data.synthetic" and meta["seed"] == 0
    names = {c["name"] for c in meta["categories"]}
    for split, m in _manifests(seed0).items():
        assert meta["sizes"][SPLIT_MANIFESTS[split]] == len(m) > 0
        for i, s in enumerate(m):
            img = load_image(m.resolve(s.image))
            assert img.dtype == torch.uint8 and img.shape == (3, cfg.image_size, cfg.image_size)
            with wave.open(str(m.resolve(s.audio))) as w:
                assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
                assert w.getnframes() == cfg.clip_samples
            if i < 3:  # PyAV decoding is the slow part; the headers above cover every file
                wav = load_audio(m.resolve(s.audio))
                assert wav.dtype == torch.float32 and wav.shape == (cfg.clip_samples,)
                assert 0.2 < float(wav.abs().max()) <= 1.0
            assert _mask(m, s).shape == (cfg.image_size, cfg.image_size)
            assert s.category in names and s.category in s.scene_categories
            assert set(s.extra["sounding"]) <= set(s.scene_categories) <= names
            assert s.extra["sounding"][0] == s.category and s.extra["gains_db"][0] == 0.0
            assert not set(s.extra["silent"]) & set(s.extra["sounding"])
            assert len(s.boxes) == len(s.extra["sounding"])
    for name in ("synth-vggss", "synth-is3", "synth-val"):
        assert dataset_manifest(name, seed0) == seed0 / DATASETS[name].manifest
    item = AVDataset(seed0 / "train.jsonl", ImageEvalTransform(32))[5]
    assert item["image"].shape == (3, 32, 32) and item["wave"].shape == (AudioConfig().tile_samples,)


def test_boxes_are_the_bounding_boxes_of_the_masks(seed0):
    for split, m in _manifests(seed0).items():
        for s in m:
            mask = _mask(m, s)
            assert mask.any(), s.id
            boxes = np.array(s.boxes)
            union = [boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()]
            np.testing.assert_allclose(mask_box(mask), union, atol=1e-6)
            if split in ("test_vggss", "test_is3"):
                assert len(s.boxes) == 1


def _hue_deg(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hsv = np.array([colorsys.rgb_to_hsv(*(p / 255.0)) for p in rgb])
    return hsv[:, 0] * 360.0, hsv[:, 1]


def test_masks_cover_the_drawn_sounding_object(seed0):
    """Inside each single-source mask the frame has the category's hue (background is near grey)."""
    m = read_manifest(seed0 / "test_vggss.jsonl")
    hues = {c.name: c.hue for c in CATEGORY_LIBRARY}
    for s in m:
        mask = _mask(m, s)
        img = load_image(m.resolve(s.image)).permute(1, 2, 0).numpy()
        inner = mask.copy()  # drop the boundary ring, blurred by JPEG
        inner[1:-1, 1:-1] &= mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
        hue, sat = _hue_deg(img[inner if inner.sum() > 10 else mask].reshape(-1, 3).astype(np.float64))
        hue = hue[sat > 0.3]
        assert hue.size > 0.5 * inner.sum(), s.id  # the object is saturated, unlike the background
        mean = np.degrees(np.angle(np.exp(1j * np.radians(hue)).mean()))
        assert abs((mean - hues[s.category] + 180) % 360 - 180) < 25, (s.id, mean, s.category)


def test_disc_mask_and_box_match_the_geometry():
    size = 128
    obj = SceneObject(category=0, cx=0.4, cy=0.55, radius=0.2, angle=0.3, hue=0.0, sat=0.9, val=0.9, dark=0.5,
                      pattern_freq=3.0)
    assert CATEGORY_LIBRARY[0].shape == "disc"
    img, (mask,) = render_scene([obj], numpy_rng(0, 1), size)
    assert img.shape == (size, size, 3) and img.dtype == np.uint8
    r = obj.radius * size
    assert abs(mask.sum() - np.pi * r * r) < 0.03 * np.pi * r * r
    np.testing.assert_allclose(mask_box(mask), [0.2, 0.35, 0.6, 0.75], atol=1.5 / size)
    # an object drawn on top hides part of the first one: visible masks are disjoint
    top = SceneObject(category=1, cx=0.55, cy=0.55, radius=0.15, angle=0.0, hue=30.0, sat=0.9, val=0.9, dark=0.5,
                      pattern_freq=3.0)
    _, (under, over) = render_scene([obj, top], numpy_rng(0, 1), size)
    assert not (under & over).any()
    assert 0 < under.sum() < mask.sum() and (under | over).sum() > mask.sum()


def test_is3_samples_pair_up(seed0):
    m = read_manifest(seed0 / "test_is3.jsonl")
    groups = defaultdict(list)
    for s in m:
        groups[s.group].append(s)
    assert len(groups) == preset_config("tiny").n_test_is3
    for g, (a, b) in ((g, v) for g, v in groups.items() if len(v) == 2):
        assert a.image == b.image and a.audio != b.audio and a.mask != b.mask
        assert a.category != b.category
        assert a.scene_categories == b.scene_categories == sorted([a.category, b.category])
        assert a.extra["silent"] == [b.category] and b.extra["silent"] == [a.category]
        ma, mb = _mask(m, a), _mask(m, b)
        assert ma.any() and mb.any() and not (ma & mb).any()
        assert not torch.equal(load_audio(m.resolve(a.audio)), load_audio(m.resolve(b.audio)))
    assert all(len(v) == 2 for v in groups.values())


def test_extended_split_pairs_each_image_with_a_sound_not_in_it(seed0):
    """synth-vggss-ext: the test_vggss samples, then each image with another test clip whose category the image
    does not show (SLAVC's extended protocol); drawn from its own stream, so test_vggss is unchanged."""
    ext = read_manifest(dataset_manifest("synth-vggss-ext", seed0))
    test = read_manifest(seed0 / "test_vggss.jsonl")
    sounding, silent = ext.split_visible()
    assert sounding.samples == test.samples and ext.samples[:len(test)] == test.samples
    by_id = {s.id: s for s in test}
    assert len(silent) == len(test)  # 12 categories: every tiny image has an eligible clip
    for s in silent:
        img, snd = by_id[s.extra["image_of"]], by_id[s.extra["audio_of"]]
        assert s.id == f"{img.id}+{snd.id}" and s.image == img.image and s.audio == snd.audio
        assert s.category == snd.category and s.category not in img.scene_categories and not s.boxes
    assert len({s.extra["audio_of"] for s in silent}) > 1
    meta = json.loads((seed0 / "dataset.json").read_text())
    assert meta["sizes"][DATASETS["synth-vggss-ext"].manifest] == 2 * len(test)


def test_train_scenes_with_two_sounding_objects(tmp_path):
    cfg = preset_config("tiny")
    found = 0
    for i in range(60):
        (row,) = generate_item("train", i, cfg, tmp_path)
        if len(row["extra"]["sounding"]) == 2:
            found += 1
            assert row["category"] == row["extra"]["sounding"][0]
            assert row["extra"]["gains_db"][0] == 0.0 and row["extra"]["gains_db"][1] < 0
            assert len(row["boxes"]) == 2
    assert found > 0


# ------------------------------------------------------------------------------ distinct categories


def _nearest_centroid_accuracy(train_x, train_y, test_x, test_y) -> float:
    classes = np.unique(train_y)
    centroids = np.stack([train_x[train_y == c].mean(0) for c in classes])
    pred = classes[np.argmin(((test_x[:, None] - centroids[None]) ** 2).sum(-1), 1)]
    return float((pred == test_y).mean())


def test_categories_are_acoustically_distinct():
    """Mean log-mel of one seed's clips (with ambience) classifies another seed's clips far above chance."""
    cfg = SynthConfig()
    mel = LogMelSpectrogram(AudioConfig(n_mels=64, tile_seconds=cfg.clip_seconds))

    def features(seed: int):
        waves, labels = [], []
        for c, cat in enumerate(CATEGORY_LIBRARY):
            for k in range(8):
                rng = numpy_rng(seed, c, k)
                snd = synthesize_sound(cat.sound, rng, cfg.clip_samples)
                waves.append(mix_clip([snd], [0.0], rng, float(rng.uniform(*cfg.snr_db))))
                labels.append(c)
        with torch.no_grad():
            f = mel(torch.from_numpy(np.stack(waves)))[:, 0].mean(-1)
        return (f - f.mean(1, keepdim=True)).numpy(), np.array(labels)  # level-invariant

    acc = _nearest_centroid_accuracy(*features(0), *features(1))
    assert acc >= 0.75, acc  # chance is 1/12


def test_categories_are_visually_distinct():
    """Object pixels of one seed's scenes classify another seed's objects, by colour and by shape alone.

    Colour: saturation-weighted hue histogram of the object's pixels (36 bins, circularly smoothed so
    the within-class hue jitter does not straddle bin edges). Shape (colour-blind, rotation and
    scale invariant): histogram of the mask pixels' distances to the mask centroid / sqrt(area).
    """
    cfg = preset_config("tiny", image_size=96)

    def features(seed: int):
        colour, shape, labels = [], [], []
        for c in range(len(CATEGORY_LIBRARY)):
            for k in range(5):
                scene = make_scene(numpy_rng(seed, c, k), cfg, 1, 1, 0.75, cats=[c])
                mask = scene.masks[0]
                hsv = np.asarray(Image.fromarray(scene.image).convert("HSV"))[mask].astype(np.float64)
                h = np.bincount((hsv[:, 0] * 36 // 256).astype(int), weights=hsv[:, 1] / 255.0, minlength=36)
                for _ in range(2):
                    h = 0.25 * np.roll(h, 1) + 0.5 * h + 0.25 * np.roll(h, -1)
                colour.append(h / h.sum())
                ys, xs = np.nonzero(mask)
                d = np.hypot(ys - ys.mean(), xs - xs.mean()) / np.sqrt(mask.sum())
                r = np.histogram(d, bins=12, range=(0.0, 1.2))[0].astype(np.float64)
                shape.append(r / r.sum())
                labels.append(c)
        return np.array(colour), np.array(shape), np.array(labels)

    c0, s0, y0 = features(0)
    c1, s1, y1 = features(1)
    assert _nearest_centroid_accuracy(c0, y0, c1, y1) >= 0.9  # chance is 1/12
    assert _nearest_centroid_accuracy(s0, y0, s1, y1) >= 0.8


def test_categories_have_unique_identities():
    for attr in ("shape", "hue", "name"):
        values = [getattr(c, attr) for c in CATEGORY_LIBRARY]
        assert len(set(values)) == len(values), attr
    assert len({c.sound for c in CATEGORY_LIBRARY}) == len(CATEGORY_LIBRARY)


# ------------------------------------------------------------------------------------- config, CLI


def test_bad_settings_are_clear_errors():
    with pytest.raises(SynthError, match="n_categories"):
        preset_config("tiny", n_categories=40)
    with pytest.raises(SynthError, match="preset"):
        preset_config("huge")
    with pytest.raises(SynthError, match="image_size"):
        preset_config("tiny", image_size=8)


def test_cli_writes_refuses_and_overwrites(tmp_path, capsys):
    from sslsan.cli import main

    out = tmp_path / "bench"
    args = ["data", "synth", "--out", str(out), "--preset", "tiny", "--n-train", "4", "--n-val", "2",
            "--n-test-vggss", "2", "--n-test-is3", "1", "--image-size", "48", "--workers", "1", "--no-progress"]
    assert main(args) == 0
    assert len(read_manifest(out / "train.jsonl")) == 4 and len(read_manifest(out / "test_is3.jsonl")) == 2
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert main(args + ["--n-train", "3", "--overwrite"]) == 0  # the last --n-train wins
    assert len(read_manifest(out / "train.jsonl")) == 3 and not (out / "train/images/000003.jpg").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    assert main(["data", "synth", "--out", str(foreign), "--preset", "tiny", "--overwrite"]) == 2
    assert (foreign / "keep.txt").exists()
    with pytest.raises(SystemExit) as exc:
        main(["data", "synth", "--help"])
    assert exc.value.code == 0 and "--n-test-is3" in capsys.readouterr().out


def test_show_writes_a_contact_sheet(seed0, tmp_path):
    main = command("data", "show")

    png = tmp_path / "sheet.png"
    assert main([str(seed0), "--manifest", "test_is3", "--n", "2", "--out", str(png)]) == 0
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width > 300 and im.height > 200
    assert main([str(seed0 / "train.jsonl"), "--n", "1", "--seed", "1"]) == 0
    assert (seed0 / "contact_train.png").exists()
    assert main([str(tmp_path / "missing")]) == 2
