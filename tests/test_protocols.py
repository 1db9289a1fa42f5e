"""SLAVC's extended protocol and SSL-Align's iIoU against the original code (tests/golden/golden_protocols.npz).

The goldens are the outputs of SLAVC's `test.validate` + `utils.EvaluatorFull` and SSL-Align's
`test.validate` + `utils.Evaluator_iiou` on generated cases (tests/golden/make_protocols.py); every number
must match bit for bit.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from sslsan import metrics as M
from sslsan.metrics.extended import ExtendedProtocol

GOLDEN = Path(__file__).parent / "golden"


def _maker():
    spec = importlib.util.spec_from_file_location("make_protocols", GOLDEN / "make_protocols.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


MAKE = _maker()


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN / "golden_protocols.npz") as z:
        data = {k: z[k] for k in z.files}
    cases: dict[str, dict[str, dict]] = {"slavc": {}, "instance": {}}
    for key, value in data.items():
        kind, name, field = key.split("/")
        cases[kind].setdefault(name, {})[field] = value
    return cases


def _same(a, b) -> bool:
    """Bitwise equality, NaN equal to NaN."""
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


def _slavc_inputs(c: dict):
    lo, hi, tau, relative, consensus = c["params"].tolist()
    maps = MAKE.case_maps(c["levels"], lo, hi, c["ramp"])
    gt = np.stack([M.gt_map_from_boxes(bb[bb[:, 0] >= 0], mode="consensus" if consensus else "union")
                   for bb in c["boxes"]])
    return maps, gt, ExtendedProtocol(relative_prediction=bool(relative), bounds=(-1.0 / tau, 1.0 / tau))


@pytest.mark.golden
def test_golden_cases_cover_the_edges(golden):
    s = golden["slavc"]
    assert set(s) >= {"vggss_relative", "vggss_absolute", "equal_confidence", "no_visible", "one_sample",
                      "ciou_half_relative", "ciou_half_absolute", "flickr_consensus"}
    assert len(s["vggss_relative"]["bb"]) // 200 == 2  # the AP threshold stride > 1 is exercised
    assert np.unique(s["equal_confidence"]["confidence"]).size == 1
    assert not s["no_visible"]["bb"].any() and s["vggss_relative"]["bb"].any()
    half = s["ciou_half_absolute"]
    assert np.count_nonzero(half["ciou"] == 0.5) == 4  # strict LocAcc fails them, inclusive precision counts them
    assert np.isnan(golden["instance"]["nan_image"]["final"][2])  # iIoU of a set with a NaN image


@pytest.mark.golden
@pytest.mark.parametrize("name", ["vggss_relative", "vggss_absolute", "cosine_absolute", "flickr_consensus", "no_visible",
                                  "one_sample", "two_samples", "equal_confidence", "ciou_half_relative",
                                  "ciou_half_absolute"])
def test_slavc_matches_the_original_bit_for_bit(golden, name):
    c = golden["slavc"][name]
    maps, gt, protocol = _slavc_inputs(c)
    per = M.slavc_sample_scores(maps, gt, protocol)
    assert _same(per["confidence"], c["confidence"])  # float32, as SLAVC's own list
    assert _same(per["ciou"], c["ciou"])
    visible = c["bb"] > 0
    assert M.slavc_ap(visible, per["ciou"], per["confidence"]) == float(c["ap"])
    f1 = M.slavc_f1(visible, per["ciou"], per["confidence"])
    assert _same(f1, c["f1"])
    assert " ".join(f"{v * 100:.1f}" for v in f1) == str(c["f1_text"])
    assert _same(np.float64(M.slavc_locacc(visible, per["ciou"])), c["locacc"])
    stats = json.loads(str(c["stats"]))
    m = M.slavc_metrics(visible, per["ciou"], per["confidence"])
    assert m["ap"] == 100 * stats["AP-all@50"]
    assert m["max_f1"] == 100 * max(c["f1"].tolist())
    assert _same(m["locacc"], 100 * c["locacc"])
    assert _same(m["precision_visible"], 100 * stats["Precision-visible@50"])
    assert _same(m["auc_visible"], 100 * stats["AUC-visible@50"])
    assert (m["n_visible"], m["n_nonvisible"]) == (int(visible.sum()), int((~visible).sum()))


@pytest.mark.golden
@pytest.mark.parametrize("name", ["is3_like", "nan_image"])
def test_instance_matches_the_original_bit_for_bit(golden, name):
    c = golden["instance"][name]
    lo, hi = c["params"].tolist()
    maps = MAKE.case_maps(c["levels"], lo, hi, c["ramp"])
    gt = np.stack([M.gt_map_from_boxes(bb[bb[:, 0] >= 0]) for bb in c["boxes"]])
    per = M.instance_sample_scores(maps, gt)
    assert _same(per["ciou"], c["sample_ciou"]) and _same(per["ciou_adap"], c["sample_ciou_adap"])
    groups = ["_".join(str(n).split("_")[:-1]) for n in c["names"]]  # SSL-Align's image key
    m = M.instance_metrics(per["ciou"], per["ciou_adap"], groups)
    ciou, ciou_adap, iiou, iiou_adap, auc, auc_adap, iauc, iauc_adap = c["final"].tolist()
    for key, value in (("ciou", ciou), ("ciou_adap", ciou_adap), ("iiou", iiou), ("iiou_adap", iiou_adap),
                       ("auc", auc), ("auc_adap", auc_adap), ("iauc", iauc), ("iauc_adap", iauc_adap)):
        assert _same(m[key], value * 100), key
    assert m["n_images"] == len(set(groups))


# ------------------------------------------------------------------------------------- properties


def _random_lists(n=300, seed=0):
    rng = np.random.default_rng(seed)
    visible = rng.random(n) < 0.5
    ciou = np.where(visible, rng.random(n), np.nan)
    conf = rng.random(n).astype(np.float32)
    conf[::7] = conf[3]  # ties
    return visible, ciou, conf


def test_precision_recall_equals_a_loop_over_samples():
    visible, ciou, conf = _random_lists()
    thresholds = np.sort(conf)[::13]
    p, r = M.slavc_precision_recall(visible, ciou, conf, thresholds)
    for k, t in enumerate(thresholds):
        tp = sum(1 for v, c, s in zip(visible, ciou, conf) if v and s >= t and c >= 0.5)
        fp = sum(1 for v, c, s in zip(visible, ciou, conf) if s >= t and (not v or not c >= 0.5))
        fn = sum(1 for v, s in zip(visible, conf) if v and s < t)
        assert p[k] == (1.0 if tp + fp == 0 else tp / (tp + fp)) and r[k] == (1.0 if tp + fn == 0 else tp / (tp + fn))


def test_order_of_samples_changes_nothing():
    # SLAVC shuffles its test list without a seed; none of its numbers depends on the order
    visible, ciou, conf = _random_lists()
    perm = np.random.default_rng(3).permutation(len(conf))
    a = M.slavc_metrics(visible, ciou, conf)
    b = M.slavc_metrics(visible[perm], ciou[perm], conf[perm])
    assert a == b


def test_relative_prediction_ignores_a_monotone_affine_scale():
    rng = np.random.default_rng(1)
    maps = rng.random((6, 7, 7)).astype(np.float32)
    gt = np.zeros((6, 224, 224), np.uint8)
    gt[:3, 20:150, 30:170] = 1
    neg = rng.random((4, 7, 7)).astype(np.float32)
    ours = M.extended_metrics(maps, gt, neg)
    slavc = M.extended_metrics(2 * maps - 1, gt, 2 * neg - 1, ExtendedProtocol(bounds=(-1.0, 1.0)))
    for k in ("ap", "max_f1", "locacc"):
        assert ours[k] == pytest.approx(slavc[k], abs=1e-9)
    assert ours["settings"]["relative_prediction"] is True and ours["n_nonvisible"] == 4


def test_bad_inputs_are_clear_errors():
    with pytest.raises(M.MetricsError, match="differ in length"):
        M.slavc_ap([True, False], [0.5], [0.1, 0.2])
    with pytest.raises(M.MetricsError, match="pred_size"):
        M.slavc_sample_scores(np.zeros((1, 4, 4), np.float32), np.zeros((1, 4, 4)), ExtendedProtocol(pred_size=1.0))
    with pytest.raises(M.MetricsError, match="groups"):
        M.instance_metrics([0.5, 0.6], [0.5, 0.6], ["a"])


# ------------------------------------------------------------------------------ evaluate / score / compare


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The tiny data with its extended split (synth-vggss-ext) and an IS3-like grouping (synth-is3), an untrained
    checkpoint, and its evaluations on synth-vggss, synth-vggss-ext and synth-is3."""
    from conftest import tiny_localizer, write_tiny_data
    from sslsan.data.manifest import Sample, read_manifest, write_manifest
    from sslsan.data.synthetic.writer import extended_rows
    from sslsan.evaluation import evaluate_checkpoint
    from sslsan.methods.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("protocols")
    data = write_tiny_data(root / "data")
    rows = [vars(s) for s in read_manifest(data / "test_vggss.jsonl")]
    write_manifest(data / "test_vggss_ext.jsonl", [Sample(**r) for r in extended_rows(rows, 0)])
    write_manifest(data / "test_is3.jsonl", [Sample(**{**r, "group": f"img{i // 2}"}) for i, r in enumerate(rows)])
    tiny = tiny_localizer()
    ckpt = save_checkpoint(root / "run" / "checkpoints" / "best.pt", tiny.model, tiny.spec)
    out = {}
    for ds in ("synth-vggss", "synth-vggss-ext", "synth-is3"):
        out[ds] = evaluate_checkpoint(ckpt, ds, data, root / ds, repetitions=1, batch_size=4, figure_examples=0,
                                      progress=False)
    return {"root": root, "data": data, "ckpt": ckpt, "metrics": out}


def test_extended_split_adds_the_protocol_and_keeps_every_other_metric(runs):
    plain, ext = runs["metrics"]["synth-vggss"], runs["metrics"]["synth-vggss-ext"]
    # the sounding pairs are the plain test set: same offscreen draws, same numbers
    for key in ("localization", "separability", "retrieval", "alignment", "n_samples"):
        assert ext[key] == plain[key], key
    e = ext["extended"]
    assert e["n_visible"] == 7 and e["n_nonvisible"] == 7 and e["settings"]["relative_prediction"] is True
    assert e["settings"]["bounds"] == [0.0, 1.0] and e["settings"]["upsample"] == "bilinear"  # the model's map spec
    assert {"ap", "max_f1", "locacc", "f1_all"} <= set(e) and "extended" not in plain and "instance" not in plain
    with np.load(runs["root"] / "synth-vggss-ext" / "maps.npz") as z:
        assert z["nonsounding_maps"].shape == (7, 4, 4) and bool(z["relative_prediction"]) is True
        assert list(z["nonsounding_ids"]) == [f"{a}+{b}" for a, b in (i.split("+") for i in z["nonsounding_ids"])]
        # the maps of the non-sounding pairs are the model's maps of those (image, audio) pairs
        s = runs["metrics"]["synth-vggss"]
        assert z["pos_maps"].shape == (s["n_samples"], 4, 4)
        per = M.extended_scores(z["pos_maps"], z["gt_maps"], z["nonsounding_maps"])
        assert M.slavc_ap(per["visible"], per["ciou"], per["confidence"]) * 100 == e["ap"]


def test_score_reproduces_the_protocols_and_compare_shows_them(runs, capsys):
    from conftest import command

    root = runs["root"]
    for ds, section in (("synth-vggss-ext", "extended"), ("synth-is3", "instance")):
        assert command("score")([str(root / ds / "maps.npz"), "--out", str(root / f"{ds}.json")]) == 0
        scored = json.loads((root / f"{ds}.json").read_text())
        assert scored[section] == json.loads((root / ds / "metrics.json").read_text())[section]
    inst = runs["metrics"]["synth-is3"]["instance"]
    assert inst["n_images"] == 4 and inst["n_samples"] == 7 and "iiou" in inst and "iauc_adap" in inst
    report = (root / "synth-vggss-ext" / "report.md").read_text()
    assert "## SLAVC extended protocol" in report and "relative_prediction on" in report and "IoU threshold 0.5" in report
    assert "## SSL-Align instance protocol" in (root / "synth-is3" / "report.md").read_text()
    capsys.readouterr()
    assert command("compare")([str(root / "synth-vggss-ext"), str(root / "synth-is3"), str(root / "synth-vggss")]) == 0
    text = capsys.readouterr().out
    assert "| AP ↑ | max-F1 ↑ | LocAcc ↑ |" in text and "iIoU ↑" in text and "Settings: IoU threshold 0.5" in text


def test_evaluate_prints_the_extended_protocol(runs, tmp_path, capsys):
    from conftest import command

    args = ["--checkpoint", str(runs["ckpt"]), "--dataset", "synth-vggss-ext", "--data-root", str(runs["data"]),
            "--repetitions", "1", "--figure-examples", "0", "--no-progress", "--absolute-prediction",
            "--out", str(tmp_path / "abs")]
    assert command("evaluate")(args) == 0
    out = capsys.readouterr().out
    assert "AP ↑ | max-F1 ↑ | LocAcc ↑" in out and "relative_prediction off (scores ≥ 0.5)" in out
    m = json.loads((tmp_path / "abs" / "metrics.json").read_text())
    assert m["extended"]["settings"]["relative_prediction"] is False
    with np.load(tmp_path / "abs" / "maps.npz") as z:
        assert bool(z["relative_prediction"]) is False


def test_maps_npz_optional_arrays_are_checked(runs, tmp_path):
    from sslsan.evaluation import MapsFileError
    from sslsan.evaluation.scoring import load_maps, save_maps

    a = load_maps(runs["root"] / "synth-vggss-ext" / "maps.npz")
    with pytest.raises(MapsFileError, match="nonsounding_maps and nonsounding_ids must be given together"):
        save_maps(tmp_path / "x.npz", {k: v for k, v in a.items() if k != "nonsounding_ids"})
    with pytest.raises(MapsFileError, match=r"nonsounding_maps \(7, 3, 3\)"):
        save_maps(tmp_path / "x.npz", {**a, "nonsounding_maps": np.zeros((7, 3, 3), np.float32)})
    with pytest.raises(MapsFileError, match="nonsounding_maps holds 1 NaN"):
        bad = a["nonsounding_maps"].copy()
        bad[0, 0, 0] = np.nan
        save_maps(tmp_path / "x.npz", {**a, "nonsounding_maps": bad})
    with pytest.raises(MapsFileError, match="groups has shape"):
        save_maps(tmp_path / "x.npz", {**a, "groups": np.array(["a"])})
    with pytest.raises(MapsFileError, match="relative_prediction must be a boolean"):
        save_maps(tmp_path / "x.npz", {**a, "relative_prediction": np.float64(1)})
    with pytest.raises(MapsFileError, match="map_range must be two finite floats"):
        save_maps(tmp_path / "x.npz", {**a, "map_range": np.array([1.0, 0.0])})
