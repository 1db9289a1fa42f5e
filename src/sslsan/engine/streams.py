"""The keyed random streams of a training run (DECISIONS D13).

Every random draw is a function of (seed, stream, epoch, step or sample index, rank) through
`sslsan.utils.seed.make_generator`, never of a global RNG's history or of which DataLoader worker
handles a sample; so a run resumed from `latest.pt` replays exactly the data order, image
augmentations, noise clips, SpecAugment masks and TE transforms of an uninterrupted one.
"""

from __future__ import annotations

import torch

from sslsan.utils.seed import make_generator

# first key after the seed of make_generator
STREAM_INIT = 0  # model initialisation
STREAM_IMAGE = 1  # image augmentation, per (epoch, sample index)
STREAM_NOISE = 2  # noise waveform, per (epoch, sample index) (data.noise_on=loader)
STREAM_STEP = 3  # noise seed (data.noise_on=device), SpecAugment, TE transforms, per (epoch, step, rank)
STREAM_VAL_NOISE = 12  # validation noise, per sample index (fixed across epochs) (data.noise_on=loader)
STREAM_VAL_STEP = 13  # validation noise seed and TE transforms, per validation batch (fixed across epochs)


def step_generator(seed: int, epoch: int, step: int, rank: int) -> torch.Generator:
    """The generator of one training step on one rank (noise seed, SpecAugment masks, then TE transforms)."""
    return make_generator(seed, STREAM_STEP, epoch, step, rank)


def validation_generator(seed: int, first_index: int) -> torch.Generator:
    """The generator of the validation batch that starts at sample `first_index` (the same every epoch)."""
    return make_generator(seed, STREAM_VAL_STEP, first_index)


def init_generator(seed: int) -> torch.Generator:
    """The generator of the model's initial weights."""
    return make_generator(seed, STREAM_INIT)
