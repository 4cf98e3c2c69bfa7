"""Improved precision and recall (Kynkäänniemi et al. 2019) and density / coverage (Naeem et al. 2020).

The real (resp. generated) manifold is the union of balls around each real (resp. generated) feature
vector, with radius = distance to its k-th nearest neighbour in the same set (k = 3 in the paper; the
sample itself does not count). Precision: the fraction of generated samples inside the real manifold
(fidelity). Recall: the fraction of real samples inside the generated manifold (diversity / coverage of
the tail). Density and coverage are the variants of Naeem et al. that are less sensitive to outliers.

Distances are computed in float64 with batched matrix products in torch, on GPU if asked.
"""
from __future__ import annotations

from typing import Any

import torch

from lt_diffusion.metrics.features import as_features

__all__ = ["knn_radii", "pairwise_distances", "prdc", "precision_recall"]


def _tensor(x: Any, device: torch.device, name: str, feature_kwargs: dict) -> torch.Tensor:
    return torch.from_numpy(as_features(x, name=name, **feature_kwargs)).to(device)


def pairwise_distances(a: torch.Tensor, b: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Euclidean distances ``(N_a, N_b)`` between rows of ``a: (N_a, D)`` and ``b: (N_b, D)``.

    Uses ``|a|^2 + |b|^2 - 2 a·b`` (clamped at 0) in chunks of ``chunk`` rows of ``a``.
    """
    b_sq = (b * b).sum(1)
    out = []
    for start in range(0, a.shape[0], chunk):
        x = a[start : start + chunk]
        d2 = (x * x).sum(1, keepdim=True) + b_sq[None, :] - 2 * (x @ b.T)
        out.append(d2.clamp_min_(0).sqrt_())
    return torch.cat(out)


def knn_radii(feats: torch.Tensor, k: int, chunk: int = 4096) -> torch.Tensor:
    """Distance of each row of ``feats: (N, D)`` to its k-th nearest *other* row: ``(N,)``."""
    if feats.shape[0] <= k:
        raise ValueError(f"k-NN radii with k={k} need more than k samples, got {feats.shape[0]}")
    radii = []
    for start in range(0, feats.shape[0], chunk):
        d = pairwise_distances(feats[start : start + chunk], feats, chunk)
        # the k+1-th smallest includes the sample itself at distance 0
        radii.append(d.kthvalue(k + 1, dim=1).values)
    return torch.cat(radii)


def prdc(
    real_feats: Any,
    gen_feats: Any,
    k: int = 3,
    *,
    device: str | torch.device | None = None,
    chunk: int = 4096,
    **feature_kwargs,
) -> dict[str, float]:
    """Precision, recall, density and coverage of generated vs real samples.

    Args:
        real_feats: ``(N_r, D)`` features (or images, see ``compute_features``).
        gen_feats: ``(N_g, D)`` features (or images).
        k: nearest-neighbour index for the ball radii (3 in Kynkäänniemi et al.; CBDM's evaluation
            used k = 5, ``IPR(k=5)`` in its ``score/both.py``).
    Returns:
        ``{"precision", "recall", "density", "coverage"}`` (floats; precision = recall = 1 for identical sets).
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    real = _tensor(real_feats, device, "real_feats", feature_kwargs)
    gen = _tensor(gen_feats, device, "gen_feats", feature_kwargs)
    if real.shape[1] != gen.shape[1]:
        raise ValueError(f"feature dimensions differ: {real.shape[1]} vs {gen.shape[1]}")
    r_real = knn_radii(real, k, chunk)  # (N_r,)
    r_gen = knn_radii(gen, k, chunk)  # (N_g,)
    inside_real_count = torch.zeros(gen.shape[0], dtype=torch.float64, device=device)  # per gen sample
    real_covered = torch.zeros(real.shape[0], dtype=torch.bool, device=device)  # recall
    real_nn_gen = torch.full((real.shape[0],), float("inf"), dtype=torch.float64, device=device)
    for start in range(0, gen.shape[0], chunk):
        d = pairwise_distances(gen[start : start + chunk], real, chunk)  # (n_g, N_r)
        inside_real_count[start : start + d.shape[0]] = (d <= r_real[None, :]).sum(1).double()
        real_covered |= (d <= r_gen[start : start + d.shape[0], None]).any(0)
        real_nn_gen = torch.minimum(real_nn_gen, d.min(0).values)
    return {
        "precision": float((inside_real_count > 0).double().mean()),
        "recall": float(real_covered.double().mean()),
        "density": float(inside_real_count.sum() / (k * gen.shape[0])),
        "coverage": float((real_nn_gen <= r_real).double().mean()),
    }


def precision_recall(real_feats: Any, gen_feats: Any, k: int = 3, **kwargs) -> tuple[float, float]:
    """``(precision, recall)`` of Kynkäänniemi et al. 2019; see :func:`prdc`."""
    out = prdc(real_feats, gen_feats, k, **kwargs)
    return out["precision"], out["recall"]
