"""Training objectives as nn.Modules (docs/model.md §4-5, DECISIONS D2, D14).

`SilenceNoiseObjective` (silence_noise) wraps any method's own objective with SSL-SaN's terms;
`SSLTIEObjective` (ssl_tie) is SSL-TIE's; the building blocks are `ContrastiveLoss` (contrastive)
and the equivariance transform and loss (equivariance).
"""

from sslsan.losses.contrastive import ContrastiveLoss, top1_accuracy
from sslsan.losses.equivariance import (
    EquivarianceLoss,
    EquivarianceTransform,
    TransformParams,
    rotation_matrix,
)
from sslsan.losses.silence_noise import (
    SilenceNoiseConfig,
    SilenceNoiseLoss,
    SilenceNoiseObjective,
)
from sslsan.losses.ssl_tie import SSLTIEObjective, TIEObjectiveConfig

__all__ = [
    "ContrastiveLoss",
    "EquivarianceLoss",
    "EquivarianceTransform",
    "SSLTIEObjective",
    "SilenceNoiseConfig",
    "SilenceNoiseLoss",
    "SilenceNoiseObjective",
    "TIEObjectiveConfig",
    "TransformParams",
    "rotation_matrix",
    "top1_accuracy",
]
