# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Classifier-free guidance: guidance without a classifier
#
# {cite}`ho2022classifier` show that the fidelity/diversity trade-off of classifier guidance
# {cite}`dhariwal2021diffusion` needs no classifier. Train **one** network as both a conditional and an
# unconditional model — replace the label by a null token with probability $p_\text{uncond}$ — and at sampling
# time extrapolate from the unconditional prediction towards the conditional one. The difference of the two is
# the gradient of an *implicit* classifier, so no separate noisy classifier, no gradients through it, and no
# adversarial shortcut in its features. CFG became the default guidance of text-to-image models; in this book it is
# also the sampler of CBDM (chapter 06) and Diffusion Inversion (chapter 08), where the condition is a rare class or
# a learned embedding.
#
# [![Open In Colab](../book/images/colab-badge.svg)](https://colab.research.google.com/github/lt-diffusion/lt-diffusion/blob/main/notebooks/04_cfg.ipynb)
#
# The outputs shown come from the run recorded in the provenance cell at the end: the `book` scale on a GPU, or
# the `smoke` scale on a CPU where no GPU run exists yet (then the figures show that the code runs, and the
# numbers mean nothing). The provenance cell gives the scale, device,
# commit, seeds and wall time. Rerun at full scale with `papermill notebooks/04_cfg.ipynb out.ipynb -p SCALE book`.

# %% tags=["parameters"]
SCALE = "smoke"
SEED = 0

# %% tags=["remove-input"]
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "git+https://github.com/lt-diffusion/lt-diffusion.git"], check=True)

# %%
import inspect
import time

import numpy as np
import torch
from IPython.display import Markdown, display

from lt_diffusion import plotting, provenance, toy2d
from lt_diffusion.data import CIFAR10_CLASSES
from lt_diffusion.experiments import (DiffusionSpec, build_diffusion, fid_reference, figures, finish_chapter,
                                      make_sampler, save_results, score_sweep, seconds_per_sample, start_chapter,
                                      train_model)
from lt_diffusion.experiments.summary import headline
from lt_diffusion.guidance import cfg_model_fn, classifier_cond_fn
from lt_diffusion.models import count_parameters
from lt_diffusion.sampling import generate

P, run, device, SMOKE_LABEL, cost = start_chapter("cfg", SCALE, SEED)
MODELS = {a.train.p_uncond: a for a in P.arms.values() if a.kind == "denoiser"}   # p_uncond -> arm
DIFF = P.arm("classifier").diffusion   # every model of the chapter shares this forward process
print(f"p_uncond={tuple(MODELS)} w={P.ws}")

# %% [markdown]
# ## 1. The implicit classifier
#
# Bayes' rule at noise level $t$ gives the classifier's gradient as a difference of two scores,
#
# $$
# \nabla_{x_t}\log p(c\mid x_t) = \nabla_{x_t}\log p(x_t\mid c) - \nabla_{x_t}\log p(x_t).
# $$ (cfg-implicit)
#
# Classifier guidance with strength $w$ on this implicit classifier samples with the score
# $\nabla\log p(x_t\mid c) + w\,\nabla\log p(c\mid x_t)$. Replacing each score by its noise prediction,
# $\epsilon(x_t, c) = -\sqrt{1-\bar\alpha_t}\,\nabla\log p(x_t\mid c)$, gives the guided prediction of
# {cite}`ho2022classifier`:
#
# $$
# \tilde\epsilon(x_t, c) = (1 + w)\,\epsilon_\theta(x_t, c) - w\,\epsilon_\theta(x_t, \varnothing),
# $$ (cfg-eps)
#
# where $\epsilon_\theta(x_t,\varnothing)$ is the same network given the null label. At every noise level,
# {eq}`cfg-eps` is the noise prediction of the tilted density
#
# $$
# \tilde p_w(x_t\mid c) \propto p(x_t\mid c)^{1+w}\,p(x_t)^{-w} \propto p(x_t\mid c)\,p(c\mid x_t)^{w},
# $$ (cfg-tilted)
#
# which keeps the class-conditional density but reweights it towards points the implicit classifier is sure
# about. (The chain of tilted steps does not sample exactly from the tilted data density; it is a heuristic that
# works, as the toy below shows.)
#
# **Two conventions.** {eq}`cfg-eps` uses $w$: $w=0$ is the conditional model, $w=-1$ the unconditional one (CBDM's
# $\omega$). Imagen and diffusers write $\tilde\epsilon = \epsilon_\varnothing + g(\epsilon_c - \epsilon_\varnothing)$ with a
# *guidance scale* $g = 1 + w$ (Diffusion Inversion's `guidance_scale`). This book uses $w$ and prints $g$ beside
# it. The package computes both predictions in **one** forward pass on a doubled batch:

# %%
print(inspect.getsource(cfg_model_fn))

# %% [markdown]
# Training needs only the null label: with probability $p_\text{uncond}$ a label becomes $\varnothing$ (the last row
# of the UNet's label table). The trainer does it per sample (CBDM's code drops the whole batch; `uncond_mode="batch"`):

# %%
from lt_diffusion.train import Trainer  # noqa: E402

print(inspect.getsource(Trainer._drop_labels))

# %% [markdown]
# ## 2. A toy with exact scores
#
# *Question: what does $w$ do to a distribution we know exactly?* Three Gaussian classes in 2-D that overlap. Under
# the forward process each stays Gaussian, so $p_t(x\mid c)$, $p_t(x)$ and the ideal $\epsilon^*(x_t, t, c)$ are in
# closed form (`lt_diffusion.toy2d`). We sample with the package's DDIM loop and `cfg_model_fn`, once with the
# exact $\epsilon^*$ and once with a small MLP trained with label dropout — the same recipe as the image models.
# First, the toy's exact model and the package's CFG wrapper agree with {eq}`cfg-eps` written out by hand:

# %%
T = P.toy
mix = toy2d.three_class_mixture(radius=T.radius, std=T.std)
NULL_TOY = mix.num_classes
toy_spec = DiffusionSpec(steps=T.steps, noise_schedule="cosine")
toy_train_diffusion = build_diffusion(toy_spec)
toy_sampler = build_diffusion(toy_spec, timestep_respacing=f"ddim{T.sample_steps}")
exact = toy2d.ExactEpsModel(mix, toy_train_diffusion.alphas_cumprod, timestep_scale=1000.0 / T.steps)

g = torch.Generator().manual_seed(0)
x = torch.randn(64, 2, generator=g, dtype=torch.float64)
t_idx = torch.randint(0, T.steps, (64,), generator=g)
y = torch.randint(0, 3, (64,), generator=g)
abar = torch.as_tensor(toy_train_diffusion.alphas_cumprod)[t_idx]
for w in (0.0, 1.0, 3.0):
    by_hand = (1 + w) * mix.eps(x, abar, y) - w * mix.eps(x, abar, None)
    packaged = cfg_model_fn(exact, w, null_label=NULL_TOY)(x, t_idx.double() * 1000.0 / T.steps, y=y)
    print(f"w={w:g}: package CFG == (1+w) eps*_c - w eps*_u : {torch.allclose(packaged, by_hand, atol=1e-10)}")

# %% [markdown]
# The tilted densities {eq}`cfg-tilted` at $t=0$, computed on a grid (exact, no sampling): as $w$ grows, the mass of
# each class moves away from the other classes (the posterior $p(c\mid x)$ of the requested class rises) and
# concentrates (the spread falls).

# %% tags=["nbval-check-output"]
toy_rows = []
for w in (0.0, 1.0, 3.0, 8.0):
    xs, ys, dens = toy2d.density_grid(mix, y=0, w=w, lim=3.0, n=161)
    X, Y = np.meshgrid(xs, ys)
    pts = torch.as_tensor(np.stack([X.ravel(), Y.ravel()], 1))
    post0 = mix.class_posterior(pts)[:, 0].numpy().reshape(X.shape)
    mean = np.array([(dens * X).sum(), (dens * Y).sum()])
    spread = np.sqrt((dens * ((X - mean[0]) ** 2 + (Y - mean[1]) ** 2)).sum())
    toy_rows.append({"w": w, "g = 1+w": 1 + w, "E[p(c|x)]": float((dens * post0).sum()), "spread": float(spread),
                     "mean distance from origin": float(np.linalg.norm(mean))})
print(plotting.metrics_table(toy_rows, formats={"w": ".0f", "g = 1+w": ".0f", "E[p(c|x)]": ".3f",
                                                "spread": ".3f", "mean distance from origin": ".3f"}))

# %%
with torch.random.fork_rng(devices=[]):
    torch.manual_seed(SEED)
    net = toy2d.ToyDenoiser(dim=2, num_classes=3, hidden=T.mlp_hidden, depth=T.mlp_depth)
t0 = time.perf_counter()
toy_losses = toy2d.train_toy_denoiser(net, mix, toy_train_diffusion, steps=T.mlp_steps, batch_size=T.mlp_batch,
                                      lr=T.mlp_lr, p_uncond=T.p_uncond, seed=SEED)
print(f"MLP denoiser: {count_parameters(net)} parameters, {T.mlp_steps} steps in {time.perf_counter() - t0:.1f} s "
      f"(CPU), final loss {np.mean(toy_losses[-50:]):.4f}")


toy_stats, toy_draws = [], {}
labels = torch.arange(3).repeat_interleave(T.samples_per_class)
for name, model in (("exact eps*", exact), ("MLP", net)):
    for w in T.ws:   # the package's DDIM loop with cfg_model_fn, the same noise for every w
        with torch.no_grad():
            x0 = toy_sampler.ddim_sample_loop(cfg_model_fn(model, w, null_label=NULL_TOY) if w != 0 else model,
                                              (len(labels), 2), clip_denoised=False, model_kwargs={"y": labels},
                                              generator=torch.Generator().manual_seed(SEED), device="cpu")
        toy_draws[(name, w)] = (x0, labels)
        toy_stats.append({"denoiser": name, "w": w, **toy2d.guided_sample_stats(mix, x0, labels)})
display(plotting.metrics_table(toy_stats, formats={"class_accuracy": ".3f", "mean_p_y": ".3f", "spread": ".3f",
                                                   "log_p_y": ".2f"}))

# %% [markdown]
# *Question: do sampled points follow the tilted densities?* Top: contours of $\tilde p_w(x\mid c)$ for the three
# classes with samples of the exact denoiser; bottom: the trained MLP. Like the paper's toy figure, the classes
# separate and sharpen as $w$ grows, and the samples leave the overlap regions.

# %%
fig = figures.toy_guidance_grid(mix, toy_draws, T.ws, ("exact eps*", "MLP"))

# %% [markdown]
# ## 3. CFG on CIFAR-10: training with the null label
#
# *Question: how does the $w$ sweep move FID, precision and recall, and does $p_\text{uncond}$ matter?* One
# class-conditional UNet per $p_\text{uncond}$, same budget, then `eval.num_samples` samples (classes balanced) per
# $w$ with DDIM. FID {cite}`heusel2017fid` against the CIFAR-10 train statistics; precision and recall (k = 3)
# {cite}`kynkaanniemi2019precision` against real train features. (The Inception Score is unavailable offline: the
# Inception weights have no classifier layer; chapter 03.)

# %%
REF = fid_reference(P.eval.fid_reference, P.eval.fid_reference_images, pr_images=P.eval.pr_reference_images)
NULL = MODELS[next(iter(MODELS))].model.num_classes   # the null label (the last row of the label table)
models, train_hist = {}, {}
for p, arm in MODELS.items():
    trained = train_model(arm, seed=SEED, device=device)
    models[p], train_hist[p] = trained.ema, trained.history
    print(f"p_uncond={p}: {count_parameters(trained.ema) / 1e6:.2f} M parameters, {arm.train.steps} steps, "
          f"final loss {trained.history[-1]['loss']:.4f}")

# %% [markdown]
# *Question: does the guided $\tilde\epsilon$ really cost one forward pass per step?* A forward hook on the trained
# UNet records the batch of every call while the package's DDIM loop draws 4 CFG samples; then one call of the
# wrapper is compared with {eq}`cfg-eps` from two separate forward passes.

# %%
base_p = next(iter(MODELS))
base = models[base_p]
calls = []
hook = base.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
try:
    generate(make_sampler(DIFF, base, sample_steps=P.eval.sample_steps, method="ddim", guidance_scale=P.grid_w), 4, 4,
             labels=torch.arange(4) % NULL, seed=SEED, progress=False)
finally:
    hook.remove()
print(f"{len(calls)} UNet calls for {P.eval.sample_steps} DDIM steps, batch sizes {sorted(set(calls))} "
      f"(2 x 4: conditional and null halves in one batch)")
x_chk = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(SEED)).to(device)
t_chk = torch.full((4,), 500.0, device=device)
y_chk = torch.arange(4, device=device)
with torch.no_grad():
    one_pass = cfg_model_fn(base, P.grid_w, null_label=NULL)(x_chk, t_chk, y=y_chk)
    two_pass = (1 + P.grid_w) * base(x_chk, t_chk, y=y_chk) - P.grid_w * base(x_chk, t_chk,
                                                                              y=torch.full_like(y_chk, NULL))
C_IMG = x_chk.shape[1]   # with a learned variance only the eps channels are guided
print(f"one batched forward == (1+w) eps(x, c) - w eps(x, null) from two forwards: "
      f"max |difference| = {(one_pass[:, :C_IMG] - two_pass[:, :C_IMG]).abs().max():.1e}")

# %% [markdown]
# The sweep: `eval.num_samples` images per $w$ and per model ($w = 0$ is the plain conditional model, one forward).

# %%
labels = torch.arange(P.eval.num_samples) % NULL
sweep = dict(batch_size=P.eval.batch_size, labels=labels, seed=SEED, metrics=("fid", "pr"))
cfg_rows = []
for p, model in models.items():   # w = 0: the plain conditional model, one forward per step
    samplers = {w: make_sampler(DIFF, model, sample_steps=P.eval.sample_steps, method="ddim",
                                guidance_scale=w if w != 0 else None) for w in P.ws}
    for r in score_sweep(samplers, P.eval.num_samples, REF, key="w", **sweep):
        w = r.pop("w")
        cfg_rows.append({"method": f"CFG p_uncond={p}", "p_uncond": p, "w": w, "g = 1+w": 1 + w, **r})
        print(f"p_uncond={p} w={w:<4g} FID={r['FID']:.2f} precision={r['precision']:.3f} "
              f"recall={r['recall']:.3f}{SMOKE_LABEL}")

# %%
display(plotting.metrics_table(cfg_rows, columns=["p_uncond", "w", "g = 1+w", "FID", "precision", "recall"],
                               formats={"FID": ".2f", "precision": ".3f", "recall": ".3f"}))
by_p = {f"p_uncond={p}": [r for r in cfg_rows if r["p_uncond"] == p] for p in MODELS}
fig = figures.sweep_figure(by_p, "w", "guidance strength w", SMOKE_LABEL)

# %% [markdown]
# *Question: what do guided samples of each class look like?* One row per class at $w=$ `grid_w`
# (model with the first $p_\text{uncond}$).

# %%
k = P.samples_per_class_grid
grid_labels = torch.arange(NULL).repeat_interleave(k)
imgs = generate(make_sampler(DIFF, base, sample_steps=P.eval.sample_steps, method="ddim", guidance_scale=P.grid_w),
               NULL * k, min(P.eval.batch_size, NULL * k), labels=grid_labels, seed=SEED, progress=False)
fig = plotting.image_rows({CIFAR10_CLASSES[c]: imgs[c * k:(c + 1) * k] for c in range(NULL)},
                          title=f"CFG w={P.grid_w:g} (g={1 + P.grid_w:g}), p_uncond={base_p}")

# %% [markdown]
# ## 4. Classifier guidance vs CFG on the same model
#
# *Question: at the same base model and budget, which guidance gives the better fidelity/diversity curve, and what
# does each cost per sample?* We train ADM's noisy classifier (chapter 03) and guide the conditional model of
# $p_\text{uncond}=$ `p_unconds[0]` with it (the label goes to the model and to the classifier).

# %%
ct, bt = P.arm("classifier").train, MODELS[base_p].train
with provenance.Stopwatch() as timer:
    classifier = train_model(P.arm("classifier"), seed=SEED, device=device).model
print(f"classifier: {count_parameters(classifier) / 1e6:.2f} M parameters, {ct.steps} steps in "
      f"{timer.elapsed:.1f} s; training cost relative to one diffusion model: "
      f"{ct.steps * ct.batch_size / (bt.steps * bt.batch_size):.2f}x the images")

cfg_w0 = next(r for r in cfg_rows if r["p_uncond"] == base_p and r["w"] == 0)
guided = score_sweep({s: make_sampler(DIFF, base, sample_steps=P.eval.sample_steps, method="ddim",
                                      cond_fn=classifier_cond_fn(classifier, scale=s))
                      for s in P.classifier_scales if s > 0}, P.eval.num_samples, REF, key="s", **sweep)
# s = 0 is no guidance: the same call as CFG w = 0 on this model (same seed), so the same samples
cg_rows = [{"s": 0.0, **{k: cfg_w0[k] for k in ("FID", "precision", "recall")}}] if 0.0 in P.classifier_scales else []
cg_rows = [{"method": "classifier guidance", **r} for r in cg_rows + guided]
for row in cg_rows:
    print(f"classifier guidance s={row['s']:<4g} FID={row['FID']:.2f} precision={row['precision']:.3f} "
          f"recall={row['recall']:.3f}{SMOKE_LABEL}")

# %%
cfg_base = by_p[f"p_uncond={base_p}"]
fig = figures.sweep_figure({"CFG (x: w)": cfg_base, "classifier guidance (x: s)": cg_rows},
                           {"CFG (x: w)": "w", "classifier guidance (x: s)": "s"}, "guidance strength (w or s)",
                           SMOKE_LABEL)

# %% [markdown]
# The strengths $w$ and $s$ are not on a common scale, so the fair comparison is the right panel: which curve
# reaches higher precision at the same recall. Cost per sample, measured on one batch of `cost_batch` images with
# `cost_steps` DDIM steps (after a warm-up call; the cost grows linearly with the number of steps):

# %%
n_cost, s_cost, COST_STEPS = P.cost_batch, max(P.classifier_scales), P.cost_steps
timed = {"conditional, no guidance": ("1 UNet forward (B)", {}),
         f"CFG w={P.grid_w:g}": ("1 UNet forward on 2B", {"guidance_scale": P.grid_w}),
         f"classifier guidance s={s_cost:g}": ("1 UNet forward + classifier forward and backward (B)",
                                               {"cond_fn": classifier_cond_fn(classifier, scale=s_cost)})}
cost_rows = [{"method": name, "network evaluations / step": evals,
              "s / image": seconds_per_sample(make_sampler(DIFF, base, sample_steps=COST_STEPS, method="ddim", **kw),
                                              n_cost, labels=torch.arange(n_cost) % NULL)}
             for name, (evals, kw) in timed.items()]
for r in cost_rows:
    r["relative"] = r["s / image"] / cost_rows[0]["s / image"]
display(plotting.metrics_table(cost_rows, formats={"s / image": ".2e", "relative": ".2f"}))
print(f"{COST_STEPS} DDIM steps, batch {n_cost}, device {device}{SMOKE_LABEL}")

# %% [markdown]
# ## 5. Results
#
# Ho & Salimans report ImageNet 64×64 and 128×128 only, and papers.md verifies **no CIFAR-10 number** for CFG
# (and not the paper's own $p_\text{uncond}$/$w$ grid); CFG has no official code. The only figure available is an
# aggregator's ImageNet 128 FID, **third-party, guidance weight not stated**. What can reproduce here is the shape:
# FID improving for small $w$ and worsening for large $w$, precision rising and recall falling with $w$, and
# guidance that works as well as classifier guidance without a classifier.

# %%
best = min(cfg_rows, key=lambda r: r["FID"])
best_cg = min(cg_rows, key=lambda r: r["FID"])
w0 = cfg_w0
final_rows = [
    {"setting": "CFG, ImageNet 128×128 (third-party aggregator; w not stated)", "FID": 2.43},
    {"setting": f"ours ({P.scale}), conditional w=0, p_uncond={base_p}", "FID": w0["FID"],
     "precision": w0["precision"], "recall": w0["recall"]},
    {"setting": f"ours ({P.scale}), best CFG: p_uncond={best['p_uncond']}, w={best['w']:g}", "FID": best["FID"],
     "precision": best["precision"], "recall": best["recall"]},
    {"setting": f"ours ({P.scale}), best classifier guidance s={best_cg['s']:g}", "FID": best_cg["FID"],
     "precision": best_cg["precision"], "recall": best_cg["recall"]},
]
display(plotting.metrics_table(final_rows, formats={"FID": ".2f", "precision": ".3f", "recall": ".3f"}))
print(f"FID on {P.eval.num_samples} samples, {P.eval.sample_steps} DDIM steps, against CIFAR-10 "
      f"{P.eval.fid_reference}{SMOKE_LABEL}")

# %% [markdown]
# ## Provenance

# %%
results = {"scale": P.scale, "comparable": P.comparable, "toy_exact_tilted": toy_rows, "toy_sampled": toy_stats,
           "cfg_sweep": cfg_rows, "classifier_guidance_sweep": cg_rows, "cost_per_image": cost_rows,
           "cost_steps": COST_STEPS, "fid_samples": P.eval.num_samples, "sample_steps": P.eval.sample_steps,
           "convention": "w (Ho & Salimans): eps = (1+w) eps_c - w eps_u; g = 1 + w"}
display(Markdown(provenance.provenance_table(finish_chapter(run, "cfg", results,
                                                            projected_h100_s=round(cost["total_s"])))))

# %% [markdown]
# The chapter's headline for the [results page](../book/results.md): the paper's effect, measured here, is that a
# moderate guidance strength w > 0 gives a lower FID than the same jointly trained model unguided (w = 0); the best
# w of the sweep against w = 0, for the first p_uncond (one seed). The paper reports ImageNet only.

# %%
p0 = base_p
arm = [r for r in cfg_rows if r["p_uncond"] == p0]
best, unguided = min((r for r in arm if r["w"] > 0), key=lambda r: r["FID"]), next(r for r in arm if r["w"] == 0)
results["headline"] = headline(
    f"best FID over w > 0 (p_uncond={p0:g}, w={best['w']:g})", best["FID"],
    claim="CFG at moderate w lowers FID below the unguided model", method=[best["FID"]],
    baseline=[unguided["FID"]], method_name=f"w={best['w']:g}", baseline_name="w=0", comparable=P.comparable)
print("wrote", save_results("cfg", results))
