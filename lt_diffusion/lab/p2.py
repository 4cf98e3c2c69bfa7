"""Chapter 05 lab (P2 weighting): where the error moves across t at an equal budget, and what samples gain.

Design: a *capacity-limited* class-conditional denoiser, 2 hidden layers of 48 units (about 6k parameters, an
eighth of the shared baseline), trained for the base budget (2000 steps at batch 256 per seed) with the P2
weight 1 / (k + SNR_t)^gamma on the ε-MSE (the engine's ``loss_weight``; k = 1) at gamma = 0 (the baseline),
0.5 and 1 (Choi et al. 2022). Small enough that it cannot fit every noise level, so the weighting decides
where its capacity goes. Measured: the error of its ε against the exact ε* at 12 timesteps; the mean over the
"content" band of the paper, 1e-2 <= SNR_t <= 1 (t = 258..673 on the linear schedule); and sample quality of
class-balanced DDIM samples (50 steps, 250 per class): sliced W2 to fresh true samples, exact class fidelity.
Verdicts compare gamma = 1 with gamma = 0.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..weighting import snr
from . import metrics
from .common import BASE_RECIPE, Timer, draw, lab_world, t_grid
from .engine import relative_cost, train_denoisers
from .jobs import run_jobs
from .evaluate import balanced_labels, group_values, score_samples
from .result import LabResult, claim

GAMMAS = (0.0, 0.5, 1.0)
SMALL = dict(hidden=48, depth=2)
QUESTION = ("At an equal training budget, where across t does P2 weighting move a small model's error, and do its "
            "samples get better?")


def p2_recipe(gamma: float, **size):
    return BASE_RECIPE.replace(p2_gamma=gamma, **(size or SMALL))


def content_band(alphas_cumprod: np.ndarray, n: int = 6) -> list:
    """``n`` timesteps evenly spread over the band 1e-2 <= SNR_t <= 1 (Choi et al. 2022's content stage)."""
    s = snr(alphas_cumprod)
    idx = np.nonzero((s >= 1e-2) & (s <= 1.0))[0]
    return [int(t) for t in np.linspace(idx.min(), idx.max(), n).round()]


def gamma_scores(g: float, seeds: Sequence[int]) -> dict:
    """Train (or read from the cache) the gamma = ``g`` model and measure it (one job of :func:`run`): its ε error
    at :func:`t_grid` and over the content band, sliced W2 and class fidelity of its balanced DDIM samples."""
    world = lab_world()
    M = len(seeds)
    labels = balanced_labels(world)
    te = train_denoisers(p2_recipe(g), world, seeds)
    band_t = content_band(te.diffusion.alphas_cumprod)
    sc = score_samples(world, draw(te.model, p2_recipe(g), M, labels, seed=seeds[0] + 303), labels, seeds)
    return {"band_t": band_t,
            "err": metrics.eps_error(te.model, te.diffusion, world, M, t_grid(1000, 12), 1000, seed=seeds[0]).tolist(),
            "band": metrics.eps_error(te.model, te.diffusion, world, M, band_t, 1000, seed=seeds[0] + 1).mean(1).tolist(),
            "sw": [float(v) for v in sc["sw"]], "fidelity": group_values(sc["fidelity"], world, "all")}


def run(seeds: Sequence[int]) -> LabResult:
    timer = Timer()
    seeds = list(seeds)
    ts = t_grid(1000, 12)
    fig = {"gammas": list(GAMMAS), "t": ts}
    measured = dict(zip(GAMMAS, run_jobs(gamma_scores, [(g, seeds) for g in GAMMAS],
                                         cost=[relative_cost(p2_recipe(g)) for g in GAMMAS])))
    err, band, sw, fid = ({g: m[key] for g, m in measured.items()} for key in ("err", "band", "sw", "fidelity"))
    band_t = measured[GAMMAS[-1]]["band_t"]
    fig.update({"eps_error": {str(g): v for g, v in err.items()}, "band_t": band_t,
                "sw": {str(g): v for g, v in sw.items()}, "fidelity": {str(g): v for g, v in fid.items()}})
    wall = timer.elapsed
    arms = lambda d: {f"gamma = {g:g}": d[g] for g in GAMMAS}   # noqa: E731
    claims = [
        claim("P2 weighting (gamma = 1) gives better samples than the uniform weighting at the same training budget "
              "(Choi et al. 2022).", "sliced W2 to true samples (lower is better)", arms(sw), "gamma = 1",
              "gamma = 0", True, wall, "P2 improves sample quality"),
        claim("It does so by spending the model's capacity on the content stage: the ε error in the band "
              "1e-2 <= SNR <= 1 falls (Choi et al. 2022).",
              "mean squared ε error against the exact ε* over the content band (lower is better)", arms(band),
              "gamma = 1", "gamma = 0", True, wall, "P2 lowers the content-band error"),
    ]
    design = ("Capacity-limited conditional 2x48 MLP denoisers (about 6k parameters) on the 8-d long-tailed world, "
              "2000 steps at batch 256 per seed, P2 gamma = 0 / 0.5 / 1 (k = 1) at an equal budget; ε error against "
              "the exact ε* at 12 timesteps and over the content band; DDIM 50 steps, 250 samples per class.")
    return LabResult("p2", "P2 weighting on a small model", QUESTION, design, claims, fig, seeds, wall)
