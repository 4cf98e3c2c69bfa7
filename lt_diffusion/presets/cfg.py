"""Chapter 04, classifier-free guidance (Ho & Salimans 2022): a 2-D toy with exact scores, then class-conditional
UNets trained with label dropout (one per p_uncond), a sweep of the guidance strength w, and classifier guidance
(chapter 03's noisy classifier) on the same model.

``book`` trains two 350-step conditional UNets of batch 512 and a 300-step classifier, and draws 13 sets of 2,000
DDIM-50 samples (about 6.5 minutes on one H100). ``paper`` is what the study would cost at CIFAR-10 size with the
ADM-style CIFAR-10 UNet (the paper reports ImageNet only; its p_uncond / w grid is our choice), not run for this edition.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Tuple

from lt_diffusion.experiments.specs import Arm, ChapterPreset, DataSpec, DiffusionSpec, EvalSpec
from lt_diffusion.models import ClassifierConfig, UNetConfig, get_model_config
from lt_diffusion.train import TrainConfig


@dataclass(frozen=True)
class ToySpec:
    """The 2-D toy (CPU): three isotropic classes on a triangle of ``radius`` with ``std``; T = ``steps`` (cosine),
    DDIM-``sample_steps``; strengths ``ws``; ``samples_per_class`` per class and w; the MLP denoiser (``mlp_hidden``,
    ``mlp_depth``) trained ``mlp_steps`` of ``mlp_batch`` at ``mlp_lr`` with label dropout ``p_uncond``."""

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


@dataclass(frozen=True, kw_only=True)
class CFGPreset(ChapterPreset):
    """Chapter 04. Arms: ``p_uncond_<p>`` (class-conditional UNets, label dropout ``train.p_uncond``; the first is the
    base of every comparison) and ``classifier`` (the noisy classifier).

    Attributes:
        toy: the 2-D experiment. ws: CFG strengths swept (w convention; w = 0 is the conditional model).
        classifier_scales: classifier-guidance scales s on the first model.
        samples_per_class_grid, grid_w: the per-class grid. cost_batch, cost_steps: the timed sampling call.
    """

    toy: ToySpec = field(default_factory=ToySpec)
    ws: Tuple[float, ...]
    classifier_scales: Tuple[float, ...]
    samples_per_class_grid: int = 8
    grid_w: float = 2.0
    cost_batch: int = 250
    cost_steps: int = 10

    def __post_init__(self):
        super().__post_init__()
        if 0.0 not in self.ws:
            raise ValueError("the w sweep must include w = 0 (the plain conditional model)")


SMOKE = CFGPreset(
    scale="smoke", comparable=False,
    toy=ToySpec(steps=100, sample_steps=10, ws=(0.0, 3.0), samples_per_class=100, mlp_hidden=32, mlp_depth=2,
                mlp_steps=40, mlp_batch=128),
    arms={f"p_uncond_{p}": Arm("denoiser", get_model_config("smoke", num_classes=10, num_heads=1),
                               TrainConfig(steps=4, batch_size=8, lr=1e-3, grad_clip=1.0, ema_rate=0.5,
                                           ema_warmup=True, amp=False, log_every=1, p_uncond=p),
                               DataSpec(num_images=256), DiffusionSpec(steps=100, noise_schedule="cosine"))
          for p in (0.1, 0.2)}
    | {"classifier": Arm("noisy_classifier",
                         ClassifierConfig(num_classes=10, model_channels=16, num_res_blocks=1, channel_mult=(1, 2),
                                          attention_resolutions=(16,), num_head_channels=16),
                         TrainConfig(steps=4, batch_size=16, lr=1e-3, amp=False, log_every=10),
                         DataSpec(num_images=256), DiffusionSpec(steps=100, noise_schedule="cosine"))},
    eval=EvalSpec(num_samples=8, sample_steps=5, batch_size=8, fid_reference_images=32, pr_reference_images=32),
    ws=(0.0, 2.0), classifier_scales=(0.0, 4.0), samples_per_class_grid=2, cost_batch=8, cost_steps=5,
    note="smoke: a CI check that every cell runs; every number is 'smoke: not comparable'.",
)

BOOK = CFGPreset(
    scale="book",
    arms={f"p_uncond_{p}": Arm("denoiser", get_model_config("book", num_classes=10, dropout=0.0),
                               TrainConfig(steps=350, batch_size=512, lr=5e-4, warmup_steps=35, grad_clip=1.0,
                                           ema_rate=0.985, ema_warmup=True, log_every=1, p_uncond=p),
                               DataSpec(), DiffusionSpec(steps=1000, noise_schedule="cosine"))
          for p in (0.1, 0.2)}
    | {"classifier": Arm("noisy_classifier",
                         ClassifierConfig(num_classes=10, model_channels=64, num_res_blocks=2, channel_mult=(1, 2, 2),
                                          attention_resolutions=(16, 8), num_head_channels=64),
                         TrainConfig(steps=300, batch_size=512, lr=4.5e-4, weight_decay=0.05, log_every=10),
                         DataSpec(), DiffusionSpec(steps=1000, noise_schedule="cosine"))},
    eval=EvalSpec(num_samples=2000, sample_steps=50, batch_size=1000, pr_reference_images=2000, sample_sets=13,
                  forwards=2),
    ws=(0.0, 0.5, 1.0, 2.0, 4.0), classifier_scales=(0.0, 1.0, 3.0, 8.0),
    note="book: seconds of training per model; FID is far above any paper's and only the trends in w are "
         "meaningful. FID and precision/recall use 2,000 samples (FID is biased upwards at this size).",
)

_PAPER_DIFFUSION = DiffusionSpec(steps=1000, noise_schedule="cosine", learn_sigma=True, loss="hybrid",
                                 rescale_timesteps=False)
PAPER = CFGPreset(
    scale="paper",
    toy=ToySpec(samples_per_class=5000, mlp_steps=20_000),
    arms={f"p_uncond_{p}": Arm("denoiser",
                               UNetConfig(model_channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=3,
                                          attention_resolutions=(16, 8), num_head_channels=32, resblock_updown=True,
                                          use_scale_shift_norm=True, dropout=0.3, learn_sigma=True, num_classes=10),
                               TrainConfig(steps=500_000, batch_size=128, lr=1e-4, grad_clip=1.0, ema_rate=0.9999,
                                           compile=True, log_every=1000, p_uncond=p),
                               DataSpec(), _PAPER_DIFFUSION)
          for p in (0.1, 0.2, 0.5)}
    | {"classifier": Arm("noisy_classifier", ClassifierConfig(num_classes=10, model_channels=128, num_res_blocks=2),
                         TrainConfig(steps=150_000, batch_size=256, lr=3e-4, weight_decay=0.05, log_every=1000),
                         DataSpec(), _PAPER_DIFFUSION)},
    eval=EvalSpec(num_samples=50_000, sample_steps=250, batch_size=1000, pr_reference_images=50_000,
                  sample_sets=35, forwards=2),
    ws=(0.0, 0.1, 0.2, 0.3, 0.5, 0.8, 1.0, 2.0, 3.0, 4.0), classifier_scales=(0.0, 0.5, 1.0, 2.0, 4.0, 8.0),
    note="paper: the ADM-style CIFAR-10 UNet of the DDPM-IP repository (third-party), trained jointly with the "
         "null label. Ho & Salimans report ImageNet only; p_uncond and the w grid are our choice. Not run for this edition.",
)

PRESETS = {"smoke": SMOKE, "book": BOOK, "paper": PAPER}
