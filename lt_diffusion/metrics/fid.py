"""Fréchet Inception Distance (Heusel et al. 2017) in pytorch-fid's convention, with cached reference stats.

FID = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2}) between Gaussians fitted to Inception pool3
features. The distance itself is pytorch-fid's ``calculate_frechet_distance`` (not re-derived here);
this module adds input handling, the statistics cache, and per-class / head-mid-tail breakdowns for
long-tailed data.

FID is biased upwards for small sample sizes: values from different N are not comparable (papers use
N = 50,000 generated images against the full training set). State N next to every number.

Cost: each Fréchet distance of 2048-d statistics is one scipy ``sqrtm`` of a 2048x2048 matrix, ~15 s of
one CPU core (it does not use the GPU); per-class FID over 10 classes plus 3 groups is ~13 of them.
"""
from __future__ import annotations

import os
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Mapping, NamedTuple, Sequence

import numpy as np
import scipy.linalg
import torch

from lt_diffusion.metrics.features import (DEFAULT_BATCH_SIZE, InceptionFeatureExtractor, as_features,
                                          check_finite_features)

__all__ = [
    "FIDStats",
    "dataset_reference_stats",
    "feature_stats",
    "fid",
    "fid_from_features",
    "fid_from_stats",
    "group_fid",
    "per_class_fid",
    "reference_stats",
    "stats_cache_path",
]


class FIDStats(NamedTuple):
    """Gaussian statistics of features: ``mu (D,)`` and ``sigma (D, D)``, float64. Unpacks as ``mu, sigma``."""

    mu: np.ndarray
    sigma: np.ndarray


def feature_stats(feats: Any) -> FIDStats:
    """Mean and covariance (``np.cov``, ``N - 1`` normalisation, as pytorch-fid) of ``feats (N, D)``."""
    f = np.asarray(feats.detach().cpu() if torch.is_tensor(feats) else feats, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"feature_stats needs features shaped (N, D) with N >= 2, got {f.shape}")
    check_finite_features(f, "feature_stats")
    return FIDStats(np.mean(f, axis=0), np.cov(f, rowvar=False))


def fid_from_stats(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, eps: float = 1e-6,
                   backend: str = "auto") -> float:
    """Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    ``mu*: (D,)``, ``sigma*: (D, D)``. Two implementations from the field's libraries, which agree to ~1e-6
    relative (tested):

    * ``"pytorch-fid"``: pytorch-fid's ``calculate_frechet_distance`` (SciPy ``sqrtm``; ``eps`` is its diagonal
      offset, used only when the square root is not finite). The reference; ~15 s of CPU per call for D = 2048.
    * ``"torchmetrics"``: torchmetrics' ``_compute_fid``, Tr sqrt(Σ1 Σ2) from the eigenvalues of Σ1 Σ2, in float64
      on the GPU: a fraction of a second, which matters for chapters that score dozens of sample sets.

    ``"auto"`` (default) takes torchmetrics when CUDA is available, pytorch-fid otherwise.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0],) * 2:
        raise ValueError(
            f"FID statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}; "
            "both sides must come from the same feature network (D = 2048 for pool3)"
        )
    for label, value in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.isfinite(value).all():
            raise ValueError(
                f"FID statistics: {label} holds {int((~np.isfinite(value)).sum())} NaN/inf value(s); they come from "
                "non-finite features or a damaged statistics file: recompute them (reference_stats(..., refresh=True))"
            )
    if backend == "auto":
        backend = "torchmetrics" if torch.cuda.is_available() else "pytorch-fid"
    if backend == "torchmetrics":
        from torchmetrics.image.fid import _compute_fid

        dev = "cuda" if torch.cuda.is_available() else "cpu"
        t = [torch.as_tensor(a, dtype=torch.float64, device=dev) for a in (mu1, sigma1, mu2, sigma2)]
        return float(_compute_fid(*t))
    if backend != "pytorch-fid":
        raise ValueError(f"backend must be 'auto', 'pytorch-fid' or 'torchmetrics', got {backend!r}")
    from pytorch_fid.fid_score import calculate_frechet_distance

    with warnings.catch_warnings():
        # pytorch-fid 0.3.0 passes sqrtm(disp=False), deprecated in SciPy 1.17 (removed in 1.18)
        warnings.filterwarnings("ignore", message=".*`disp` argument is deprecated.*", category=DeprecationWarning)
        # with fewer samples than feature dimensions the covariances are singular and SciPy warns; pytorch-fid
        # itself checks the square root and adds eps to the diagonals when it is not finite
        warnings.filterwarnings("ignore", category=scipy.linalg.LinAlgWarning)
        return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2, eps=eps))


def fid_features_to_stats(gen_feats: Any, mu: Any, sigma: Any) -> float:
    """FID between generated features ``(N, D)`` and reference statistics ``mu (D,)``, ``sigma (D, D)``.

    For ``N - 1 < D`` (per-class sets, sweeps, smoke runs) it skips the D x D matrix square root: with the generated
    covariance written as ``S_1 = A^T A``, ``A = (X - mu_1) / sqrt(N - 1)`` of shape ``(N, D)``, the non-zero
    eigenvalues of ``S_1 S_2`` are those of the small PSD matrix ``A S_2 A^T`` (N x N), so
    ``Tr (S_1 S_2)^{1/2} = sum_i sqrt(lambda_i)`` exactly. It is the same distance as
    :func:`fid_from_stats` (tested against pytorch-fid to 1e-6 relative), only cheaper; for ``N - 1 >= D`` it
    delegates to :func:`fid_from_stats`.
    """
    f = np.asarray(gen_feats.detach().cpu() if torch.is_tensor(gen_feats) else gen_feats, dtype=np.float64)
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"gen_feats must be (N, D) with N >= 2, got {f.shape}")
    n, d = f.shape
    if mu.shape != (d,) or sigma.shape != (d, d):
        raise ValueError(f"reference statistics {mu.shape}, {sigma.shape} do not match features of dimension {d}")
    check_finite_features(f, "gen_feats")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ValueError("reference statistics hold NaN/inf: recompute them (reference_stats(..., refresh=True))")
    if n - 1 >= d:
        g = feature_stats(f)
        return fid_from_stats(g.mu, g.sigma, mu, sigma)
    mu1 = f.mean(axis=0)
    a = (f - mu1) / np.sqrt(n - 1)
    lam = np.linalg.eigvalsh(a @ sigma @ a.T).clip(min=0.0)
    return float(((mu1 - mu) ** 2).sum() + np.einsum("ij,ij->", a, a) + np.trace(sigma) - 2.0 * np.sqrt(lam).sum())


def fid_from_features(feats_a: Any, feats_b: Any) -> float:
    """FID between two feature sets ``(N_a, D)`` and ``(N_b, D)``."""
    return fid_from_stats(*feature_stats(feats_a), *feature_stats(feats_b))


def _stats_of(x: Any, extractor_kwargs: dict, name: str = "features") -> FIDStats:
    if isinstance(x, FIDStats):
        return x
    return feature_stats(as_features(x, name=name, **extractor_kwargs))


def fid(
    images_a: Any,
    images_b: Any,
    *,
    device: str | torch.device | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    data_root: str | os.PathLike | None = None,
) -> float:
    """FID between two image sets.

    Each of ``images_a`` / ``images_b`` may be images in any form accepted by
    :func:`lt_diffusion.metrics.features.compute_features`, a 2-D feature array ``(N, 2048)``, or
    :class:`FIDStats` (e.g. from :func:`reference_stats`). Symmetric in its arguments.
    """
    kw = dict(device=device, batch_size=batch_size, progress=progress, data_root=data_root)
    return fid_from_stats(*_stats_of(images_a, kw, "images_a"), *_stats_of(images_b, kw, "images_b"))


# --------------------------------------------------------------------------------------------------
# reference statistics cache
# --------------------------------------------------------------------------------------------------
def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_")
    if not slug:
        raise ValueError(f"reference-stats key {text!r} has no usable characters")
    return slug


def stats_cache_path(key: str, net_id: str) -> Path:
    """File holding the cached statistics for ``key`` under ``cache_dir()/fid_stats/``."""
    from lt_diffusion.paths import cache_dir

    return cache_dir() / "fid_stats" / f"{_slug(key)}__{_slug(net_id)}.npz"


def _read_stats(path: Path) -> FIDStats:
    """Cached statistics from ``path``; a damaged file raises ``ValueError`` naming it and the fix."""
    fix = "delete it, or call reference_stats(..., refresh=True), to compute the statistics again"
    try:
        with np.load(path) as f:
            mu, sigma = f["mu"].astype(np.float64), f["sigma"].astype(np.float64)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: unreadable FID statistics cache ({type(exc).__name__}: {exc}); {fix}") from exc
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]) or not (np.isfinite(mu).all()
                                                                         and np.isfinite(sigma).all()):
        raise ValueError(f"{path}: damaged FID statistics cache (mu {mu.shape}, sigma {sigma.shape}, finite: "
                         f"{bool(np.isfinite(mu).all() and np.isfinite(sigma).all())}); {fix}")
    return FIDStats(mu, sigma)


def reference_stats(
    key: str,
    images_fn: Callable[[], Any] | Any,
    *,
    device: str | torch.device | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    data_root: str | os.PathLike | None = None,
    refresh: bool = False,
) -> FIDStats:
    """Statistics of a reference image set, computed once and cached on disk.

    Args:
        key: what the images are, e.g. ``"cifar10-train-full"``; together with the feature-network id
            (incl. a hash of the weights) it names the file ``cache_dir()/fid_stats/<key>__<net id>.npz``.
            Two different image sets must never share a key.
        images_fn: zero-argument callable returning the images (called only on a cache miss), or the
            images themselves.
        refresh: recompute and overwrite the cached file.

    Returns:
        :class:`FIDStats` ``(mu (2048,), sigma (2048, 2048))``. The file also records ``num_images``.
    """
    from lt_diffusion.sampling import atomic_write

    extractor = InceptionFeatureExtractor(device, batch_size, data_root=data_root)
    path = stats_cache_path(key, extractor.net_id)
    if path.exists() and not refresh:
        return _read_stats(path)
    images = images_fn() if callable(images_fn) else images_fn
    feats = extractor(images, progress=progress, desc=f"reference stats {key}")
    stats = feature_stats(feats)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, mu=stats.mu, sigma=stats.sigma, num_images=len(feats), key=key, net_id=extractor.net_id)
    return stats


def dataset_reference_stats(
    dataset_name: str,
    split: str,
    images: Callable[[], Any] | Any,
    subset: str = "full",
    **kwargs,
) -> FIDStats:
    """:func:`reference_stats` with the key ``"<dataset_name>-<split>-<subset>"``.

    ``subset`` must describe the image set exactly (e.g. ``"full"``, ``"lt-imb100-seed0"``, ``"class3"``).
    Note that the papers (e.g. CBDM's official evaluation, ``score/both.py``) compare long-tailed runs against the **full,
    balanced** training set statistics.
    """
    return reference_stats(f"{dataset_name}-{split}-{subset}", images, **kwargs)


# --------------------------------------------------------------------------------------------------
# per-class and group FID
# --------------------------------------------------------------------------------------------------
def _labels(labels: Any, n: int, name: str) -> np.ndarray:
    y = np.asarray(labels.detach().cpu() if torch.is_tensor(labels) else labels).reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} entries but there are {n} images")
    return y


def per_class_fid(
    gen_images: Any,
    gen_labels: Any,
    real_images: Any,
    real_labels: Any,
    classes: Iterable[Hashable],
    **feature_kwargs,
) -> dict[Hashable, float]:
    """FID between the generated and the real images of each class in ``classes``.

    Images may be given as images or as precomputed features ``(N, 2048)`` (features are computed once
    for each whole set, then split by label). ``*_labels: (N,)``. Each class needs >= 2 images on both
    sides; with few images per class the values are strongly biased upwards, so compare classes only at
    equal counts. Returns ``{class: fid}``.
    """
    gen = as_features(gen_images, **feature_kwargs)
    real = as_features(real_images, **feature_kwargs)
    yg, yr = _labels(gen_labels, len(gen), "gen_labels"), _labels(real_labels, len(real), "real_labels")
    out: dict[Hashable, float] = {}
    for c in classes:
        g, r = gen[yg == c], real[yr == c]
        if len(g) < 2 or len(r) < 2:
            raise ValueError(f"class {c!r}: {len(g)} generated and {len(r)} real images; FID needs >= 2 of each")
        out[c] = fid_from_features(g, r)
    return out


def group_fid(
    per_class: Mapping[Hashable, float],
    groups: Mapping[str, Sequence[Hashable]],
    *,
    gen_images: Any = None,
    gen_labels: Any = None,
    real_images: Any = None,
    real_labels: Any = None,
    **feature_kwargs,
) -> dict[str, dict[str, float]]:
    """Summarise FID over groups of classes, e.g. ``{"head": [0, 1, 2], "mid": [...], "tail": [...]}``.

    Two numbers per group, and they answer different questions:

    * ``"mean_class_fid"``: the mean of the per-class FIDs (from ``per_class``) of the group's classes:
      how well each class, on its own, is modelled.
    * ``"union_fid"``: the FID between *all* generated and *all* real images whose label is in the group,
      pooled into one set: also penalises a wrong mix of classes within the group. Computed only when
      ``gen_images``/``gen_labels``/``real_images``/``real_labels`` are given (images or features).

    Returns ``{group: {"mean_class_fid": float, "union_fid": float (if computed), "num_classes": int}}``.
    """
    have_sets = gen_images is not None and real_images is not None
    if have_sets and (gen_labels is None or real_labels is None):
        raise ValueError("group_fid: union FID needs gen_labels and real_labels together with the images")
    if have_sets:
        gen = as_features(gen_images, **feature_kwargs)
        real = as_features(real_images, **feature_kwargs)
        yg, yr = _labels(gen_labels, len(gen), "gen_labels"), _labels(real_labels, len(real), "real_labels")
    out: dict[str, dict[str, float]] = {}
    for name, members in groups.items():
        members = list(members)
        missing = [c for c in members if c not in per_class]
        if missing:
            raise ValueError(f"group {name!r}: classes {missing} have no entry in per_class")
        entry: dict[str, float] = {
            "mean_class_fid": float(np.mean([per_class[c] for c in members])),
            "num_classes": len(members),
        }
        if have_sets:
            g, r = gen[np.isin(yg, members)], real[np.isin(yr, members)]
            entry["union_fid"] = fid_from_features(g, r)
        out[name] = entry
    return out
