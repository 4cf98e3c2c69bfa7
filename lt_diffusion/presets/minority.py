"""Presets of chapter 07, "Minority guidance" (Um, Lee & Ye, ICLR 2024), chapter key ``minority_guidance``.

The chapter trains an unconditional ε-prediction model on CIFAR-10-LT, scores every training image with the
minority score (LPIPS between x_0 and the one-shot Tweedie reconstruction, averaged over noise draws at one
t), bins the scores into L ordinal levels, trains a noise-conditional classifier on the levels and samples
with its gradient as ``cond_fn``. A clean ResNet-18 trained on the balanced CIFAR-10 train set labels the
generated images (class histograms).

Costs: a projection from step times **measured** on the lent H100 (2026-11-22, torch 2.11, bf16 eager; DESIGN.md,
``benchmarks/results/h100_*.json``), see ``projected_gpu_seconds``. Small 32×32 UNets are bound by kernel
launches there, so the cost is counted in steps, not FLOPs: ~70 ms per optimiser step of the 6.95 M ``book``
UNet at batch 128-512, ~75 ms per denoiser step of a sampling batch of ≤ 1,000 (1,000-step ancestral sampling:
730 s per 10 k samples, hence respaced sampling), ~50-60 ms per step of the level classifier or the ResNet-18
at batch 256-512 (assumed), Inception features at ~3,000 img/s (assumed), ~20 s of start-up (assumed).

* ``smoke``: the 0.19 M-parameter smoke UNet, T = 100, a 118-image long-tailed subset (n_max 30, imbalance
  0.1), a few optimiser steps everywhere, 4-8 samples per set, a 3-conv net as the labelling classifier.
  Every number is "smoke: not comparable"; it checks that every cell runs (about a minute on 2 CPU cores).
* ``book``: the 6.9 M-parameter ``book`` UNet, linear T = 1000, 1,200 steps of batch 512 on CIFAR-10-LT
  (50 epochs of its 12,406 images, ≈ 84 s); minority scores of all LT images × 5 draws (UNet + LPIPS, ≈ 10 s);
  a 64-wide level classifier, 400 steps of batch 256 (≈ 21 s); 50-step respaced ancestral sampling in batches
  of 1,000 of 2,000 unguided, 2,000 top-level and 1,000 bottom-level samples plus a 4-point w sweep of 1,000
  each (a guided step adds a classifier forward + backward: ≈ 54 s); the metrics of those sets (features,
  minority scores, FID; ≈ 15 s); a ResNet-18 labeller, 400 steps of batch 512 on the 50,000 balanced train
  images (≈ 24 s); the exact 2-D toy on the CPU (≈ 8 s). ≈ 236 s projected with start-up, in one papermill
  run of about 4 minutes.
* ``paper``: the official LSUN-Bedrooms recipe, moved to CIFAR-10 where the repository has no configuration
  (papers.md §6): T = 1000 linear, minority score at t = 605 (index 60 of 100 respaced steps) with 5 draws,
  L = 100 levels, classifier trained 60 k steps at batch 256 (lr 3e-4, wd 0.05, attention pooling, width 128,
  depth 2), 250 respaced ancestral steps, w = 3.5, 50 k samples; the backbone is the improved-diffusion
  CIFAR-10 model trained 500 k steps. Projected ≈ 21 GPU-hours from the measured eager throughput of
  ``iddpm_cifar10`` (1,271–1,444 img/s training, 4,942 img/s sampling); never run here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from lt_diffusion.experiments.common import DiffusionSpec, TrainSpec
from lt_diffusion.experiments.common import H100_BOOK_SAMPLE_IMG_PER_S, H100_INCEPTION_IMG_PER_S
from lt_diffusion.models import ClassifierConfig, UNetConfig, get_model_config

from . import register

CHAPTER = "minority_guidance"

# Cost model of the lent H100 beside the measured step times of ``MinorityPreset`` (DESIGN.md, 2026-11-22).
FID_DISTANCE_S = 0.2            # one Fréchet distance on the GPU (torchmetrics eigenvalue backend, measured)
STARTUP_S = 20.0                # imports, CUDA context, dataset load, warm-up (assumed)
TOY_S = 8.0                     # the exact 2-D toy (CPU, float64, scale-independent): 6.5 s measured on 2 CPU cores


@dataclass(frozen=True)
class MinorityPreset:
    """One scale of chapter 07.

    Attributes:
        scale: ``"smoke"``, ``"book"`` or ``"paper"``.
        model, diffusion, train: the unconditional denoiser trained on the long-tailed set.
        imb_factor, lt_n_max: the long-tailed training set (``long_tailed_subset``; n_max None = 5,000).
        perturb_t_frac: the minority score's t as a fraction of T (official: 605 / 1000).
        num_draws: noise draws per image (official: 5).
        score_batch: images per minority-score batch.
        num_levels: L, the number of ordinal levels (official: 100, with ~3 M LSUN images; we use fewer
            because CIFAR-10-LT has 12,406 images).
        classifier, classifier_train: the level classifier p_ψ(l̃ | x_t, t) (AdamW, lr, weight decay).
        classifier_eval_timesteps: points of the accuracy-vs-t curve.
        sample_steps: respaced ancestral sampling steps.
        sample_batch: images per sampling call (and per metric minority-score batch of generated sets).
        num_samples: samples of the unguided and the top-level guided sets (the metrics sets).
        low_samples: samples guided to level 0 (the "most common" control).
        guidance_scale: w of the main guided set (official LSUN: 3.5).
        sweep_scales, sweep_samples: the w sweep towards the top level.
        labeller_arch, labeller_train, labeller_lr: the clean classifier that labels generated images (trained
            on balanced CIFAR-10 train, ``train.num_train_images`` style subset when ``labeller_images`` is set).
        labeller_images: balanced train images for the labeller (None: all 50,000).
        test_images: balanced test images for the labeller's accuracy.
        show_images: images in the top/bottom figures.
        metric_real_images: real LT images (every k-th) behind FID / precision / recall / rarity (None: all).
        train_step_s, train_img_per_s: seconds per optimiser step are ``max(train_step_s, batch /
            train_img_per_s)``: the launch-bound floor, then the throughput. ``book``: measured on the H100 (~60–70
            ms per step of the book UNet at batch 128–512; 7,300 img/s = batch 512 in 70 ms); ``paper``: the
            measured eager throughput of ``iddpm_cifar10`` at batch 128 (1,271–1,444 img/s; the lower end).
        sample_step_s, sample_img_per_s: seconds per denoiser step of one batch, ``max(sample_step_s, batch /
            sample_img_per_s)`` (measured: ~75 ms at batch 1,000 for the book UNet; 4,942 img/s for
            ``iddpm_cifar10``).
        clf_step_s, clf_img_per_s: the same for a classifier step (assumed 40–60 ms at batch 256–512); the level
            classifier (the UNet's encoder half) runs at ``2 * train_img_per_s``, the labeller at ``clf_img_per_s``.
        note: what this scale can and cannot show.
    """

    scale: str
    model: UNetConfig
    diffusion: DiffusionSpec
    train: TrainSpec
    classifier: ClassifierConfig
    classifier_train: TrainSpec
    labeller_train: TrainSpec
    imb_factor: float = 0.01
    lt_n_max: Optional[int] = None
    perturb_t_frac: float = 0.605
    num_draws: int = 5
    score_batch: int = 1000
    num_levels: int = 10
    classifier_eval_timesteps: int = 11
    sample_steps: int = 100
    sample_batch: int = 500
    num_samples: int = 2000
    low_samples: int = 1000
    guidance_scale: float = 3.5
    sweep_scales: Tuple[float, ...] = (0.0, 1.0, 3.5, 7.0)
    sweep_samples: int = 500
    labeller_arch: str = "resnet18"
    labeller_images: Optional[int] = None
    test_images: int = 10_000
    show_images: int = 12
    metric_real_images: Optional[int] = None
    comparable: bool = True
    train_step_s: float = 0.070
    train_img_per_s: float = 7_300.0
    sample_step_s: float = 0.075
    sample_img_per_s: float = H100_BOOK_SAMPLE_IMG_PER_S
    clf_step_s: float = 0.050
    clf_img_per_s: float = 8_500.0
    note: str = ""

    def __post_init__(self):
        if not 0.0 < self.perturb_t_frac < 1.0:
            raise ValueError(f"perturb_t_frac must lie in (0, 1), got {self.perturb_t_frac}")
        if self.num_draws < 1 or self.num_levels < 2:
            raise ValueError("num_draws must be >= 1 and num_levels >= 2")
        if self.classifier.num_classes != self.num_levels:
            raise ValueError(f"the level classifier needs num_classes = num_levels = {self.num_levels}, "
                             f"got {self.classifier.num_classes}")
        if self.model.num_classes is not None:
            raise ValueError("minority guidance steers an unconditional model: model.num_classes must be None")
        if self.num_samples < 2 or self.sweep_samples < 1 or self.low_samples < 1:
            raise ValueError("sample counts must be positive (num_samples >= 2)")
        if not 0 < self.imb_factor <= 1:
            raise ValueError(f"imb_factor must lie in (0, 1], got {self.imb_factor}")

    @property
    def perturb_t(self) -> int:
        """The minority score's timestep index, ``round(perturb_t_frac * T)`` (605 for T = 1000)."""
        return min(self.diffusion.steps - 1, int(round(self.perturb_t_frac * self.diffusion.steps)))

    @property
    def lt_size(self) -> int:
        from lt_diffusion.data import lt_class_counts

        return sum(lt_class_counts(self.lt_n_max or 5000, 10, self.imb_factor))

    def _step_s(self, batch: int, floor: float, img_per_s: float) -> float:
        return max(floor, batch / img_per_s)

    def _sample_s(self, n: int, guided: bool) -> float:
        """Respaced ancestral sampling of ``n`` images; a guided step adds a level-classifier forward + backward."""
        b = min(self.sample_batch, n)
        per_step = self._step_s(b, self.sample_step_s, self.sample_img_per_s)
        if guided:
            per_step += self._step_s(b, self.clf_step_s, 2 * self.train_img_per_s)
        return math.ceil(n / b) * self.sample_steps * per_step

    def _score_s(self, n: int, batch: int) -> float:
        """Minority scores of ``n`` images: per batch and draw one UNet forward and one LPIPS forward."""
        b = min(batch, n)
        return math.ceil(n / b) * self.num_draws * 2 * self._step_s(b, self.sample_step_s, self.sample_img_per_s)

    def projected_gpu_seconds(self) -> Dict[str, float]:
        """Projected H100 seconds of the whole notebook, from the step times above (a projection, not a
        measurement of this preset)."""
        t, ct, lt_ = self.train, self.classifier_train, self.labeller_train
        train = t.steps * self._step_s(t.batch_size, self.train_step_s, self.train_img_per_s)
        score = self._score_s(self.lt_size, self.score_batch)
        clf_step = self._step_s(ct.batch_size, self.clf_step_s, 2 * self.train_img_per_s)
        clf = (ct.steps + self.classifier_eval_timesteps) * clf_step   # training + the accuracy-vs-t curve
        sweep = [(self.sweep_samples, w > 0) for w in self.sweep_scales]
        sets = [(self.num_samples, False), (self.num_samples, True), (self.low_samples, True)] + sweep
        sample = sum(self._sample_s(n, guided) for n, guided in sets)
        labeller = lt_.steps * self._step_s(lt_.batch_size, self.clf_step_s, self.clf_img_per_s)
        n_gen = sum(n for n, _ in sets)
        n_incep = (self.metric_real_images or self.lt_size) + n_gen
        metrics = (n_incep / H100_INCEPTION_IMG_PER_S + 3 * FID_DISTANCE_S
                   + sum(self._score_s(n, self.score_batch) for n, _ in sets))
        total = STARTUP_S + TOY_S + train + score + clf + sample + labeller + metrics
        return {"startup_s": STARTUP_S, "toy_s": TOY_S, "train_s": train, "score_s": score, "classifier_s": clf,
                "sample_s": sample, "labeller_s": labeller, "metrics_s": metrics, "total_s": total}


_SMOKE = MinorityPreset(
    scale="smoke",
    model=get_model_config("smoke"),
    diffusion=DiffusionSpec(steps=100, noise_schedule="linear", objective="simple"),
    train=TrainSpec(steps=8, batch_size=16, lr=1e-3, ema_rate=0.5, bf16=False, grad_clip=1.0),
    classifier=ClassifierConfig(num_classes=4, model_channels=16, num_res_blocks=1, channel_mult=(1, 2),
                                attention_resolutions=(16,), num_head_channels=16, pool="attention"),
    classifier_train=TrainSpec(steps=6, batch_size=16, lr=1e-3, bf16=False),
    labeller_train=TrainSpec(steps=6, batch_size=32, lr=0.05, warmup_steps=1),
    imb_factor=0.1,
    lt_n_max=30,
    num_draws=2,
    score_batch=120,
    num_levels=4,
    classifier_eval_timesteps=3,
    sample_steps=4,
    num_samples=8,
    low_samples=4,
    guidance_scale=3.5,
    sweep_scales=(0.0, 7.0),
    sweep_samples=4,
    labeller_arch="tiny_cnn",
    labeller_images=200,
    test_images=100,
    show_images=6,
    metric_real_images=24,
    comparable=False,
    train_img_per_s=60.0,
    sample_img_per_s=200.0,
    clf_img_per_s=100.0,
    note="smoke: a CI check that every cell runs; every number is 'smoke: not comparable'.",
)

_BOOK = MinorityPreset(
    scale="book",
    model=get_model_config("book", dropout=0.1),
    diffusion=DiffusionSpec(steps=1000, noise_schedule="linear", objective="simple"),
    train=TrainSpec(steps=1200, batch_size=512, lr=3e-4, warmup_steps=50, grad_clip=1.0, ema_rate=0.995),
    classifier=ClassifierConfig(num_classes=10, model_channels=64, num_res_blocks=2, channel_mult=(1, 2, 2),
                                attention_resolutions=(16, 8), num_head_channels=64, pool="attention"),
    classifier_train=TrainSpec(steps=400, batch_size=256, lr=3e-4, weight_decay=0.05),
    labeller_train=TrainSpec(steps=400, batch_size=512, lr=0.2, warmup_steps=40, weight_decay=5e-4),
    num_levels=10,
    sample_steps=50,
    sample_batch=1000,
    num_samples=2000,
    low_samples=1000,
    sweep_scales=(0.0, 1.0, 3.5, 7.0),
    sweep_samples=1000,
    note="book: a minutes-scale backbone (FID far above any paper's). The minority score is only as good as the "
         "backbone's posterior mean, so the levels are noisier than the paper's; L = 10 instead of 100.",
)

_PAPER = MinorityPreset(
    scale="paper",
    model=get_model_config("iddpm_cifar10", learn_sigma=False),
    diffusion=DiffusionSpec(steps=1000, noise_schedule="linear", objective="simple"),
    train=TrainSpec(steps=500_000, batch_size=128, lr=1e-4, ema_rate=0.9999, ema_warmup=False, compile=True),
    classifier=ClassifierConfig(num_classes=100, model_channels=128, num_res_blocks=2, channel_mult=(1, 2, 2, 2),
                                attention_resolutions=(8,), num_head_channels=64, pool="attention",
                                resblock_updown=False, use_scale_shift_norm=True),
    classifier_train=TrainSpec(steps=60_000, batch_size=256, lr=3e-4, weight_decay=0.05),
    labeller_train=TrainSpec(steps=50_000, batch_size=128, lr=0.1, warmup_steps=1000, weight_decay=5e-4),
    num_levels=100,
    sample_steps=250,
    num_samples=50_000,
    low_samples=10_000,
    guidance_scale=3.5,
    sweep_scales=(0.0, 1.0, 2.0, 3.5, 5.0),
    sweep_samples=10_000,
    sample_batch=1000,
    train_img_per_s=1_271.0,
    sample_img_per_s=4_942.0,
    note="paper: the official LSUN recipe (papers.md §6.2-6.3) on CIFAR-10-LT; the repository has no CIFAR "
         "configuration and the paper's CIFAR settings were not found (§9). Never run here.",
)

PRESETS = {"smoke": _SMOKE, "book": _BOOK, "paper": _PAPER}
register(CHAPTER, PRESETS)
