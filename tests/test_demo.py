"""A tiny end-to-end `sslsan demo`: benchmark → SSL-SaN + SSL-TIE training → evaluation → report."""

from __future__ import annotations

import json

from sslsan.commands.demo import main
from sslsan.demo import EVAL_SETS, KEY_METRICS, DemoOptions, run_demo
from sslsan.evaluation.findings import CLAIMS

TINY = ["model.width=0.125", "train.epochs=1", "train.batch_size=8", "train.log_every=1", "train.threads=1"]


def test_tiny_demo_end_to_end(tmp_path, capsys):
    opts = DemoOptions(out=tmp_path / "demo", preset="tiny", image_size=64, repetitions=2, overrides=TINY, progress=False)
    out = run_demo(opts)
    printed = capsys.readouterr().out
    report = (tmp_path / "demo" / "report.md").read_text()
    # the printed side-by-side table and one plain sentence per finding
    assert "| model | cIoU_U ↑ | AUC_U ↑" in printed
    assert "| SSL-SaN |" in printed and "| SSL-TIE |" in printed and "| chance: centre map |" in printed
    # every finding of Tables 1-3 (Table 4 needs --ablation) and the chance check, each with its verdict
    n_findings = 1 + sum(c.table != "Table 4" for c in CLAIMS)
    verdicts = [line for line in printed.splitlines() if line.startswith(("HOLDS (", "DOES NOT HOLD", "NOT MEASURED"))]
    assert len(verdicts) == n_findings and printed.count("    paper:    ") == n_findings
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
    assert len(summary["findings"]) == n_findings and all(isinstance(f["holds"], bool) for f in summary["findings"])
    assert {f["table"] for f in summary["findings"]} == {"sanity", "Table 1", "Table 2", "Table 3"}
    assert report.count("| Table 3 |") == 2  # the findings table of report.md: both retrieval directions
    assert set(summary["key_metrics"]["synth-vggss"]) == {"ssl_san", "ssl_tie"}
    assert len(summary["key_metrics"]["synth-vggss"]["ssl_san"]) == len(KEY_METRICS)
    assert set(summary["extended"]["ssl_tie"]) == {"ap", "max_f1", "locacc", "ap_abs", "max_f1_abs", "locacc_abs"}
    assert len(out["findings"]) == n_findings
    assert (tmp_path / "demo" / "figures" / "training_curves.png").exists()
    # a second run reuses everything already done (and gives the same numbers)
    assert summary["reused_runs"] == 0 and "were reused" not in report
    again = run_demo(opts)
    assert json.loads(json.dumps(again["summary"]["key_metrics"])) == summary["key_metrics"]
    # and says so, as its time covers only this invocation
    assert again["summary"]["reused_runs"] == 2
    assert "2 of 2 trained models were reused" in (tmp_path / "demo" / "report.md").read_text()


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


def test_demo_methods_pairs_each_method_with_and_without_silence_noise():
    """`--methods ezvsl ssl_tie`: the variants, and findings per method with the claims' rows read as the
    method with (ssl_san) and without (ssl_tie) silence/noise."""
    from sslsan.demo import method_findings, variants_of

    variants = variants_of(DemoOptions(methods=["ezvsl", "ssl_tie"]))
    assert [(v.name, v.method, v.row, v.label) for v in variants] == [
        ("ezvsl_san", "ezvsl", "ssl_san", "EZ-VSL + SaN"), ("ezvsl", "ezvsl", "ssl_tie", "EZ-VSL"),
        ("ssl_san", None, "ssl_san", "SSL-SaN"), ("ssl_tie", None, "ssl_tie", "SSL-TIE")]

    def metrics(ciou: float, pia: float) -> dict:
        return {"localization": {"ciou_u": ciou, "auc_u": ciou, "pia_silence": pia, "pia_noise": pia},
                "reference_maps": {"centre": {"ciou_u": 10.0, "auc_u": 10.0}}}

    results = {"ezvsl_san": [metrics(40.0, 0.0)], "ezvsl": [metrics(30.0, 2.0)],
               "ssl_san": [metrics(20.0, 3.0)], "ssl_tie": [metrics(30.0, 1.0)]}
    (head_ez, ez), (head_tie, tie) = method_findings(results, variants)
    assert head_ez == ": EZ-VSL + SaN vs EZ-VSL" and head_tie == ": SSL-SaN vs SSL-TIE"
    assert {f.key: f.verdict for f in ez}["t2_positives_uth"] == "holds"  # 40 vs 30
    assert {f.key: f.verdict for f in tie}["t2_positives_uth"] == "reversed"  # 20 vs 30
    assert {f.key: f.verdict for f in ez}["t2_silence"] == "not measured"  # AUCN_S missing here
    assert next(f for f in ez if f.key == "t2_positives_uth").evidence.startswith("EZ-VSL + SaN vs EZ-VSL: cIoU_U 40.00")
