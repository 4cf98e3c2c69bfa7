"""Glue of the two loss-hook chapters: 05 (P2 weighting, the ``loss_weight`` hook) and 06 (CBDM, the
``regularizer`` hook). The notebooks narrate; the tables and the loops they would otherwise spell out live here.

* :func:`arm_diff` and :func:`loss_terms_check` — "the paper as a diff": the fields in which two arms' diffusion
  specs differ, and the training-loss terms of both engines on one batch, with the identity the hook promises
  (``loss = loss_weight · mse + reg``) checked, so the listing cannot drift from the code.
* Chapter 05's deterministic tables (:func:`p2_weight_table`, :func:`p2_stage_table`, :func:`p2_residual_table`).
* Chapter 06's evaluation loops (:func:`cbdm_score_main`, :func:`cbdm_sweep`, :func:`cbdm_single_seed_rows`).
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

__all__ = ["EVERY_SEED_ARMS", "arm_diff", "loss_terms_check", "p2_weight_table", "p2_stage_table", "p2_residual_table",
           "seed_dir", "cbdm_recipe_table", "cbdm_score_main", "cbdm_group_rows", "cbdm_sweep",
           "cbdm_single_seed_rows"]


# --------------------------------------------------------------------------------------------------
# shared by 05 and 06
# --------------------------------------------------------------------------------------------------




def arm_diff(base, arm, names: Tuple[str, str] = ("baseline", "method")) -> str:
    """A unified diff of two arms' :class:`~lt_diffusion.experiments.DiffusionSpec` (one ``field = value`` line
    each, computed from the dataclasses, so it follows the presets), followed by the engine hooks that
    :func:`~lt_diffusion.experiments.build_diffusion` builds from them."""
    def lines(a) -> List[str]:
        return [f"{k} = {v!r}" for k, v in dataclasses.asdict(a.diffusion).items()]

    return "\n".join(difflib.unified_diff(lines(base), lines(arm), f"{names[0]} spec", f"{names[1]} spec",
                                          lineterm="", n=0))


def loss_terms_check(base, arm, *, seed: int = 0, batch: int = 4, class_counts: Optional[Sequence[int]] = None,
                     names: Tuple[str, str] = ("baseline", "method")):
    """The training-loss terms of the two arms' engines on one batch, and the identity the hooks promise.

    Both engines (``build_diffusion`` of each arm's spec) see the same untrained network (``base``'s model, built
    with ``seed``; its zero-initialised layers are filled with small random weights, so that its prediction
    depends on x_t, t and the label, as a trained network's does), the same ``x_start`` ``(batch, C, H, W)``
    (uniform in [-1, 1]), the same timesteps (spread evenly over the chain), labels and noise.
    ``GaussianDiffusion.training_losses`` returns ``(B,)`` terms; the check is ``loss = loss_weight · mse + reg``
    (a missing term: weight 1, reg 0) for the second engine, and that both engines compute the same ``mse``.
    Returns ``(table, max_abs_error)``; raises when the identity fails.
    """
    from lt_diffusion import plotting
    from lt_diffusion.experiments.build import build_diffusion, build_model

    gen = torch.Generator().manual_seed(seed)
    model = build_model(base, seed=seed).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim > 1 and not p.any():   # zero-initialised output layers (Ho et al. 2020's init)
                p.normal_(0.0, 0.05, generator=gen)
    cfg = base.model
    k = getattr(cfg, "num_classes", None)
    shape = (batch, getattr(cfg, "in_channels", 3), getattr(cfg, "image_size", 32), getattr(cfg, "image_size", 32))
    x0 = torch.rand(shape, generator=gen) * 2 - 1
    noise = torch.randn(shape, generator=gen)
    steps = base.diffusion.steps
    t = torch.linspace(0, steps - 1, batch).round().long()
    kwargs = {"y": torch.randint(0, k, (batch,), generator=gen)} if k else {}
    build = dict(num_classes=k, class_counts=class_counts) if k else {}
    terms = {}
    torch.manual_seed(seed)   # y' of a CBDM regulariser is drawn from the global generator
    with torch.no_grad():
        for name, a in zip(names, (base, arm)):
            terms[name] = build_diffusion(a.diffusion, **build).training_losses(model, x0, t, dict(kwargs),
                                                                              noise=noise.clone())
    b, m = terms[names[0]], terms[names[1]]
    expected = m.get("loss_weight", torch.ones_like(m["mse"])) * m["mse"] + m.get("reg", torch.zeros_like(m["mse"]))
    err = max(float((m["loss"] - expected).abs().max()), float((m["mse"] - b["mse"]).abs().max()))
    if err > 1e-5 * max(1.0, float(m["loss"].abs().max())):
        raise AssertionError(f"the hook identity fails: max error {err:.3g}")
    rows = []
    for i in range(batch):
        row = {"t": int(t[i]), f"{names[0]} loss": float(b["loss"][i])}
        row.update({f"{names[1]} {key}": float(v[i]) for key, v in m.items() if key != "mse" and key != "loss"})
        row[f"{names[1]} loss"] = float(m["loss"][i])
        rows.append(row)
    return plotting.metrics_table(rows), err


# --------------------------------------------------------------------------------------------------
# chapter 05: P2 weighting (deterministic tables on the T = 1000 schedules)
# --------------------------------------------------------------------------------------------------
def _schedule(name: str, steps: int):
    from lt_diffusion.diffusion import GaussianDiffusion
    from lt_diffusion.schedules import get_named_beta_schedule

    return GaussianDiffusion(get_named_beta_schedule(name, steps))


def p2_weight_table(gammas: Sequence[float], k: float = 1.0, ts: Sequence[int] = (0, 250, 500, 750, 999),
                    steps: int = 1000):
    """SNR(t), the P2 factor 1/(k + SNR_t)^γ for each γ, and λ_t (Eq. {eq}`p2-lambda`) at steps ``ts`` of the
    linear schedule with ``steps`` steps (chapter 05)."""
    from lt_diffusion import plotting
    from lt_diffusion.weighting import P2Weight, p2_lambda_t, snr

    d = _schedule("linear", steps)
    s, lam = snr(d.alphas_cumprod), p2_lambda_t(d.betas)
    w = {g: P2Weight(g, k).weights(d) for g in gammas}
    rows = [{"t": t, "SNR(t)": s[t], **{f"P2 factor, γ = {g:g}": w[g][t] for g in gammas}, "λ_t": lam[t]}
            for t in ts]
    return plotting.metrics_table(rows)


def p2_stage_table(steps: int = 1000):
    """For the linear and the cosine schedule: how many of ``steps`` steps fall in the coarse (SNR < 1e-2),
    content (1e-2..1) and clean-up (> 1) stages, the SNR range, and where λ_t peaks (chapter 05)."""
    from lt_diffusion import plotting
    from lt_diffusion.weighting import p2_lambda_t, snr

    rows = []
    for name in ("linear", "cosine"):
        d = _schedule(name, steps)
        s, lam = snr(d.alphas_cumprod), p2_lambda_t(d.betas)
        rows.append({"schedule": name, "coarse steps": int((s < 1e-2).sum()),
                     "content steps": int(((s >= 1e-2) & (s <= 1)).sum()), "clean-up steps": int((s > 1).sum()),
                     "SNR min": float(s.min()), "SNR max": float(s.max()), "λ_t at t = 0": float(lam[0]),
                     "λ_t max": float(lam.max()), "at t": int(lam.argmax()),
                     f"λ_t at t = {steps - 1}": float(lam[-1])})
    return plotting.metrics_table(rows, formats={"SNR min": ".2g", "SNR max": ".3g", "λ_t at t = 0": ".3g",
                                                 "λ_t max": ".1f", f"λ_t at t = {steps - 1}": ".1f"})


def p2_residual_table(gammas: Sequence[float] = (0.0, 0.5, 1.0, 2.0, 3.0), last: int = 10, k: float = 1.0,
                      steps: int = 1000):
    """The discrete Eq. {eq}`p2-residual`: the share of Σ_t 1/(w_t · SNR_t) that comes from the ``last``
    least-noisy steps, per schedule and γ (chapter 05)."""
    from lt_diffusion import plotting
    from lt_diffusion.weighting import P2Weight, snr

    rows = []
    for name in ("linear", "cosine"):
        d = _schedule(name, steps)
        s = snr(d.alphas_cumprod)
        row = {"schedule": name}
        for g in gammas:
            r = 1.0 / (P2Weight(g, k).weights(d) * s)
            row[f"γ = {g:g}"] = float(r[:last].sum() / r.sum())
        rows.append(row)
    return plotting.metrics_table(rows, formats={f"γ = {g:g}": ".3f" for g in gammas})


# --------------------------------------------------------------------------------------------------
# chapter 06: CBDM on CIFAR-10-LT (evaluation loops)
# --------------------------------------------------------------------------------------------------
#: chapter 06's arms trained at every seed of its preset (the other arms at the first seed only); the
#: reproduction commands of `lt-diffusion` read this too
EVERY_SEED_ARMS = ("baseline", "cbdm")


def seed_dir(checkpoint_dir, seed: int):
    """Chapter 06's saved runs: one ``lt-diffusion train`` folder per seed, ``<checkpoint_dir>/seed<seed>``
    (``None`` when ``checkpoint_dir`` is ``None``: train here)."""
    from pathlib import Path

    return None if checkpoint_dir is None else Path(checkpoint_dir) / f"seed{int(seed)}"


def cbdm_recipe_table(presets: Mapping[str, Any]):
    """The CBDM arm's model, diffusion, training and sampling settings of each preset (``{column name: preset}``),
    one row per setting, so the scale of a run and the official recipe sit side by side (chapter 06)."""
    from lt_diffusion import plotting

    cols = {}
    for name, p in presets.items():
        m, t, d = p.arm("cbdm").model, p.arm("cbdm").train, p.arm("cbdm").diffusion
        cols[name] = {"channels": m.model_channels, "channel mult": str(m.channel_mult),
                      "res blocks": m.num_res_blocks, "attention at": str(m.attention_resolutions),
                      "dropout": m.dropout, "T": d.steps, "β schedule": d.noise_schedule,
                      "variance": "fixed small" if d.sigma_small else "fixed large (β_t)", "lr": t.lr,
                      "warm-up": t.warmup_steps, "grad clip": t.grad_clip, "EMA": t.ema_rate, "batch": t.batch_size,
                      "steps": t.steps, "label drop": f"{t.p_uncond} ({t.uncond_mode})",
                      "τ, γ": f"{d.cbdm_tau:g}, {d.cbdm_gamma:g}", "sampler": f"{p.eval.sample_steps}-step ancestral",
                      "ω": p.omega}
    first = next(iter(cols.values()))
    return plotting.metrics_table([{"setting": k, **{n: str(c[k]) for n, c in cols.items()}} for k in first])


def cbdm_score_main(P, models: Mapping[Tuple[str, int], Any], ref, seeds: Sequence[int], *, device=None,
                    names: Sequence[str] = ("baseline", "CBDM")) -> Dict[Tuple[str, int], Dict[str, Any]]:
    """The main comparison of chapter 06: for each arm name and seed, class-balanced labels, ``P.eval.num_samples``
    CFG samples at ω = ``P.omega`` (respaced ancestral, ``P.eval.sample_steps``), scored with FID, KID,
    precision/recall and the long-tail breakdown (:func:`~lt_diffusion.experiments.sample_and_score`). Arms of
    the same seed start from the same noise and labels (paired). Returns ``{(name, seed): scores + "images",
    "labels"}``."""
    from lt_diffusion import longtail
    from lt_diffusion.experiments.build import make_sampler
    from lt_diffusion.experiments.evaluate import sample_and_score

    K = P.arm("baseline").model.num_classes
    out = {}
    for name in names:
        for seed in seeds:
            labels = longtail.balanced_labels(P.eval.num_samples, K,
                                              generator=torch.Generator().manual_seed(1000 + seed))
            sampler = make_sampler(P.arm("baseline").diffusion, models[(name, seed)], sample_steps=P.eval.sample_steps,
                                   guidance_scale=P.omega, device=device)
            scores, images = sample_and_score(sampler, P.eval.num_samples, ref, batch_size=P.eval.batch_size,
                                              labels=labels, seed=1000 + seed, metrics=("fid", "pr", "kid", "lt"),
                                              k=P.recall_k, kid_subset=P.kid_subset, device=device)
            out[(name, seed)] = {**scores, "images": images, "labels": labels}
    return out


def cbdm_group_rows(main: Mapping[Tuple[str, int], Mapping[str, Any]], seeds: Sequence[int],
                    names: Sequence[str] = ("baseline", "CBDM")):
    """Per arm, means over seeds of the head / mid / tail FID and of the rank correlation between a class's
    training count and its FID (chapter 06)."""
    from lt_diffusion import longtail

    rows = []
    for name in names:
        row = {"arm": name}
        for g in longtail.GROUP_NAMES:
            row[f"{g} FID"] = float(np.mean([main[(name, s)]["lt"]["groups"][g]["union_fid"] for s in seeds]))
        row["rank corr(count, FID)"] = float(np.mean([main[(name, s)]["lt"]["rank_corr"] for s in seeds]))
        rows.append(row)
    return rows


def cbdm_sweep(P, models: Mapping[Tuple[str, int], Any], main, ref, s0: int, *, device=None,
               names: Sequence[str] = ("baseline", "CBDM")) -> List[Dict[str, Any]]:
    """FID, precision and recall against ω (``P.omega_sweep``) for each arm's first-seed model, ``P.sweep_samples``
    samples per point, every point with the same labels and noise as the first ``sweep_samples`` of the main
    comparison; the point at ``P.omega`` re-scores those main samples instead of drawing new ones. ``s0``: the
    first seed."""
    from lt_diffusion.experiments.build import make_sampler
    from lt_diffusion.experiments.evaluate import sample_and_score, score_features
    from lt_diffusion.metrics import compute_features

    rows = []
    labels = main[(names[0], s0)]["labels"][:P.sweep_samples]
    scoring = dict(k=P.recall_k, kid_subset=P.kid_subset, device=device)
    for name in names:
        for omega in P.omega_sweep:
            if omega == P.omega:
                r = score_features(compute_features(main[(name, s0)]["images"][:P.sweep_samples], progress=False),
                                   ref, metrics=("fid", "pr"), **scoring)
            else:
                sampler = make_sampler(P.arm("baseline").diffusion, models[(name, s0)],
                                       sample_steps=P.eval.sample_steps, guidance_scale=omega, device=device)
                r = sample_and_score(sampler, P.sweep_samples, ref, batch_size=P.eval.batch_size, labels=labels,
                                     seed=1000 + s0, metrics=("fid", "pr"), **scoring)[0]
            rows.append({"arm": name, "ω": omega, "FID": r["FID"], "precision": r["precision"], "recall": r["recall"]})
    return rows


def cbdm_single_seed_rows(P, models: Mapping[Tuple[str, int], Any], main, sweep_rows, ref, s0: int, *,
                          device=None) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """Chapter 06's single-seed rows at ω = ``P.omega`` with the sweep's labels and noise: the ablations (every
    arm but baseline and CBDM; the first two rows are the sweep's baseline and CBDM points) and, when
    ``P.ddim_steps``, DDIM against the ancestral sampler for baseline and CBDM. Returns ``(ablation rows, DDIM
    rows)``."""
    from lt_diffusion.experiments.build import make_sampler
    from lt_diffusion.experiments.evaluate import sample_and_score

    labels = main[("baseline", s0)]["labels"][:P.sweep_samples]
    at = {r["arm"]: r for r in sweep_rows if r["ω"] == P.omega}
    metrics3 = ("FID", "precision", "recall")

    def score(model, **kw):
        sampler = make_sampler(P.arm("baseline").diffusion, model, guidance_scale=P.omega, device=device, **kw)
        return sample_and_score(sampler, P.sweep_samples, ref, batch_size=P.eval.batch_size, labels=labels,
                                seed=1000 + s0, metrics=("fid", "pr"), k=P.recall_k, kid_subset=P.kid_subset,
                                device=device)[0]

    cb = P.arm("cbdm").diffusion
    abl = [{"arm": "baseline (τ = 0)", "τ": 0.0, "y'": "–", "P2 γ": 0.0,
            **{m: at["baseline"][m] for m in metrics3}},
           {"arm": "CBDM", "τ": cb.cbdm_tau, "y'": cb.cbdm_label_dist, "P2 γ": 0.0,
            **{m: at["CBDM"][m] for m in metrics3}}]
    for key, arm in P.arms.items():
        if key in ("baseline", "cbdm"):
            continue
        r, d = score(models[(arm.label, s0)], sample_steps=P.eval.sample_steps), arm.diffusion
        abl.append({"arm": arm.label + (" (beyond the paper)" if d.p2_gamma > 0 else ""), "τ": d.cbdm_tau,
                    "y'": d.cbdm_label_dist, "P2 γ": d.p2_gamma, **{m: r[m] for m in metrics3}})
    ddim = []
    if P.ddim_steps:
        for name in ("baseline", "CBDM"):
            ddim.append({"arm": name, f"FID, ancestral {P.eval.sample_steps} steps": at[name]["FID"],
                         f"FID, DDIM {P.ddim_steps} steps": score(models[(name, s0)], sample_steps=P.ddim_steps,
                                                                  method="ddim")["FID"]})
    return abl, ddim
