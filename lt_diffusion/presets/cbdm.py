"""Chapter 06, CBDM on CIFAR-10-LT (Qin et al. 2023): class-conditional DDPMs with whole-batch label dropout,
sampled with classifier-free guidance; the CBDM arms add the class-balancing regulariser (the engine's
``regularizer`` hook). Baseline and CBDM are trained with ``len(seeds)`` seeds; the ablations (y' uniform,
CBDM + P2, other τ) with the first.

``book`` trains 7 runs of 200 steps of batch 512 on CIFAR-10-LT (a CBDM step costs two: the γ-term trains its
second forward pass) and samples with CFG (about 8 minutes on one H100). ``paper`` is the official CBDM-pytorch
CIFAR recipe (the README's CIFAR-100-LT flags applied to CIFAR-10-LT, whose settings are not published), not run for this edition.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, Tuple

from lt_diffusion.experiments.specs import Arm, ChapterPreset, DataSpec, DiffusionSpec, EvalSpec
from lt_diffusion.models import UNetConfig, get_model_config
from lt_diffusion.train import TrainConfig


@dataclass(frozen=True, kw_only=True)
class CBDMPreset(ChapterPreset):
    """Chapter 06. Arms: ``baseline``, ``cbdm`` (τ, γ, y' from the training frequencies) and the single-seed
    ablations ``cbdm_uniform``, ``cbdm_p2``, ``cbdm_tau<τ>``.

    Attributes:
        seeds: the seeds of baseline and CBDM. omega: the CFG strength ω of the main comparison and the ablations
            (ε̃ = (1 + ω) ε_c − ω ε_∅); omega_sweep: the ω sweep (it must contain ``omega``, whose point reuses the
            main samples). sweep_samples: samples per point of the sweep and the ablations (a multiple of the
            sampling batch, so every single-seed set starts from the same noise).
        ddim_steps: DDIM steps of the sampler comparison (0: skip). recall_k: k of precision / recall (CBDM: 5).
        kid_subset: KID's subset size. grid_per_class: tail images per class in the grid. n_head, n_tail: groups.
    """

    seeds: Tuple[int, ...] = (0, 1)
    omega: float = 1.0
    omega_sweep: Tuple[float, ...] = (0.0, 1.0, 2.0)
    sweep_samples: int = 1000
    ddim_steps: int = 100
    recall_k: int = 5
    kid_subset: int = 1000
    grid_per_class: int = 8
    n_head: int = 3
    n_tail: int = 3

    def __post_init__(self):
        super().__post_init__()
        if self.omega not in self.omega_sweep:
            raise ValueError(f"omega {self.omega} must be one of omega_sweep {self.omega_sweep} (its point is reused)")
        if self.sweep_samples > self.eval.num_samples or self.sweep_samples % self.eval.batch_size:
            raise ValueError(f"sweep_samples ({self.sweep_samples}) must be <= eval.num_samples "
                             f"({self.eval.num_samples}) and a multiple of eval.batch_size ({self.eval.batch_size})")


def _arms(model: UNetConfig, diffusion: DiffusionSpec, train: TrainConfig, data: DataSpec,
          taus: Tuple[float, ...]) -> Dict[str, Arm]:
    """The baseline (no hook), CBDM (τ = 1, γ = 1/4, y' ~ training frequencies, |Y'| = 1) and its ablations."""
    cbdm = dataclasses.replace(diffusion, cbdm_tau=1.0, cbdm_gamma=0.25, cbdm_label_dist="train")
    arms = {"baseline": Arm("denoiser", model, train, data, diffusion, label="baseline"),
            "cbdm": Arm("denoiser", model, train, data, cbdm, label="CBDM"),
            "cbdm_uniform": Arm("denoiser", model, train, data, dataclasses.replace(cbdm, cbdm_label_dist="uniform"),
                                label="CBDM, y' uniform"),
            "cbdm_p2": Arm("denoiser", model, train, data, dataclasses.replace(cbdm, p2_gamma=1.0, p2_k=1.0),
                           label="CBDM + P2 (γ=1)")}
    for tau in taus:
        arms[f"cbdm_tau{tau:g}"] = Arm("denoiser", model, train, data, dataclasses.replace(cbdm, cbdm_tau=tau),
                                       label=f"CBDM, τ={tau:g}")
    return arms


SMOKE = CBDMPreset(
    scale="smoke", comparable=False,
    arms=_arms(get_model_config("smoke", num_classes=10), DiffusionSpec(steps=100),
               TrainConfig(steps=8, batch_size=8, lr=1e-3, grad_clip=1.0, ema_rate=0.8, ema_warmup=True, amp=False,
                           p_uncond=0.1, uncond_mode="batch", log_every=100),
               DataSpec(imb_factor=0.01, n_max=500), taus=(3.0,)),
    eval=EvalSpec(num_samples=30, sample_steps=5, batch_size=10, fid_reference_images=40, forwards=2),
    omega_sweep=(0.0, 1.0), sweep_samples=10, ddim_steps=5, recall_k=3, kid_subset=20, grid_per_class=2,
    note="smoke: a CI check that every cell runs; numbers are not comparable to anything.",
)

BOOK = CBDMPreset(
    scale="book",
    # ~4.6-5.2k img/s for a baseline arm and ~2.6k for a CBDM arm through the Trainer on the H100; EMA 0.98 warmed
    # up (a horizon of ~50 steps): a constant 0.995 would keep a third of the initial weights after 200 steps.
    arms=_arms(get_model_config("book", num_classes=10, dropout=0.1), DiffusionSpec(steps=1000),
               TrainConfig(steps=200, batch_size=512, lr=3e-4, warmup_steps=30, grad_clip=1.0, ema_rate=0.98,
                           ema_warmup=True, p_uncond=0.1, uncond_mode="batch", log_every=100),
               DataSpec(imb_factor=0.01), taus=(3.0,)),
    # 4 main sets of 2,000, 4 sweep and 3 ablation sets of 1,000 at 50 steps, 2 DDIM-100 sets ≈ 10 sets' passes
    eval=EvalSpec(num_samples=2000, sample_steps=50, batch_size=1000, sample_sets=10, forwards=2),
    note="book: 0.1 M training images per arm (the official recipe: 14 M), far short of convergence; the chapter "
         "compares arms at one equal budget with two seeds for the main pair, plus single-seed y' uniform, "
         "CBDM + P2 and τ = 3. Not a reproduction of the paper.",
)

PAPER = CBDMPreset(
    scale="paper",
    arms=_arms(get_model_config("ddpm_cifar10", num_classes=10), DiffusionSpec(steps=1000),
               TrainConfig(steps=300_000, batch_size=48, lr=2e-4, warmup_steps=5000, grad_clip=1.0, ema_rate=0.9999,
                           compile=True, p_uncond=0.1, uncond_mode="batch", log_every=1000),
               DataSpec(imb_factor=0.01), taus=(0.5, 2.0)),
    eval=EvalSpec(num_samples=50_000, sample_steps=1000, batch_size=1000, sample_sets=6, forwards=2),
    omega=1.6, omega_sweep=(0.0, 0.8, 1.6, 2.0), sweep_samples=10_000,
    note="paper: the official CBDM-pytorch recipe (README, CIFAR-100-LT flags) applied to CIFAR-10-LT; the paper's "
         "own CIFAR-10-LT settings are not published. Not run for this edition.",
)

PRESETS = {"smoke": SMOKE, "book": BOOK, "paper": PAPER}
