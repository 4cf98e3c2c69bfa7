"""Chapter 08, Diffusion Inversion (Zhou, Sahak & Ba 2023), chapter key ``diffusion_inversion``: a class-table
generator pretrained on CIFAR-10, one learned conditioning vector per scarce image, samples from perturbed and
interpolated vectors with classifier-free guidance, and ResNet-18 classifiers trained on real, generated and mixed
data; then the same on CIFAR-10-LT with a generator pretrained on the long-tailed images only.

``book`` pretrains two generators for 600 steps of batch 512, inverts 100 steps per image and trains 100-120-step
classifiers (about 7 minutes on one H100). ``paper`` is the official recipe on our pixel-space generator (Stable
Diffusion is not available), not run for this edition.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from lt_diffusion.experiments.specs import Arm, ChapterPreset, DataSpec, DiffusionSpec, EvalSpec
from lt_diffusion.models import UNetConfig, get_model_config
from lt_diffusion.train import TrainConfig


@dataclass(frozen=True, kw_only=True)
class InversionPreset(ChapterPreset):
    """Chapter 08. Arms: ``generator`` (balanced CIFAR-10), ``generator_lt`` (CIFAR-10-LT only), and the ResNet-18
    recipes ``classifier`` / ``classifier_noaug`` (scarce-data runs) and ``classifier_lt`` / ``classifier_lt_noaug``
    (long-tail runs), trained on real, generated or mixed images that the chapter assembles.

    Attributes:
        scarce_images: balanced real images of the scarce-data experiment (and the images inverted there).
        real_sizes: real-only sets of the sample-complexity curve (the first is the scarce set).
        invert_steps, invert_group, invert_lr, invert_wd, invert_init: stage 1 (AdamW, constant lr; official 3e-2,
            1e-2; ``"class"`` starts from the class vector, ``"mean"`` is label-free).
        eta, guidance_g: stage 2, DDIM η and CFG in the "g" convention (official 1.0 / 2.0).
        interp_strength, emb_noise: s and λ of the variation conditions (official 0.1 / 0.1).
        lambda_grid, alpha_grid: the perturbation and interpolation figures (``lambda_grid`` starts at 0).
        gen_sizes: generated-set sizes of the accuracy curve. balance_to: long-tail classes are generated up to this.
        test_images: balanced test images of every accuracy. grid_per_class: images per class in the class grid.
        n_rec, t_eval_points: images and timesteps of the reconstruction / fixed-noise denoising-loss comparison.
    """

    scarce_images: int = 1000
    real_sizes: Tuple[int, ...] = (1000, 2000, 4000)
    invert_steps: int = 300
    invert_group: int = 512
    invert_lr: float = 3e-2
    invert_wd: float = 1e-2
    invert_init: str = "class"
    eta: float = 1.0
    guidance_g: float = 2.0
    interp_strength: float = 0.1
    emb_noise: float = 0.1
    lambda_grid: Tuple[float, ...] = (0.0, 0.1, 0.3, 0.6, 1.0)
    alpha_grid: Tuple[float, ...] = (1.0, 0.75, 0.5, 0.25, 0.0)
    gen_sizes: Tuple[int, ...] = (1000, 5000)
    balance_to: int = 1000
    test_images: int = 10_000
    grid_per_class: int = 6
    n_rec: int = 200
    t_eval_points: int = 10

    def __post_init__(self):
        super().__post_init__()
        if self.invert_init not in ("class", "mean"):
            raise ValueError(f"invert_init must be 'class' or 'mean', got {self.invert_init!r}")
        if not self.real_sizes or self.real_sizes[0] != self.scarce_images or any(n % 10 for n in self.real_sizes):
            raise ValueError(f"real_sizes must be multiples of 10 starting at scarce_images={self.scarce_images}, "
                             f"got {self.real_sizes}")
        if not self.lambda_grid or self.lambda_grid[0] != 0.0:
            raise ValueError(f"lambda_grid must start at 0 (the unperturbed vector), got {self.lambda_grid}")


def _arms(model: UNetConfig, diffusion: DiffusionSpec, pretrain: TrainConfig, data: DataSpec, lt: DataSpec,
          classifier: str, scarce: TrainConfig, long_tail: TrainConfig, scarce_images: int):
    """Two generators (CFG label dropout 0.1 to the table's null row) and the classifier recipes with and without
    random crop + flip (the SGD / cosine recipe of the official ``train_net.py``)."""
    from dataclasses import replace

    gen = dict(kind="generator", model=model, train=pretrain, diffusion=diffusion)
    scarce_data = DataSpec(num_images=scarce_images, from_arm="generator")
    lt_data = DataSpec(imb_factor=lt.imb_factor, n_max=lt.n_max, from_arm="generator_lt")
    return {"generator": Arm(data=data, **gen), "generator_lt": Arm(data=lt, **gen),
            "classifier": Arm("classifier", classifier, scarce, scarce_data, random_crop=True),
            "classifier_noaug": Arm("classifier", classifier, replace(scarce, random_flip=False), scarce_data),
            "classifier_lt": Arm("classifier", classifier, long_tail, lt_data, random_crop=True),
            "classifier_lt_noaug": Arm("classifier", classifier, replace(long_tail, random_flip=False), lt_data)}


def _sgd(steps: int, batch_size: int, lr: float, warmup_steps: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps, weight_decay=5e-4,
                       optimizer="sgd", momentum=0.9, lr_schedule="cosine", lr_floor=1e-3, num_classes=10,
                       log_every=50, data_range=None)


SMOKE = InversionPreset(
    scale="smoke", comparable=False,
    arms=_arms(get_model_config("smoke", cond_dim=16), DiffusionSpec(steps=100),
               TrainConfig(steps=6, batch_size=8, lr=1e-3, grad_clip=1.0, ema_rate=0.5, ema_warmup=True, amp=False,
                           p_uncond=0.1, num_classes=10, log_every=1),
               DataSpec(num_images=200), DataSpec(imb_factor=0.1, n_max=30), "tiny_cnn",
               _sgd(3, 16, 0.05, 1), _sgd(3, 16, 0.05, 1), scarce_images=20),
    eval=EvalSpec(num_samples=20, sample_steps=3, batch_size=20),
    scarce_images=20, real_sizes=(20, 40), invert_steps=3, invert_group=32, lambda_grid=(0.0, 1.0),
    alpha_grid=(1.0, 0.5, 0.0), gen_sizes=(10, 20), balance_to=12, test_images=100,
    note="smoke: a CI check that every cell runs; every number is 'smoke: not comparable'.",
)

BOOK = InversionPreset(
    scale="book",
    # lr 6e-4 at batch 512 (≈ 2e-4 at 128 scaled by the batch ratio, DDPM's CIFAR rate); EMA over ~100 steps
    arms=_arms(get_model_config("book", cond_dim=64, dropout=0.1), DiffusionSpec(steps=1000),
               TrainConfig(steps=600, batch_size=512, lr=6e-4, warmup_steps=50, grad_clip=1.0, ema_rate=0.99,
                           ema_warmup=True, p_uncond=0.1, num_classes=10, log_every=12),
               DataSpec(), DataSpec(imb_factor=0.01), "resnet18",
               _sgd(100, 512, 0.2, 10), _sgd(120, 512, 0.2, 10), scarce_images=1000),
    # the generated set, the figures' reconstructions and 2 × 8,594 long-tail samples of 50 DDIM steps with CFG
    eval=EvalSpec(num_samples=2000, sample_steps=50, batch_size=1000, sample_sets=11, forwards=2),
    invert_steps=100, gen_sizes=(500, 1000, 2000),
    note="book: two generators trained for about a minute each (far weaker than Stable Diffusion), 100 inversion "
         "steps per image (official: ~4,000 image-steps), classifiers trained for 100-120 steps (official: 50 k "
         "steps); the LT tail is filled up to 1,000 images per class (imbalance 100 -> 5), not to 5,000.",
)

PAPER = InversionPreset(
    scale="paper",
    arms=_arms(get_model_config("iddpm_cifar10", learn_sigma=False, cond_dim=768), DiffusionSpec(steps=1000),
               TrainConfig(steps=500_000, batch_size=128, lr=1e-4, grad_clip=1.0, ema_rate=0.9999, compile=True,
                           p_uncond=0.1, num_classes=10, log_every=10_000),
               DataSpec(), DataSpec(imb_factor=0.01), "resnet18",
               _sgd(50_000, 128, 0.1, 1000), _sgd(50_000, 128, 0.1, 1000), scarce_images=50_000),
    eval=EvalSpec(num_samples=500_000, sample_steps=100, batch_size=1000, sample_sets=2, forwards=2),
    scarce_images=50_000, real_sizes=(50_000,), invert_steps=4000, invert_group=100, invert_init="mean",
    gen_sizes=(50_000, 100_000, 500_000), balance_to=5000,
    note="paper: the official recipe on our pixel-space generator; Stable Diffusion itself is not available. The "
         "official run inverts with batch 50 of 100 images per group. Not run for this edition.",
)

PRESETS = {"smoke": SMOKE, "book": BOOK, "paper": PAPER}
