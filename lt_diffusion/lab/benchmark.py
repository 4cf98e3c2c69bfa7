"""The long-tail benchmark: every method of the book on the same long-tailed lab world, head beside tail.

Each row is one method at one setting fixed in advance (the paper's default where it has one), on the chapter labs'
networks (read from the cache when the chapters ran first):

* conditional generators, sampled with DDIM over 50 steps, 250 samples per class: the baseline; ADM classifier
  guidance at scale 1 (the guided conditional rows of Dhariwal & Nichol's Table 4); CFG at w = 0.3 (Ho & Salimans'
  best FID on ImageNet 128); P2 with gamma = 1; CBDM (tau = 1, uniform label set); CBDM + P2. Figures: exact
  class fidelity and recall (k = 5) averaged over the head classes (0-2) and the tail classes (7-9);
* unconditional generators, 2,500 samples each, every sample given to the class of its exact posterior: the
  unconditional baseline and minority guidance (scale 2, toward the top of 10 levels). Figures: recall of the
  head and tail classes by those samples, and the share of samples in each group;
* downstream classifiers (chapter 08): trained on the long-tailed set as it is, and with generated points up to
  500 per class. Figures: balanced accuracy over the head and the tail classes.

Every figure is ``{"mean", "spread" (max - min over seeds), "seeds"}``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

import numpy as np
import torch

from ..guidance import cfg_model_fn, classifier_cond_fn
from .common import BASE_RECIPE, UNCOND_RECIPE, DEFAULT_SEEDS, Timer, baseline, cpu_seconds, draw, lab_world, single_thread
from .evaluate import balanced_labels, group_values, reference_set, score_samples

__all__ = ["run_benchmark", "benchmark_table", "plot_benchmark", "CLASSIFIER_SCALE", "CFG_W", "MINORITY_SCALE"]

CLASSIFIER_SCALE = 1.0
CFG_W = 0.3
MINORITY_SCALE = 2.0


def _fig(values: Sequence[float]) -> Dict[str, Any]:
    v = [float(x) for x in values]
    return {"mean": float(np.mean(v)), "spread": float(max(v) - min(v)), "seeds": v}


def _conditional_row(method: str, chapter: str, setting: str, model, recipe, seeds, cond_fn=None) -> Dict[str, Any]:
    world = lab_world()
    labels = balanced_labels(world)
    xs = draw(model, recipe, len(seeds), labels, cond_fn=cond_fn, seed=seeds[0] + 606)
    sc = score_samples(world, xs, labels, seeds)
    row = {"method": method, "chapter": chapter, "setting": setting, "kind": "generator (class-conditional)"}
    for key in ("fidelity", "recall"):
        for g in ("head", "tail"):
            row[f"{key}_{g}"] = _fig(group_values(sc[key], world, g))
    row["sliced_w2"] = _fig(sc["sw"])
    return row


def _unconditional_row(method: str, chapter: str, setting: str, model, seeds, cond_fn=None, n: int = 2500):
    from ..metrics.prdc import prdc

    world = lab_world()
    xs = draw(model, UNCOND_RECIPE, len(seeds), n=n, cond_fn=cond_fn, seed=seeds[0] + 707)
    row = {"method": method, "chapter": chapter, "setting": setting, "kind": "generator (unconditional)"}
    rec = {"head": [], "tail": []}
    share = {"head": [], "tail": []}
    for m, s in enumerate(seeds):
        ref_x, ref_y = reference_set(world, s)
        post = world.mixture.class_posterior(xs[m].double()).argmax(1)
        for g in ("head", "tail"):
            per_class = []
            for c in world.groups[g]:
                gen = xs[m][post == c]
                # fewer than k + 1 samples of a class cover none of its true points
                per_class.append(prdc(ref_x[ref_y == c].double(), gen.double(), 5)["recall"]
                                 if gen.shape[0] > 5 else 0.0)
            rec[g].append(float(np.mean(per_class)))
            share[g].append(float(torch.isin(post, torch.tensor(world.groups[g])).double().mean()))
    for g in ("head", "tail"):
        row[f"recall_{g}"] = _fig(rec[g])
        row[f"share_{g}"] = _fig(share[g])
    return row


def run_benchmark(seeds: Sequence[int] = DEFAULT_SEEDS) -> Dict[str, Any]:
    """Run the benchmark (training whatever the chapter labs have not left in the cache). Returns the JSON
    object of ``results/lab/longtail_benchmark.json``: ``{"rows": [...], "seeds", "wall_s", "provenance"}``."""
    from .adm import noisy_classifiers
    from .cbdm import ARMS as CBDM_ARMS
    from .common import lab_provenance
    from .engine import train_arms
    from .minority import LEVELS, minority_classifiers
    from .registry import run_lab

    seeds = [int(s) for s in seeds]
    with single_thread():
        timer = Timer()
        cpu = cpu_seconds()
        world = lab_world()
        base = baseline(seeds)
        rows: List[Dict[str, Any]] = [
            _conditional_row("baseline", "ddpm", "conditional, no guidance", base.model, BASE_RECIPE, seeds),
            _conditional_row("classifier guidance", "adm", f"scale {CLASSIFIER_SCALE:g}", base.model, BASE_RECIPE,
                             seeds, classifier_cond_fn(noisy_classifiers(seeds), CLASSIFIER_SCALE)),
            _conditional_row("CFG", "cfg", f"w = {CFG_W:g}, p_uncond = 0.1",
                             cfg_model_fn(base.model, CFG_W, null_label=world.num_classes), BASE_RECIPE, seeds),
        ]
        arms = (("P2", "p2", "gamma = 1, k = 1"), ("CBDM", "cbdm", "tau = 1, y' uniform"),
                ("CBDM + P2", "cbdm", "tau = 1, gamma = 1"))
        trained = train_arms([CBDM_ARMS[name] for name, _, _ in arms], world, seeds)
        for (name, chapter, setting), te in zip(arms, trained):
            rows.append(_conditional_row(name, chapter, setting, te.model, CBDM_ARMS[name], seeds))
        te_u, level_clf, _, _ = minority_classifiers(seeds)
        rows.append(_unconditional_row("unconditional baseline", "minority_guidance", "no guidance", te_u.model,
                                       seeds))
        rows.append(_unconditional_row("minority guidance", "minority_guidance",
                                       f"scale {MINORITY_SCALE:g}, top of {LEVELS} levels", te_u.model, seeds,
                                       classifier_cond_fn(level_clf, MINORITY_SCALE, labels=LEVELS - 1)))
        inv = run_lab("diffusion_inversion", seeds).figure["longtail"]
        for name, key in (("classifier, long-tailed data", "as is"),
                          ("classifier, + inversion-generated tail data", "+ generated")):
            rows.append({"method": name, "chapter": "diffusion_inversion", "setting": "up to 500 points per class"
                         if key != "as is" else "12,406 real points", "kind": "downstream classifier",
                         "balanced_accuracy_head": _fig(inv[key]["head"]),
                         "balanced_accuracy_tail": _fig(inv[key]["tail"])})
        wall = timer.elapsed
        prov = lab_provenance(seeds, wall, {"lab": "longtail_benchmark",
                                            "cpu_s": round(cpu_seconds() - cpu, 1)})
    return {"title": "The long-tail benchmark on the lab world", "seeds": seeds, "rows": rows,
            "wall_s": round(wall, 1), "provenance": prov}


_COLUMNS = [("fidelity_head", "fidelity, head"), ("fidelity_tail", "fidelity, tail"),
            ("recall_head", "recall, head"), ("recall_tail", "recall, tail"),
            ("share_tail", "share of samples in the tail"),
            ("balanced_accuracy_head", "balanced accuracy, head"),
            ("balanced_accuracy_tail", "balanced accuracy, tail")]


def benchmark_table(bench: Dict[str, Any]):
    """The benchmark as a :func:`lt_diffusion.plotting.metrics_table`: ``mean (spread)`` per figure."""
    from ..plotting import metrics_table

    rows = []
    for r in bench["rows"]:
        out = {"method": r["method"], "setting": r["setting"]}
        for key, label in _COLUMNS:
            if key in r:
                out[label] = f"{r[key]['mean']:.3f} ({r[key]['spread']:.3f})"
        rows.append(out)
    return metrics_table(rows, ["method", "setting"] + [label for _, label in _COLUMNS])


def plot_benchmark(bench: Dict[str, Any]):
    """Head beside tail for every method: recall and exact class fidelity of the generators, balanced accuracy of
    the classifiers (bars: mean of seeds)."""
    import matplotlib.pyplot as plt

    from .. import plotting

    gens = [r for r in bench["rows"] if "recall_tail" in r]
    cond = [r for r in bench["rows"] if "fidelity_tail" in r]
    clfs = [r for r in bench["rows"] if "balanced_accuracy_tail" in r]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.9), gridspec_kw={"width_ratios": [8, 6, 2.5]})
    fig.suptitle("The long-tail benchmark: head and tail (mean of seeds)")
    for ax, rows, key, label in ((axes[0], gens, "recall", "recall (diversity)"),
                                 (axes[1], cond, "fidelity", "exact class fidelity"),
                                 (axes[2], clfs, "balanced_accuracy", "balanced accuracy")):
        names = [r["method"].replace("classifier, ", "") for r in rows]
        plotting.bar(names, {g: [r[f"{key}_{g}"]["mean"] for r in rows] for g in ("head", "tail")}, "", label,
                     ax=ax, rotate=30, colors=None)
        ax.set_title("classifiers" if key == "balanced_accuracy" else f"generators: {label}")
        for patches, g in zip(ax.containers, ("head", "tail")):
            for p in patches:
                p.set_color(plotting.GROUP_COLORS[g])
        if key != "balanced_accuracy":
            ax.legend(ax.containers, ["head", "tail"])
        ax.set_ylim(0, 1.05)
    fig.tight_layout()
    return fig
