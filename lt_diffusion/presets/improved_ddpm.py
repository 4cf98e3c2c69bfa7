"""Presets of chapter 02, "Improved DDPM" (Nichol & Dhariwal 2021): schedules, learned variance, objectives,
importance sampling of t, and sampling with fewer steps.

The chapter trains one model per row of the paper's CIFAR-10 ablation (linear/cosine × L_simple/L_hybrid, and
cosine/L_vlb with importance sampling) plus cosine/L_vlb with uniform t (for the gradient-noise figure), then
measures NLL (bits/dim, the exact ``calc_bpd_loop`` terms), FID per objective, FID against the number of sampling
steps (learned Σ_θ, fixed β_t, fixed β̃_t, DDIM), and FID when the first part of the reverse process is skipped.
Every FID is one *sample set* (:class:`SampleSet`); sets that two experiments share (e.g. the 50-step samples of
cosine / L_hybrid are both its table FID and the "learned, 50 steps" point) are drawn once.

Costs (:meth:`ImprovedDDPMPreset.projected_gpu_seconds`, from the H100 measurements in DESIGN.md and
``benchmarks/results``):

* ``smoke``: 0.19 M-parameter UNet, T = 100, six runs of 20 steps × 16 images, the bound on 4 test images, every
  experiment with 8 samples per point against 32 train images. About a minute on one CPU thread; every number is
  "smoke: not comparable".
* ``book``: the 6.9 M-parameter ``book`` UNet, **T = 1000** (not the paper's 4000: the exact bound costs T forward
  passes per image), six runs of 300 steps × 512 images (0.15 M images each; 0.111 s per step measured through the
  Trainer at batch 512), the bound on 64 test images per run, and 1,000 samples per FID: six table rows at 50
  steps, 4 samplers × (10, 25, 50, 100) steps, 2 schedules × 5 skipped fractions (28 distinct sets). About
  7.6 minutes in all
  (the budget is printed by the chapter); runs this short show *directions* (which objective gives the lower NLL,
  which sampler degrades first), not the paper's numbers.
* ``paper``: the official CIFAR-10 configuration (README of openai/improved-diffusion): 128 channels, 3 blocks,
  multipliers 1,2,2,2, attention at 16 and 8, dropout 0.3 (0.1 for the linear rows), T = 4000, batch 128, lr 1e-4,
  EMA 0.9999, no flips, fp32, 500 K steps. Projected from the measured step of this 52.5 M model on the lent H100
  (fp32, batch 128: 88.6 ms bare, × 1.2 for the Trainer as measured on the book model): ≈ 14.8 h per run,
  ≈ 89 h for the six; sampling 50 K images with all 4000 steps per table row (measured 4,940 img/s forward)
  is ≈ 11 h per row. Never run here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from lt_diffusion.experiments.common import H100_INCEPTION_IMG_PER_S, DiffusionSpec, EvalSpec, TrainSpec
from lt_diffusion.models import UNetConfig, get_model_config
from lt_diffusion.schedules import skip_prefix_timesteps, space_timesteps

from . import register

CHAPTER = "improved_ddpm"

# Samplers of the fewer-steps figure (the paper's Fig. 8): name -> (run, sampler). The sampler is applied to that
# run's model: "own" samples with the variance the model was trained with (Σ_θ for L_hybrid, β_t for L_simple),
# "fixed_small" swaps in β̃_t, "ddim" is DDIM with η = 0 (Song et al. 2021).
STEP_ARMS: Dict[str, Tuple[str, str]] = {
    "learned": ("cosine_hybrid", "own"),
    "fixed_large": ("cosine_simple", "own"),
    "fixed_small": ("cosine_simple", "fixed_small"),
    "ddim": ("cosine_simple", "ddim"),
}
STEP_ARM_LABELS = {"learned": "L_hybrid, learned Σ_θ", "fixed_large": "L_simple, σ² = β_t",
                   "fixed_small": "L_simple, σ² = β̃_t", "ddim": "L_simple, DDIM (η = 0)"}
# Options of lt_diffusion.experiments.common.make_sampler for each sampler name.
SAMPLER_OPTIONS: Dict[str, dict] = {"own": {}, "fixed_small": {"sigma_small": True}, "ddim": {"method": "ddim"}}

# The paper's CIFAR-10 ablation (its Table 2: 500 K steps, batch 128, T = 4000), as transcribed in
# ../shared/papers.md §1.2 ([3rd-party] transcription): run key -> (NLL bits/dim, FID). The paper's numbers.
PAPER_TABLE: Dict[str, Tuple[float, float]] = {
    "linear_simple": (3.37, 2.90),
    "linear_hybrid": (3.26, 3.07),
    "cosine_simple": (3.26, 3.05),
    "cosine_hybrid": (3.17, 3.19),
    "cosine_vlb_is": (2.94, 11.47),
}
PAPER_TABLE_SOURCE = ("Nichol & Dhariwal 2021, Table 2 (CIFAR-10, 500K steps, batch 128, T = 4000); "
                      "third-party transcription in papers.md")


@dataclass(frozen=True)
class AblationRun:
    """One trained model of the chapter: a key, its diffusion/objective, its dropout, and whether it is a row
    of the paper's ablation table (Table 2 of Nichol & Dhariwal 2021, as transcribed in papers.md)."""

    key: str
    diffusion: DiffusionSpec
    dropout: float
    in_paper_table: bool = True


@dataclass(frozen=True)
class SampleSet:
    """One set of samples scored by FID.

    Attributes:
        run: key of the trained model.
        sampler: ``"own"``, ``"fixed_small"`` or ``"ddim"`` (see ``SAMPLER_OPTIONS``).
        timesteps: the kept original steps, sorted (respacing keeps ᾱ on them).
        num_samples: samples in the set.
    """

    run: str
    sampler: str
    timesteps: Tuple[int, ...]
    num_samples: int

    @property
    def num_steps(self) -> int:
        return len(self.timesteps)


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
        eval: FID per objective (samples, sampling steps, batch, reference).
        bpd_images: CIFAR-10 test images for the exact NLL (all T terms + prior, T forward passes each).
        bpd_batch: images × timesteps per forward pass of the bound (``calc_bpd_batched``).
        fid_runs: runs whose FID goes into the ablation table.
        step_sweep: sampling-step counts of the "fewer steps" figure.
        step_arms: samplers of that figure (keys of ``STEP_ARMS``).
        skip_runs: models of the skip sweep.
        sweep_samples: samples per point of the step sweep and the skip sweep.
        skip_fractions: fractions of the reverse process skipped (start from N(0, I) at t = (1 − f) T).
        skip_steps: sampling steps spread over the remaining range in the skip sweep.
        variance_T: diffusion lengths of the β̃_t / β_t figure (schedules only, no training).
        noise_runs: runs whose loss is logged at every step (the training-loss noise figure); the others log
            every ``log_every`` steps (each record is a GPU sync).
        log_every: logging interval of the other runs.
        variance_images, variance_timesteps: test images and timesteps at which the learned Σ_θ is read out.
        train_step_s: seconds per training step at ``train.batch_size`` through the Trainer (measured, see the
            module docstring); learned-σ runs are counted ``learned_sigma_factor`` times that (the bound term),
            and every-step logging adds ``sync_step_s`` per step.
        sample_step_s: seconds per sampling step of one batch of ``eval.batch_size`` (measured).
        overhead_s: start-up, data and FID-reference statistics, figures (measured on 01_ddpm's book run).
        frechet_s: one Fréchet distance (exact low-rank form for sets under 2,049 samples; an estimate).
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
    fid_runs: Tuple[str, ...] = ("linear_simple", "linear_hybrid", "cosine_simple", "cosine_hybrid",
                                 "cosine_vlb_is", "cosine_vlb_uniform")
    step_arms: Tuple[str, ...] = ("learned", "fixed_large", "fixed_small", "ddim")
    skip_runs: Tuple[str, ...] = ("linear_simple", "cosine_simple")
    variance_T: Tuple[int, ...] = (4000, 1000, 100)
    noise_runs: Tuple[str, ...] = ("cosine_vlb_uniform", "cosine_vlb_is", "cosine_hybrid")
    log_every: int = 10
    variance_images: int = 64
    variance_timesteps: int = 40
    train_step_s: float = 0.111
    learned_sigma_factor: float = 1.1
    sync_step_s: float = 0.02
    sample_step_s: float = 0.0762
    overhead_s: float = 45.0
    frechet_s: float = 0.5
    note: str = ""

    def __post_init__(self):
        keys = [r.key for r in self.runs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate run keys in {keys}")
        arm_runs = [STEP_ARMS[a][0] for a in self.step_arms if a in STEP_ARMS]
        for name in (self.main_run, *self.fid_runs, *self.skip_runs, *self.noise_runs, *arm_runs):
            if name not in keys:
                raise ValueError(f"run {name!r} is not one of {keys}")
        unknown = set(self.step_arms) - set(STEP_ARMS)
        if unknown:
            raise ValueError(f"unknown step arms {sorted(unknown)}; choose from {sorted(STEP_ARMS)}")
        if any(not 0.0 <= f < 1.0 for f in self.skip_fractions):
            raise ValueError(f"skip fractions must lie in [0, 1), got {self.skip_fractions}")
        if len({r.diffusion.steps for r in self.runs}) != 1:
            raise ValueError("all runs of the chapter share one T")
        if any(k < 1 or k > self.runs[0].diffusion.steps for k in self.step_sweep):
            raise ValueError(f"step counts must lie in [1, T={self.runs[0].diffusion.steps}], got {self.step_sweep}")
        for f in self.skip_fractions:  # raises if skip_steps does not fit the range left after skipping
            skip_prefix_timesteps(self.runs[0].diffusion.steps, f, self.skip_steps)

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

    # ----------------------------------------------------------------------------------------------- sample sets
    def objective_set(self, key: str) -> SampleSet:
        """FID of run ``key`` in the ablation table: its own variance, ``eval.sample_steps`` respaced steps."""
        steps = tuple(sorted(space_timesteps(self.T, self.eval.sample_steps)))
        return SampleSet(key, "own", steps, self.eval.num_samples)

    def step_set(self, arm: str, num_steps: int) -> SampleSet:
        """One point of the fewer-steps figure: sampler ``arm`` (a key of ``STEP_ARMS``) with ``num_steps``."""
        if arm not in STEP_ARMS:
            raise ValueError(f"unknown step arm {arm!r}; choose from {sorted(STEP_ARMS)}")
        run, sampler = STEP_ARMS[arm]
        return SampleSet(run, sampler, tuple(sorted(space_timesteps(self.T, num_steps))), self.sweep_samples)

    def skip_set(self, key: str, fraction: float) -> SampleSet:
        """One point of the skip figure: run ``key`` started at t = (1 − fraction) T, ``skip_steps`` steps."""
        steps = tuple(sorted(skip_prefix_timesteps(self.T, fraction, self.skip_steps)))
        return SampleSet(key, "own", steps, self.sweep_samples)

    def sample_sets(self) -> List[SampleSet]:
        """Every sample set of the chapter, in order, duplicates removed (the chapter draws each once)."""
        sets = [self.objective_set(k) for k in self.fid_runs]
        sets += [self.step_set(a, k) for a in self.step_arms for k in self.step_sweep]
        sets += [self.skip_set(k, f) for k in self.skip_runs for f in self.skip_fractions]
        return list(dict.fromkeys(sets))

    def fid_calls(self) -> int:
        """How many distinct FIDs the chapter computes (objectives, step sweep, skip sweep)."""
        return len(self.sample_sets())

    # ------------------------------------------------------------------------------------------------------ cost
    def projected_gpu_seconds(self) -> Dict[str, float]:
        """Projected seconds of the whole chapter on one H100 (an estimate from the measured per-step costs in the
        attributes): trainings, the bound, every distinct sample set, Inception features and Fréchet distances,
        and the fixed overhead."""
        train_s = 0.0
        for r in self.runs:
            step = self.train_step_s * (self.learned_sigma_factor if r.diffusion.learn_sigma else 1.0)
            step += self.sync_step_s if r.key in self.noise_runs else self.sync_step_s / self.log_every
            train_s += self.train.steps * step
        per_pass = self.sample_step_s * self.bpd_batch / self.eval.batch_size
        # x 1.5: the bound computes the posterior, the KL and the decoder likelihood on top of the forward pass.
        bpd_s = len(self.runs) * math.ceil(self.bpd_images * self.T / self.bpd_batch) * per_pass * 1.5
        # Learned Σ_θ read-out: one forward pass of variance_images per timestep, for the learned-σ runs.
        n_learned = sum(r.diffusion.learn_sigma for r in self.runs)
        bpd_s += n_learned * self.variance_timesteps * self.sample_step_s * max(1.0, self.variance_images / self.eval.batch_size)
        sets = self.sample_sets()
        sample_s = sum(math.ceil(s.num_samples / self.eval.batch_size) * s.num_steps * self.sample_step_s for s in sets)
        n_images = sum(s.num_samples for s in sets)
        fid_s = n_images / H100_INCEPTION_IMG_PER_S + len(sets) * self.frechet_s
        total = train_s + bpd_s + sample_s + fid_s + self.overhead_s
        return {"train_s": train_s, "bpd_s": bpd_s, "sample_s": sample_s, "fid_s": fid_s,
                "overhead_s": self.overhead_s, "total_s": total}


_SMOKE = ImprovedDDPMPreset(
    scale="smoke",
    model=get_model_config("smoke"),
    runs=_runs(100, 0.0, 0.0),
    train=TrainSpec(steps=20, batch_size=16, lr=1e-3, ema_rate=0.9, random_flip=False, num_train_images=512,
                    bf16=False),
    eval=EvalSpec(num_samples=8, sample_steps=10, batch_size=8, fid_reference="train", fid_reference_images=32,
                  grid=16, comparable=False),
    bpd_images=4,
    bpd_batch=400,
    step_sweep=(5, 10),
    sweep_samples=8,
    skip_fractions=(0.0, 0.5),
    skip_steps=10,
    variance_images=4,
    variance_timesteps=10,
    # CPU, one thread: the costs here are rough, for the test that keeps smoke small.
    train_step_s=0.3,
    sample_step_s=0.03,
    overhead_s=20.0,
    frechet_s=0.05,
    note="smoke: a CI check that every cell runs; numbers are not comparable to anything.",
)

_BOOK = ImprovedDDPMPreset(
    scale="book",
    model=get_model_config("book"),
    runs=_runs(1000, 0.1, 0.1),
    # The book UNet moves ~4.6k img/s through the Trainer at batch 512 (01_ddpm's book run: 1,200 steps in 133 s).
    # EMA with the warm-up min(0.99, (1 + n)/(10 + n)) (TrainSpec default): ~0.97 at the last of 300 steps.
    train=TrainSpec(steps=300, batch_size=512, lr=3e-4, warmup_steps=50, grad_clip=1.0, ema_rate=0.99,
                    random_flip=False),
    eval=EvalSpec(num_samples=1000, sample_steps=50, batch_size=1000, fid_reference="train", grid=64),
    bpd_images=64,
    bpd_batch=4096,
    step_sweep=(10, 25, 50, 100),
    sweep_samples=1000,
    skip_fractions=(0.0, 0.1, 0.2, 0.3, 0.5),
    skip_steps=50,
    note="book: T = 1000 and 0.15 M training images per model (the paper: T = 4000, 64 M): the comparisons show "
         "directions, not the paper's numbers; FID from 1,000 samples of briefly trained models is biased upwards "
         "and noisy.",
)

_PAPER = ImprovedDDPMPreset(
    scale="paper",
    model=get_model_config("iddpm_cifar10"),
    runs=_runs(4000, 0.1, 0.3),
    train=TrainSpec(steps=500_000, batch_size=128, lr=1e-4, weight_decay=0.0, warmup_steps=0, grad_clip=None,
                    ema_rate=0.9999, ema_warmup=False, random_flip=False, bf16=False, compile=False),
    eval=EvalSpec(num_samples=50_000, sample_steps=4000, batch_size=1000, fid_reference="train", grid=64),
    bpd_images=10_000,
    bpd_batch=1000,
    step_sweep=(25, 50, 100, 200, 400, 1000, 4000),
    sweep_samples=50_000,
    skip_fractions=(0.0, 0.1, 0.2, 0.3, 0.5),
    skip_steps=1000,
    log_every=100,
    variance_images=1000,
    # 52.5 M model on the lent H100 (benchmarks/results/h100_train_throughput_eager.json): fp32 training step at
    # batch 128 88.6 ms bare, x 1.2 for the Trainer (EMA, loader; the ratio measured on the book model);
    # sampling 4,942 img/s forward at batch 512 -> 0.202 s per step of 1,000.
    train_step_s=0.0886 * 1.2,
    learned_sigma_factor=1.0,
    sync_step_s=0.0,
    sample_step_s=1000 / 4942,
    overhead_s=60.0,
    frechet_s=3.0,
    note="paper: Nichol & Dhariwal 2021, CIFAR-10 ablation at 500 K steps, T = 4000 (README flags of "
         "openai/improved-diffusion). Never run here; projected from the measured step time of the 52.5 M model.",
)

PRESETS = {"smoke": _SMOKE, "book": _BOOK, "paper": _PAPER}
register(CHAPTER, PRESETS)
