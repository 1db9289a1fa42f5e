"""ResNet-18 towers, the `Localizer` and its checkpoints (docs/model.md §3, DECISIONS D10)."""

from sslsan.models.backbones import BACKBONES, Backbone, get_backbone, register_backbone
from sslsan.models.checkpoint import (
    CheckpointError,
    load_model,
    read_checkpoint,
    save_checkpoint,
    set_universal_threshold,
    unwrap_model,
)
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
    "load_model",
    "read_checkpoint",
    "register_backbone",
    "save_checkpoint",
    "set_universal_threshold",
    "unwrap_model",
]
