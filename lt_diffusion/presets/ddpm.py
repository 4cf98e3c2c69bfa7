"""Presets of chapter 01, "DDPM preliminaries" (Ho et al. 2020): one ε-prediction model, L_simple, linear schedule.

Costs (one H100, bf16; estimates from throughput, see ``DDPMPreset.projected_gpu_seconds``):

* ``smoke``: a 0.19 M-parameter UNet, 512 real 32×32 CIFAR-10 images, T = 100, 40 steps of batch 16,
  16 samples, FID against 32 train images. Under a minute on 2 CPU cores (Inception on CPU dominates); FID is
  labelled "smoke: not comparable".
* ``book``: the 6.9 M-parameter ``book`` UNet, T = 1000 linear, 2,000 steps of batch 512 (1.0 M images:
  ~140 s at the measured ~70 ms per step on one H100), 5,000 samples with 100 respaced ancestral steps
  (~40 s at ~75 ms per step of 1,000 samples), FID against the statistics of the whole CIFAR-10 train set
  (55 k Inception images, cached after the first chapter). About 3.5 minutes in all.
* ``paper``: Ho et al. 2020's CIFAR-10 run: 35.7 M parameters (128 channels, multipliers 1,2,2,2, 2 blocks,
  attention at 16×16, dropout 0.1), T = 1000, β from 1e-4 to 0.02, batch 128, lr 2e-4 with 5,000 warm-up
  steps, gradient clip 1, EMA 0.9999, random flips, 800 K steps, FID on 50 K samples with all 1000 steps
  against the train set. Projected ≈ 19 h of training at an assumed 1,500 img/s plus ≈ 3 h of sampling at an
  assumed 4,500 forward passes/s: an estimate, never run here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from lt_diffusion.experiments.common import DiffusionSpec, EvalSpec, TrainSpec, projected_gpu_seconds
from lt_diffusion.experiments.common import H100_BOOK_SAMPLE_IMG_PER_S, H100_BOOK_TRAIN_IMG_PER_S
from lt_diffusion.models import UNetConfig, get_model_config

from . import register

CHAPTER = "ddpm"


@dataclass(frozen=True)
class DDPMPreset:
    """One scale of chapter 01.

    Attributes:
        scale: ``"smoke"``, ``"book"`` or ``"paper"``.
        model: the denoiser's configuration.
        diffusion: forward process and objective (L_simple, fixed variance β_t).
        train: training run.
        eval: sampling and FID.
        forward_grid_fractions: t/T at which the forward-process figure shows q(x_t | x_0).
        forward_grid_images: how many real images that figure shows.
        train_img_per_s, sample_img_per_s: throughputs behind the projected cost (estimates on one H100).
        note: what this scale can and cannot show.
    """

    scale: str
    model: UNetConfig
    diffusion: DiffusionSpec
    train: TrainSpec
    eval: EvalSpec
    forward_grid_fractions: Tuple[float, ...] = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0)
    forward_grid_images: int = 6
    train_img_per_s: float = 20_000.0
    sample_img_per_s: float = 60_000.0
    note: str = ""

    def projected_gpu_seconds(self) -> Dict[str, float]:
        """Projected H100 seconds of the chapter's experiment (estimate from the throughputs above)."""
        return projected_gpu_seconds(self.train, self.eval, self.train_img_per_s, self.sample_img_per_s)


_SMOKE = DDPMPreset(
    scale="smoke",
    model=get_model_config("smoke"),
    diffusion=DiffusionSpec(steps=100, noise_schedule="linear", objective="simple"),
    train=TrainSpec(steps=40, batch_size=16, lr=1e-3, warmup_steps=0, ema_rate=0.9, num_train_images=512,
                    bf16=False),
    eval=EvalSpec(num_samples=16, sample_steps=100, batch_size=16, fid_reference="train",
                  fid_reference_images=32, grid=16, comparable=False),
    forward_grid_images=4,
    train_img_per_s=300.0,
    sample_img_per_s=1000.0,
    note="smoke: a CI check that every cell runs; numbers are not comparable to anything.",
)

_BOOK = DDPMPreset(
    scale="book",
    model=get_model_config("book"),
    diffusion=DiffusionSpec(steps=1000, noise_schedule="linear", objective="simple"),
    # Sized with the step costs measured on the H100 (DESIGN.md, 2026-11-22): ~70 ms per step at batch 512.
    train=TrainSpec(steps=1200, batch_size=512, lr=3e-4, warmup_steps=100, grad_clip=1.0, ema_rate=0.998),
    eval=EvalSpec(num_samples=5000, sample_steps=100, batch_size=1000, fid_reference="train", grid=64),
    train_img_per_s=H100_BOOK_TRAIN_IMG_PER_S,
    sample_img_per_s=H100_BOOK_SAMPLE_IMG_PER_S,
    note="book: ~1 M training images (the paper: 102 M), so FID is far above the paper's; it shows the "
         "pipeline and the order of magnitude after a few minutes, not a reproduction.",
)

_PAPER = DDPMPreset(
    scale="paper",
    model=get_model_config("ddpm_cifar10"),
    diffusion=DiffusionSpec(steps=1000, noise_schedule="linear", objective="simple"),
    train=TrainSpec(steps=800_000, batch_size=128, lr=2e-4, warmup_steps=5000, grad_clip=1.0, ema_rate=0.9999,
                    ema_warmup=False, random_flip=True, compile=True),
    eval=EvalSpec(num_samples=50_000, sample_steps=1000, batch_size=1000, fid_reference="train", grid=64),
    train_img_per_s=1_500.0,
    sample_img_per_s=4_500.0,
    note="paper: Ho et al. 2020, CIFAR-10 (their FID 3.17 per the google/ddpm-cifar10-32 model card). "
         "Never run here; the throughputs are estimates for the 35.7 M model on one H100.",
)

PRESETS = {"smoke": _SMOKE, "book": _BOOK, "paper": _PAPER}
register(CHAPTER, PRESETS)
