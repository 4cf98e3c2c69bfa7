"""Helpers for evaluating generative models on long-tailed data (CBDM chapter and later chapters).

Thin on purpose: the metrics themselves live in :mod:`lt_diffusion.metrics` (FID, per-class FID, group FID,
KID, precision/recall); this module only decides *which* classes form the head, middle and tail, draws the
label vectors that conditional sampling uses, and lays per-class numbers out against class frequency.

Class groups (:func:`class_groups`). Classes are ranked by their training count (most frequent first, ties
broken by label index). The ``n_head`` most frequent classes are the **head**, the ``n_tail`` least frequent
the **tail**, the rest the **mid** group. For CIFAR-10-LT with imbalance factor 0.01 (counts
5000 2997 1796 1077 645 387 232 139 83 50, classes in label order) the default 3 / 4 / 3 split gives

* head = airplane, automobile, bird (5000, 2997, 1796 images),
* mid  = cat, deer, dog, frog (1077, 645, 387, 232),
* tail = horse, ship, truck (139, 83, 50).

Generated labels (:func:`balanced_labels`). Models trained on long-tailed data are evaluated on *balanced*
label vectors (every class equally often), as CBDM samples y ~ U{0..C-1} and measures FID against the
balanced full training set: a model that only reproduces the head then pays for it in FID.
"""
from __future__ import annotations

from typing import Dict, Hashable, List, Mapping, Optional, Sequence

import numpy as np
import torch

__all__ = [
    "GROUP_NAMES",
    "class_groups",
    "group_of",
    "balanced_labels",
    "per_class_rows",
    "frequency_rank_correlation",
    "class_reference_stats",
    "lt_fid_breakdown",
    "compare_arms",
    "group_means",
]

GROUP_NAMES = ("head", "mid", "tail")


def class_groups(counts: Sequence[int], n_head: int = 3, n_tail: int = 3) -> Dict[str, List[int]]:
    """Split classes into head / mid / tail by training frequency.

    Args:
        counts: training images per class, ``counts[c]`` for label ``c`` (e.g. ``dataset.class_counts()``).
        n_head: how many of the most frequent classes form the head.
        n_tail: how many of the least frequent classes form the tail.

    Returns ``{"head": [...], "mid": [...], "tail": [...]}``: label indices, each list ordered from the most to
    the least frequent class (ties by label). Raises ``ValueError`` if ``n_head + n_tail > len(counts)``.
    """
    counts = [int(c) for c in counts]
    C = len(counts)
    if n_head < 0 or n_tail < 0 or n_head + n_tail > C:
        raise ValueError(f"need 0 <= n_head, n_tail and n_head + n_tail <= {C} classes, got {n_head}, {n_tail}")
    order = sorted(range(C), key=lambda c: (-counts[c], c))
    return {"head": order[:n_head], "mid": order[n_head:C - n_tail], "tail": order[C - n_tail:]}


def group_of(groups: Mapping[str, Sequence[int]]) -> Dict[int, str]:
    """Invert :func:`class_groups`: ``{label: group name}``."""
    return {int(c): name for name, members in groups.items() for c in members}


def balanced_labels(n: int, num_classes: int = 10, *, generator: Optional[torch.Generator] = None,
                    shuffle: bool = True, device=None) -> torch.Tensor:
    """A class-balanced label vector for conditional sampling, long ``(n,)``.

    Every class appears ``n // num_classes`` times; the remainder ``n % num_classes`` goes one each to the first
    classes (the rule of :func:`lt_diffusion.data.balanced_subset`). With ``shuffle`` the order is a random
    permutation drawn from ``generator`` (which must live on ``device``), so that every sampling batch holds a
    mix of classes; without it the labels are sorted (0, 0, ..., 1, 1, ...).
    """
    if n < 0 or num_classes < 1:
        raise ValueError(f"need n >= 0 and num_classes >= 1, got n={n}, num_classes={num_classes}")
    per = [n // num_classes + (1 if c < n % num_classes else 0) for c in range(num_classes)]
    dev = torch.device(device) if device is not None else (generator.device if generator is not None else None)
    y = torch.repeat_interleave(torch.arange(num_classes, device=dev), torch.tensor(per, device=dev))
    if shuffle and n > 1:
        y = y[torch.randperm(n, generator=generator, device=dev)]
    return y


def per_class_rows(values: Mapping[int, Mapping[str, float]] | Mapping[int, float], counts: Sequence[int],
                   groups: Mapping[str, Sequence[int]], class_names: Optional[Sequence[str]] = None,
                   value_name: str = "FID") -> List[Dict[str, object]]:
    """Table rows ``[{"class", "name", "train images", "group", <value columns>}]``, most frequent class first.

    ``values``: per class either one number (``{c: fid}``, put in a column ``value_name``) or a dict of named
    numbers (``{c: {"baseline": 41.0, "CBDM": 38.2}}``, one column each). Feed the rows to
    :func:`lt_diffusion.plotting.metrics_table`.
    """
    member = group_of(groups)
    order = sorted(values, key=lambda c: (-int(counts[c]), c))
    rows = []
    for c in order:
        row: Dict[str, object] = {"class": int(c)}
        if class_names is not None:
            row["name"] = class_names[c]
        row["train images"] = int(counts[c])
        row["group"] = member.get(int(c), "-")
        v = values[c]
        if isinstance(v, Mapping):
            row.update({k: float(x) for k, x in v.items()})
        else:
            row[value_name] = float(v)
        rows.append(row)
    return rows


def frequency_rank_correlation(per_class: Mapping[int, float], counts: Sequence[int]) -> float:
    """Spearman rank correlation between a class's training count and its per-class metric.

    For per-class FID (lower is better) a value near −1 means "the rarer the class, the worse its samples":
    the long-tail signature CBDM sets out to remove. Returns NaN with fewer than 3 classes.
    """
    classes = sorted(per_class)
    if len(classes) < 3:
        return float("nan")
    from scipy.stats import spearmanr

    rho = spearmanr([int(counts[c]) for c in classes], [float(per_class[c]) for c in classes]).correlation
    return float(rho)


def class_reference_stats(real_feats, real_labels, counts: Sequence[int], n_head: int = 3,
                          n_tail: int = 3) -> Dict[str, Dict[object, object]]:
    """FID reference statistics of every class and of every head/mid/tail group of a labelled real set.

    Args:
        real_feats: Inception features ``(N, 2048)`` of the reference images (or the images themselves).
        real_labels: ``(N,)`` their labels.
        counts: training images per class of the long-tailed set (defines the groups, see :func:`class_groups`).

    Returns ``{"per_class": {c: FIDStats}, "groups": {name: FIDStats}}``. Computing them once and passing them as
    ``reference=`` to :func:`lt_fid_breakdown` saves the ``(D, D)`` covariances on every call (13 for CIFAR-10:
    on the full train set about 0.5 TFLOP per call).
    """
    from lt_diffusion.metrics.fid import as_features, feature_stats

    real = as_features(real_feats)
    yr = np.asarray(real_labels.cpu() if torch.is_tensor(real_labels) else real_labels).reshape(-1)
    if len(yr) != len(real):
        raise ValueError(f"real_labels has {len(yr)} entries for {len(real)} feature rows")
    groups = class_groups(counts, n_head, n_tail)

    def stats(mask):
        if mask.sum() < 2:
            raise ValueError("per-class / group FID needs >= 2 real images per class; pass a larger reference set")
        return feature_stats(real[mask])

    return {"per_class": {c: stats(yr == c) for c in range(len(counts))},
            "groups": {name: stats(np.isin(yr, members)) for name, members in groups.items()}}


def lt_fid_breakdown(gen_feats, gen_labels, real_feats, real_labels, counts: Sequence[int],
                     n_head: int = 3, n_tail: int = 3, reference: Optional[Mapping] = None) -> Dict[str, object]:
    """Per-class FID, head/mid/tail FID and the count-FID rank correlation of one set of generated images.

    Args:
        gen_feats: Inception features ``(N, 2048)`` of the generated images (or the images themselves).
        gen_labels: ``(N,)`` the labels they were generated with (balanced, see :func:`balanced_labels`).
        real_feats, real_labels: the reference set, e.g. the full balanced CIFAR-10 train split (unused when
            ``reference`` is given; pass None then).
        counts: training images per class of the *long-tailed* set the model saw (defines the groups).
        reference: the output of :func:`class_reference_stats` for the same reference set, counts and groups
            (computed once, reused for every arm).

    Returns ``{"per_class": {c: fid}, "groups": {name: {"mean_class_fid", "union_fid", "num_classes"}},
    "group_members": {name: [c, ...]}, "rank_corr": float}``: the same quantities as
    :func:`lt_diffusion.metrics.fid.per_class_fid` / :func:`lt_diffusion.metrics.fid.group_fid`, with each FID
    computed by :func:`lt_diffusion.metrics.fid.fid_features_to_stats` (exact; fast for small per-class sets).
    Per-class FID from few images per class is biased upwards; compare arms only at the same N.
    """
    from lt_diffusion.metrics.fid import as_features, fid_features_to_stats, group_fid

    if reference is None:
        reference = class_reference_stats(real_feats, real_labels, counts, n_head, n_tail)
    elif set(reference.get("per_class", {})) != set(range(len(counts))):
        raise ValueError("reference must come from class_reference_stats with the same counts")
    gen = as_features(gen_feats)
    yg = np.asarray(gen_labels.cpu() if torch.is_tensor(gen_labels) else gen_labels).reshape(-1)
    groups = class_groups(counts, n_head, n_tail)

    def fid_subset(gen_mask, ref):
        if gen_mask.sum() < 2:
            raise ValueError("per-class / group FID needs >= 2 generated images per set; draw more samples")
        return fid_features_to_stats(gen[gen_mask], ref.mu, ref.sigma)

    pcf = {c: fid_subset(yg == c, reference["per_class"][c]) for c in range(len(counts))}
    grp = group_fid(pcf, groups)     # mean of per-class FIDs per group
    for name, members in groups.items():
        grp[name]["union_fid"] = fid_subset(np.isin(yg, members), reference["groups"][name])
    return {"per_class": pcf, "groups": grp, "group_members": groups,
            "rank_corr": frequency_rank_correlation(pcf, counts)}


def compare_arms(a: Sequence[float], b: Sequence[float], names: Sequence[str] = ("A", "B"),
                 lower_is_better: bool = True) -> Dict[str, object]:
    """Does the difference between two arms exceed the spread between seeds?

    ``a``, ``b``: one metric value per seed for each arm. The verdict is deliberately simple (two or three
    seeds do not support a test): the difference **exceeds the seed spread** when the arms' [min, max]
    ranges over seeds do not overlap. Returns the means, the difference ``mean(b) - mean(a)``, each arm's
    range, ``"exceeds_spread"`` (bool), ``"better"`` (the name of the better arm by mean) and a one-line
    ``"verdict"``.
    """
    a = np.asarray(list(a), dtype=np.float64)
    b = np.asarray(list(b), dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError("compare_arms needs at least one value per arm")
    ra, rb = (float(a.min()), float(a.max())), (float(b.min()), float(b.max()))
    separated = ra[1] < rb[0] or rb[1] < ra[0]
    diff = float(b.mean() - a.mean())
    b_better = diff < 0 if lower_is_better else diff > 0
    better = names[1] if b_better else names[0]
    if a.size < 2 or b.size < 2:
        verdict = f"{better} is better by {abs(diff):.3g}, but with one seed per arm the spread is unknown"
    elif separated:
        verdict = f"{better} is better by {abs(diff):.3g}: the seed ranges do not overlap"
    else:
        verdict = (f"difference {abs(diff):.3g} is within the seed spread "
                   f"({names[0]} {ra[0]:.3g}-{ra[1]:.3g}, {names[1]} {rb[0]:.3g}-{rb[1]:.3g}): not resolved")
    return {"mean": {names[0]: float(a.mean()), names[1]: float(b.mean())}, "diff": diff,
            "range": {names[0]: ra, names[1]: rb}, "exceeds_spread": bool(separated and a.size > 1 and b.size > 1),
            "better": better, "verdict": verdict}


def group_means(per_class: Sequence[float], groups: Mapping[str, Sequence[int]]) -> Dict[str, float]:
    """The mean of a per-class metric (``per_class[c]``, NaN for an absent class) over each head / mid / tail group
    of :func:`class_groups`, NaNs left out: ``{group: mean}`` (chapter 08's per-group test accuracy)."""
    return {name: float(np.nanmean([per_class[c] for c in members])) for name, members in groups.items()}
