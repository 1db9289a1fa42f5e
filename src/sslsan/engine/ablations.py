"""The paper's Table 4 in one table: each row's name, display label and objective switches.

The four switches of `SilenceNoiseConfig` (the `san` section; DECISIONS D14): `use_silence` / `use_noise` add the silence /
noise clip as an extra contrastive negative; `loss_silence` / `loss_noise` add L_S / L_N. Row 1 is
SSL-TIE (all off), row 7 SSL-SaN (all on). `sslsan train --ablation ROW` (and `sslsan demo --ablation`)
apply a row's switches on top of any config, for any method (`--method ezvsl --ablation ssl_san` is
EZ-VSL with silence and noise).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sslsan.config import ConfigError


@dataclass(frozen=True)
class Ablation:
    """One row of Table 4."""

    name: str  # the row's name on the command line, in run folders and in summary.json
    label: str  # how reports and figures show it
    use_silence: bool
    use_noise: bool
    loss_silence: bool
    loss_noise: bool

    def overrides(self) -> list[str]:
        """The row as `san.*` config overrides."""
        switches = [f.name for f in dataclasses.fields(self) if f.type in (bool, "bool")]  # SilenceNoiseConfig's four
        return [f"san.{k}={str(getattr(self, k)).lower()}" for k in switches]


# Table 4, in row order
ABLATIONS: dict[str, Ablation] = {a.name: a for a in (
    Ablation("ssl_tie", "SSL-TIE", False, False, False, False),
    Ablation("s", "S", True, False, False, False),
    Ablation("s_ls", "S+LS", True, False, True, False),
    Ablation("n", "N", False, True, False, False),
    Ablation("n_ln", "N+LN", False, True, False, True),
    Ablation("s_n", "S+N", True, True, False, False),
    Ablation("ssl_san", "SSL-SaN", True, True, True, True),
)}


def ablation(name: str) -> Ablation:
    """The Table-4 row `name` (a ConfigError naming the rows when there is none)."""
    if name not in ABLATIONS:
        raise ConfigError(f"unknown ablation {name!r}; Table 4 rows: {', '.join(ABLATIONS)}")
    return ABLATIONS[name]


def ablation_overrides(name: str) -> list[str]:
    """The `san.*` overrides of Table-4 row `name` (e.g. "s_ls"), to apply on top of another config.

    `load_config(TrainConfig, "synth_cpu", ablation_overrides("ssl_tie"))` is the SSL-TIE baseline on the
    embedded benchmark.
    """
    return ablation(name).overrides()
