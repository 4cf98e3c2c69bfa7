"""How unusual generated samples are with respect to the real data: the metrics of the minority-guidance
chapter (Um et al. 2024), all computed in Inception feature space.

* :func:`avg_knn_distance` (AvgkNN): mean distance of a generated sample to its k nearest real samples;
  large = far from the data's dense regions.
* :func:`local_outlier_factor` (LOF, Breunig et al. 2000): local density of the neighbourhood compared
  with the densities of its neighbours; about 1 for inliers, larger for outliers. scikit-learn's
  ``LocalOutlierFactor(novelty=True)`` fitted on the real features.
* :func:`rarity_score` (Han et al. 2022): among the real samples whose k-NN ball contains the generated
  sample, the smallest ball radius; large = the sample lives where real data are sparse but still on
  the real manifold. Generated samples outside every ball get no score and are counted separately.

Default k: 5 for AvgkNN, 20 for LOF (scikit-learn's default), 3 for the rarity score.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from lt_diffusion.metrics.features import as_features
from lt_diffusion.metrics.prdc import knn_radii, pairwise_distances

__all__ = ["RarityScores", "avg_knn_distance", "local_outlier_factor", "rarity_score"]


def _pair(gen_feats: Any, real_feats: Any, device, feature_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    device = torch.device(device) if device is not None else torch.device("cpu")
    gen = torch.from_numpy(as_features(gen_feats, name="gen_feats", **feature_kwargs)).to(device)
    real = torch.from_numpy(as_features(real_feats, name="real_feats", **feature_kwargs)).to(device)
    if gen.shape[1] != real.shape[1]:
        raise ValueError(f"feature dimensions differ: {gen.shape[1]} vs {real.shape[1]}")
    return gen, real


def avg_knn_distance(
    gen_feats: Any, real_feats: Any, k: int = 5, *, device=None, chunk: int = 4096, **feature_kwargs
) -> np.ndarray:
    """AvgkNN: mean Euclidean distance of each generated sample to its ``k`` nearest real samples.

    ``gen_feats: (N_g, D)``, ``real_feats: (N_r, D)`` (or images) -> ``(N_g,)`` float64. Average it for a
    set-level number.
    """
    gen, real = _pair(gen_feats, real_feats, device, feature_kwargs)
    if real.shape[0] < k:
        raise ValueError(f"avg_knn_distance with k={k} needs at least k real samples, got {real.shape[0]}")
    out = [
        pairwise_distances(gen[s : s + chunk], real, chunk).topk(k, dim=1, largest=False).values.mean(1)
        for s in range(0, gen.shape[0], chunk)
    ]
    return torch.cat(out).cpu().numpy()


def local_outlier_factor(gen_feats: Any, real_feats: Any, k: int = 20, **feature_kwargs) -> np.ndarray:
    """LOF of each generated sample relative to the real set: ``(N_g,)`` float64, ~1 = inlier.

    Fits ``sklearn.neighbors.LocalOutlierFactor(n_neighbors=k, novelty=True)`` on the real features and
    returns ``-score_samples(gen)`` (scikit-learn's sign convention flipped so larger = rarer).
    """
    from sklearn.neighbors import LocalOutlierFactor

    gen = as_features(gen_feats, name="gen_feats", **feature_kwargs)
    real = as_features(real_feats, name="real_feats", **feature_kwargs)
    if real.shape[0] <= k:
        raise ValueError(f"local_outlier_factor with k={k} needs more than k real samples, got {real.shape[0]}")
    lof = LocalOutlierFactor(n_neighbors=k, novelty=True).fit(real)
    return -lof.score_samples(gen)


class RarityScores(NamedTuple):
    """Result of :func:`rarity_score`.

    ``scores: (N_g,)`` float64, NaN for samples outside every real k-NN ball; ``inside: (N_g,)`` bool;
    ``num_outside``: how many generated samples got no score. ``mean`` ignores the NaNs.
    """

    scores: np.ndarray
    inside: np.ndarray
    num_outside: int

    @property
    def mean(self) -> float:
        return float(np.nanmean(self.scores)) if self.inside.any() else float("nan")


def rarity_score(
    gen_feats: Any, real_feats: Any, k: int = 3, *, device=None, chunk: int = 4096, **feature_kwargs
) -> RarityScores:
    """Rarity score of Han et al. 2022 for each generated sample.

    With ``r_i`` the distance of real sample ``i`` to its k-th nearest other real sample, the score of
    generated ``x`` is ``min { r_i : |x - real_i| <= r_i }``. Samples in no ball are excluded (NaN) and
    counted in ``num_outside``: they are off the real manifold, which is a fidelity failure rather than
    rarity. Returns :class:`RarityScores`.
    """
    gen, real = _pair(gen_feats, real_feats, device, feature_kwargs)
    radii = knn_radii(real, k, chunk)  # (N_r,)
    scores = []
    for s in range(0, gen.shape[0], chunk):
        d = pairwise_distances(gen[s : s + chunk], real, chunk)  # (n, N_r)
        masked = torch.where(d <= radii[None, :], radii[None, :].expand_as(d), torch.full_like(d, float("inf")))
        scores.append(masked.min(1).values)
    score = torch.cat(scores).cpu().numpy()
    inside = np.isfinite(score)
    score[~inside] = np.nan
    return RarityScores(score, inside, int((~inside).sum()))
