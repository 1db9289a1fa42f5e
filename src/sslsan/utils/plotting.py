"""Matplotlib figures to PNG (the Agg backend; no display needed), shared by every module that plots.

Import `plt` from here: the backend is chosen before pyplot loads.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sslsan.utils.io import atomic_write_bytes  # noqa: E402

__all__ = ["figure_png", "plt", "save_figure"]


def figure_png(fig) -> bytes:
    """`fig` as PNG bytes (110 dpi, tight box), then closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def save_figure(fig, path: str | Path) -> Path:
    """Write `fig` as a PNG atomically and close it."""
    return atomic_write_bytes(path, figure_png(fig))
