"""Presets of chapter 06, "CBDM on CIFAR-10-LT" (Qin et al., CVPR 2023).

Every arm is a class-conditional DDPM trained with whole-batch label dropout (p = 0.1) and sampled with
classifier-free guidance; the CBDM arms add the class-balancing regulariser through the engine's ``regularizer``
hook. Arms: baseline and CBDM (y' from the training distribution, the official from-scratch setting) with
``len(seeds)`` seeds each; single-seed ablations: y' uniform, CBDM + P2 weighting, other τ.

Costs (one H100, bf16; estimates from throughput, see ``CBDMPreset.projected_gpu_seconds``). A CBDM step does a
second forward and backward pass (the γ-term trains the y' branch), so it is counted as twice a baseline step.

* ``smoke``: the 0.19 M-parameter ``smoke`` UNet on a 10×-shrunk CIFAR-10-LT (500 … 5 images, 1,236 in all),
  T = 100, 8 steps of batch 8 per arm, 10-30 samples per FID against 40 train images. About a minute on 2 CPU
  cores; every number is labelled "smoke: not comparable".
* ``book``: the 6.9 M-parameter ``book`` UNet (10 classes) on CIFAR-10-LT (12,406 images), T = 1000 linear,
  200 steps of batch 512 per arm (about 8 epochs). Arms: 2 baselines + 2 CBDM (the seed pair of the main
  comparison) + 3 single-seed CBDM variants (y' uniform, CBDM + P2, τ = 3) = 12 baseline-arm equivalents (a CBDM
  step costs two: its second forward pass is trained by the γ-term; measured 2.6k vs 5.2k img/s at batch 1024) at
  the 4.6k img/s measured for the book UNet through the Trainer at batch 512: ~267 s. Sampling with CFG costs two
  denoiser passes per step at ~13.3k passes/s (measured): main comparison 4 × 2,000 samples × 50 respaced
  ancestral steps; ω sweep 2 more values × 2 models × 1,000 (the ω of the main comparison reuses its samples);
  3 ablations × 1,000; DDIM-100 2 × 1,000; tail grids: ~143 s. Inception on ~17 k generated + 50 k reference images
  (~17 s), ~39 s of start-up and CPU-side metrics. About 7.8 minutes in all (``projected_gpu_seconds``), in one
  device call. Short of convergence (see chapter 01's book FID).
* ``paper``: the official CBDM-pytorch CIFAR configuration (papers.md §5.1): the DDPM UNet (128 channels,
  1,2,2,2, 2 blocks, attention at 16, dropout 0.1), linear β from 1e-4 to 0.02, T = 1000, fixed-large variance,
  Adam lr 2e-4 with 5,000 warm-up steps, gradient clip 1, EMA 0.9999, batch 48, 300 K steps, whole-batch label
  dropout 0.1, τ = 1, γ = 1/4, y' from the training label frequencies, 1000-step ancestral CFG sampling of 50 K
  images, FID against the full balanced train set, recall with k = 5. The README gives this recipe for
  CIFAR-100-LT (ω = 1.6 for CBDM, 0.8 for the baseline at batch 64); the CIFAR-10-LT settings are not published
  (issue #7), so reusing them is our assumption. Projected ≈ 5.3 h of training per CBDM model at an assumed
  1,500 img/s (baseline-step equivalent) and ≈ 6 h of CFG sampling: an estimate, never run here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from lt_diffusion.experiments.common import DiffusionSpec, EvalSpec, TrainSpec
from lt_diffusion.experiments.common import (H100_BOOK_SAMPLE_IMG_PER_S, H100_BOOK_TRAIN_IMG_PER_S,
                                             H100_INCEPTION_IMG_PER_S)
from lt_diffusion.models import UNetConfig, get_model_config

from . import register

CHAPTER = "cbdm"


@dataclass(frozen=True)
class CBDMPreset:
    """One scale of chapter 06.

    Attributes:
        scale: ``"smoke"``, ``"book"`` or ``"paper"``.
        model: the class-conditional denoiser (``num_classes=10``; row 10 of the label table is the null label).
        diffusion: forward process (linear, fixed-large variance as CBDM's ``--var_type=fixedlarge``).
        train: one training run (the same budget for every arm).
        eval: the main comparison's sampling (samples, respaced ancestral steps, reference split).
        imb_factor: n_min / n_max of the long-tailed training set (0.01 = ratio 100).
        n_max: images of the most frequent class (5,000 = all of CIFAR-10's; smoke shrinks it).
        p_uncond, uncond_mode: label dropout for CFG (CBDM: 0.1, the whole batch).
        tau, gamma: CBDM's τ (strength, times t/T) and γ (weight of the commitment term).
        label_dist: distribution of y' in the main CBDM arm, ``"train"`` or ``"uniform"``.
        num_labels: |Y'|, labels y' drawn per sample (official code: 1).
        seeds: seeds of the two main arms (baseline and CBDM).
        omega: CFG strength ω (ε̃ = (1 + ω) ε_c − ω ε_u) of the main comparison and the ablations.
        omega_sweep: ω values of the sweep (seed-0 baseline and CBDM).
        sweep_samples: samples per point of the ω sweep and of the single-seed ablations (a multiple of the sampling
            batch, so that every single-seed set starts from the same noise as the reused main samples).
        tau_sweep: extra τ values trained once each (τ = 0 is the baseline, τ = ``tau`` the main CBDM arm).
        compare_uniform: train the y'-uniform variant.
        p2_gamma, p2_k: P2 weighting combined with CBDM (None: skip that arm).
        ddim_steps: DDIM (η = 0) steps of the beyond-the-paper sampler comparison (0: skip).
        recall_k: k of the k-NN balls for precision/recall (CBDM's evaluation: 5).
        kid_subset: subset size of KID.
        grid_per_class: images per tail class in the sample grids.
        n_head, n_tail: group sizes (see :mod:`lt_diffusion.longtail`).
        train_img_per_s: training images per second of a baseline arm through the Trainer (measured on the H100
            for the ``book`` UNet at batch 512: 4.6k; a CBDM arm counts twice). An assumption at ``paper`` scale.
        sample_img_per_s: denoiser forward passes per second while sampling (measured: 13.3k at batch 1000); CFG
            costs two passes per sampling step.
        setup_s, arm_overhead_s: fixed start-up (data, Inception weights, CPU-side FIDs) and per-arm start-up (model
            build, first steps) in the projected cost.
        note: what this scale can and cannot show.
    """

    scale: str
    model: UNetConfig
    diffusion: DiffusionSpec
    train: TrainSpec
    eval: EvalSpec
    imb_factor: float = 0.01
    n_max: int = 5000
    p_uncond: float = 0.1
    uncond_mode: str = "batch"
    tau: float = 1.0
    gamma: float = 0.25
    label_dist: str = "train"
    num_labels: int = 1
    seeds: Tuple[int, ...] = (0, 1)
    omega: float = 1.0
    omega_sweep: Tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
    sweep_samples: int = 2000
    tau_sweep: Tuple[float, ...] = (3.0,)
    compare_uniform: bool = True
    p2_gamma: Optional[float] = 1.0
    p2_k: float = 1.0
    ddim_steps: int = 100
    recall_k: int = 5
    kid_subset: int = 1000
    grid_per_class: int = 8
    n_head: int = 3
    n_tail: int = 3
    train_img_per_s: float = H100_BOOK_TRAIN_IMG_PER_S
    sample_img_per_s: float = H100_BOOK_SAMPLE_IMG_PER_S
    setup_s: float = 25.0
    arm_overhead_s: float = 2.0
    note: str = ""

    def __post_init__(self):
        if self.model.num_classes is None:
            raise ValueError("CBDM needs a class-conditional model (num_classes set)")
        if not 0 < self.imb_factor <= 1:
            raise ValueError(f"imb_factor must lie in (0, 1], got {self.imb_factor}")
        if self.label_dist not in ("train", "uniform"):
            raise ValueError(f"label_dist must be 'train' or 'uniform', got {self.label_dist!r}")
        if self.uncond_mode not in ("sample", "batch"):
            raise ValueError(f"uncond_mode must be 'sample' or 'batch', got {self.uncond_mode!r}")
        if len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and non-empty, got {self.seeds}")
        if self.omega not in self.omega_sweep:
            raise ValueError(f"omega {self.omega} must be one of omega_sweep {self.omega_sweep} (its points are reused)")
        if self.tau <= 0 or any(t <= 0 or t == self.tau for t in self.tau_sweep):
            raise ValueError("tau and the extra tau_sweep values must be > 0 and differ from tau")
        if self.n_head + self.n_tail > self.model.num_classes:
            raise ValueError("n_head + n_tail exceeds the number of classes")
        if self.sweep_samples > self.eval.num_samples or self.sweep_samples % self.eval.batch_size:
            # the sweep's point at ``omega`` reuses the first sweep_samples of the main samples; the other single-seed
            # sets start from the same noise only if they are drawn in the same batches (one generator per batch)
            raise ValueError(f"sweep_samples ({self.sweep_samples}) must be <= eval.num_samples "
                             f"({self.eval.num_samples}) and a multiple of eval.batch_size ({self.eval.batch_size})")

    @property
    def num_classes(self) -> int:
        return int(self.model.num_classes)

    @property
    def ablations(self) -> Tuple[Tuple[str, Dict[str, object]], ...]:
        """Single-seed variants ``(name, overrides)``; overrides of ``tau``, ``label_dist``, ``p2_gamma``."""
        other = "uniform" if self.label_dist == "train" else "train"
        out = []
        if self.compare_uniform:
            out.append((f"CBDM, y' {other}", {"label_dist": other}))
        if self.p2_gamma is not None:
            out.append((f"CBDM + P2 (γ={self.p2_gamma:g})", {"p2_gamma": self.p2_gamma}))
        for t in self.tau_sweep:
            out.append((f"CBDM, τ={t:g}", {"tau": t}))
        return tuple(out)

    @property
    def arms(self) -> Tuple[Tuple[str, int, Dict[str, object]], ...]:
        """Every training run ``(name, seed, overrides)``: baseline and CBDM for each seed, then the single-seed
        ablations (first seed). ``overrides`` holds ``cbdm=False`` for the baseline, else ablation overrides."""
        out = [("baseline", s, {"cbdm": False}) for s in self.seeds] + [("CBDM", s, {}) for s in self.seeds]
        out += [(name, self.seeds[0], dict(overrides)) for name, overrides in self.ablations]
        return tuple(out)

    def projected_gpu_seconds(self) -> Dict[str, float]:
        """Projected H100 seconds of the whole chapter (an estimate from measured throughputs, not a measurement).

        Counts every arm's training (a CBDM arm as two baseline arms), every CFG sample set of the notebook (two
        denoiser passes per step; the ω sweep's point at ``omega`` reuses the main samples), Inception on all
        generated images and the reference set, and start-up.
        """
        n = len(self.seeds)
        n_abl = len(self.ablations)
        step_equiv = n * 1 + n * 2 + 2 * n_abl   # baseline 1, CBDM arms 2 (second pass)
        train_s = step_equiv * self.train.images_seen / self.train_img_per_s
        n_sweep_extra = len(self.omega_sweep) - 1       # the sweep's point at ``omega`` reuses the main samples
        n_grid = self.grid_per_class * self.n_tail
        steps = self.eval.sample_steps
        passes = 2 * (2 * n * self.eval.num_samples * steps
                      + 2 * n_sweep_extra * self.sweep_samples * steps
                      + n_abl * self.sweep_samples * steps
                      + (2 * self.sweep_samples * self.ddim_steps if self.ddim_steps else 0)
                      + 2 * n_grid * steps)
        sample_s = passes / self.sample_img_per_s
        n_gen = (2 * n * self.eval.num_samples + (2 * n_sweep_extra + n_abl + (2 if self.ddim_steps else 0))
                 * self.sweep_samples)
        n_ref = self.eval.fid_reference_images or 50_000
        fid_s = (n_gen + n_ref) / H100_INCEPTION_IMG_PER_S
        overhead_s = self.setup_s + len(self.arms) * self.arm_overhead_s
        return {"train_s": train_s, "sample_s": sample_s, "fid_s": fid_s, "overhead_s": overhead_s,
                "total_s": train_s + sample_s + fid_s + overhead_s}


_SMOKE = CBDMPreset(
    scale="smoke",
    model=get_model_config("smoke", num_classes=10),
    diffusion=DiffusionSpec(steps=100, noise_schedule="linear", objective="simple"),
    train=TrainSpec(steps=8, batch_size=8, lr=1e-3, warmup_steps=0, ema_rate=0.8, bf16=False),
    eval=EvalSpec(num_samples=30, sample_steps=5, batch_size=10, fid_reference="train",
                  fid_reference_images=40, grid=20, comparable=False),
    n_max=500,
    seeds=(0, 1),
    omega_sweep=(0.0, 1.0),
    sweep_samples=10,
    tau_sweep=(3.0,),
    ddim_steps=5,
    recall_k=3,
    kid_subset=20,
    grid_per_class=2,
    train_img_per_s=300.0,
    sample_img_per_s=1000.0,
    note="smoke: a CI check that every cell runs; numbers are not comparable to anything.",
)

_BOOK = CBDMPreset(
    scale="book",
    model=get_model_config("book", num_classes=10, dropout=0.1),
    diffusion=DiffusionSpec(steps=1000, noise_schedule="linear", objective="simple"),
    # Sized with the throughput measured on the H100 (DESIGN.md, 2026-11-22): the Trainer moves ~4.6-5.2k img/s for
    # a baseline arm and ~2.6k img/s for a CBDM arm (second forward pass) at batch 512-1024. A first run at
    # 350 x 1024 spent its whole 540 s cell limit in training (measured: baseline arms 79 / 69 s, CBDM arms 137 s).
    # EMA 0.98 (horizon ~50 steps, warmed up): a constant 0.995 would keep a third of the initial weights after 200.
    train=TrainSpec(steps=200, batch_size=512, lr=3e-4, warmup_steps=30, grad_clip=1.0, ema_rate=0.98),
    eval=EvalSpec(num_samples=2000, sample_steps=50, batch_size=1000, fid_reference="train", grid=100),
    seeds=(0, 1),
    omega=1.0,
    omega_sweep=(0.0, 1.0, 2.0),
    sweep_samples=1000,
    tau_sweep=(3.0,),
    compare_uniform=True,
    ddim_steps=100,
    train_img_per_s=H100_BOOK_TRAIN_IMG_PER_S,  # measured (experiments.common); a CBDM arm counts twice
    sample_img_per_s=H100_BOOK_SAMPLE_IMG_PER_S,  # measured (experiments.common)
    note="book: 0.1 M training images per arm (the official recipe: 14 M), far short of convergence; the chapter "
         "compares arms at one equal budget with two seeds for the main pair, plus single-seed y' uniform, "
         "CBDM + P2 and τ = 3. About 8 minutes on one H100, in one device call. Not a reproduction of the paper.",
)

_PAPER = CBDMPreset(
    scale="paper",
    model=get_model_config("ddpm_cifar10", num_classes=10),
    diffusion=DiffusionSpec(steps=1000, noise_schedule="linear", objective="simple"),
    train=TrainSpec(steps=300_000, batch_size=48, lr=2e-4, warmup_steps=5000, grad_clip=1.0, ema_rate=0.9999,
                    ema_warmup=False, random_flip=True, compile=True),
    eval=EvalSpec(num_samples=50_000, sample_steps=1000, batch_size=1000, fid_reference="train", grid=100),
    seeds=(0, 1),
    omega=1.6,
    omega_sweep=(0.0, 0.8, 1.6, 2.0),
    sweep_samples=10_000,
    tau_sweep=(0.5, 2.0),
    p2_gamma=1.0,
    ddim_steps=100,
    recall_k=5,
    train_img_per_s=1_500.0,
    sample_img_per_s=4_500.0,
    note="paper: the official CBDM-pytorch recipe (README, CIFAR-100-LT flags) applied to CIFAR-10-LT; the paper's "
         "own CIFAR-10-LT settings are not published. Never run here.",
)

PRESETS = {"smoke": _SMOKE, "book": _BOOK, "paper": _PAPER}
register(CHAPTER, PRESETS)
