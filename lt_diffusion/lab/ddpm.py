"""Chapter 01 lab (DDPM / DDIM): the learned ε against the exact one, and sample quality against steps.

Design: the shared baseline denoiser (:mod:`lt_diffusion.lab.common`) and, beside it, the *exact* denoiser of
the world (:class:`lt_diffusion.toy2d.ExactEpsModel`, the ε* that the ε-MSE is minimised by). Both are sampled
with the engine's ancestral sampler (σ² = β̃_t, Ho et al. 2020, Algorithm 2) and with DDIM η = 0 (Song et al.
2021) at 10, 20, 50 and 100 respaced steps; quality is the sliced W2 distance of 2,500 class-balanced samples
to 2,500 fresh true samples. Because the exact denoiser has no learning error, its curve is the samplers'
discretisation error alone, and the gap between the two curves is what training left.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..toy2d import ExactEpsModel
from . import metrics
from .common import BASE_RECIPE, Timer, baseline, lab_world, sampling_diffusion, t_grid
from .engine import sample
from .evaluate import balanced_labels, reference_set
from .result import LabResult, claim

STEPS = (10, 20, 50, 100)
QUESTION = ("Where does sample quality go when the number of sampling steps shrinks: into the learned ε, or into "
            "the sampler?")


def _sw(world, xs, seeds):
    return [metrics.sliced_wasserstein(xs[m], reference_set(world, s)[0], seed=s) for m, s in enumerate(seeds)]


def run(seeds: Sequence[int]) -> LabResult:
    timer = Timer()
    world = lab_world()
    seeds = list(seeds)
    M = len(seeds)
    base = baseline(seeds)
    ts = t_grid(base.diffusion.num_timesteps)
    eps_err = metrics.eps_error(base.model, base.diffusion, world, M, ts, 1000, seed=seeds[0])   # (M, len(ts))
    exact = ExactEpsModel(world.mixture, base.diffusion.alphas_cumprod, 1000.0 / base.diffusion.num_timesteps)
    labels = balanced_labels(world)
    curves = {}
    for name, model in (("learned", base.model), ("exact", exact)):
        for sampler in ("ancestral", "ddim"):
            vals = []
            for steps in STEPS:
                d = sampling_diffusion(BASE_RECIPE, steps, ddim=sampler == "ddim")
                if name == "learned":
                    xs = sample(model, d, M, labels.numel(), world.dim, labels=labels, method=sampler,
                                seed=seeds[0] + 17 * steps)
                else:   # the exact ε has no members: draw every seed's samples in one batch
                    xs = sample(model, d, 1, M * labels.numel(), world.dim, labels=labels.repeat(M),
                                method=sampler, seed=seeds[0] + 17 * steps)[0].reshape(M, -1, world.dim)
                vals.append(_sw(world, xs, seeds))
            curves[f"{name}, {sampler}"] = np.asarray(vals).T.tolist()    # (M, len(STEPS))
    wall = timer.elapsed
    at10 = {k: [row[0] for row in v] for k, v in curves.items()}
    claims = [
        claim("Deterministic DDIM sampling (eta = 0) keeps sample quality at few steps better than ancestral "
              "sampling (Song et al. 2021).", "sliced W2 to true samples at 10 steps (lower is better)",
              {"ancestral, 10 steps": at10["learned, ancestral"], "DDIM, 10 steps": at10["learned, ddim"]},
              "DDIM, 10 steps", "ancestral, 10 steps", True, wall,
              "DDIM beats ancestral sampling at 10 steps",
              note="the shared baseline denoiser; both samplers on the same model and respacing"),
        claim("The advantage is the sampler's: with the exact denoiser, which has no learning error, DDIM still "
              "beats ancestral sampling at 10 steps (Song et al. 2021).",
              "sliced W2 to true samples at 10 steps, exact ε (lower is better)",
              {"ancestral, 10 steps": at10["exact, ancestral"], "DDIM, 10 steps": at10["exact, ddim"]},
              "DDIM, 10 steps", "ancestral, 10 steps", True, wall,
              "with the exact ε too, DDIM beats ancestral sampling at 10 steps",
              note="seeds vary only the sampling noise and the reference set here"),
    ]
    figure = {"t": ts, "eps_error": eps_err.tolist(), "steps": list(STEPS), "sw": curves}
    design = ("The shared baseline denoiser (8-d long-tailed world, 3x128 MLP, 1500 steps) and the exact "
              "denoiser of the world; ancestral (beta-tilde variance) and DDIM (eta = 0) at 10/20/50/100 respaced "
              "steps; 2,500 class-balanced samples per seed scored by sliced W2 against fresh true samples.")
    return LabResult("ddpm", "Exact ε and the number of steps", QUESTION, design, claims, figure, seeds, wall)
