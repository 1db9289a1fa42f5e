"""The training engine: `TrainConfig`, `train(cfg, run_dir, device, resume)` and the Table-4 rows.

Modules: `train_config` (the typed config), `ablations` (Table 4), `data` (manifests, sampler, items,
loaders, mel cache), `step` (a step's inputs and loss), `streams` (keyed random streams), `run` (the run
directory), `distributed` (DDP), `train` (the loop).
"""

from sslsan.engine.ablations import ABLATIONS, ablation_overrides
from sslsan.engine.data import TrainDataError
from sslsan.engine.train import train
from sslsan.engine.train_config import DataConfig, EvalSection, OptimConfig, TrainConfig, TrainSection

__all__ = ["TrainConfig", "DataConfig", "OptimConfig", "TrainSection", "EvalSection", "TrainDataError", "train",
           "ABLATIONS", "ablation_overrides"]
