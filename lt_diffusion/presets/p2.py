"""Presets of chapter 05, "P2 weighting" (Choi et al., CVPR 2022): baseline (γ = 0) vs P2 (γ = 1, k = 1).

The chapter trains unconditional ε-prediction models with the same budget under two loss weightings, on the whole
CIFAR-10 train set and on a 1,000-image subset, with and without the 16×16 attention layers, and tracks FID over
training. It also trains one model with a too-large γ to show what starving the clean-up stage does.

Costs (one H100, bf16; estimates from throughput, see ``P2Preset.projected_gpu_seconds``):

* ``smoke``: the 0.19 M-parameter ``smoke`` UNet, T = 100, 512 real images, arms baseline / P2 / γ = 3 only, 12 steps of batch 8 per
  arm, 10-20 samples per FID against 40 train images. About a minute on 2 CPU cores; FID is labelled
  "smoke: not comparable".
* ``book``: the 6.9 M-parameter ``book`` UNet, T = 1000 linear, 7 trainings of 2,400 steps at batch 128
  (baseline/P2 × all data/1k subset, baseline/P2 without 16×16 attention, γ = 3): 2.15 M images, ~110 s at
  20 k img/s. FID over training: 3 checkpoints × 4 main arms × 2,000 samples with 50 DDIM steps (1.2 M forward
  passes, ~20 s); final FID of the 4 main arms on 5,000 samples with 100 respaced ancestral steps (2 M forward
  passes, ~35 s); the other arms at 2,000 samples (0.3 M, ~5 s); Inception on ~50 k generated + 50 k reference
  images (~25 s; the reference statistics are cached after the first chapter). About 3.5 minutes in all.
* ``paper``: the P2 repository's training recipe (README: the "lightweight" ADM with 128 channels, one residual
  block per level, attention at 16, 64 channels per head, BigGAN up/down-sampling, AdaGN, dropout 0, learned
  variance with L_hybrid, linear T = 1000, lr 2e-5, batch 8, γ = 1, k = 1, 250 sampling steps), moved to CIFAR-10
  32×32 with the (1, 2, 2, 2) multipliers. The paper trains at 256×256 and has **no CIFAR-10 experiment**, and
  its iteration counts are not in our notes (papers.md §4, §9): the 500 K steps here are our choice (the Improved
  DDPM CIFAR budget), flagged as such. Projected ≈ 2 h of training at an assumed 600 img/s for batch 8 plus
  ≈ 1.2 h to sample 50 K images with 250 steps: an estimate, never run here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from lt_diffusion.experiments.common import (H100_INCEPTION_IMG_PER_S, DiffusionSpec, EvalSpec, TrainSpec,
                                             projected_gpu_seconds)
from lt_diffusion.models import UNetConfig, get_model_config

from . import register

CHAPTER = "p2"


@dataclass(frozen=True)
class P2Preset:
    """One scale of chapter 05.

    Attributes:
        scale: ``"smoke"``, ``"book"`` or ``"paper"``.
        model: the denoiser (unconditional).
        diffusion: forward process and objective shared by every arm (only the loss weight differs).
        train: one training run (every arm gets exactly this budget).
        eval: final FID of the main arms (samples, sampling steps, reference).
        p2_gamma, p2_k: the P2 arm's γ and k (the paper: γ ∈ {0.5, 1}, k = 1; the baseline is γ = 0).
        plot_gammas: γ values drawn in the weight figures.
        large_gamma: γ of the "too large" arm trained on all data (None: skip the run, keep the analysis).
        subset_size: images of the small-data arm (the first ``subset_size / 10`` of each class).
        subset_arms: train the small-data arms (baseline and P2 on ``subset_size`` images).
        num_train_images: images of the "all data" arm (None: the 50,000 of CIFAR-10 train).
        no_attention_arms: also train baseline and P2 without the 16×16 attention (the middle block keeps its
            attention: the engine's UNet always has it).
        eval_every: steps between FID checkpoints of the main arms (the curve "FID over training").
        curve_samples: samples per checkpoint FID (and for the extra arms).
        curve_ddim_steps: DDIM steps (η = 0) for checkpoint FIDs: cheap and deterministic.
        recon_snrs: SNR values of the reconstruction figure x_0 → x_t → x̂_0.
        recon_images: images in that figure.
        check_t: timesteps at which the weight values are printed (a deterministic, checked cell).
        seed: seed of every arm (one seed per arm: the chapter compares weightings, not seeds).
        train_img_per_s, sample_img_per_s: throughputs behind the projected cost (estimates on one H100).
        note: what this scale can and cannot show.
    """

    scale: str
    model: UNetConfig
    diffusion: DiffusionSpec
    train: TrainSpec
    eval: EvalSpec
    p2_gamma: float = 1.0
    p2_k: float = 1.0
    plot_gammas: Tuple[float, ...] = (0.0, 0.5, 1.0)
    large_gamma: Optional[float] = 3.0
    subset_size: int = 1000
    subset_arms: bool = True
    num_train_images: Optional[int] = None
    no_attention_arms: bool = True
    eval_every: int = 800
    curve_samples: int = 2000
    curve_ddim_steps: int = 50
    recon_snrs: Tuple[float, ...] = (1e2, 1e1, 1.0, 1e-1, 1e-2)
    recon_images: int = 6
    check_t: Tuple[int, ...] = (0, 250, 500, 750, 999)
    seed: int = 0
    train_img_per_s: float = 20_000.0
    sample_img_per_s: float = 60_000.0
    note: str = ""

    def __post_init__(self):
        if self.p2_gamma < 0 or self.p2_k <= 0:
            raise ValueError(f"P2 needs gamma >= 0 and k > 0, got gamma={self.p2_gamma}, k={self.p2_k}")
        if self.eval_every < 1 or self.eval_every > self.train.steps:
            raise ValueError(f"eval_every must lie in [1, train.steps={self.train.steps}], got {self.eval_every}")
        if self.subset_size < 10 or self.subset_size < self.train.batch_size:
            raise ValueError(f"subset_size {self.subset_size} must be >= 10 and >= the batch size")
        if self.curve_samples < 2:
            raise ValueError("curve_samples must be >= 2")
        if any(t < 0 or t >= self.diffusion.steps for t in self.check_t):
            raise ValueError(f"check_t must lie in [0, T={self.diffusion.steps})")

    @property
    def arms(self) -> Tuple[Tuple[str, float, str, bool], ...]:
        """``(name, gamma, data, attention)`` of every training run, main arms first.

        ``data`` is ``"all"`` or ``"subset"``; ``attention`` False drops the 16×16 attention layers.
        """
        g = self.p2_gamma
        out = [("baseline", 0.0, "all", True), ("P2", g, "all", True)]
        if self.subset_arms:
            out += [("baseline (1k)", 0.0, "subset", True), ("P2 (1k)", g, "subset", True)]
        if self.no_attention_arms:
            out += [("baseline (no attn)", 0.0, "all", False), ("P2 (no attn)", g, "all", False)]
        if self.large_gamma is not None:
            out += [(f"γ = {self.large_gamma:g}", self.large_gamma, "all", True)]
        return tuple(out)

    @property
    def checkpoints(self) -> Tuple[int, ...]:
        """Training steps at which the main arms' FID is measured (the last one is the end of training)."""
        steps = list(range(self.eval_every, self.train.steps + 1, self.eval_every))
        if steps[-1] != self.train.steps:
            steps.append(self.train.steps)
        return tuple(steps)

    def model_for(self, attention: bool) -> UNetConfig:
        """The model config of an arm: ``attention=False`` clears ``attention_resolutions``."""
        return self.model if attention else dataclasses.replace(self.model, attention_resolutions=())

    def projected_gpu_seconds(self) -> Dict[str, float]:
        """Projected H100 seconds of the whole chapter (estimate from the throughputs above)."""
        n_arms = len(self.arms)
        n_main = 4 if self.subset_arms else 2
        base = projected_gpu_seconds(self.train, self.eval, self.train_img_per_s, self.sample_img_per_s,
                                     n_trainings=n_arms, n_sample_sets=n_main)
        n_curve = n_main * len(self.checkpoints) + (n_arms - n_main)
        curve_s = n_curve * self.curve_samples * self.curve_ddim_steps / self.sample_img_per_s
        curve_fid_s = n_curve * self.curve_samples / H100_INCEPTION_IMG_PER_S
        out = dict(base)
        out["sample_s"] += curve_s
        out["fid_s"] += curve_fid_s
        out["total_s"] = out["train_s"] + out["sample_s"] + out["fid_s"]
        return out


_SMOKE = P2Preset(
    scale="smoke",
    model=get_model_config("smoke"),
    diffusion=DiffusionSpec(steps=100, noise_schedule="linear", objective="simple"),
    train=TrainSpec(steps=12, batch_size=8, lr=1e-3, warmup_steps=0, ema_rate=0.8, bf16=False),
    eval=EvalSpec(num_samples=20, sample_steps=10, batch_size=20, fid_reference="train",
                  fid_reference_images=40, grid=16, comparable=False),
    large_gamma=3.0,
    subset_size=64,
    subset_arms=False,
    num_train_images=512,
    no_attention_arms=False,
    eval_every=12,
    curve_samples=10,
    curve_ddim_steps=5,
    recon_images=3,
    check_t=(0, 25, 50, 75, 99),
    train_img_per_s=300.0,
    sample_img_per_s=1000.0,
    note="smoke: a CI check that every cell runs; numbers are not comparable to anything.",
)

_BOOK = P2Preset(
    scale="book",
    model=get_model_config("book"),
    diffusion=DiffusionSpec(steps=1000, noise_schedule="linear", objective="simple"),
    train=TrainSpec(steps=2400, batch_size=128, lr=2e-4, warmup_steps=200, grad_clip=1.0, ema_rate=0.999),
    eval=EvalSpec(num_samples=5000, sample_steps=100, batch_size=1000, fid_reference="train", grid=64),
    large_gamma=3.0,
    subset_size=1000,
    no_attention_arms=True,
    eval_every=800,
    curve_samples=2000,
    curve_ddim_steps=50,
    note="book: 0.3 M training images per arm (the paper trains for hours per model at 256x256), so FIDs are "
         "far from converged; the chapter compares weightings at one small, equal budget and one seed.",
)

_PAPER = P2Preset(
    scale="paper",
    model=UNetConfig(image_size=32, model_channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=1,
                     attention_resolutions=(16,), num_head_channels=64, resblock_updown=True,
                     use_scale_shift_norm=True, dropout=0.0, learn_sigma=True),
    diffusion=DiffusionSpec(steps=1000, noise_schedule="linear", objective="hybrid", rescale_learned_sigmas=True),
    train=TrainSpec(steps=500_000, batch_size=8, lr=2e-5, warmup_steps=0, grad_clip=None, ema_rate=0.9999,
                    random_flip=True, compile=True),
    eval=EvalSpec(num_samples=50_000, sample_steps=250, batch_size=1000, fid_reference="train", grid=64),
    p2_gamma=1.0,
    p2_k=1.0,
    large_gamma=None,
    no_attention_arms=True,
    eval_every=50_000,
    curve_samples=10_000,
    curve_ddim_steps=100,
    train_img_per_s=600.0,
    sample_img_per_s=3_000.0,
    note="paper: the P2 repository's recipe (README, 256x256 models) moved to CIFAR-10; the paper has no CIFAR-10 "
         "run and its FID tables are not in our notes. 500 K steps is our choice. Never run here.",
)

PRESETS = {"smoke": _SMOKE, "book": _BOOK, "paper": _PAPER}
register(CHAPTER, PRESETS)
