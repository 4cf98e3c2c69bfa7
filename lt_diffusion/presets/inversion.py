"""Presets of chapter 08, "Diffusion Inversion" (Zhou, Sahak & Ba 2023), chapter key ``diffusion_inversion``.

Stable Diffusion is not available offline, so the chapter pretrains its own pixel-space generator: the engine's
UNet conditioned on a continuous vector, fed by a learned per-class table during pretraining (CFG dropout to a
null row). Two generators are trained: one on the whole CIFAR-10 train set (the "foundation model" of the
scarce-data experiment) and one on CIFAR-10-LT only (so that no image outside the LT set reaches the
long-tail classifier through the generator). Then: per-image vectors are learned with the generator frozen,
new images are sampled from perturbed / interpolated vectors with mean-vector CFG, and ResNet-18 classifiers are
trained on real, generated and mixed data.

Costs: a projection from step times **measured** on the lent H100 (2026-11-22, torch 2.11, bf16 eager; DESIGN.md,
``benchmarks/results/h100_*.json``), see ``projected_gpu_seconds``. Small 32×32 UNets are bound by kernel
launches there, so the cost is counted in steps with a throughput ceiling: a pretraining step of the 6.95 M
``book`` UNet through the Trainer moves 4,600 img/s at batch 512 (111 ms per step; 01_ddpm's measured run), an
inversion step (forward and backward through the frozen UNet) is counted as a bare training step (6,700 img/s),
a denoiser step of a sampling batch of ≤ 1,000 costs ~75 ms (DDIM-50: 38 s per 10 k samples; a CFG step runs
the doubled batch), a ResNet-18 step at batch 512 ~60 ms (assumed), start-up ~20 s (assumed).

* ``smoke``: smoke UNet (cond_dim 16), T = 100, a few steps everywhere, a 3-conv net instead of ResNet-18,
  10-40 images per set. Every number is "smoke: not comparable" (under a minute on 2 CPU cores).
* ``book``: two 6.9 M-parameter generators, 600 steps of batch 512 each (≈ 134 s); inversion of 1,000
  scarce-data images and of the 1,536 LT images of the classes below 1,000 images, 100 steps in groups of 512
  (≈ 38 s); DDIM-50 (η = 1) sampling with CFG of the figures' 12 calls (≈ 45 s, each at the launch-bound
  floor), of 2,000 scarce-data images (≈ 15 s) and of 2 × 4,464 LT images (≈ 68 s); sixteen ResNet-18 runs at
  batch 512 (eleven of 100 steps, five of 120 steps) and their test evaluations (≈ 110 s). ≈ 433 s (7.2 min)
  projected with start-up, in one papermill run that fits one 10-minute device call with ~2 minutes to spare,
  so the chapter is not split.
* ``paper``: the official recipe (papers.md §7): inversion with AdamW lr 3e-2 (constant, no warm-up),
  8,000 steps per group of 100 images at batch 50, i.e. 4,000 image-steps per image (here: 4,000 steps over
  the whole group of 100, the same count), 5 tokens × 768 (here one 768-d vector), DDIM 100 steps η = 1,
  guidance g = 2, interpolation strength 0.1, noise 0.1; ResNet-18 with SGD momentum 0.9, wd 5e-4, 1,000
  warm-up steps, cosine over 50 k steps at batch 128. On our pixel-space model the inversion of all 50,000
  CIFAR-10 images alone is 2 × 10⁸ image-steps (≈ 44 h at the measured eager 1,271 img/s training
  throughput of the 52.5 M ``iddpm_cifar10`` UNet; sampling at its measured 4,942 img/s); the LT set is
  balanced fully (every class to 5,000); projected ≈ 94 GPU-hours with both generators, sampling and
  classifiers; never run here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from lt_diffusion.experiments.common import DiffusionSpec, TrainSpec
from lt_diffusion.experiments.common import H100_BOOK_SAMPLE_IMG_PER_S, H100_BOOK_TRAIN_IMG_PER_S
from lt_diffusion.models import UNetConfig, get_model_config

from . import register

CHAPTER = "diffusion_inversion"

# Cost model of the lent H100 beside the measured step times of ``InversionPreset`` (DESIGN.md, 2026-11-22).
STARTUP_S = 20.0   # imports, CUDA context, dataset load, warm-up (assumed)
#: Images per class in the class-conditional sample grid of the generator pretrained on all of CIFAR-10.
N_GRID_PER_CLASS = 6
#: Scarce images whose reconstructions, λ sweep and fixed-noise denoising loss the chapter measures.
N_REC = 200
#: Timesteps of the fixed-noise denoising-loss comparison, and the conditionings compared there
#: (learned c_i, class vector, mean learned vector, null row).
N_T_EVAL = 10
N_COND_EVAL = 4
#: Long-tail classifier arms: (i) real + crop/flip, (i') real without augmentation, (ii) + inversion samples,
#: (ii') + inversion samples without augmentation, (iii) + plain class-conditional samples.
N_LT_ARMS = 5
#: Extra scarce-data classifier runs without augmentation: the real set, real + the largest generated set.
N_NOAUG_SCARCE = 2


@dataclass(frozen=True)
class InversionPreset:
    """One scale of chapter 08.

    Attributes:
        scale: ``"smoke"``, ``"book"`` or ``"paper"``.
        model: the generator's UNet (``cond_dim`` = D, ``num_classes=None``; the class table lives outside it).
        diffusion: forward process and objective.
        pretrain: generator pretraining (both generators get this budget); ``num_train_images`` limits the
            balanced generator's data (None: all 50,000).
        p_uncond: CFG label dropout during pretraining.
        scarce_images: balanced real images of the scarce-data experiment (and the images inverted there).
        real_sizes: balanced real-only training sets of the sample-complexity curve (the first is the scarce
            set itself), to read how many real images the generated ones are worth.
        invert_steps, invert_group, invert_lr, invert_wd: stage 1 (AdamW, constant lr; official lr 3e-2,
            wd 1e-2); ``invert_init``: ``"class"`` (warm start from the class vector) or ``"mean"`` (label-free).
        sample_steps, eta, guidance_g: stage 2, DDIM with CFG in the "g" convention (official 100 / 1.0 / 2.0).
        interp_strength, emb_noise: s and λ of the variation conditions (official 0.1 / 0.1).
        lambda_grid, alpha_grid: the perturbation and interpolation figures (``lambda_grid`` starts at 0).
        gen_sizes: generated-set sizes of the "test accuracy vs number of generated images" curve.
        imb_factor, lt_n_max: the long-tailed set; ``balance_to``: generate until every class has this many
            images (classes below it are inverted; the head count balances the set fully).
        clf_arch, clf_batch, clf_lr, clf_warmup: the ResNet-18 recipe; ``clf_steps_scarce`` / ``clf_steps_lt``:
            steps of each scarce-data / long-tail run.
        test_images: balanced test images for every accuracy.
        sample_batch: sampling batch.
        train_step_s, train_img_per_s: seconds per pretraining step are ``max(train_step_s, batch /
            train_img_per_s)``: the launch-bound floor, then the throughput. ``book``: measured on the H100
            through the Trainer (4,600 img/s at batch 512: 01_ddpm ran 1,200 steps in 133 s); ``paper``: the
            measured eager throughput of ``iddpm_cifar10`` at batch 128 (1,271–1,444 img/s; the lower end).
        invert_img_per_s: the same for an inversion step, counted as a bare training step of the UNet
            (measured 6,700 img/s at batch 1,024 for ``book``; an inversion step skips the weight gradients,
            so this is an upper bound on its cost).
        sample_step_s, sample_img_per_s: seconds per denoiser step of one batch, ``max(sample_step_s, images /
            sample_img_per_s)``; a CFG step runs the doubled batch (measured: ~75 ms at batch 1,000 for the book
            UNet; 4,942 img/s for ``iddpm_cifar10``).
        clf_step_s, clf_img_per_s: the same for a ResNet-18 step (assumed 40–60 ms at batch 256–512); each test
            batch of 1,000 is counted as one step at the floor.
    """

    scale: str
    model: UNetConfig
    diffusion: DiffusionSpec
    pretrain: TrainSpec
    p_uncond: float = 0.1
    scarce_images: int = 1000
    real_sizes: Tuple[int, ...] = (1000, 2000, 4000)
    invert_steps: int = 300
    invert_group: int = 512
    invert_lr: float = 3e-2
    invert_wd: float = 1e-2
    invert_init: str = "class"
    sample_steps: int = 50
    eta: float = 1.0
    guidance_g: float = 2.0
    interp_strength: float = 0.1
    emb_noise: float = 0.1
    lambda_grid: Tuple[float, ...] = (0.0, 0.1, 0.3, 0.6, 1.0)
    alpha_grid: Tuple[float, ...] = (1.0, 0.75, 0.5, 0.25, 0.0)
    gen_sizes: Tuple[int, ...] = (1000, 5000)
    imb_factor: float = 0.01
    lt_n_max: Optional[int] = None
    balance_to: int = 1000
    clf_arch: str = "resnet18"
    clf_batch: int = 256
    clf_lr: float = 0.1
    clf_warmup: int = 100
    clf_steps_scarce: int = 800
    clf_steps_lt: int = 1200
    test_images: int = 10_000
    sample_batch: int = 1000
    comparable: bool = True
    train_step_s: float = 0.070
    train_img_per_s: float = H100_BOOK_TRAIN_IMG_PER_S
    invert_img_per_s: float = 6_700.0
    sample_step_s: float = 0.075
    sample_img_per_s: float = H100_BOOK_SAMPLE_IMG_PER_S
    clf_step_s: float = 0.050
    clf_img_per_s: float = 8_500.0
    note: str = ""

    def __post_init__(self):
        if self.model.cond_dim is None or self.model.num_classes is not None:
            raise ValueError("the generator's UNet needs cond_dim set and num_classes=None")
        if self.invert_init not in ("class", "mean"):
            raise ValueError(f"invert_init must be 'class' or 'mean', got {self.invert_init!r}")
        if self.invert_steps < 1 or self.invert_group < 1 or self.invert_lr <= 0:
            raise ValueError("invert_steps, invert_group and invert_lr must be positive")
        if not self.gen_sizes or any(n < 1 for n in self.gen_sizes) or list(self.gen_sizes) != sorted(self.gen_sizes):
            raise ValueError(f"gen_sizes must be increasing positive ints, got {self.gen_sizes}")
        if self.guidance_g < 0 or self.eta < 0:
            raise ValueError("guidance_g and eta must be >= 0")
        if self.scarce_images < 10 or self.scarce_images % 10:
            raise ValueError(f"scarce_images must be a positive multiple of 10, got {self.scarce_images}")
        if (not self.real_sizes or self.real_sizes[0] != self.scarce_images
                or list(self.real_sizes) != sorted(set(self.real_sizes)) or any(n % 10 for n in self.real_sizes)):
            raise ValueError(f"real_sizes must be increasing multiples of 10 starting at scarce_images="
                             f"{self.scarce_images}, got {self.real_sizes}")
        if not self.lambda_grid or self.lambda_grid[0] != 0.0:
            raise ValueError(f"lambda_grid must start at 0 (the unperturbed vector), got {self.lambda_grid}")
        if self.balance_to < 1:
            raise ValueError(f"balance_to must be positive, got {self.balance_to}")

    @property
    def lt_counts(self) -> Tuple[int, ...]:
        """Per-class counts of the long-tailed set."""
        from lt_diffusion.data import lt_class_counts

        return tuple(lt_class_counts(self.lt_n_max or 5000, 10, self.imb_factor))

    @property
    def lt_to_generate(self) -> Tuple[int, ...]:
        """Images to generate per class so that every class reaches ``balance_to`` (0 for larger classes)."""
        return tuple(max(0, self.balance_to - n) for n in self.lt_counts)

    @property
    def lt_to_invert(self) -> int:
        """LT images inverted: every image of a class that needs generated images."""
        return sum(n for n, g in zip(self.lt_counts, self.lt_to_generate) if g > 0)

    @property
    def n_scarce_runs(self) -> int:
        """Scarce-data classifiers: real-only sizes, generated only and real + generated per generated size,
        and the two runs without augmentation."""
        return len(self.real_sizes) + 2 * len(self.gen_sizes) + N_NOAUG_SCARCE

    def _cfg_sample_s(self, n: int, batch: int) -> float:
        """DDIM with CFG: ``ceil(n / batch)`` batches × ``sample_steps`` steps, each a forward on twice the batch."""
        b = min(batch, n)
        full, rest = divmod(n, b)
        per_step = lambda m: max(self.sample_step_s, 2 * m / self.sample_img_per_s)  # noqa: E731
        return self.sample_steps * (full * per_step(b) + (per_step(rest) if rest else 0.0))

    def projected_gpu_seconds(self) -> Dict[str, float]:
        """Projected H100 seconds of the whole notebook, from the step times above (a projection, not a
        measurement of this preset)."""
        tp = self.pretrain
        train = 2 * tp.steps * max(self.train_step_s, tp.batch_size / self.train_img_per_s)
        invert = sum(math.ceil(n / self.invert_group) * self.invert_steps
                     * max(self.train_step_s, min(self.invert_group, n) / self.invert_img_per_s)
                     for n in (self.scarce_images, self.lt_to_invert))
        n_rec = min(N_REC, self.scarce_images)
        # the notebook's figure calls: a class grid of the first generator; c_i (two seeds), class vector and null-row
        # reconstructions of n_rec images; the λ > 0 rows on the same images; one call per interpolated pair
        grid = 10 * N_GRID_PER_CLASS
        figures = (self._cfg_sample_s(grid, self.sample_batch)
                   + (4 + len(self.lambda_grid) - 1) * self._cfg_sample_s(n_rec, self.sample_batch)
                   + 3 * self._cfg_sample_s(len(self.alpha_grid), len(self.alpha_grid)))
        sample = (figures + self._cfg_sample_s(max(self.gen_sizes), self.sample_batch)
                  + 2 * self._cfg_sample_s(sum(self.lt_to_generate), self.sample_batch))
        # fixed-noise denoising loss: one plain forward (no CFG) of the n_rec images per timestep and conditioning
        evals = N_COND_EVAL * N_T_EVAL * max(self.sample_step_s, n_rec / self.sample_img_per_s)
        n_runs = self.n_scarce_runs + N_LT_ARMS
        clf_step = max(self.clf_step_s, self.clf_batch / self.clf_img_per_s)
        clf = (self.n_scarce_runs * self.clf_steps_scarce + N_LT_ARMS * self.clf_steps_lt) * clf_step \
            + n_runs * math.ceil(self.test_images / 1000) * self.clf_step_s
        total = STARTUP_S + train + invert + sample + evals + clf
        return {"startup_s": STARTUP_S, "train_s": train, "invert_s": invert, "sample_s": sample,
                "eval_s": evals, "classifier_s": clf, "total_s": total}


_SMOKE = InversionPreset(
    scale="smoke",
    model=get_model_config("smoke", cond_dim=16),
    diffusion=DiffusionSpec(steps=100, noise_schedule="linear", objective="simple"),
    pretrain=TrainSpec(steps=6, batch_size=8, lr=1e-3, ema_rate=0.5, num_train_images=200, bf16=False),
    scarce_images=20,
    real_sizes=(20, 40),
    invert_steps=3,
    invert_group=32,
    sample_steps=3,
    lambda_grid=(0.0, 1.0),
    alpha_grid=(1.0, 0.5, 0.0),
    gen_sizes=(10, 20),
    imb_factor=0.1,
    lt_n_max=30,
    balance_to=12,
    clf_arch="tiny_cnn",
    clf_batch=16,
    clf_lr=0.05,
    clf_warmup=1,
    clf_steps_scarce=3,
    clf_steps_lt=3,
    test_images=100,
    sample_batch=20,
    comparable=False,
    train_img_per_s=60.0,
    invert_img_per_s=60.0,
    sample_img_per_s=200.0,
    clf_img_per_s=100.0,
    note="smoke: a CI check that every cell runs; every number is 'smoke: not comparable'.",
)

_BOOK = InversionPreset(
    scale="book",
    model=get_model_config("book", cond_dim=64, dropout=0.1),
    diffusion=DiffusionSpec(steps=1000, noise_schedule="linear", objective="simple"),
    # lr 6e-4 at batch 512 (≈ 2e-4 at 128 scaled by the batch ratio, DDPM's CIFAR rate); EMA over ~100 steps,
    # since a 600-step model changes too fast for a longer average to help
    pretrain=TrainSpec(steps=600, batch_size=512, lr=6e-4, warmup_steps=50, grad_clip=1.0, ema_rate=0.99),
    invert_steps=100,
    invert_group=512,
    gen_sizes=(500, 1000, 2000),
    balance_to=1000,
    clf_batch=512,
    clf_lr=0.2,
    clf_warmup=10,
    clf_steps_scarce=100,
    clf_steps_lt=120,
    sample_batch=1000,
    note="book: two generators trained for about a minute each (far weaker than Stable Diffusion), 100 inversion "
         "steps per image (official: ~4,000 image-steps), classifiers trained for 100-120 steps (official: 50 k "
         "steps); the LT tail is filled up to 1,000 images per class (imbalance 100 -> 5), not to 5,000.",
)

_PAPER = InversionPreset(
    scale="paper",
    model=get_model_config("iddpm_cifar10", learn_sigma=False, cond_dim=768),
    diffusion=DiffusionSpec(steps=1000, noise_schedule="linear", objective="simple"),
    pretrain=TrainSpec(steps=500_000, batch_size=128, lr=1e-4, ema_rate=0.9999, ema_warmup=False, compile=True),
    scarce_images=50_000,
    real_sizes=(50_000,),
    invert_steps=4000,
    invert_group=100,
    invert_lr=3e-2,
    invert_wd=1e-2,
    invert_init="mean",
    sample_steps=100,
    eta=1.0,
    guidance_g=2.0,
    interp_strength=0.1,
    emb_noise=0.1,
    gen_sizes=(50_000, 100_000, 500_000),
    balance_to=5000,
    clf_batch=128,
    clf_warmup=1000,
    clf_steps_scarce=50_000,
    clf_steps_lt=50_000,
    train_img_per_s=1_271.0,
    invert_img_per_s=1_271.0,
    sample_img_per_s=4_942.0,
    note="paper: the official recipe (papers.md §7) on our pixel-space generator; Stable Diffusion itself is not "
         "available. The official run inverts with batch 50 of 100 images per group. Never run here.",
)

PRESETS = {"smoke": _SMOKE, "book": _BOOK, "paper": _PAPER}
register(CHAPTER, PRESETS)
