"""Chapter 02, Improved DDPM (Nichol & Dhariwal 2021): one model per row of the paper's CIFAR-10 ablation
(linear / cosine × L_simple / L_hybrid, cosine L_vlb with importance-sampled t) plus cosine L_vlb with uniform t;
the exact NLL, FID per objective, FID against the number of sampling steps, and FID when the start of the reverse
process is skipped.

``book`` uses T = 1000 (not the paper's 4000: the exact bound costs T forward passes per image) and six runs of
300 steps of batch 512 (about 7.5 minutes in all on one H100); ``paper`` is the official CIFAR-10 configuration
(T = 4000, 500 K steps of batch 128 per model), not run for this edition.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, Tuple

from lt_diffusion.experiments.specs import Arm, ChapterPreset, DataSpec, DiffusionSpec, EvalSpec
from lt_diffusion.models import get_model_config
from lt_diffusion.train import TrainConfig

# Samplers of the fewer-steps figure (the paper's Fig. 8): name -> (arm, sampler); "own" samples with the variance
# the model was trained with, "fixed_small" swaps in β̃_t, "ddim" is DDIM with η = 0 (Song et al. 2021).
STEP_ARMS: Dict[str, Tuple[str, str]] = {"learned": ("cosine_hybrid", "own"), "fixed_large": ("cosine_simple", "own"),
                                         "fixed_small": ("cosine_simple", "fixed_small"),
                                         "ddim": ("cosine_simple", "ddim")}
STEP_ARM_LABELS = {"learned": "L_hybrid, learned Σ_θ", "fixed_large": "L_simple, σ² = β_t",
                   "fixed_small": "L_simple, σ² = β̃_t", "ddim": "L_simple, DDIM (η = 0)"}
SAMPLER_OPTIONS: Dict[str, dict] = {"own": {}, "fixed_small": {"sigma_small": True}, "ddim": {"method": "ddim"}}

# The paper's Table 2 (Nichol & Dhariwal 2021, CIFAR-10, 500 K steps, batch 128, T = 4000): (NLL, FID).
PAPER_TABLE: Dict[str, Tuple[float, float]] = {"linear_simple": (3.37, 2.90), "linear_hybrid": (3.26, 3.07),
                                                "cosine_simple": (3.26, 3.05), "cosine_hybrid": (3.17, 3.19),
                                                "cosine_vlb_is": (2.94, 11.47)}
# Arms of the training-loss-noise figure: they log their loss at every step (the others every train.log_every).
NOISE_RUNS = ("cosine_vlb_uniform", "cosine_vlb_is", "cosine_hybrid")
PAPER_TABLE_SOURCE = "Nichol & Dhariwal 2021, Table 2 (CIFAR-10, 500K steps, batch 128, T = 4000)"


@dataclass(frozen=True, kw_only=True)
class ImprovedDDPMPreset(ChapterPreset):
    """Chapter 02. Arms are keyed ``<schedule>_<loss>`` (their labels print as ``cosine / L_hybrid``).

    Attributes:
        bpd_images, bpd_batch: test images of the exact NLL and images × timesteps per forward pass of the bound.
        step_sweep, step_arms: sampling-step counts and samplers (keys of ``STEP_ARMS``) of the fewer-steps figure.
        skip_runs, skip_fractions, skip_steps: models, skipped fractions of the reverse process and steps spread
            over what is left, of the skip figure.
        sweep_samples: samples per point of both sweeps (the table's sets have ``eval.num_samples``).
        noise_runs: arms in the training-loss-noise figure (they log every step).
        variance_T: diffusion lengths of the β̃_t / β_t figure; variance_images, variance_timesteps: where the
            learned Σ_θ is read out.
    """

    bpd_images: int
    bpd_batch: int
    step_sweep: Tuple[int, ...]
    sweep_samples: int
    skip_fractions: Tuple[float, ...]
    skip_steps: int
    step_arms: Tuple[str, ...] = ("learned", "fixed_large", "fixed_small", "ddim")
    skip_runs: Tuple[str, ...] = ("linear_simple", "cosine_simple")
    noise_runs: Tuple[str, ...] = NOISE_RUNS
    variance_T: Tuple[int, ...] = (4000, 1000, 100)
    variance_images: int = 64
    variance_timesteps: int = 40

    @property
    def T(self) -> int:
        """The diffusion length shared by all arms."""
        return next(iter(self.arms.values())).diffusion.steps


def _ablation(T: int, model, train: TrainConfig, data: DataSpec, dropout: Tuple[float, float]) -> Dict[str, Arm]:
    """The six arms of one scale (the same model, data and recipe; the schedule, the loss and, for the L_vlb
    arms, the timestep sampler differ; L_simple arms and the noise figure's arms log as listed)."""
    rows = [("linear_simple", "linear", "simple", "uniform"), ("linear_hybrid", "linear", "hybrid", "uniform"),
            ("cosine_simple", "cosine", "simple", "uniform"), ("cosine_hybrid", "cosine", "hybrid", "uniform"),
            ("cosine_vlb_is", "cosine", "vlb", "loss-second-moment"),
            ("cosine_vlb_uniform", "cosine", "vlb", "uniform")]
    arms = {}
    for key, schedule, loss, sampler in rows:
        learned = loss != "simple"
        m = dataclasses.replace(model, learn_sigma=learned, dropout=dropout[schedule == "cosine"])
        t = dataclasses.replace(train, schedule_sampler=sampler, log_every=1 if key in NOISE_RUNS else train.log_every)
        label = f"{schedule} / L_{loss}" + (" + IS" if sampler != "uniform" else "")
        arms[key] = Arm("denoiser", m, t, data, DiffusionSpec(T, schedule, learn_sigma=learned, loss=loss), label=label)
    return arms


SMOKE = ImprovedDDPMPreset(
    scale="smoke", comparable=False,
    arms=_ablation(100, get_model_config("smoke"), TrainConfig(steps=20, batch_size=16, lr=1e-3, grad_clip=1.0,
                   ema_rate=0.9, ema_warmup=True, random_flip=False, amp=False, log_every=10),
                   DataSpec(num_images=512), dropout=(0.0, 0.0)),
    eval=EvalSpec(num_samples=8, sample_steps=10, batch_size=8, fid_reference_images=32),
    bpd_images=4, bpd_batch=400, step_sweep=(5, 10), sweep_samples=8, skip_fractions=(0.0, 0.5), skip_steps=10,
    variance_images=4, variance_timesteps=10,
    note="smoke: a CI check that every cell runs; numbers are not comparable to anything.",
)

BOOK = ImprovedDDPMPreset(
    scale="book",
    arms=_ablation(1000, get_model_config("book"), TrainConfig(steps=300, batch_size=512, lr=3e-4, warmup_steps=50,
                   grad_clip=1.0, ema_rate=0.99, ema_warmup=True, random_flip=False, log_every=10),
                   DataSpec(), dropout=(0.1, 0.1)),
    eval=EvalSpec(num_samples=1000, sample_steps=50, batch_size=1000, sample_sets=28),
    bpd_images=64, bpd_batch=4096, step_sweep=(10, 25, 50, 100), sweep_samples=1000,
    skip_fractions=(0.0, 0.1, 0.2, 0.3, 0.5), skip_steps=50,
    note="book: T = 1000 and 0.15 M training images per model (the paper: T = 4000, 64 M): the comparisons show "
         "directions, not the paper's numbers; FID from 1,000 samples of briefly trained models is biased upwards "
         "and noisy.",
)

PAPER = ImprovedDDPMPreset(
    scale="paper",
    arms=_ablation(4000, get_model_config("iddpm_cifar10"), TrainConfig(steps=500_000, batch_size=128, lr=1e-4,
                   ema_rate=0.9999, random_flip=False, amp=False, log_every=100), DataSpec(), dropout=(0.1, 0.3)),
    eval=EvalSpec(num_samples=50_000, sample_steps=4000, batch_size=1000, sample_sets=6),
    bpd_images=10_000, bpd_batch=1000, step_sweep=(25, 50, 100, 200, 400, 1000, 4000), sweep_samples=50_000,
    skip_fractions=(0.0, 0.1, 0.2, 0.3, 0.5), skip_steps=1000, variance_images=1000,
    note="paper: Nichol & Dhariwal 2021, CIFAR-10 ablation at 500 K steps, T = 4000 (README flags of "
         "openai/improved-diffusion). Not run for this edition.",
)

PRESETS = {"smoke": SMOKE, "book": BOOK, "paper": PAPER}
