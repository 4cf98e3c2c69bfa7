"""Sample-quality metrics on Inception features (FID, KID, precision/recall, rarity), LPIPS and IS.

Typical use::

    from lt_diffusion import metrics
    feats_gen = metrics.compute_features(gen_uint8)             # (N, 2048) float64
    ref = metrics.dataset_reference_stats("cifar10", "train", load_train_images)   # cached on disk
    metrics.fid(feats_gen, ref)
    metrics.kid(feats_gen, feats_real)                          # (mean, std)
    metrics.precision_recall(feats_real, feats_gen)             # (precision, recall)
"""
from lt_diffusion.metrics.features import (
    FEATURE_DIM,
    InceptionFeatureExtractor,
    as_features,
    as_image_tensor,
    build_inception,
    compute_features,
    feature_net_id,
)
from lt_diffusion.metrics.fid import (
    FIDStats,
    dataset_reference_stats,
    feature_stats,
    fid,
    fid_features_to_stats,
    fid_from_features,
    fid_from_stats,
    group_fid,
    per_class_fid,
    reference_stats,
)
from lt_diffusion.metrics.inception_score import (
    InceptionScoreUnavailable,
    inception_score,
    inception_score_from_images,
)
from lt_diffusion.metrics.kid import kid, polynomial_mmd2
from lt_diffusion.metrics.lpips import LPIPS_RESOLUTION, get_lpips, lpips_distance
from lt_diffusion.metrics.prdc import knn_radii, pairwise_distances, prdc, precision_recall
from lt_diffusion.metrics.rarity import RarityScores, avg_knn_distance, local_outlier_factor, rarity_score

__all__ = [
    "FEATURE_DIM",
    "FIDStats",
    "InceptionFeatureExtractor",
    "InceptionScoreUnavailable",
    "LPIPS_RESOLUTION",
    "RarityScores",
    "as_features",
    "as_image_tensor",
    "avg_knn_distance",
    "build_inception",
    "compute_features",
    "dataset_reference_stats",
    "feature_net_id",
    "feature_stats",
    "fid",
    "fid_features_to_stats",
    "fid_from_features",
    "fid_from_stats",
    "get_lpips",
    "group_fid",
    "inception_score",
    "inception_score_from_images",
    "kid",
    "knn_radii",
    "local_outlier_factor",
    "lpips_distance",
    "pairwise_distances",
    "per_class_fid",
    "polynomial_mmd2",
    "prdc",
    "precision_recall",
    "rarity_score",
    "reference_stats",
]
