"""One figure per chapter lab, drawn from a :class:`~lt_diffusion.lab.result.LabResult` (from a fresh run or the
committed JSON) with the book's plotting helpers (:mod:`lt_diffusion.plotting`): lines are seed means, bands
the range over seeds."""
from __future__ import annotations

from typing import Dict, Sequence

import matplotlib.pyplot as plt
import numpy as np

from .. import plotting
from .result import LabResult

__all__ = ["plot_lab", "lab_table"]


def _stats(values) -> tuple:
    """``values (seeds, k)`` or ``(k, seeds)`` given as lists -> mean, min, max over seeds along axis 0."""
    a = np.asarray(values, dtype=float)
    return a.mean(0), a.min(0), a.max(0)


def _by_seed(values) -> np.ndarray:
    """``(k, seeds)`` nested list (one row per sweep point) -> ``(seeds, k)``."""
    return np.asarray(values, dtype=float).T


def _two(title: str, width: float = 10.0):
    fig, axes = plt.subplots(1, 2, figsize=(width, 3.6))
    fig.suptitle(title)
    return fig, axes


def _curves(ax, x, series: Dict[str, np.ndarray], xlabel, ylabel, **kw):
    ys, shade = {}, {}
    for name, per_seed in series.items():
        mean, lo, hi = _stats(per_seed)
        ys[name], shade[name] = mean, (lo, hi)
    plotting.curves(x, ys, xlabel, ylabel, ax=ax, shade=shade, markers=True, **kw)


def _frontier(ax, fid, rec, labels: Sequence, name: str, color=None):
    """Mean fidelity against mean recall over a sweep, points labelled by the swept value."""
    f, r = _by_seed(fid).mean(0), _by_seed(rec).mean(0)
    line, = ax.plot(r, f, marker="o", markersize=3, label=name, color=color)
    for x, y, lab in zip(r, f, labels):
        ax.annotate(f"{lab:g}", (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7,
                    color=line.get_color())


def _ddpm(res: LabResult):
    f = res.figure
    fig, (a, b) = _two("Chapter 01: learned against exact ε, and the number of steps")
    _curves(a, np.asarray(f["t"]) + 1, {"learned ε": f["eps_error"]}, "t + 1",
            "mean squared error against ε*", logx=True, logy=True, title="learned ε vs the exact ε*")
    _curves(b, f["steps"], {k: v for k, v in f["sw"].items()}, "sampling steps", "sliced W2 to true samples",
            logx=True, title="sample quality against steps")
    return fig


def _improved(res: LabResult):
    f = res.figure
    fig, (a, b) = _two("Chapter 02: objectives, likelihood and few-step sampling")
    names = list(f["nll"])
    means = [float(np.mean(f["nll"][n])) for n in names]
    plotting.bar(names, means, "", "NLL, bits/dim", ax=a, rotate=20, annotate=True, title="NLL (mean of seeds)")
    a.axhline(float(np.mean(f["exact_nll"])), color="black", linestyle="--", linewidth=1)
    a.text(len(names) - 0.5, float(np.mean(f["exact_nll"])), " exact", va="bottom", ha="right", fontsize=8)
    a.set_ylim(min(means + [float(np.mean(f["exact_nll"]))]) * 0.9, max(means) * 1.05)
    tex = lambda k: k.replace("Σ", r"$\Sigma$").replace("β̃_t", r"$\tilde\beta_t$").replace("β_t", r"$\beta_t$")  # noqa: E731
    _curves(b, f["steps"], {tex(k): v for k, v in f["sw"].items()}, "sampling steps", "sliced W2 to true samples",
            logx=True, title="few-step sampling")
    return fig


def _adm(res: LabResult):
    f = res.figure
    fig, (a, b) = _two("Chapter 03: classifier guidance")
    for kind in ("trained classifier", "exact classifier"):
        _frontier(a, f[kind]["fidelity"], f[kind]["recall"], f["scales"], kind)
    a.set_xlabel("recall (diversity)")
    a.set_ylabel("exact class fidelity")
    a.set_title("guidance scale sweep")
    a.legend()
    _curves(b, np.asarray(f["t"]) + 1, {"trained classifier": f["gradient_cosine"]}, "t + 1",
            "cosine to the exact gradient", logx=True, title="classifier gradient vs exact")
    return fig


def _cfg(res: LabResult):
    f = res.figure
    fig, (a, b) = _two("Chapter 04: classifier-free guidance")
    _frontier(a, f["cfg"]["0.1"]["fidelity"], f["cfg"]["0.1"]["recall"], f["ws"], "CFG, learned (w)")
    _frontier(a, f["cfg_exact"]["fidelity"], f["cfg_exact"]["recall"], f["ws"], "CFG, exact ε (w)")
    cg = f["classifier_guidance"]
    _frontier(a, cg["fidelity"], cg["recall"], cg["scales"], "classifier guidance (scale)")
    a.set_xlabel("recall (diversity)")
    a.set_ylabel("exact class fidelity")
    a.set_title("fidelity against diversity")
    a.legend()
    _curves(b, f["ws"], {f"p_uncond {p}": _by_seed(v["sw"]) for p, v in f["cfg"].items()}, "guidance weight w",
            "sliced W2 to true samples", title="label dropout p_uncond")
    return fig


def _p2(res: LabResult):
    f = res.figure
    fig, (a, b) = _two("Chapter 05: P2 weighting on a small model")
    _curves(a, np.asarray(f["t"]) + 1, {f"γ = {g}": v for g, v in f["eps_error"].items()}, "t + 1",
            "mean squared error against ε*", logx=True, logy=True, title="where the error goes")
    lo, hi = min(f["band_t"]) + 1, max(f["band_t"]) + 1
    a.axvspan(lo, hi, color="grey", alpha=0.12, linewidth=0)
    names = [f"γ = {g}" for g in f["sw"]]
    plotting.bar(names, [float(np.mean(v)) for v in f["sw"].values()], "", "sliced W2 to true samples", ax=b,
                 annotate=True, title="sample quality (mean of seeds)")
    return fig


def _cbdm(res: LabResult):
    t = res.figure["arms"]
    fig, (a, b) = _two("Chapter 06: CBDM on the long tail", 11.0)
    names = list(t)
    for ax, key, label in ((a, "recall", "recall"), (b, "fidelity", "exact class fidelity")):
        vals = {g: [float(np.mean(t[n][f"{key}_{g}"])) for n in names] for g in ("head", "tail")}
        plotting.bar(names, vals, "", label, ax=ax, rotate=25, title=f"{label}: head and tail")
    return fig


def _minority(res: LabResult):
    f = res.figure
    fig, (a, b) = _two("Chapter 07: minority guidance")
    _curves(a, f["scales"], {"below the true 10% density quantile": _by_seed(f["low_density_share"]),
                             "tail classes": _by_seed(f["tail_share"])}, "guidance scale", "share of samples",
            title="where the samples land")
    _curves(b, f["scales"], {"on the data's support": _by_seed(f["on_support_share"])}, "guidance scale",
            "share of samples", title="do they stay on the data?")
    true = f.get("true", {})
    for ax, keys in ((a, ("low_density_share", "tail_share")), (b, ("on_support_share",))):
        for i, k in enumerate(keys):
            if k in true:
                ax.axhline(true[k], color=ax.lines[i].get_color(), linestyle=":", linewidth=1)
    a.text(0.99, 0.01, "dotted: true data", transform=a.transAxes, ha="right", va="bottom", fontsize=8)
    return fig


def _inversion(res: LabResult):
    f = res.figure
    fig, (a, b) = _two("Chapter 08: Diffusion Inversion")
    _curves(a, f["real_sizes"], {"real points only": _by_seed(f["real_curve"])}, "real points per class",
            "balanced accuracy", logx=True, title="the scarce regime")
    for key, label, color in (("scarce_augmented", "10 real + generated", plotting.PALETTE[3]),
                              ("scarce_augmented_official", "10 real + generated, CFG g = 2", plotting.PALETTE[4])):
        aug = np.asarray(f[key])
        a.errorbar([f["scarce"]], [aug.mean()], yerr=[[aug.mean() - aug.min()], [aug.max() - aug.mean()]], fmt="s",
                   color=color, label=label)
    a.legend()
    names = list(f["longtail"])
    vals = {g: [float(np.mean(f["longtail"][n][g])) for n in names] for g in ("head", "tail")}
    plotting.bar(names, vals, "", "balanced accuracy", ax=b, title="the long tail: head and tail")
    return fig


_PLOTS = {"ddpm": _ddpm, "improved_ddpm": _improved, "adm": _adm, "cfg": _cfg, "p2": _p2, "cbdm": _cbdm,
          "minority_guidance": _minority, "diffusion_inversion": _inversion}


def plot_lab(result: LabResult):
    """The chapter lab's one figure (a matplotlib ``Figure``); its question is ``result.question``."""
    if result.chapter not in _PLOTS:
        raise ValueError(f"no figure for lab {result.chapter!r}; choose one of {list(_PLOTS)}")
    fig = _PLOTS[result.chapter](result)
    fig.tight_layout()
    return fig


def lab_table(result: LabResult):
    """The lab's claims as one table (a :class:`lt_diffusion.report.Table`), one row per claim: the claim in a
    few words, its metric, the two arms the verdict compares as ``mean (min–max over seeds)``, the gain of the
    method's mean over the baseline's (positive: in the claim's direction), the seed spread (the larger arm's
    max − min) and the verdict of :func:`lt_diffusion.experiments.summary.effect_verdict`."""
    def arm(c, name):
        v = c["arms"][name]
        return f"{name}: {np.mean(v):.4g} ({min(v):.4g}–{max(v):.4g})"

    rows = [{"claim": c["short"], "metric": c["metric"], "method": arm(c, c["method"]),
             "baseline": arm(c, c["baseline"]), "gain": c["gain"], "seed spread": c["spread"],
             "verdict": c["verdict"]} for c in result.labs]
    return plotting.metrics_table(rows, formats={"gain": ".3g", "seed spread": ".2g"})
