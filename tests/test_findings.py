"""The paper's findings as the demo judges them (sslsan.evaluation.findings): the rule, on known numbers."""

from __future__ import annotations

import pytest

from sslsan.evaluation.findings import CLAIMS, T4_ROWS, findings, floor_of


def _metrics(ciou=40.0, ciou_a=50.0, pia_s=0.0, pia_n=0.0, pia_o=1.0, floc=60.0, sep=0.3, mag=0.7, ali=0.5, ret=50.0):
    return {"localization": {"ciou_u": ciou, "auc_u": ciou, "ciou_a": ciou_a, "auc_a": ciou_a,
                             "pia_silence": pia_s, "aucn_silence": 100 - pia_s, "pia_noise": pia_n, "aucn_noise": 100 - pia_n,
                             "pia_offscreen": pia_o, "aucn_offscreen": 100 - pia_o, "floc": floc, "fauc": floc},
            "separability": {"sep": sep}, "alignment": {"magnitude": mag, "alignment": ali},
            "retrieval": {f"{d}_{k}@{j}": ret for d in ("i2a", "a2i") for k in "PA" for j in (1, 5, 10)},
            "reference_maps": {"centre": {"ciou_u": 10.0, "auc_u": 10.0}}}


def _by_key(fs):
    return {f.key: f for f in fs}


def test_every_claim_of_tables_1_to_3_is_judged_and_table_4_needs_its_rows():
    fs = _by_key(findings({"ssl_san": [_metrics()], "ssl_tie": [_metrics()]}))
    assert set(fs) == {"sanity_chance"} | {c.key for c in CLAIMS if c.table != "Table 4"}
    rows = {r: [_metrics()] for r in T4_ROWS}
    assert {c.key for c in CLAIMS} <= set(_by_key(findings(rows)))


def test_another_methods_pair_is_named_in_the_claim_and_the_paper_keeps_its_own_rows():
    """`sslsan demo --methods lvs`: the claim reads for LVS + SaN vs LVS, the paper's numbers stay SSL-SaN vs SSL-TIE."""
    rows = {"ssl_san": [_metrics(ciou=45.0)], "ssl_tie": [_metrics(ciou=30.0)]}
    f = _by_key(findings(rows, {"ssl_san": "LVS + SaN", "ssl_tie": "LVS"}))["t2_positives_uth"]
    assert f.text == "LVS + SaN localizes positives better than LVS at the universal threshold."
    assert f.evidence.startswith("LVS + SaN vs LVS: cIoU_U 45.00 vs 30.00")
    assert f.paper.startswith("VGG-SS, SSL-SaN vs SSL-TIE: cIoU_U 29.61 vs 27.78")
    default = _by_key(findings(rows))["t2_positives_uth"]
    assert default.text == CLAIMS[0].text and default.paper == f.paper


def test_better_equal_reversed_against_the_floor():
    tie = _metrics(ciou=40.0, sep=0.20)
    f = _by_key(findings({"ssl_san": [_metrics(ciou=41.5, sep=0.215)], "ssl_tie": [tie]}))
    assert f["t2_positives_uth"].verdict == "holds" and f["t1_separability"].verdict == "holds"
    f = _by_key(findings({"ssl_san": [_metrics(ciou=41.0, sep=0.205)], "ssl_tie": [tie]}))  # at the floor: not more
    assert f["t2_positives_uth"].verdict == "equal" and f["t1_separability"].verdict == "equal"
    f = _by_key(findings({"ssl_san": [_metrics(ciou=38.5, sep=0.18)], "ssl_tie": [tie]}))
    assert f["t2_positives_uth"].verdict == "reversed" and not f["t2_positives_uth"].holds
    assert "DOES NOT HOLD (reversed)" == f["t1_separability"].label
    assert "cIoU_U 38.50 vs 40.00" in f["t2_positives_uth"].evidence and "29.61 vs 27.78" in f["t2_positives_uth"].paper


def test_a_claim_within_the_papers_own_floor_is_read_as_at_least_as_good():
    adap = next(c for c in CLAIMS if c.key == "t2_positives_adap")
    assert adap.kind(0) == "not_worse"  # the paper: cIoU_A 52.74 vs 51.88, within 1 point
    assert next(c for c in CLAIMS if c.key == "t2_positives_uth").kind(0) == "better"  # 29.61 vs 27.78
    tie = _metrics(ciou_a=60.0)
    assert _by_key(findings({"ssl_san": [_metrics(ciou_a=59.0)], "ssl_tie": [tie]}))["t2_positives_adap"].holds
    assert _by_key(findings({"ssl_san": [_metrics(ciou_a=58.9)], "ssl_tie": [tie]}))["t2_positives_adap"].verdict == "reversed"


def test_the_noise_over_seeds_widens_the_margin():
    # differences +4 and -2 points: mean 1, std 3 -> equal; +4 and +2: mean 3, std 1 -> holds
    tie = [_metrics(ciou=40.0), _metrics(ciou=40.0)]
    f = _by_key(findings({"ssl_san": [_metrics(ciou=44.0), _metrics(ciou=38.0)], "ssl_tie": tie}))["t2_positives_uth"]
    assert f.verdict == "equal" and f.per_seed == "1/2 seeds" and f.metrics[0]["noise"] == pytest.approx(3.0)
    f = _by_key(findings({"ssl_san": [_metrics(ciou=44.0), _metrics(ciou=42.0)], "ssl_tie": tie}))["t2_positives_uth"]
    assert f.holds and f.per_seed == "2/2 seeds" and "± " in f.evidence


def test_quiet_needs_pia_near_zero_as_well_as_below_the_baseline():
    tie = _metrics(pia_s=3.0, pia_n=3.0)
    f = _by_key(findings({"ssl_san": [_metrics(pia_s=0.05, pia_n=0.5)], "ssl_tie": [tie]}))
    assert f["t2_silence"].holds and f["t2_noise"].verdict == "above bound"


def test_table_4_orderings_against_the_closest_other_row():
    rows = {r: [_metrics(ciou=40.0, pia_s=2.0, pia_n=2.0, pia_o=1.0, floc=55.0, sep=0.20)] for r in T4_ROWS}
    rows["ssl_san"] = [_metrics(ciou=42.0, pia_s=0.0, pia_n=0.0, pia_o=1.0, floc=57.0, sep=0.30)]
    rows["s_ls"] = [_metrics(ciou=40.0, pia_s=0.0, pia_n=2.0, pia_o=0.5, floc=55.0, sep=0.25)]
    f = _by_key(findings(rows))
    # pIA_S: the paper's full row is ahead by 1.70 (> floor): here S+LS ties it at 0 -> equal, named
    assert f["t4_full_best"].verdict == "equal" and "(S+LS)" in f["t4_full_best"].evidence
    assert f["t4_offscreen"].holds  # S+LS lowest pIA_O (the paper's margin 0.01 -> at least as good)
    assert f["t4_sep_best"].verdict == "reversed"  # N 0.20 vs SSL-SaN 0.30
    assert f["t4_sep_second"].holds  # SSL-SaN ahead of every row but N


def test_floors():
    assert floor_of("ciou_u") == 1.0 and floor_of("pia_offscreen") == 0.1 and floor_of("aucn_noise") == 0.1
    assert floor_of("sep") == floor_of("magnitude") == floor_of("alignment") == 0.01 and floor_of("i2a_P@1") == 1.0
