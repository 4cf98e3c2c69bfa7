"""The glue of chapters 03 (ADM) and 04 (classifier-free guidance): the lab table, ADM's ablation at equal steps
and equal time, the two forms of classifier guidance compared step by step, the guidance sweeps on CIFAR-10 and the
cost of one guided sample.

Notebooks narrate, the package computes: each function here is one experiment of a chapter, called in one line;
the equations they test are derived in the chapters (03: Eqs. {eq}`adm-ancestral`, {eq}`adm-ddim`,
{eq}`adm-forms-agree`; 04: Eqs. {eq}`cfg-eps`, {eq}`cfg-tilted`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .build import _null_label_of   # the null label of a class-conditional model (its num_classes)

__all__ = ["source_without_docstring", "adm_ablation", "guidance_form_shifts", "classifier_guidance_sweep", "guidance_grids",
           "cfg_by_hand_check", "toy_tilted_rows", "toy_guided_draws", "cfg_forward_check", "cfg_sweep",
           "cfg_classifier_sweep", "guidance_cost_rows"]


# --------------------------------------------------------------------------------------------------
# both chapters
# --------------------------------------------------------------------------------------------------
def source_without_docstring(fn) -> str:
    """The source of function ``fn`` without its docstring, for a chapter that prints the code of its paper and
    explains it in its own prose."""
    import ast
    import inspect
    import textwrap

    src = textwrap.dedent(inspect.getsource(fn))
    body = ast.parse(src).body[0].body
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines = src.splitlines(keepends=True)
        del lines[first.lineno - 1:first.end_lineno]
        src = "".join(lines)
    return src






# --------------------------------------------------------------------------------------------------
# chapter 03: ADM
# --------------------------------------------------------------------------------------------------
def adm_ablation(P, ref, *, seed: int = 0, device=None, checkpoint_dir=None) -> List[Dict[str, Any]]:
    """ADM's architecture ablation (Dhariwal & Nichol 2021, Table 1) at a small budget: each variant of
    ``P.ablation_variants`` is the arm ``ablation_<name>``, trained (or loaded from ``checkpoint_dir``) with a
    :class:`~lt_diffusion.experiments.Marks` callback that snapshots its EMA weights at ``P.ablation_steps`` steps
    and at ``P.ablation_seconds`` seconds of training; FID of ``P.ablation_eval`` DDIM samples at each mark.

    Returns one row per variant: parameters (M), FID at equal steps and at equal time, and the step and seconds of
    each mark.
    """
    from lt_diffusion.models import count_parameters
    from .build import make_sampler
    from .evaluate import sample_and_score
    from .runs import train_or_load
    from .training import Marks, train_model

    if checkpoint_dir is None:   # warm-up (CUDA context, cuDNN autotuning), so the first variant's clock is fair
        warm = P.arm("ablation_baseline")
        train_model(dataclasses.replace(warm, train=dataclasses.replace(warm.train, steps=2)), seed=seed,
                    device=device)
    rows = []
    for name in P.ablation_variants:
        arm = P.arm(f"ablation_{name}")
        marks = Marks(P.ablation_steps, P.ablation_seconds)
        train_or_load(P, f"ablation_{name}", checkpoint_dir=checkpoint_dir, seed=seed, device=device,
                      every=arm.train.log_every, on_chunk=marks)
        row = {"variant": name, "params (M)": count_parameters(marks.snapshots["steps"][0]) / 1e6}
        fid_at_step = {}   # both marks on one snapshot (same step): same weights, one evaluation
        for mark in ("steps", "time"):
            ema, step, secs = marks.snapshots[mark]
            if step not in fid_at_step:
                sampler = make_sampler(arm.diffusion, ema, sample_steps=P.ablation_eval.sample_steps, method="ddim")
                fid_at_step[step] = sample_and_score(sampler, P.ablation_eval.num_samples, ref,
                                                     batch_size=P.eval.batch_size, seed=seed)[0]["FID"]
            row.update({f"FID @ equal {mark}": fid_at_step[step], f"step @ {mark}": step, f"s @ {mark}": secs})
        rows.append(row)
    return rows


def guidance_form_shifts(spec, sample_steps, seed: int = 0) -> Dict[str, Any]:
    """The mean shift of one reverse step under the two forms of classifier guidance, per unit ``s·g``
    (chapter 03, Eq. {eq}`adm-forms-agree`), from the package's ``condition_mean`` (ancestral, Σ_t g) and
    ``condition_score`` (DDIM form), on ``spec``'s diffusion respaced to ``sample_steps`` with fixed Σ_t = β_t.

    The model predicts ε = 0 and the gradient is 1 everywhere (the shift depends on neither); x̂_0 is not clipped.
    Returns ``t`` (original-scale timesteps of respaced steps 1..K-1), ``shift`` ({form: [shift per step]}),
    ``ratio`` (DDIM form / ancestral, a tensor) and ``closed`` (1/√α_t, the closed form of the ratio).
    """
    from .build import build_diffusion

    spaced = build_diffusion(dataclasses.replace(spec, loss="simple", learn_sigma=False),
                             timestep_respacing=sample_steps, sigma_small=False)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    eps_zero = lambda x, t, **kw: torch.zeros_like(x)   # noqa: E731
    unit_grad = lambda x, t, **kw: torch.ones_like(x)   # noqa: E731
    ancestral, ddim = [], []
    for k in range(1, spaced.num_timesteps):
        t = torch.full((2,), k, dtype=torch.long)
        out = spaced.p_mean_variance(eps_zero, x, t, clip_denoised=False)
        ancestral.append(float((spaced.condition_mean(unit_grad, out, x, t) - out["mean"]).mean()))
        ddim.append(float((spaced.condition_score(unit_grad, out, x, t)["mean"] - out["mean"]).mean()))
    ratio = torch.tensor(ddim, dtype=torch.float64) / torch.tensor(ancestral, dtype=torch.float64)
    closed = torch.as_tensor(1.0 / (1.0 - spaced.betas[1:]) ** 0.5)
    return {"t": [int(v) for v in spaced.timestep_map[1:]], "ratio": ratio, "closed": closed,
            "shift": {"ancestral: Σ_t (condition_mean)": ancestral, "DDIM form: β_t/√α_t (condition_score)": ddim}}


def _classifier_sampler(P, model, classifier, scale: float, *, steps: int, method: str, unconditional: bool):
    from lt_diffusion.guidance import classifier_cond_fn
    from .build import make_sampler

    return make_sampler(P.arm("guided").diffusion, model, sample_steps=steps, method=method,
                        unconditional=unconditional,
                        cond_fn=classifier_cond_fn(classifier, scale=scale) if scale > 0 else None)


def classifier_guidance_sweep(P, model, classifier, ref, *, seed: int = 0) -> List[Dict[str, Any]]:
    """Chapter 03's sweep of the classifier scale s: FID, precision and recall of ``P.eval.num_samples`` samples
    (classes balanced) for the unconditional model (null label; the label goes only to the classifier) and the
    conditional model with the DDIM form (Eq. {eq}`adm-ddim`), and for the unconditional model with the ancestral
    form (Eq. {eq}`adm-ancestral`, ``P.ancestral_steps`` steps) at ``P.ancestral_scales``.

    Returns rows ``{"model", "form", "scale s", "FID", "precision", "recall"}``.
    """
    from .evaluate import score_sweep

    labels = torch.arange(P.eval.num_samples) % P.arm("guided").model.num_classes
    arms = [("unconditional", "ddim", P.guidance_scales_uncond), ("conditional", "ddim", P.guidance_scales_cond),
            ("unconditional", "ancestral", P.ancestral_scales)]
    rows = []
    for kind, form, scales in arms:
        steps = P.eval.sample_steps if form == "ddim" else P.ancestral_steps
        samplers = {s: _classifier_sampler(P, model, classifier, s, steps=steps, method=form,
                                           unconditional=kind == "unconditional") for s in scales}
        for r in score_sweep(samplers, P.eval.num_samples, ref, key="scale s", batch_size=P.eval.batch_size,
                             labels=labels, seed=seed, metrics=("fid", "pr")):
            rows.append({"model": kind, "form": f"{form} {steps}", **r})
    return rows


def guidance_grids(P, model, classifier, *, seed: int = 0) -> Dict[str, torch.Tensor]:
    """Samples of class ``P.grid_class`` from the unconditional model under classifier guidance: one row per scale
    of ``P.grid_scales`` (DDIM form, the same seed in every row), then a last row with the ancestral form at the
    largest scale. Returns ``{title: uint8 (P.eval.grid, 3, H, W)}``."""
    from lt_diffusion.sampling import generate

    n = P.eval.grid
    draw = lambda steps, method, s: generate(  # noqa: E731
        _classifier_sampler(P, model, classifier, s, steps=steps, method=method, unconditional=True), n,
        min(P.eval.batch_size, n), labels=P.grid_class, seed=seed, progress=False)
    rows = {f"s={s:g}, DDIM {P.eval.sample_steps} steps": draw(P.eval.sample_steps, "ddim", s) for s in P.grid_scales}
    s_max = max(P.grid_scales)
    rows[f"s={s_max:g}, ancestral {P.ancestral_steps} steps"] = draw(P.ancestral_steps, "ancestral", s_max)
    return rows


# --------------------------------------------------------------------------------------------------
# chapter 04: classifier-free guidance
# --------------------------------------------------------------------------------------------------
def cfg_by_hand_check(mix, exact, num_steps: int, ws: Sequence[float] = (0.0, 1.0, 3.0),
                      seed: int = 0) -> Dict[float, float]:
    """``{w: max |difference|}`` between the package's :func:`~lt_diffusion.guidance.cfg_model_fn` around the toy's
    exact model and Eq. {eq}`cfg-eps` written out with the mixture's exact ε, at 64 random points, times, labels."""
    from lt_diffusion.guidance import cfg_model_fn

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 2, generator=g, dtype=torch.float64)
    t = torch.randint(0, num_steps, (64,), generator=g)
    y = torch.randint(0, mix.num_classes, (64,), generator=g)
    abar = torch.as_tensor(exact.alphas_cumprod)[t]
    out = {}
    for w in ws:
        by_hand = (1 + w) * mix.eps(x, abar, y) - w * mix.eps(x, abar, None)
        packaged = cfg_model_fn(exact, w, null_label=mix.num_classes)(x, t.double() * exact.timestep_scale, y=y)
        out[float(w)] = float((packaged - by_hand).abs().max())
    return out


def toy_tilted_rows(mix, ws: Sequence[float] = (0.0, 1.0, 3.0, 8.0), y: int = 0, lim: float = 3.0,
                    n: int = 161) -> List[Dict[str, float]]:
    """The tilted density p̃_w(x | c) of Eq. {eq}`cfg-tilted` at t = 0 for class ``y``, on an ``n × n`` grid:
    for each w the expected posterior of the class E[p(c | x)], the spread (root mean squared distance from the
    mean) and the distance of the mean from the origin. Exact (no sampling)."""
    from lt_diffusion import toy2d

    rows = []
    for w in ws:
        xs, ys, dens = toy2d.density_grid(mix, y=y, w=w, lim=lim, n=n)
        X, Y = np.meshgrid(xs, ys)
        pts = torch.as_tensor(np.stack([X.ravel(), Y.ravel()], 1))
        post = mix.class_posterior(pts)[:, y].numpy().reshape(X.shape)
        mean = np.array([(dens * X).sum(), (dens * Y).sum()])
        spread = np.sqrt((dens * ((X - mean[0]) ** 2 + (Y - mean[1]) ** 2)).sum())
        rows.append({"w": w, "g = 1+w": 1 + w, "E[p(c|x)]": float((dens * post).sum()), "spread": float(spread),
                     "mean distance from origin": float(np.linalg.norm(mean))})
    return rows


def toy_guided_draws(mix, models: Dict[str, Any], sampler, ws: Sequence[float], samples_per_class: int,
                     seed: int = 0):
    """CFG samples of the toy with the package's DDIM loop and :func:`~lt_diffusion.guidance.cfg_model_fn`, for each
    denoiser of ``models`` (``{name: model}``) and each w (the same noise for every w).

    Returns ``(stats, draws)``: rows of :func:`lt_diffusion.toy2d.guided_sample_stats` with ``denoiser`` and ``w``,
    and ``{(name, w): (x0 (N, 2), labels (N,))}``."""
    from lt_diffusion import toy2d
    from lt_diffusion.guidance import cfg_model_fn

    labels = torch.arange(mix.num_classes).repeat_interleave(samples_per_class)
    stats, draws = [], {}
    for name, model in models.items():
        for w in ws:
            fn = cfg_model_fn(model, w, null_label=mix.num_classes) if w != 0 else model
            with torch.no_grad():
                x0 = sampler.ddim_sample_loop(fn, (len(labels), 2), clip_denoised=False, model_kwargs={"y": labels},
                                              generator=torch.Generator().manual_seed(seed), device="cpu")
            draws[(name, w)] = (x0, labels)
            stats.append({"denoiser": name, "w": w, **toy2d.guided_sample_stats(mix, x0, labels)})
    return stats, draws


def cfg_forward_check(spec, model, w: float, sample_steps: int, *, seed: int = 0, device=None) -> Dict[str, Any]:
    """Does the guided ε̃ cost one forward pass per step? A forward pre-hook on ``model`` records the batch of every
    call while the package's DDIM loop draws 4 CFG samples at weight ``w``; then one call of the wrapper is compared
    with Eq. {eq}`cfg-eps` from two separate forward passes (ε channels only).

    Returns ``{"calls": number of UNet calls, "batches": sorted set of their batch sizes, "max_diff": float}``."""
    from lt_diffusion.guidance import cfg_model_fn
    from lt_diffusion.sampling import generate
    from .build import make_sampler

    null = _null_label_of(model)
    calls: List[int] = []
    hook = model.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    try:
        generate(make_sampler(spec, model, sample_steps=sample_steps, method="ddim", guidance_scale=w), 4, 4,
                 labels=torch.arange(4) % null, seed=seed, progress=False)
    finally:
        hook.remove()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(seed)).to(device)
    t = torch.full((4,), 500.0, device=device)
    y = torch.arange(4, device=device)
    with torch.no_grad():
        one = cfg_model_fn(model, w, null_label=null)(x, t, y=y)
        two = (1 + w) * model(x, t, y=y) - w * model(x, t, y=torch.full_like(y, null))
    C = x.shape[1]
    return {"calls": len(calls), "batches": sorted(set(calls)),
            "max_diff": float((one[:, :C] - two[:, :C]).abs().max())}


def cfg_sweep(P, models: Dict[float, Any], ref, *, seed: int = 0) -> List[Dict[str, Any]]:
    """Chapter 04's w sweep: for each ``{p_uncond: EMA model}``, FID, precision and recall of ``P.eval.num_samples``
    DDIM samples (classes balanced) at every w of ``P.ws`` (w = 0: the conditional model, one forward per step).
    Returns rows ``{"method", "p_uncond", "w", "g = 1+w", "FID", "precision", "recall"}``."""
    from .build import make_sampler
    from .evaluate import score_sweep

    rows = []
    for p, model in models.items():
        spec = P.arm(f"p_uncond_{p}").diffusion
        null = _null_label_of(model)
        samplers = {w: make_sampler(spec, model, sample_steps=P.eval.sample_steps, method="ddim",
                                    guidance_scale=w if w != 0 else None) for w in P.ws}
        for r in score_sweep(samplers, P.eval.num_samples, ref, key="w", batch_size=P.eval.batch_size,
                             labels=torch.arange(P.eval.num_samples) % null, seed=seed, metrics=("fid", "pr")):
            w = r.pop("w")
            rows.append({"method": f"CFG p_uncond={p}", "p_uncond": p, "w": w, "g = 1+w": 1 + w, **r})
    return rows


def cfg_classifier_sweep(P, model, classifier, ref, cfg_w0: Optional[Dict[str, Any]] = None, *,
                         seed: int = 0) -> List[Dict[str, Any]]:
    """Classifier guidance (chapter 03) on the CFG chapter's conditional ``model`` at the scales
    ``P.classifier_scales`` (the label goes to the model and to the classifier), DDIM, the same samples budget and
    seed as :func:`cfg_sweep`. Scale 0 is no guidance, the same call as CFG w = 0 on this model: its row is
    ``cfg_w0``'s scores. Returns rows ``{"method", "s", "FID", "precision", "recall"}``."""
    from lt_diffusion.guidance import classifier_cond_fn
    from .build import make_sampler
    from .evaluate import score_sweep

    spec = P.arm("classifier").diffusion
    guided = score_sweep({s: make_sampler(spec, model, sample_steps=P.eval.sample_steps, method="ddim",
                                          cond_fn=classifier_cond_fn(classifier, scale=s))
                          for s in P.classifier_scales if s > 0}, P.eval.num_samples, ref, key="s",
                         batch_size=P.eval.batch_size, labels=torch.arange(P.eval.num_samples) % _null_label_of(model),
                         seed=seed, metrics=("fid", "pr"))
    zero = ([{"s": 0.0, **{k: cfg_w0[k] for k in ("FID", "precision", "recall")}}]
            if cfg_w0 is not None and 0.0 in P.classifier_scales else [])
    return [{"method": "classifier guidance", **r} for r in zero + guided]


def guidance_cost_rows(P, model, classifier, *, device=None) -> List[Dict[str, Any]]:
    """Seconds per image of the conditional model unguided, with CFG at ``P.grid_w`` and with classifier guidance
    at the largest of ``P.classifier_scales``: one batch of ``P.cost_batch`` images, ``P.cost_steps`` DDIM steps,
    after a warm-up (:func:`~lt_diffusion.experiments.seconds_per_sample`). Rows ``{"method", "network evaluations
    / step", "s / image", "relative"}`` (relative to the unguided model)."""
    from lt_diffusion.guidance import classifier_cond_fn
    from .build import make_sampler
    from .evaluate import seconds_per_sample

    n, s = P.cost_batch, max(P.classifier_scales)
    timed = {"conditional, no guidance": ("1 UNet forward (B)", {}),
             f"CFG w={P.grid_w:g}": ("1 UNet forward on 2B", {"guidance_scale": P.grid_w}),
             f"classifier guidance s={s:g}": ("1 UNet forward + classifier forward and backward (B)",
                                              {"cond_fn": classifier_cond_fn(classifier, scale=s)})}
    spec = P.arm("classifier").diffusion
    rows = [{"method": name, "network evaluations / step": evals,
             "s / image": seconds_per_sample(make_sampler(spec, model, sample_steps=P.cost_steps, method="ddim", **kw),
                                             n, labels=torch.arange(n) % _null_label_of(model), device=device)}
            for name, (evals, kw) in timed.items()]
    for r in rows:
        r["relative"] = r["s / image"] / rows[0]["s / image"]
    return rows
