"""Presets of chapter 04, "Classifier-free guidance" (Ho & Salimans 2022).

Three experiments:

1. **A 2-D toy** (:mod:`lt_diffusion.toy2d`): three Gaussian classes whose densities under the forward process
   are exact. Guided sampling with the exact ε* and with a small MLP denoiser trained with label dropout, for
   a few guidance strengths w. Always on the CPU (seconds).
2. **Joint conditional/unconditional training** of CIFAR-10 UNets with the null label at each ``p_uncond``,
   and the sweep of w: FID, precision and recall vs w, and samples per class.
3. **Classifier guidance vs CFG** on the same base model (the first ``p_uncond`` model) and budget: a noisy
   classifier is trained, both sweeps are plotted side by side, and the cost per sample is measured (forward
   passes and seconds).

Convention: w of Ho & Salimans (ε̃ = (1 + w) ε_c − w ε_∅; w = 0 is the conditional model); the guidance scale
g = 1 + w of Imagen / diffusers is printed beside it.

Costs: a projection from step times **measured** on the lent H100 (2026-11-22, torch 2.11, bf16 eager; DESIGN.md,
``benchmarks/results/h100_*.json``), see ``CFGPreset.projected_gpu_seconds``. Small 32×32 UNets are bound by
kernel launches there at small batches, so the cost is counted in steps: ≥ 70 ms per optimiser step, and
4,600 img/s through the Trainer at batch 512 (the 01_ddpm ``book`` run), ~75 ms per denoiser step of a
sampling batch of ≤ 1,000 (a CFG step runs the doubled batch: counted as 2 × 75 ms at batch 1,000), ~50 ms per
noisy-classifier step at batch 256-512
(assumed), Inception features at ~3,000 img/s (assumed), ~1.5 s per exact low-rank Fréchet distance of ≤ 2,000
samples on the host (assumed), ~20 s of start-up and ~15 s for the CPU toy (assumed).

* ``smoke``: the 0.19 M ``smoke`` UNet, a few steps, 8 samples per metric point against 32 train images;
  about 2 minutes of CPU time; every metric is labelled "smoke: not comparable".
* ``book``: two 6.95 M-parameter conditional UNets (p_uncond 0.1 and 0.2), each 350 steps of batch 512
  (≈ 39 s each), a 3.3 M-parameter classifier (300 steps of batch 512, ≈ 17 s), 10 CFG sample sets (w = 0, 0.5,
  1, 2, 4 per model) and 3 classifier-guided sets (s = 1, 3, 8) of 2,000 images with 50 DDIM steps (≈ 190 s;
  classifier guidance at s = 0 is the CFG w = 0 set, reused), the one-forward check, the class grid and the cost
  timing (≈ 13 s), Inception features, the train-set reference statistics and the distances (≈ 46 s). ≈ 380 s
  projected with start-up and the toy: about 6.5 minutes, inside one 9-minute device call.
* ``paper``: what the paper's study would cost at CIFAR-10 size with the ADM-style CIFAR-10 UNet of
  papers.md §2.1: p_uncond ∈ {0.1, 0.2, 0.5}, a finer w grid, 50 K samples per point. papers.md could not verify
  the paper's own p_uncond / w grid or a CIFAR-10 number (§3, §9); these values are our choice. Never run
  here; its ≈ 97 GPU-hours are projected from the measured eager throughput of the 52.5 M ``iddpm_cifar10``
  UNet (1,271–1,444 img/s training, 4,942 img/s sampling), the closest measured model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from lt_diffusion.experiments.common import DiffusionSpec, EvalSpec, TrainSpec
from lt_diffusion.experiments.common import (H100_BOOK_SAMPLE_IMG_PER_S, H100_BOOK_TRAIN_IMG_PER_S,
                                             H100_INCEPTION_IMG_PER_S)
from lt_diffusion.models import ClassifierConfig, UNetConfig, get_model_config

from . import register

CHAPTER = "cfg"

# Cost model of the lent H100 beside the measured step times of ``CFGPreset`` (DESIGN.md, 2026-11-22, torch 2.11).
FID_DISTANCE_S = 1.5            # one exact low-rank Fréchet distance (N ≤ 2,000) on the host (assumed)
STARTUP_S = 20.0                # imports, CUDA context, dataset load, warm-up (assumed)
TOY_S = 15.0                    # the 2-D toy on the CPU at the default ToySpec (assumed)


@dataclass(frozen=True)
class ToySpec:
    """The 2-D toy (CPU).

    Attributes:
        radius, std: three isotropic classes on a triangle of this radius with this standard deviation.
        steps: T of the toy's diffusion (cosine schedule); sample_steps: DDIM steps used to sample it.
        ws: guidance strengths shown.
        samples_per_class: samples drawn per class and w.
        mlp_hidden, mlp_depth: the MLP denoiser; mlp_steps, mlp_batch, mlp_lr: its training.
        p_uncond: label dropout of the MLP's training.
    """

    radius: float = 1.0
    std: float = 0.45
    steps: int = 1000
    sample_steps: int = 50
    ws: Tuple[float, ...] = (0.0, 1.0, 3.0, 8.0)
    samples_per_class: int = 1000
    mlp_hidden: int = 128
    mlp_depth: int = 3
    mlp_steps: int = 3000
    mlp_batch: int = 512
    mlp_lr: float = 2e-3
    p_uncond: float = 0.2


@dataclass(frozen=True)
class CFGPreset:
    """One scale of chapter 04.

    Attributes:
        scale: ``"smoke"``, ``"book"`` or ``"paper"``.
        toy: the 2-D experiment.
        diffusion: forward process and objective of the image models.
        model: the class-conditional UNet (``num_classes=10``; null label 10).
        train: the recipe of every conditional model.
        p_unconds: label-dropout probabilities, one model each (the first is the base of the comparison).
        ws: CFG strengths swept (w convention).
        classifier: the noisy classifier of the classifier-guidance comparison.
        classifier_train: its recipe.
        classifier_scales: classifier scales s swept on the first model (conditional, y = class).
        eval: samples per sweep point, DDIM steps, FID reference split.
        pr_reference_images: real train images whose features are the precision/recall reference.
        samples_per_class_grid: images per class in the per-class grid.
        grid_w: the w of the per-class grid.
        cost_batch: batch used to time one sampling call of each method.
        cost_steps: DDIM steps of that timing call (None: ``eval.sample_steps``); the cost per step is what the
            comparison needs, and the call is repeated once as a warm-up.
        train_step_s, train_img_per_s: seconds per optimiser step are ``max(train_step_s, batch /
            train_img_per_s)``: the launch-bound floor, then the throughput. ``book``: measured on the H100
            through the Trainer (4,600 img/s at batch 512, DESIGN.md); ``paper``: the measured eager throughput of ``iddpm_cifar10`` at batch 128.
        sample_step_s, sample_img_per_s: seconds per denoiser step of one sampling batch, ``max(sample_step_s,
            images / sample_img_per_s)`` (measured: ~75 ms at batch 1,000 for the book UNet; 4,942 img/s for
            ``iddpm_cifar10``); CFG's forward sees twice the images.
        clf_step_s: floor of a noisy-classifier step (training, or forward + backward in guidance), assumed
            40–60 ms; above it the classifier (the UNet's encoder half) runs at ``2 * train_img_per_s``.
        note: what this scale can and cannot show.
    """

    scale: str
    toy: ToySpec
    diffusion: DiffusionSpec
    model: UNetConfig
    train: TrainSpec
    p_unconds: Tuple[float, ...]
    ws: Tuple[float, ...]
    classifier: ClassifierConfig
    classifier_train: TrainSpec
    classifier_scales: Tuple[float, ...]
    eval: EvalSpec
    pr_reference_images: int
    samples_per_class_grid: int = 8
    grid_w: float = 2.0
    cost_batch: int = 250
    cost_steps: Optional[int] = None
    train_step_s: float = 0.070
    train_img_per_s: float = H100_BOOK_TRAIN_IMG_PER_S
    sample_step_s: float = 0.075
    sample_img_per_s: float = H100_BOOK_SAMPLE_IMG_PER_S
    clf_step_s: float = 0.050
    note: str = ""

    def __post_init__(self):
        if self.model.num_classes is None:
            raise ValueError("CFG needs a class-conditional model (num_classes=10)")
        if not self.p_unconds or not all(0.0 < p < 1.0 for p in self.p_unconds):
            raise ValueError(f"p_unconds must be non-empty values in (0, 1), got {self.p_unconds}")
        if 0.0 not in self.ws:
            raise ValueError("the w sweep must include w = 0 (the plain conditional model)")
        if self.classifier.num_classes != self.model.num_classes:
            raise ValueError("classifier and model must have the same number of classes")

    @staticmethod
    def g_of_w(w: float) -> float:
        """The Imagen / diffusers guidance scale g = 1 + w of a Ho & Salimans strength w."""
        return 1.0 + w

    def _train_s(self, spec: TrainSpec) -> float:
        return spec.steps * max(self.train_step_s, spec.batch_size / self.train_img_per_s)

    def _clf_step_s(self, batch: int) -> float:
        return max(self.clf_step_s, batch / (2 * self.train_img_per_s))

    def _sample_s(self, n: int, steps: int, batch: int, forwards: int = 1, guided: bool = False) -> float:
        """``ceil(n / batch)`` batches × ``steps`` denoiser steps on ``forwards`` × the batch (CFG: 2); a
        classifier-guided step adds a classifier step (forward + backward)."""
        b = min(batch, n)
        per_step = max(self.sample_step_s, forwards * b / self.sample_img_per_s)
        return math.ceil(n / b) * steps * (per_step + (self._clf_step_s(b) if guided else 0.0))

    def projected_gpu_seconds(self) -> Dict[str, float]:
        """Projected H100 seconds of the whole notebook, from the step times above (a projection, not a
        measurement of this preset).

        A CFG step is one forward pass on a doubled batch; classifier guidance is one UNet forward plus a
        classifier forward and backward. Classifier guidance at s = 0 is not sampled again (it is the CFG
        w = 0 set of the first model).
        """
        ev = self.eval
        n_models = len(self.p_unconds)
        train = n_models * self._train_s(self.train)
        clf = self.classifier_train.steps * self._clf_step_s(self.classifier_train.batch_size)
        sweep = n_models * sum(self._sample_s(ev.num_samples, ev.sample_steps, ev.batch_size,
                                              forwards=2 if w != 0 else 1) for w in self.ws)
        cg_scales = [s for s in self.classifier_scales if s > 0]
        sweep += sum(self._sample_s(ev.num_samples, ev.sample_steps, ev.batch_size, guided=True) for _ in cg_scales)
        n_grid = self.samples_per_class_grid * self.model.num_classes
        steps_cost = self.cost_steps or ev.sample_steps
        extra = (self._sample_s(n_grid, ev.sample_steps, ev.batch_size, forwards=2)
                 + self._sample_s(4, ev.sample_steps, 4, forwards=2)          # the one-forward check
                 + 2 * (self._sample_s(self.cost_batch, steps_cost, self.cost_batch)          # warm-up + timed
                        + self._sample_s(self.cost_batch, steps_cost, self.cost_batch, forwards=2)
                        + self._sample_s(self.cost_batch, steps_cost, self.cost_batch, guided=True)))
        n_sets = n_models * len(self.ws) + len(cg_scales)
        n_ref = 50_000 if ev.fid_reference_images is None else 0   # smoke reuses the precision/recall images
        fid = ((n_sets * ev.num_samples + self.pr_reference_images + n_ref) / H100_INCEPTION_IMG_PER_S
               + n_sets * FID_DISTANCE_S)
        total = STARTUP_S + TOY_S + train + clf + sweep + extra + fid
        return {"startup_s": STARTUP_S, "toy_cpu_s": TOY_S, "train_s": train, "classifier_s": clf,
                "sample_s": sweep, "grid_and_timing_s": extra, "fid_s": fid, "total_s": total}


_SMOKE = CFGPreset(
    scale="smoke",
    toy=ToySpec(steps=100, sample_steps=10, ws=(0.0, 3.0), samples_per_class=100, mlp_hidden=32, mlp_depth=2,
                mlp_steps=40, mlp_batch=128),
    diffusion=DiffusionSpec(steps=100, noise_schedule="cosine", objective="simple"),
    model=get_model_config("smoke", num_classes=10, num_heads=1),
    train=TrainSpec(steps=4, batch_size=8, lr=1e-3, ema_rate=0.5, num_train_images=256, bf16=False, grad_clip=1.0),
    p_unconds=(0.1, 0.2),
    ws=(0.0, 2.0),
    classifier=ClassifierConfig(num_classes=10, model_channels=16, num_res_blocks=1, channel_mult=(1, 2),
                                attention_resolutions=(16,), num_head_channels=16, pool="attention"),
    classifier_train=TrainSpec(steps=4, batch_size=16, lr=1e-3, num_train_images=256, bf16=False),
    classifier_scales=(0.0, 4.0),
    eval=EvalSpec(num_samples=8, sample_steps=5, batch_size=8, fid_reference="train", fid_reference_images=32,
                  grid=6, comparable=False),
    pr_reference_images=32,
    samples_per_class_grid=2,
    cost_batch=8,
    train_img_per_s=60.0,
    sample_img_per_s=200.0,
    note="smoke: a CI check that every cell runs; every number is 'smoke: not comparable'.",
)

_BOOK = CFGPreset(
    scale="book",
    toy=ToySpec(),
    diffusion=DiffusionSpec(steps=1000, noise_schedule="cosine", objective="simple"),
    model=get_model_config("book", num_classes=10, dropout=0.0),
    train=TrainSpec(steps=350, batch_size=512, lr=5e-4, warmup_steps=35, grad_clip=1.0, ema_rate=0.985),
    p_unconds=(0.1, 0.2),
    ws=(0.0, 0.5, 1.0, 2.0, 4.0),
    classifier=ClassifierConfig(num_classes=10, model_channels=64, num_res_blocks=2, channel_mult=(1, 2, 2),
                                attention_resolutions=(16, 8), num_head_channels=64, pool="attention"),
    classifier_train=TrainSpec(steps=300, batch_size=512, lr=4.5e-4, weight_decay=0.05),
    classifier_scales=(0.0, 1.0, 3.0, 8.0),
    eval=EvalSpec(num_samples=2000, sample_steps=50, batch_size=1000, fid_reference="train"),
    pr_reference_images=2000,
    cost_steps=10,
    note="book: seconds of training per model; FID is far above any paper's and only the trends in w are "
         "meaningful. FID and precision/recall use 2,000 samples (FID is biased upwards at this size).",
)

_PAPER = CFGPreset(
    scale="paper",
    toy=ToySpec(samples_per_class=5000, mlp_steps=20_000),
    diffusion=DiffusionSpec(steps=1000, noise_schedule="cosine", objective="hybrid", rescale_timesteps=False,
                            rescale_learned_sigmas=True),
    model=UNetConfig(image_size=32, model_channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=3,
                     attention_resolutions=(16, 8), num_head_channels=32, resblock_updown=True,
                     use_scale_shift_norm=True, dropout=0.3, learn_sigma=True, num_classes=10),
    train=TrainSpec(steps=500_000, batch_size=128, lr=1e-4, ema_rate=0.9999,
                    ema_warmup=False, random_flip=True, compile=True),
    p_unconds=(0.1, 0.2, 0.5),
    ws=(0.0, 0.1, 0.2, 0.3, 0.5, 0.8, 1.0, 2.0, 3.0, 4.0),
    classifier=ClassifierConfig(num_classes=10, model_channels=128, num_res_blocks=2, channel_mult=(1, 2, 2, 2),
                                attention_resolutions=(32, 16, 8), num_head_channels=64, pool="attention"),
    classifier_train=TrainSpec(steps=150_000, batch_size=256, lr=3e-4, weight_decay=0.05),
    classifier_scales=(0.0, 0.5, 1.0, 2.0, 4.0, 8.0),
    eval=EvalSpec(num_samples=50_000, sample_steps=250, batch_size=1000, fid_reference="train"),
    pr_reference_images=50_000,
    train_img_per_s=1_271.0,
    sample_img_per_s=4_942.0,
    note="paper: the ADM-style CIFAR-10 UNet of papers.md §2.1 (DDPM-IP, third-party), trained jointly with the "
         "null label. Ho & Salimans report ImageNet only; papers.md verifies no CIFAR-10 number and not their "
         "p_uncond / w grid. Never run here; ≈ 97 GPU-hours (4 days on one H100) projected from the measured "
         "eager throughput of iddpm_cifar10.",
)

PRESETS = {"smoke": _SMOKE, "book": _BOOK, "paper": _PAPER}
register(CHAPTER, PRESETS)
