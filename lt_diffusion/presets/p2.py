"""Presets of chapter 05, "P2 weighting" (Choi et al., CVPR 2022): baseline (γ = 0) vs P2 (γ = 1, k = 1).

The chapter trains unconditional ε-prediction models with the same budget under two loss weightings, on the whole
CIFAR-10 train set and on a 1,000-image subset, with and without the 16×16 attention layers, and tracks FID over
training. It also trains one model with a too-large γ to show what starving the clean-up stage does.

Costs (one H100, bf16; estimates from throughput, see ``P2Preset.projected_gpu_seconds``):

* ``smoke``: the 0.19 M-parameter ``smoke`` UNet, T = 100, 512 real images, arms baseline / P2 / γ = 3 only, 12 steps of batch 8 per
  arm, 10-20 samples per FID against 40 train images. About a minute on 2 CPU cores; FID is labelled
  "smoke: not comparable".
* ``book``: the 6.9 M-parameter ``book`` UNet, T = 1000 linear, 7 trainings of 400 steps at batch 512 (baseline/P2
  × all data/1k subset, baseline/P2 without 16×16 attention, γ = 3): 1.43 M images, ~312 s at the 4.6k img/s that
  the Trainer measured for this model at batch 512 on the H100 (chapter 01's book run; DESIGN.md). Each arm is
  trained in chunks of ``eval_every`` steps with a FID between chunks: 4 checkpoints × 4 main arms + 3 other arms
  = 19 FIDs of 1,000 samples with 25 DDIM steps (0.48 M denoiser passes), plus the final FID of the 4 main arms
  on 2,000 samples with 50 respaced ancestral steps (0.4 M passes): ~66 s at the measured 13.3k passes/s
  (DDIM-50: 38 s per 10k samples). Inception on 27 k generated + 50 k reference images (~19 s; the reference
  statistics are cached after the first chapter on a machine) and ~29 s of setup and per-arm start-up (first
  steps, model build). About 7 minutes in all (``projected_gpu_seconds``), inside one 10-minute device call.
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

from lt_diffusion.experiments.common import (DiffusionSpec, EvalSpec, TrainSpec,
                                             projected_gpu_seconds)
from lt_diffusion.experiments.common import (H100_BOOK_SAMPLE_IMG_PER_S, H100_BOOK_TRAIN_IMG_PER_S,
                                             H100_INCEPTION_IMG_PER_S)
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
        train_img_per_s: training images per second through the Trainer (measured on the H100 for the ``book``
            UNet at batch 512: 4.6k; an assumption at ``paper`` scale).
        sample_img_per_s: denoiser forward passes per second while sampling (measured: 13.3k at batch 1000).
        setup_s, arm_overhead_s: fixed start-up (data, Inception weights) and per-arm start-up (model build, first
            steps) in the projected cost.
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
    train_img_per_s: float = H100_BOOK_TRAIN_IMG_PER_S
    sample_img_per_s: float = H100_BOOK_SAMPLE_IMG_PER_S
    setup_s: float = 15.0
    arm_overhead_s: float = 2.0
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

    @property
    def main_arms(self) -> Tuple[str, ...]:
        """Arms with a FID curve over training and a final FID: attention on, γ ∈ {0, ``p2_gamma``}."""
        return tuple(a[0] for a in self.arms if a[3] and a[1] in (0.0, self.p2_gamma))

    def num_fids(self) -> Dict[str, int]:
        """How many FIDs the chapter computes: ``{"curve": ..., "final": ...}``.

        Every main arm gets one curve FID (``curve_samples``, DDIM) at each checkpoint, the last one included; every
        other arm one curve FID at the end; the main arms also get one final FID (``eval.num_samples``).
        """
        n_main = len(self.main_arms)
        return {"curve": n_main * len(self.checkpoints) + len(self.arms) - n_main, "final": n_main}

    def projected_gpu_seconds(self) -> Dict[str, float]:
        """Projected H100 seconds of the whole chapter (an estimate from measured throughputs, not a measurement).

        Counts every arm's training (chunked or not, the images are the same), every checkpoint FID of the chunked
        main arms, the final FIDs, Inception on all generated images and on the reference set, and start-up.
        """
        n_arms = len(self.arms)
        fids = self.num_fids()
        train_s = n_arms * self.train.images_seen / self.train_img_per_s
        passes = (fids["curve"] * self.curve_samples * self.curve_ddim_steps
                  + fids["final"] * self.eval.num_samples * self.eval.sample_steps)
        sample_s = passes / self.sample_img_per_s
        n_ref = self.eval.fid_reference_images or 50_000
        n_gen = fids["curve"] * self.curve_samples + fids["final"] * self.eval.num_samples
        fid_s = (n_gen + n_ref) / H100_INCEPTION_IMG_PER_S
        overhead_s = self.setup_s + n_arms * self.arm_overhead_s
        return {"train_s": train_s, "sample_s": sample_s, "fid_s": fid_s, "overhead_s": overhead_s,
                "total_s": train_s + sample_s + fid_s + overhead_s}


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
    # batch 512: the book UNet is launch-bound at batch 128 (2.2k img/s) and moves 4.6k img/s at 512 through the
    # Trainer (measured, DESIGN.md). EMA 0.98 (horizon ~50 steps, warmed up): the curve's first checkpoint comes
    # after 100 steps, and a constant 0.999 would keep ~2/3 of the initial weights after 400.
    train=TrainSpec(steps=400, batch_size=512, lr=3e-4, warmup_steps=50, grad_clip=1.0, ema_rate=0.98),
    eval=EvalSpec(num_samples=2000, sample_steps=50, batch_size=1000, fid_reference="train", grid=64),
    large_gamma=3.0,
    subset_size=1000,
    no_attention_arms=True,
    eval_every=100,
    curve_samples=1000,
    curve_ddim_steps=25,
    train_img_per_s=H100_BOOK_TRAIN_IMG_PER_S,  # measured (experiments.common)
    sample_img_per_s=H100_BOOK_SAMPLE_IMG_PER_S,  # measured (experiments.common)
    note="book: 0.2 M training images per arm (about 4 epochs of CIFAR-10; the paper trains 256x256 models far longer), "
         "so FIDs are far from converged; the chapter compares weightings at one small, equal budget and one seed. "
         "About 7 minutes on one H100 (one device call).",
)

_PAPER = P2Preset(
    scale="paper",
    model=UNetConfig(image_size=32, model_channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=1,
                     attention_resolutions=(16,), num_head_channels=64, resblock_updown=True,
                     use_scale_shift_norm=True, dropout=0.0, learn_sigma=True),
    diffusion=DiffusionSpec(steps=1000, noise_schedule="linear", objective="hybrid", rescale_learned_sigmas=True),
    train=TrainSpec(steps=500_000, batch_size=8, lr=2e-5, warmup_steps=0, grad_clip=None, ema_rate=0.9999,
                    ema_warmup=False, random_flip=True, compile=True),
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
