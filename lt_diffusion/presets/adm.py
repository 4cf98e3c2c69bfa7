"""Chapter 03, ADM (Dhariwal & Nichol 2021): the architecture ablation at equal steps and equal wall time, then
classifier guidance with a noisy classifier on one class-conditional UNet trained with label dropout (so that the
null label makes it unconditional too).

``book`` trains all eight ablation variants to 120 steps and 10 s of batch 512, a 450-step conditional UNet and a
300-step classifier, and sweeps the classifier scale (about 7 minutes on one H100; such short budgets favour the
small and cheap variants). ``paper`` is ADM's smallest official setting at CIFAR-10 size (ADM has no CIFAR-10
model), not run for this edition.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from lt_diffusion.experiments.specs import Arm, ChapterPreset, DataSpec, DiffusionSpec, EvalSpec
from lt_diffusion.models import (ABLATION_VARIANTS, ClassifierConfig, UNetConfig, ablation_configs,
                                 get_model_config)
from lt_diffusion.train import TrainConfig


@dataclass(frozen=True, kw_only=True)
class ADMPreset(ChapterPreset):
    """Chapter 03. Arms: ``ablation_<variant>`` (unconditional; ``train.steps`` is a cap, ``train.log_every`` the
    chunk between snapshots), ``guided`` (class-conditional, ``train.p_uncond`` label dropout) and ``classifier``.

    Attributes:
        ablation_variants: the variants trained (``ablation_<name>`` arms).
        ablation_steps, ablation_seconds: the equal-steps and equal-time marks of the ablation.
        ablation_eval: samples and DDIM steps of the ablation's FIDs.
        classifier_eval_images, classifier_eval_timesteps: the accuracy-vs-t curve on CIFAR-10 test images.
        guidance_scales_uncond, guidance_scales_cond: classifier scales swept (DDIM) on each model.
        ancestral_steps, ancestral_scales: the ancestral form of guidance, on the unconditional model.
        grid_class, grid_scales: the class and scales of the sample grids.
    """

    ablation_variants: Tuple[str, ...]
    ablation_steps: int
    ablation_seconds: float
    ablation_eval: EvalSpec
    classifier_eval_images: int
    classifier_eval_timesteps: int
    guidance_scales_uncond: Tuple[float, ...]
    guidance_scales_cond: Tuple[float, ...]
    ancestral_steps: int
    ancestral_scales: Tuple[float, ...]
    grid_class: int = 0
    grid_scales: Tuple[float, ...] = (0.0, 1.0, 4.0)


def _arms(base: UNetConfig, head_channels: int, variants, ablation: TrainConfig, model: UNetConfig,
          train: TrainConfig, classifier: ClassifierConfig, classifier_train: TrainConfig, data: DataSpec,
          diffusion: DiffusionSpec):
    arms = {f"ablation_{name}": Arm("denoiser", cfg, ablation, data, diffusion)
            for name, cfg in ablation_configs(base, head_channels, variants).items()}
    arms["guided"] = Arm("denoiser", model, train, data, diffusion)
    arms["classifier"] = Arm("noisy_classifier", classifier, classifier_train, data, diffusion)
    return arms


_SMOKE_DIFFUSION = DiffusionSpec(steps=100, noise_schedule="cosine")
SMOKE = ADMPreset(
    scale="smoke", comparable=False,
    arms=_arms(get_model_config("smoke", num_heads=1, dropout=0.0), 16, ("baseline", "add_emb"),
               TrainConfig(steps=3, batch_size=8, lr=1e-3, grad_clip=1.0, ema_rate=0.5, ema_warmup=True, amp=False,
                           log_every=1),
               get_model_config("smoke", num_classes=10, num_heads=1),
               TrainConfig(steps=4, batch_size=8, lr=1e-3, grad_clip=1.0, ema_rate=0.5, ema_warmup=True, amp=False,
                           log_every=1, p_uncond=0.1),
               ClassifierConfig(num_classes=10, model_channels=16, num_res_blocks=1, channel_mult=(1, 2),
                                attention_resolutions=(16,), num_head_channels=16),
               TrainConfig(steps=4, batch_size=16, lr=1e-3, amp=False, log_every=1),
               DataSpec(num_images=256), _SMOKE_DIFFUSION),
    ablation_variants=("baseline", "add_emb"), ablation_steps=2, ablation_seconds=0.5,
    ablation_eval=EvalSpec(num_samples=6, sample_steps=5, batch_size=6, fid_reference_images=32),
    eval=EvalSpec(num_samples=8, sample_steps=5, batch_size=8, fid_reference_images=32, pr_reference_images=32,
                  grid=6),
    classifier_eval_images=32, classifier_eval_timesteps=3, guidance_scales_uncond=(0.0, 4.0),
    guidance_scales_cond=(0.0, 4.0), ancestral_steps=10, ancestral_scales=(4.0,), grid_scales=(0.0, 4.0),
    note="smoke: a CI check that every cell runs; every number is 'smoke: not comparable'.",
)

_BOOK_DIFFUSION = DiffusionSpec(steps=1000, noise_schedule="cosine")
BOOK = ADMPreset(
    scale="book",
    arms=_arms(get_model_config("book", num_heads=1, dropout=0.0), 64, ABLATION_VARIANTS,
               TrainConfig(steps=200, batch_size=512, lr=3e-4, warmup_steps=12, grad_clip=1.0, ema_rate=0.95,
                           ema_warmup=True, log_every=5),
               get_model_config("book", num_classes=10, dropout=0.0),
               TrainConfig(steps=450, batch_size=512, lr=5e-4, warmup_steps=50, grad_clip=1.0, ema_rate=0.99,
                           ema_warmup=True, log_every=1, p_uncond=0.1),
               ClassifierConfig(num_classes=10, model_channels=64, num_res_blocks=2, channel_mult=(1, 2, 2),
                                attention_resolutions=(16, 8), num_head_channels=64),
               TrainConfig(steps=300, batch_size=512, lr=4.5e-4, weight_decay=0.05, log_every=6),
               DataSpec(), _BOOK_DIFFUSION),
    ablation_variants=ABLATION_VARIANTS, ablation_steps=120, ablation_seconds=10.0,
    ablation_eval=EvalSpec(num_samples=1000, sample_steps=30, batch_size=1000),
    # 7 guided sets of 2,000 at 50 steps and the ablation's 16 sets of 1,000 at 30 steps ≈ 12 sets' passes
    eval=EvalSpec(num_samples=2000, sample_steps=50, batch_size=1000, pr_reference_images=2000, sample_sets=12),
    classifier_eval_images=2000, classifier_eval_timesteps=11, guidance_scales_uncond=(0.0, 2.0, 8.0),
    guidance_scales_cond=(0.0, 2.0), ancestral_steps=50, ancestral_scales=(0.0, 2.0), grid_scales=(0.0, 4.0, 10.0),
    note="book: seconds of training per model (the paper: days on many GPUs). FID is far above any paper's; "
         "the ablation ranks all 8 variants under a tiny budget, which favours small and cheap models.",
)

_PAPER_DIFFUSION = DiffusionSpec(steps=1000, noise_schedule="cosine", learn_sigma=True, loss="hybrid",
                                 rescale_timesteps=False)
PAPER = ADMPreset(
    scale="paper",
    arms=_arms(get_model_config("iddpm_cifar10", num_heads=1, dropout=0.1, num_res_blocks=2), 64, ABLATION_VARIANTS,
               TrainConfig(steps=300_000, batch_size=128, lr=1e-4, grad_clip=1.0, ema_rate=0.9999, compile=True,
                           log_every=10_000),
               UNetConfig(model_channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=3,
                          attention_resolutions=(32, 16, 8), num_head_channels=64, resblock_updown=True,
                          use_scale_shift_norm=True, dropout=0.1, learn_sigma=True, num_classes=10),
               TrainConfig(steps=500_000, batch_size=128, lr=1e-4, grad_clip=1.0, ema_rate=0.9999, compile=True,
                           log_every=1000),
               ClassifierConfig(num_classes=10, model_channels=128, num_res_blocks=2),
               TrainConfig(steps=150_000, batch_size=256, lr=3e-4, weight_decay=0.05, log_every=3000),
               DataSpec(), _PAPER_DIFFUSION),
    ablation_variants=ABLATION_VARIANTS, ablation_steps=250_000, ablation_seconds=6 * 3600.0,
    ablation_eval=EvalSpec(num_samples=10_000, sample_steps=250, batch_size=1000),
    eval=EvalSpec(num_samples=50_000, sample_steps=250, batch_size=1000, pr_reference_images=50_000, sample_sets=16),
    classifier_eval_images=10_000, classifier_eval_timesteps=21,
    guidance_scales_uncond=(0.0, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0), guidance_scales_cond=(0.0, 0.5, 1.0, 2.0, 4.0),
    ancestral_steps=250, ancestral_scales=(0.0, 1.0, 4.0, 10.0), grid_scales=(0.0, 1.0, 4.0, 10.0),
    note="paper: ADM's ImageNet-64 recipe (guided-diffusion flags) at CIFAR-10 size; ADM reports no CIFAR-10 "
         "number. The guided model has no label dropout: ADM trains a separate unconditional model (the "
         "ablation's 'adm' arm). Not run for this edition.",
)

PRESETS = {"smoke": SMOKE, "book": BOOK, "paper": PAPER}
