"""The chapters' multi-panel figures that :mod:`lt_diffusion.plotting` has no single call for (in its palette and
style), so that a notebook states the question and calls one function. Each returns the matplotlib figure.
"""
from __future__ import annotations

from typing import Dict, Mapping, Sequence, Tuple

import numpy as np
import torch

__all__ = ["toy_guidance_grid", "p2_weights_figure", "per_class_vs_count", "posterior_means_figure",
           "score_by_class_figure", "toy_scatter_row", "sweep_figure", "curve_panels"]


def _subplots(*args, **kwargs):
    import matplotlib.pyplot as plt

    from lt_diffusion import plotting

    plotting.set_style()
    return plt.subplots(*args, **kwargs)


def toy_guidance_grid(mixture, draws: Mapping[Tuple[str, float], Tuple[torch.Tensor, torch.Tensor]],
                      ws: Sequence[float], denoisers: Sequence[str], lim: float = 2.8):
    """Chapter 04: one row per denoiser, one column per CFG strength w: the contours of the tilted class densities
    (Eq. {eq}`cfg-tilted`, :func:`lt_diffusion.toy2d.density_grid`) with the samples of each class on top.
    ``draws[(denoiser, w)] = (points (N, 2), labels (N,))``."""
    from lt_diffusion import plotting, toy2d

    colors = plotting.PALETTE[:mixture.num_classes]
    fig, axes = _subplots(len(denoisers), len(ws), figsize=(3.0 * len(ws), 3.1 * len(denoisers)), squeeze=False,
                          sharex=True, sharey=True)
    for j, w in enumerate(ws):
        for i, name in enumerate(denoisers):
            ax = axes[i, j]
            x0, labels = draws[(name, w)]
            for c in range(mixture.num_classes):
                xs, ys, dens = toy2d.density_grid(mixture, y=c, w=w, lim=lim, n=121)
                ax.contour(xs, ys, dens, levels=4, colors=[colors[c]], linewidths=0.7, alpha=0.8)
                pts = x0[labels == c].numpy()
                ax.scatter(pts[:, 0], pts[:, 1], s=2, color=colors[c], alpha=0.4)
            ax.set_title(f"{name}, w={w:g} (g={1 + w:g})", fontsize=9)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
    fig.tight_layout()
    return fig


def p2_weights_figure(gammas: Sequence[float], k: float = 1.0, steps: int = 1000):
    """Chapter 05: for the linear and the cosine schedule (T = ``steps``), the P2 factor 1/(k + SNR)^γ on the
    ε-MSE (left, Eq. {eq}`p2-weight`) and the full weight relative to the bound λ'_t, normalised over t (right,
    Eq. {eq}`p2-lambda`), against SNR, with the coarse / content / clean-up stages shaded."""
    from lt_diffusion import plotting
    from lt_diffusion.diffusion import GaussianDiffusion
    from lt_diffusion.schedules import get_named_beta_schedule
    from lt_diffusion.weighting import P2Weight, p2_lambda_t, snr

    snr_range = (1e-10, 1e5)   # covers both schedules (the cosine one reaches ~2e-9 at its last step)
    stages = {"coarse": (snr_range[0], 1e-2), "content": (1e-2, 1.0), "clean-up": (1.0, snr_range[1])}
    stage_colors = {"coarse": "#56B4E9", "content": "#F0E442", "clean-up": "#CC79A7"}
    fig, axes = _subplots(1, 2, figsize=(11, 3.8))
    for sched, style in (("linear", "-"), ("cosine", "--")):
        d = GaussianDiffusion(get_named_beta_schedule(sched, steps))
        s = snr(d.alphas_cumprod)
        for i, g in enumerate(gammas):
            w = P2Weight(g, k).weights(d)
            lam = p2_lambda_t(d.betas) * w
            axes[0].plot(s, w, style, color=plotting.PALETTE[i], label=f"{sched}, γ={g:g}")
            axes[1].plot(s, lam / lam.sum(), style, color=plotting.PALETTE[i], label=f"{sched}, γ={g:g}")
    for ax, ylabel in zip(axes, ["factor on the ε-MSE, 1/(k+SNR)^γ", "λ'_t, normalised over t"]):
        for name, (lo, hi) in stages.items():
            ax.axvspan(lo, hi, color=stage_colors[name], alpha=0.15, lw=0, label=None)
            ax.text(np.sqrt(lo * hi), 1.02, name, transform=ax.get_xaxis_transform(), ha="center", fontsize=8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(*snr_range)
        ax.set_xlabel("SNR(t)")
        ax.set_ylabel(ylabel)
    axes[0].legend(ncol=2, fontsize=7)
    fig.tight_layout()
    return fig


def per_class_vs_count(per_class: Mapping[str, Mapping[int, float]], counts: Sequence[int],
                       class_names: Sequence[str], class_colors: Mapping[int, str], ylabel: str):
    """Chapter 06: a per-class metric of each arm (``per_class[arm][c]``) against the class's training count,
    head on the left, classes annotated (in their group colour) at the first arm's points."""
    from lt_diffusion import plotting

    fig, ax = _subplots(figsize=(6.5, 3.8))
    first = next(iter(per_class))
    for i, (name, pc) in enumerate(per_class.items()):
        ax.plot([counts[c] for c in pc], [pc[c] for c in pc], "o-" if i == 0 else "s--", color=plotting.PALETTE[i],
                label=name)
    for c in per_class[first]:
        ax.annotate(class_names[c], (counts[c], per_class[first][c]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points", color=class_colors[c])
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("training images of the class (head → tail)")
    ax.set_ylabel(ylabel)
    ax.legend()
    return fig


def posterior_means_figure(x0: torch.Tensor, x0_hat: torch.Tensor, n_common: int, t: int, ts: Sequence[int],
                           curves: Dict[str, Sequence[float]], prior: float):
    """Chapter 07's toy: the data (grey) and the posterior means x̂_0 at step ``t`` of the first ``n_common`` (common
    mode) and the other (rare mode) points, lines joining some rare points to their x̂_0; the mean minority score of
    each mode against t (``curves["common mode"]``, ``curves["rare mode"]``); and the rare mode's mean
    responsibility ``curves["r_rare"]`` against its prior weight ``prior``."""
    from lt_diffusion import plotting

    fig, axes = _subplots(1, 3, figsize=(13, 3.6))
    axes[0].scatter(*x0.T, s=4, c="0.6", label="x_0")
    for i in range(n_common, len(x0), 8):
        axes[0].plot([x0[i, 0], x0_hat[i, 0]], [x0[i, 1], x0_hat[i, 1]], c=plotting.PALETTE[1], lw=0.4)
    axes[0].scatter(*x0_hat[:n_common].T, s=4, c=plotting.PALETTE[0], label="x̂_0 of common points")
    axes[0].scatter(*x0_hat[n_common:].T, s=4, c=plotting.PALETTE[1], label="x̂_0 of rare points")
    axes[0].set_aspect("equal")
    axes[0].legend(fontsize=7, loc="lower right")
    axes[0].set_title(f"posterior means at t={t}")
    plotting.curves(ts, {k: curves[k] for k in ("common mode", "rare mode")}, "t", "mean l(x_0)", ax=axes[1],
                    logy=True, markers=True, title="minority score vs t")
    axes[1].axvline(t, c="0.5", ls=":")
    plotting.curves(ts, {"rare points": curves["r_rare"], "prior weight": [prior] * len(ts)}, "t", "r_rare(x_t)",
                    ax=axes[2], markers=True, title="how sure the posterior is of the rare mode")
    fig.tight_layout()
    return fig


def score_by_class_figure(scores: Mapping[str, np.ndarray], top_share: Sequence[float], colors: Sequence[str],
                          top_level: int, num_levels: int, suffix: str = ""):
    """Chapter 07: the distribution of the minority score within each class (box: quartiles, whiskers 5-95 %,
    ``scores[class name]``, in the given order and colours) and each class's share of images in the top level."""
    from lt_diffusion import plotting

    names = list(scores)
    fig, axes = _subplots(1, 2, figsize=(11, 3.4))
    box = axes[0].boxplot([scores[n] for n in names], whis=(5, 95), showfliers=False, patch_artist=True,
                          medianprops={"color": "k"})
    for patch, col in zip(box["boxes"], colors):
        patch.set_facecolor(col)
        patch.set_alpha(0.6)
    axes[0].set_xticks(range(1, len(names) + 1), names, rotation=45, ha="right")
    axes[0].set_ylabel("minority score l(x_0)")
    axes[0].set_title("score distribution by class (head → tail)" + suffix)
    plotting.bar(names, list(top_share), ylabel=f"share in top level {top_level}", colors=list(colors), ax=axes[1],
                 rotate=45, title=f"uniform share would be {1 / num_levels:.2f}")
    fig.tight_layout()
    return fig


def toy_scatter_row(background: torch.Tensor, points: Mapping[str, torch.Tensor], title: str):
    """A row of 2-D scatter panels: ``background`` points in grey under each panel's ``points`` (chapter 07)."""
    from lt_diffusion import plotting

    fig, axes = _subplots(1, len(points), figsize=(3.25 * len(points), 3.1), sharex=True, sharey=True, squeeze=False)
    for ax, (name, pts) in zip(axes[0], points.items()):
        ax.scatter(*background.T, s=2, c="0.8")
        ax.scatter(*pts.T, s=2, c=plotting.PALETTE[1])
        ax.set_title(name)
        ax.set_aspect("equal")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def sweep_figure(series: Mapping[str, Sequence[Mapping[str, float]]], x, xlabel: str, suffix: str = ""):
    """Chapters 03, 04: rows of a guidance sweep (``FID``, ``precision``, ``recall`` and the strength ``x``, a key or
    ``{series: key}``) as FID against the strength (left) and the precision-recall trade-off (right)."""
    from lt_diffusion import plotting

    key = {name: x if isinstance(x, str) else x[name] for name in series}
    fig, axes = _subplots(1, 2, figsize=(10, 3.8))
    plotting.curves(None, {n: ([r[key[n]] for r in rows], [r["FID"] for r in rows]) for n, rows in series.items()},
                    xlabel=xlabel, ylabel="FID", markers=True, ax=axes[0], title=f"FID vs {xlabel}{suffix}")
    plotting.curves(None, {n: ([r["recall"] for r in rows], [r["precision"] for r in rows])
                           for n, rows in series.items()}, xlabel="recall (diversity)",
                    ylabel="precision (fidelity)", markers=True, ax=axes[1], title=f"the trade-off curves{suffix}")
    fig.tight_layout()
    return fig


def curve_panels(x, panels: Sequence[Tuple[Mapping[str, Sequence[float]], str]], xlabel: str):
    """One row of :func:`lt_diffusion.plotting.curves` panels over the same ``x``: ``panels = [(series, ylabel),
    ...]`` with ``series = {name: values}`` (markers on)."""
    from lt_diffusion import plotting

    fig, axes = _subplots(1, len(panels), figsize=(4.0 * len(panels) + 1.0, 3.2), squeeze=False)
    for ax, (series, ylabel) in zip(axes[0], panels):
        plotting.curves(x, dict(series), xlabel, ylabel, ax=ax, markers=True)
    fig.tight_layout()
    return fig
