"""Presets of chapter 07, "Minority guidance" (Um, Lee & Ye, ICLR 2024), chapter key ``minority_guidance``.

The chapter trains an unconditional ε-prediction model on CIFAR-10-LT, scores every training image with the
minority score (LPIPS between x_0 and the one-shot Tweedie reconstruction, averaged over noise draws at one
t), bins the scores into L ordinal levels, trains a noise-conditional classifier on the levels and samples
with its gradient as ``cond_fn``. A clean ResNet-18 trained on the balanced CIFAR-10 train set labels the
generated images (class histograms).

Costs (one H100, bf16; estimates from the assumed throughputs, see ``projected_gpu_seconds``):

* ``smoke``: the 0.19 M-parameter smoke UNet, T = 100, a 118-image long-tailed subset (n_max 30, imbalance
  0.1), a few optimiser steps everywhere, 4-8 samples per set, a 3-conv net as the labelling classifier.
  Every number is "smoke: not comparable"; it checks that every cell runs (about a minute on 2 CPU cores).
* ``book``: the 6.9 M-parameter ``book`` UNet, linear T = 1000, 8,000 steps at batch 128 on CIFAR-10-LT
  (1.0 M images, ~51 s at 20 k img/s); minority scores of all 12,406 LT images × 5 draws (~2 s); a 64-wide
  level classifier, 3,000 steps at batch 256 (~20 s); 100-step ancestral sampling of 2,000 unguided, 2,000
  top-level and 1,000 bottom-level samples plus a 4-point w sweep of 500 each (guided steps cost ~2.5 forward
  passes: ~25 s); a ResNet-18 labeller, 1,500 steps at batch 256 on the 50,000 balanced train images (~16 s);
  Inception features of ~19 k images (~5 s). About 2.5 minutes in all.
* ``paper``: the official LSUN-Bedrooms recipe, moved to CIFAR-10 where the repository has no configuration
  (papers.md §6): T = 1000 linear, minority score at t = 605 (index 60 of 100 respaced steps) with 5 draws,
  L = 100 levels, classifier trained 60 k steps at batch 256 (lr 3e-4, wd 0.05, attention pooling, width 128,
  depth 2), 250 respaced ancestral steps, w = 3.5, 50 k samples; the backbone is the improved-diffusion
  CIFAR-10 model trained 500 k steps. Projected ≈ 9 GPU-hours by the assumed throughputs; never run here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from lt_diffusion.experiments.common import H100_INCEPTION_IMG_PER_S, DiffusionSpec, TrainSpec
from lt_diffusion.models import ClassifierConfig, UNetConfig, get_model_config

from . import register

CHAPTER = "minority_guidance"


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
        train_img_per_s, sample_img_per_s, clf_img_per_s: throughputs behind the projection (H100 estimates).
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
    train_img_per_s: float = 20_000.0
    sample_img_per_s: float = 60_000.0
    clf_img_per_s: float = 25_000.0
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

    def projected_gpu_seconds(self) -> Dict[str, float]:
        """Projected H100 seconds (an estimate from the assumed throughputs, not a measurement).

        A guided step costs a UNet forward plus a classifier forward and backward: counted as 2.5 forwards.
        """
        train = self.train.images_seen / self.train_img_per_s
        score = self.lt_size * self.num_draws / self.sample_img_per_s
        clf = self.classifier_train.images_seen / (2 * self.train_img_per_s)
        unguided = self.num_samples * self.sample_steps / self.sample_img_per_s
        guided_n = self.num_samples + self.low_samples + len(self.sweep_scales) * self.sweep_samples
        sample = unguided + 2.5 * guided_n * self.sample_steps / self.sample_img_per_s
        labeller = self.labeller_train.images_seen / self.clf_img_per_s
        n_incep = (self.metric_real_images or self.lt_size) + 2 * self.num_samples + self.low_samples + len(self.sweep_scales) * self.sweep_samples
        fid = n_incep / H100_INCEPTION_IMG_PER_S
        total = train + score + clf + sample + labeller + fid
        return {"train_s": train, "score_s": score, "classifier_s": clf, "sample_s": sample,
                "labeller_s": labeller, "fid_s": fid, "total_s": total}


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
    train=TrainSpec(steps=8000, batch_size=128, lr=2e-4, warmup_steps=200, grad_clip=1.0, ema_rate=0.999),
    classifier=ClassifierConfig(num_classes=10, model_channels=64, num_res_blocks=2, channel_mult=(1, 2, 2),
                                attention_resolutions=(16, 8), num_head_channels=64, pool="attention"),
    classifier_train=TrainSpec(steps=3000, batch_size=256, lr=3e-4, weight_decay=0.05),
    labeller_train=TrainSpec(steps=1500, batch_size=256, lr=0.1, warmup_steps=100, weight_decay=5e-4),
    num_levels=10,
    num_samples=2000,
    low_samples=1000,
    sweep_scales=(0.0, 1.0, 3.5, 7.0),
    sweep_samples=500,
    note="book: a minutes-scale backbone (FID far above any paper's). The minority score is only as good as the "
         "backbone's posterior mean, so the levels are noisier than the paper's; L = 10 instead of 100.",
)

_PAPER = MinorityPreset(
    scale="paper",
    model=get_model_config("iddpm_cifar10", learn_sigma=False),
    diffusion=DiffusionSpec(steps=1000, noise_schedule="linear", objective="simple"),
    train=TrainSpec(steps=500_000, batch_size=128, lr=1e-4, ema_rate=0.9999, compile=True),
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
    train_img_per_s=3_000.0,
    sample_img_per_s=9_000.0,
    note="paper: the official LSUN recipe (papers.md §6.2-6.3) on CIFAR-10-LT; the repository has no CIFAR "
         "configuration and the paper's CIFAR settings were not found (§9). Never run here.",
)

PRESETS = {"smoke": _SMOKE, "book": _BOOK, "paper": _PAPER}
register(CHAPTER, PRESETS)
