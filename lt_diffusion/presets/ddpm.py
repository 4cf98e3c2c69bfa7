"""Chapter 01, DDPM preliminaries (Ho et al. 2020): one ε-prediction UNet, L_simple, linear schedule, FID.

``book`` trains the 6.9 M ``book`` UNet for 1,200 steps of batch 512 (about 2 minutes on one H100) and scores
5,000 samples of 100 respaced steps against the CIFAR-10 train statistics; ``paper`` is Ho et al.'s CIFAR-10 run
(35.7 M parameters, 800 K steps of batch 128), not run for this edition.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from lt_diffusion.experiments.specs import Arm, ChapterPreset, DataSpec, DiffusionSpec, EvalSpec
from lt_diffusion.models import get_model_config
from lt_diffusion.train import TrainConfig


@dataclass(frozen=True, kw_only=True)
class DDPMPreset(ChapterPreset):
    """Chapter 01. ``arms["ddpm"]`` is the one model; ``forward_grid_fractions`` (t/T) and ``forward_grid_images``
    shape the figure of q(x_t | x_0)."""

    forward_grid_fractions: Tuple[float, ...] = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0)
    forward_grid_images: int = 6


SMOKE = DDPMPreset(
    scale="smoke", comparable=False,
    arms={"ddpm": Arm("denoiser", get_model_config("smoke"),
                      TrainConfig(steps=40, batch_size=16, lr=1e-3, grad_clip=1.0, ema_rate=0.9, ema_warmup=True,
                                  amp=False, log_every=1),
                      DataSpec(num_images=512), DiffusionSpec(steps=100))},
    eval=EvalSpec(num_samples=16, sample_steps=100, batch_size=16, fid_reference_images=32, grid=16),
    forward_grid_images=4,
    note="smoke: a CI check that every cell runs; numbers are not comparable to anything.",
)

BOOK = DDPMPreset(
    scale="book",
    arms={"ddpm": Arm("denoiser", get_model_config("book"),
                      TrainConfig(steps=1200, batch_size=512, lr=3e-4, warmup_steps=100, grad_clip=1.0,
                                  ema_rate=0.998, ema_warmup=True, log_every=12),
                      DataSpec(), DiffusionSpec(steps=1000))},
    eval=EvalSpec(num_samples=5000, sample_steps=100, batch_size=1000),
    note="book: ~1 M training images (the paper: 102 M), so FID is far above the paper's; it shows the "
         "pipeline and the order of magnitude after a few minutes, not a reproduction.",
)

PAPER = DDPMPreset(
    scale="paper",
    arms={"ddpm": Arm("denoiser", get_model_config("ddpm_cifar10"),
                      TrainConfig(steps=800_000, batch_size=128, lr=2e-4, warmup_steps=5000, grad_clip=1.0,
                                  ema_rate=0.9999, compile=True, log_every=8000),
                      DataSpec(), DiffusionSpec(steps=1000))},
    eval=EvalSpec(num_samples=50_000, sample_steps=1000, batch_size=1000),
    note="paper: Ho et al. 2020, their CIFAR-10 UNet (35.7 M parameters), 800 K steps at batch 128.",
)

PRESETS = {"smoke": SMOKE, "book": BOOK, "paper": PAPER}
