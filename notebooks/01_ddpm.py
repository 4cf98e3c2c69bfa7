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
# # DDPM preliminaries: noising, denoising, and $\mathcal{L}_\text{simple}$
#
# A denoising diffusion probabilistic model {cite}`ho2020ddpm` (building on {cite}`sohldickstein2015deep`)
# destroys an image with a fixed Markov chain that adds a little Gaussian noise at each of $T$ steps, and learns
# to run that chain backwards. {cite:t}`ho2020ddpm` showed that if the network predicts the *noise* that was
# added, the variational bound on the likelihood reduces, up to a per-step weight, to a plain regression, and that
# dropping the weight ($\mathcal{L}_\text{simple}$) gives the best samples: on CIFAR-10 {cite}`krizhevsky2009cifar`
# their model reached an FID {cite}`heusel2017fid` that matched the GANs of the time. Every later chapter of this
# book changes one piece of this baseline, so this chapter builds it up from the forward process to a trained model
# and its samples, and tests on data with a known density where the error of sampling with few steps comes from.
#
# [![Open In Colab](../book/images/colab-badge.svg)](https://colab.research.google.com/github/lt-diffusion/lt-diffusion/blob/main/notebooks/01_ddpm.ipynb)
#
# The note below says at which scale this page ran. To rerun it with the `book` preset on a GPU:
# `papermill notebooks/01_ddpm.ipynb out.ipynb -p SCALE book`. For the paper's configuration, train once with
# `lt-diffusion train ddpm --scale paper --out runs/ddpm` and let the chapter evaluate the saved run:
# `papermill notebooks/01_ddpm.ipynb out.ipynb -p SCALE paper -p CHECKPOINT_DIR runs/ddpm`.

# %% tags=["parameters"]
SCALE = "smoke"
SEED = 0
CHECKPOINT_DIR = None

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
from IPython.display import display

from lt_diffusion import plotting, provenance, report
from lt_diffusion.diffusion import GaussianDiffusion
from lt_diffusion.experiments import (DataSpec, build_diffusion, fid_reference, finish_chapter, load_data, make_sampler,
                                      sample_and_score, start_chapter, summary, train_or_load)
from lt_diffusion.lab import plot_lab, run_lab
from lt_diffusion.lab.plots import lab_table
from lt_diffusion.models import count_parameters
from lt_diffusion.presets import get_preset
from lt_diffusion.sampling import reverse_chain_rows
from lt_diffusion.schedules import get_named_beta_schedule

# %%
P, run, device, _, cost = start_chapter("ddpm", SCALE, SEED)
display(report.scale_note(run, chapter="01_ddpm"))
A = P.arm("ddpm")   # the chapter's one training run: model, diffusion, TrainConfig, data

# %% [markdown]
# ## 1. The forward process and its closed form
#
# The forward ("diffusion") process is a fixed Markov chain: with a variance schedule
# $\beta_1, \dots, \beta_T \in (0, 1)$,
#
# $$
# q(x_t \mid x_{t-1}) = \mathcal{N}\big(x_t;\ \sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\big).
# $$ (ddpm-forward-step)
#
# The factor $\sqrt{1-\beta_t}$ keeps the total variance at one when the data has unit variance, so the chain
# ends near $\mathcal{N}(0, I)$ instead of blowing up. Write $\alpha_t = 1 - \beta_t$ and
# $\bar\alpha_t = \prod_{s \le t} \alpha_s$. One step is $x_t = \sqrt{\alpha_t}\,x_{t-1} + \sqrt{1-\alpha_t}\,\epsilon_t$;
# substituting the previous step,
#
# $$
# x_t = \sqrt{\alpha_t\alpha_{t-1}}\,x_{t-2} + \underbrace{\sqrt{\alpha_t(1-\alpha_{t-1})}\,\epsilon_{t-1}
#       + \sqrt{1-\alpha_t}\,\epsilon_t}_{\text{Gaussian, variance } \alpha_t(1-\alpha_{t-1}) + 1 - \alpha_t
#       \;=\; 1 - \alpha_t\alpha_{t-1}} ,
# $$
#
# because a sum of independent zero-mean Gaussians is Gaussian with the variances added. By induction any $x_t$ can
# be drawn from $x_0$ in one shot:
#
# $$
# q(x_t \mid x_0) = \mathcal{N}\big(x_t;\ \sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big), \qquad
# x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\quad \epsilon \sim \mathcal{N}(0, I).
# $$ (ddpm-marginal)
#
# This is what makes training cheap: a random $t$ and one Gaussian draw give a training pair, with no simulation of
# the chain. DDPM uses the linear schedule $\beta_t$ from $10^{-4}$ to $0.02$ over $T = 1000$ steps. The package's
# one-shot sampler of {eq}`ddpm-marginal`:

# %%
print(inspect.getsource(GaussianDiffusion.q_sample))

# %% [markdown]
# A few values of the DDPM schedule ($T = 1000$, linear; code index $t-1$): $\bar\alpha_T$ is about $4\cdot10^{-5}$,
# so $x_T$ keeps under 1% of the signal's amplitude and is, for practical purposes, the prior $\mathcal{N}(0, I)$.

# %% tags=["nbval-check-output"]
ddpm = GaussianDiffusion(get_named_beta_schedule("linear", 1000))
snr_ddpm = ddpm.alphas_cumprod / (1.0 - ddpm.alphas_cumprod)
for t_paper in (1, 10, 100, 250, 500, 750, 1000):
    i = t_paper - 1
    print(f"t={t_paper:4d}  beta={ddpm.betas[i]:.5f}  alpha_bar={ddpm.alphas_cumprod[i]:.6f}  "
          f"sqrt(alpha_bar)={ddpm.sqrt_alphas_cumprod[i]:.4f}  SNR={snr_ddpm[i]:.3e}")

# %% [markdown]
# A check of {eq}`ddpm-marginal` against the chain itself: running {eq}`ddpm-forward-step` step by step on a
# constant image must give the same mean and variance as the one-shot draw.

# %%
x0 = torch.full((20000, 1), 0.7, dtype=torch.float64)
g = torch.Generator().manual_seed(SEED)
x = x0.clone()
for i in range(300):  # 300 steps of Eq. (ddpm-forward-step)
    x = np.sqrt(1 - ddpm.betas[i]) * x + np.sqrt(ddpm.betas[i]) * torch.randn(x.shape, generator=g, dtype=x.dtype)
one_shot = ddpm.q_sample(x0, torch.full((x0.shape[0],), 299, dtype=torch.long), generator=g)
print(f"chain: mean {x.mean():.4f} var {x.var():.4f} | one shot: mean {one_shot.mean():.4f} var {one_shot.var():.4f}"
      f" | theory: mean {0.7 * ddpm.sqrt_alphas_cumprod[299]:.4f} var {1 - ddpm.alphas_cumprod[299]:.4f}")
assert abs(float(x.mean() - one_shot.mean())) < 0.03 and abs(float(x.var() - one_shot.var())) < 0.03

# %% [markdown]
# **What does $q(x_t \mid x_0)$ do to real images?** Real CIFAR-10 test images, noised with
# {eq}`ddpm-marginal` at several fractions of the chain, with one noise draw per image, the same in every column.
# Under the linear schedule the picture is unrecognisable well before $t = T$: much of the second half of the
# chain is spent on nearly pure noise (chapter 2 returns to this).

# %%
test = load_data(DataSpec(split="test"))
idx = torch.arange(P.forward_grid_images) * (len(test) // P.forward_grid_images)  # one image from several classes
x_start = (test.images[idx].float() / 127.5 - 1.0)
T_demo = 1000
ts = [min(int(round(f * T_demo)), T_demo - 1) for f in P.forward_grid_fractions]
noise = torch.randn(x_start.shape, generator=torch.Generator().manual_seed(SEED))
rows = {}
for j in range(x_start.shape[0]):
    t = torch.tensor(ts, dtype=torch.long)
    rows[f"image {j}"] = ddpm.q_sample(x_start[j:j + 1].expand(len(ts), -1, -1, -1), t,
                                       noise=noise[j:j + 1].expand(len(ts), -1, -1, -1))
plotting.image_rows(rows, col_labels=[f"t={t + 1}" for t in ts],
                    title="q(x_t | x_0) on CIFAR-10 test images, linear schedule, T = 1000");

# %% [markdown]
# ## 2. Signal-to-noise ratio
#
# The marginal {eq}`ddpm-marginal` is fully described by one number per step, the signal-to-noise ratio
#
# $$
# \mathrm{SNR}(t) = \frac{\bar\alpha_t}{1-\bar\alpha_t} ,
# $$ (ddpm-snr)
#
# which falls monotonically in $t$. Many results of the later chapters (the cosine schedule, P2 weighting, where
# guidance acts) are statements about which SNR range a step covers, so the book plots against $\log \mathrm{SNR}$
# as often as against $t$. **How does the log-SNR fall over the chain?** For DDPM's linear schedule it drops
# steeply at first and then slowly; the preset's $T$ is drawn too when it differs.

# %%
curves = {"linear, T=1000": (np.arange(1, 1001) / 1000, np.log(snr_ddpm))}
if A.diffusion.steps != 1000:
    d_p = build_diffusion(A.diffusion)
    curves[f"{A.diffusion.noise_schedule}, T={A.diffusion.steps} (this preset)"] = (
        np.arange(1, A.diffusion.steps + 1) / A.diffusion.steps, np.log(d_p.alphas_cumprod / (1 - d_p.alphas_cumprod)))
plotting.curves(None, curves, xlabel="t / T", ylabel="log SNR(t)", title="Log signal-to-noise ratio");

# %% [markdown]
# ## 3. The forward posterior $q(x_{t-1} \mid x_t, x_0)$
#
# Reversing one step needs $q(x_{t-1} \mid x_t)$, which depends on the unknown data distribution. Conditioned on
# $x_0$, however, it is Gaussian: by Bayes' rule
# $q(x_{t-1} \mid x_t, x_0) \propto q(x_t \mid x_{t-1})\, q(x_{t-1} \mid x_0)$, a product of two Gaussians in
# $x_{t-1}$. Adding their precisions and precision-weighted means,
#
# $$
# \frac{1}{\tilde\beta_t} = \frac{\alpha_t}{\beta_t} + \frac{1}{1-\bar\alpha_{t-1}}
# \;\Rightarrow\; \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t ,
# $$ (ddpm-post-var)
#
# $$
# \tilde\mu_t(x_t, x_0) = \tilde\beta_t\Big(\frac{\sqrt{\alpha_t}}{\beta_t}x_t
#   + \frac{\sqrt{\bar\alpha_{t-1}}}{1-\bar\alpha_{t-1}}x_0\Big)
# = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0 + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t .
# $$ (ddpm-post-mean)
#
# The package precomputes the two coefficients of {eq}`ddpm-post-mean` (`posterior_mean_coef1/2`) and
# $\tilde\beta_t$ (`posterior_variance`):

# %%
print(inspect.getsource(GaussianDiffusion.q_posterior_mean_variance))

# %% [markdown]
# A check of the derivation: the product of the two Gaussian densities, evaluated on a grid of $x_{t-1}$ values
# and normalised numerically, must have the mean and variance the package computes.

# %%
grid = np.linspace(-4, 4, 200001)
for i in (1, 100, 600):  # code indices
    xs0, xt = 0.3, -0.5
    like = -0.5 * (xt - np.sqrt(1 - ddpm.betas[i]) * grid) ** 2 / ddpm.betas[i]          # q(x_t | x_{t-1})
    prior = -0.5 * (grid - ddpm.sqrt_alphas_cumprod[i - 1] * xs0) ** 2 / (1 - ddpm.alphas_cumprod[i - 1])  # q(x_{t-1} | x_0)
    w = np.exp(like + prior - (like + prior).max())
    w /= w.sum()
    mean_num, var_num = (w * grid).sum(), (w * grid ** 2).sum() - (w * grid).sum() ** 2
    mean_pkg, var_pkg, _ = ddpm.q_posterior_mean_variance(torch.tensor([[xs0]], dtype=torch.float64),
                                                          torch.tensor([[xt]], dtype=torch.float64),
                                                          torch.tensor([i]))
    assert abs(mean_num - float(mean_pkg)) < 1e-4 and abs(var_num / float(var_pkg) - 1) < 1e-3
    print(f"t={i + 1:4d}: numeric mean {mean_num:+.5f} var {var_num:.3e} | package mean {float(mean_pkg):+.5f} "
          f"var {float(var_pkg):.3e}")

# %% [markdown]
# ## 4. Predicting the noise: from the bound to $\mathcal{L}_\text{simple}$
#
# The reverse model is $p_\theta(x_{t-1} \mid x_t) = \mathcal{N}(\mu_\theta(x_t, t), \sigma_t^2 I)$ with a fixed
# $\sigma_t^2$ ($\beta_t$ or $\tilde\beta_t$). The negative log-likelihood is bounded by
# $L = L_T + \sum_{t>1} L_{t-1} + L_0$, where $L_{t-1} = \mathrm{KL}\big(q(x_{t-1}\mid x_t, x_0)\,\|\,p_\theta(x_{t-1}\mid x_t)\big)$
# compares two Gaussians with the same variance, so
# $L_{t-1} = \frac{1}{2\sigma_t^2}\lVert\tilde\mu_t(x_t, x_0) - \mu_\theta(x_t, t)\rVert^2 + \text{const}$.
# Writing $x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon)/\sqrt{\bar\alpha_t}$ from {eq}`ddpm-marginal` inside
# {eq}`ddpm-post-mean` gives $\tilde\mu_t = \frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\epsilon\big)$,
# which suggests parameterising the mean by a noise predictor $\epsilon_\theta$:
#
# $$
# \mu_\theta(x_t, t) = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta(x_t, t)\Big)
# \;\Rightarrow\;
# L_{t-1} = \frac{\beta_t^2}{2\sigma_t^2\,\alpha_t(1-\bar\alpha_t)}\,
#   \mathbb{E}\,\big\lVert \epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\epsilon,\ t)\big\rVert^2 .
# $$ (ddpm-eps-param)
#
# {cite:t}`ho2020ddpm` drop the weight in front and sample $t$ uniformly:
#
# $$
# \mathcal{L}_\text{simple} = \mathbb{E}_{t \sim \mathcal{U}\{1..T\},\, x_0,\, \epsilon}
#   \big\lVert \epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\ t)\big\rVert^2 .
# $$ (ddpm-lsimple)
#
# Relative to the bound this *down-weights* the small-$t$ terms, where denoising is easy, and lets the network
# spend its capacity on the harder, noisier steps. The package forms $\mu_\theta$ through the equivalent route
# "predict $\hat x_0$ from $\epsilon_\theta$, then take the posterior mean {eq}`ddpm-post-mean` at $\hat x_0$",
# which also allows clipping $\hat x_0$ to the data range. In the package's training loss,
# {eq}`ddpm-lsimple` is the `"mse"` term (the listing is collapsed: its other branches belong to chapters 2, 5
# and 6):

# %% tags=["hide-output"]
print(inspect.getsource(GaussianDiffusion.training_losses))

# %% [markdown]
# ## 5. Ancestral sampling, and a deterministic alternative
#
# Sampling runs the learned chain from $x_T \sim \mathcal{N}(0, I)$:
# $x_{t-1} = \mu_\theta(x_t, t) + \sigma_t z$, $z \sim \mathcal{N}(0, I)$, with no noise on the last step
# (Algorithm 2 of {cite}`ho2020ddpm`). With $T = 1000$ that is 1000 network evaluations per image. A chain can be
# *respaced*: keep a subset of $K$ steps, recompute $\beta$ from $\bar\alpha$ on the kept steps so that their
# marginals {eq}`ddpm-marginal` do not change, and run the same update (chapter 2 derives it). One ancestral step
# in the package:

# %%
print(inspect.getsource(GaussianDiffusion.p_sample))

# %% [markdown]
# The same trained $\epsilon_\theta$ also drives a deterministic sampler. DDIM {cite}`song2021ddim` predicts
# $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta)/\sqrt{\bar\alpha_t}$ and moves to the previous kept
# step $s$ along the same noise direction, with no fresh noise ($\eta = 0$):
#
# $$
# x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1-\bar\alpha_s}\,\epsilon_\theta(x_t, t) .
# $$ (ddpm-ddim)
#
# Both samplers need nothing beyond the model trained with {eq}`ddpm-lsimple`; they differ in how much error a
# large jump between kept steps adds, which the lab below measures.

# %% [markdown]
# ## 6. Lab: where does the error of few-step sampling come from?
#
# On CIFAR-10 the true noise predictor is unknown, so a sample's quality mixes two errors: how far the trained
# $\epsilon_\theta$ is from the best possible one, and how much the sampler loses by taking large steps. The lab
# separates them on data whose density is known in closed form: a mixture of Gaussians in 8 dimensions with ten
# classes of long-tailed frequencies. Noising a Gaussian mixture with {eq}`ddpm-marginal` gives another Gaussian
# mixture, so the best noise predictor, the one {eq}`ddpm-lsimple` is minimised by, is exact:
# $\epsilon^*(x_t, t) = \mathbb{E}[\epsilon \mid x_t] = -\sqrt{1-\bar\alpha_t}\,\nabla_{x_t}\log q(x_t)$. The lab
# trains a small MLP denoiser with the same engine, then samples both it and $\epsilon^*$ with the ancestral
# sampler and with DDIM {eq}`ddpm-ddim` at several step counts, and scores each sample set by its sliced
# Wasserstein distance to fresh samples of the true data. **The question: when the number of steps shrinks,
# does quality go into the learned $\epsilon$ or into the sampler?** Its design, and the run (cached on disk;
# about a minute on one CPU core when not cached):

# %% tags=["scale-independent"]
lab = run_lab("ddpm")
print(lab.design)
plot_lab(lab);

# %% [markdown]
# Left: the squared error of the learned $\epsilon_\theta$ against $\epsilon^*$ over $t$ (mean of seeds, band
# the range over seeds). Right: the distance to the true distribution against the number of sampling steps, for
# the learned and the exact denoiser, with each sampler. The two claims the lab tests, with the two arms each
# verdict compares (mean, and the range over seeds), the gain in the claim's direction and the seed spread:

# %% tags=["scale-independent"]
display(lab_table(lab))
print(lab.summary)

# %% [markdown]
# The learned $\epsilon_\theta$ is furthest from $\epsilon^*$ at small $t$, where the added noise is tiny and hard
# to tell from the data's own detail, and nearly exact at large $t$. At few steps the exact denoiser does not
# rescue ancestral sampling: its curve sits close to the learned one, so the loss at 10 steps belongs to the
# sampler's discretisation, and DDIM's deterministic update loses less of it. Both verdicts in the table come
# from the numbers above; a rerun with other seeds (exercise 1) tests how firm they are.
#
# ## 7. Training a small model on CIFAR-10
#
# **Does the $\epsilon$-MSE go down, and where in $t$ is it hardest?** The trainer logs the loss per quarter of the
# chain (improved-diffusion's `mse_q0..q3`, $q_0$ the least noisy quarter). On real images, as in the lab, the
# $\epsilon$ error should be largest near $t = 0$; those steps matter little for samples, which is the reason
# {eq}`ddpm-lsimple` is a good weighting. With `CHECKPOINT_DIR` set, the model is loaded from a saved run
# instead of trained.

# %%
with provenance.Stopwatch() as timer:
    trained = train_or_load(P, "ddpm", checkpoint_dir=CHECKPOINT_DIR, seed=SEED, device=device)
train_s, history, ema_model = timer.elapsed, trained.history, trained.ema
if report.shows_results(SCALE):
    print(f"{count_parameters(ema_model) / 1e6:.2f} M parameters, {A.train.steps} steps of batch {A.train.batch_size}")
    plotting.curves([h["step"] for h in history], {f"t in quarter {q}": [h.get(f"mse_q{q}", np.nan) for h in history]
                    for q in range(4)}, xlabel="training step", ylabel="eps-MSE", logy=True,
                    title="L_simple per quarter of the chain");
else:
    report.pipeline_check("train", timer, loss=[h["loss"] for h in history])

# %% [markdown]
# ## 8. Samples
#
# **What does the trained model produce, and how does an image form along the reverse chain?** A grid of samples
# from the EMA weights with a respaced chain of `P.eval.sample_steps` steps, then, for a few samples, $x_t$ and the
# model's running guess $\hat x_0$ at several points of the chain: the coarse layout is fixed early (large $t$),
# detail arrives last.

# %%
sampler = make_sampler(A.diffusion, ema_model, sample_steps=P.eval.sample_steps, device=device)
with provenance.Stopwatch() as timer:
    grid_images = sampler(P.eval.grid, None, torch.Generator(device).manual_seed(SEED))
    rows, labels = reverse_chain_rows(sampler.diffusion, ema_model, 4, 6, torch.Generator(device).manual_seed(SEED + 1),
                                      device=device)
if report.shows_results(SCALE):
    plotting.sample_grid(grid_images, nrow=int(np.sqrt(P.eval.grid)), title=f"DDPM samples, {sampler.num_steps} steps")
    plotting.image_rows(rows, col_labels=labels, title="Reverse chain: x_(t-1) and x0_hat after each shown step");
else:
    report.pipeline_check("sample", timer, samples=grid_images, chain=torch.stack(list(rows.values())))

# %% [markdown]
# ## 9. FID
#
# **How far are the samples from CIFAR-10?** FID {cite}`heusel2017fid` between `P.eval.num_samples` samples and the
# Inception statistics of the CIFAR-10 *train* set (all 50,000 images at `book` scale, the papers' convention). FID
# is biased upwards at small sample counts, so only numbers with the same $N$ and reference are comparable.

# %%
ref = fid_reference(P.eval.fid_reference, P.eval.fid_reference_images)
with provenance.Stopwatch() as timer:
    fid_value = sample_and_score(sampler, P.eval.num_samples, ref, batch_size=P.eval.batch_size, seed=SEED,
                                 device=device)[0]["FID"]
fid_s, images_seen = timer.elapsed, A.train.steps * A.train.batch_size
if report.shows_results(SCALE):
    paper = get_preset("ddpm", "paper").arm("ddpm").train
    display(plotting.metrics_table([
        {"run": f"this chapter ({P.scale})", "training images (M)": images_seen / 1e6,
         "sampling steps": sampler.num_steps, "FID samples": P.eval.num_samples, "FID": fid_value},
        {"run": "the paper's recipe", "training images (M)": paper.steps * paper.batch_size / 1e6,
         "sampling steps": 1000, "FID samples": 50000}], formats={"FID": ".2f", "training images (M)": ".2f"}))
else:
    report.pipeline_check("FID", timer, fid=fid_value)

# %% [markdown]
# ## What the papers report
#
# These are the papers' numbers on CIFAR-10, not results of this page. {cite:t}`nichol2021improved` retrained
# DDPM's setting ($T = 1000$, linear schedule, $\mathcal{L}_\text{simple}$, 500 K iterations of batch 128) as the
# first row of their ablation, and list DDPM's likelihood beside their own in their Table 3.
#
# | model | where | NLL (bits/dim) | FID (50 K samples) |
# |---|---|---:|---:|
# | DDPM setting: $T = 1000$, linear, $\mathcal{L}_\text{simple}$ | Table 2 of {cite}`nichol2021improved` | 3.73 | 3.29 |
# | DDPM {cite}`ho2020ddpm` | Table 3 of {cite}`nichol2021improved` | 3.70 | – |
#
# A `book` run sees about one percent of those training images with a smaller model and a respaced chain, and its
# FID comes from fewer samples; the table of section 9 lists each of these, so a `book` FID shows how far a few
# minutes of training get, not whether the paper reproduces.
#
# ## What to take away
#
# - The forward process has a closed form {eq}`ddpm-marginal`, so a training pair costs one Gaussian draw at a
#   random $t$; its posterior {eq}`ddpm-post-mean` is Gaussian too, which makes every term of the bound a
#   regression.
# - Predicting the noise turns the bound into a weighted $\epsilon$-MSE; {cite:t}`ho2020ddpm` drop the weight
#   ($\mathcal{L}_\text{simple}$), which shifts effort away from the easy, nearly noise-free steps.
# - The learned $\epsilon$ is least accurate at small $t$; on the lab's data that error costs little compared with
#   what a sampler loses when it takes few, large steps.
# - One trained $\epsilon_\theta$ serves several samplers: ancestral sampling and DDIM differ only in the update
#   {eq}`ddpm-ddim`, and at few steps the deterministic one lost less in the lab.
#
# ## Exercises
#
# 1. Rerun the lab with three other seeds, `run_lab("ddpm", seeds=[3, 4, 5])`, and compare its table with the one
#    above: do both verdicts hold, and by how much does the seed spread change?
# 2. Repeat the check of section 3 for the cosine schedule of chapter 2
#    (`GaussianDiffusion(get_named_beta_schedule("cosine", 1000))`): which part of the derivation of
#    {eq}`ddpm-post-var` and {eq}`ddpm-post-mean` depends on the schedule?
# 3. In the lab, `lt_diffusion.lab.ddpm.STEPS` sets the step counts. Set it to `(10, 20, 50, 100, 200, 500)`,
#    rerun with `run_lab("ddpm", refresh=True)`, and watch the learned and the exact curves as the sampler's
#    discretisation error shrinks: does the learned $\epsilon$'s error ever show?
#
# ## Provenance

# %%
results = {"chapter": "ddpm", "scale": P.scale, "fid": fid_value, "fid_samples": P.eval.num_samples,
           "fid_reference": ref.desc, "sampling_steps": sampler.num_steps, "params": count_parameters(ema_model),
           "train_images": images_seen, "final_loss": history[-1].get("loss"), "comparable": P.comparable}
results["headline"] = summary.headline(
    f"FID ({P.eval.num_samples} samples, {sampler.num_steps} steps, vs CIFAR-10 train)", fid_value,
    claim="— (the pipeline; no comparison in this chapter)", comparable=P.comparable, paper_value=3.29,
    paper_setting="DDPM's setting retrained by Nichol & Dhariwal 2021 (Table 2: T = 1000, linear, L_simple)")
display(provenance.provenance_table(finish_chapter(run, "ddpm", results, train_s=round(train_s, 1),
                                                   fid_s=round(fid_s, 1))))
