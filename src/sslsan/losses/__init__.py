"""Training objective terms as nn.Modules (docs/model.md §4-5, DECISIONS D2, D14)."""

from sslsan.losses.contrastive import ContrastiveLoss, top1_accuracy
from sslsan.losses.equivariance import (
    EquivarianceLoss,
    EquivarianceTransform,
    TransformParams,
    rotation_matrix,
)
from sslsan.losses.objective import ObjectiveConfig, SSLSaNObjective
from sslsan.losses.silence_noise import SilenceNoiseLoss

__all__ = [
    "ContrastiveLoss",
    "EquivarianceLoss",
    "EquivarianceTransform",
    "ObjectiveConfig",
    "SSLSaNObjective",
    "SilenceNoiseLoss",
    "TransformParams",
    "rotation_matrix",
    "top1_accuracy",
]
