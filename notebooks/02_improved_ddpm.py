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
# # Improved DDPM: a better schedule, a learned variance, and fewer sampling steps
#
# {cite:t}`nichol2021improved` take the DDPM of chapter 1 {cite}`ho2020ddpm` and ask why its log-likelihood lags
# behind other likelihood models while its samples are good. Three small changes close much of the gap: a
# **cosine noise schedule** that destroys information more evenly over the chain, a **learned reverse variance**
# (an interpolation between the two natural fixed choices, trained by a **hybrid objective**
# $\mathcal{L}_\text{simple} + \lambda\,\mathcal{L}_\text{vlb}$), and **importance sampling of $t$** that makes
# the pure bound $\mathcal{L}_\text{vlb}$ trainable. The learned variance also lets the model sample with 50–100
# steps instead of thousands with little loss in quality. Each change is a small diff of the engine; this chapter
# shows each one, measures it on CIFAR-10 at a few minutes of compute, and sets the results beside the paper's
# ablation.
#
# [![Open In Colab](../book/images/colab-badge.svg)](https://colab.research.google.com/github/lt-diffusion/lt-diffusion/blob/main/notebooks/02_improved_ddpm.ipynb)
#
# The outputs shown come from the run recorded in the provenance cell at the end: the `book` scale on a GPU, or
# the `smoke` scale on a CPU where no GPU run exists yet (then the figures show that the code runs, and the
# numbers mean nothing). The provenance cell gives the scale, device, commit, seeds and wall time. Rerun at full
# scale with `papermill notebooks/02_improved_ddpm.ipynb out.ipynb -p SCALE book` (about 6 minutes on one H100,
# the budget table below).

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

import numpy as np
import torch
from IPython.display import Markdown, display

from lt_diffusion import plotting, provenance
from lt_diffusion.diffusion import GaussianDiffusion
from lt_diffusion.experiments import (DataSpec, amp_model, build_diffusion, cost_rows, fid_reference, finish_chapter,
                                      learned_variance_ratio, load_data, make_sampler, sample_and_score, save_results,
                                      start_chapter, train_model)
from lt_diffusion.experiments.summary import headline
from lt_diffusion.models import count_parameters
from lt_diffusion.presets.improved_ddpm import (PAPER_TABLE, PAPER_TABLE_SOURCE, SAMPLER_OPTIONS, STEP_ARM_LABELS,
                                                STEP_ARMS)
from lt_diffusion.resample import LossSecondMomentResampler
from lt_diffusion.schedules import (betas_for_alpha_bar, cosine_alpha_bar, get_named_beta_schedule,
                                    skip_prefix_timesteps, space_timesteps)

P, run, device, SMOKE_LABEL, cost = start_chapter("improved_ddpm", SCALE, SEED)
TRAIN = P.arm("cosine_hybrid").train   # every arm has this recipe (only the schedule sampler and logging differ)
print(f"T={P.T}; each run: {TRAIN.steps} steps x {TRAIN.batch_size} images")


# %% [markdown]
# **What does each scale cost?** The three presets of this chapter and their projected time on one H100, from
# the step costs measured there (DESIGN.md, `benchmarks/results`): `book` is sized to fit one 9-minute device call,
# `paper` is the paper's configuration (128 channels, 3 blocks, $T = 4000$, batch 128, lr $10^{-4}$, 500 K steps
# per model, 50 K samples per FID) and is never run here.

# %% tags=["nbval-check-output"]
display(plotting.metrics_table(cost_rows("improved_ddpm"), formats={"training images (M)": ".3f", "train (h)": ".3f",
                                                                   "sampling + FID (h)": ".3f", "total (min)": ".1f"}))

# %% [markdown]
# ## 1. The cosine schedule
#
# Under DDPM's linear schedule $\bar\alpha_t$ collapses early: the last part of the forward chain is
# nearly pure noise and adds little to learning (section 6 measures this). The paper instead fixes the shape of
# $\bar\alpha_t$ directly,
#
# $$
# \bar\alpha_t = \frac{f(t)}{f(0)},\qquad f(t) = \cos^2\!\Big(\frac{t/T + s}{1 + s}\cdot\frac{\pi}{2}\Big),
# \qquad \beta_t = \min\Big(1 - \frac{\bar\alpha_t}{\bar\alpha_{t-1}},\ 0.999\Big),
# $$ (iddpm-cosine)
#
# which falls linearly in the middle and changes slowly at both ends. The offset $s = 0.008$ keeps $\beta_t$ from
# being too small near $t = 0$ (the paper picks it so that $\sqrt{\beta_1}$ is a little below one pixel bin,
# $1/127.5$; printed below in bins), and the clip at $0.999$ avoids the singularity at $t = T$. The linear schedule is rescaled with $T$ (by $1000/T$) so that every
# $T$ describes the same process. The package's code:

# %%
print(inspect.getsource(cosine_alpha_bar))
print(inspect.getsource(betas_for_alpha_bar))

# %% [markdown]
# $\bar\alpha$ at a few fractions of the chain, for the paper's $T = 4000$ and for $T = 1000$ (the same curve,
# sampled more coarsely), the first step $\sqrt{\beta_1}$ in pixel bins of $1/127.5$, and where $\log\mathrm{SNR}$
# first drops below $-5$ (under 1% of the variance is signal):

# %% tags=["nbval-check-output"]
for T in (4000, 1000):
    for name in ("linear", "cosine"):
        d = GaussianDiffusion(get_named_beta_schedule(name, T))
        ab = d.alphas_cumprod
        vals = "  ".join(f"{f:.2f}:{ab[min(int(f * T), T - 1)]:.5f}" for f in (0.0, 0.25, 0.5, 0.75, 1.0))
        log_snr = np.log(ab / (1 - ab))
        print(f"T={T} {name:6s} alpha_bar at t/T = {vals} | sqrt(beta_1) = {np.sqrt(d.betas[0]) * 127.5:.2f} bins"
              f" | log SNR < -5 from t/T = {(np.argmax(log_snr < -5) + 1) / T:.3f}")

# %% [markdown]
# **How do the two schedules spend the chain?** $\bar\alpha_t$ (the paper's Figure 5) and $\log\mathrm{SNR}(t)$
# against $t/T$: the linear schedule reaches $\log\mathrm{SNR} < -5$ at 70% of the chain, the cosine schedule
# only at 95% (the numbers printed above); the cosine $\log\mathrm{SNR}$ is close to linear in $t$ over most of
# the chain.

# %%
T_plot = 4000
u = np.arange(1, T_plot + 1) / T_plot
ab = {name: GaussianDiffusion(get_named_beta_schedule(name, T_plot)).alphas_cumprod for name in ("linear", "cosine")}
plotting.curves(u, {f"{k}": v for k, v in ab.items()}, xlabel="t / T", ylabel="alpha_bar_t",
                title="Signal fraction, T = 4000");
plotting.curves(u, {f"{k}": np.log(v / (1 - v)) for k, v in ab.items()}, xlabel="t / T", ylabel="log SNR(t)",
                title="Log signal-to-noise ratio, T = 4000");

# %% [markdown]
# **What does that look like on an image?** The paper's Figure 3 (drawn there on ImageNet), here on a CIFAR-10
# test image: the same image and the same noise draw at evenly spaced $t$, linear schedule (top) and cosine
# schedule (bottom). The linear row is pure noise for the last several columns; the cosine row keeps structure
# until late.

# %%
test = load_data(DataSpec(split="test"))
x_img = test.images[7:8].float() / 127.5 - 1.0
fracs = np.linspace(0, 1, 11)
noise = torch.randn(x_img.shape, generator=torch.Generator().manual_seed(SEED))
rows = {}
for name in ("linear", "cosine"):
    d = GaussianDiffusion(get_named_beta_schedule(name, 1000))
    t = torch.tensor([min(int(f * 1000), 999) for f in fracs])
    rows[name] = d.q_sample(x_img.expand(len(t), -1, -1, -1), t, noise=noise.expand(len(t), -1, -1, -1))
# columns: t/T; rows: the schedule (T = 1000)
plotting.image_rows(rows, col_labels=[f"{f:.1f}" for f in fracs], cell_size=1.0);

# %% [markdown]
# ## 2. Learning the reverse variance
#
# DDPM fixes the reverse variance to $\sigma_t^2 = \beta_t$ or $\sigma_t^2 = \tilde\beta_t$ (the forward posterior
# variance of chapter 1). {cite:t}`ho2020ddpm` note that the first is optimal when $x_0 \sim \mathcal{N}(0, I)$ and
# the second when $x_0$ is a single fixed point, the two extremes for data with unit variance per coordinate, and
# report equal sample quality with either. The reason is that the two are nearly equal for all but the first steps: **how far apart
# are $\beta_t$ and $\tilde\beta_t$ over the chain?** The paper's Figure 1 plots the ratio for several $T$; it is
# far from one only for the first few percent of the chain, and the region shrinks as $T$ grows.

# %%
ratio = {}
for T in P.variance_T:
    for name in ("linear", "cosine"):
        d = GaussianDiffusion(get_named_beta_schedule(name, T))
        # t = 1 has beta_tilde = 0 (log clipped in the code); the ratio is drawn from t = 2 on
        ratio[f"{name}, T={T}"] = (np.arange(2, T + 1) / T, d.posterior_variance[1:] / d.betas[1:])
plotting.curves(None, ratio, xlabel="t / T", ylabel="beta_tilde_t / beta_t", logx=True,
                title="Posterior variance over forward variance");

# %% [markdown]
# Yet those first steps carry most of the variational bound (section 4), so the choice matters for the likelihood.
# The network therefore outputs a vector $v$ (the second half of its $2C$ channels) that interpolates the two
# bounds in the log domain,
#
# $$
# \Sigma_\theta(x_t, t) = \exp\big(v\,\log\beta_t + (1 - v)\,\log\tilde\beta_t\big),
# $$ (iddpm-learned-var)
#
# with $v$ unconstrained (the official code maps the raw output $o$ to $v = (o + 1)/2$). Section 5 reads the learned
# $\Sigma_\theta$ back out of the trained models. The `learned_range` branch of the package's `p_mean_variance`:

# %%
print(inspect.getsource(GaussianDiffusion.p_mean_variance))

# %% [markdown]
# ## 3. The hybrid objective and importance sampling of $t$
#
# $\mathcal{L}_\text{simple}$ does not depend on $\Sigma_\theta$, so the variance is trained with the bound
# $\mathcal{L}_\text{vlb} = L_0 + L_1 + \dots + L_T$, where $L_{t-1} = \mathrm{KL}(q(x_{t-1}\mid x_t,x_0)\,\|\,p_\theta(x_{t-1}\mid x_t))$
# and $L_0$ is the discretised decoder likelihood. The paper's hybrid objective is
#
# $$
# \mathcal{L}_\text{hybrid} = \mathcal{L}_\text{simple} + \lambda\,\mathcal{L}_\text{vlb},\qquad \lambda = 0.001,
# $$ (iddpm-hybrid)
#
# with a stop-gradient on $\mu_\theta$ inside $\mathcal{L}_\text{vlb}$, so that $\mathcal{L}_\text{simple}$ alone
# drives the mean and the bound only teaches the variance. One sampled $t$ gives $L_t$, an estimate of
# $\mathcal{L}_\text{vlb}/T$, which is why the code multiplies the single term by $T\lambda$. One bound term, in
# bits per dimension:

# %%
print(inspect.getsource(GaussianDiffusion._vb_terms_bpd))

# %% [markdown]
# Optimising $\mathcal{L}_\text{vlb}$ alone should give the best likelihood, but with uniform $t$ its gradient is
# very noisy: the terms differ by orders of magnitude across $t$ (section 4). The paper samples $t$ in proportion
# to the root mean square of recent values of each term and reweights so the estimate stays unbiased:
#
# $$
# \mathcal{L}_\text{vlb} = \mathbb{E}_{t \sim p_t}\Big[\frac{L_t}{p_t}\Big],\qquad
# p_t \propto \sqrt{\mathbb{E}[L_t^2]},\qquad \textstyle\sum_t p_t = 1 ,
# $$ (iddpm-importance)
#
# with the last 10 values of each term as the history, uniform sampling until every $t$ has 10, and a small
# uniform mixture. The package's sampler:

# %%
print(inspect.getsource(LossSecondMomentResampler.weights))
print(inspect.getsource(LossSecondMomentResampler.update_with_local_losses))

# %% [markdown]
# ## 4. Training the ablation
#
# One model per row of the paper's CIFAR-10 ablation (Table 2 of {cite}`nichol2021improved`): linear and cosine
# schedules, each with $\mathcal{L}_\text{simple}$ (fixed $\sigma_t^2 = \beta_t$) and $\mathcal{L}_\text{hybrid}$
# (learned $\Sigma_\theta$); cosine with $\mathcal{L}_\text{vlb}$ and importance sampling; and, for the
# gradient-noise question below, cosine with $\mathcal{L}_\text{vlb}$ and uniform $t$. All runs share the model,
# data, seed and step count of the preset; only the diffusion and the objective differ. The runs of the noise
# figure (`P.noise_runs`) record their loss at every step; the others every `P.log_every` steps (each record is
# a GPU synchronisation).

# %%
models, histories, train_s = {}, {}, {}
for key, arm in P.arms.items():
    with provenance.Stopwatch() as timer:
        trained = train_model(arm, seed=SEED, device=device)
    models[key], histories[key], train_s[key] = trained.ema, trained.history, timer.elapsed
    last = [h["loss"] for h in trained.history[-max(1, 20 // arm.train.log_every):]]
    print(f"{arm.label:24s} final loss {np.mean(last):.4f}  {timer.elapsed:.1f} s "
          f"({TRAIN.steps * TRAIN.batch_size / timer.elapsed:.0f} img/s)")
print(f"{count_parameters(trained.ema) / 1e6:.2f} M parameters per model, {len(load_data(arm.data))} training images")

# %% [markdown]
# **Does importance sampling make $\mathcal{L}_\text{vlb}$ less noisy?** The paper's Figure 6 (ImageNet 64×64)
# shows learning curves of $\mathcal{L}_\text{vlb}$ with uniform and with importance-sampled $t$: the latter is far
# smoother and reaches a better bound. Below, the per-step training loss (the unbiased estimate of
# $\mathcal{L}_\text{vlb}$, in bits/dim) of the two runs, and the spread of that estimate over the second half of
# training (standard deviation across steps, and the same relative to the mean). Until every $t$ has 10 recorded
# losses (at least $10T/B$ steps) the importance sampler is uniform, so the comparison uses the second half only.

# %%
curves_vlb, noise_rows = {}, []
for key in ("cosine_vlb_uniform", "cosine_vlb_is", "cosine_hybrid"):
    h = histories[key]
    steps_k = np.array([x["step"] for x in h])
    # L_vlb runs log T * L_t (importance-weighted); the hybrid run logs lambda * T * L_t with lambda = 0.001
    loss_k = np.array([x["vb"] if key != "cosine_hybrid" else x["vb"] / 0.001 for x in h])
    if key != "cosine_hybrid":  # the hybrid run shares the uniform t draws: its curve would hide L_vlb's
        curves_vlb[P.arm(key).label] = (steps_k, loss_k)
    tail = loss_k[len(loss_k) // 2:]
    noise_rows.append({"run": P.arm(key).label, "mean L_vlb estimate (bits/dim)": tail.mean(),
                       "std across steps": tail.std(), "std / mean": tail.std() / tail.mean()})
plotting.curves(None, curves_vlb, xlabel="training step", ylabel="L_vlb estimate (bits/dim)", logy=True,
                title=f"Training-loss noise: uniform vs importance-sampled t{SMOKE_LABEL}");
display(plotting.metrics_table(noise_rows, formats={"std / mean": ".3f"}))

# %% [markdown]
# (The table's hybrid row is its bound term divided back by $\lambda$, an estimate of the same
# $\mathcal{L}_\text{vlb}$ under uniform $t$; with the same seed it sees the same $t$ as the uniform $\mathcal{L}_\text{vlb}$
# run, so most of its spread is the spread of $t$, not of the model.)
#
# ## 5. Likelihood per objective, and where the bound lives
#
# The exact bound on a batch of CIFAR-10 test images, as the official `calc_bpd_loop` computes it: all $T$ terms
# with one fresh noise draw each, plus the prior term $L_T$, in bits per dimension (`P.bpd_images` images, the same
# images and noise draws for every model; the model under bf16 autocast on a GPU).

# %%
print(inspect.getsource(GaussianDiffusion.calc_bpd_loop))

# %% [markdown]
# `calc_bpd_loop` makes $T$ forward passes of a batch of $B$ images. On a GPU where small passes are bound by
# kernel launches, the chapter evaluates the same terms with many timesteps per pass, drawing the noise in the same
# order, so the result is the loop's (a unit test checks the two agree):

# %%
print(inspect.getsource(GaussianDiffusion.calc_bpd_batched))

# %%
x_bpd = (load_data(DataSpec(split="test", num_images=P.bpd_images)).images.float() / 127.5 - 1.0).to(device)
bpd, vb_terms, bpd_s = {}, {}, 0.0
for key, arm in P.arms.items():
    with provenance.Stopwatch() as timer:
        out = build_diffusion(arm.diffusion).calc_bpd_batched(amp_model(models[key]), x_bpd, batch_size=P.bpd_batch,
                                                              generator=torch.Generator(device).manual_seed(SEED))
    bpd_s += timer.elapsed
    bpd[key], vb_terms[key] = float(out["total_bpd"].mean()), out["vb"].mean(0).cpu().numpy()
    print(f"{arm.label:24s} NLL <= {bpd[key]:.3f} bits/dim on {len(x_bpd)} test images "
          f"(prior term {float(out['prior_bpd'].mean()):.1e}){SMOKE_LABEL}")

# %% [markdown]
# **Which steps carry the bound?** The paper's Figure 2: the terms $L_t$ against $t$. Almost all of the bound comes
# from the first few steps, exactly where $\beta_t$ and $\tilde\beta_t$ differ (section 2), which is why a learned
# variance improves the likelihood while barely changing samples. The fixed-variance ($\mathcal{L}_\text{simple}$)
# models pay most at small $t$.

# %%
t_axis = np.arange(1, P.T + 1)
plotting.curves(t_axis, {P.arm(k).label: np.clip(v, 1e-6, None) for k, v in vb_terms.items()
                         if k != "cosine_vlb_uniform"},
                xlabel="t", ylabel="L_t (bits/dim)", logx=True, logy=True,
                title=f"Terms of the variational bound{SMOKE_LABEL}");

# %% [markdown]
# **Where between $\tilde\beta_t$ and $\beta_t$ does a trained model put its variance?** Equation
# {eq}`iddpm-learned-var` lets $\Sigma_\theta$ move anywhere in (and, with $v$ unconstrained, beyond) the band
# between the two fixed choices. Below, the learned variance of each learned-$\Sigma$ model, read out with the
# package's `p_mean_variance` on `P.variance_images` noised test images at `P.variance_timesteps` log-spaced steps
# (geometric mean over images and pixels), divided by $\beta_t$; the band's lower edge $\tilde\beta_t/\beta_t$ is
# drawn for reference (its upper edge is 1). Where the band is wide, at small $t$, is where the choice changes the
# bound.

# %%
t_read = np.unique(np.geomspace(1, P.T, P.variance_timesteps).round().astype(int) - 1)
x_var = x_bpd[: P.variance_images] if len(x_bpd) >= P.variance_images else (
    load_data(DataSpec(split="test", num_images=P.variance_images)).images.float().to(device) / 127.5 - 1.0)
g = torch.Generator(device).manual_seed(SEED)
var_curves = {f"Sigma_theta / beta_t: {arm.label}": ((t_read + 1) / P.T, learned_variance_ratio(
    build_diffusion(arm.diffusion), models[key], x_var, t_read, g)) for key, arm in P.arms.items() if arm.diffusion.learn_sigma}
ref_d = GaussianDiffusion(get_named_beta_schedule("cosine", P.T))
var_curves["beta_tilde_t / beta_t (cosine; lower edge)"] = (np.arange(2, P.T + 1) / P.T,
                                                            ref_d.posterior_variance[1:] / ref_d.betas[1:])
plotting.curves(None, var_curves, xlabel="t / T", ylabel="variance / beta_t", logx=True,
                title=f"Learned reverse variance inside [beta_tilde_t, beta_t]{SMOKE_LABEL}");

# %% [markdown]
# ## 6. Sample quality per objective
#
# FID {cite}`heusel2017fid` of `P.eval.num_samples` samples per model (the models in `P.fid_runs`), with
# `P.eval.sample_steps` respaced ancestral steps (each model with its own variance: $\beta_t$ for
# $\mathcal{L}_\text{simple}$, $\Sigma_\theta$ otherwise), against the CIFAR-10 train statistics. Each sample set is
# drawn once: where a later experiment needs the same sampler, model and steps (e.g. the learned-variance model at
# 50 steps in section 8), it reuses the number. With fewer samples than feature dimensions (2,048) the Fréchet
# distance is computed in its exact low-rank form (`fid_features_to_stats`).

# %%
print(inspect.getsource(make_sampler))

# %% [markdown]
# Every sample set of sections 6-8 is a key (model, sampler, kept steps, samples), drawn and scored once below:
# the table's sets, the fewer-steps sweep (`STEP_ARMS`) and the skip sweep (`skip_prefix_timesteps`).

# %%
ref = fid_reference(P.eval.fid_reference, P.eval.fid_reference_images)
kept = {K: tuple(sorted(space_timesteps(P.T, K))) for K in (P.eval.sample_steps, *P.step_sweep)}   # evenly strided
table_sets = {key: (key, "own", kept[P.eval.sample_steps], P.eval.num_samples) for key in P.arms}
step_sets = {(name, K): (*STEP_ARMS[name], kept[K], P.sweep_samples) for name in P.step_arms for K in P.step_sweep}
skip_sets = {(key, f): (key, "own", tuple(sorted(skip_prefix_timesteps(P.T, f, P.skip_steps))), P.sweep_samples)
             for key in P.skip_runs for f in P.skip_fractions}
fid_cache = {}   # each set drawn once: e.g. the learned variance at 50 steps is also a row of the table
with provenance.Stopwatch() as timer:
    for s in dict.fromkeys([*table_sets.values(), *step_sets.values(), *skip_sets.values()]):
        arm_key, sampler_name, steps_kept, n = s
        sampler = make_sampler(P.arm(arm_key).diffusion, models[arm_key], use_timesteps=steps_kept, device=device,
                               **SAMPLER_OPTIONS[sampler_name])
        scores, images = sample_and_score(sampler, n, ref, batch_size=P.eval.batch_size, seed=SEED, device=device)
        fid_cache[s] = (scores["FID"], images[:16])
sample_s, ref_desc = timer.elapsed, ref.desc
fid, grids = {}, {}
for key, s in table_sets.items():
    fid[key], grids[key] = fid_cache[s]
    print(f"{P.arm(key).label:24s} FID {fid[key]:7.2f}  ({s[3]} samples, {len(s[2])} steps, "
          f"vs {ref_desc}){SMOKE_LABEL}")
plotting.image_rows({P.arm(k).label: v for k, v in grids.items()},
                    title=f"Samples per objective ({P.eval.sample_steps} steps){SMOKE_LABEL}", cell_size=0.6);

# %% [markdown]
# ## 7. Is the end of the linear schedule wasted?
#
# The paper observes (its Figure 4, on ImageNet 64×64) that a model trained with the linear schedule loses little
# FID when up to 20% of the *reverse* process is skipped: the noisiest steps, where $\bar\alpha_t$ is nearly zero,
# contribute almost nothing. That is the motivation for the cosine schedule. **Protocol here:** for the
# $\mathcal{L}_\text{simple}$ models of both schedules, draw $x \sim \mathcal{N}(0, I)$, treat it as $x_{t_s}$ with
# $t_s = \lfloor(1 - f)T\rfloor$, and run the ancestral sampler only over the steps $t < t_s$ (`P.skip_steps` steps
# spread evenly over $[0, t_s)$, with $\bar\alpha$ kept on the kept steps as in respacing); $f = 0$ is the
# ordinary sampler with the same number of steps. Under the cosine schedule $\bar\alpha_{t_s}$ is far from zero
# already at $f = 0.2$, so starting from pure noise there should hurt; under the linear one it should barely
# matter. FID of `P.sweep_samples` samples per point. The kept steps:

# %%
print(inspect.getsource(skip_prefix_timesteps))

# %%
skip_curves, skip_rows = {}, []
for key in P.skip_runs:
    schedule = P.arm(key).diffusion.noise_schedule
    fids = [fid_cache[skip_sets[(key, f)]][0] for f in P.skip_fractions]
    for f, value in zip(P.skip_fractions, fids):
        t_start = max(skip_sets[(key, f)][2]) + 1
        ab_start = GaussianDiffusion(get_named_beta_schedule(schedule, P.T)).alphas_cumprod[t_start - 1]
        skip_rows.append({"schedule": schedule, "skipped f": f, "start t": t_start,
                          "alpha_bar at start": ab_start, "FID": value})
    skip_curves[P.arm(key).label] = (np.array(P.skip_fractions), np.array(fids))
plotting.curves(None, skip_curves, xlabel="fraction of the reverse process skipped", ylabel="FID", markers=True,
                title=f"FID when the start of the reverse process is skipped{SMOKE_LABEL}");
display(plotting.metrics_table(skip_rows, formats={"FID": ".2f", "alpha_bar at start": ".2e"}))

# %% [markdown]
# ## 8. Sampling with fewer steps
#
# A model trained with $T$ steps can sample with $K \ll T$ of them: keep an evenly strided subset
# $S = \{s_1 < \dots < s_K\}$ and recompute the variances from $\bar\alpha$ so the marginals of the kept steps are
# unchanged, $\beta_{s_k} = 1 - \bar\alpha_{s_k}/\bar\alpha_{s_{k-1}}$. The learned $\Sigma_\theta$ of
# {eq}`iddpm-learned-var` is then interpolated between the *respaced* $\beta$ and $\tilde\beta$, which is why it
# adapts to the new step size while a fixed choice does not. **Which sampler degrades least as $K$ falls?** The
# paper's Figure 8: FID against $K$ for the learned variance ($\mathcal{L}_\text{hybrid}$), for the
# $\mathcal{L}_\text{simple}$ model with fixed $\sigma^2 = \beta_t$ and with $\sigma^2 = \tilde\beta_t$, and for
# DDIM {cite}`song2021ddim` ($\eta = 0$); here DDIM runs on the $\mathcal{L}_\text{simple}$ model, all on the cosine
# schedule, with `P.sweep_samples` samples per point. The paper finds the learned variance best from about 50 steps
# up and DDIM best below 50. The samplers, as data of the preset:

# %%
for name in P.step_arms:
    print(f"{name:12s} model {STEP_ARMS[name][0]:14s} sampler {STEP_ARMS[name][1]:12s} "
          f"make_sampler options {SAMPLER_OPTIONS[STEP_ARMS[name][1]]}")

# %%
step_curves, step_rows = {}, []
for name in P.step_arms:
    fids = [fid_cache[step_sets[(name, K)]][0] for K in P.step_sweep]
    step_rows += [{"sampler": STEP_ARM_LABELS[name], "steps": K, "FID": v} for K, v in zip(P.step_sweep, fids)]
    step_curves[STEP_ARM_LABELS[name]] = (np.array(P.step_sweep), np.array(fids))
plotting.curves(None, step_curves, xlabel="sampling steps K", ylabel="FID", logx=True, markers=True,
                title=f"FID against sampling steps (cosine, T = {P.T}){SMOKE_LABEL}");
display(plotting.metrics_table(step_rows, formats={"FID": ".2f"}))
print(f"{len(fid_cache)} distinct sample sets drawn")

# %% [markdown]
# ## 9. Results
#
# The ablation table with the paper's numbers beside ours. The paper's values are **the paper's**, at 500 K
# steps of batch 128 with $T = 4000$ and the 128-channel model; they are third-party transcriptions of its Table 2
# (see the notes in `papers.md`). Ours: this run's preset ($T$, training images, FID samples and reference as
# printed above; at `book` a few minutes per model), so only the *directions* can be compared.

# %%
rows = []
for key, arm in P.arms.items():
    paper_nll, paper_fid = PAPER_TABLE.get(key, (None, None))
    rows.append({"schedule / objective": arm.label, "NLL ours (bits/dim)": bpd[key],
                 f"FID ours ({P.eval.num_samples} samples)": fid.get(key),
                 "NLL paper": paper_nll, "FID paper": paper_fid})
display(plotting.metrics_table(rows, formats={"NLL ours (bits/dim)": ".3f",
                                              f"FID ours ({P.eval.num_samples} samples)": ".1f"}))
print(f"paper columns: {PAPER_TABLE_SOURCE}")
best_nll = min((k for k in bpd if k in PAPER_TABLE), key=bpd.get)
print(f"lowest NLL among the table rows: {P.arm(best_nll).label} (paper: cosine / L_vlb + IS)"
      f"{SMOKE_LABEL}")

# %% [markdown]
# *What reproduced and what did not*, read by directions: each line states a finding of the paper, the numbers
# of this run that test it, and whether they point the same way (computed, not written in advance). Differences
# smaller than the noise of a few-thousand-sample FID or of a bound on a few dozen images can point either way.

# %%
noise_ratio = {row["run"]: row["std / mean"] for row in noise_rows}
skip_fid = {(row["schedule"], row["skipped f"]): row["FID"] for row in skip_rows}
step_fid = {(row["sampler"], row["steps"]): row["FID"] for row in step_rows}
checks = [
    ("NLL: cosine < linear (L_simple)", bpd["cosine_simple"], bpd["linear_simple"]),
    ("NLL: cosine < linear (L_hybrid)", bpd["cosine_hybrid"], bpd["linear_hybrid"]),
    ("NLL: L_hybrid < L_simple (cosine)", bpd["cosine_hybrid"], bpd["cosine_simple"]),
    ("NLL: L_vlb + IS < L_hybrid (cosine)", bpd["cosine_vlb_is"], bpd["cosine_hybrid"]),
    ("NLL: L_vlb + IS < L_vlb uniform", bpd["cosine_vlb_is"], bpd["cosine_vlb_uniform"]),
    ("loss noise (std/mean): IS < uniform", noise_ratio[P.arm("cosine_vlb_is").label],
     noise_ratio[P.arm("cosine_vlb_uniform").label]),
]
if {"cosine_vlb_is", "cosine_hybrid"} <= set(fid):
    checks.append(("FID: L_hybrid < L_vlb + IS (cosine)", fid["cosine_hybrid"], fid["cosine_vlb_is"]))
K_min = min(P.step_sweep)
for a, b in (("learned", "fixed_large"), ("ddim", "learned")):
    if a in P.step_arms and b in P.step_arms:
        checks.append((f"FID at {K_min} steps: {STEP_ARM_LABELS[a]} < {STEP_ARM_LABELS[b]}",
                       step_fid[(STEP_ARM_LABELS[a], K_min)], step_fid[(STEP_ARM_LABELS[b], K_min)]))
f_skip = 0.2 if 0.2 in P.skip_fractions else max(P.skip_fractions)
if 0.0 in P.skip_fractions and set(P.skip_runs) == {"linear_simple", "cosine_simple"}:
    checks.append((f"FID increase when skipping {f_skip:.0%}: linear < cosine",
                   skip_fid[("linear", f_skip)] - skip_fid[("linear", 0.0)],
                   skip_fid[("cosine", f_skip)] - skip_fid[("cosine", 0.0)]))
display(plotting.metrics_table([{"paper's finding (a < b)": c, "a (ours)": a, "b (ours)": b,
                                 "same direction": bool(a < b)} for c, a, b in checks],
                               formats={"a (ours)": ".3f", "b (ours)": ".3f"}))

# %% [markdown]
# How to read the lines above, with the scale in mind:
#
# - **Likelihood.** The fixed-variance $\mathcal{L}_\text{simple}$ models should lose most clearly in NLL, because
#   their $\sigma_t^2$ is wrong exactly in the first steps that dominate the bound (section 5). Whether
#   $\mathcal{L}_\text{vlb}$ overtakes $\mathcal{L}_\text{hybrid}$ depends on training length: in the paper it does
#   after 500 K steps; the importance sampler only starts to act once every $t$ has 10 recorded losses.
# - **Sample quality.** The paper's FIDs of the four $\mathcal{L}_\text{simple}$/$\mathcal{L}_\text{hybrid}$ rows
#   lie within 0.3 of each other and $\mathcal{L}_\text{vlb}$ is far worse. Differences of that size are below the
#   noise of FID from a thousand samples of briefly trained models, so only a large gap (such as
#   $\mathcal{L}_\text{vlb}$'s) can show up here.
# - **Importance sampling, skipped steps and fewer steps** are measured above with the protocols stated there;
#   the paper's versions use 50 K samples of fully trained models (and ImageNet 64×64 for the skipping and
#   loss-noise experiments).
#
# ## Provenance

# %%
results = {"chapter": "improved_ddpm", "scale": P.scale, "T": P.T, "comparable": P.comparable,
           "nll_bpd": bpd, "bpd_images": len(x_bpd), "fid": fid, "fid_samples": P.eval.num_samples,
           "fid_reference": ref_desc, "sample_steps": P.eval.sample_steps,
           "loss_noise": noise_rows, "skip": skip_rows, "fewer_steps": step_rows,
           "paper_checks": [{"finding": c, "a": a, "b": b, "same_direction": bool(a < b)} for c, a, b in checks],
           "train_s": train_s}
display(Markdown(provenance.provenance_table(finish_chapter(
    run, "improved_ddpm", results, train_s=round(sum(train_s.values()), 1), bpd_s=round(bpd_s, 1),
    sample_and_fid_s=round(sample_s, 1), projected_total_s=round(cost["total_s"], 1)))))

# %% [markdown]
# The chapter's headline for the [results page](../book/results.md): the paper's effect, measured here, is that
# the cosine schedule with $\mathcal{L}_\text{hybrid}$ gives a lower NLL than DDPM's linear schedule with
# $\mathcal{L}_\text{simple}$ (one seed), set beside the paper's number for the same row of its Table 2.

# %%
results["headline"] = headline(
    f"NLL bits/dim, cosine + L_hybrid ({len(x_bpd)} test images)", bpd["cosine_hybrid"],
    claim="cosine + L_hybrid lowers NLL below linear + L_simple", method=[bpd["cosine_hybrid"]],
    baseline=[bpd["linear_simple"]], method_name="cosine, L_hybrid", baseline_name="linear, L_simple",
    paper_value=PAPER_TABLE["cosine_hybrid"][0],
    paper_setting="Table 2, 500K steps, T=4000 [3rd-party transcription]",
    comparable=P.comparable)
print("wrote", save_results("improved_ddpm", results))
