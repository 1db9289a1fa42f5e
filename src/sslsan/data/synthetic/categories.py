"""The categories of the embedded benchmark: each one's look (shape, hue, surface pattern) and sound recipe.

Shapes, hues and sounds are all distinct between categories; patterns repeat (6 x 2). How a recipe
becomes a waveform: sslsan.data.synthetic.sound; how a shape and pattern are drawn: .scene.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SoundRecipe:
    """Parameters of one category's sound; every range is sampled per clip (within-class variation).

    kind: "harmonic" (sum of partials of f0), "noise" (band-limited noise centred on f0),
    "chirp" (harmonic with an exponential sweep inside each event), "click" (short noise taps).
    """

    kind: str
    f_range: tuple[float, float]  # f0 (harmonic/chirp) or band centre (noise/click), Hz
    partials: tuple[float, ...] = (1.0,)  # frequency ratios of the partials to f0
    rolloff: float = 1.0  # partial k has amplitude 1 / (k-th index + 1) ** rolloff
    bandwidth: float = 0.5  # noise band width in octaves (noise/click)
    rate: tuple[float, float] = (0.0, 0.0)  # events per second; 0 = continuous
    duty: float = 0.6  # sounding fraction of each event period (ignored when decay > 0)
    decay: float = 0.0  # exponential decay time constant of struck events, s
    am_rate: tuple[float, float] = (0.0, 0.0)  # amplitude modulation rate, Hz
    am_depth: float = 0.0
    fm_rate: tuple[float, float] = (0.0, 0.0)  # vibrato / siren rate, Hz
    fm_depth: float = 0.0  # relative frequency deviation
    sweep: float = 1.0  # chirp: end / start frequency of each event


@dataclass(frozen=True)
class Category:
    name: str
    shape: str  # a key of SHAPES
    hue: float  # degrees
    pattern: str  # a key of PATTERNS
    sound: SoundRecipe

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": self.shape,
            "hue": self.hue,
            "pattern": self.pattern,
            "sound": dataclasses.asdict(self.sound),
        }


_HARM12 = tuple(float(k) for k in range(1, 13))
_ODD = (1.0, 3.0, 5.0, 7.0, 9.0)

CATEGORY_LIBRARY: tuple[Category, ...] = (
    Category("bell", "disc", 0.0, "rings",
             SoundRecipe("harmonic", (380, 480), partials=(1.0, 2.76, 5.40, 8.93), rolloff=0.7,
                         rate=(1.0, 1.8), decay=0.35)),
    Category("engine", "square", 30.0, "stripes",
             SoundRecipe("harmonic", (45, 65), partials=tuple(float(k) for k in range(1, 17)),
                         rolloff=1.0, am_rate=(9, 14), am_depth=0.5)),
    Category("whistle", "triangle", 60.0, "dots",
             SoundRecipe("harmonic", (1800, 2300), partials=(1.0, 2.0), rolloff=3.0,
                         fm_rate=(5, 7), fm_depth=0.03)),
    Category("drum", "star", 90.0, "checker",
             SoundRecipe("noise", (110, 170), bandwidth=1.2, rate=(2.0, 3.5), decay=0.09)),
    Category("rain", "hexagon", 120.0, "gradient",
             SoundRecipe("noise", (6500, 7500), bandwidth=1.2, am_rate=(0.3, 0.8), am_depth=0.3)),
    Category("siren", "cross", 150.0, "solid",
             SoundRecipe("harmonic", (900, 1100), partials=(1.0, 2.0, 3.0), rolloff=1.2,
                         fm_rate=(0.35, 0.6), fm_depth=0.2)),
    Category("cricket", "ring", 180.0, "stripes",
             SoundRecipe("harmonic", (4200, 4700), partials=(1.0,), rate=(2.0, 3.0), duty=0.35,
                         am_rate=(28, 40), am_depth=0.9)),
    Category("organ", "diamond", 210.0, "dots",
             SoundRecipe("harmonic", (210, 290), partials=_ODD, rolloff=1.0,
                         rate=(0.6, 0.9), duty=0.85)),
    Category("buzzer", "crescent", 240.0, "checker",
             SoundRecipe("harmonic", (150, 190), partials=_HARM12, rolloff=0.3,
                         rate=(3.0, 4.5), duty=0.5)),
    Category("bird", "arrow", 270.0, "gradient",
             SoundRecipe("chirp", (2800, 3300), partials=(1.0, 2.0), rolloff=2.5,
                         rate=(4.0, 6.0), duty=0.45, sweep=1.5)),
    Category("clock", "heart", 300.0, "solid",
             SoundRecipe("click", (900, 1100), bandwidth=0.7, rate=(3.0, 4.0), decay=0.025)),
    Category("wind", "capsule", 330.0, "rings",
             SoundRecipe("noise", (450, 650), bandwidth=1.0, am_rate=(0.2, 0.45), am_depth=0.7)),
)
