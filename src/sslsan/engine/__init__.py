"""The training engine: `TrainConfig`, `train(cfg, run_dir, device, resume)` and the Table-4 rows.

Modules, one job each: `train_config` (the typed config), `ablations` (Table 4), `data` (manifests,
sampler, training items, loaders, mel cache), `step` (one step's inputs and loss), `streams` (keyed
random streams), `run` (the run directory: provenance, RNG state, save/restore, the resume check),
`distributed` (DDP), `train` (the loop).
"""

from sslsan.engine.ablations import ABLATIONS, ablation_overrides
from sslsan.engine.data import TrainDataError
from sslsan.engine.train import train  # after the import of the module sslsan.engine.train: the name is the function
from sslsan.engine.train_config import DataConfig, EvalSection, OptimConfig, TrainConfig, TrainSection

__all__ = ["TrainConfig", "DataConfig", "OptimConfig", "TrainSection", "EvalSection", "TrainDataError", "train",
           "ABLATIONS", "ablation_overrides"]
