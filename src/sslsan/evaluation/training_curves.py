"""Training diagnostics of several runs side by side, read from their `log.jsonl` (one PNG).

The panels show what decides whether the silence/noise terms help or hurt: the contrastive loss and
accuracy, how high the positive maps reach against the tri-map thresholds ε and ε2, how much of the
map the positive mask covers, the negative maps, how close the negative audio embeddings are to the
positive ones, and (with `train.grad_diagnostics=true`) how strongly each loss term pulls on the image
tower.
"""

from __future__ import annotations

from pathlib import Path

from sslsan.utils.logging import read_jsonl
from sslsan.utils.plotting import plt, save_figure  # plt in the Agg backend

# (title, [(log key, line label)], y-axis log scale)
PANELS: list[tuple[str, list[tuple[str, str]], bool]] = [
    ("contrastive loss L_cl", [("loss_cl", "")], False),
    ("top-1 accuracy of the contrastive logits", [("acc_top1", "")], False),
    ("positive map: per-image max (solid), mean (dotted)", [("diag_pos_max", ""), ("diag_pos_mean", ":")], False),
    ("share of the map under the Pos mask", [("diag_pos_mask", "")], True),
    ("negative maps: per-image max (silence solid, noise dashed)", [("diag_silence_max", ""), ("diag_noise_max", "--")], False),
    ("cosine of the noise embedding with positive embeddings", [("diag_noise_cos", "")], False),
    ("L_S + L_N (as weighted in the loss)", [("loss_silence", ""), ("loss_noise", "--")], True),
    ("image-tower gradient norm: contrastive (solid), L_S+L_N (dashed)",
     [("grad_img_contrastive", ""), ("grad_img_negatives", "--")], True),
]
THRESHOLDS = {"diag_pos_max": ((0.65, "ε"), (0.4, "ε2"))}


def _series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in records:
        if key == "grad_img_negatives":
            parts = [r[k] for k in ("grad_img_silence", "grad_img_noise") if isinstance(r.get(k), (int, float))]
            value = (sum(p * p for p in parts) ** 0.5) if parts else None
        else:
            value = r.get(key)
        if isinstance(value, (int, float)):
            xs.append(int(r["step"]))
            ys.append(float(value) * (float(r.get("lambda_sn", 1.0)) if key in ("loss_silence", "loss_noise") else 1.0))
    return xs, ys


def plot_training_curves(runs: dict[str, str | Path], path: str | Path, title: str | None = None) -> Path:
    """Plot the per-step diagnostics of `runs` ({label: run directory}) into one PNG at `path`."""
    logs = {}
    for label, run in runs.items():
        log = Path(run) / "log.jsonl"
        logs[label] = [r for r in read_jsonl(log) if r.get("kind") == "train"]
    fig, axes = plt.subplots(2, 4, figsize=(18, 7.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (panel_title, keys, log_y) in zip(axes.ravel(), PANELS):
        drawn = False
        for i, (label, records) in enumerate(logs.items()):
            for key, style in keys:
                xs, ys = _series(records, key)
                if xs:
                    ax.plot(xs, ys, style or "-", color=colours[i % len(colours)], lw=1.4,
                            label=label if key == keys[0][0] else None)
                    drawn = True
        for y, name in THRESHOLDS.get(keys[0][0], ()):
            ax.axhline(y, color="0.5", lw=0.8, ls="--")
            ax.text(0.99, y, f" {name}", transform=ax.get_yaxis_transform(), va="bottom", ha="right", fontsize=8, color="0.4")
        if log_y and drawn:
            ax.set_yscale("log")
        ax.set_title(panel_title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        if not drawn:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="0.5")
        elif ax is axes.ravel()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)
