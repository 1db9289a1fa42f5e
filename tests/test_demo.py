"""A tiny end-to-end `sslsan demo`: benchmark → SSL-SaN + SSL-TIE training → evaluation → report."""

from __future__ import annotations

import json

from sslsan.commands.demo import main
from sslsan.demo import EVAL_SETS, KEY_METRICS, DemoOptions, findings, run_demo

TINY = ["model.width=0.125", "train.epochs=1", "train.batch_size=8", "train.log_every=1", "train.threads=1"]


def test_tiny_demo_end_to_end(tmp_path, capsys):
    opts = DemoOptions(out=tmp_path / "demo", preset="tiny", image_size=64, repetitions=2, overrides=TINY, progress=False)
    out = run_demo(opts)
    printed = capsys.readouterr().out
    report = (tmp_path / "demo" / "report.md").read_text()
    # the printed side-by-side table and one plain sentence per finding
    assert "| model | cIoU_U ↑ | AUC_U ↑" in printed
    assert "| SSL-SaN |" in printed and "| SSL-TIE |" in printed and "| chance: centre map |" in printed
    assert printed.count("HOLDS") + printed.count("DOES NOT HOLD") >= 4
    # the report: key metrics of both test protocols, the paper's tables, findings, figures
    for ds in EVAL_SETS:
        assert f"## {ds}: key metrics" in report
        assert (tmp_path / "demo" / "eval" / ds / "ssl_san_seed0" / "maps.npz").exists()
    for title in ("Table 2", "Table 1", "Table 3", "Table 4"):
        assert title in report
    assert "### Findings" in report and "![" in report
    assert "per sound category" in report
    assert "SSL-SaN cIoU_U | SSL-SaN cIoU_A | SSL-SaN max" in report and "SSL-TIE cIoU_U" in report
    # SLAVC's extended protocol on both models, printed and reported with its settings
    assert "| model | AP ↑ | max-F1 ↑ | LocAcc ↑ | AP abs ↑ | max-F1 abs ↑ | LocAcc abs ↑ |" in printed
    assert "## synth-vggss-ext: SLAVC's extended protocol" in report
    assert "12 sounding + 12 non-sounding pairs" in report and "relative_prediction on" in report
    figures = list((tmp_path / "demo" / "figures").glob("*.png"))
    assert any("fig1" in f.name for f in figures) and any("fig2" in f.name for f in figures)
    # the logs of both trainings
    for run in ("ssl_san_seed0", "ssl_tie_seed0"):
        run_dir = tmp_path / "demo" / "runs" / run
        assert (run_dir / "log.jsonl").exists() and (run_dir / "threshold.json").exists()
    cfg_san = (tmp_path / "demo" / "runs" / "ssl_san_seed0" / "config.yaml").read_text()
    cfg_tie = (tmp_path / "demo" / "runs" / "ssl_tie_seed0" / "config.yaml").read_text()
    assert "loss_silence: true" in cfg_san and "loss_silence: false" in cfg_tie
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert len(summary["findings"]) == 5 and all(isinstance(f["holds"], bool) for f in summary["findings"])
    assert set(summary["key_metrics"]["synth-vggss"]) == {"ssl_san", "ssl_tie"}
    assert len(summary["key_metrics"]["synth-vggss"]["ssl_san"]) == len(KEY_METRICS)
    assert set(summary["extended"]["ssl_tie"]) == {"ap", "max_f1", "locacc", "ap_abs", "max_f1_abs", "locacc_abs"}
    assert len(out["findings"]) == 5
    assert (tmp_path / "demo" / "figures" / "training_curves.png").exists()
    # a second run reuses everything already done (and gives the same numbers)
    again = run_demo(opts)
    assert json.loads(json.dumps(again["summary"]["key_metrics"])) == summary["key_metrics"]


def _metrics(ciou, pia_s, pia_n, floc, sep, ciou_a=None, auc=50.0):
    return {"localization": {"ciou_u": ciou, "ciou_a": ciou if ciou_a is None else ciou_a, "auc_u": auc,
                             "pia_silence": pia_s, "pia_noise": pia_n, "floc": floc},
            "separability": {"sep": sep},
            "reference_maps": {"centre": {"ciou_u": 10.0, "auc_u": 10.0}}}


def test_findings_are_measured_not_assumed():
    good = findings({"ssl_san": [_metrics(40, 0.05, 0.0, 60, 0.3)], "ssl_tie": [_metrics(41, 5.0, 8.0, 50, 0.2)]})
    assert [f.holds for f in good] == [True] * 5
    bad = findings({"ssl_san": [_metrics(12, 3.0, 0.0, 40, 0.1)], "ssl_tie": [_metrics(30, 2.0, 1.0, 45, 0.2)]})
    assert [f.holds for f in bad] == [False] * 5
    assert "3.00 %" in bad[2].evidence  # the numbers are in the sentence
    # each claim at its margin: 3 points of cIoU (both kinds), pIA 0.1 % and no higher than the baseline
    edge = findings({"ssl_san": [_metrics(38, 0.1, 0.1, 50, 0.2, ciou_a=37.01)], "ssl_tie": [_metrics(41, 0.1, 0.2, 50, 0.2, ciou_a=40)]})
    assert [f.holds for f in edge] == [True, True, True, False, True]
    worse_a = findings({"ssl_san": [_metrics(41, 0.0, 0.0, 50, 0.3, ciou_a=30)], "ssl_tie": [_metrics(41, 0.0, 0.0, 50, 0.2, ciou_a=40)]})
    assert not worse_a[1].holds
    # judged on the mean over seeds, with the per-seed count beside it
    two = findings({"ssl_san": [_metrics(40, 0.0, 0.0, 60, 0.3), _metrics(30, 0.0, 0.0, 60, 0.3)],
                    "ssl_tie": [_metrics(36, 0.0, 0.0, 50, 0.2), _metrics(36, 0.0, 0.0, 50, 0.2)]})
    assert two[1].holds and two[1].per_seed == "1/2 seeds"


def test_demo_help(capsys):
    import pytest

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "--seeds" in capsys.readouterr().out


def test_data_seed_draws_another_benchmark_beside_the_first(tmp_path):
    from sslsan.demo import prepare_data, run_name

    base = DemoOptions(out=tmp_path, preset="tiny", image_size=64, progress=False)
    other = DemoOptions(out=tmp_path, preset="tiny", image_size=64, progress=False, data_seed=3)
    d0, d3 = prepare_data(base), prepare_data(other)
    assert d0 != d3 and json.loads((d3 / "dataset.json").read_text())["seed"] == 3
    first_clip = lambda d: sorted((d / "train" / "audio").iterdir())[0].read_bytes()  # noqa: E731
    assert first_clip(d0) != first_clip(d3)
    assert run_name("ssl_san", 1, base) == "ssl_san_seed1" and run_name("ssl_san", 1, other) == "ssl_san_data3_seed1"
