"""One look for every chapter: sample grids, image rows, curves against t / SNR, bars and metric tables.

Importing this module applies :func:`set_style` (fonts, sizes, a colour-blind-safe colour cycle).
Every function returns the matplotlib ``Figure`` (or draws into ``ax`` and returns its figure) and never
calls ``plt.show()``; Jupyter displays the returned figure.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch

from lt_diffusion.report import Table, table

__all__ = [
    "GROUP_COLORS",
    "PALETTE",
    "MetricsTable",
    "bar",
    "curves",
    "image_rows",
    "metrics_table",
    "sample_grid",
    "savefig",
    "set_style",
]

# Okabe & Ito (2008) colour-blind-safe palette, black moved last.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
# head / mid / tail of a long-tailed class distribution, used by every chapter
GROUP_COLORS = {"head": "#0072B2", "mid": "#009E73", "tail": "#D55E00"}

_STYLE = {
    "figure.figsize": (6.0, 3.6),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.6,
    "legend.frameon": False,
    "image.interpolation": "nearest",
}


def set_style() -> None:
    """Apply the book's matplotlib style (rcParams); called on import."""
    matplotlib.rcParams.update(_STYLE)


set_style()


def _to_hwc_grid(images: Any, nrow: int, padding: int) -> np.ndarray:
    """``images: (N, C, H, W)`` uint8 or float in [-1, 1] (or a single (C, H, W)) -> uint8 grid (H', W', 3)."""
    import torchvision.utils as vutils

    x = torch.as_tensor(np.asarray(images)) if not torch.is_tensor(images) else images.detach().cpu()
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"expected images (N, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.permute(0, 3, 1, 2)
    if x.dtype == torch.uint8:
        x = x.float() / 255
    elif torch.is_floating_point(x):
        x = ((x.float() + 1) / 2).clamp(0, 1)  # display only: model output in [-1, 1]
    else:
        raise ValueError(f"expected uint8 or float images in [-1, 1], got {x.dtype}")
    grid = vutils.make_grid(x, nrow=nrow, padding=padding, pad_value=1.0)
    return (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def _new_ax(ax, figsize=None):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def sample_grid(
    images: Any, nrow: int = 8, title: str | None = None, ax=None, padding: int = 2, figsize=None
) -> matplotlib.figure.Figure:
    """Show ``images: (N, C, H, W)`` (uint8, or float in [-1, 1]) as a grid with ``nrow`` images per row."""
    grid = _to_hwc_grid(images, nrow, padding)
    if figsize is None and ax is None:
        h, w = grid.shape[:2]
        scale = 6.0 / max(h, w)
        figsize = (max(w * scale, 1.5), max(h * scale, 1.5))
    fig, ax = _new_ax(ax, figsize)
    ax.imshow(grid)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig


def image_rows(
    rows: Mapping[str, Any],
    col_labels: Sequence[str] | None = None,
    title: str | None = None,
    cell_size: float = 0.8,
) -> matplotlib.figure.Figure:
    """One row of images per entry of ``rows`` (``{row label: images (K, C, H, W)}``), row labels on the left.

    E.g. the forward process: ``{"x_t": x_t_over_t}`` with ``col_labels=[f"t={t}" for t in ts]``.
    Rows may have different lengths; missing cells stay empty.
    """
    if not rows:
        raise ValueError("image_rows needs at least one row")
    tensors = {k: (torch.as_tensor(np.asarray(v)) if not torch.is_tensor(v) else v.detach().cpu()) for k, v in rows.items()}
    ncol = max(v.shape[0] for v in tensors.values())
    nrow = len(tensors)
    # Room above the grid, in inches: the column labels, then the title above them (so they never overlap).
    labels_in = 0.3 if col_labels is not None else 0.0
    title_in = 0.4 if title else 0.0
    height = cell_size * nrow + labels_in + title_in + 0.1
    fig, axes = plt.subplots(nrow, ncol, figsize=(cell_size * ncol + 1.0, height), squeeze=False)
    for r, (label, imgs) in enumerate(tensors.items()):
        for c in range(ncol):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for side in ax.spines.values():
                side.set_visible(False)
            if c < imgs.shape[0]:
                ax.imshow(_to_hwc_grid(imgs[c : c + 1], 1, 0))
            if c == 0:
                ax.set_ylabel(str(label), rotation=0, ha="right", va="center")
            if r == 0 and col_labels is not None and c < len(col_labels):
                ax.set_title(str(col_labels[c]), fontsize=matplotlib.rcParams["xtick.labelsize"])
    if title:
        fig.suptitle(title, y=1.0 - 0.05 / height, va="top")
    fig.subplots_adjust(wspace=0.05, hspace=0.05, top=1.0 - (labels_in + title_in) / height, bottom=0.05 / height)
    return fig


def curves(
    x: Any,
    ys: Mapping[str, Any],
    xlabel: str = "",
    ylabel: str = "",
    *,
    logx: bool = False,
    logy: bool = False,
    ax=None,
    shade: Mapping[str, tuple[Any, Any]] | None = None,
    title: str | None = None,
    markers: bool = False,
) -> matplotlib.figure.Figure:
    """Line plot of several curves against a shared ``x`` (e.g. ᾱ_t, SNR or loss terms vs t, FID vs steps).

    Args:
        x: ``(T,)`` values, or ``None`` when every entry of ``ys`` is an ``(x_i, y_i)`` pair.
        ys: ``{label: y (T,)}`` or ``{label: (x_i, y_i)}`` for curves with their own x.
        shade: ``{label: (lower, upper)}`` bands drawn around the curve of the same label
            (e.g. mean ± std over seeds).
        markers: draw a dot at every point (for few-point curves like FID vs sampling steps).
    """
    fig, ax = _new_ax(ax)
    for i, (label, y) in enumerate(ys.items()):
        if isinstance(y, tuple) and len(y) == 2:
            xi, yi = np.asarray(y[0], dtype=float), np.asarray(y[1], dtype=float)
        else:
            if x is None:
                raise ValueError(f"curves: x is None but ys[{label!r}] is not an (x, y) pair")
            xi, yi = np.asarray(x, dtype=float), np.asarray(torch.as_tensor(y).detach().cpu() if torch.is_tensor(y) else y, dtype=float)
        if xi.shape != yi.shape:
            raise ValueError(f"curves: x has shape {xi.shape} but ys[{label!r}] has {yi.shape}")
        color = GROUP_COLORS.get(label, PALETTE[i % len(PALETTE)])
        ax.plot(xi, yi, label=str(label), color=color, marker="o" if markers else None, markersize=3)
        if shade and label in shade:
            lo, hi = (np.asarray(v, dtype=float) for v in shade[label])
            ax.fill_between(xi, lo, hi, color=color, alpha=0.2, linewidth=0)
    if logx:
        ax.set_xscale("log")
    _finish_axes(ax, xlabel, ylabel, title, logy, legend=len(ys) > 1)
    return fig


def _finish_axes(ax, xlabel: str, ylabel: str, title: str | None, logy: bool, legend: bool) -> None:
    """Labels, optional log y-axis, title and legend: the same finish for every chart of the book."""
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if legend:
        ax.legend()


def bar(
    categories: Sequence[Any],
    values: Any,
    xlabel: str = "",
    ylabel: str = "",
    *,
    ax=None,
    title: str | None = None,
    logy: bool = False,
    colors: Sequence[str] | None = None,
    annotate: bool = False,
    rotate: int = 0,
) -> matplotlib.figure.Figure:
    """Bar chart, e.g. a class histogram. ``values``: ``(K,)`` or ``{series: (K,)}`` for grouped bars.

    ``colors``: one colour per category (e.g. ``GROUP_COLORS`` by head/mid/tail) for a single series.
    """
    fig, ax = _new_ax(ax)
    pos = np.arange(len(categories))
    series = values if isinstance(values, Mapping) else {None: values}
    width = 0.8 / len(series)
    for i, (name, vals) in enumerate(series.items()):
        v = np.asarray(vals, dtype=float)
        if v.shape != (len(categories),):
            raise ValueError(f"bar: {len(categories)} categories but values{'' if name is None else f'[{name!r}]'} has shape {v.shape}")
        offset = (i - (len(series) - 1) / 2) * width
        kw = {"color": colors} if (colors is not None and len(series) == 1) else {}
        bars = ax.bar(pos + offset, v, width, label=None if name is None else str(name), **kw)
        if annotate:
            ax.bar_label(bars, fmt="%.3g", fontsize=matplotlib.rcParams["xtick.labelsize"] - 1)
    ax.set_xticks(pos, [str(c) for c in categories], rotation=rotate, ha="right" if rotate else "center")
    ax.grid(axis="x", visible=False)
    _finish_axes(ax, xlabel, ylabel, title, logy, legend=len(series) > 1)
    return fig


# The one table type of the package (markdown ``str`` + HTML for Jupyter); the old name stays.
MetricsTable = Table


def metrics_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    formats: Mapping[str, str] | None = None,
) -> MetricsTable:
    """Render ``rows`` (one dict per method/run) as a table; missing cells show "–".

    Args:
        columns: column order (default: keys in order of first appearance).
        formats: per-column format specs, e.g. ``{"FID": ".2f", "precision": ".3f"}``; floats default to ``.4g``.
    Returns:
        :class:`lt_diffusion.report.Table`: markdown ``str`` with an HTML rendering for Jupyter (numeric
        columns right-aligned). ``display(table)`` shows it; in the book it renders as a table like those of
        the book's pages. At ``smoke`` scale, show CIFAR-10 numbers only behind ``report.shows_results``.
    """
    return table(rows, columns, formats, kind="metrics")


def savefig(fig: matplotlib.figure.Figure, path: str | os.PathLike, **kwargs) -> Path:
    """Save ``fig`` to ``path`` (format from the suffix; parent folders created; tight bounding box)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, **kwargs)
    return path
