"""The training loop: `train(cfg, run_dir, device, resume)`, one epoch, validation, the best checkpoint.

A run is a `RunState` built by `build_run_state` (model, objective, optimiser, scheduler, loaders);
`train_one_epoch` runs the steps (inputs and loss: sslsan.engine.step), `validate` gives the
validation loss that drives ReduceLROnPlateau and picks best.pt (D9), and after the last epoch the
universal threshold of best.pt is calibrated on the validation split (D6). Every draw is keyed
(sslsan.engine.streams, D13), so `resume=True` replays an uninterrupted run exactly; the run
directory (provenance, save and restore) is sslsan.engine.run, the data sslsan.engine.data.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from sslsan.config import ConfigError
from sslsan.data.manifest import Manifest
from sslsan.engine.data import (
    build_loaders,
    read_training_splits,
    resolve_manifest_path,
)
from sslsan.engine.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    init_distributed,
    resolve_device,
)
from sslsan.engine.run import (
    RunState,
    check_run_dir,
    checkpoint_paths,
    restore_state,
    save_state,
    write_provenance,
)
from sslsan.engine.step import InputBuilder, StepModule, forward_loss, gradient_norms
from sslsan.engine.streams import init_generator, step_generator, validation_generator
from sslsan.engine.train_config import TrainConfig, resolve_train_config
from sslsan.evaluation.calibrate import calibrate_run
from sslsan.losses import SilenceNoiseObjective
from sslsan.methods.base import AVModel
from sslsan.models import unwrap_model
from sslsan.utils.logging import JsonlLogger
from sslsan.utils.seed import seed_everything


def build_model(cfg: TrainConfig, device: torch.device) -> AVModel:
    """The method's model, initialised from (seed, STREAM_INIT) whatever the global RNG state."""
    model = cfg.method_entry.build_model(cfg.model, init_generator(cfg.train.seed)).to(device)
    if cfg.train.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def build_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """Adam with coupled L2 weight decay, as SSL-TIE (fused on CUDA unless `optim.fused` says otherwise)."""
    o = cfg.optim
    fused = (device.type == "cuda") if o.fused is None else o.fused
    return torch.optim.Adam(
        model.parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay, fused=fused or None
    )


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig):
    """ReduceLROnPlateau on the monitored loss (D9), or None for `optim.scheduler=constant`."""
    o = cfg.optim
    if o.scheduler == "constant":
        return None
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="min",
        factor=o.plateau_factor,
        patience=o.plateau_patience,
        threshold=o.plateau_threshold,
        cooldown=o.plateau_cooldown,
        min_lr=o.min_lr,
    )


def build_objective(cfg: TrainConfig) -> SilenceNoiseObjective:
    """The method's own objective inside the silence/noise wrapper (a no-op with its switches off)."""
    return SilenceNoiseObjective(cfg.method_entry.build_objective(cfg.objective), cfg.san)


def build_run_state(cfg: TrainConfig, info: DistInfo, device: torch.device, train_m: Manifest, val_m: Manifest | None,
                    *, checkpoint: dict | None, logger: JsonlLogger, progress: bool) -> RunState:
    """Model, objective, optimiser, scheduler and loaders of a run, continued from `checkpoint` when given."""
    model = build_model(cfg, device)
    objective = build_objective(cfg).to(device)
    step_module = StepModule(torch.compile(model) if cfg.train.compile else model, objective)
    train_module: nn.Module = step_module
    if info.enabled:
        if cfg.train.sync_bn:
            step_module = nn.SyncBatchNorm.convert_sync_batchnorm(step_module)
            model = unwrap_model(step_module.model)
        train_module = nn.parallel.DistributedDataParallel(
            step_module,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.train.find_unused_parameters,
        )
    optimizer = build_optimizer(model, cfg, device)
    scheduler = build_scheduler(optimizer, cfg)
    builder = InputBuilder(cfg, device)
    sampler, train_loader, val_loader = build_loaders(
        cfg, train_m, val_m, info, device, frontend=builder.frontend, with_noise=builder.need_noise, logger=logger,
        progress=progress)
    state = RunState(cfg=cfg, info=info, device=device, model=model, step_module=step_module, train_module=train_module,
                     builder=builder, optimizer=optimizer, scheduler=scheduler, sampler=sampler,
                     train_loader=train_loader, val_loader=val_loader)
    if checkpoint is not None:
        restore_state(state, checkpoint)
    return state


class Averager:
    """Sums of detached loss terms on the device, one stacked vector per step; one host sync when read."""

    def __init__(self):
        self.sums: dict[tuple[str, ...], torch.Tensor] = {}  # key set -> summed vector (the set stays the same in a run)
        self.count = 0.0

    def add(self, terms: dict[str, torch.Tensor], weight: float = 1.0) -> None:
        keys = tuple(sorted(terms))
        vec = torch.stack([terms[k].detach().float().reshape(()) for k in keys])
        if weight != 1.0:
            vec = vec * weight
        self.sums[keys] = self.sums[keys] + vec if keys in self.sums else vec
        self.count += weight

    def reduce(self, info: DistInfo, device: torch.device) -> dict[str, float]:
        """Mean over everything added on every rank."""
        if not self.sums and not info.enabled:
            return {}
        per_key: dict[str, torch.Tensor] = {}
        for keys, vec in self.sums.items():
            for k, v in zip(keys, vec.unbind()):
                per_key[k] = per_key[k] + v if k in per_key else v
        keys = sorted(per_key)
        count = torch.tensor([self.count], dtype=torch.float32, device=device)
        vec = torch.cat([torch.stack([per_key[k].to(device) for k in keys]), count]) if keys else count
        vec = all_reduce_sum(vec, info).cpu()
        total = float(vec[-1])
        return {k: float(vec[i]) / max(total, 1e-12) for i, k in enumerate(keys)}

    def reset(self) -> None:
        self.sums, self.count = {}, 0.0


def scalar_terms(loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The objective's scalar terms plus the total under "loss" (what the logs average)."""
    out = {k: v for k, v in terms.items() if torch.is_tensor(v) and v.numel() == 1}
    out["loss"] = loss
    return out


def train_one_epoch(state: RunState, epoch: int, logger: JsonlLogger, progress: bool) -> dict[str, float]:
    """One pass over the training loader; returns the epoch's mean loss terms (over all ranks)."""
    s = state
    cfg, info, device = s.cfg, s.info, s.device
    s.train_module.train()
    s.sampler.set_epoch(epoch)
    s.step_module.objective.set_epoch(epoch)
    steps = len(s.train_loader)
    if cfg.train.max_steps_per_epoch is not None:
        steps = min(steps, cfg.train.max_steps_per_epoch)
    per_rank_batch = s.train_loader.batch_size
    epoch_avg, log_avg = Averager(), Averager()
    bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{cfg.train.epochs}", unit="step", disable=not progress, dynamic_ncols=True)
    it = iter(s.train_loader)
    t_log, wait_log, n_log = time.perf_counter(), 0.0, 0
    for step in range(steps):
        t0 = time.perf_counter()
        batch = next(it)
        wait_log += time.perf_counter() - t0
        g = step_generator(cfg.train.seed, epoch, step, info.rank)
        log_step = (step + 1) % cfg.train.log_every == 0 or step + 1 == steps
        grad_diag = cfg.train.grad_diagnostics and log_step and not info.enabled
        out = forward_loss(s.train_module, s.builder, batch, g, augment=True, amp=cfg.train.amp,
                           step=s.global_step, with_parts=grad_diag)
        loss, terms = out[:2]
        grads = gradient_norms(out[2], s.model) if grad_diag else {}
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        s.optimizer.step()
        s.global_step += 1
        terms = scalar_terms(loss, terms)
        epoch_avg.add(terms)
        log_avg.add(terms)
        n_log += 1
        bar.update(1)
        if log_step:
            means = log_avg.reduce(info, device)  # syncs the device, so the timing below is honest
            elapsed = time.perf_counter() - t_log
            rec = {
                "kind": "train",
                "epoch": epoch + 1,
                "step": s.global_step,
                **means,
                "lr": s.optimizer.param_groups[0]["lr"],
                "samples_per_s": n_log * per_rank_batch * info.world_size / max(elapsed, 1e-9),
                "data_wait_s": wait_log / n_log,
                "step_time_s": elapsed / n_log,
                **grads,
            }
            if info.is_main:
                logger.log(rec)
            bar.set_postfix(loss=f"{means.get('loss', float('nan')):.3f}", sps=f"{rec['samples_per_s']:.0f}")
            log_avg.reset()
            t_log, wait_log, n_log = time.perf_counter(), 0.0, 0
    bar.close()
    del it
    return epoch_avg.reduce(info, device)


@torch.no_grad()
def validate(state: RunState) -> dict[str, float]:
    """Validation loss: the objective in eval mode, no augmentation, fixed noise and TE draws (D9)."""
    s = state
    if s.val_loader is None:
        return {}
    module = s.step_module  # never the DDP wrapper: ranks see different numbers of val batches
    module.eval()
    avg = Averager()
    for batch in s.val_loader:
        g = validation_generator(s.cfg.train.seed, int(batch["index"][0]))
        loss, terms = forward_loss(module, s.builder, batch, g, augment=False, amp=s.cfg.train.amp)
        avg.add(scalar_terms(loss, terms), weight=float(len(batch["index"])))
    module.train()
    return avg.reduce(s.info, s.device)


# A validation (evaluation-mode) positive-map maximum below this share of the training one, once the training maps
# have formed, means the model works only with BatchNorm batch statistics. Measured on the embedded benchmark,
# epoch by epoch: LVS + SaN with D15's running statistics 0.01-0.04 of it at epoch 1 (every seed; it then
# localized at chance), healthy LVS, LVS + SaN and SSL-SaN runs 0.72 or more.
EVAL_MODE_KEEPS = 0.25
FORMED_MAP = 0.3


def evaluation_mode_gap(train: dict[str, float], val: dict[str, float]) -> str | None:
    """A warning when the positive maps (`diag_pos_max`) are far weaker on validation, in evaluation mode, than in
    training: the sign of a model that depends on BatchNorm batch statistics (DECISIONS D15). None otherwise, or
    when a split lacks the term. Made for maps whose zero means "nothing here" (cosine maps, e.g. SSL-TIE, LVS)."""
    tr, va = train.get("diag_pos_max"), val.get("diag_pos_max")
    if tr is None or va is None or not tr >= FORMED_MAP or va >= EVAL_MODE_KEEPS * tr:
        return None
    return (f"positive maps are far weaker in evaluation mode (validation maximum {va:.3f}) than in training ({tr:.3f}): "
            "the model depends on BatchNorm batch statistics; with silence/noise terms, try another san.negatives_bn "
            "(DECISIONS D15)")


def calibrate_best(cfg: TrainConfig, run_dir: Path, val_m: Manifest | None, device: torch.device, logger: JsonlLogger,
                   progress: bool) -> None:
    """Universal threshold (D6) of best.pt on `eval.calibration_manifest` (default: the validation split)."""
    manifest = resolve_manifest_path(cfg.data, cfg.eval.calibration_manifest, "calibration")
    manifest = manifest or (val_m.path if val_m is not None else None)
    if manifest is None:
        logger.log(kind="calibration", skipped="no calibration or validation manifest")
        return
    record = calibrate_run(checkpoint_paths(run_dir)[1], manifest, cfg.eval.evaluation_config(), device=device,
                           progress=progress)
    logger.log(kind="calibration", universal_threshold=record["universal_threshold"], manifest=str(manifest))


def train(
    cfg: TrainConfig,
    run_dir: str | Path,
    device: str | torch.device | None = "cpu",
    resume: bool = False,
    *,
    progress: bool | None = None,
) -> Path:
    """Train a localizer as `cfg` says; returns the run directory.

    `run_dir` receives config.yaml, run.json, log.jsonl, checkpoints/{latest,best}.pt and
    threshold.json (when calibration runs). `resume=True` continues from checkpoints/latest.pt.
    Under torchrun, every rank calls this; rank 0 writes. `progress`: tqdm bars (default: on a TTY).
    """
    cfg = resolve_train_config(cfg)
    run_dir = Path(run_dir)
    dev = resolve_device(device if device is not None else cfg.train.device)
    threads = torch.get_num_threads()
    if cfg.train.threads is not None and dev.type == "cpu":
        torch.set_num_threads(cfg.train.threads)
    try:
        return _train(cfg, run_dir, dev, check_run_dir(run_dir, cfg, resume), progress)
    finally:
        torch.set_num_threads(threads)  # a process-wide setting: give the caller back its own


def _train(cfg: TrainConfig, run_dir: Path, dev: torch.device, checkpoint: dict | None, progress: bool | None) -> Path:
    info = init_distributed(dev)
    if info.enabled and dev.type == "cuda":
        dev = torch.device("cuda", info.local_rank)
    if cfg.train.batch_size % info.world_size:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} is not divisible by the {info.world_size} DDP processes")
    progress = (sys.stderr.isatty() if progress is None else progress) and info.is_main
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    train_m, val_m = read_training_splits(cfg, info.world_size)
    resumed = checkpoint is not None
    start_epoch = int(checkpoint["epoch"]) if resumed else 0

    logger = JsonlLogger(run_dir / "log.jsonl", enabled=info.is_main)
    if info.is_main:
        write_provenance(run_dir, cfg, resumed_from_epoch=start_epoch if resumed else None, device=dev,
                         world_size=info.world_size, train=train_m, val=val_m)
        logger.log(kind="start", epoch=start_epoch, step=int(checkpoint["step"]) if resumed else 0, device=str(dev),
                   world_size=info.world_size, resumed=resumed, train_samples=len(train_m),
                   val_samples=len(val_m) if val_m else 0)
    s = build_run_state(cfg, info, dev, train_m, val_m, checkpoint=checkpoint, logger=logger, progress=progress)
    del checkpoint  # its optimiser state now lives in the optimiser
    latest, best = checkpoint_paths(run_dir)
    t_start = time.perf_counter()
    try:
        for epoch in range(start_epoch, cfg.train.epochs):
            t_epoch = time.perf_counter()
            train_means = train_one_epoch(s, epoch, logger, progress)
            t_val = time.perf_counter()
            val = validate(s)
            val_s = time.perf_counter() - t_val
            s.epoch = epoch + 1
            monitored = val.get("loss", train_means.get("loss", math.nan))
            if s.scheduler is not None:
                s.scheduler.step(monitored)
            is_best = monitored < s.best_val
            if is_best:
                s.best_val = monitored
            epoch_s = time.perf_counter() - t_epoch
            eta_s = (time.perf_counter() - t_start) / (s.epoch - start_epoch) * (cfg.train.epochs - s.epoch)
            if info.is_main:
                save_state(s, latest, val)
                if is_best:
                    save_state(s, best, val)
                logger.log(kind="epoch", epoch=s.epoch, step=s.global_step, train=train_means,
                           val=val, monitored="val_loss" if val else "train_loss", best=is_best, best_val=s.best_val,
                           lr=s.optimizer.param_groups[0]["lr"], epoch_s=epoch_s, val_s=val_s)
                vtxt = f"val loss {val['loss']:.4f}" if val else "no val split"
                print(f"epoch {s.epoch}/{cfg.train.epochs}: train loss {train_means.get('loss', math.nan):.4f}, {vtxt}"
                      f"{' (best)' if is_best else ''}, lr {s.optimizer.param_groups[0]['lr']:.2e}, "
                      f"{epoch_s:.0f} s, eta {eta_s / 60:.1f} min", file=sys.stderr, flush=True)
                gap = evaluation_mode_gap(train_means, val)
                if gap:
                    logger.log(kind="warning", epoch=s.epoch, message=gap)
                    print(f"warning: epoch {s.epoch}: {gap}", file=sys.stderr, flush=True)
            barrier(info)
        # rank 0 alone; the other ranks are done (no collective follows, so no barrier can time out)
        if info.is_main and cfg.eval.calibrate_threshold and best.exists():
            calibrate_best(cfg, run_dir, val_m, s.device, logger, progress)
    finally:
        logger.close()
    return run_dir
