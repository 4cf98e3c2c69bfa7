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
# To rerun this page at the scale of the book on a GPU: `papermill notebooks/04_cfg.ipynb out.ipynb -p SCALE book`.
# For a saved full run, train the arms once with `lt-diffusion train cfg --scale paper --out runs/cfg`, then
# `papermill notebooks/04_cfg.ipynb out.ipynb -p SCALE paper -p CHECKPOINT_DIR runs/cfg` evaluates them without
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
import torch
from IPython.display import display

from lt_diffusion import plotting, provenance, report, toy2d
from lt_diffusion.data import CIFAR10_CLASSES
from lt_diffusion.experiments import (DiffusionSpec, build_diffusion, fid_reference, figures, finish_chapter,
                                      make_sampler, start_chapter, train_or_load)
from lt_diffusion.experiments import guidance_chapters as gc
from lt_diffusion.experiments.summary import headline
from lt_diffusion.guidance import cfg_model_fn
from lt_diffusion.lab import plot_lab, run_lab
from lt_diffusion.lab.plots import lab_table
from lt_diffusion.models import count_parameters
from lt_diffusion.sampling import generate

# %%
P, run, device, SMOKE_LABEL, cost = start_chapter("cfg", SCALE, SEED)
display(report.scale_note(run, chapter="04_cfg"))
ARMS = {a.train.p_uncond: name for name, a in P.arms.items() if a.kind == "denoiser"}   # p_uncond -> arm name
DIFF = P.arm("classifier").diffusion   # every model of the chapter shares this forward process

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
# it. Training needs only the null label: the trainer replaces each label by $\varnothing$ (the last row of the
# UNet's label table) with probability $p_\text{uncond}$. At sampling time the package computes both predictions
# of {eq}`cfg-eps` in **one** forward pass on a doubled batch:

# %%
print(gc.source_without_docstring(cfg_model_fn))

# %% [markdown]
# ## 2. A toy with exact scores
#
# *Question: what does $w$ do to a distribution we know exactly?* Three Gaussian classes in 2-D that overlap. Under
# the forward process each stays Gaussian, so $p_t(x\mid c)$, $p_t(x)$ and the ideal $\epsilon^*(x_t, t, c)$ are in
# closed form (`lt_diffusion.toy2d`). First, the package's CFG wrapper around the exact model agrees with
# {eq}`cfg-eps` written out by hand with the exact $\epsilon^*$:

# %% tags=["nbval-check-output"]
T = P.toy
mix = toy2d.three_class_mixture(radius=T.radius, std=T.std)
toy_spec = DiffusionSpec(steps=T.steps, noise_schedule="cosine")
toy_train_diffusion = build_diffusion(toy_spec)
exact = toy2d.ExactEpsModel(mix, toy_train_diffusion.alphas_cumprod, timestep_scale=1000.0 / T.steps)
for w, diff in gc.cfg_by_hand_check(mix, exact, T.steps, seed=0).items():
    print(f"w={w:g}: package CFG == (1+w) eps*(x, c) - w eps*(x, null): {diff < 1e-10}")

# %% [markdown]
# The tilted densities {eq}`cfg-tilted` at $t=0$, computed on a grid (exact, no sampling): as $w$ grows, the mass of
# each class moves away from the other classes (the posterior $p(c\mid x)$ of the requested class rises) and
# concentrates (the spread falls).

# %% tags=["nbval-check-output"]
toy_rows = gc.toy_tilted_rows(mix)
display(plotting.metrics_table(toy_rows, formats={"w": ".0f", "g = 1+w": ".0f", "E[p(c|x)]": ".3f",
                                                  "spread": ".3f", "mean distance from origin": ".3f"}))

# %% [markdown]
# *Question: do sampled points follow the tilted densities?* We sample with the package's DDIM loop and
# `cfg_model_fn`, once with the exact $\epsilon^*$ and once with a small MLP trained with label dropout, the same
# recipe as the image models. Top: contours of $\tilde p_w(x\mid c)$ for the three classes with samples of the exact
# denoiser; bottom: the trained MLP. As in the paper's toy figure, the classes separate and sharpen as $w$ grows, and
# the samples leave the overlap regions. (At the `smoke` scale the MLP trains for a few dozen steps only, so only
# the exact denoiser is shown.)

# %%
with torch.random.fork_rng(devices=[]):
    torch.manual_seed(SEED)
    net = toy2d.ToyDenoiser(dim=2, num_classes=3, hidden=T.mlp_hidden, depth=T.mlp_depth)
toy_losses = toy2d.train_toy_denoiser(net, mix, toy_train_diffusion, steps=T.mlp_steps, batch_size=T.mlp_batch,
                                      lr=T.mlp_lr, p_uncond=T.p_uncond, seed=SEED)
toy_stats, toy_draws = gc.toy_guided_draws(mix, {"exact eps*": exact, "MLP": net},
                                           build_diffusion(toy_spec, timestep_respacing=f"ddim{T.sample_steps}"),
                                           T.ws, T.samples_per_class, seed=SEED)
shown = ("exact eps*", "MLP") if report.shows_results(SCALE) else ("exact eps*",)
display(plotting.metrics_table([r for r in toy_stats if r["denoiser"] in shown], formats={
    "class_accuracy": ".3f", "mean_p_y": ".3f", "spread": ".3f", "log_p_y": ".2f"}))
figures.toy_guidance_grid(mix, toy_draws, T.ws, shown);

# %% [markdown]
# ## 3. The lab: CFG where the answer is known
#
# *Question: how does the CFG weight $w$ trade class fidelity for diversity, next to classifier guidance on the same
# model, and does a larger label-dropout probability $p_\text{uncond}$ hurt?* The lab uses the book's long-tailed
# 8-dimensional world, whose densities are exact: class fidelity is the exact Bayes classifier's agreement with the
# requested class, diversity is per-class recall, and the sliced Wasserstein distance to the true distribution plays
# FID's role. Three denoisers differ only in $p_\text{uncond}$ (0.1, 0.2, 0.5); beside them, the same sweep with the
# world's exact $\epsilon$ for both branches, and chapter 03's classifier guidance on the same baseline (three seeds):

# %% tags=["scale-independent"]
lab = run_lab("cfg")
plot_lab(lab);

# %% tags=["scale-independent"]
display(lab_tab := lab_table(lab))
print(lab.summary)

# %% [markdown]
# The price in diversity reproduces with every denoiser, and with the exact $\epsilon$ the gain in class fidelity
# reproduces too. With the learned denoisers it does not at the weight the verdict compares: fidelity rises at the
# smallest positive weight of the sweep and then falls, because {eq}`cfg-eps` multiplies the errors of the learned
# conditional and unconditional predictions by $1+w$ and $w$, and at a large weight the amplified error pushes
# samples off their class. Next to classifier guidance on the same baseline, learned CFG also loses recall much
# faster for the fidelity it gains. The paper's finding about the dropout probability does not reproduce on this small world
# either: dropping more labels costs the conditional branch little here, while the unconditional branch it trains
# better is the one that CFG extrapolates away from.
#
# ## 4. CFG on CIFAR-10: training with the null label
#
# *Question: how does the $w$ sweep move FID, precision and recall, and does $p_\text{uncond}$ matter?* One
# class-conditional UNet per $p_\text{uncond}$, same budget, then `eval.num_samples` samples (classes balanced) per
# $w$ with DDIM. FID {cite}`heusel2017fid` against the CIFAR-10 train statistics {cite}`krizhevsky2009cifar`;
# precision and recall (k = 3) {cite}`kynkaanniemi2019precision` against real train features. (The Inception Score
# is unavailable offline: the Inception weights have no classifier layer; chapter 03.)

# %%
REF = fid_reference(P.eval.fid_reference, P.eval.fid_reference_images, pr_images=P.eval.pr_reference_images)
models, last_loss = {}, {}
with provenance.Stopwatch() as timer:
    for p, name in ARMS.items():
        trained = train_or_load(P, name, checkpoint_dir=CHECKPOINT_DIR, seed=SEED, device=device)
        models[p], last_loss[name] = trained.ema, trained.history[-1]["loss"]
report.pipeline_check(f"{len(models)} conditional UNets, {count_parameters(trained.ema) / 1e6:.2f} M parameters each",
                      timer, last_loss=last_loss);

# %% [markdown]
# *Question: does the guided $\tilde\epsilon$ really cost one forward pass per step?* A forward hook on the trained
# UNet records the batch of every call while the package's DDIM loop draws 4 CFG samples; then one call of the
# wrapper is compared with {eq}`cfg-eps` from two separate forward passes.

# %%
base_p = next(iter(models))
base = models[base_p]
chk = gc.cfg_forward_check(DIFF, base, P.grid_w, P.eval.sample_steps, seed=SEED, device=device)
print(f"{chk['calls']} UNet calls for {P.eval.sample_steps} DDIM steps, batch sizes {chk['batches']} (2 x 4: "
      f"conditional and null halves in one batch); one batched forward == two forwards: {chk['max_diff'] < 1e-4}")

# %% [markdown]
# ## 5. The $w$ sweep, and classifier guidance on the same model
#
# *Question: at the same base model and budget, which guidance gives the better fidelity/diversity curve?* Beside
# the CFG sweeps we train ADM's noisy classifier (chapter 03) and guide the conditional model of the first
# $p_\text{uncond}$ with it (the label goes to the model and to the classifier). The strengths $w$ and $s$ are not on
# a common scale, so the fair comparison is the right panel of the figure: which curve reaches higher precision at
# the same recall.

# %%
with provenance.Stopwatch() as timer:
    classifier = train_or_load(P, "classifier", checkpoint_dir=CHECKPOINT_DIR, seed=SEED, device=device).model
    cfg_rows = gc.cfg_sweep(P, models, REF, seed=SEED)
    cfg_w0 = next(r for r in cfg_rows if r["p_uncond"] == base_p and r["w"] == 0)
    cg_rows = gc.cfg_classifier_sweep(P, base, classifier, REF, cfg_w0, seed=SEED)
series = {f"CFG p_uncond={p} (x: w)": [r for r in cfg_rows if r["p_uncond"] == p] for p in models}
if report.shows_results(SCALE):
    display(plotting.metrics_table(cfg_rows + cg_rows, columns=["method", "w", "g = 1+w", "s", "FID", "precision",
                                                                "recall"],
                                   formats={"FID": ".2f", "precision": ".3f", "recall": ".3f"}))
    figures.sweep_figure({**series, "classifier guidance (x: s)": cg_rows},
                         {**{k: "w" for k in series}, "classifier guidance (x: s)": "s"}, "guidance strength");
else:
    report.pipeline_check(f"classifier + {len(cfg_rows) + len(cg_rows)} sample sets", timer,
                          cfg_fid=[r["FID"] for r in cfg_rows], classifier_guidance_fid=[r["FID"] for r in cg_rows])

# %% [markdown]
# *Question: what do guided samples of each class look like?* One row per class at $w=$ `grid_w`
# (the model of the first $p_\text{uncond}$).

# %%
k = P.samples_per_class_grid
imgs = generate(make_sampler(DIFF, base, sample_steps=P.eval.sample_steps, method="ddim", guidance_scale=P.grid_w),
                10 * k, min(P.eval.batch_size, 10 * k), labels=torch.arange(10).repeat_interleave(k), seed=SEED,
                progress=False)
if report.shows_results(SCALE):
    plotting.image_rows({CIFAR10_CLASSES[c]: imgs[c * k:(c + 1) * k] for c in range(10)},
                        title=f"CFG w={P.grid_w:g} (g={1 + P.grid_w:g}), p_uncond={base_p}");
else:
    report.pipeline_check("class grid", None, images=imgs)

# %% [markdown]
# *Question: what does each guidance cost per sample?* CFG runs the UNet on a doubled batch; classifier guidance
# adds a forward and a backward pass of the classifier. Measured on one batch of `cost_batch` images with
# `cost_steps` DDIM steps after a warm-up call (the cost grows linearly with the number of steps):

# %%
with provenance.Stopwatch() as timer:
    cost_rows = gc.guidance_cost_rows(P, base, classifier, device=device)
if report.shows_results(SCALE):
    display(plotting.metrics_table(cost_rows, formats={"s / image": ".2e", "relative": ".2f"}))
else:
    report.pipeline_check("cost per sample", timer, seconds_per_image=[r["s / image"] for r in cost_rows])

# %% [markdown]
# ## 6. What the paper reports, and our run beside it
#
# The paper's experiments are class-conditional ImageNet; it reports no CIFAR-10 number. Its numbers are what the
# paper reports, not our results (FID and Inception Score on 50,000 samples; $w = 0$ is the unguided conditional
# model):
#
# | {cite}`ho2022classifier` | setting | $w$ | FID | IS |
# |---|---|---:|---:|---:|
# | Table 1, ImageNet 64×64, $p_\text{uncond} = 0.1$, 400K steps | unguided | 0 | 1.80 | 53.7 |
# | Table 1 | best FID | 0.1 | 1.55 | 66.1 |
# | Table 1 | | 0.3 | 3.03 | 92.8 |
# | Table 1 | | 0.5 | 5.74 | 119.3 |
# | Table 1 | | 1.0 | 12.6 | 170.1 |
# | Table 1 | | 2.0 | 21.03 | 225.5 |
# | Table 1 | | 4.0 | 26.22 | 260.2 |
# | Table 2, ImageNet 128×128, 256 steps | unguided | 0 | 7.27 | |
# | Table 2 | best FID | 0.3 | 2.43 | 158.5 |
#
# In Table 1, $p_\text{uncond} = 0.5$ is worse than 0.1 and 0.2 along the whole FID/IS frontier, and 0.1 and 0.2 are
# about equal. The shape to compare ours with: FID improves for a small $w$ and worsens for a large one, while the
# fidelity measure (IS there, precision here) keeps rising. Our run at the `book` scale (one seed):

# %%
best, best_cg = min(cfg_rows, key=lambda r: r["FID"]), min(cg_rows, key=lambda r: r["FID"])
ours = [{"setting": f"ours ({P.scale}), conditional, w=0, p_uncond={base_p}", **cfg_w0},
        {"setting": f"ours ({P.scale}), best CFG: p_uncond={best['p_uncond']}, w={best['w']:g}", **best},
        {"setting": f"ours ({P.scale}), best classifier guidance s={best_cg['s']:g}", **best_cg}]
if report.shows_results(SCALE):
    display(plotting.metrics_table(ours, columns=["setting", "FID", "precision", "recall"],
                                   formats={"FID": ".2f", "precision": ".3f", "recall": ".3f"}))

# %% [markdown]
# ## What to take away
#
# * CFG is classifier guidance with an implicit classifier: the difference of the conditional and the unconditional
#   predictions of one network, trained with a null label; {eq}`cfg-eps` is one line of code.
# * The weight $w$ tilts every step towards $p(x_t\mid c)\,p(c\mid x_t)^w$: fidelity up, diversity down. With exact
#   predictions the trade-off is clean; with learned ones a large $w$ also amplifies their error.
# * Its cost is one UNet forward on a doubled batch per step, and no second network to train.
# * The two conventions, $w$ and $g = 1 + w$, describe the same sampler; check which one a codebase uses.
#
# ## Exercises
#
# 1. In the toy, change the weights of `toy2d.three_class_mixture(..., weights=(8, 1, 1))` to make one class
#    rare, and recompute `gc.toy_tilted_rows(mix, y=2)`. Does the same $w$ concentrate the rare class as much as a
#    frequent one?
# 2. Read the lab's `lab.figure["cfg"]` (fidelity, recall and sliced W2 per $p_\text{uncond}$, weight and seed) and
#    find the weight with the best sliced W2 for each $p_\text{uncond}$. Is it small, as in the paper's Table 1?
# 3. Run the lab with other seeds, `run_lab("cfg", seeds=[3, 4, 5])` (a few minutes on a CPU). Which verdicts are
#    stable?
#
# ## Provenance

# %%
arm = [r for r in cfg_rows if r["p_uncond"] == base_p]
top = min((r for r in arm if r["w"] > 0), key=lambda r: r["FID"])
results = {"scale": P.scale, "comparable": P.comparable, "toy_exact_tilted": toy_rows, "toy_sampled": toy_stats,
           "lab": lab_tab.rows, "cfg_sweep": cfg_rows, "classifier_guidance_sweep": cg_rows,
           "cost_per_image": cost_rows, "cost_steps": P.cost_steps, "fid_samples": P.eval.num_samples,
           "sample_steps": P.eval.sample_steps, "checkpoint_dir_used": CHECKPOINT_DIR is not None,
           "convention": "w (Ho & Salimans): eps = (1+w) eps_c - w eps_u; g = 1 + w",
           "headline": headline(f"best FID over w > 0 (p_uncond={base_p:g}, w={top['w']:g})", top["FID"],
                                claim="CFG at moderate w lowers FID below the unguided model", method=[top["FID"]],
                                baseline=[cfg_w0["FID"]], method_name=f"w={top['w']:g}", baseline_name="w=0",
                                comparable=P.comparable)}
display(provenance.provenance_table(finish_chapter(run, "cfg", results, projected_h100_s=round(cost["total_s"]))))
