"""`sslsan prepare vggss|is3|is3plus|s4` and `sslsan data overlap` on tiny fixtures in the official layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import command
from synthetic_media import write_wav
from sslsan.data.manifest import Sample, read_manifest, write_manifest
from sslsan.data.prepare.common import PrepareError, gt_map_empty
from sslsan.data.registry import dataset_manifest

prepare, overlap = command("prepare"), command("data", "overlap")


def _jpg(path: Path, size=(320, 240), fill=(90, 120, 150)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, fill).save(path, format="JPEG")
    return path


def _mask(path: Path, box: tuple[int, int, int, int] | None, size: int = 224, fmt: str = "PNG") -> Path:
    """Binary mask with `box` (x1, y1, x2 exclusive, y2 exclusive) set; None = empty mask."""
    m = np.zeros((size, size), np.uint8)
    if box:
        x1, y1, x2, y2 = box
        m[y1:y2, x1:x2] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(m).save(path, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return path


def _sample_map(manifest) -> dict[str, Sample]:
    return {s.id: s for s in manifest}


# ------------------------------------------------------------------------------------------ VGG-SS


def _vggss_root(tmp_path: Path) -> Path:
    root = tmp_path / "VGGSS"
    ann = [
        {"file": "zpWuikVorYg_000032", "class": "playing cello", "bbox": [[0.41, 0.02, 0.69, 0.99], [0.05, 0.3, 0.2, 0.75]]},
        # the corrupt value of the official file, clipped to 0 like the reference loaders do
        {"file": "M1P1xla8rg0_000000", "class": "dog barking", "bbox": [[-2.88e16, 0.1, 0.5, 0.6]]},
        # a zero-area box: an empty GT map, kept and flagged
        {"file": "MKC9LvRivTM_000030", "class": "rain", "bbox": [[0.3, 0.3, 0.3, 0.8]]},
        {"file": "noAudio0000_000010", "class": "rain", "bbox": [[0.1, 0.1, 0.5, 0.5]]},
        {"file": "shortAudio0_000020", "class": "wind", "bbox": [[0.2, 0.2, 0.9, 0.9]]},
    ]
    root.mkdir()
    (root / "vggss.json").write_text(json.dumps(ann))
    for e in ann:
        _jpg(root / "frames" / f"{e['file']}.jpg")
        if e["file"] != "noAudio0000_000010":
            write_wav(root / "audio" / f"{e['file']}.wav", 2.0 if e["file"].startswith("short") else 10.0)
    return root


def test_vggss(tmp_path, capsys):
    root, out = _vggss_root(tmp_path), tmp_path / "data"
    assert prepare(["vggss", "--root", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 prepared" in printed and "1 skipped" in printed
    m = read_manifest(dataset_manifest("vggss", out))  # the registry finds it by name
    s = _sample_map(m)
    assert set(s) == {"zpWuikVorYg_000032", "M1P1xla8rg0_000000", "MKC9LvRivTM_000030", "shortAudio0_000020"}
    assert s["zpWuikVorYg_000032"].boxes == [[0.41, 0.02, 0.69, 0.99], [0.05, 0.3, 0.2, 0.75]]
    assert s["zpWuikVorYg_000032"].category == "playing cello"
    assert s["zpWuikVorYg_000032"].extra["youtube_id"] == "zpWuikVorYg"
    assert s["M1P1xla8rg0_000000"].boxes == [[0.0, 0.1, 0.5, 0.6]]
    assert s["MKC9LvRivTM_000030"].extra.get("empty_gt") is True
    assert "empty_gt" not in s["zpWuikVorYg_000032"].extra
    assert m.resolve(s["zpWuikVorYg_000032"].audio).is_file()  # relative to the manifest folder
    skipped = [json.loads(x) for x in (out / "skipped.jsonl").read_text().splitlines()]
    assert [(k["id"], k["reason"]) for k in skipped] == [("noAudio0000_000010", "missing")]
    notes = json.loads((out / "summary.json").read_text())["notes"]
    assert notes["corrupt_coordinates"] == 1 and notes["empty_gt"] == 1 and notes["audio_short"] == 1
    assert notes["degenerate_box"] == 1


def test_vggss_options_and_errors(tmp_path, capsys):
    root, out = _vggss_root(tmp_path), tmp_path / "data"
    assert prepare(["vggss", "--root", str(root), "--out", str(out), "--drop-empty-gt"]) == 0
    assert "MKC9LvRivTM_000030" not in _sample_map(read_manifest(out / "vggss.jsonl"))
    ids = tmp_path / "heard.csv"
    ids.write_text("zpWuikVorYg_000032,playing cello\n")
    assert prepare(["vggss", "--root", str(root), "--out", str(out), "--ids", str(ids)]) == 0
    assert len(read_manifest(out / "vggss.jsonl")) == 1
    (root / "vggss.json").write_text("[{\"file\": 1,")
    capsys.readouterr()
    assert prepare(["vggss", "--root", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "vggss.json" in err and "not valid JSON" in err
    (root / "vggss.json").write_text(json.dumps([{"file": "x", "bbox": "oops"}]))
    assert prepare(["vggss", "--root", str(root), "--out", str(out)]) == 2
    assert "'bbox' must be a list" in capsys.readouterr().err
    assert prepare(["vggss", "--root", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "root folder not found" in capsys.readouterr().err


def test_vggss_extended(tmp_path, capsys):
    """`--extended`: SLAVC's list of non-sounding pairs; a row naming a missing clip and a malformed row are skips."""
    root, out = _vggss_root(tmp_path), tmp_path / "data"
    _jpg(root / "frames" / "otherClip00_000050.jpg")
    write_wav(root / "audio" / "otherClip01_000070.wav", 10.0)
    ext = tmp_path / "vggss_test_plus_silent.csv"
    ext.write_bytes(b"video,audio,label\r\n"
                    b"otherClip00_000050,otherClip01_000070,non-sounding\r\n"
                    b"zpWuikVorYg_000032,zpWuikVorYg_000032,non-sounding\r\n"  # a clip with its own sound, as listed
                    b"otherClip00_000050,noSuchClip0_000000,non-sounding\r\n"
                    b"otherClip00_000050,otherClip01_000070\r\n"
                    b"otherClip00_000050,zpWuikVorYg_000032,sounding\r\n"
                    b"otherClip00_000050,otherClip01_000070,non-sounding\r\n")
    assert prepare(["vggss", "--root", str(root), "--out", str(out), "--extended", str(ext)]) == 0
    printed = capsys.readouterr().out
    assert "extended manifest" in printed and "4 sounding + 2 non-sounding pairs" in printed
    plain = read_manifest(dataset_manifest("vggss", out))
    m = read_manifest(dataset_manifest("vggss-ext", out))
    assert m.samples[:4] == plain.samples and len(m) == 6
    a, b = m[4], m[5]
    assert a.id == "otherClip00_000050+otherClip01_000070" and not a.visible and a.boxes == [] and a.category is None
    assert m.resolve(a.image).name == "otherClip00_000050.jpg" and m.resolve(a.audio).name == "otherClip01_000070.wav"
    assert b.id == "zpWuikVorYg_000032+zpWuikVorYg_000032" and b.category == "playing cello"
    skipped = {(k["id"], k["reason"]) for k in map(json.loads, (out / "skipped.jsonl").read_text().splitlines())}
    assert skipped == {("noAudio0000_000010", "missing"), ("otherClip00_000050+noSuchClip0_000000", "missing"),
                       ("vggss_test_plus_silent.csv:5", "bad_annotation"), ("vggss_test_plus_silent.csv:6", "bad_annotation")}
    notes = json.loads((out / "summary.json").read_text())["notes"]
    assert notes["nonsounding"] == 2 and notes["duplicate_entry"] == 1 and notes["nonsounding_own_clip"] == 1
    assert prepare(["vggss", "--root", str(root), "--out", str(out), "--extended", str(tmp_path / "none.csv")]) == 2
    assert "none.csv: extended list not found" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- Flickr

FLICKR = {  # id -> annotators' boxes in the 256 x 256 frame
    "10000130166": [[10, 20, 110, 200], [12, 25, 100, 190], [60, 60, 250, 250]],
    "10007936344": [[0, 0, 128, 128], [0, 0, 128, 128], [-5, 0, 300, 64]],  # out-of-frame coordinates are clipped
    "10008553263": [[30, 30, 90, 90]],
    "10009662863": [[1, 2, 3, 4]],  # no audio: skipped
}


def _flickr_xml(boxes) -> str:
    """The annotation layout the original loaders read: `bbox` elements below a child of the root, whose first
    child is skipped and the next four are xmin, ymin, xmax, ymax."""
    tags = ("xmin", "ymin", "xmax", "ymax")
    inner = "".join(f"<bbox><annotator>{k}</annotator>" + "".join(f"<{t}>{v}</{t}>" for t, v in zip(tags, b)) + "</bbox>"
                    for k, b in enumerate(boxes))
    return f"<annotation><filename>x.jpg</filename><object>{inner}</object></annotation>"


def _flickr_root(tmp_path: Path) -> Path:
    root = tmp_path / "Flickr-SoundNet"
    for clip_id, boxes in FLICKR.items():
        _jpg(root / "frames" / f"{clip_id}.jpg", size=(256, 256))
        if clip_id != "10009662863":
            write_wav(root / "audio" / f"{clip_id}.wav", 10.0)
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{clip_id}.xml").write_text(_flickr_xml(boxes))
    _jpg(root / "frames" / "10011111111.jpg", size=(256, 256))
    write_wav(root / "audio" / "10011111111.wav", 10.0)
    (root / "Annotations" / "10011111111.xml").write_text("<annotation><object><bbox>")  # cut file
    _jpg(root / "frames" / "10022222222.jpg", size=(256, 256))
    write_wav(root / "audio" / "10022222222.wav", 10.0)
    (root / "Annotations" / "10022222222.xml").write_text(_flickr_xml([[1, 2, 3]]))  # three coordinates only
    (root / "flickr_test.csv").write_text("10000130166,202\r\n10007936344,0\r\n10008553263,playing tambourine\r\n"
                                          "10009662863,309\r\n10011111111,1\r\n10022222222,2\r\n10033333333,3\r\n")
    return root


def test_flickr(tmp_path, capsys):
    from sslsan.evaluation.inference import gt_maps

    root, out = _flickr_root(tmp_path), tmp_path / "data"
    ext = tmp_path / "flickr_test_plus_silent.csv"
    ext.write_text("video,audio,label\n10000130166,10008553263,non-sounding\n10008553263,10009662863,non-sounding\n"
                   "10007936344,10000130166,non-sounding\nnot,a,row,at all\n")
    assert prepare(["flickr", "--root", str(root), "--out", str(out), "--extended", str(ext)]) == 0
    assert "3 prepared" in capsys.readouterr().out
    m = read_manifest(dataset_manifest("flickr", out))
    s = _sample_map(m)
    assert list(s) == ["10000130166", "10007936344", "10008553263"]
    assert s["10000130166"].boxes[0] == [10 / 256, 20 / 256, 110 / 256, 200 / 256]
    assert s["10007936344"].boxes[2] == [0.0, 0.0, 1.0, 0.25]
    assert s["10000130166"].category is None and s["10000130166"].extra["list_label"] == "202"
    assert s["10008553263"].category == "playing tambourine" and s["10000130166"].extra["annotators"] == 3
    # the consensus ground truth of the original: int(224 * v / 256) pixels, each box 1/2, capped at 1
    gt = gt_maps(m, "consensus")
    ref = np.zeros((224, 224))
    for x1, y1, x2, y2 in FLICKR["10000130166"]:
        ref[int(224 * y1 / 256):int(224 * y2 / 256), int(224 * x1 / 256):int(224 * x2 / 256)] += 1
    assert gt.dtype == np.float32 and np.array_equal(gt[0], np.minimum(ref / 2, 1))
    assert set(np.unique(gt[0]).tolist()) == {0.0, 0.5, 1.0}
    e = read_manifest(dataset_manifest("flickr-ext", out))
    assert len(e) == 5 and [x.id for x in e if not x.visible] == ["10000130166+10008553263", "10007936344+10000130166"]
    assert e[3].category == "playing tambourine"  # the sound's category, known for a test clip
    skipped = {(k["id"], k["reason"]) for k in map(json.loads, (out / "skipped.jsonl").read_text().splitlines())}
    assert skipped == {("10009662863", "missing"), ("10011111111", "bad_annotation"), ("10022222222", "bad_annotation"),
                       ("10033333333", "missing"), ("10008553263+10009662863", "missing"),
                       ("flickr_test_plus_silent.csv:5", "bad_annotation")}
    notes = json.loads((out / "summary.json").read_text())["notes"]
    assert notes["dropped_box"] == 1 and notes["corrupt_coordinates"] == 1


def test_flickr_without_list_and_errors(tmp_path, capsys):
    root, out = _flickr_root(tmp_path), tmp_path / "data"
    (root / "flickr_test.csv").unlink()
    assert prepare(["flickr", "--root", str(root), "--out", str(out)]) == 0  # every annotation file is a test id
    assert {x.id for x in read_manifest(out / "flickr.jsonl")} == {"10000130166", "10007936344", "10008553263"}
    assert not (out / "flickr_ext.jsonl").exists()
    capsys.readouterr()
    assert prepare(["flickr", "--root", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "root folder not found" in capsys.readouterr().err
    assert prepare(["flickr", "--root", str(root), "--out", str(out), "--annotations", str(tmp_path)]) == 2
    assert "no usable sample" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ IS3 / IS3+

IS3 = {  # stem -> (224-px box, class); two scenes with ids, one no-id scene whose prefix is also a prefix
    "accordion_female_10438_accordion": ([10, 20, 110, 200], "playing accordion"),
    "accordion_female_10438_female": ([120, 10, 220, 210], "female singing"),
    "cat_banjo_cat": ([0, 0, 100, 100], "cat growling"),
    "cat_banjo_banjo": ([100, 100, 224, 224], "playing banjo"),
    "cat_banjo_1303_cat": ([5, 5, 50, 50], "cat caterwauling"),
    "cat_banjo_1303_banjo": ([60, 60, 200, 200], "playing banjo"),
}


def _is3_root(tmp_path: Path) -> Path:
    root = tmp_path / "IS3"
    entries = []
    for stem, (box, _) in IS3.items():
        _jpg(root / "images" / f"{stem}.jpg", size=(224, 224))
        if stem != "cat_banjo_1303_banjo":
            write_wav(root / "audio_wav" / f"{stem}.wav", 10.0)
        _mask(root / "gt_segmentation" / f"{stem}.jpg", tuple(box), fmt="JPEG")
        entries.append({"image": f"/mnt/x/visual_frames/{stem}.jpg", "audio": f"/mnt/x/audio_wav/{stem}.wav",
                        "gt_box": [float(v) for v in box]})
    (root / "metadata").mkdir()
    (root / "metadata" / "synthetic3240_bbox.json").write_text(json.dumps(entries))
    classes: dict[str, list[str]] = {}
    for stem, (_, cls) in IS3.items():
        classes.setdefault(cls, []).append(stem)
    (root / "IS3_class_files_dict.json").write_text(json.dumps(classes))
    return root


def test_is3(tmp_path):
    root, out = _is3_root(tmp_path), tmp_path / "data"
    assert prepare(["is3", "--root", str(root), "--out", str(out)]) == 0
    m = read_manifest(out / "is3.jsonl")
    s = _sample_map(m)
    assert set(s) == set(IS3) - {"cat_banjo_1303_banjo"}
    a = s["accordion_female_10438_accordion"]
    assert a.boxes == [[10 / 224, 20 / 224, 110 / 224, 200 / 224]]
    assert a.group == "accordion_female_10438" and a.category == "playing accordion"
    assert a.scene_categories == ["female singing", "playing accordion"]
    # exact group membership: the no-id scene is not mixed with cat_banjo_1303 (vssl_eval's glob would)
    assert s["cat_banjo_cat"].group == "cat_banjo"
    assert s["cat_banjo_cat"].scene_categories == ["cat growling", "playing banjo"]
    assert s["cat_banjo_1303_cat"].scene_categories == ["cat caterwauling"]  # its partner was skipped
    mask = np.asarray(Image.open(m.resolve(a.mask)))
    assert a.mask.endswith(".png") and set(np.unique(mask)) <= {0, 255}
    assert mask[20:200, 10:110].all() and not mask[:, 115:].any()  # the JPEG mask thresholded at > 127
    skipped = [json.loads(x) for x in (out / "skipped.jsonl").read_text().splitlines()]
    assert [(k["id"], k["reason"]) for k in skipped] == [("cat_banjo_1303_banjo", "missing")]
    assert json.loads((out / "summary.json").read_text())["notes"]["groups_not_two_annotations"] == 1


def test_is3_boxes_from_masks_without_box_file(tmp_path):
    root, out = _is3_root(tmp_path), tmp_path / "data"
    (root / "metadata" / "synthetic3240_bbox.json").unlink()
    assert prepare(["is3", "--root", str(root), "--out", str(out)]) == 0
    a = _sample_map(read_manifest(out / "is3.jsonl"))["accordion_female_10438_accordion"]
    np.testing.assert_allclose(a.boxes[0], [10 / 224, 20 / 224, 110 / 224, 200 / 224], atol=2 / 224)


def test_is3plus(tmp_path, capsys):
    is3 = _is3_root(tmp_path)
    plus, out = tmp_path / "IS3plus", tmp_path / "data"
    for stem in IS3:
        write_wav(plus / "audio_wav" / f"{stem}.wav", 1.2 if "cat" in stem else 4.0)  # clean, some short
    (plus / "category_map.json").write_text(json.dumps({
        "cat growling": "cat", "cat caterwauling": "cat", "playing banjo": "banjo",
        "playing accordion": "accordion", "female singing": "singing"}))
    assert prepare(["is3plus", "--root", str(plus), "--is3-root", str(is3), "--out", str(out)]) == 0
    m = read_manifest(dataset_manifest("is3plus", out))
    s = _sample_map(m)
    assert set(s) == set(IS3)  # IS3+ audio exists for every annotation
    assert s["cat_banjo_cat"].category == "cat" and s["cat_banjo_1303_cat"].category == "cat"
    assert s["cat_banjo_1303_cat"].scene_categories == ["banjo", "cat"]
    assert m.resolve(s["cat_banjo_cat"].audio).parent == (plus / "audio_wav").resolve()
    assert m.resolve(s["cat_banjo_cat"].image).parent == (is3 / "images").resolve()
    assert json.loads((out / "summary.json").read_text())["notes"]["audio_short"] == 4
    capsys.readouterr()
    (plus / "category_map.json").unlink()
    assert prepare(["is3plus", "--root", str(plus), "--is3-root", str(is3), "--out", str(out)]) == 2
    assert "category map" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- S4


def _s4_root(tmp_path: Path) -> Path:
    root = tmp_path / "Single-source"
    (root).mkdir()
    (root / "s4_meta_data.csv").write_text(
        "name,start,category,split\n"
        "vidA_0001,3,helicopter,test\nvidB_0002,0,dog,test\nvidC_0003,1,dog,test\nvidT_0004,2,dog,train\n")
    data = root / "s4_data"
    for name, cat in [("vidA_0001", "helicopter"), ("vidB_0002", "dog"), ("vidC_0003", "dog")]:
        if name != "vidC_0003":
            write_wav(data / "audio_wav" / "test" / cat / f"{name}.wav", 5.0)
        for k in range(1, 6):
            frame = data / "visual_frames" / "test" / cat / name / f"{name}_{k}.png"
            frame.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (224, 224), (k * 40, 0, 0)).save(frame)
            empty = name == "vidB_0002" and k == 2
            _mask(data / "gt_masks" / "test" / cat / name / f"{name}_{k}.png", None if empty else (30, 40, 100, 150))
    return root


def test_s4(tmp_path):
    root, out = _s4_root(tmp_path), tmp_path / "data"
    assert prepare(["s4", "--root", str(root), "--out", str(out)]) == 0
    m = read_manifest(dataset_manifest("s4", out))
    s = _sample_map(m)
    assert len(s) == 10 and "vidT_0004_1" not in s
    a = s["vidA_0001_3"]
    assert a.group == "vidA_0001" and a.category == "helicopter" and a.scene_categories == ["helicopter"]
    # s4_box.json convention: x2/y2 are the last foreground column/row
    assert a.boxes == [[30 / 224, 40 / 224, 99 / 224, 149 / 224]]
    assert m.resolve(a.mask).is_file() and m.resolve(a.audio).name == "vidA_0001.wav"
    assert s["vidB_0002_2"].boxes == [] and s["vidB_0002_2"].extra["empty_gt"] is True
    skipped = [json.loads(x) for x in (out / "skipped.jsonl").read_text().splitlines()]
    assert sorted(k["id"] for k in skipped) == [f"vidC_0003_{k}" for k in range(1, 6)]
    assert {k["reason"] for k in skipped} == {"missing"}


def test_s4_box_file_and_errors(tmp_path, capsys):
    root, out = _s4_root(tmp_path), tmp_path / "data"
    boxes = [{"image": f"/mnt/visual_frames/test/dog/vidB_0002/vidB_0002_{k}.png", "audio": "x.wav",
              "gt_box": [0, 0, 0, 0] if k == 2 else [1.0, 2.0, 3.0, 4.0]} for k in range(1, 6)]
    (tmp_path / "s4_box.json").write_text(json.dumps(boxes))
    assert prepare(["s4", "--root", str(root), "--out", str(out), "--boxes", str(tmp_path / "s4_box.json")]) == 0
    s = _sample_map(read_manifest(out / "s4.jsonl"))
    assert s["vidB_0002_1"].boxes == [[1 / 224, 2 / 224, 3 / 224, 4 / 224]]
    assert s["vidB_0002_2"].boxes == []
    assert s["vidA_0001_1"].boxes == [[30 / 224, 40 / 224, 99 / 224, 149 / 224]]  # not in the file: from the mask
    (root / "s4_meta_data.csv").write_text("vid,cat\nx,y\n")
    capsys.readouterr()
    assert prepare(["s4", "--root", str(root), "--out", str(out)]) == 2
    assert "s4_meta_data.csv" in capsys.readouterr().err


def test_gt_map_empty_matches_floor_rule():
    assert gt_map_empty([[0.3, 0.3, 0.3, 0.8]])
    assert gt_map_empty([[0.5, 0.5, 0.502, 0.9]])  # floor(0.5*224) == floor(0.502*224)
    assert not gt_map_empty([[0.5, 0.5, 0.51, 0.9]])
    assert gt_map_empty([])


def test_no_usable_sample_is_an_error(tmp_path):
    root = tmp_path / "r"
    (root / "frames").mkdir(parents=True)
    (root / "vggss.json").write_text(json.dumps([{"file": "a", "class": "c", "bbox": [[0, 0, 1, 1]]}]))
    with pytest.raises(PrepareError, match="no usable sample; 1 skipped .missing: 1"):
        from sslsan.data.prepare.vggss import prepare_vggss

        prepare_vggss(root, tmp_path / "o")


# ----------------------------------------------------------------------------------------- overlap


def test_overlap(tmp_path, capsys):
    def manifest(path, ids):
        return write_manifest(path, [Sample(id=i, image="x.jpg", audio="x.wav") for i in ids])

    train = manifest(tmp_path / "train.jsonl", ["zpWuikVorYg_000032", "AAAAAAAAAAA_000100", "plain_name"])
    test = manifest(tmp_path / "vggss.jsonl", ["zpWuikVorYg_000032", "AAAAAAAAAAA_000010", "BBBBBBBBBBB_000000",
                                               "plain_name"])
    assert overlap([str(train), str(test), "--json", str(tmp_path / "o.json")]) == 0
    text = capsys.readouterr().out
    assert "same clip id:             2" in text and "same YouTube video:       3" in text
    saved = json.loads((tmp_path / "o.json").read_text())
    assert saved["same_id"] == ["plain_name", "zpWuikVorYg_000032"]
    assert saved["same_video"] == ["AAAAAAAAAAA_000010", "plain_name", "zpWuikVorYg_000032"]
    assert overlap([str(train), str(test), "--fail-on-overlap"]) == 1
    ids = tmp_path / "vggss_144k.txt"  # a plain public list works as the training side too
    ids.write_text("AAAAAAAAAAA_000100.mp4\nCCCCCCCCCCC_000000\n")
    capsys.readouterr()
    assert overlap([str(ids), str(test)]) == 0
    assert "same YouTube video:       1" in capsys.readouterr().out
    assert overlap([str(train), str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl" in capsys.readouterr().err


def test_vggss_from_vggsound_videos(tmp_path):
    import wave

    from synthetic_media import read_frame_index, write_video

    videos = tmp_path / "vggsound_test"
    write_video(videos / "AAAAAAAAAAA_000010.mp4", seconds=4.0)
    write_video(videos / "BBBBBBBBBBB_000020.mp4", seconds=2.0, audio=False)
    ann = tmp_path / "vggss.json"
    ann.write_text(json.dumps([{"file": f"{c * 11}_0000{k}0", "class": "x", "bbox": [[0.1, 0.1, 0.6, 0.6]]}
                               for k, c in enumerate("ABC", 1)]))
    out = tmp_path / "data"
    argv = ["vggss", "--videos", str(videos), "--annotations", str(ann), "--out", str(out)]
    assert prepare(argv) == 0
    m = read_manifest(out / "vggss.jsonl")
    assert [s.id for s in m] == ["AAAAAAAAAAA_000010"]
    with Image.open(m.resolve(m[0].image)) as im:
        assert im.size == (128, 96) and read_frame_index(im) == 49  # native size, frame before the middle
    with wave.open(str(m.resolve(m[0].audio))) as w:  # the whole track, 16 kHz mono
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and 4.0 <= w.getnframes() / 16000 < 4.1
    skipped = {json.loads(x)["id"]: json.loads(x)["reason"] for x in (out / "skipped.jsonl").read_text().splitlines()}
    assert skipped == {"BBBBBBBBBBB_000020": "no_audio", "CCCCCCCCCCC_000030": "missing"}
    mtime = m.resolve(m[0].audio).stat().st_mtime_ns
    assert prepare(argv) == 0  # resumed: the extracted files are kept
    assert m.resolve(m[0].audio).stat().st_mtime_ns == mtime


def test_is3_alternative_folder_names(tmp_path):
    """SSLalignment's manifest names (visual_frames/, gt_masks/) and the README's typo audio_waw/."""
    root, out = _is3_root(tmp_path), tmp_path / "data"
    for old, new in [("images", "visual_frames"), ("audio_wav", "audio_waw"), ("gt_segmentation", "gt_masks")]:
        (root / old).rename(root / new)
    assert prepare(["is3", "--root", str(root), "--out", str(out)]) == 0
    s = _sample_map(read_manifest(out / "is3.jsonl"))
    assert len(s) == 5 and all(x.mask for x in s.values())
