"""`TrainConfig`: everything a training run depends on, as typed dataclasses (sslsan.config).

`method` names a registered method (sslsan.methods); the `model` and `objective` sections are that
method's config classes and `audio` starts from its front-end. `san` holds the silence/noise
switches and settings (any method; on by default for ssl_san only). `data`, `optim`, `train`, `eval`
are defined here. Defaults are the paper's VGGSound-144K recipe (docs/model.md §4.3, §5, DECISIONS
D9); `src/sslsan/configs/*.yaml` override them. Unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from sslsan.audio import FRONTENDS, AudioConfig
from sslsan.config import ConfigError, from_dict
from sslsan.evaluation.eval_config import EvaluationConfig
from sslsan.losses.silence_noise import SWITCHES, SilenceNoiseConfig
from sslsan.methods import get_method
from sslsan.methods.base import Method


@dataclass
class DataConfig:
    """Where the training data is and how it is loaded."""

    root: str | None = None  # a folder written by `sslsan data synth` / `sslsan prepare` (holds the manifests)
    train_manifest: str = "train.jsonl"  # relative to `root` (or absolute / relative to the cwd without a root)
    val_manifest: str | None = "val.jsonl"  # held-out split for val loss, LR plateau and best checkpoint (D9); null: none
    image_size: int = 224
    num_workers: int = 8
    pin_memory: bool = True  # only takes effect on CUDA
    persistent_workers: bool = True
    prefetch_factor: int = 2  # batches each worker keeps ready
    # Compute each clip's mel power once (in memory, before epoch 1) instead of per step: the CPU demo's
    # big saving. SpecAugment and dB are still applied per step, so training sees the same inputs.
    cache_spectrograms: bool = False
    cache_on_disk: bool = True  # keep the cache beside the manifest (.sslsan_cache/) for the next run on this data
    cache_max_gib: float = 8.0  # refuse a cache larger than this (the paper's 257x670 spectrograms: ~0.7 MB a clip)
    # Image augmentation (MoCo-v2 as SSL-TIE uses it: docs/model.md §2). Defaults are the paper's; short
    # runs on small data (the CPU demo) learn faster with a milder crop and no colour changes.
    crop_scale: tuple[float, float] = (0.3, 1.0)  # RandomResizedCrop area range
    jitter_p: float = 0.8  # ColorJitter(0.4, 0.4, 0.4, 0.1)
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    flip_p: float = 0.5
    # The loader workers decode the frame and cut the random-resized crop on uint8; flip, colour,
    # grayscale, blur and normalisation run batched on the training device (sslsan.data.augment).
    # A JPEG is decoded at 1/2, 1/4 or 1/8 scale when the crop still covers image_size pixels there
    # (large native-size frames; 299-px frames at 224 never qualify): measured 5.7 -> 3.5 ms a 720p frame.
    reduced_decode: bool = True
    # Where the N(0, 1) noise clips are drawn (D1): "device" = per step on the training device (no CPU
    # cost, nothing to copy; CUDA and CPU generators give different clips, each reproducible);
    # "loader" = per sample in the workers, keyed by (epoch, index): the same clips on every device
    # (~0.6 ms of CPU and 640 KB to copy per sample at the paper's 10 s).
    noise_on: Literal["device", "loader"] = "device"


@dataclass
class OptimConfig:
    """Adam with coupled L2 weight decay (as SSL-TIE) and ReduceLROnPlateau on validation loss (D9)."""

    lr: float = 1e-4
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    fused: bool | None = None  # None: fused Adam on CUDA, the for-each implementation elsewhere
    scheduler: Literal["plateau", "constant"] = "plateau"
    plateau_factor: float = 0.1  # PyTorch defaults (docs/model.md §4.3)
    plateau_patience: int = 10
    plateau_threshold: float = 1e-4
    plateau_cooldown: int = 0
    min_lr: float = 0.0


@dataclass
class TrainSection:
    """The loop itself."""

    epochs: int = 100
    batch_size: int = 32  # global batch: split evenly over DDP ranks
    seed: int = 4  # SSL-TIE's default seed
    device: str = "auto"  # auto | cpu | cuda | cuda:N  (the CLI's --device and train(device=) override it)
    amp: bool = True  # bf16 autocast on CUDA; always fp32 on CPU
    channels_last: bool = True  # on CUDA only
    deterministic: bool = False  # torch deterministic kernels (slower on CUDA; CPU is deterministic anyway)
    log_every: int = 50  # steps between JSONL train records
    # At each logged step, the gradient norm of every loss component w.r.t. each tower (one extra
    # backward per component and tower; single-process runs only). For diagnosing the objective.
    grad_diagnostics: bool = False
    max_steps_per_epoch: int | None = None  # cap for quick runs / tests
    val_batch_size: int | None = None  # default: batch_size
    sync_bn: bool = False  # SyncBatchNorm under DDP (the paper trained on one GPU: per-GPU BN stays the default)
    find_unused_parameters: bool = False  # DDP option, for model variants with parameters the loss does not reach
    threads: int | None = None  # torch.set_num_threads on CPU (None: leave torch's choice)
    # torch.compile the model (both towers; the objective's glue stays eager); compiling takes minutes
    # before the first step. Measured gain on a 2-core CPU (benchmarks/train_step.py --variants ours
    # ours_compiled, width 0.25, 112 px, 257x160, batch 8, 1 thread, 4 runs): none, 0.93-1.05x of eager.
    # On CUDA not measured yet (no GPU in that session): measure before turning it on.
    compile: bool = False


@dataclass
class EvalSection:
    """What runs after the last epoch: the universal threshold (D6) of best.pt, stored in it.

    The calibration settings default to the evaluation protocol's (`EvaluationConfig`)."""

    calibrate_threshold: bool = True  # universal threshold (D6) on `calibration_manifest`, stored in best.pt
    calibration_manifest: str | None = None  # default: the validation manifest
    calibration_mode: Literal["per_type", "pooled"] = EvaluationConfig.threshold_mode
    calibration_seed: int = EvaluationConfig.seed
    calibration_repetitions: int = EvaluationConfig.repetitions  # noise/offscreen draws per sample

    def evaluation_config(self) -> EvaluationConfig:
        """The evaluation settings the calibration runs with."""
        return EvaluationConfig(repetitions=self.calibration_repetitions, seed=self.calibration_seed,
                                threshold_mode=self.calibration_mode)


@dataclass
class TrainConfig:
    method: str = "ssl_san"  # a registered method (sslsan.methods.method_names())
    model: Any = None  # the method's model config (None: its defaults)
    audio: AudioConfig | None = None  # the audio front-end (None: the method's own)
    objective: Any = None  # the method's objective config (None: its defaults)
    san: SilenceNoiseConfig = field(default_factory=SilenceNoiseConfig)  # unset switches: the method's default
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)

    def __post_init__(self):
        try:
            m = get_method(self.method)
        except ValueError as exc:
            raise ConfigError(f"method: {exc}") from None
        if not m.trainable:  # evaluation only: refused before any of its settings is read
            if m.resolve is not None:
                m.resolve(self)
            raise ConfigError(f"method {m.name}: {m.label} is evaluation-only in sslsan (sslsan evaluate --method {m.name})")
        self.model = _section(m.model_config, self.model, "model")
        self.objective = _section(m.objective_config, self.objective, "objective")
        if self.audio is None:
            self.audio = dataclasses.replace(m.audio)
        self.san = self.san.resolved(m.silence_noise, m.negatives_bn)

    @property
    def method_entry(self) -> Method:
        """The registered `Method` this config trains."""
        return get_method(self.method)

    @classmethod
    def defaults(cls, data: dict, overrides: list[str]) -> TrainConfig:
        """The defaults a config file (`data`) and `overrides` start from: those of the method they name
        (the last `method=` override, else the file's `method`, else ssl_san)."""
        name = data.get("method", cls.method)
        for item in overrides:
            key, _, value = item.partition("=")
            if key.strip() == "method":
                name = value.strip()
        return cls(method=name)

    @staticmethod
    def migrate(data: dict, overrides: list[str]) -> tuple[dict, list[str]]:
        """Config files and overrides written before the method registry: the silence/noise settings
        were `objective.*`; they are `san.*` now."""
        data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
        objective = data.get("objective")
        if isinstance(objective, dict):
            moved = {k: objective.pop(k) for k in list(objective) if k in LEGACY_SAN_KEYS}
            if moved:
                data["san"] = {**moved, **(data.get("san") or {})}
        out = []
        for item in overrides:
            key, sep, value = item.partition("=")
            parts = key.strip().split(".")
            if sep and len(parts) == 2 and parts[0] == "objective" and parts[1] in LEGACY_SAN_KEYS:
                item = f"san.{parts[1]}={value}"
            out.append(item)
        return data, out


# silence/noise keys that lived in `objective` before the method registry (TrainConfig.migrate)
LEGACY_SAN_KEYS = (*SWITCHES, "lambda_sn", "san_reduction", "lambda_sn_warmup_steps", "negatives_bn",
                   "negatives_in_te_view")


def _section(cls: type, value: Any, where: str) -> Any:
    """A method-specific section as its dataclass: defaults for None, built from a dict, kept if typed."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        return from_dict(cls, value, where)
    raise ConfigError(f"{where}: expected a mapping of {cls.__name__} settings, got {value!r}")


# settings with a lower bound: key -> smallest allowed value (None values mean "not set" and pass)
_AT_LEAST: dict[str, int] = {
    "train.epochs": 1, "train.batch_size": 1, "train.val_batch_size": 1, "train.log_every": 1,
    "train.max_steps_per_epoch": 1, "train.threads": 1, "data.num_workers": 0, "data.prefetch_factor": 1,
    "audio.sample_rate": 1, "audio.n_fft": 2, "audio.hop_length": 1,
    "audio.n_mels": 1, "eval.calibration_repetitions": 1, "san.lambda_sn_warmup_steps": 0,
}
_POSITIVE = ("model.width", "optim.lr", "audio.clip_seconds", "audio.tile_seconds", "data.cache_max_gib")
_NON_NEGATIVE = ("optim.weight_decay",)


def validate_train_config(cfg: TrainConfig) -> TrainConfig:
    """Refuse settings no run can use (an epoch count of 0, a batch of 0, an unknown front-end, and what
    the method refuses, e.g. images smaller than its network's stride) up front, with a ConfigError
    naming the key and its value; returns the config with the settings the method derives filled."""
    missing = object()

    def value(key: str):
        section, name = key.split(".")
        return getattr(getattr(cfg, section), name, missing)

    for key, low in _AT_LEAST.items():
        v = value(key)
        if v is not None and v is not missing and v < low:
            raise ConfigError(f"{key}={v}: must be at least {low}")
    for key in _POSITIVE:
        v = value(key)
        if v is not missing and not v > 0:
            raise ConfigError(f"{key}={v}: must be greater than 0")
    for key in _NON_NEGATIVE:
        if not value(key) >= 0:
            raise ConfigError(f"{key}={value(key)}: must be 0 or more")
    if cfg.audio.kind not in FRONTENDS:
        raise ConfigError(f"audio.kind={cfg.audio.kind!r}: unknown front-end; known: {', '.join(FRONTENDS)}")
    m = cfg.method_entry
    return m.resolve(cfg) if m.resolve is not None else cfg


def resolve_train_config(cfg: TrainConfig) -> TrainConfig:
    """The config as a run uses it: checked (`validate_train_config`), with the settings that follow from
    others filled by the method (e.g. SSL-TIE's TE canvas = the training image size)."""
    return validate_train_config(cfg)
