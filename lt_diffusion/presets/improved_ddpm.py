"""Presets of chapter 02, "Improved DDPM" (Nichol & Dhariwal 2021): schedules, learned variance, objectives,
importance sampling of t, and sampling with fewer steps.

The chapter trains one model per row of the paper's CIFAR-10 ablation (linear/cosine × L_simple/L_hybrid, and
cosine/L_vlb with importance sampling) plus cosine/L_vlb with uniform t (for the gradient-noise figure), then
measures NLL (bits/dim, ``calc_bpd_loop``), FID per objective, FID against the number of sampling steps, and
FID when the first part of the reverse process is skipped.

Costs (one H100, bf16; estimates from throughput, ``ImprovedDDPMPreset.projected_gpu_seconds``):

* ``smoke``: 0.19 M-parameter UNet, T = 100, six runs of 20 steps × 16 images, bpd on 4 test images, FIDs on
  8 samples against 32 train images. About a minute on 2 CPU cores (the Inception network dominates); every
  number is "smoke: not comparable".
* ``book``: the 6.9 M-parameter ``book`` UNet, **T = 1000** (not the paper's 4000: the exact bound costs T
  forward passes per image), six runs of 1,200 steps × 256 images (0.31 M images each, ~15 s each at
  ~20 k img/s, ~90 s in all), bpd on 256 test images per run (1.5 M forward passes), FID on 2,000 samples
  (100 steps) per objective, 1,000 samples per point of the step and skip sweeps: ~5 M denoiser forward passes
  (~85 s at ~60 k/s) and ~36 k Inception images (~10 s). About 3–3.5 minutes. Runs this short show
  *directions* (which objective gives lower NLL, which sampler degrades first), not the paper's numbers.
* ``paper``: the official CIFAR-10 configuration (README of openai/improved-diffusion): 128 channels, 3 blocks,
  multipliers 1,2,2,2, attention at 16 and 8, dropout 0.3 (0.1 for the linear rows), T = 4000, batch 128,
  lr 1e-4, EMA 0.9999, no flips, 500 K steps; the main run is cosine / L_hybrid. At an *estimated*
  1,400 img/s for the 52.5 M model on one H100 (the improved-diffusion performance issue reports
  ~1,150–1,655 img/s), one run is 64 M images ≈ 12.7 h, the five ablation rows ≈ 64 h, plus sampling
  50 K images × 4000 steps per row. Never run here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from lt_diffusion.experiments.common import DiffusionSpec, EvalSpec, TrainSpec, projected_gpu_seconds
from lt_diffusion.models import UNetConfig, get_model_config

from . import register

CHAPTER = "improved_ddpm"


@dataclass(frozen=True)
class AblationRun:
    """One trained model of the chapter: a key, its diffusion/objective, its dropout, and whether it is a row
    of the paper's ablation table (Table 2 of Nichol & Dhariwal 2021, as transcribed in papers.md)."""

    key: str
    diffusion: DiffusionSpec
    dropout: float
    in_paper_table: bool = True


def _runs(T: int, dropout_linear: float, dropout_cosine: float) -> Tuple[AblationRun, ...]:
    lin, cos = dict(steps=T, noise_schedule="linear"), dict(steps=T, noise_schedule="cosine")
    return (
        AblationRun("linear_simple", DiffusionSpec(**lin, objective="simple"), dropout_linear),
        AblationRun("linear_hybrid", DiffusionSpec(**lin, objective="hybrid"), dropout_linear),
        AblationRun("cosine_simple", DiffusionSpec(**cos, objective="simple"), dropout_cosine),
        AblationRun("cosine_hybrid", DiffusionSpec(**cos, objective="hybrid"), dropout_cosine),
        AblationRun("cosine_vlb_is", DiffusionSpec(**cos, objective="vlb", schedule_sampler="loss-second-moment"),
                    dropout_cosine),
        AblationRun("cosine_vlb_uniform", DiffusionSpec(**cos, objective="vlb"), dropout_cosine,
                    in_paper_table=False),
    )


@dataclass(frozen=True)
class ImprovedDDPMPreset:
    """One scale of chapter 02.

    Attributes:
        scale: ``"smoke"``, ``"book"`` or ``"paper"``.
        model: the denoiser (``learn_sigma`` and ``dropout`` are set per run).
        runs: the trained models (see :class:`AblationRun`); ``main_run`` names the paper's headline model.
        train: the training run used for every model.
        eval: FID per objective (samples, sampling steps, reference).
        bpd_images: CIFAR-10 test images for the exact NLL (``calc_bpd_loop``: T forward passes each).
        bpd_batch: batch of that loop.
        step_sweep: sampling-step counts of the "fewer steps" figure.
        sweep_samples: samples per point of the step sweep and the skip sweep.
        skip_fractions: fractions of the reverse process skipped (start from N(0, I) at t = (1 − f) T).
        skip_steps: sampling steps spread over the remaining range in the skip sweep.
        variance_T: diffusion lengths of the β̃_t / β_t figure (schedules only, no training).
        train_img_per_s, sample_img_per_s: throughputs behind the projected cost (estimates on one H100).
        note: what this scale can and cannot show.
    """

    scale: str
    model: UNetConfig
    runs: Tuple[AblationRun, ...]
    train: TrainSpec
    eval: EvalSpec
    bpd_images: int
    bpd_batch: int
    step_sweep: Tuple[int, ...]
    sweep_samples: int
    skip_fractions: Tuple[float, ...]
    skip_steps: int
    main_run: str = "cosine_hybrid"
    variance_T: Tuple[int, ...] = (4000, 1000, 100)
    train_img_per_s: float = 20_000.0
    sample_img_per_s: float = 60_000.0
    note: str = ""

    def __post_init__(self):
        keys = [r.key for r in self.runs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate run keys in {keys}")
        if self.main_run not in keys:
            raise ValueError(f"main_run {self.main_run!r} is not one of {keys}")
        if any(not 0.0 <= f < 1.0 for f in self.skip_fractions):
            raise ValueError(f"skip fractions must lie in [0, 1), got {self.skip_fractions}")
        if len({r.diffusion.steps for r in self.runs}) != 1:
            raise ValueError("all runs of the chapter share one T")

    @property
    def T(self) -> int:
        """The diffusion length shared by all runs."""
        return self.runs[0].diffusion.steps

    def run(self, key: str) -> AblationRun:
        """The run called ``key``."""
        for r in self.runs:
            if r.key == key:
                return r
        raise ValueError(f"unknown run {key!r}; choose one of {[r.key for r in self.runs]}")

    def projected_gpu_seconds(self) -> Dict[str, float]:
        """Projected H100 seconds of the whole chapter (estimate): trainings, bpd loops, all sample sets."""
        n_table = sum(r.in_paper_table for r in self.runs)
        base = projected_gpu_seconds(self.train, self.eval, self.train_img_per_s, self.sample_img_per_s,
                                     n_trainings=len(self.runs), n_sample_sets=n_table)
        bpd_s = len(self.runs) * self.bpd_images * self.T / self.sample_img_per_s
        sweep_forward = (4 * sum(self.step_sweep) + 2 * len(self.skip_fractions) * self.skip_steps) * self.sweep_samples
        sweep_s = sweep_forward / self.sample_img_per_s
        sweep_fid_s = (4 * len(self.step_sweep) + 2 * len(self.skip_fractions)) * self.sweep_samples / 4000.0
        out = dict(base)
        out.update(bpd_s=bpd_s, sweep_s=sweep_s + sweep_fid_s)
        out["total_s"] = base["total_s"] + bpd_s + sweep_s + sweep_fid_s
        return out


_SMOKE = ImprovedDDPMPreset(
    scale="smoke",
    model=get_model_config("smoke"),
    runs=_runs(100, 0.0, 0.0),
    train=TrainSpec(steps=20, batch_size=16, lr=1e-3, ema_rate=0.9, random_flip=False, num_train_images=512,
                    bf16=False),
    eval=EvalSpec(num_samples=8, sample_steps=20, batch_size=8, fid_reference="train", fid_reference_images=32,
                  grid=16, comparable=False),
    bpd_images=4,
    bpd_batch=4,
    step_sweep=(10,),
    sweep_samples=8,
    skip_fractions=(0.0, 0.5),
    skip_steps=10,
    variance_T=(4000, 1000, 100),
    train_img_per_s=300.0,
    sample_img_per_s=1000.0,
    note="smoke: a CI check that every cell runs; numbers are not comparable to anything.",
)

_BOOK = ImprovedDDPMPreset(
    scale="book",
    model=get_model_config("book"),
    runs=_runs(1000, 0.1, 0.1),
    train=TrainSpec(steps=1200, batch_size=256, lr=2e-4, warmup_steps=100, grad_clip=1.0, ema_rate=0.995,
                    random_flip=False),
    eval=EvalSpec(num_samples=2000, sample_steps=100, batch_size=1000, fid_reference="train", grid=64),
    bpd_images=256,
    bpd_batch=256,
    step_sweep=(25, 50, 100, 200),
    sweep_samples=1000,
    skip_fractions=(0.0, 0.1, 0.2, 0.3, 0.5),
    skip_steps=100,
    note="book: T = 1000 and 0.3 M training images per model (the paper: T = 4000, 64 M): the comparisons show "
         "directions, not the paper's numbers; FID from 1-2 k samples is biased upwards.",
)

_PAPER = ImprovedDDPMPreset(
    scale="paper",
    model=get_model_config("iddpm_cifar10"),
    runs=_runs(4000, 0.1, 0.3),
    train=TrainSpec(steps=500_000, batch_size=128, lr=1e-4, weight_decay=0.0, warmup_steps=0, grad_clip=None,
                    ema_rate=0.9999, random_flip=False, compile=True),
    eval=EvalSpec(num_samples=50_000, sample_steps=4000, batch_size=1000, fid_reference="train", grid=64),
    bpd_images=10_000,
    bpd_batch=1000,
    step_sweep=(25, 50, 100, 200, 400, 1000, 4000),
    sweep_samples=50_000,
    skip_fractions=(0.0, 0.1, 0.2, 0.3, 0.5),
    skip_steps=4000,
    train_img_per_s=1_400.0,
    sample_img_per_s=4_200.0,
    note="paper: Nichol & Dhariwal 2021, CIFAR-10 ablation at 500 K steps, T = 4000 (README flags of "
         "openai/improved-diffusion). Never run here; throughputs are estimates for the 52.5 M model.",
)

PRESETS = {"smoke": _SMOKE, "book": _BOOK, "paper": _PAPER}
register(CHAPTER, PRESETS)
