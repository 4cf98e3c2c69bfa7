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
# # P2 weighting: which noise levels should the loss care about?
#
# {cite}`choi2022perception` observe that the steps of a diffusion model do different jobs: at high noise the
# network decides coarse layout, at middle noise it fills in the *content* a viewer perceives, and at low noise
# it only removes noise nobody can see. The DDPM objective $\mathcal{L}_\text{simple}$ {cite}`ho2020ddpm` spends
# much of its effort on that last, imperceptible stage. **P2 (perception-prioritised) weighting** multiplies
# each step's $\epsilon$-MSE by $1/(k + \mathrm{SNR}(t))^\gamma$, which shifts the effort to the content stage;
# the paper reports better FID across datasets and architectures, with the largest gains for models without
# attention and on small datasets. In our engine the whole paper is one `loss_weight` callable.
#
# [![Open In Colab](../book/images/colab-badge.svg)](https://colab.research.google.com/github/lt-diffusion/lt-diffusion/blob/main/notebooks/05_p2.ipynb)
#
# The outputs shown come from the run recorded in the provenance cell at the end: the `book` scale on a GPU, or
# the `smoke` scale on a CPU where no GPU run exists yet (then the figures show that the code runs, and the
# numbers mean nothing). The provenance cell gives the scale, device, commit, seeds and wall time. Rerun at full scale with `papermill notebooks/05_p2.ipynb out.ipynb -p SCALE book`.

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
import difflib
import inspect

import numpy as np
import torch
from IPython.display import Markdown, display

from lt_diffusion import plotting, provenance
from lt_diffusion.diffusion import GaussianDiffusion
from lt_diffusion.experiments import (DataSpec, ScoreCurve, build_diffusion, fid_reference, figures, finish_chapter,
                                      highpass_energy, load_data, make_sampler, one_step_reconstructions,
                                      sample_and_score, start_chapter, train_model)
from lt_diffusion.schedules import get_named_beta_schedule
from lt_diffusion.weighting import P2Weight, p2_lambda_t, snr

P, run, device, SMOKE_LABEL, cost = start_chapter("p2", SCALE, SEED)
BASE, P2 = P.arm("baseline"), P.arm("p2")   # every arm has BASE's recipe; only the weight, data, attention differ
print(f"steps/arm={BASE.train.steps} batch={BASE.train.batch_size}")

# %% [markdown]
# ## 1. From the bound to $\mathcal{L}_\text{simple}$: the implicit weight $\lambda_t$
#
# Write $\mathrm{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t)$ for the signal-to-noise ratio of
# $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$; it falls monotonically from about $10^4$
# at the first step of the linear schedule to about $4\cdot 10^{-5}$ at the last. With the reverse variance fixed
# to $\sigma_t^2 = \beta_t$ and the network predicting $\epsilon$, the term of the variational bound at step $t$ is
# a scaled $\epsilon$-regression {cite}`ho2020ddpm`:
#
# $$
# L_{t-1} \;=\; \mathbb{E}_{x_0,\epsilon}\!\left[\frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t)}
# \,\big\|\epsilon - \epsilon_\theta(x_t, t)\big\|^2\right]
# \;=\; \frac{\beta_t}{2\,\alpha_t\,(1-\bar\alpha_t)}\;\mathbb{E}\,\big\|\epsilon - \epsilon_\theta(x_t, t)\big\|^2 .
# $$ (p2-vlb-term)
#
# $\mathcal{L}_\text{simple}$ drops the prefactor and averages the plain $\epsilon$-MSE over $t$. Read backwards,
# it is the bound with every term multiplied by the inverse of that prefactor:
#
# $$
# \mathcal{L}_\text{simple} = \sum_t \mathbb{E}\,\big\|\epsilon - \epsilon_\theta(x_t, t)\big\|^2
# = \sum_t 2\lambda_t\, L_{t-1},
# \qquad \lambda_t = \frac{(1-\beta_t)(1-\bar\alpha_t)}{\beta_t} .
# $$ (p2-lambda)
#
# The constant 2 only rescales the loss, so {cite}`choi2022perception` call $\lambda_t$ the weighting scheme of
# $\mathcal{L}_\text{simple}$. On the linear schedule it is about 1 at the first step ($1-\bar\alpha_t = \beta_1$
# there), rises to about 100 a third of the way along the chain and ends near $(1-\beta_T)/\beta_T \approx 49$
# (printed in Section 3): compared with the likelihood, $\mathcal{L}_\text{simple}$ already gives the cleanest
# steps roughly a hundredth of the weight of the middle ones, one reason it yields better samples than the bound.
# The package computes Eq. {eq}`p2-lambda` from the betas alone:
#

# %%
print(inspect.getsource(p2_lambda_t))

# %% [markdown]
# ## 2. P2: multiply by a decreasing function of SNR
#
# P2 keeps that structure and adds a second factor,
#
# $$
# \lambda'_t = \frac{\lambda_t}{\big(k + \mathrm{SNR}(t)\big)^{\gamma}}
# \quad\Longleftrightarrow\quad
# \mathcal{L}_\text{P2} = \sum_t \mathbb{E}\!\left[\frac{\big\|\epsilon - \epsilon_\theta(x_t, t)\big\|^2}{\big(k + \mathrm{SNR}(t)\big)^{\gamma}}\right] .
# $$ (p2-weight)
#
# The right-hand form is what the official code computes: since $\lambda_t$ is already implicit in
# $\mathcal{L}_\text{simple}$, only $1/(k+\mathrm{SNR})^\gamma$ multiplies the $\epsilon$-MSE (the numerator 1
# is a frequent question on the official repository, papers.md §4). $\gamma = 0$ gives back
# $\mathcal{L}_\text{simple}$. For $\mathrm{SNR} \ll k$ the factor is about $k^{-\gamma}$ (so $k$ keeps the
# noisiest steps' weight finite), for $\mathrm{SNR} \gg k$ it decays like $\mathrm{SNR}^{-\gamma}$. The paper uses
# $k = 1$ and $\gamma \in \{0.5, 1\}$; the weights are not normalised (the authors raise the learning rate
# instead).
#
# The paper splits the SNR axis into three stages: **coarse** ($\mathrm{SNR} < 10^{-2}$: x_t shows almost nothing
# of x_0, the model chooses global structure), **content** ($10^{-2} \le \mathrm{SNR} \le 1$: the perceptible
# content appears) and **clean-up** ($\mathrm{SNR} > 1$: x_t already looks like the image, only imperceptible noise
# is left). P2 down-weights the clean-up stage.

# %% [markdown]
# ### The paper's piece, shown from the package
#
# P2 is the `loss_weight` extension point of the engine, not a fork of it. The weight:

# %%
print(inspect.getsource(P2Weight))

# %% [markdown]
# and the only lines of `GaussianDiffusion.training_losses` that know about it: the hook multiplies the
# $\epsilon$-MSE term and nothing else (with a learned variance the bound term is added unweighted, as in the
# official code).

# %%
src = inspect.getsource(GaussianDiffusion.training_losses).splitlines()
for i, line in enumerate(src):
    if "loss_weight" in line:
        print(f"{i:3d} {line}")

# %% [markdown]
# Seen as a patch, the difference between a baseline run and a P2 run is one field of the run's specification,
# and one hook of the engine object built from it. Both diffs are computed from the objects the experiments use:
# first the two arms' `DiffusionSpec`, then the configuration read back from the two engine diffusions. Everything
# else, the weight itself, lives outside the engine in `P2Weight`.

# %%
print("\n".join(difflib.unified_diff([f"{k} = {v!r}" for k, v in dataclasses.asdict(BASE.diffusion).items()],
                                     [f"{k} = {v!r}" for k, v in dataclasses.asdict(P2.diffusion).items()],
                                     "baseline arm", "P2 arm", lineterm="", n=1)))
baseline_diffusion, p2_diffusion = build_diffusion(BASE.diffusion), build_diffusion(P2.diffusion)
settings = ("num_timesteps", "model_mean_type", "model_var_type", "loss_type", "rescale_timesteps", "loss_weight",
            "regularizer")
print("\n".join(difflib.unified_diff([f"{k} = {getattr(baseline_diffusion, k)!r}" for k in settings],
                                     [f"{k} = {getattr(p2_diffusion, k)!r}" for k in settings],
                                     "baseline engine", "P2 engine", lineterm="")))

# %% [markdown]
# ## 3. The weights against SNR
#
# Which steps does each weighting favour? The first cell prints the P2 factor $1/(1+\mathrm{SNR})^\gamma$ of the
# linear schedule with $T = 1000$ (fixed here, independent of the scale) at a few steps; it reproduces the
# magnitudes noted from the official code in papers.md §4 (γ = 1: $10^{-4}$ at t = 0, 0.48 at t = 250,
# 0.92 at t = 500).

# %% tags=["nbval-check-output"]
ref = GaussianDiffusion(get_named_beta_schedule("linear", 1000))
ts = [0, 250, 500, 750, 999]
print("linear T=1000, k=1   t:   " + "".join(f"{t:>11d}" for t in ts))
print("SNR(t)                    " + "".join(f"{snr(ref.alphas_cumprod)[t]:>11.4g}" for t in ts))
for g in (0.5, 1.0, 2.0, 3.0):
    w = P2Weight(g, 1.0).weights(ref)
    print(f"P2 factor, gamma={g:<4}      " + "".join(f"{w[t]:>11.4g}" for t in ts))
print("lambda_t (Eq. p2-lambda)  " + "".join(f"{p2_lambda_t(ref.betas)[t]:>11.4g}" for t in ts))

# %% [markdown]
# How many of the 1000 steps fall in each stage, and where $\lambda_t$ peaks (deterministic):

# %% tags=["nbval-check-output"]
for sched in ("linear", "cosine"):
    d = GaussianDiffusion(get_named_beta_schedule(sched, 1000))
    s = snr(d.alphas_cumprod)
    lam = p2_lambda_t(d.betas)
    print(f"{sched:<7} steps with SNR < 1e-2: {(s < 1e-2).sum():>4d}, 1e-2..1: {((s >= 1e-2) & (s <= 1)).sum():>4d}, "
          f"> 1: {(s > 1).sum():>4d} | SNR from {s.min():.2g} to {s.max():.3g} | "
          f"lambda_t: {lam[0]:.3g} at t=0, max {lam.max():.1f} at t={lam.argmax()}, {lam[-1]:.1f} at t=999")

# %% [markdown]
# The figure draws, for the linear and the cosine schedule, the factor on the $\epsilon$-MSE (left) and the
# full weight relative to the bound, $\lambda'_t$, normalised to sum to one over $t$ (right), against SNR.
# Shaded: coarse, content and clean-up stages.

# %%
fig = figures.p2_weights_figure(P.plot_gammas, P.p2_k)

# %% [markdown]
# Read with the printed values: γ = 1 divides the weight of the first step by $10^4$ and leaves the coarse stage
# untouched, so the content stage carries a larger share of the loss. The cosine schedule keeps about half of its
# steps at SNR > 1 (the linear one about a quarter; counts printed above), so the same γ down-weights more of its
# steps.
#
# ## 4. Why a too-large γ leaves noise in the samples
#
# The following is our back-of-the-envelope argument, not the paper's. Three facts:
#
# 1. From $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon)/\sqrt{\bar\alpha_t}$, an error $e_t$ in the
#    predicted noise becomes an image-space error of squared size $\|x_0 - \hat x_0\|^2 = \|e_t\|^2/\mathrm{SNR}(t)$.
# 2. A network with finite capacity fits each step roughly in proportion to its weight; suppose the squared
#    $\epsilon$-error it leaves at step $t$ scales like $1/w_t$, with $w_t \approx \mathrm{SNR}^{-\gamma}$ in the
#    clean-up stage.
# 3. On the linear schedule, $1 - \bar\alpha_t \approx \sum_{s\le t}\beta_s$ grows linearly at small $t$, so
#    $d\log\mathrm{SNR}/dt \approx -\beta_t\,\mathrm{SNR}$: a sampler that visits every step spends about
#    $1/\mathrm{SNR}$ steps per unit of $\log\mathrm{SNR}$ at high SNR.
#
# The residual error the clean-up stage leaves is then
#
# $$
# \sum_{t\,\in\,\text{clean-up}} \frac{\|e_t\|^2}{\mathrm{SNR}(t)} \;\propto\;
# \int \mathrm{SNR}^{\gamma}\cdot\frac{1}{\mathrm{SNR}}\cdot\frac{1}{\mathrm{SNR}}\; d\log\mathrm{SNR}
# = \int \mathrm{SNR}^{\gamma-2}\, d\log\mathrm{SNR}.
# $$ (p2-residual)
#
# For $\gamma < 2$ the integrand vanishes towards high SNR: the cleanest steps, though barely trained, have
# little left to remove. At $\gamma = 2$ every decade of SNR contributes equally, and for $\gamma > 2$ the sum is
# dominated by the very last steps, those with the least weight, and the sampler ends before the last noise is
# removed. (On the cosine schedule $1-\bar\alpha_t$ grows like $t^2$, the step density is
# $\mathrm{SNR}^{-1/2}$ and the same argument puts the threshold at 1.5.)
#
# The cell evaluates the discrete version of Eq. {eq}`p2-residual` on the real schedules: the share of
# $\sum_t 1/(w_t\,\mathrm{SNR}(t))$ that comes from the 1 % least-noisy steps, for several γ (deterministic,
# $T = 1000$).

# %% tags=["nbval-check-output"]
print("share of the residual-noise proxy from the 10 least-noisy of 1000 steps (k = 1)")
print("gamma:     " + "".join(f"{g:>9.1f}" for g in (0.0, 0.5, 1.0, 2.0, 3.0)))
for sched in ("linear", "cosine"):
    d = GaussianDiffusion(get_named_beta_schedule(sched, 1000))
    s = snr(d.alphas_cumprod)
    shares = []
    for g in (0.0, 0.5, 1.0, 2.0, 3.0):
        r = 1.0 / (P2Weight(g, 1.0).weights(d) * s)
        shares.append(r[:10].sum() / r.sum())
    print(f"{sched:<10} " + "".join(f"{v:>9.3f}" for v in shares))

# %% [markdown]
# With the linear schedule the last 1 % of the steps accounts for a negligible share up to γ = 1 and for most of
# it at γ = 3. Section 7 looks at the samples of the γ = 3 model trained in Section 5: do they keep visible noise?
#
# ## 5. Baseline vs P2 at a fixed budget
#
# **Question:** at the same number of training images, does P2 reach a lower FID than
# $\mathcal{L}_\text{simple}$, and is the gap larger on a small dataset (1,000 images) and without the 16×16
# attention layers (the two settings where the paper reports the largest gains)? Every arm trains the same
# unconditional model for the same steps with the same seed; only the loss weight, the data and the attention
# differ. The main arms (with attention, γ ∈ {0, P2's γ}) are trained in chunks of `eval_every` steps; after each
# chunk the EMA model's FID is measured with a cheap deterministic DDIM sampler (`curve_samples` samples) against
# the statistics of the whole CIFAR-10 train set, and at the end once more with the respaced ancestral sampler on
# `eval.num_samples` samples.

# %%
ref_stats = fid_reference("train", P.eval.fid_reference_images)   # cached on disk after the first use
real_ref = load_data(DataSpec(num_images=P.eval.fid_reference_images))
print(f"training sets: { {a.label: len(load_data(a.data)) for a in P.arms.values()} }; FID reference: "
      f"{len(real_ref)} train images")
print(inspect.getsource(ScoreCurve.__call__))   # the callback between chunks: FID of the current EMA model

# %%
curves, finals, trained, samples = {}, {}, {}, {}
with provenance.Stopwatch() as timer:
    for key, arm in P.arms.items():
        main = key in P.main_arms   # with attention, γ ∈ {0, P2's γ}: the arms with a FID curve
        curve = ScoreCurve(arm.diffusion, P.curve_samples, ref_stats, seed=SEED + 1, batch_size=P.eval.batch_size,
                           device=device, sample_steps=P.curve_ddim_steps, method="ddim")
        trained[key] = train_model(arm, seed=SEED, device=device, every=P.eval_every if main else None, on_chunk=curve)
        curves[key], samples[key] = curve.points, curve.images
        if main:
            final = make_sampler(arm.diffusion, trained[key].ema, sample_steps=P.eval.sample_steps, device=device)
            scores, samples[key] = sample_and_score(final, P.eval.num_samples, ref_stats, batch_size=P.eval.batch_size,
                                                    seed=SEED + 2, device=device)
            finals[key] = scores["FID"]
        print(f"{arm.label:<22} images/s {trained[key].history[-1]['images_per_s']:>8.0f}   "
              f"FID(DDIM-{P.curve_ddim_steps}, n={P.curve_samples}) {curves[key][-1][1]:7.2f}"
              + (f"   FID({P.eval.sample_steps}-step ancestral, n={P.eval.num_samples}) {finals[key]:7.2f}"
                 if key in finals else "") + SMOKE_LABEL)
print(f"training + evaluation: {timer.elapsed:.0f} s")

# %% [markdown]
# **FID over training** (main arms; DDIM, η = 0, n = `curve_samples`; lower is better):

# %%
fig = plotting.curves(None, {P.arm(k).label: tuple(zip(*v)) for k, v in curves.items() if k in finals},
                      "training step", f"FID (n={P.curve_samples}){SMOKE_LABEL}", markers=True, logy=True,
                      title="baseline vs P2 on all data and on 1,000 images")

# %% [markdown]
# ## 6. Reconstruction across noise levels
#
# **Question:** where in the SNR range does P2 change what the model predicts? We noise the same test images to
# $x_t$ at a few SNRs and show the one-step prediction $\hat x_0$ of the baseline and the P2 model (EMA weights,
# all data). Low SNR: the models invent content; SNR around 1: the content stage; high SNR: the clean-up stage,
# where P2 trained least.

# %%
test = load_data(DataSpec(split="test", num_images=10 * P.recon_images))
x0 = test.images[:: P.recon_images][: P.recon_images]   # one test image from each of the first classes
x0 = x0.to(device).float().div(127.5).sub(1.0)
alphas_snr = snr(baseline_diffusion.alphas_cumprod)
t_for = [int(np.argmin(np.abs(np.log(alphas_snr) - np.log(s)))) for s in P.recon_snrs]
x_ts, cols, recon_mse = one_step_reconstructions(baseline_diffusion, {"baseline": trained["baseline"].ema,
                                                                     "P2": trained["p2"].ema}, x0, t_for,
                                                  torch.Generator(device=device).manual_seed(SEED))
cols["x_t"] = x_ts
rows = {}
clean = x0.cpu()
for i in range(x0.shape[0]):   # per image: x_t, then each model's x̂_0; column 0 repeats the clean x_0 to compare
    rows[f"#{i} x_t"] = torch.stack([clean[i]] + [c[i] for c in cols["x_t"]])
    for name in ("baseline", "P2"):
        rows[f"#{i} x̂_0 {name}"] = torch.stack([clean[i]] + [c[i] for c in cols[name]])
fig = plotting.image_rows(rows, col_labels=["x_0"] + [f"SNR={s:g}\nt={t}" for s, t in zip(P.recon_snrs, t_for)],
                          title="x_0 → x_t → x̂_0" + SMOKE_LABEL, cell_size=0.7)

# %%
display(plotting.metrics_table(
    [{"SNR": s, "t": t_i, **{f"MSE(x̂_0) {n}": recon_mse[n][i] for n in recon_mse}}
     for i, (s, t_i) in enumerate(zip(P.recon_snrs, t_for))],
    formats={"SNR": ".3g"}))

# %% [markdown]
# ## 7. A too-large γ: does noise remain?
#
# **Question:** does the γ = 3 model (Section 4's prediction) leave high-frequency noise in its samples? We
# measure the mean squared response of a 3×3 Laplacian (a high-pass filter) on grey-scale samples, relative to
# the same statistic on real training images: 1 means "as much fine detail/noise as real data".

# %%
real_hp = highpass_energy(real_ref.images[: P.curve_samples])
hp_rows = [{"arm": P.arm(k).label, "high-pass energy / real": highpass_energy(imgs) / real_hp,
            "FID (DDIM)": curves[k][-1][1]} for k, imgs in samples.items()]
display(plotting.metrics_table(hp_rows, formats={"high-pass energy / real": ".3f", "FID (DDIM)": ".2f"}))
grid_rows = {P.arm(k).label: samples[k][:8] for k in ("baseline", "p2", "gamma3") if k in samples}
fig = plotting.image_rows(grid_rows, title="samples (first 8)" + SMOKE_LABEL, cell_size=0.7)

# %% [markdown]
# ## 8. Results
#
# papers.md has **no P2 numbers on CIFAR-10**: the paper's experiments are at 256×256 (FFHQ, CelebA-HQ, MetFaces,
# AFHQ-Dogs, Oxford Flowers, CUB), the official repository has no CIFAR-10 configuration, and the paper's FID
# tables were not read for these notes (papers.md §4.3, §9). So the table has no paper column; what we can check
# is the paper's *qualitative* claim (P2 ≤ baseline in FID, with larger gains on small data and without
# attention) at our small budget.

# %%
rows = [{"arm": arm.label, "γ": arm.diffusion.p2_gamma, "data": f"{len(load_data(arm.data))} images",
         "16×16 attention": bool(arm.model.attention_resolutions),
         f"FID DDIM-{P.curve_ddim_steps} (n={P.curve_samples})": curves[key][-1][1],
         f"FID {P.eval.sample_steps}-step (n={P.eval.num_samples})": finals.get(key)} for key, arm in P.arms.items()]
display(plotting.metrics_table(rows, formats={c: ".2f" for c in rows[0] if c.startswith("FID")}))
pairs = [("all data", "baseline", "p2"), ("1k images", "baseline_1k", "p2_1k"),
         ("no 16×16 attention", "baseline_noattn", "p2_noattn")]
for label, b, p in [q for q in pairs if q[1] in curves]:
    g = curves[b][-1][1] - curves[p][-1][1]   # FID(baseline) - FID(P2) at the end of training
    print(f"{label:<20} FID(baseline) - FID(P2) = {g:+.2f}  -> "
          f"{'P2 better' if g > 0 else 'P2 not better'} (one seed: differences of a few FID points are noise)"
          + SMOKE_LABEL)

# %% [markdown]
# Reading the table: a positive gain means P2 reached a lower FID at the same budget. One seed per arm cannot
# separate differences of a few FID points from seed noise (chapter 06 measures that spread for a similar model);
# the short budget also means every model is still improving, so the comparison is about *early* training, where
# the paper's argument (effort moved from imperceptible details to content) should matter most.
#
# The chapter's headline for the [results page](../book/results.md): the paper's effect is that P2 lowers FID at
# an equal budget; measured here on all data, one seed, with the final FID of each main arm. The paper has no CIFAR-10
# number (papers.md §4.3), so there is no paper value.

# %%
from lt_diffusion.experiments.summary import headline

headline_p2 = headline(
    f"FID ({P.eval.num_samples} samples, {P.eval.sample_steps} steps)", finals["p2"],
    claim=f"P2 (γ={P2.diffusion.p2_gamma:g}, k={P2.diffusion.p2_k:g}) lowers FID vs L_simple at equal budget",
    method=[finals["p2"]], baseline=[finals["baseline"]], method_name="P2", baseline_name="baseline (L_simple)",
    comparable=P.comparable)
print({k: headline_p2[k] for k in ("value", "gain", "verdict")})

# %% [markdown]
# ## Provenance

# %%
results = {"scale": P.scale, "comparable": P.comparable,
           "fid_curves": {P.arm(k).label: [[int(s), float(f)] for s, f in v] for k, v in curves.items()},
           "fid_final": {P.arm(k).label: float(v) for k, v in finals.items()},
           "final_fid_samples": P.eval.num_samples, "final_sample_steps": P.eval.sample_steps,
           "curve_fid_samples": P.curve_samples,
           "highpass_energy_ratio": {r["arm"]: r["high-pass energy / real"] for r in hp_rows}, "recon_mse": recon_mse,
           "recon_snrs": list(P.recon_snrs), "p2": {"gamma": P2.diffusion.p2_gamma, "k": P2.diffusion.p2_k},
           "headline": headline_p2}
display(Markdown(provenance.provenance_table(finish_chapter(run, "p2", results,
                                                            projected_h100_s=round(cost["total_s"])))))
