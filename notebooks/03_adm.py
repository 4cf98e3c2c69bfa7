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
# # ADM: a better UNet, and a classifier that steers sampling
#
# {cite}`dhariwal2021diffusion` make two moves that together let diffusion models beat GANs on ImageNet. First,
# an **architecture search** on the Improved DDPM UNet {cite}`nichol2021improved`: more attention heads, attention
# at several resolutions, BigGAN-style residual up/down-sampling and *adaptive group normalisation* (AdaGN) each
# lower FID at a fixed training budget. Second, **classifier guidance**: a classifier $p_\phi(y \mid x_t)$ trained
# on noisy images adds $s\,\nabla_{x_t}\log p_\phi(y\mid x_t)$ to every reverse step, and the scale $s$ trades
# diversity (recall) for fidelity (precision) {cite}`kynkaanniemi2019precision`. For the long tail the second
# move matters most: a guidance signal can push samples towards a class — or, in chapter 07, towards rare
# features — that the unguided model under-produces.
#
# [![Open In Colab](../book/images/colab-badge.svg)](https://colab.research.google.com/github/lt-diffusion/lt-diffusion/blob/main/notebooks/03_adm.ipynb)
#
# The outputs shown come from the run recorded in the provenance cell at the end: the `book` scale on a GPU, or
# the `smoke` scale on a CPU where no GPU run exists yet (then the figures show that the code runs, and the
# numbers mean nothing). The provenance cell gives the scale, device,
# commit, seeds and wall time. Rerun at full scale with `papermill notebooks/03_adm.ipynb out.ipynb -p SCALE book`.

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
import dataclasses
import inspect

import torch
from IPython.display import Markdown, display

from lt_diffusion import metrics, plotting, provenance
from lt_diffusion.classifier_train import NoisyClassifierLoss, accuracy_vs_t, default_eval_timesteps
from lt_diffusion.data import CIFAR10_CLASSES
from lt_diffusion.diffusion import GaussianDiffusion
from lt_diffusion.experiments import (DataSpec, Marks, build_diffusion, fid_reference, figures, finish_chapter, load_data,
                                      make_sampler, sample_and_score, save_results, score_sweep, start_chapter,
                                      train_model)
from lt_diffusion.experiments.summary import headline
from lt_diffusion.guidance import classifier_cond_fn
from lt_diffusion.models import ABLATION_DESCRIPTIONS, UNetModel, ablation_configs, count_parameters
from lt_diffusion.models.nn import ResBlock, norm_act
from lt_diffusion.presets import get_preset
from lt_diffusion.sampling import generate

P, run, device, SMOKE_LABEL, cost = start_chapter("adm", SCALE, SEED)
DIFF = P.arm("guided").diffusion   # every model of the chapter shares this forward process

# %% [markdown]
# ## 1. The architecture changes
#
# The baseline is the Improved DDPM UNet: residual blocks at each resolution, self-attention at $16\times16$, and
# the timestep embedding $e$ *added* to the features of every block. ADM changes, one at a time:
#
# * **depth vs width**: more residual blocks per level, or more channels;
# * **attention heads**: a fixed 64 channels per head instead of a fixed number of heads;
# * **attention at 32, 16 and 8**: self-attention also at the full and the lowest resolution;
# * **BigGAN up/down-sampling**: resample *inside* a residual block (both branches), not with a plain conv;
# * **residual rescaling** by $1/\sqrt2$, which keeps the variance of skip + residual constant;
# * **AdaGN**: the embedding modulates the normalised features instead of being added before the norm,
#
# $$
# \operatorname{AdaGN}(h, e) = (1 + s)\odot\operatorname{GroupNorm}(h) + b, \qquad (s, b) = \operatorname{Linear}(e),
# $$ (adm-adagn)
#
# against the additive form $\operatorname{GroupNorm}(h + \operatorname{Linear}(e))$. In our engine every change is a
# field of `UNetConfig`; the whole residual block, with both embedding paths, BigGAN resampling and the rescale:

# %%
print(inspect.getsource(ResBlock.forward))
print(inspect.getsource(norm_act))

# %% [markdown]
# The ablation variants are built from the baseline by exactly one change each (`"adm"` combines ADM's choices):

# %%
print(inspect.getsource(ablation_configs))

# %% [markdown]
# Parameter counts of the `book`-scale variants. Several changes cost no parameters at all (heads, rescaling);
# attention at more resolutions and BigGAN blocks add a few; AdaGN's doubled embedding projection is what
# separates `baseline` from `add_emb`. (This cell builds the `book` configs at every scale, so its output is
# checked by CI.)

# %% tags=["nbval-check-output"]
book_cfgs = {k.removeprefix("ablation_"): a.model for k, a in get_preset("adm", "book").arms.items()
             if k.startswith("ablation_")}
param_rows = [{"variant": k, "change": ABLATION_DESCRIPTIONS[k], "parameters (M)": count_parameters(UNetModel(c)) / 1e6}
              for k, c in book_cfgs.items()]
print(plotting.metrics_table(param_rows, formats={"parameters (M)": ".3f"}))

# %% [markdown]
# ## 2. The ablation at equal steps and at equal wall time
#
# *Question: at a fixed, small budget, which change helps?* ADM compared variants at equal training
# iterations, and also noted that depth costs time. We train every variant once on unconditional CIFAR-10
# {cite}`krizhevsky2009cifar` and snapshot its EMA weights twice: when it reaches `ablation_train.steps` steps
# (equal steps) and when it has trained for `ablation_seconds` seconds (equal wall time). FID {cite}`heusel2017fid`
# is computed on `ablation_eval.num_samples` DDIM samples {cite}`song2021ddim` against the CIFAR-10 train statistics.
# The `book` run trains all eight rows of the parameter table (`smoke` only two). Budgets of seconds favour small,
# cheap models; the ranking at ADM's budgets (hundreds of thousands of steps on ImageNet) can differ.

# %% [markdown]
# Each variant is one arm of the preset, trained in chunks of `train.log_every` steps; `Marks` is the callback that
# snapshots the EMA weights at the two marks:

# %%
print(inspect.getsource(Marks))

# %%
REF = fid_reference(P.eval.fid_reference, P.eval.fid_reference_images, pr_images=P.eval.pr_reference_images)
print(f"reference: {REF.desc}; precision/recall against {len(REF.feats)} train images; training on "
      f"{len(load_data(P.arm('guided').data))} images")
# warm-up (CUDA context, cuDNN autotuning) so the first variant's clock is not charged for it
warm = P.arm("ablation_baseline")
train_model(dataclasses.replace(warm, train=dataclasses.replace(warm.train, steps=2)), seed=SEED, device=device)

ablation_rows = []
for name in P.ablation_variants:
    arm = P.arm(f"ablation_{name}")
    marks = Marks(P.ablation_steps, P.ablation_seconds)
    train_model(arm, seed=SEED, device=device, every=arm.train.log_every, on_chunk=marks)
    row = {"variant": name, "params (M)": count_parameters(marks.snapshots["steps"][0]) / 1e6}
    fid_at_step = {}   # both marks on one snapshot (same step): same weights, same samples, one evaluation
    for mark in ("steps", "time"):   # fixed column order, whichever mark came first
        ema, step, secs = marks.snapshots[mark]
        if step not in fid_at_step:
            sampler = make_sampler(DIFF, ema, sample_steps=P.ablation_eval.sample_steps, method="ddim")
            fid_at_step[step] = sample_and_score(sampler, P.ablation_eval.num_samples, REF,
                                                 batch_size=P.eval.batch_size, seed=SEED)[0]["FID"]
        row.update({f"FID @ equal {mark}": fid_at_step[step], f"step @ {mark}": step, f"s @ {mark}": secs})
    ablation_rows.append(row)
    print(f"{name:>16}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in row.items() if k != "variant"))
    del marks

# %% [markdown]
# The table: FID at the equal-steps mark and at the equal-time mark, the step each variant had reached by the
# time mark, and how long it needed for the step mark. A variant that is slower per step (attention at 32×32,
# more width) falls behind at equal time.

# %%
print(f"FID on {P.ablation_eval.num_samples} samples, {P.ablation_eval.sample_steps} DDIM steps{SMOKE_LABEL}")
display(plotting.metrics_table(ablation_rows, formats={"params (M)": ".2f", "FID @ equal steps": ".1f",
                                                       "FID @ equal time": ".1f", "s @ steps": ".1f",
                                                       "s @ time": ".1f"}))
names = [r["variant"] for r in ablation_rows]
fig = plotting.bar(names, {"equal steps": [r["FID @ equal steps"] for r in ablation_rows],
                           "equal time": [r["FID @ equal time"] for r in ablation_rows]},
                   ylabel="FID (lower is better)", rotate=30,
                   title=f"ADM ablation at a tiny budget{SMOKE_LABEL}")

# %% [markdown]
# ## 3. Classifier guidance, derived
#
# Condition the reverse step on a label $y$. By Bayes' rule, with $Z$ independent of $x_t$,
#
# $$
# p_{\theta,\phi}(x_t \mid x_{t+1}, y) = Z\, p_\theta(x_t \mid x_{t+1})\, p_\phi(y \mid x_t).
# $$ (adm-bayes)
#
# The first factor is Gaussian, $\mathcal N(\mu, \Sigma)$, with $\Sigma$ small at every step. Over the region where it
# has mass, $\log p_\phi(y\mid x_t)$ is well approximated by its **first-order Taylor expansion** around $x_t = \mu$:
#
# $$
# \log p_\phi(y\mid x_t) \approx \log p_\phi(y\mid x_t)\big|_{x_t=\mu} + (x_t - \mu)^\top g,
# \qquad g = \nabla_{x_t}\log p_\phi(y\mid x_t)\big|_{x_t=\mu}.
# $$ (adm-taylor)
#
# Adding this linear term to the Gaussian's log-density $-\tfrac12 (x_t-\mu)^\top\Sigma^{-1}(x_t-\mu)$ and completing
# the square gives another Gaussian with the same covariance and a shifted mean:
#
# $$
# \log\big(p_\theta(x_t\mid x_{t+1})\,p_\phi(y\mid x_t)\big) \approx
# -\tfrac12 (x_t - \mu - \Sigma g)^\top \Sigma^{-1} (x_t - \mu - \Sigma g) + C
# \;\Rightarrow\; x_t \sim \mathcal N(\mu + s\,\Sigma g,\ \Sigma),
# $$ (adm-ancestral)
#
# where ADM multiplies the gradient by a **scale** $s$, which samples from a sharpened $p(y\mid x_t)^s / Z$.
# That is the ancestral form: `condition_mean`.
#
# DDIM has no per-step Gaussian to tilt, so ADM uses the score view instead. The noise prediction is a scaled score,
# $\epsilon_\theta(x_t) = -\sqrt{1-\bar\alpha_t}\,\nabla_{x_t}\log p_\theta(x_t)$ {cite}`song2021sde`, and the score of the
# joint $p(x_t)\,p(y\mid x_t)^s$ is the sum of the two scores, so
#
# $$
# \hat\epsilon(x_t) = \epsilon_\theta(x_t) - s\,\sqrt{1-\bar\alpha_t}\;\nabla_{x_t}\log p_\phi(y \mid x_t),
# $$ (adm-ddim)
#
# and the usual DDIM update runs with $\hat\epsilon$: `condition_score`. Both read the gradient from a `cond_fn`
# built by `classifier_cond_fn` (the scale $s$ is folded in):

# %%
print(inspect.getsource(classifier_cond_fn))
print(inspect.getsource(GaussianDiffusion.condition_mean))
print(inspect.getsource(GaussianDiffusion.condition_score))

# %% [markdown]
# *Question: are the two forms the same correction?* Put the DDIM form's $\hat\epsilon$ into the ancestral step: the
# predicted $\hat x_0$ moves by $\sqrt{1-\bar\alpha_t}\,s\,g\cdot\sqrt{1-\bar\alpha_t}/\sqrt{\bar\alpha_t}$, and the
# posterior mean, whose $\hat x_0$ coefficient is $\sqrt{\bar\alpha_{t-1}}\beta_t/(1-\bar\alpha_t)$, moves by
#
# $$
# \Delta\mu_\text{DDIM form} = \frac{\beta_t}{\sqrt{\alpha_t}}\, s\, g
# \qquad\text{vs}\qquad \Delta\mu_\text{ancestral} = \Sigma_t\, s\, g = \beta_t\, s\, g \quad (\Sigma_t = \beta_t),
# $$ (adm-forms-agree)
#
# so the two agree up to a factor $1/\sqrt{\alpha_t} = 1 + O(\beta_t)$: the same first-order correction, different
# only where a step is large. Below, both shifts come from the package's `condition_mean` and `condition_score`
# on the respaced diffusion the samplers use, for a constant gradient $s\,g = 1$ (the shift does not depend on the
# model; `eps_zero` only supplies a prediction, and $\hat x_0$ is not clipped so the shift stays linear):

# %%
# fixed Σ_t = β_t (L_simple's "fixed_large"), whatever the preset's objective
spaced = build_diffusion(dataclasses.replace(DIFF, loss="simple", learn_sigma=False),
                         timestep_respacing=P.eval.sample_steps, sigma_small=False)
x_probe = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(SEED), dtype=torch.float64)
eps_zero = lambda x, t, **kw: torch.zeros_like(x)   # noqa: E731 - any prediction gives the same shift
unit_grad = lambda x, t, **kw: torch.ones_like(x)   # noqa: E731 - s * grad log p(y | x_t) = 1 everywhere
shift = {"ancestral: Σ_t (condition_mean)": [], "DDIM form: β_t/√α_t (condition_score)": []}
for k in range(1, spaced.num_timesteps):
    t = torch.full((2,), k, dtype=torch.long)
    out = spaced.p_mean_variance(eps_zero, x_probe, t, clip_denoised=False)
    shift["ancestral: Σ_t (condition_mean)"].append(
        float((spaced.condition_mean(unit_grad, out, x_probe, t) - out["mean"]).mean()))
    shift["DDIM form: β_t/√α_t (condition_score)"].append(
        float((spaced.condition_score(unit_grad, out, x_probe, t)["mean"] - out["mean"]).mean()))
ratio = torch.tensor(shift["DDIM form: β_t/√α_t (condition_score)"]) / torch.tensor(
    shift["ancestral: Σ_t (condition_mean)"])
closed = torch.as_tensor(1.0 / (1.0 - spaced.betas[1:]) ** 0.5)
print(f"shift ratio = 1/sqrt(alpha_t) at every step: {torch.allclose(ratio.double(), closed, rtol=1e-6)}; "
      f"median ratio {ratio.median():.4f}, largest {ratio.max():.2f} (the noisiest respaced step)")
t_orig = spaced.timestep_map[1:]
fig = plotting.curves(t_orig, shift, xlabel="t (original scale)", ylabel="mean shift per unit s·g", logy=True,
                      title=f"the two guidance forms, {P.eval.sample_steps} respaced steps")

# %% [markdown]
# ## 4. The noisy classifier
#
# *Question: how much does a classifier still know about the class at each noise level?* The guide must work on
# $x_t$ for every $t$, so it is trained on forward-process samples: $t\sim\mathcal U\{0..T-1\}$,
# $x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\epsilon$, cross-entropy on $y$. The classifier is ADM's
# `EncoderUNetModel`: the UNet's encoder with attention pooling. It is trained by the same `Trainer` as every
# model of the book, with this objective in place of the diffusion's loss; the objective is generic over the label
# (chapter 07 reuses it with minority levels):

# %%
print(inspect.getsource(NoisyClassifierLoss))

# %%
diffusion = build_diffusion(DIFF)
ct = P.arm("classifier").train
with provenance.Stopwatch() as clf_timer:
    classifier = train_model(P.arm("classifier"), seed=SEED, device=device).model
print(f"classifier: {count_parameters(classifier) / 1e6:.2f} M parameters, {ct.steps} steps in "
      f"{clf_timer.elapsed:.1f} s ({ct.steps * ct.batch_size / clf_timer.elapsed:.0f} img/s)")
test = load_data(DataSpec(split="test", num_images=P.classifier_eval_images))
acc = accuracy_vs_t(classifier, diffusion, test.images, test.labels,
                    timesteps=default_eval_timesteps(diffusion.num_timesteps, P.classifier_eval_timesteps),
                    batch_size=P.eval.batch_size)
fig = plotting.curves(acc["t"], {"test accuracy": acc["accuracy"], "chance": [0.1] * len(acc["t"])},
                      xlabel="t (noise level)", ylabel="accuracy", markers=True,
                      title=f"noisy classifier on {len(test)} CIFAR-10 test images{SMOKE_LABEL}")

# %% [markdown]
# Accuracy is highest on nearly clean images and falls to chance (0.1) as $\bar\alpha_t \to 0$: at high noise the
# classifier's gradient carries little class information, which is why guidance mostly acts in the middle and late
# part of the reverse process.
#
# ## 5. One model, conditional and unconditional
#
# ADM guides both an unconditional and a class-conditional model. To share one training budget we train a single
# class-conditional UNet whose label is replaced by the null label with probability `p_uncond` (the recipe of
# chapter 04); with $y = \varnothing$ it *is* an unconditional model. (ADM trained two separate networks; ours
# shares the weights, so its unconditional half saw only `p_uncond` of the updates.)

# %%
guided = P.arm("guided")
trained = train_model(guided, seed=SEED, device=device)
cond_model, hist = trained.ema, trained.history
print(f"conditional UNet: {count_parameters(cond_model) / 1e6:.2f} M parameters, {guided.train.steps} steps, "
      f"p_uncond={guided.train.p_uncond}, final loss {hist[-1]['loss']:.4f}")
NULL = guided.model.num_classes   # the null label: `make_sampler(..., unconditional=True)` gives it to the model


# %% [markdown]
# ## 6. Fidelity vs diversity as the scale grows
#
# *Question: how do FID, precision and recall move with the classifier scale $s$?* For each $s$ we draw
# `eval.num_samples` images, 10 classes in equal numbers, with the DDIM form {eq}`adm-ddim`, from the unconditional
# model (the label only goes to the classifier) and from the conditional model (the label goes to both). At the
# scales `ancestral_scales` the unconditional model is also sampled with the ancestral form {eq}`adm-ancestral`
# (`ancestral_steps` respaced steps), so the two forms are compared on the same metrics. FID is against the
# CIFAR-10 train statistics; precision and recall (k = 3) against real train features. The Inception Score, ADM's
# other fidelity number, needs Inception's classifier layer, which the offline weights do not have:

# %%
try:
    metrics.inception_score_from_images(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
except metrics.InceptionScoreUnavailable as err:
    print("Inception Score unavailable:", str(err).split(".")[0] + ".")
    print("Precision (Kynkäänniemi et al. 2019) serves as the fidelity measure instead.")

# %%
labels = torch.arange(P.eval.num_samples) % NULL
arms = [("unconditional", "ddim", P.guidance_scales_uncond), ("conditional", "ddim", P.guidance_scales_cond),
        ("unconditional", "ancestral", P.ancestral_scales)]
sweep_rows = []
for kind, form, scales in arms:
    steps = P.eval.sample_steps if form == "ddim" else P.ancestral_steps
    samplers = {s: make_sampler(DIFF, cond_model, sample_steps=steps, method=form, unconditional=kind == "unconditional",
                                cond_fn=classifier_cond_fn(classifier, scale=s) if s > 0 else None) for s in scales}
    for r in score_sweep(samplers, P.eval.num_samples, REF, key="scale s", batch_size=P.eval.batch_size,
                         labels=labels, seed=SEED, metrics=("fid", "pr")):
        sweep_rows.append({"model": kind, "form": f"{form} {steps}", **r})
        print(f"{kind:>13} {form + ' ' + str(steps):>13} s={r['scale s']:<5} FID={r['FID']:.2f} "
              f"precision={r['precision']:.3f} recall={r['recall']:.3f}{SMOKE_LABEL}")

# %%
display(plotting.metrics_table(sweep_rows, formats={"FID": ".2f", "precision": ".3f", "recall": ".3f"}))
by_arm = {}
for r in sweep_rows:
    by_arm.setdefault(f"{r['model']}, {r['form']}", []).append(r)
by_kind = {k: [r for r in sweep_rows if r["model"] == k and r["form"].startswith("ddim")]
           for k in ("unconditional", "conditional")}
fig = figures.sweep_figure(by_arm, "scale s", "classifier scale s", SMOKE_LABEL)

# %% [markdown]
# ## 7. What guidance does to one class
#
# *Question: what does a larger scale look like?* Samples of one class (same seeds in every row) from the
# unconditional model under classifier guidance, then the ancestral form {eq}`adm-ancestral` beside the DDIM form
# {eq}`adm-ddim` at the largest scale shown.

# %%
c = P.grid_class
n_grid = P.eval.grid
rows = {f"s={s:g}": generate(make_sampler(DIFF, cond_model, sample_steps=P.eval.sample_steps, method="ddim",
                                          unconditional=True,
                                          cond_fn=classifier_cond_fn(classifier, scale=s) if s > 0 else None),
                             n_grid, min(P.eval.batch_size, n_grid), labels=c, seed=SEED, progress=False)
        for s in P.grid_scales}
fig = plotting.image_rows(rows, title=f"class '{CIFAR10_CLASSES[c]}', unconditional model + classifier guidance (DDIM)")

s_max = max(P.grid_scales)
ancestral = make_sampler(DIFF, cond_model, sample_steps=P.ancestral_steps, unconditional=True,
                         cond_fn=classifier_cond_fn(classifier, scale=s_max))
forms = {f"DDIM {P.eval.sample_steps} steps": rows[f"s={s_max:g}"],   # the grid's last row: same call, same seed
         f"ancestral {P.ancestral_steps} steps": generate(ancestral, n_grid, min(P.eval.batch_size, n_grid), labels=c,
                                                         seed=SEED, progress=False)}
fig = plotting.image_rows(forms, title=f"s={s_max:g}: the two forms of classifier guidance")

# %% [markdown]
# ## 8. Results beside the paper
#
# ADM reports **no CIFAR-10 result**; its numbers (papers.md §2.2, the official README) are ImageNet at 64–512 px
# with models trained for days on many GPUs. The closest CIFAR-10 reference is a **third-party** ADM-architecture
# baseline from the DDPM-IP repository (unguided). We print them for scale, not as targets.

# %%
best_u = min(by_kind["unconditional"], key=lambda r: r["FID"])
best_c = min(by_kind["conditional"], key=lambda r: r["FID"])
base_u = by_kind["unconditional"][0]
result_rows = [
    {"setting": "ADM, ImageNet 64×64, guided (paper's README)", "FID": 2.07, "precision": 0.74, "recall": 0.63},
    {"setting": "ADM, ImageNet 128×128 (paper's README)", "FID": 2.97, "precision": 0.78, "recall": 0.59},
    {"setting": "ADM arch., CIFAR-10, unguided, 1000 sampling steps (third-party, DDPM-IP)", "FID": 2.99},
    {"setting": "ADM arch., CIFAR-10, unguided, 100 sampling steps (third-party, DDPM-IP)", "FID": 3.39},
    {"setting": f"ours ({P.scale}), unconditional, s=0", "FID": base_u["FID"], "precision": base_u["precision"],
     "recall": base_u["recall"]},
    {"setting": f"ours ({P.scale}), unconditional, best s={best_u['scale s']:g}", "FID": best_u["FID"],
     "precision": best_u["precision"], "recall": best_u["recall"]},
    {"setting": f"ours ({P.scale}), conditional, best s={best_c['scale s']:g}", "FID": best_c["FID"],
     "precision": best_c["precision"], "recall": best_c["recall"]},
]
display(plotting.metrics_table(result_rows, formats={"FID": ".2f", "precision": ".2f", "recall": ".2f"}))
pr_u = by_kind["unconditional"]
print(f"precision s=0 -> s={pr_u[-1]['scale s']:g}: {pr_u[0]['precision']:.3f} -> {pr_u[-1]['precision']:.3f}; "
      f"recall {pr_u[0]['recall']:.3f} -> {pr_u[-1]['recall']:.3f}{SMOKE_LABEL}")
for r in (r for r in sweep_rows if r["form"].startswith("ancestral")):
    twin = next((d for d in by_kind["unconditional"] if d["scale s"] == r["scale s"]), None)
    if twin is not None:
        print(f"s={r['scale s']:g}: FID {r['form']} {r['FID']:.2f} vs {twin['form']} {twin['FID']:.2f}{SMOKE_LABEL}")

# %% [markdown]
# What to look for: the **direction** of the sweep is what can reproduce at this budget — precision rising and
# recall falling as $s$ grows, and a best FID at a moderate scale, lower for the unconditional model than without
# guidance. The two forms of guidance should tell the same story at the same $s$ ({eq}`adm-forms-agree`); their
# FIDs also differ through the sampler itself (stochastic ancestral steps vs deterministic DDIM). The absolute
# FIDs cannot approach the papers' (seconds of training, a few thousand samples, tens of sampling steps).
# In the ablation each variant is trained once (one seed) and scored on 1,000 samples at `book` scale, so only
# large differences mean anything; the equal-time column is the fairer one for a reader with a fixed GPU budget.
#
# ## Provenance

# %%
results = {"scale": P.scale, "comparable": P.comparable, "ablation": ablation_rows,
           "ablation_fid_samples": P.ablation_eval.num_samples, "classifier_accuracy_vs_t": acc,
           "classifier_train": {"steps": ct.steps, "wall_s": clf_timer.elapsed}, "guidance_sweep": sweep_rows,
           "guidance_forms_shift_ratio": {"t": [int(v) for v in t_orig], "ratio": ratio.tolist()},
           "fid_samples": P.eval.num_samples, "sample_steps": P.eval.sample_steps,
           "fid_reference": f"cifar10-{P.eval.fid_reference}-{P.eval.fid_reference_images or 'full'}"}
display(Markdown(provenance.provenance_table(finish_chapter(run, "adm", results,
                                                            projected_h100_s=round(cost["total_s"])))))

# %% [markdown]
# The chapter's headline for the [results page](../book/results.md): the paper's effect, measured here, is that
# classifier guidance raises fidelity; with Inception Score unavailable, precision at the largest guidance scale
# against the same conditional model unguided (one seed). The paper has no CIFAR-10 number to set beside it.

# %%
cond_ddim = [r for r in sweep_rows if r["model"] == "conditional" and r["form"].startswith("ddim")]
top, unguided = max(cond_ddim, key=lambda r: r["scale s"]), min(cond_ddim, key=lambda r: r["scale s"])
results["headline"] = headline(
    f"precision, conditional model, DDIM, s={top['scale s']:g}", top["precision"],
    claim="classifier guidance raises precision (fidelity)", lower_is_better=False,
    method=[top["precision"]], baseline=[unguided["precision"]], method_name=f"s={top['scale s']:g}",
    baseline_name=f"s={unguided['scale s']:g}", comparable=P.comparable)
print("wrote", save_results("adm", results))
