"""The paper's findings as one table, and how each is judged from measured metrics.

Each `Claim` is a finding of the paper (Tables 1-4) that the embedded benchmark can test: which
model (row) it is about, which rows it is compared with, the metrics, and the paper's numbers for
them (VGG-SS for Tables 1-3, AVS-Bench S4 for Table 4, the only set of the paper's Table 4).
`judge` turns the metrics.json of every row and seed into a `Finding`: the verdict and the numbers.

The rule, the same for every claim and metric (stated, never tuned to a result):
- per seed s, d_s = the subject's value minus its closest competitor's (sign turned so that d > 0
  favours the subject; the competitor is the compared row with the best mean);
- noise = max(floor, std of d_s over seeds) with the floor per metric in `FLOORS` (1 point for
  percentages, 0.1 for pIA and AUCN, 0.01 for Magnitude, Alignment and Separability), so one seed
  is judged against the floor alone;
- a claim the paper's own numbers make by more than the floor ("better") holds when
  mean(d) > noise; it is "equal" when |mean(d)| <= noise and "reversed" when mean(d) < -noise;
- a claim whose margin in the paper is within the floor (e.g. cIoU_A 52.74 vs 51.88) is read as
  "at least as good": it holds when mean(d) >= -noise, else it is reversed;
- `at_most` adds an absolute bound on the subject's mean (pIA of silence and noise ≈ 0): above it,
  a claim that would hold is "above bound";
- a finding with several metrics holds when every metric holds; otherwise its verdict is the
  worst of them (reversed, then equal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# (label, section of metrics.json, key, higher is better)
Metric = tuple[str, str, str, bool]

FLOORS = {"pia": 0.1, "aucn": 0.1, "magnitude": 0.01, "alignment": 0.01, "sep": 0.01}
DEFAULT_FLOOR = 1.0  # percentage points
CHANCE_MARGIN = 5.0  # sanity check: cIoU_U and AUC_U at least this above the best chance map
VERDICTS = ("holds", "equal", "above bound", "fails", "reversed", "not measured")  # best first


def floor_of(key: str) -> float:
    """The smallest difference that counts for metric `key` (see the module docstring)."""
    return FLOORS.get(key, FLOORS.get(key.split("_")[0], DEFAULT_FLOOR))


def _loc(label: str, key: str, higher: bool = True) -> Metric:
    return (label, "localization", key, higher)


MAGNITUDE = ("Magnitude", "alignment", "magnitude", False)
ALIGNMENT = ("Alignment", "alignment", "alignment", True)
SEP = ("Sep", "separability", "sep", True)
RETRIEVAL = {d: tuple((f"{m}@{k}", "retrieval", f"{d}_{m}@{k}", True) for m in ("P", "A") for k in (1, 5, 10))
             for d, name in (("i2a", "I→A"), ("a2i", "A→I"))}


@dataclass(frozen=True)
class Claim:
    """One finding of the paper. `paper[i]` gives metric i's published value for each row it names."""

    key: str
    table: str  # "Table 2", ...
    text: str  # the paper's claim, in words
    metrics: tuple[Metric, ...]
    paper: tuple[dict[str, float], ...]
    subject: str = "ssl_san"
    versus: tuple[str, ...] = ("ssl_tie",)  # compared rows; empty = every other row present (Table 4)
    at_most: float | None = None  # an absolute bound on the subject's mean (lower-is-better metrics)
    source: str = "VGG-SS"  # the paper's test set the numbers come from

    def rivals(self, i: int = 0) -> tuple[str, ...]:
        """The rows the subject is compared with: `versus`, or every other row the paper gives."""
        return self.versus or tuple(r for r in self.paper[i] if r != self.subject)

    def paper_closest(self, i: int) -> tuple[str, float]:
        """The paper's closest rival on metric i and the subject's margin over it (> 0: the subject is ahead)."""
        _, _, _, higher = self.metrics[i]
        pub = self.paper[i]
        margins = {r: (pub[self.subject] - pub[r]) * (1 if higher else -1) for r in self.rivals(i)}
        rival = min(margins, key=margins.get)
        return rival, margins[rival]

    def kind(self, i: int) -> str:
        """"better" when the paper's own margin on metric i exceeds the floor, else "not_worse"."""
        return "better" if self.paper_closest(i)[1] > floor_of(self.metrics[i][2]) else "not_worse"


def _pair(san: float, tie: float) -> dict[str, float]:
    return {"ssl_san": san, "ssl_tie": tie}


T4_ROWS = ("ssl_tie", "s", "s_ls", "n", "n_ln", "s_n", "ssl_san")


def _rows(*values: float) -> dict[str, float]:
    return dict(zip(T4_ROWS, values))


T4_CIOU = _rows(31.57, 31.76, 32.49, 31.97, 32.07, 32.05, 32.76)
T4_PIA_S = _rows(2.53, 2.39, 2.54, 2.26, 2.21, 1.75, 0.05)
T4_PIA_N = _rows(2.49, 1.85, 2.58, 2.59, 2.26, 1.01, 0.00)
T4_PIA_O = _rows(1.00, 0.82, 0.81, 0.88, 1.07, 0.84, 0.95)
T4_FLOC = _rows(47.76, 48.01, 48.80, 48.22, 48.34, 48.40, 49.31)
T4_SEP = _rows(0.2384, 0.2350, 0.2458, 0.2558, 0.2375, 0.2393, 0.2479)

CLAIMS: tuple[Claim, ...] = (
    Claim("t2_positives_uth", "Table 2", "SSL-SaN localizes positives better than SSL-TIE at the universal threshold.",
          (_loc("cIoU_U", "ciou_u"), _loc("AUC_U", "auc_u")), (_pair(29.61, 27.78), _pair(29.97, 28.23))),
    Claim("t2_positives_adap", "Table 2", "SSL-SaN localizes positives at least as well as SSL-TIE at the adaptive "
          "threshold.", (_loc("cIoU_A", "ciou_a"), _loc("AUC_A", "auc_a")), (_pair(52.74, 51.88), _pair(48.66, 48.00))),
    Claim("t2_silence", "Table 2", "SSL-SaN filters out silence completely (pIA ≈ 0), unlike SSL-TIE.",
          (_loc("pIA_S", "pia_silence", False), _loc("AUCN_S", "aucn_silence")), (_pair(0.01, 0.78), _pair(99.99, 99.16)),
          at_most=0.1),
    Claim("t2_noise", "Table 2", "SSL-SaN filters out noise completely (pIA ≈ 0), unlike SSL-TIE.",
          (_loc("pIA_N", "pia_noise", False), _loc("AUCN_N", "aucn_noise")), (_pair(0.00, 0.68), _pair(100.00, 99.26)),
          at_most=0.1),
    Claim("t2_offscreen", "Table 2", "SSL-SaN activates less than SSL-TIE for offscreen sounds.",
          (_loc("pIA_O", "pia_offscreen", False), _loc("AUCN_O", "aucn_offscreen")), (_pair(1.72, 2.50), _pair(98.17, 97.39))),
    Claim("t2_global", "Table 2", "SSL-SaN has the better global scores.",
          (_loc("FLOC", "floc"), _loc("FAUC", "fauc")), (_pair(45.63, 43.36), _pair(46.05, 43.90))),
    Claim("t1_separability", "Table 1", "SSL-SaN separates positive from negative audio better (Separability).",
          (SEP,), (_pair(0.0971, 0.0606),)),
    Claim("t1_magnitude", "Table 1", "SSL-SaN has the smaller modality gap (Magnitude).", (MAGNITUDE,), (_pair(0.93, 0.96),)),
    Claim("t1_alignment", "Table 1", "SSL-SaN aligns positive pairs better (Alignment).", (ALIGNMENT,), (_pair(0.40, 0.37),)),
    Claim("t3_i2a", "Table 3", "SSL-SaN retrieves audio from images better than SSL-TIE, across all metrics.",
          RETRIEVAL["i2a"], tuple(map(lambda p: _pair(*p), ((24.61, 16.25), (22.94, 14.87), (20.88, 13.83), (24.61, 16.25),
                                                            (48.57, 35.81), (58.97, 47.51))))),
    Claim("t3_a2i", "Table 3", "SSL-SaN retrieves images from audio better than SSL-TIE, across all metrics.",
          RETRIEVAL["a2i"], tuple(map(lambda p: _pair(*p), ((24.49, 15.12), (22.97, 14.82), (21.25, 13.81), (24.49, 15.12),
                                                            (46.74, 35.91), (57.41, 47.41))))),
    Claim("t4_full_best", "Table 4", "With silence, noise, L_S and L_N together (SSL-SaN) every metric but offscreen "
          "and Sep is the best of the seven rows.",
          (_loc("cIoU_U", "ciou_u"), _loc("pIA_S", "pia_silence", False), _loc("pIA_N", "pia_noise", False),
           _loc("FLOC", "floc")), (T4_CIOU, T4_PIA_S, T4_PIA_N, T4_FLOC), versus=(), source="AVS-Bench S4"),
    Claim("t4_offscreen", "Table 4", "Silence with L_S alone (S+LS) gives the best offscreen pIA.",
          (_loc("pIA_O", "pia_offscreen", False),), (T4_PIA_O,), subject="s_ls", versus=(), source="AVS-Bench S4"),
    Claim("t4_sep_best", "Table 4", "Noise without L_N (N) gives the best Separability.", (SEP,), (T4_SEP,),
          subject="n", versus=(), source="AVS-Bench S4"),
    Claim("t4_sep_second", "Table 4", "SSL-SaN's Separability is second only to N's.", (SEP,), (T4_SEP,),
          versus=tuple(r for r in T4_ROWS if r not in ("n", "ssl_san")), source="AVS-Bench S4"),
)


@dataclass
class Finding:
    """A claim judged on measured metrics: `verdict` in VERDICTS, `evidence` the numbers in words."""

    key: str
    table: str
    text: str
    verdict: str
    evidence: str
    paper: str
    rule: str
    per_seed: str = ""
    metrics: list[dict[str, Any]] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return self.verdict == "holds"

    @property
    def label(self) -> str:
        return {"holds": "HOLDS", "equal": "DOES NOT HOLD (equal within the noise)",
                "above bound": "DOES NOT HOLD (above the bound)",
                "fails": "DOES NOT HOLD", "reversed": "DOES NOT HOLD (reversed)"}.get(self.verdict, "NOT MEASURED")

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "table": self.table, "text": self.text, "verdict": self.verdict, "holds": self.holds,
                "evidence": self.evidence, "paper": self.paper, "rule": self.rule, "per_seed": self.per_seed,
                "metrics": self.metrics}


def metric_value(m: dict, section: str, key: str) -> float:
    """metrics.json's value of `section.key` as a float (NaN when absent)."""
    v = (m.get(section) or {}).get(key)
    return float("nan") if v is None else float(v)


def _verdict(kind: str, mean_d: float, noise: float) -> str:
    if math.isnan(mean_d):
        return "not measured"
    if kind == "not_worse":
        return "holds" if mean_d >= -noise else "reversed"
    return "holds" if mean_d > noise else ("reversed" if mean_d < -noise else "equal")


def _worst(verdicts: list[str]) -> str:
    return max(verdicts, key=VERDICTS.index) if verdicts else "not measured"


def _fmt(x: float, key: str) -> str:
    return "–" if math.isnan(x) else f"{x:.{3 if floor_of(key) < 0.1 else 2}f}"


def judge_metric(claim: Claim, i: int, results: dict[str, list[dict]]) -> dict[str, Any] | None:
    """One metric of a claim on the measured runs ({row: [metrics per seed]}); None if a row is missing."""
    label, section, key, higher = claim.metrics[i]
    if any(not results.get(r) for r in claim.paper[i]):  # every row the paper compares was trained
        return None
    versus = claim.rivals(i)
    n = min(len(results[r]) for r in (claim.subject, *versus))
    sign = 1.0 if higher else -1.0
    vals = {r: np.array([metric_value(m, section, key) for m in results[r][:n]]) for r in (claim.subject, *versus)}
    diffs = {r: sign * (vals[claim.subject] - vals[r]) for r in versus}
    closest = min(versus, key=lambda r: float(np.mean(diffs[r])))
    d = diffs[closest]
    noise = max(floor_of(key), float(np.std(d)) if n > 1 else 0.0)
    kind = claim.kind(i)
    verdict = _verdict(kind, float(np.mean(d)), noise)
    bound = claim.at_most if not higher else None  # the bound is on the lower-is-better metrics (pIA)
    if bound is not None and verdict == "holds" and float(np.mean(vals[claim.subject])) > bound:
        verdict = "above bound"
    per_seed = [_verdict(kind, float(x), floor_of(key)) == "holds"
                and (bound is None or vals[claim.subject][s] <= bound) for s, x in enumerate(d)]
    return {"label": label, "key": key, "kind": kind, "verdict": verdict, "closest": closest,
            "mean": {r: float(np.mean(v)) for r, v in vals.items()}, "std": {r: float(np.std(v)) for r, v in vals.items()},
            "diff": float(np.mean(d)), "noise": noise, "seeds": n, "per_seed": per_seed,
            "paper": dict(claim.paper[i])}


def judge(claim: Claim, results: dict[str, list[dict]], display: dict[str, str],
          paper_display: dict[str, str] | None = None) -> Finding | None:
    """The finding of `claim` on the measured runs, or None when a row it needs was not trained. `display` names
    the measured rows (e.g. ssl_san -> "LVS + SaN" when another method is judged), `paper_display` the paper's
    (default: `display`): the claim's text names the measured pair, its paper numbers the paper's."""
    parts = [judge_metric(claim, i, results) for i in range(len(claim.metrics))]
    if any(p is None for p in parts):
        return None
    name = display.get
    pname = (paper_display or display).get
    verdict = _worst([p["verdict"] for p in parts])
    n = parts[0]["seeds"]
    ok = sum(all(p["per_seed"][s] for p in parts) for s in range(n))
    sub = claim.subject
    evidence, paper = [], []
    for i, p in enumerate(parts):
        k, rival = p["key"], p["closest"]
        std = (lambda r: f" ± {_fmt(p['std'][r], k)}") if n > 1 else (lambda r: "")
        evidence.append(f"{p['label']} {_fmt(p['mean'][sub], k)}{std(sub)} vs {_fmt(p['mean'][rival], k)}{std(rival)}"
                        + ("" if len(claim.rivals(i)) == 1 else f" ({name(rival, rival)})"))
        prival, _ = claim.paper_closest(i)
        paper.append(f"{p['label']} {p['paper'][sub]:g} vs {p['paper'][prival]:g}"
                     + ("" if len(claim.rivals(i)) == 1 else f" ({pname(prival, prival)})"))
    rivals = claim.rivals()
    who, paper_who = (f"{nm(sub, sub)} vs {nm(rivals[0], rivals[0]) if len(rivals) == 1 else 'the closest other row'}: "
                      for nm in (name, pname))
    text = claim.text
    for row in ("ssl_san", "ssl_tie"):  # the claim as read for the measured pair (identity for SSL-SaN vs SSL-TIE)
        text = text.replace(pname(row, row), name(row, row))
    kinds = {p["kind"] for p in parts}
    rule = ("better by more than the noise" if kinds == {"better"} else "at least as good, within the noise"
            if kinds == {"not_worse"} else "better, or at least as good where the paper's margin is within the floor")
    rule += f" (noise: max(floor, std over seeds); floors {', '.join(sorted({_fmt(floor_of(p['key']), p['key']) for p in parts}))})"
    if claim.at_most is not None:
        rule += f"; and at most {claim.at_most:g}"
    return Finding(claim.key, claim.table, text, verdict, who + "; ".join(evidence),
                   f"{claim.source}, " + paper_who + "; ".join(paper), rule, f"{ok}/{n} seeds",
                   [{k: v for k, v in p.items() if k != "per_seed"} for p in parts])


def chance_finding(results: dict[str, list[dict]], display: dict[str, str], rows=("ssl_san", "ssl_tie")) -> Finding:
    """A sanity check, not a claim of the paper: both models localize far above the best chance map."""
    ref = results[rows[0]][0].get("reference_maps") or {}
    chance = {k: max((r.get(k, 0.0) for r in ref.values()), default=0.0) for k in ("ciou_u", "auc_u")}
    n = min(len(results[r]) for r in rows)
    per_seed = [all(metric_value(results[r][s], "localization", k) >= chance[k] + CHANCE_MARGIN for r in rows for k in chance)
                for s in range(n)]
    means = {r: {k: float(np.mean([metric_value(m, "localization", k) for m in results[r][:n]])) for k in chance} for r in rows}
    holds = all(means[r][k] >= chance[k] + CHANCE_MARGIN for r in rows for k in chance)
    evidence = "; ".join(f"{lab} " + ", ".join(f"{display.get(r, r)} {means[r][k]:.2f}" for r in rows)
                         + f" vs chance {chance[k]:.2f}" for lab, k in (("cIoU_U", "ciou_u"), ("AUC_U", "auc_u")))
    return Finding("sanity_chance", "sanity", "Both models localize far better than chance.",
                   "holds" if holds else "fails", evidence, "(not a claim of the paper)",
                   f"cIoU_U and AUC_U at least {CHANCE_MARGIN:g} points above the best chance map (mean over seeds)",
                   f"{sum(per_seed)}/{n} seeds")


def findings(results: dict[str, list[dict]], display: dict[str, str] | None = None) -> list[Finding]:
    """Every claim of `CLAIMS` the measured rows can test, after the chance sanity check. `display`: row
    name -> label (default: Table 4's labels, e.g. "SSL-SaN", "S+LS")."""
    from sslsan.engine.ablations import ABLATIONS  # noqa: PLC0415 (the engine package loads torch)

    paper_display = {name: row.label for name, row in ABLATIONS.items()}
    display = display or paper_display
    out = [chance_finding(results, display)]
    for claim in CLAIMS:
        f = judge(claim, results, display, paper_display)
        if f is not None:
            out.append(f)
    return out
