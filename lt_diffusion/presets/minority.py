"""Chapter 07, minority guidance (Um, Lee & Ye 2024), chapter key ``minority_guidance``: an unconditional model of
CIFAR-10-LT, the minority score of every training image (LPIPS between x_0 and its one-shot Tweedie
reconstruction at t*), L ordinal levels, a noisy level classifier, and sampling with its gradient as ``cond_fn``.
A clean classifier trained on the balanced train set labels the generated images.

``book`` trains the 6.9 M ``book`` UNet for 1,200 steps of batch 512 on CIFAR-10-LT, a 400-step level classifier
and a 400-step ResNet-18 labeller (about 4 minutes on one H100). ``paper`` is the official LSUN recipe moved to
CIFAR-10-LT (t* = 605 of 1000, 5 draws, L = 100, w = 3.5, 250 steps), not run for this edition.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from lt_diffusion.experiments.specs import Arm, ChapterPreset, DataSpec, DiffusionSpec, EvalSpec
from lt_diffusion.models import ClassifierConfig, get_model_config
from lt_diffusion.train import TrainConfig


@dataclass(frozen=True, kw_only=True)
class MinorityPreset(ChapterPreset):
    """Chapter 07. Arms: ``backbone`` (the unconditional denoiser on the long-tailed set), ``level_classifier``
    (noisy, on the minority levels the chapter computes from ``backbone``: ``num_levels`` classes) and ``labeller``
    (a clean classifier on balanced CIFAR-10 train).

    Attributes:
        perturb_t: t* of the minority score (official: 605 of 1000, i.e. 0.605 T). num_draws: noise draws per image.
        score_batch: images per minority-score batch. num_levels: L (official 100; fewer on 12,406 images).
        classifier_eval_timesteps: points of the level classifier's accuracy-vs-t curve.
        low_samples: samples guided to level 0. guidance_scale: w of the main guided set (official 3.5).
        sweep_scales, sweep_samples: the w sweep towards the top level. test_images: the labeller's test images.
        show_images: images in the top / bottom figures. metric_real_images: real LT images (evenly spaced) behind
            FID / precision / recall / rarity (None: all).
    """

    perturb_t: int
    num_draws: int = 5
    score_batch: int = 1000
    num_levels: int = 10
    classifier_eval_timesteps: int = 11
    low_samples: int = 1000
    guidance_scale: float = 3.5
    sweep_scales: Tuple[float, ...] = (0.0, 1.0, 3.5, 7.0)
    sweep_samples: int = 500
    test_images: int = 10_000
    show_images: int = 12
    metric_real_images: Optional[int] = None

    def __post_init__(self):
        super().__post_init__()
        if self.arm("level_classifier").model.num_classes != self.num_levels:
            raise ValueError(f"the level classifier needs num_classes = num_levels = {self.num_levels}")
        if self.arm("backbone").model.num_classes is not None:
            raise ValueError("minority guidance steers an unconditional model: the backbone's num_classes must be None")


SMOKE = MinorityPreset(
    scale="smoke", comparable=False,
    arms={"backbone": Arm("denoiser", get_model_config("smoke"),
                          TrainConfig(steps=8, batch_size=16, lr=1e-3, grad_clip=1.0, ema_rate=0.5, ema_warmup=True,
                                      amp=False, log_every=1),
                          DataSpec(imb_factor=0.1, n_max=30), DiffusionSpec(steps=100)),
          "level_classifier": Arm("noisy_classifier",
                                  ClassifierConfig(num_classes=4, model_channels=16, num_res_blocks=1,
                                                   channel_mult=(1, 2), attention_resolutions=(16,),
                                                   num_head_channels=16),
                                  TrainConfig(steps=6, batch_size=16, lr=1e-3, lr_schedule="linear",
                                              log_every=1),
                                  DataSpec(imb_factor=0.1, n_max=30, from_arm="backbone"), DiffusionSpec(steps=100)),
          "labeller": Arm("classifier", "tiny_cnn",
                          TrainConfig(steps=6, batch_size=32, lr=0.05, warmup_steps=1, optimizer="sgd",
                                      lr_schedule="cosine", num_classes=10, log_every=50, data_range=None),
                          DataSpec(num_images=200), random_crop=True)},
    eval=EvalSpec(num_samples=8, sample_steps=4, batch_size=500),
    perturb_t=60, num_draws=2, score_batch=120, num_levels=4, classifier_eval_timesteps=3, low_samples=4,
    sweep_scales=(0.0, 7.0), sweep_samples=4, test_images=100, show_images=6, metric_real_images=24,
    note="smoke: a CI check that every cell runs; every number is 'smoke: not comparable'.",
)

BOOK = MinorityPreset(
    scale="book",
    arms={"backbone": Arm("denoiser", get_model_config("book", dropout=0.1),
                          TrainConfig(steps=1200, batch_size=512, lr=3e-4, warmup_steps=50, grad_clip=1.0,
                                      ema_rate=0.995, ema_warmup=True, log_every=24),
                          DataSpec(imb_factor=0.01), DiffusionSpec(steps=1000)),
          "level_classifier": Arm("noisy_classifier",
                                  ClassifierConfig(num_classes=10, model_channels=64, num_res_blocks=2,
                                                   channel_mult=(1, 2, 2), attention_resolutions=(16, 8),
                                                   num_head_channels=64),
                                  TrainConfig(steps=400, batch_size=256, lr=3e-4, weight_decay=0.05,
                                              lr_schedule="linear", log_every=20),
                                  DataSpec(imb_factor=0.01, from_arm="backbone"), DiffusionSpec(steps=1000)),
          "labeller": Arm("classifier", "resnet18",
                          TrainConfig(steps=400, batch_size=512, lr=0.2, warmup_steps=40, weight_decay=5e-4,
                                      optimizer="sgd", lr_schedule="cosine", num_classes=10, log_every=50, data_range=None),
                          DataSpec(), random_crop=True)},
    # 2,000 unguided, 2,000 top-level, 1,000 bottom-level and 4 × 1,000 sweep samples of 50 steps
    eval=EvalSpec(num_samples=2000, sample_steps=50, batch_size=1000, sample_sets=5),
    perturb_t=605, sweep_samples=1000,
    note="book: a minutes-scale backbone (FID far above any paper's). The minority score is only as good as the "
         "backbone's posterior mean, so the levels are noisier than the paper's; L = 10 instead of 100.",
)

PAPER = MinorityPreset(
    scale="paper",
    arms={"backbone": Arm("denoiser", get_model_config("iddpm_cifar10", learn_sigma=False),
                          TrainConfig(steps=500_000, batch_size=128, lr=1e-4, grad_clip=1.0, ema_rate=0.9999,
                                      compile=True, log_every=10_000),
                          DataSpec(imb_factor=0.01), DiffusionSpec(steps=1000)),
          "level_classifier": Arm("noisy_classifier",
                                  ClassifierConfig(num_classes=100, model_channels=128, num_res_blocks=2,
                                                   attention_resolutions=(8,), resblock_updown=False),
                                  TrainConfig(steps=60_000, batch_size=256, lr=3e-4, weight_decay=0.05,
                                              lr_schedule="linear", log_every=3000),
                                  DataSpec(imb_factor=0.01, from_arm="backbone"), DiffusionSpec(steps=1000)),
          "labeller": Arm("classifier", "resnet18",
                          TrainConfig(steps=50_000, batch_size=128, lr=0.1, warmup_steps=1000, weight_decay=5e-4,
                                      optimizer="sgd", lr_schedule="cosine", num_classes=10, log_every=50, data_range=None),
                          DataSpec(), random_crop=True)},
    eval=EvalSpec(num_samples=50_000, sample_steps=250, batch_size=1000, sample_sets=3),
    perturb_t=605, num_levels=100, low_samples=10_000, sweep_scales=(0.0, 1.0, 2.0, 3.5, 5.0), sweep_samples=10_000,
    note="paper: the official LSUN recipe on CIFAR-10-LT; the repository has no CIFAR configuration. Not run for this edition.",
)

PRESETS = {"smoke": SMOKE, "book": BOOK, "paper": PAPER}
