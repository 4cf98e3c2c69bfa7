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
# and its samples.
#
# [![Open In Colab](../book/images/colab-badge.svg)](https://colab.research.google.com/github/lt-diffusion/lt-diffusion/blob/main/notebooks/01_ddpm.ipynb)
#
# The outputs shown come from the run recorded in the provenance cell at the end: the `book` scale on a GPU, or
# the `smoke` scale on a CPU where no GPU run exists yet (then the figures show that the code runs, and the
# numbers mean nothing). The provenance cell gives the scale, device, commit,
# seeds and wall time. Rerun at full scale with `papermill notebooks/01_ddpm.ipynb out.ipynb -p SCALE book`.

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
from lt_diffusion.experiments import (DataSpec, build_diffusion, fid_reference, finish_chapter, load_data, make_sampler,
                                      sample_and_score, save_results, start_chapter, summary, train_model)
from lt_diffusion.models import count_parameters
from lt_diffusion.presets import get_preset
from lt_diffusion.sampling import reverse_chain_rows
from lt_diffusion.schedules import get_named_beta_schedule

P, run, device, SMOKE_LABEL, cost = start_chapter("ddpm", SCALE, SEED)
A = P.arm("ddpm")   # the chapter's one training run: model, diffusion, TrainConfig, data
print(f"T={A.diffusion.steps} schedule={A.diffusion.noise_schedule} train steps={A.train.steps} x batch "
      f"{A.train.batch_size}")


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
# schedule and its one-shot sampler of {eq}`ddpm-marginal`:

# %%
print(inspect.getsource(get_named_beta_schedule))
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
# {eq}`ddpm-marginal` at several fractions of the chain, with one noise draw per image shared across columns.
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
# which also allows clipping $\hat x_0$ to the data range. The training loss ({eq}`ddpm-lsimple` is the `"mse"`
# term; the other branches belong to chapter 2):

# %%
print(inspect.getsource(GaussianDiffusion.training_losses))

# %% [markdown]
# ## 5. Ancestral sampling
#
# Sampling runs the learned chain from $x_T \sim \mathcal{N}(0, I)$:
# $x_{t-1} = \mu_\theta(x_t, t) + \sigma_t z$, $z \sim \mathcal{N}(0, I)$, with no noise on the last step
# (Algorithm 2 of {cite}`ho2020ddpm`). With $T = 1000$ that is 1000 network evaluations per image; to keep the
# book's budget the FID below uses a *respaced* chain of `P.eval.sample_steps` steps (a subset of the steps with
# $\bar\alpha$ kept, chapter 2 explains it). One step in the package:

# %%
print(inspect.getsource(GaussianDiffusion.p_sample))

# %% [markdown]
# ## 6. Training a small model
#
# **Does the $\epsilon$-MSE go down, and where in $t$ is it hardest?** The trainer logs the loss per quarter of the
# chain (improved-diffusion's `loss_q0..q3`, $q_0$ the least noisy quarter). The $\epsilon$ error is largest near
# $t = 0$: with almost no noise in $x_t$ the tiny $\epsilon$ is hard to tell from image detail, yet those steps
# matter little for samples, which is the reason {eq}`ddpm-lsimple` is a good weighting.

# %%
images_seen = A.train.steps * A.train.batch_size
with provenance.Stopwatch() as timer:
    trained = train_model(A, seed=SEED, device=device)
train_s, history, ema_model = timer.elapsed, trained.history, trained.ema
steps = [h["step"] for h in history]
print(f"{count_parameters(ema_model) / 1e6:.2f} M parameters, {A.train.steps} steps x {A.train.batch_size} images on "
      f"{len(load_data(A.data))} training images: {train_s:.1f} s ({images_seen / train_s:.0f} img/s)")
plotting.curves(steps, {f"t in quarter {q}": [h.get(f"mse_q{q}", np.nan) for h in history] for q in range(4)},
                xlabel="training step", ylabel="eps-MSE", logy=True,
                title=f"L_simple per quarter of the chain{SMOKE_LABEL}");

# %% [markdown]
# ## 7. Samples
#
# **What does the trained model produce, and how does an image form along the reverse chain?** First a grid of
# samples from the EMA weights, then, for a few samples, $x_t$ and the model's running guess $\hat x_0$ at several
# points of the chain: the coarse layout is fixed early (large $t$), detail arrives last.

# %%
sampler = make_sampler(A.diffusion, ema_model, sample_steps=P.eval.sample_steps, device=device)
grid_images = sampler(P.eval.grid, None, torch.Generator(device).manual_seed(SEED))
plotting.sample_grid(grid_images, nrow=int(np.sqrt(P.eval.grid)),
                     title=f"DDPM samples, {sampler.num_steps} steps{SMOKE_LABEL}");

# %%
rows, labels = reverse_chain_rows(sampler.diffusion, ema_model, 4, 6, torch.Generator(device).manual_seed(SEED + 1),
                                  device=device)
plotting.image_rows(rows, col_labels=labels, title=f"Reverse chain: x_(t-1) and x0_hat after each shown step{SMOKE_LABEL}");

# %% [markdown]
# ## 8. FID
#
# **How far are the samples from CIFAR-10?** FID {cite}`heusel2017fid` between `P.eval.num_samples` samples and the
# Inception statistics of the CIFAR-10 *train* set (all 50,000 images at `book` scale, the papers' convention; a
# small balanced subset at `smoke`). FID is biased upwards at small sample counts, so only numbers with the same
# $N$ and reference are comparable.

# %%
ref = fid_reference(P.eval.fid_reference, P.eval.fid_reference_images)
with provenance.Stopwatch() as timer:
    fid_value = sample_and_score(sampler, P.eval.num_samples, ref, batch_size=P.eval.batch_size, seed=SEED,
                                 device=device)[0]["FID"]
fid_s, ref_desc = timer.elapsed, ref.desc
print(f"FID = {fid_value:.2f} from {P.eval.num_samples} samples ({sampler.num_steps} steps) vs {ref_desc}"
      f"{SMOKE_LABEL}; {fid_s:.1f} s")

# %% [markdown]
# ## 9. Results
#
# The paper's number is from {cite:t}`ho2020ddpm`'s CIFAR-10 model as reported on the released model's card
# (50,000 samples, 1000 steps, 35.7 M parameters, 800 K steps of batch 128). Ours come from a model two orders of
# magnitude cheaper, so the comparison says how far a few minutes of training get, not whether the paper
# reproduces.

# %%
paper = get_preset("ddpm", "paper").arm("ddpm").train
rows = [
    {"": "ours", "scale": P.scale, "params (M)": count_parameters(ema_model) / 1e6,
     "training images (M)": images_seen / 1e6, "sampling steps": sampler.num_steps,
     "FID samples": P.eval.num_samples, "FID": fid_value, "note": SMOKE_LABEL.strip(" ()") or ref_desc},
    {"": "paper (Ho et al. 2020)", "scale": "paper", "params (M)": 35.7,
     "training images (M)": paper.steps * paper.batch_size / 1e6, "sampling steps": 1000, "FID samples": 50000,
     "FID": 3.17, "note": "the paper's, via the google/ddpm-cifar10-32 model card"},
]
display(plotting.metrics_table(rows, formats={"FID": ".2f", "params (M)": ".1f", "training images (M)": ".2f"}))

# %% [markdown]
# *What reproduced and what did not.* The pipeline (forward process, $\mathcal{L}_\text{simple}$, ancestral
# sampling, FID against the train statistics) is the paper's. The FID is not: at `book` scale the model sees about
# 1% of the paper's training images, has a fifth of its parameters and samples with a respaced chain of a tenth of
# its steps (the table lists each), and FID from 5,000 samples is biased upwards relative to 50,000. The paper's Inception Score (9.46) cannot be
# computed here: the offline Inception weights have no classifier layer.
#
# ## Provenance

# %%
results = {"chapter": "ddpm", "scale": P.scale, "fid": fid_value, "fid_samples": P.eval.num_samples,
           "fid_reference": ref_desc, "sampling_steps": sampler.num_steps, "params": count_parameters(ema_model),
           "train_images": images_seen, "final_loss": history[-1].get("loss"), "comparable": P.comparable}
display(Markdown(provenance.provenance_table(finish_chapter(run, "ddpm", results, train_s=round(train_s, 1),
                                                            fid_s=round(fid_s, 1)))))

# %% [markdown]
# The chapter's headline for the [results page](../book/results.md): the FID above beside the paper's, with no
# method-versus-baseline comparison (this chapter builds the pipeline the later ones compare against).

# %%
results["headline"] = summary.headline(
    f"FID ({P.eval.num_samples} samples, {sampler.num_steps} steps, vs CIFAR-10 train)", fid_value,
    claim="— (the pipeline; no comparison in this chapter)", comparable=P.comparable,
    paper_value=3.17, paper_setting="35.7 M params, 800 K steps, 50k samples, 1000 steps; model card")
print("wrote", save_results("ddpm", results))
