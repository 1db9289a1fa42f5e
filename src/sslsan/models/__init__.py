"""Towers, SSL-TIE's `Localizer`, and reading checkpoint files (docs/model.md §3).

Checkpoint formats and `load_model` live with the method registry (sslsan.methods.checkpoint).
"""

from sslsan.models.backbones import BACKBONES, Backbone, get_backbone, register_backbone
from sslsan.models.checkpoint import CheckpointError, read_checkpoint, unwrap_model
from sslsan.models.localizer import Localizer, ModelConfig
from sslsan.models.resnet import FEATURE_STRIDE, ResNet18Tower

__all__ = [
    "BACKBONES",
    "Backbone",
    "CheckpointError",
    "FEATURE_STRIDE",
    "Localizer",
    "ModelConfig",
    "ResNet18Tower",
    "get_backbone",
    "read_checkpoint",
    "register_backbone",
    "unwrap_model",
]
