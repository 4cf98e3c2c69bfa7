"""Chapter 02 (Improved DDPM) on CIFAR-10: the glue between the trained ablation arms and what the chapter shows.

The chapter trains one model per arm of :mod:`lt_diffusion.presets.improved_ddpm` and then asks four questions of
them; each function here answers one, from the preset ``P`` and the trained models, and returns plain numbers
(the notebook decides what to show at which scale):

* :func:`loss_noise`: how noisy the per-step L_vlb estimate is under uniform and importance-sampled t (Fig. 6
  of Nichol & Dhariwal 2021);
* :func:`bound_per_arm`: the exact bound (``calc_bpd_batched``, the same terms as ``calc_bpd_loop``) per arm;
* :func:`sample_sets`, :func:`score_sample_sets`: every sample set of the FID experiments as a key
  ``(arm, sampler, kept steps, samples)``, each drawn and scored once;
* :func:`skip_study`, :func:`step_study`: FID when the start of the reverse process is skipped (Fig. 4) and
  against the number of sampling steps (Fig. 8);
* :func:`paper_directions`: the paper's findings as ``(finding, a, b)`` with ``a < b`` the paper's direction.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np
import torch

__all__ = ["loss_noise", "bound_per_arm", "sample_sets", "score_sample_sets", "skip_study", "step_study",
           "paper_directions"]

VLB_WEIGHT = 0.001   # λ of L_hybrid (Eq. 16): the hybrid run logs λ·T·L_t


def loss_noise(P, histories: Dict[str, List[Dict[str, float]]]) -> Tuple[Dict[str, tuple], List[Dict[str, Any]]]:
    """The L_vlb training-loss estimate (bits/dim) per step of the noise runs, and its spread over the second half
    of training (before it, the importance sampler is still uniform: it waits for 10 losses per t).

    Returns ``(curves, rows)``: ``curves = {label: (steps, loss)}`` for the two L_vlb runs (the hybrid run shares
    their uniform t draws, so its curve would hide theirs) and one row per noise run with the mean, the standard
    deviation across steps and their ratio."""
    curves, rows = {}, []
    for key in P.noise_runs:
        h = histories[key]
        steps = np.array([x["step"] for x in h])
        # L_vlb runs log T * L_t (importance-weighted); the hybrid run logs lambda * T * L_t
        loss = np.array([x["vb"] / VLB_WEIGHT if key == "cosine_hybrid" else x["vb"] for x in h])
        if key != "cosine_hybrid":
            curves[P.arm(key).label] = (steps, loss)
        tail = loss[len(loss) // 2:]
        rows.append({"run": P.arm(key).label, "mean L_vlb estimate (bits/dim)": tail.mean(),
                     "std across steps": tail.std(), "std / mean": tail.std() / tail.mean()})
    return curves, rows


def bound_per_arm(P, models: Dict[str, Any], x_start: torch.Tensor, seed: int) -> Tuple[Dict[str, float],
                                                                                         Dict[str, np.ndarray],
                                                                                         Dict[str, float]]:
    """The exact bound of every arm on ``x_start`` ``(B, C, H, W)`` in [-1, 1]: all T terms with one noise draw each
    plus the prior (``GaussianDiffusion.calc_bpd_batched``, the same draws for every arm).

    Returns ``(bpd, vb_terms, prior)``: the mean total in bits/dim per arm, the mean term ``L_t`` per t ``(T,)``
    per arm, and the mean prior term per arm."""
    from lt_diffusion.experiments.build import amp_model, build_diffusion

    bpd, vb_terms, prior = {}, {}, {}
    for key, arm in P.arms.items():
        out = build_diffusion(arm.diffusion).calc_bpd_batched(
            amp_model(models[key]), x_start, batch_size=P.bpd_batch,
            generator=torch.Generator(x_start.device).manual_seed(seed))
        bpd[key], vb_terms[key] = float(out["total_bpd"].mean()), out["vb"].mean(0).cpu().numpy()
        prior[key] = float(out["prior_bpd"].mean())
    return bpd, vb_terms, prior


def sample_sets(P) -> Tuple[Dict[str, tuple], Dict[tuple, tuple], Dict[tuple, tuple]]:
    """Every sample set of sections 6-8 as a key ``(arm, sampler, kept steps, samples)``.

    Returns ``(table_sets, step_sets, skip_sets)``: one set per arm at ``P.eval.sample_steps`` evenly strided
    steps; per ``(step arm, K)`` of the fewer-steps sweep; per ``(skip run, fraction)`` of the skip sweep
    (:func:`lt_diffusion.schedules.skip_prefix_timesteps`). Equal keys are the same set (e.g. the learned
    variance at 50 steps is a row of the table and a point of the sweep)."""
    from lt_diffusion.presets.improved_ddpm import STEP_ARMS
    from lt_diffusion.schedules import skip_prefix_timesteps, space_timesteps

    kept = {K: tuple(sorted(space_timesteps(P.T, K))) for K in (P.eval.sample_steps, *P.step_sweep)}
    table = {key: (key, "own", kept[P.eval.sample_steps], P.eval.num_samples) for key in P.arms}
    steps = {(name, K): (*STEP_ARMS[name], kept[K], P.sweep_samples) for name in P.step_arms for K in P.step_sweep}
    skips = {(key, f): (key, "own", tuple(sorted(skip_prefix_timesteps(P.T, f, P.skip_steps))), P.sweep_samples)
             for key in P.skip_runs for f in P.skip_fractions}
    return table, steps, skips


def score_sample_sets(P, models: Dict[str, Any], sets, ref, *, seed: int, device) -> Dict[tuple, tuple]:
    """Draw and score each distinct set of ``sets`` (an iterable of :func:`sample_sets` keys) once, in order, with
    :func:`lt_diffusion.experiments.sample_and_score` (seed ``seed``). Returns ``{key: (FID, first 16 images)}``."""
    from lt_diffusion.experiments.build import make_sampler
    from lt_diffusion.experiments.evaluate import sample_and_score
    from lt_diffusion.presets.improved_ddpm import SAMPLER_OPTIONS

    out = {}
    for arm_key, sampler_name, kept, n in dict.fromkeys(sets):
        sampler = make_sampler(P.arm(arm_key).diffusion, models[arm_key], use_timesteps=kept, device=device,
                               **SAMPLER_OPTIONS[sampler_name])
        scores, images = sample_and_score(sampler, n, ref, batch_size=P.eval.batch_size, seed=seed, device=device)
        out[(arm_key, sampler_name, kept, n)] = (scores["FID"], images[:16])
    return out


def skip_study(P, skip_sets, fids: Dict[tuple, tuple]) -> Tuple[Dict[str, tuple], List[Dict[str, Any]]]:
    """FID against the skipped fraction of the reverse process, per skip run: ``(curves, rows)`` with
    ``curves = {label: (fractions, FIDs)}`` and rows holding the start step and ᾱ there."""
    from lt_diffusion.diffusion import GaussianDiffusion
    from lt_diffusion.schedules import get_named_beta_schedule

    curves, rows = {}, []
    for key in P.skip_runs:
        schedule = P.arm(key).diffusion.noise_schedule
        alphas_cumprod = GaussianDiffusion(get_named_beta_schedule(schedule, P.T)).alphas_cumprod
        values = [fids[skip_sets[(key, f)]][0] for f in P.skip_fractions]
        for f, value in zip(P.skip_fractions, values):
            t_start = max(skip_sets[(key, f)][2]) + 1
            rows.append({"schedule": schedule, "skipped f": f, "start t": t_start,
                         "alpha_bar at start": alphas_cumprod[t_start - 1], "FID": value})
        curves[P.arm(key).label] = (np.array(P.skip_fractions), np.array(values))
    return curves, rows


def step_study(P, step_sets, fids: Dict[tuple, tuple]) -> Tuple[Dict[str, tuple], List[Dict[str, Any]]]:
    """FID against the number of sampling steps per sampler of the fewer-steps sweep: ``(curves, rows)``."""
    from lt_diffusion.presets.improved_ddpm import STEP_ARM_LABELS

    curves, rows = {}, []
    for name in P.step_arms:
        values = [fids[step_sets[(name, K)]][0] for K in P.step_sweep]
        rows += [{"sampler": STEP_ARM_LABELS[name], "steps": K, "FID": v} for K, v in zip(P.step_sweep, values)]
        curves[STEP_ARM_LABELS[name]] = (np.array(P.step_sweep), np.array(values))
    return curves, rows


def paper_directions(P, bpd: Dict[str, float], fid: Dict[str, float], noise_rows, skip_rows,
                     step_rows) -> List[Tuple[str, float, float]]:
    """The paper's findings that this run can test, as ``(finding, a, b)``: the paper finds ``a < b``.

    Likelihood (Table 2), loss noise (Fig. 6), L_hybrid's FID against L_vlb's (Table 2), the samplers at the
    fewest steps (Fig. 8) and the FID cost of skipping the start of the reverse process (Fig. 4), each only when
    the preset holds the arms it needs."""
    from lt_diffusion.presets.improved_ddpm import STEP_ARM_LABELS

    noise = {row["run"]: row["std / mean"] for row in noise_rows}
    skip = {(row["schedule"], row["skipped f"]): row["FID"] for row in skip_rows}
    step = {(row["sampler"], row["steps"]): row["FID"] for row in step_rows}
    checks = [
        ("NLL: cosine < linear (L_simple)", bpd["cosine_simple"], bpd["linear_simple"]),
        ("NLL: cosine < linear (L_hybrid)", bpd["cosine_hybrid"], bpd["linear_hybrid"]),
        ("NLL: L_hybrid < L_simple (cosine)", bpd["cosine_hybrid"], bpd["cosine_simple"]),
        ("NLL: L_vlb + IS < L_hybrid (cosine)", bpd["cosine_vlb_is"], bpd["cosine_hybrid"]),
        ("NLL: L_vlb + IS < L_vlb uniform", bpd["cosine_vlb_is"], bpd["cosine_vlb_uniform"]),
        ("loss noise (std/mean): IS < uniform", noise[P.arm("cosine_vlb_is").label],
         noise[P.arm("cosine_vlb_uniform").label]),
    ]
    if {"cosine_vlb_is", "cosine_hybrid"} <= set(fid):
        checks.append(("FID: L_hybrid < L_vlb + IS (cosine)", fid["cosine_hybrid"], fid["cosine_vlb_is"]))
    k_min = min(P.step_sweep)
    for a, b in (("learned", "fixed_large"), ("ddim", "learned")):
        if a in P.step_arms and b in P.step_arms:
            checks.append((f"FID at {k_min} steps: {STEP_ARM_LABELS[a]} < {STEP_ARM_LABELS[b]}",
                           step[(STEP_ARM_LABELS[a], k_min)], step[(STEP_ARM_LABELS[b], k_min)]))
    f_skip = 0.2 if 0.2 in P.skip_fractions else max(P.skip_fractions)
    if 0.0 in P.skip_fractions and set(P.skip_runs) == {"linear_simple", "cosine_simple"}:
        checks.append((f"FID increase when skipping {f_skip:.0%}: linear < cosine",
                       skip[("linear", f_skip)] - skip[("linear", 0.0)],
                       skip[("cosine", f_skip)] - skip[("cosine", 0.0)]))
    return checks
