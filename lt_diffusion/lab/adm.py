"""Chapter 03 lab (ADM classifier guidance): the guidance scale trades diversity for class fidelity.

Design: the shared class-conditional baseline denoiser; a noisy classifier per seed (2x128 MLP with the same
time embedding, 1500 steps on the seed's long-tailed training set, t ~ U{0..999}; the engine's
``train_noisy_classifier``); sampling with the engine's ancestral sampler and
:func:`lt_diffusion.guidance.classifier_cond_fn` at the scales :data:`SCALES` (Dhariwal & Nichol 2021,
Algorithm 2: DDIM with the gradient in the score, 50 respaced steps), 250 samples per class. Beside it the same sweep guided by the *exact* gradient
of the world's noisy class posterior. Class fidelity is the exact equal-prior Bayes classifier's agreement with
the requested class; diversity is per-class recall (k = 5) against fresh true samples of the class. The verdict
compares scale 2 with scale 0 (fixed before running). The trained classifier's gradient is also compared
with the exact one across t (cosine similarity).
"""
from __future__ import annotations

from typing import Sequence


from ..guidance import classifier_cond_fn
from .common import BASE_RECIPE, Timer, baseline, draw, lab_world, t_grid
from .engine import make_diffusion, train_classifiers
from .evaluate import balanced_labels, group_values, score_samples
from .exact import classifier_gradient_agreement, exact_classifier_cond_fn
from .result import LabResult, claim

SCALES = (0.0, 0.5, 1.0, 2.0)
VERDICT_SCALE = 2.0
QUESTION = "As the classifier-guidance scale grows, how much class fidelity does it buy, and how much diversity does it cost?"


def noisy_classifiers(seeds: Sequence[int]):
    """The chapter's noisy classifiers (one per seed, cached; the benchmark reuses them)."""
    world = lab_world()
    return train_classifiers(world, seeds, make_diffusion(BASE_RECIPE), num_labels=world.num_classes,
                             data=[world.training_set(s) for s in seeds], data_tag="training_set")


def guided_samples(model, classifier, world, seeds, scale: float, exact: bool = False):
    """Balanced samples ``(M, n, d)`` of ``model`` guided by ``classifier`` (or the exact gradient) at ``scale``
    (DDIM with the guidance in the score, Dhariwal & Nichol 2021, Algorithm 2), and their labels."""
    labels = balanced_labels(world)
    cond_fn = None
    if scale > 0:
        cond_fn = (exact_classifier_cond_fn(world, make_diffusion(BASE_RECIPE).alphas_cumprod, scale) if exact
                   else classifier_cond_fn(classifier, scale))
    return draw(model, BASE_RECIPE, len(seeds), labels, cond_fn=cond_fn, seed=seeds[0] + 101), labels


def guided_scores(model, classifier, world, seeds, scale: float, exact: bool = False):
    """:func:`score_samples` of :func:`guided_samples`."""
    xs, labels = guided_samples(model, classifier, world, seeds, scale, exact)
    return score_samples(world, xs, labels, seeds)


def run(seeds: Sequence[int]) -> LabResult:
    timer = Timer()
    world = lab_world()
    seeds = list(seeds)
    base = baseline(seeds)
    clf = noisy_classifiers(seeds)
    ts = t_grid(1000, 10)
    agreement = classifier_gradient_agreement(clf, world, base.diffusion, len(seeds), ts, 500, seed=seeds[0])
    fig = {"scales": list(SCALES), "t": ts, "gradient_cosine": agreement.tolist()}
    arms = {}
    for kind in ("trained classifier", "exact classifier"):
        fid, rec, tail_fid = [], [], []
        for s in SCALES:
            if kind == "exact classifier" and s == 0:
                sc = scores0
            else:
                sc = guided_scores(base.model, clf, world, seeds, s, exact=kind == "exact classifier")
            if s == 0:
                scores0 = sc
            fid.append(group_values(sc["fidelity"], world, "all"))
            rec.append(group_values(sc["recall"], world, "all"))
            tail_fid.append(group_values(sc["fidelity"], world, "tail"))
        fig[kind] = {"fidelity": fid, "recall": rec, "tail_fidelity": tail_fid}
        arms[kind] = (fid, rec)
    wall = timer.elapsed
    i0, i1 = SCALES.index(0.0), SCALES.index(VERDICT_SCALE)
    fid, rec = arms["trained classifier"]
    xfid = arms["exact classifier"][0]
    claims = [
        claim("Classifier guidance raises the fidelity of samples to their class as the scale grows "
              "(Dhariwal & Nichol 2021, Table 4 and Fig. 4).", "exact class fidelity, all classes (higher is better)",
              {"scale 0": fid[i0], f"scale {VERDICT_SCALE:g}": fid[i1]}, f"scale {VERDICT_SCALE:g}", "scale 0",
              False, wall, "guidance raises class fidelity"),
        claim("With the exact gradient of the noisy class posterior in place of a trained classifier, guidance "
              "raises class fidelity at the same scale (Dhariwal & Nichol 2021, Sec. 4).",
              "exact class fidelity, all classes, exact classifier gradient (higher is better)",
              {"scale 0": xfid[i0], f"scale {VERDICT_SCALE:g}": xfid[i1]}, f"scale {VERDICT_SCALE:g}", "scale 0",
              False, wall, "with the exact classifier, guidance raises class fidelity"),
        claim("It pays with diversity: recall falls as the scale grows (Dhariwal & Nichol 2021, Table 4).",
              "recall, all classes (the claim: guidance lowers it)",
              {"scale 0": rec[i0], f"scale {VERDICT_SCALE:g}": rec[i1]}, f"scale {VERDICT_SCALE:g}", "scale 0",
              True, wall, "guidance lowers recall"),
    ]
    design = ("Shared conditional baseline (8-d long-tailed world); noisy 2x128 MLP classifiers, 1500 steps on the "
              "long-tailed training sets; DDIM, 50 respaced steps, classifier scales "
              f"{'/'.join(f'{v:g}' for v in SCALES)} with "
              "the trained and with the exact classifier gradient; 250 samples per class; exact Bayes class "
              "fidelity and per-class recall (k = 5).")
    return LabResult("adm", "Classifier guidance: fidelity against diversity", QUESTION, design, claims, fig, seeds,
                     wall)
