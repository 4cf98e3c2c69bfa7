"""Chapter 07 (minority guidance, Um, Lee & Ye 2024): the stages the chapter narrates, one function each.

The exact 2-D toy (:func:`mixture_toy`, :func:`toy_score_curve`, :func:`toy_guidance`) is deterministic and shown
at every scale. The CIFAR-10-LT stages (:func:`train_backbone` … :func:`cifar_claims`) return plain data (tensors,
dicts, table rows); the chapter shows them as results at ``book``/``paper`` and as a
:func:`lt_diffusion.report.pipeline_check` at ``smoke``. Every model goes through
:func:`lt_diffusion.experiments.runs.train_or_load`, so a saved run (``CHECKPOINT_DIR``) replaces training.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from lt_diffusion import guidance, longtail, minority
from lt_diffusion.toy2d import ExactEpsModel, ExactModeClassifier, GaussianMixture

from .build import build_diffusion, load_data, make_sampler
from .runs import train_or_load
from .specs import DataSpec, DiffusionSpec

__all__ = ["TOY_SIGMA", "mixture_toy", "toy_scores", "toy_score_curve", "toy_guidance", "train_backbone",
           "score_training_set", "reconstructions", "train_level_classifier", "guided_sets", "sample_metrics",
           "class_mix", "cifar_claims"]

#: the standard deviation of both modes of the toy mixture
TOY_SIGMA = 0.12


def _sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """d = squared Euclidean distance, the toy's stand-in for LPIPS: (B, 2), (B, 2) -> (B,)."""
    return ((a - b) ** 2).sum(-1)


# --------------------------------------------------------------------------------------------------
# the exact 2-D toy (chapter 07, Eqs. mg-tweedie and mg-mixture)
# --------------------------------------------------------------------------------------------------
def mixture_toy(seed: int = 0, n: int = 200, rare_weight: float = 0.05) -> SimpleNamespace:
    """A common mode (weight 1 − ``rare_weight``) and a rare mode (``rare_weight``), both N(μ_k, σ² I); ``n`` points
    of each, noised once at the official t* = 605 of 1000 (linear schedule) and denoised by the exact posterior mean.

    Returns a namespace: ``toy`` (:class:`~lt_diffusion.toy2d.GaussianMixture`, label = mode), ``diffusion``,
    ``rare_weight``, ``spec``, ``oracle`` (:class:`~lt_diffusion.toy2d.ExactEpsModel`), ``t``, ``abar``, ``n``,
    ``x0`` (2n, 2; common first), ``x_rare`` (n, 2), ``noise``, ``x_t``, and three forms of x̂_0 (2n, 2) that must
    agree: ``x0_hat`` (the engine's ``tweedie_reconstruction``), ``tweedie`` ((x_t + (1-ᾱ) ∇log p_t) / √ᾱ,
    Eq. mg-tweedie) and ``mixture_form`` (Σ_k r_k m_k, Eq. mg-mixture); ``resp`` (2n, 2) the responsibilities r_k(x_t).
    """
    toy = GaussianMixture(weights=[1 - rare_weight, rare_weight], means=[[-0.6, 0.0], [1.2, 0.6]],
                          covs=[np.eye(2) * TOY_SIGMA ** 2] * 2, labels=[0, 1])
    spec = DiffusionSpec(steps=1000, noise_schedule="linear")
    diffusion = build_diffusion(spec)
    oracle = ExactEpsModel(toy, diffusion.alphas_cumprod)
    g = torch.Generator().manual_seed(seed)
    t = minority.official_perturb_timestep(1000)
    x_common = toy.means[0] + TOY_SIGMA * torch.randn(n, 2, generator=g, dtype=torch.float64)
    x_rare = toy.means[1] + TOY_SIGMA * torch.randn(n, 2, generator=g, dtype=torch.float64)
    x0 = torch.cat([x_common, x_rare])
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    x_t, x0_hat = minority.tweedie_reconstruction(oracle, diffusion, x0, t, noise=noise, clip_denoised=False)
    abar = float(diffusion.alphas_cumprod[t])
    tweedie = (x_t + (1 - abar) * toy.score(x_t, abar)) / abar ** 0.5                      # Eq. mg-tweedie
    resp = toy.class_posterior(x_t, abar)                                                  # r_k(x_t), (2n, 2)
    shrink = abar ** 0.5 * TOY_SIGMA ** 2 / (abar * TOY_SIGMA ** 2 + 1 - abar)
    m_k = toy.means[None] + shrink * (x_t[:, None] - abar ** 0.5 * toy.means[None])        # (2n, 2, 2)
    mixture_form = (resp[..., None] * m_k).sum(1)                                          # Eq. mg-mixture
    return SimpleNamespace(toy=toy, rare_weight=rare_weight, spec=spec, diffusion=diffusion, oracle=oracle, t=t,
                           abar=abar, n=n, x0=x0, x_rare=x_rare, noise=noise, x_t=x_t, x0_hat=x0_hat, tweedie=tweedie,
                           mixture_form=mixture_form, resp=resp)


def toy_scores(toy: SimpleNamespace, x: torch.Tensor, t: Optional[int] = None, seed: int = 0) -> torch.Tensor:
    """Minority scores (Eq. mg-score) of toy points ``x`` (N, 2) under the exact denoiser: 5 draws, squared distance."""
    return minority.minority_score(toy.oracle, toy.diffusion, x, toy.t if t is None else t, num_draws=5,
                                   batch_size=len(x), distance=_sq_dist, clip_denoised=False, seed=seed, device="cpu")


def toy_score_curve(toy: SimpleNamespace, ts: Sequence[int], seed: int = 0) -> Dict[str, List[float]]:
    """Against t: the mean score of each mode (``"common mode"``, ``"rare mode"``) and the rare mode's mean
    responsibility ``"r_rare"`` at the noised rare points (the same noise as :func:`mixture_toy`)."""
    curve: Dict[str, List[float]] = {"common mode": [], "rare mode": [], "r_rare": []}
    n = toy.n
    for t in ts:
        s = toy_scores(toy, toy.x0, t, seed)
        curve["common mode"].append(float(s[:n].mean()))
        curve["rare mode"].append(float(s[n:].mean()))
        x_t = toy.diffusion.q_sample(toy.x_rare, torch.full((n,), int(t)), noise=toy.noise[n:])
        abar = float(toy.diffusion.alphas_cumprod[t])
        curve["r_rare"].append(float(toy.toy.class_posterior(x_t, abar)[:, 1].mean()))
    return curve


def toy_guidance(toy: SimpleNamespace, scales: Sequence[float], num_levels: int = 20, n: int = 2000,
                 seed: int = 0) -> SimpleNamespace:
    """Minority guidance on the toy with an exact level classifier (Eq. mg-guidance).

    ``n`` mixture draws are scored and cut into ``num_levels`` levels; the Bayes posterior of the rare mode
    (:class:`~lt_diffusion.toy2d.ExactModeClassifier`) stands for "top level" and guides the engine's 100-step
    ancestral sampler through :func:`lt_diffusion.guidance.classifier_cond_fn`, from the same noise at every scale.

    Returns a namespace: ``population`` (n, 2), ``top_is_rare`` (share of the top level in the rare mode),
    ``rare_in_top`` (share of the rare mode in the top level), ``ref_logp`` (mean log p_0(x | rare) of true rare
    points), ``samples`` ({w: (n, 2)}) and ``rows`` (one per w: share in the rare mode, log p_0 of those, mean score).
    """
    pop, mode = toy.toy.sample(n, generator=torch.Generator().manual_seed(seed))
    levels, _ = minority.minority_levels(toy_scores(toy, pop, seed=seed), num_levels)
    in_top = levels == num_levels - 1
    clf = ExactModeClassifier(toy.toy, toy.diffusion.alphas_cumprod)
    sampler = build_diffusion(toy.spec, timestep_respacing="100")
    x_ref = toy.toy.sample(n, generator=torch.Generator().manual_seed(seed + 1), y=1)[0]   # true rare-mode points
    ref_logp = float(toy.toy.log_prob(x_ref, 1.0, torch.ones(len(x_ref), dtype=torch.long)).mean())
    samples, rows = {}, []
    for w in scales:
        cond_fn = None if w == 0 else guidance.classifier_cond_fn(clf, scale=w, labels=1)
        x = sampler.p_sample_loop(toy.oracle, (n, 2), clip_denoised=False, cond_fn=cond_fn, device="cpu",
                                  generator=torch.Generator().manual_seed(seed + 2))      # same noise for every w
        samples[w] = x
        rare = toy.toy.class_posterior(x)[:, 1] > 0.5
        logp = (float(toy.toy.log_prob(x[rare], 1.0, torch.ones(int(rare.sum()), dtype=torch.long)).mean())
                if rare.any() else None)
        rows.append({"w": w, "share in rare mode": float(rare.double().mean()), "log p_0(x | rare) of those": logp,
                     "mean score l(x)": float(toy_scores(toy, x, seed=seed).mean())})
    return SimpleNamespace(population=pop, top_is_rare=float((mode[in_top] == 1).float().mean()),
                           rare_in_top=float(in_top[mode == 1].float().mean()), ref_logp=ref_logp,
                           samples=samples, rows=rows)


# --------------------------------------------------------------------------------------------------
# CIFAR-10-LT
# --------------------------------------------------------------------------------------------------
def train_backbone(P, checkpoint_dir=None, seed: int = 0, device=None):
    """The unconditional denoiser on CIFAR-10-LT (arm ``backbone``), trained or loaded.

    Returns ``(lt, result, diffusion)``: the long-tailed training set, the
    :class:`~lt_diffusion.experiments.TrainResult` (``.ema`` is the model scored and sampled) and its diffusion.
    """
    arm = P.arm("backbone")
    lt = load_data(arm.data)
    result = train_or_load(P, "backbone", checkpoint_dir=checkpoint_dir, seed=seed, device=device, data=lt)
    return lt, result, build_diffusion(arm.diffusion)


def score_training_set(P, ema, diffusion, lt, seed: int = 0, device=None) -> Dict:
    """Minority scores (Eq. mg-score, LPIPS) of every training image at t* = ``P.perturb_t``, their ``P.num_levels``
    quantile levels, and per-class summaries.

    Returns a dict: ``scores`` (N,), ``levels`` (N,) int64, ``thresholds`` (L,), ``counts``, ``groups``,
    ``present`` (classes with images), ``mean_by_class`` / ``top_share`` ({class: value}), ``by_group``
    ({head/mid/tail: mean score}) and ``rho`` (Spearman correlation of class count and mean score).
    """
    scores = minority.minority_score(ema, diffusion, lt.images, P.perturb_t, num_draws=P.num_draws,
                                     batch_size=P.score_batch, seed=seed, device=device)
    levels, thresholds = minority.minority_levels(scores, P.num_levels)
    counts = lt.class_counts()
    groups = longtail.class_groups(counts)
    present = [c for c in range(len(counts)) if counts[c] > 0]
    mean_by_class = {c: float(scores[lt.labels == c].mean()) for c in present}
    top_share = {c: float((levels[lt.labels == c] == P.num_levels - 1).float().mean()) for c in present}
    by_group = {g: float(np.mean([mean_by_class[c] for c in cs if c in mean_by_class])) for g, cs in groups.items()}
    return {"scores": scores, "levels": levels, "thresholds": thresholds, "counts": counts, "groups": groups,
            "present": present, "mean_by_class": mean_by_class, "top_share": top_share, "by_group": by_group,
            "rho": longtail.frequency_rank_correlation(mean_by_class, counts)}


def reconstructions(P, ema, diffusion, lt, scores: torch.Tensor, seed: int = 0, device=None) -> Dict:
    """One-shot Tweedie reconstructions x̂_0(x_t*) of the ``P.show_images`` most unusual and most typical training
    images: ``{"most unusual": (idx, x_0, x̂_0), "most typical": (...)}``, images (K, C, H, W) in [-1, 1] on the
    CPU."""
    order = torch.argsort(scores, descending=True)
    k = P.show_images
    g = torch.Generator(device=device).manual_seed(seed)
    out = {}
    for name, idx in (("most unusual", order[:k]), ("most typical", order[-k:].flip(0))):
        x0 = lt.images[idx].to(device).float().div(127.5).sub(1)
        _, rec = minority.tweedie_reconstruction(ema, diffusion, x0, P.perturb_t, generator=g)
        out[name] = (idx, x0.cpu(), rec.float().cpu())
    return out


def train_level_classifier(P, lt, levels: torch.Tensor, diffusion, checkpoint_dir=None, seed: int = 0,
                           device=None) -> Tuple[torch.nn.Module, Dict]:
    """The noisy level classifier p_ψ(l | x_t, t) (arm ``level_classifier``) on every image but each 20th, which is
    held out; returns the classifier and its held-out accuracy and mean |level error| against t."""
    from lt_diffusion.classifier_train import accuracy_vs_t, default_eval_timesteps
    from lt_diffusion.data import ImageDataset

    held = torch.zeros(len(lt), dtype=torch.bool)
    held[::20] = True
    data = ImageDataset(lt.images[~held], levels[~held], [f"level {j}" for j in range(P.num_levels)])
    clf = train_or_load(P, "level_classifier", checkpoint_dir=checkpoint_dir, seed=seed, device=device,
                        data=data).model
    acc_t = accuracy_vs_t(clf, diffusion, lt.images[held], levels[held],
                          timesteps=default_eval_timesteps(diffusion.num_timesteps, P.classifier_eval_timesteps),
                          ordinal=True, seed=seed)
    return clf, acc_t


def guided_sets(P, ema, level_clf, seed: int = 0,
                device=None) -> Tuple[Dict[str, torch.Tensor], Dict[float, torch.Tensor]]:
    """Sample sets from the same initial noise (seed), guided by ``classifier_cond_fn(level_clf, w, labels=level)``:
    ``sets`` = unguided, top level at w = ``P.guidance_scale``, level 0 at that w; ``sweep`` = {w: samples towards the
    top level}. Images are uint8 (N, C, H, W)."""
    from lt_diffusion.sampling import generate

    top, w_main = P.num_levels - 1, P.guidance_scale
    plan = {"unguided": (0.0, None, P.eval.num_samples),
            f"level {top}, w={w_main:g}": (w_main, top, P.eval.num_samples),
            f"level 0, w={w_main:g}": (w_main, 0, P.low_samples)}
    plan.update({("sweep", w): (w, top, P.sweep_samples) for w in P.sweep_scales})
    out = {}
    for name, (w, level, n) in plan.items():
        cond_fn = None if w == 0 else guidance.classifier_cond_fn(level_clf, scale=w, labels=level)
        sampler = make_sampler(P.arm("backbone").diffusion, ema, sample_steps=P.eval.sample_steps, cond_fn=cond_fn,
                               device=device)
        out[name] = generate(sampler, n, min(P.eval.batch_size, n), seed=seed + 100, progress=False, device=device)
    sweep = {w: out.pop(("sweep", w)) for w in P.sweep_scales}
    return out, sweep


def sample_metrics(P, ema, diffusion, lt, sets: Dict[str, torch.Tensor], sweep: Dict[float, torch.Tensor],
                   seed: int = 0, device=None) -> Tuple[List[Dict], List[Dict]]:
    """Rarity and fidelity of each set in Inception space against the real LT images (AvgkNN, LOF, rarity score,
    precision/recall, FID for the main sets when ``P.comparable``) and the sets' own mean minority score.
    Returns ``(rows of the main sets, rows of the w sweep)``."""
    from lt_diffusion.metrics import compute_features

    from .evaluate import rarity_table, reference_from_images

    idx = (torch.arange(len(lt)) if P.metric_real_images is None
           else torch.linspace(0, len(lt) - 1, P.metric_real_images).long())
    ref = reference_from_images(lt.images[idx], "CIFAR-10-LT train")
    named = {**{(n, n): v for n, v in sets.items()}, **{("sweep", f"w={w:g}"): v for w, v in sweep.items()}}
    feats = {key: compute_features(v, progress=False) for key, v in named.items()}
    rarity = rarity_table(feats, ref, fid_sets=[(n, n) for n in sets] if P.comparable else (), device=device)
    main, swept = [], []
    for (kind, label), imgs in named.items():
        ms = minority.minority_score(ema, diffusion, imgs, P.perturb_t, num_draws=P.num_draws,
                                     batch_size=P.score_batch, seed=seed, device=device)
        r = dict(rarity[(kind, label)])
        (swept if kind == "sweep" else main).append({"set": label, "n": len(imgs), "FID vs LT train": r.pop("FID"),
                                                     **r, "minority score": float(ms.mean())})
    return main, swept


def class_mix(P, counts: Sequence[int], sets: Dict[str, torch.Tensor], checkpoint_dir=None, seed: int = 0,
              device=None) -> Tuple[Dict, Dict[str, np.ndarray], Dict[str, float]]:
    """Label the generated sets with a clean classifier trained on balanced CIFAR-10 (arm ``labeller``).

    Returns ``(test evaluation of the labeller, {set: class histogram (10,)} with the LT data's first,
    {set: share of the tail classes}``)."""
    from lt_diffusion import classify

    labeller = train_or_load(P, "labeller", checkpoint_dir=checkpoint_dir, seed=seed, device=device).model
    test = load_data(DataSpec(split="test", num_images=P.test_images))
    evaluation = classify.evaluate_classifier(labeller, test.images, test.labels)
    hist = {"LT training data": np.asarray(counts, dtype=float) / sum(counts)}
    for name, imgs in sets.items():
        pred = classify.predict(labeller, imgs)
        hist[name] = torch.bincount(pred, minlength=10).float().div(len(pred)).numpy()
    tail = longtail.class_groups(counts)["tail"]
    share = {name: float(sum(h[c] for c in tail)) for name, h in hist.items()}
    return evaluation, hist, share


def cifar_claims(main: Sequence[Dict], swept: Sequence[Dict], tail_share: Dict[str, float]) -> List[Tuple[str, bool]]:
    """The paper's qualitative claims checked on the CIFAR-10-LT rows (``main`` in the order of :func:`guided_sets`:
    unguided, top level, level 0): ``[(claim, holds)]``."""
    base, top, low = main[0], main[1], main[2]
    return [
        ("top-level guidance raises AvgkNN over unguided", top["AvgkNN"] > base["AvgkNN"]),
        ("top-level guidance raises LOF over unguided", top["LOF"] > base["LOF"]),
        ("top-level guidance raises the minority score of the samples", top["minority score"] > base["minority score"]),
        ("level-0 guidance lowers AvgkNN below unguided", low["AvgkNN"] < base["AvgkNN"]),
        ("AvgkNN grows with w along the sweep", all(b["AvgkNN"] >= a["AvgkNN"] for a, b in zip(swept, swept[1:]))),
        ("top-level guidance raises the tail-class share", tail_share[top["set"]] > tail_share[base["set"]]),
    ]
