"""Chapter 04 lab (classifier-free guidance): the w sweep, beside classifier guidance, and the choice of p_uncond.

Design: three joint conditional/unconditional denoisers that differ only in the label-dropout probability
p_uncond = 0.1 (the shared baseline), 0.2 and 0.5 (Ho & Salimans 2022, Table 1); guided sampling with
:func:`lt_diffusion.guidance.cfg_model_fn` (one batched forward of conditional and null labels,
eps = (1 + w) eps(x, y) - w eps(x, null)) at the weights :data:`WS`, DDIM over 50 respaced steps, 250 samples per
class. Fidelity (exact Bayes class fidelity) and diversity (per-class recall, k = 5) as in chapter 03, whose
classifier-guidance sweep on the same world and baseline is drawn beside this one; the distance of the whole
sample set to the true class-balanced distribution (sliced W2) plays FID's role for the p_uncond comparison
(its best value over the w sweep, the paper's "frontier"). The same sweep with the world's exact ε
(:class:`lt_diffusion.toy2d.ExactEpsModel`, conditional and unconditional branches both exact) separates what
guidance does from what the learned unconditional branch's error does to it. Verdicts: w = 2 against w = 0 (p_uncond = 0.1), and
p_uncond = 0.1 against 0.5, fixed before running.
"""
from __future__ import annotations

from typing import Sequence

from ..guidance import cfg_model_fn
from ..toy2d import ExactEpsModel
from .common import BASE_RECIPE, Timer, draw, lab_world
from .engine import make_diffusion, relative_cost, train_denoisers
from .jobs import run_jobs
from .evaluate import balanced_labels, group_values, score_samples
from .result import LabResult, claim

WS = (0.0, 0.5, 1.0, 2.0)
VERDICT_W = 2.0
P_UNCOND = (0.1, 0.2, 0.5)
QUESTION = ("How does the CFG weight w trade class fidelity for diversity, next to classifier guidance on the same "
            "model, and does a larger label-dropout probability p_uncond hurt?")


def cfg_recipe(p_uncond: float):
    return BASE_RECIPE.replace(p_uncond=p_uncond)


def cfg_samples(model, world, seeds, w: float, exact: bool = False):
    """Balanced CFG samples ``(M, n, d)`` of ``model`` at weight ``w`` and their labels. ``exact``: ``model`` is
    the world's :class:`~lt_diffusion.toy2d.ExactEpsModel` (no members: all seeds' samples in one batch)."""
    labels = balanced_labels(world)
    M = len(seeds)
    fn = model if w == 0 else cfg_model_fn(model, w, null_label=world.num_classes)
    if exact:
        xs = draw(fn, BASE_RECIPE, 1, labels.repeat(M), seed=seeds[0] + 202)[0]
        return xs.reshape(M, labels.numel(), world.dim), labels
    return draw(fn, BASE_RECIPE, M, labels, seed=seeds[0] + 202), labels


def _sweep(model, world, seeds, exact: bool = False):
    fid, rec, sw = [], [], []
    for w in WS:
        xs, labels = cfg_samples(model, world, seeds, w, exact)
        sc = score_samples(world, xs, labels, seeds)
        fid.append(group_values(sc["fidelity"], world, "all"))
        rec.append(group_values(sc["recall"], world, "all"))
        sw.append([float(v) for v in sc["sw"]])
    return {"fidelity": fid, "recall": rec, "sw": sw}


def sweep_job(p_uncond, seeds: Sequence[int]) -> dict:
    """One job of :func:`run`: the w sweep of the model trained (or read from the cache) with label dropout
    ``p_uncond``, or, for ``p_uncond=None``, of the world's exact ε."""
    world = lab_world()
    if p_uncond is None:
        return _sweep(ExactEpsModel(world.mixture, make_diffusion(BASE_RECIPE).alphas_cumprod, 1.0), world, seeds,
                      True)
    return _sweep(train_denoisers(cfg_recipe(p_uncond), world, seeds).model, world, seeds)


def run(seeds: Sequence[int]) -> LabResult:
    timer = Timer()
    seeds = list(seeds)
    fig = {"ws": list(WS), "p_uncond": list(P_UNCOND)}
    jobs = list(P_UNCOND) + [None]
    # a sweep samples about as long as a model trains; the exact sweep trains nothing
    done = run_jobs(sweep_job, [(p, seeds) for p in jobs],
                    cost=[relative_cost(cfg_recipe(p)) if p is not None else 0.0 for p in jobs])
    sweeps, exact = dict(zip(P_UNCOND, done[:-1])), done[-1]
    fig["cfg"] = {str(p): v for p, v in sweeps.items()}
    fig["cfg_exact"] = exact
    wall = timer.elapsed
    from .registry import run_lab   # chapter 03's sweep on the same baseline (normally read from the cache)
    adm = run_lab("adm", seeds)
    fig["classifier_guidance"] = {"scales": adm.figure["scales"], **adm.figure["trained classifier"]}
    i0, i1 = WS.index(0.0), WS.index(VERDICT_W)
    base = sweeps[0.1]
    best_sw = {p: [min(v[m] for v in sweeps[p]["sw"]) for m in range(len(seeds))] for p in P_UNCOND}
    claims = [
        claim("Classifier-free guidance raises class fidelity as the guidance weight w grows (Ho & Salimans 2022, "
              "Table 1: IS rises with w).", "exact class fidelity, all classes (higher is better)",
              {"w = 0": base["fidelity"][i0], f"w = {VERDICT_W:g}": base["fidelity"][i1]}, f"w = {VERDICT_W:g}",
              "w = 0", False, wall, "CFG raises class fidelity"),
        claim("It pays with diversity, like classifier guidance (Ho & Salimans 2022, Sec. 4).",
              "recall, all classes (the claim: guidance lowers it)",
              {"w = 0": base["recall"][i0], f"w = {VERDICT_W:g}": base["recall"][i1]}, f"w = {VERDICT_W:g}",
              "w = 0", True, wall, "CFG lowers recall"),
        claim("With the exact ε, free of learning error, CFG raises class fidelity at the same weight (Ho & Salimans "
              "2022).", "exact class fidelity, all classes, exact ε (higher is better)",
              {"w = 0": exact["fidelity"][i0], f"w = {VERDICT_W:g}": exact["fidelity"][i1]}, f"w = {VERDICT_W:g}",
              "w = 0", False, wall, "with the exact ε, CFG raises class fidelity",
              note="seeds vary only the sampling noise and the reference set"),
        claim("Dropping the label half of the time (p_uncond = 0.5) is worse than 0.1 across the sweep (Ho & Salimans "
              "2022, Table 1).", "best sliced W2 to the true distribution over the w sweep (lower is better)",
              {f"p_uncond = {p:g}": best_sw[p] for p in P_UNCOND}, "p_uncond = 0.1", "p_uncond = 0.5", True, wall,
              "p_uncond 0.1 beats 0.5"),
    ]
    design = ("Three 3x128 MLP denoisers on the 8-d long-tailed world with label dropout 0.1 (the shared baseline), "
              f"0.2 and 0.5; CFG with one batched forward at w = {'/'.join(f'{v:g}' for v in WS)}, DDIM 50 steps, "
              "250 samples per class; "
              "exact Bayes class fidelity, per-class recall (k = 5), sliced W2 to fresh true samples. Chapter 03's "
              "classifier-guidance sweep (same baseline) is drawn beside it.")
    return LabResult("cfg", "Classifier-free guidance and p_uncond", QUESTION, design, claims, fig, seeds, wall)
