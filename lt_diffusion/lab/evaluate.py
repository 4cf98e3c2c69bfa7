"""Scoring a lab's samples class by class against fresh true samples (shared by every lab and the benchmark).

:func:`reference_set` draws the true samples; :func:`score_samples` turns an ensemble's samples ``(M, n, d)``
for balanced labels into per-member, per-class numbers (exact class fidelity, precision / recall / coverage
against the true samples of the class, exact mean log-density) and a per-member sliced W2 distance of the whole
sample set to the whole reference set. :func:`group_values` averages per-class numbers over head or tail.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
import torch

from . import metrics
from .world import LabWorld

__all__ = ["EVAL_PER_CLASS", "reference_set", "balanced_labels", "score_samples", "group_values"]

#: Samples per class in every sample-quality evaluation (and true samples per class in the reference).
EVAL_PER_CLASS = 250


def balanced_labels(world: LabWorld, n_per_class: int = EVAL_PER_CLASS) -> torch.Tensor:
    """``(C * n_per_class,)`` labels ``0,0,...,1,1,...``: the balanced label vector of every evaluation."""
    return torch.arange(world.num_classes).repeat_interleave(n_per_class)


def reference_set(world: LabWorld, seed: int, n_per_class: int = EVAL_PER_CLASS, balanced: bool = True):
    """Fresh true samples ``(x (C * n, d) float32, y (C * n,))`` (seed ``10**6 + seed``): ``n_per_class`` of every
    class, or (``balanced=False``) the same number of points drawn with the world's long-tailed frequencies."""
    g = torch.Generator().manual_seed(1_000_000 + int(seed))
    if balanced:
        x, y = world.sample(n_per_class, g)
    else:
        counts = torch.bincount(torch.multinomial(world.mixture.class_weights(), world.num_classes * n_per_class,
                                                  replacement=True, generator=g), minlength=world.num_classes)
        parts = [world.sample(int(n), g, classes=[c]) for c, n in enumerate(counts.tolist()) if n]
        x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    return x.float(), y


def score_samples(world: LabWorld, xs: torch.Tensor, labels: torch.Tensor, seeds: Sequence[int],
                  prdc: bool = True) -> Dict[str, np.ndarray]:
    """Score samples ``xs (M, n, d)`` generated for ``labels (n,)`` (balanced); member ``m`` is compared with
    :func:`reference_set` of ``seeds[m]``.

    Returns arrays: ``fidelity``, ``log_density`` and (with ``prdc``) ``precision``, ``recall``, ``coverage`` of
    shape ``(M, C)``, and ``sw`` ``(M,)`` (sliced W2 of all samples against the whole reference set).
    """
    M, C = xs.shape[0], world.num_classes
    out = {k: np.zeros((M, C)) for k in (["fidelity", "log_density"]
                                          + (["precision", "recall", "coverage"] if prdc else []))}
    out["sw"] = np.zeros(M)
    n_per_class = int((labels == 0).sum())
    for m in range(M):
        ref_x, ref_y = reference_set(world, seeds[m], n_per_class)
        x = xs[m]
        ll = world.mixture.class_log_likelihoods(x.double())
        hit = (ll.argmax(1) == labels).double()
        own = ll.gather(1, labels[:, None]).squeeze(1)
        per_class = metrics.per_class_prdc(world, x, labels, ref_x, ref_y) if prdc else None
        for c in range(C):
            sel = labels == c
            out["fidelity"][m, c] = float(hit[sel].mean())
            out["log_density"][m, c] = float(own[sel].mean())
            if per_class is not None:
                for k in ("precision", "recall", "coverage"):
                    out[k][m, c] = per_class[c][k]
        out["sw"][m] = metrics.sliced_wasserstein(x, ref_x, seed=seeds[m])
    return out


def group_values(per_class: np.ndarray, world: LabWorld, group: str) -> List[float]:
    """Per-member mean of ``per_class (M, C)`` over the classes of ``group`` (``"head"``, ``"mid"``, ``"tail"``
    or ``"all"``): a list of M floats (one per seed)."""
    classes = list(range(world.num_classes)) if group == "all" else world.groups[group]
    return [float(v) for v in per_class[:, classes].mean(1)]
