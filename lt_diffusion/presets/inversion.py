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
launches there, so the cost is counted in steps, not FLOPs: ~70 ms per optimiser step of the 6.95 M ``book``
UNet at batch 128-512 (an inversion step, forward and backward through the frozen UNet, is counted the same),
~75 ms per denoiser step of a sampling batch of ≤ 1,000 (DDIM-50: 38 s per 10 k samples; a CFG step runs the
doubled batch), ~50-60 ms per ResNet-18 step at batch 256-512 (assumed), ~20 s of start-up (assumed).

* ``smoke``: smoke UNet (cond_dim 16), T = 100, a few steps everywhere, a 3-conv net instead of ResNet-18,
  10-40 images per set. Every number is "smoke: not comparable" (about a minute on 2 CPU cores).
* ``book``: two 6.9 M-parameter generators, 300 steps of batch 512 each (≈ 42 s); inversion of 1,000
  scarce-data images and of the 891 LT images of the classes below 500 images, 100 steps in groups of 512
  (≈ 28 s); DDIM-50 (η = 1) sampling with CFG of the figures' 12 small calls (≈ 45 s, counted at the batch-1,000
  step time, an upper bound), of 2,000 scarce-data images and of 2 × 1,609 LT images (≈ 39 s); nine ResNet-18
  runs at batch 512 (five of 100 steps, four of 120 steps) and their test evaluations (≈ 64 s). ≈ 238 s
  projected with start-up, in one papermill run of about 4 minutes.
* ``paper``: the official recipe (papers.md §7): inversion with AdamW lr 3e-2 (constant, no warm-up),
  8,000 steps per group of 100 images at batch 50, i.e. 4,000 image-steps per image (here: 4,000 steps over
  the whole group of 100, the same count), 5 tokens × 768 (here one 768-d vector), DDIM 100 steps η = 1,
  guidance g = 2, interpolation strength 0.1, noise 0.1; ResNet-18 with SGD momentum 0.9, wd 5e-4, 1,000
  warm-up steps, cosine over 50 k steps at batch 128. On our pixel-space model the inversion of all 50,000
  CIFAR-10 images alone is 2 × 10⁸ image-steps (≈ 44 h at the measured eager 1,271 img/s training
  throughput of the 52.5 M ``iddpm_cifar10`` UNet; sampling at its measured 4,942 img/s); projected
  ≈ 92 GPU-hours with both generators, sampling and classifiers; never run here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from lt_diffusion.experiments.common import DiffusionSpec, TrainSpec
from lt_diffusion.models import UNetConfig, get_model_config

from . import register

CHAPTER = "diffusion_inversion"

# Cost model of the lent H100 beside the measured step times of ``InversionPreset`` (DESIGN.md, 2026-11-22).
STARTUP_S = 20.0   # imports, CUDA context, dataset load, warm-up (assumed)
#: Small sampling calls of the figures (reconstructions, λ grid, α grid) and their images per call.
N_SHOW = 8
N_REC = 200


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
        invert_steps, invert_group, invert_lr, invert_wd: stage 1 (AdamW, constant lr; official lr 3e-2,
            wd 1e-2); ``invert_init``: ``"class"`` (warm start from the class vector) or ``"mean"`` (label-free).
        sample_steps, eta, guidance_g: stage 2, DDIM with CFG in the "g" convention (official 100 / 1.0 / 2.0).
        interp_strength, emb_noise: s and λ of the variation conditions (official 0.1 / 0.1).
        lambda_grid, alpha_grid: the perturbation and interpolation figures.
        gen_sizes: generated-set sizes of the "test accuracy vs number of generated images" curve.
        imb_factor, lt_n_max: the long-tailed set; ``balance_to``: generate until every class has this many
            images (classes below it are inverted).
        clf_arch, clf_batch, clf_lr, clf_warmup: the ResNet-18 recipe; ``clf_steps_scarce`` / ``clf_steps_lt``:
            steps of each scarce-data / long-tail run.
        test_images: balanced test images for every accuracy.
        sample_batch: sampling batch.
        train_step_s, train_img_per_s: seconds per optimiser step are ``max(train_step_s, batch /
            train_img_per_s)``: the launch-bound floor, then the throughput. ``book``: measured on the H100 (~60–70
            ms per step of the book UNet at batch 128–512; 7,300 img/s = batch 512 in 70 ms); ``paper``: the
            measured eager throughput of ``iddpm_cifar10`` at batch 128 (1,271–1,444 img/s; the lower end).
        invert_img_per_s: the same for an inversion step (forward + backward through the frozen UNet, counted as
            a training step).
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
    train_img_per_s: float = 7_300.0
    invert_img_per_s: float = 7_300.0
    sample_step_s: float = 0.075
    sample_img_per_s: float = 13_300.0
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
        figures = (4 * self._cfg_sample_s(N_SHOW, N_SHOW) + 2 * self._cfg_sample_s(n_rec, self.sample_batch)
                   + len(self.lambda_grid) * self._cfg_sample_s(N_SHOW, N_SHOW)
                   + 3 * self._cfg_sample_s(len(self.alpha_grid), len(self.alpha_grid)))
        sample = (figures + self._cfg_sample_s(max(self.gen_sizes), self.sample_batch)
                  + 2 * self._cfg_sample_s(sum(self.lt_to_generate), self.sample_batch))
        n_runs = 1 + 2 * len(self.gen_sizes) + 4
        clf_step = max(self.clf_step_s, self.clf_batch / self.clf_img_per_s)
        clf = ((n_runs - 4) * self.clf_steps_scarce + 4 * self.clf_steps_lt) * clf_step \
            + n_runs * math.ceil(self.test_images / 1000) * self.clf_step_s
        total = STARTUP_S + train + invert + sample + clf
        return {"startup_s": STARTUP_S, "train_s": train, "invert_s": invert, "sample_s": sample,
                "classifier_s": clf, "total_s": total}


_SMOKE = InversionPreset(
    scale="smoke",
    model=get_model_config("smoke", cond_dim=16),
    diffusion=DiffusionSpec(steps=100, noise_schedule="linear", objective="simple"),
    pretrain=TrainSpec(steps=6, batch_size=8, lr=1e-3, ema_rate=0.5, num_train_images=200, bf16=False),
    scarce_images=20,
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
    pretrain=TrainSpec(steps=300, batch_size=512, lr=3e-4, warmup_steps=30, grad_clip=1.0, ema_rate=0.98),
    invert_steps=100,
    invert_group=512,
    lambda_grid=(0.0, 0.3, 1.0),
    gen_sizes=(500, 2000),
    balance_to=500,
    clf_batch=512,
    clf_lr=0.2,
    clf_warmup=10,
    clf_steps_scarce=100,
    clf_steps_lt=120,
    sample_batch=1000,
    note="book: two generators trained for seconds (far weaker than Stable Diffusion), 100 inversion steps per "
         "image (official: ~4,000 image-steps), classifiers trained for 100-120 steps (official: 50 k steps).",
)

_PAPER = InversionPreset(
    scale="paper",
    model=get_model_config("iddpm_cifar10", learn_sigma=False, cond_dim=768),
    diffusion=DiffusionSpec(steps=1000, noise_schedule="linear", objective="simple"),
    pretrain=TrainSpec(steps=500_000, batch_size=128, lr=1e-4, ema_rate=0.9999, compile=True),
    scarce_images=50_000,
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
