"""Presets of chapter 02, "Improved DDPM" (Nichol & Dhariwal 2021): schedules, learned variance, objectives,
importance sampling of t, and sampling with fewer steps.

The chapter trains one model per row of the paper's CIFAR-10 ablation (linear/cosine × L_simple/L_hybrid, and
cosine/L_vlb with importance sampling) plus cosine/L_vlb with uniform t (for the gradient-noise figure), then
measures NLL (bits/dim, ``calc_bpd_loop``), FID per objective, FID against the number of sampling steps, and
FID when the first part of the reverse process is skipped.

Costs (one H100, bf16; estimates from throughput, ``ImprovedDDPMPreset.projected_gpu_seconds``):

* ``smoke``: 0.19 M-parameter UNet, T = 100, six runs of 20 steps × 16 images, bpd on 4 test images, three FIDs
  (one per experiment) on 8 samples against 32 train images. 1.5–2 minutes on one CPU thread, dominated by the
  Fréchet distance (a 2048×2048 matrix square root, ~15 s each on CPU); every number is
  "smoke: not comparable".
* ``book``: the 6.9 M-parameter ``book`` UNet, **T = 1000** (not the paper's 4000: the exact bound costs T
  forward passes per image), six runs of 160 steps × 1,024 images (~13 s each at the measured ~80 ms per step,
  ~80 s in all), the bound on 128 test images per run (32 passes of 4,096 image-timesteps each, ~20 s), FID on
  1,000 samples (50 steps) for each of the five table rows, 1,000 samples per point of the step sweep
  (learned / fixed β_t / DDIM × 25, 50, 100 steps) and of the skip sweep (2 schedules × 0 and 20% skipped),
  with 18 Fréchet distances on the host CPU (~3 s each, an estimate). About 4 minutes
  (``projected_gpu_seconds``). Runs this short show *directions* (which objective gives lower NLL, which
  sampler degrades first), not the paper's numbers.
* ``paper``: the official CIFAR-10 configuration (README of openai/improved-diffusion): 128 channels, 3 blocks,
  multipliers 1,2,2,2, attention at 16 and 8, dropout 0.3 (0.1 for the linear rows), T = 4000, batch 128,
  lr 1e-4, EMA 0.9999, no flips, 500 K steps; the main run is cosine / L_hybrid. At the measured
  ~1,271–1,444 img/s of this 52.5 M model on the lent H100 (DESIGN.md; the improved-diffusion performance issue
  reports ~1,150–1,655 img/s), one run is 500 K × ~0.095 s ≈ 13 h, the six runs ≈ 79 h, plus sampling 50 K
  images × 4000 steps per table row (≈ 13 h each at an estimated 0.24 s per step of 1,000). Never run here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from lt_diffusion.experiments.common import H100_INCEPTION_IMG_PER_S, DiffusionSpec, EvalSpec, TrainSpec
from lt_diffusion.models import UNetConfig, get_model_config

from . import register

CHAPTER = "improved_ddpm"
STEP_ARMS = ("learned", "fixed_large", "fixed_small", "ddim")
# CPU seconds of one Fréchet distance (scipy sqrtm of a 2048x2048 matrix): ~15 s on one CPU thread here,
# assumed ~3 s on the GPU host. An estimate; it is a large part of this chapter's cost.
FRECHET_S = 3.0


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
        fid_runs: runs whose FID goes into the ablation table (default: every row of the paper's table).
        step_sweep: sampling-step counts of the "fewer steps" figure.
        step_arms: samplers of that figure: ``"learned"`` (L_hybrid, Σ_θ), ``"fixed_large"`` / ``"fixed_small"``
            (L_simple with σ² = β_t / β̃_t) and ``"ddim"`` (L_simple, η = 0).
        skip_runs: models of the skip sweep.
        sweep_samples: samples per point of the step sweep and the skip sweep.
        skip_fractions: fractions of the reverse process skipped (start from N(0, I) at t = (1 − f) T).
        skip_steps: sampling steps spread over the remaining range in the skip sweep.
        variance_T: diffusion lengths of the β̃_t / β_t figure (schedules only, no training).
        bpd_batch: images × timesteps per forward pass of the bound (``calc_bpd_batched``).
        train_step_s, sample_step_s: seconds per training step / per sampling step of one batch on the GPU: the
            book model is launch-bound on the lent H100 (DESIGN.md: ~60–80 ms per training step up to batch 1024,
            ~75 ms per sampling step at batch 1000), so costs are counted in steps, not images.
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
    fid_runs: Tuple[str, ...] = ("linear_simple", "linear_hybrid", "cosine_simple", "cosine_hybrid", "cosine_vlb_is")
    step_arms: Tuple[str, ...] = ("learned", "fixed_large", "fixed_small", "ddim")
    skip_runs: Tuple[str, ...] = ("linear_simple", "cosine_simple")
    variance_T: Tuple[int, ...] = (4000, 1000, 100)
    train_step_s: float = 0.08
    sample_step_s: float = 0.075
    note: str = ""

    def __post_init__(self):
        keys = [r.key for r in self.runs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate run keys in {keys}")
        for name in (self.main_run, *self.fid_runs, *self.skip_runs):
            if name not in keys:
                raise ValueError(f"run {name!r} is not one of {keys}")
        unknown = set(self.step_arms) - set(STEP_ARMS)
        if unknown:
            raise ValueError(f"unknown step arms {sorted(unknown)}; choose from {STEP_ARMS}")
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

    def fid_calls(self) -> int:
        """How many FIDs the chapter computes (objectives, step sweep, skip sweep)."""
        return len(self.fid_runs) + len(self.step_arms) * len(self.step_sweep) + len(self.skip_runs) * len(self.skip_fractions)

    def projected_gpu_seconds(self) -> Dict[str, float]:
        """Projected seconds of the whole chapter on one H100 host (estimate from per-step costs): trainings,
        bound evaluation, every sample set, Inception features and the Fréchet distances (CPU)."""
        import math

        def sampling(n: int, steps: int) -> float:
            return math.ceil(n / self.eval.batch_size) * steps * self.sample_step_s

        train_s = len(self.runs) * self.train.steps * self.train_step_s
        bpd_s = len(self.runs) * math.ceil(self.bpd_images * self.T / self.bpd_batch) * self.sample_step_s * 1.5
        sample_s = len(self.fid_runs) * sampling(self.eval.num_samples, self.eval.sample_steps)
        sample_s += len(self.step_arms) * sum(sampling(self.sweep_samples, k) for k in self.step_sweep)
        sample_s += len(self.skip_runs) * len(self.skip_fractions) * sampling(self.sweep_samples, self.skip_steps)
        n_images = len(self.fid_runs) * self.eval.num_samples + (
            len(self.step_arms) * len(self.step_sweep) + len(self.skip_runs) * len(self.skip_fractions)
        ) * self.sweep_samples
        fid_s = n_images / H100_INCEPTION_IMG_PER_S + self.fid_calls() * FRECHET_S
        total = train_s + bpd_s + sample_s + fid_s
        return {"train_s": train_s, "bpd_s": bpd_s, "sample_s": sample_s, "fid_s": fid_s, "total_s": total}


_SMOKE = ImprovedDDPMPreset(
    scale="smoke",
    model=get_model_config("smoke"),
    runs=_runs(100, 0.0, 0.0),
    train=TrainSpec(steps=20, batch_size=16, lr=1e-3, ema_rate=0.9, random_flip=False, num_train_images=512,
                    bf16=False),
    eval=EvalSpec(num_samples=8, sample_steps=20, batch_size=8, fid_reference="train", fid_reference_images=32,
                  grid=16, comparable=False),
    bpd_images=4,
    bpd_batch=400,
    step_sweep=(10,),
    sweep_samples=8,
    skip_fractions=(0.5,),
    skip_steps=10,
    fid_runs=("cosine_hybrid",),
    step_arms=("ddim",),
    skip_runs=("linear_simple",),
    variance_T=(4000, 1000, 100),
    train_step_s=0.15,
    sample_step_s=0.03,
    note="smoke: a CI check that every cell runs; numbers are not comparable to anything.",
)

_BOOK = ImprovedDDPMPreset(
    scale="book",
    model=get_model_config("book"),
    runs=_runs(1000, 0.1, 0.1),
    # Launch-bound GPU: few, large steps (DESIGN.md). 160 steps x 1024 images per model.
    train=TrainSpec(steps=160, batch_size=1024, lr=4e-4, warmup_steps=20, grad_clip=1.0, ema_rate=0.99,
                    random_flip=False),
    eval=EvalSpec(num_samples=1000, sample_steps=50, batch_size=1000, fid_reference="train", grid=64),
    bpd_images=128,
    bpd_batch=4096,
    step_sweep=(25, 50, 100),
    step_arms=("learned", "fixed_large", "ddim"),
    sweep_samples=1000,
    skip_fractions=(0.0, 0.2),
    skip_steps=50,
    note="book: T = 1000 and 0.16 M training images per model (the paper: T = 4000, 64 M): the comparisons show "
         "directions, not the paper's numbers; FID from 1,000 samples of briefly trained models is biased upwards "
         "and noisy.",
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
    # 52.5 M model: ~1,271-1,444 img/s measured on the H100 (DESIGN.md) -> ~0.095 s per step of 128;
    # sampling a batch of 1000 is compute-bound there: ~0.24 s per step (estimate from the 4,200 img/s forward).
    train_step_s=0.095,
    sample_step_s=0.24,
    note="paper: Nichol & Dhariwal 2021, CIFAR-10 ablation at 500 K steps, T = 4000 (README flags of "
         "openai/improved-diffusion). Never run here; throughputs are estimates for the 52.5 M model.",
)

PRESETS = {"smoke": _SMOKE, "book": _BOOK, "paper": _PAPER}
register(CHAPTER, PRESETS)
