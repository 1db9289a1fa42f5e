"""The training engine: `TrainConfig`, `train(cfg, run_dir, device, resume)` and `sslsan train`."""

from sslsan.engine.config import DataConfig, EvalSection, OptimConfig, TrainConfig, TrainSection
from sslsan.engine.train import TrainDataError, train

__all__ = ["TrainConfig", "DataConfig", "OptimConfig", "TrainSection", "EvalSection", "TrainDataError", "train"]
