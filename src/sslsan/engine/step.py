"""One training step's inputs and loss: the device half of the data pipeline and the objective.

Per step, on the device and batched: the rest of the image augmentation (sslsan.data.augment),
tiling of the untiled clips, the method's audio front-end, SpecAugment (on power, before the log) and
the log in fp32, and the noise clips (D1: through the same front-end as positives; drawn on the device
unless `data.noise_on=loader`); the silence spectrogram is computed once per run. The objective
(sslsan.losses.SilenceNoiseObjective around the method's own) runs under bf16 autocast on CUDA. Nothing here waits for the device: inputs arrive
by non-blocking copies, decisions are made on host copies of the draws, loss terms stay on the device.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from sslsan.audio import SpecAugment, build_frontend, noise, silence, tile_rows
from sslsan.data.augment import ImageDeviceAugment
from sslsan.engine.data import train_image_transform
from sslsan.engine.train_config import TrainConfig
from sslsan.losses import SilenceNoiseObjective
from sslsan.methods.base import AVModel


class InputBuilder:
    """Batch from the loader → the objective's inputs on the device (images augmented, spectrograms in fp32).

    Draws come from the step's generator in this order: the noise seed (`data.noise_on=device`),
    then SpecAugment; the objective then draws the TE transform.
    """

    def __init__(self, cfg: TrainConfig, device: torch.device):
        self.cfg = cfg
        self.device = device
        self.frontend = build_frontend(cfg.audio).to(device)
        a = cfg.audio
        self.specaug = SpecAugment(p=a.specaug_p, time_mask=a.time_mask, freq_mask=a.freq_mask) if a.spec_augment else None
        self.image_aug = ImageDeviceAugment(train_image_transform(cfg))
        self.need_silence = cfg.san.needs_silence
        self.need_noise = cfg.san.needs_noise
        self.noise_on_device = cfg.data.noise_on == "device"
        self._noise_generator = torch.Generator(device=device)
        self.channels_last = cfg.train.channels_last and device.type == "cuda"
        self.silence_spec = None
        if self.need_silence:
            with torch.no_grad():  # one constant spectrogram for the whole run (docs/model.md §7)
                self.silence_spec = self._negative(silence(a.tile_samples)[None].to(device))

    def _negative(self, wave: torch.Tensor) -> torch.Tensor:
        power = self.frontend.power(wave)
        return self.frontend.to_log(power) if self.cfg.audio.negatives_in_db else power

    def _noise(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        if not self.noise_on_device:
            return batch["noise"].to(self.device, non_blocking=True)
        self._noise_generator.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        return noise((len(batch["index"]), self.cfg.audio.tile_samples), generator=self._noise_generator,
                     clip=self.cfg.audio.noise_clip, device=self.device)

    @torch.no_grad()
    def __call__(self, batch: dict[str, torch.Tensor], *, augment: bool, generator: torch.Generator) -> dict[str, Any]:
        dev = self.device
        images = batch["image"].to(dev, non_blocking=True)
        if "aug" in batch:  # training crops: the device half of the augmentation
            images = self.image_aug(images, batch["aug"].to(dev, non_blocking=True), host_params=batch["aug"])
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if "power" in batch:
            power = batch["power"].to(dev, non_blocking=True)
        else:
            wave = batch["wave"].to(dev, non_blocking=True)
            if "wave_len" in batch:  # zero-padded clips (collate_items); otherwise all rows are whole clips
                wave = tile_rows(wave, batch["wave_len"], self.cfg.audio.tile_samples)
            power = self.frontend.power(wave)
        noise_wave = self._noise(batch, generator) if self.need_noise else None
        if augment and self.specaug is not None:
            power = self.specaug(power, generator=generator)  # on power, before the log (docs/model.md §1)
        out: dict[str, Any] = {"images": images, "specs": self.frontend.to_log(power)}
        out["silence_spec"] = self.silence_spec
        out["noise_specs"] = self._negative(noise_wave) if noise_wave is not None else None
        return out


class StepModule(nn.Module):
    """Model + objective as one module, so DDP's forward wraps every tower call of a step."""

    def __init__(self, model: AVModel, objective: SilenceNoiseObjective):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, images, specs, silence_spec=None, noise_specs=None, generator=None, step=None, with_parts=False):
        return self.objective(self.model, images, specs, silence_spec=silence_spec, noise_specs=noise_specs,
                              generator=generator, step=step, with_parts=with_parts)


def forward_loss(
    step_module: nn.Module,
    builder: InputBuilder,
    batch: dict[str, torch.Tensor],
    generator: torch.Generator,
    *,
    augment: bool,
    amp: bool,
    step: int | None = None,
    with_parts: bool = False,
):
    """Loss and its terms for one batch (used by training, validation and the DDP equivalence test).

    `step`: the optimiser step (λ_SN warm-up; None = full weight); `with_parts`: also return the
    undetached weighted loss components (see SilenceNoiseObjective.forward).
    """
    inputs = builder(batch, augment=augment, generator=generator)
    with autocast(builder.device, amp):
        return step_module(**inputs, generator=generator, step=step, with_parts=with_parts)


def gradient_norms(parts: dict[str, torch.Tensor], model: AVModel) -> dict[str, float]:
    """L2 norm of the gradient of each loss component w.r.t. each encoder's parameters (one backward per
    component, both encoders at once; one host read at the end)."""
    towers = model.tower_parameters()
    img = [p for p in towers["img"] if p.requires_grad]
    aud = [p for p in towers["aud"] if p.requires_grad]
    keys, norms = [], []
    for name, part in parts.items():
        grads = torch.autograd.grad(part, img + aud, retain_graph=True, allow_unused=True)
        for tower, tower_grads in (("img", grads[: len(img)]), ("aud", grads[len(img):])):
            sq = sum((g.float().pow(2).sum() for g in tower_grads if g is not None), torch.zeros((), device=part.device))
            keys.append(f"grad_{tower}_{name}")
            norms.append(sq.sqrt())
    return dict(zip(keys, torch.stack(norms).tolist())) if norms else {}


def autocast(device: torch.device, amp: bool):
    """bf16 autocast on CUDA when `amp`; otherwise (and always on the CPU) fp32."""
    if amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
