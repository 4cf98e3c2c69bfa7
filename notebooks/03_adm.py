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
# To rerun this page at the scale of the book on a GPU: `papermill notebooks/03_adm.ipynb out.ipynb -p SCALE book`.
# For a saved full run, train the arms once with `lt-diffusion train adm --scale paper --out runs/adm`, then
# `papermill notebooks/03_adm.ipynb out.ipynb -p SCALE paper -p CHECKPOINT_DIR runs/adm` evaluates them without
# training.

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

import torch
from IPython.display import display

from lt_diffusion import metrics, plotting, provenance, report
from lt_diffusion.classifier_train import accuracy_vs_t, default_eval_timesteps
from lt_diffusion.data import CIFAR10_CLASSES
from lt_diffusion.diffusion import GaussianDiffusion
from lt_diffusion.experiments import (DataSpec, build_diffusion, fid_reference, figures, finish_chapter, load_data,
                                      start_chapter, train_or_load)
from lt_diffusion.experiments import guidance_chapters as gc
from lt_diffusion.experiments.summary import headline
from lt_diffusion.lab import plot_lab, run_lab
from lt_diffusion.lab.plots import lab_table
from lt_diffusion.models import ABLATION_DESCRIPTIONS, UNetModel, count_parameters
from lt_diffusion.models.nn import norm_act
from lt_diffusion.presets import get_preset

# %%
P, run, device, SMOKE_LABEL, cost = start_chapter("adm", SCALE, SEED)
display(report.scale_note(run, chapter="03_adm"))
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
# field of `UNetConfig`. The normalisation of every residual block carries {eq}`adm-adagn`:

# %%
print(inspect.getsource(norm_act))

# %% [markdown]
# Parameter counts of the variants at the `book` scale, each built from the baseline by exactly one change (`adm`
# combines ADM's choices). Several changes cost no parameters at all (heads, rescaling); attention at more
# resolutions and BigGAN blocks add a few; AdaGN's doubled embedding projection is what separates `baseline` from
# `add_emb`. The counts do not depend on the scale of the run.

# %% tags=["nbval-check-output"]
book_cfgs = {k.removeprefix("ablation_"): a.model for k, a in get_preset("adm", "book").arms.items()
             if k.startswith("ablation_")}
display(plotting.metrics_table([{"variant": k, "change": ABLATION_DESCRIPTIONS[k],
                                 "parameters (M)": count_parameters(UNetModel(c)) / 1e6}
                                for k, c in book_cfgs.items()], formats={"parameters (M)": ".3f"}))

# %% [markdown]
# ## 2. Classifier guidance, derived
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
# That is the ancestral form, `condition_mean` in the package (one line: `mean + variance * gradient`).
#
# DDIM has no per-step Gaussian to tilt, so ADM uses the score view instead. The noise prediction is a scaled score,
# $\epsilon_\theta(x_t) = -\sqrt{1-\bar\alpha_t}\,\nabla_{x_t}\log p_\theta(x_t)$ {cite}`song2021sde`, and the score of the
# joint $p(x_t)\,p(y\mid x_t)^s$ is the sum of the two scores, so
#
# $$
# \hat\epsilon(x_t) = \epsilon_\theta(x_t) - s\,\sqrt{1-\bar\alpha_t}\;\nabla_{x_t}\log p_\phi(y \mid x_t),
# $$ (adm-ddim)
#
# and the usual DDIM update {cite}`song2021ddim` runs with $\hat\epsilon$. Both forms read the scaled gradient
# $s\,g$ from a `cond_fn` that `classifier_cond_fn` builds around the classifier (autograd of
# $\log\operatorname{softmax}$ at the requested label). The DDIM form in the package:

# %%
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
# only where a step is large. The check below takes both shifts from the package's `condition_mean` and
# `condition_score` on the respaced diffusion the samplers use, for a constant gradient $s\,g = 1$ (the shift
# depends on neither the model nor the gradient's value), and compares their ratio with $1/\sqrt{\alpha_t}$:

# %%
forms = gc.guidance_form_shifts(DIFF, P.eval.sample_steps, seed=SEED)
print(f"shift ratio == 1/sqrt(alpha_t) at every one of {len(forms['t'])} respaced steps: "
      f"{torch.allclose(forms['ratio'], forms['closed'], rtol=1e-6)}; median ratio {forms['ratio'].median():.4f}, "
      f"largest {forms['ratio'].max():.2f} (the noisiest step)")

# %% [markdown]
# ## 3. The lab: classifier guidance where the answer is known
#
# *Question: as the guidance scale grows, how much class fidelity does it buy, and how much diversity does it
# cost?* The lab answers it on the book's long-tailed 8-dimensional world, whose class densities are known exactly:
# the exact Bayes classifier tells whether a sample belongs to the class it was asked for (class fidelity), and
# fresh samples of each class measure how much of it the samples cover (recall). A small conditional denoiser is
# guided by a noisy classifier trained like ADM's, and, beside it, by the *exact* gradient of the noisy class
# posterior, over three seeds:

# %% tags=["scale-independent"]
lab = run_lab("adm")
plot_lab(lab);

# %% tags=["scale-independent"]
display(lab_tab := lab_table(lab))
print(lab.summary)

# %% [markdown]
# Left, the fidelity–recall curve over the scale; right, how well the trained classifier's gradient points where
# the exact one does, across the noise levels. The price in recall reproduces clearly, with both gradients. The
# gain in fidelity reproduces with the exact gradient; with the trained classifier fidelity rises at moderate scales
# and falls back at the largest one, where the verdict compares. The right panel says why: at the smallest noise
# levels the trained classifier's gradient is nearly orthogonal to the true one, so a large scale amplifies noise
# in the last steps of sampling. ADM's classifiers are far better than this small MLP, but the lesson transfers: the
# guide is only as good as its gradient, and a scale past the point where that gradient is reliable stops paying.
#
# ## 4. CIFAR-10: the ablation at equal steps and at equal wall time
#
# *Question: at a fixed, small budget, which change helps?* ADM compared variants at equal training
# iterations, and also noted that depth costs time. We train every variant once on unconditional CIFAR-10
# {cite}`krizhevsky2009cifar` and snapshot its EMA weights twice: when it reaches `ablation_steps` steps
# (equal steps) and when it has trained for `ablation_seconds` seconds (equal wall time). FID {cite}`heusel2017fid`
# is computed on `ablation_eval.num_samples` DDIM samples against the CIFAR-10 train statistics.
# The `book` run trains all eight variants of the table above (`smoke` only two). Budgets of seconds favour small,
# cheap models; the ranking at ADM's budgets (hundreds of thousands of steps on ImageNet) can differ.

# %%
REF = fid_reference(P.eval.fid_reference, P.eval.fid_reference_images, pr_images=P.eval.pr_reference_images)
with provenance.Stopwatch() as timer:
    ablation_rows = gc.adm_ablation(P, REF, seed=SEED, device=device, checkpoint_dir=CHECKPOINT_DIR)
if report.shows_results(SCALE):
    print(f"FID on {P.ablation_eval.num_samples} samples, {P.ablation_eval.sample_steps} DDIM steps, one seed")
    display(plotting.metrics_table(ablation_rows, formats={"params (M)": ".2f", "FID @ equal steps": ".1f",
                                                           "FID @ equal time": ".1f", "s @ steps": ".1f",
                                                           "s @ time": ".1f"}))
else:
    report.pipeline_check(f"ablation, {len(ablation_rows)} variants", timer,
                          fid={r["variant"]: [r["FID @ equal steps"], r["FID @ equal time"]] for r in ablation_rows})

# %% [markdown]
# The table gives FID at the equal-steps mark and at the equal-time mark, the step each variant had reached by the
# time mark, and how long it needed for the step mark. A variant that is slower per step (attention at 32×32, more
# width) falls behind at equal time. Each variant is trained once, so only large differences mean anything; the
# equal-time column is the fairer one for a reader with a fixed GPU budget.
#
# ## 5. The noisy classifier
#
# *Question: how much does a classifier still know about the class at each noise level?* The guide must work on
# $x_t$ for every $t$, so it is trained on forward-process samples: $t\sim\mathcal U\{0..T-1\}$,
# $x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\epsilon$, cross-entropy on $y$. The classifier is ADM's
# `EncoderUNetModel`, the UNet's encoder with attention pooling, trained by the same `Trainer` as every model of the
# book with this objective in place of the diffusion's loss (chapter 07 reuses it with minority levels).

# %%
with provenance.Stopwatch() as clf_timer:
    classifier = train_or_load(P, "classifier", checkpoint_dir=CHECKPOINT_DIR, seed=SEED, device=device).model
test = load_data(DataSpec(split="test", num_images=P.classifier_eval_images))
acc = accuracy_vs_t(classifier, build_diffusion(DIFF), test.images, test.labels, batch_size=P.eval.batch_size,
                    timesteps=default_eval_timesteps(DIFF.steps, P.classifier_eval_timesteps))
if report.shows_results(SCALE):
    plotting.curves(acc["t"], {"test accuracy": acc["accuracy"], "chance": [0.1] * len(acc["t"])}, markers=True,
                    xlabel="t (noise level)", ylabel="accuracy", title=f"noisy classifier on {len(test)} test images");
else:
    report.pipeline_check("noisy classifier", clf_timer, accuracy_vs_t=acc["accuracy"])

# %% [markdown]
# Accuracy should be highest on nearly clean images and fall to chance (0.1) as $\bar\alpha_t \to 0$: at high noise
# the classifier's gradient carries little class information, so guidance acts mostly in the middle and late part
# of the reverse process.
#
# ## 6. One model, conditional and unconditional
#
# ADM guides both an unconditional and a class-conditional model. To share one training budget we train a single
# class-conditional UNet whose label is replaced by the null label with probability `p_uncond` (the recipe of
# chapter 04); with $y = \varnothing$ it *is* an unconditional model. ADM trained two separate networks; ours
# shares the weights, so its unconditional half saw only `p_uncond` of the updates.

# %%
with provenance.Stopwatch() as timer:
    trained = train_or_load(P, "guided", checkpoint_dir=CHECKPOINT_DIR, seed=SEED, device=device)
cond_model = trained.ema
report.pipeline_check(f"conditional UNet, {count_parameters(cond_model) / 1e6:.2f} M parameters", timer,
                      last_loss=trained.history[-1]["loss"]);

# %% [markdown]
# ## 7. Fidelity against diversity as the scale grows
#
# *Question: how do FID, precision and recall move with the classifier scale $s$?* For each $s$ we draw
# `eval.num_samples` images, 10 classes in equal numbers, with the DDIM form {eq}`adm-ddim`, from the unconditional
# model (the label only goes to the classifier) and from the conditional model (the label goes to both). At the
# scales `ancestral_scales` the unconditional model is also sampled with the ancestral form {eq}`adm-ancestral`
# (`ancestral_steps` respaced steps). FID is against the CIFAR-10 train statistics; precision and recall (k = 3)
# against real train features. The Inception Score, ADM's other fidelity number, needs Inception's classifier
# layer, which the offline weights do not have, so precision serves as the fidelity measure:

# %%
try:
    metrics.inception_score_from_images(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
except metrics.InceptionScoreUnavailable as err:
    print("Inception Score unavailable:", str(err).split(" (")[0] + ".")

# %%
with provenance.Stopwatch() as timer:
    sweep_rows = gc.classifier_guidance_sweep(P, cond_model, classifier, REF, seed=SEED)
by_arm = {}
for r in sweep_rows:
    by_arm.setdefault(f"{r['model']}, {r['form']}", []).append(r)
if report.shows_results(SCALE):
    display(plotting.metrics_table(sweep_rows, formats={"FID": ".2f", "precision": ".3f", "recall": ".3f"}))
    figures.sweep_figure(by_arm, "scale s", "classifier scale s");
else:
    report.pipeline_check(f"guidance sweep, {len(sweep_rows)} sample sets", timer,
                          **{k: [r["FID"] for r in v] for k, v in by_arm.items()})

# %% [markdown]
# ## 8. What guidance does to one class
#
# *Question: what does a larger scale look like?* Samples of one class (same seeds in every row) from the
# unconditional model under classifier guidance with the DDIM form, and in the last row the ancestral form
# {eq}`adm-ancestral` at the largest scale.

# %%
grid_rows = gc.guidance_grids(P, cond_model, classifier, seed=SEED)
if report.shows_results(SCALE):
    plotting.image_rows(grid_rows, title=f"class '{CIFAR10_CLASSES[P.grid_class]}', unconditional model + guidance");
else:
    report.pipeline_check("class grid", None, **grid_rows)

# %% [markdown]
# ## 9. What the paper reports, and our run beside it
#
# ADM has no CIFAR-10 experiment. Its numbers are ImageNet, with models trained for days on many GPUs; they are
# what the paper reports, not our results, and our runs can only be compared in direction.
#
# | experiment (ImageNet, {cite}`dhariwal2021diffusion`) | setting | FID | precision | recall |
# |---|---|---:|---:|---:|
# | Table 1, 128×128, 700K / 1200K iterations | baseline UNet | 15.33 / 13.21 | | |
# | Table 1 | depth 4 at 128 channels | −0.21 / −0.48 | | |
# | Table 1 | 4 attention heads | −0.54 / −0.82 | | |
# | Table 1 | attention at 32, 16, 8 | −0.72 / −0.66 | | |
# | Table 1 | BigGAN up/down-sampling | −1.20 / −1.21 | | |
# | Table 1 | residuals rescaled by $1/\sqrt2$ | +0.16 / +0.25 | | |
# | Table 1 | all helpful changes together | −3.14 / −3.00 | | |
# | Table 3, 128×128 | AdaGN vs addition + GroupNorm | 13.06 vs 15.08 | | |
# | Table 4, 256×256 | unconditional | 26.21 | 0.61 | 0.63 |
# | Table 4 | unconditional, classifier scale 1 | 33.03 | 0.56 | 0.65 |
# | Table 4 | unconditional, classifier scale 10 | 12.00 | 0.76 | 0.44 |
# | Table 4 | conditional | 10.94 | 0.69 | 0.63 |
# | Table 4 | conditional, classifier scale 1 | 4.59 | 0.82 | 0.52 |
# | Table 4 | conditional, classifier scale 10 | 9.11 | 0.88 | 0.32 |
#
# The pattern to compare ours with: precision rises and recall falls as the scale grows, and guidance lowers the
# FID of an unconditional model only at a large scale. Our run at the `book` scale, beside it (one seed):

# %%
by_kind = {k: [r for r in sweep_rows if r["model"] == k and r["form"].startswith("ddim")]
           for k in ("unconditional", "conditional")}
ours = [{"setting": f"ours ({P.scale}), {k}, s={r['scale s']:g}", **{m: r[m] for m in ("FID", "precision", "recall")}}
        for k, rows in by_kind.items() for r in (rows[0], min(rows, key=lambda r: r["FID"]), rows[-1])]
if report.shows_results(SCALE):
    display(plotting.metrics_table(ours, formats={"FID": ".2f", "precision": ".3f", "recall": ".3f"}))

# %% [markdown]
# What can reproduce at this budget is the **direction** of the sweep: precision rising and recall falling as $s$
# grows, and a best FID at a moderate scale. The two forms of guidance should tell the same story at the same $s$
# ({eq}`adm-forms-agree`); their FIDs also differ through the sampler itself (stochastic ancestral steps against
# deterministic DDIM). The absolute FIDs cannot approach the paper's: minutes of training, a few thousand samples,
# tens of sampling steps, and CIFAR-10 instead of ImageNet.
#
# ## What to take away
#
# * ADM's architecture changes are small fields of one UNet config; AdaGN ({eq}`adm-adagn`) is a scale and shift of
#   the normalised features, and most changes add few or no parameters.
# * Classifier guidance tilts every reverse step by the classifier's gradient: the mean moves by $s\,\Sigma g$
#   (ancestral) or the noise prediction by $-s\sqrt{1-\bar\alpha_t}\,g$ (DDIM); the two agree to first order.
# * The scale buys class fidelity and pays with diversity; in the lab the price in recall is certain, while the
#   gain in fidelity depends on how good the classifier's gradient is at low noise.
# * A guide must be trained on noisy inputs, and it knows little about the class at high noise.
#
# ## Exercises
#
# 1. The lab keeps its curves in `lab.figure`: `lab.figure["trained classifier"]` holds the class fidelity per scale
#    and seed for all classes (`fidelity`) and for the tail classes (`tail_fidelity`). At which scale does each peak?
#    Does guidance help the rare classes more than the frequent ones?
# 2. Run the lab with other seeds, `run_lab("adm", seeds=[3, 4, 5])`. Which verdicts are stable?
# 3. With `gc.guidance_form_shifts(DIFF, n)` for `n` in 5, 25, 100, 1000 respaced steps, find how large the largest
#    ratio between the two forms grows as the steps get fewer, and explain it with {eq}`adm-forms-agree`.
#
# ## Provenance

# %%
cond_ddim = by_kind["conditional"]
top, unguided = max(cond_ddim, key=lambda r: r["scale s"]), min(cond_ddim, key=lambda r: r["scale s"])
results = {"scale": P.scale, "comparable": P.comparable, "ablation": ablation_rows,
           "ablation_fid_samples": P.ablation_eval.num_samples, "classifier_accuracy_vs_t": acc,
           "classifier_train": {"steps": P.arm("classifier").train.steps, "wall_s": clf_timer.elapsed},
           "guidance_sweep": sweep_rows, "lab": lab_tab.rows, "fid_samples": P.eval.num_samples,
           "guidance_forms_shift_ratio": {"t": forms["t"], "ratio": forms["ratio"].tolist()},
           "sample_steps": P.eval.sample_steps, "checkpoint_dir_used": CHECKPOINT_DIR is not None,
           "fid_reference": f"cifar10-{P.eval.fid_reference}-{P.eval.fid_reference_images or 'full'}",
           "headline": headline(
               f"precision, conditional model, DDIM, s={top['scale s']:g}", top["precision"],
               claim="classifier guidance raises precision (fidelity)", lower_is_better=False,
               method=[top["precision"]], baseline=[unguided["precision"]], method_name=f"s={top['scale s']:g}",
               baseline_name=f"s={unguided['scale s']:g}", comparable=P.comparable)}
display(provenance.provenance_table(finish_chapter(run, "adm", results, projected_h100_s=round(cost["total_s"]))))
