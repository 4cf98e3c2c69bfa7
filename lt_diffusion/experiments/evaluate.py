"""Scoring sample sets, the same way in every chapter: one reference setup (:func:`fid_reference`,
:func:`reference_from_images`), one scoring helper (:func:`score_features`: FID, precision / recall, KID, per-class
and head / mid / tail FID) and one sample-then-score helper (:func:`sample_and_score`).

FID is :func:`lt_diffusion.metrics.fid_features_to_stats` (the exact low-rank form below 2,049 samples, pytorch-fid's
above); precision / recall are Kynkäänniemi et al.'s k-NN balls (:func:`lt_diffusion.metrics.prdc`); KID is
:func:`lt_diffusion.metrics.kid`. All numbers from few samples are biased (FID upwards): compare sets only at equal
N and reference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

__all__ = ["Reference", "fid_reference", "reference_from_images", "score_features", "sample_and_score",
           "score_sweep", "ScoreCurve", "seconds_per_sample", "highpass_energy", "learned_variance_ratio",
           "one_step_reconstructions", "classifier_accuracy", "rarity_table", "METRICS"]

METRICS = ("fid", "pr", "kid", "lt")


@dataclass
class Reference:
    """The real side of every score.

    Attributes:
        stats: FID statistics (``mu (2048,)``, ``sigma (2048, 2048)``).
        desc: e.g. ``"CIFAR-10 train (all)"``, printed beside the numbers; num_images: the images behind ``stats``.
        feats: real Inception features ``(N, 2048)`` for precision / recall / KID / rarity (None: FID only).
        lt: per-class and group statistics for the long-tail breakdown (:func:`lt_diffusion.longtail.
            class_reference_stats`) with the class counts and group sizes that define head / mid / tail.
    """

    stats: Any
    desc: str
    num_images: int
    feats: Optional[np.ndarray] = None
    lt: Optional[Dict[str, Any]] = None


def _desc(split: str, num_images: Optional[int]) -> str:
    return f"CIFAR-10 {split}" + (" (all)" if num_images is None else f" ({num_images} images)")


def fid_reference(split: str = "train", num_images: Optional[int] = None, *, pr_images: Optional[int] = None,
                  class_counts: Optional[Sequence[int]] = None, n_head: int = 3, n_tail: int = 3,
                  device=None) -> Reference:
    """The CIFAR-10 reference of a chapter.

    Args:
        split, num_images: the FID statistics: the whole split (the papers' convention: the 50,000 train images;
            cached on disk) or its class-balanced subset of ``num_images`` (smoke).
        pr_images: also the features of the first ``pr_images`` balanced train images, the precision / recall /
            KID reference (when it is the FID subset itself, the statistics come from these features).
        class_counts: the long-tailed training counts per class: then the reference images' own features give the
            FID statistics, the per-class and head / mid / tail statistics (``n_head``, ``n_tail``) and a
            class-balanced subset of ``pr_images`` (default: all) as the precision / recall / KID reference.
    """
    from lt_diffusion import longtail
    from lt_diffusion.experiments.build import load_data
    from lt_diffusion.experiments.specs import DataSpec
    from lt_diffusion.metrics import compute_features, dataset_reference_stats, feature_stats

    desc = _desc(split, num_images)
    if class_counts is not None:
        real = load_data(DataSpec(split=split, num_images=num_images))
        feats = compute_features(real.images, progress=False, device=device)
        labels = real.labels.numpy()
        lt = longtail.class_reference_stats(feats, labels, class_counts, n_head, n_tail)
        lt.update({"counts": list(class_counts), "n_head": n_head, "n_tail": n_tail})
        K = len(class_counts)
        per = min(len(real), pr_images or len(real)) // K
        pr_idx = np.concatenate([np.flatnonzero(labels == c)[:per] for c in range(K)])
        return Reference(feature_stats(feats), desc, len(real), feats=feats[pr_idx], lt=lt)
    feats = None
    if pr_images is not None:
        feats = compute_features(load_data(DataSpec(split="train", num_images=pr_images)).images, progress=False,
                                 device=device)
    if feats is not None and num_images is not None and num_images == pr_images and split == "train":
        return Reference(feature_stats(feats), desc, len(feats), feats=feats)
    subset = "full" if num_images is None else f"balanced{int(num_images)}"
    stats = dataset_reference_stats("cifar10", split, lambda: load_data(DataSpec(split, num_images)).images,
                                    subset=subset, progress=False)
    return Reference(stats, desc, num_images or (50_000 if split == "train" else 10_000), feats=feats)


def reference_from_images(images: torch.Tensor, desc: str, device=None) -> Reference:
    """A reference made of any uint8 images ``(N, 3, H, W)`` (e.g. the long-tailed training set itself)."""
    from lt_diffusion.metrics import compute_features, feature_stats

    feats = compute_features(images, progress=False, device=device)
    return Reference(feature_stats(feats), desc, len(feats), feats=feats)


def score_features(feats: np.ndarray, ref: Reference, *, metrics: Sequence[str] = ("fid",), k: int = 3,
                   labels=None, kid_subset: int = 1000, device=None) -> Dict[str, Any]:
    """Scores of generated Inception features ``(N, 2048)`` against ``ref``.

    ``metrics``: any of ``"fid"`` (``FID``), ``"pr"`` (``precision``, ``recall`` with k-NN balls of ``k``),
    ``"kid"`` (``KID×10³``, ``KID std×10³`` over subsets of ``kid_subset``) and ``"lt"`` (``lt``: per-class FID,
    head / mid / tail FID and the count-FID rank correlation, :func:`lt_diffusion.longtail.lt_fid_breakdown`;
    needs ``labels (N,)``).
    """
    from lt_diffusion.metrics import fid_features_to_stats, kid, prdc

    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {METRICS}")
    if {"pr", "kid"} & set(metrics) and ref.feats is None:
        raise ValueError("precision / recall and KID need real features: build the reference with pr_images=")
    out: Dict[str, Any] = {}
    if "fid" in metrics:
        out["FID"] = fid_features_to_stats(feats, ref.stats.mu, ref.stats.sigma)
    if "pr" in metrics:
        pr = prdc(ref.feats, feats, k=k, device=device)
        out.update({"precision": pr["precision"], "recall": pr["recall"]})
    if "kid" in metrics:
        mean, std = kid(feats, ref.feats, subset_size=min(kid_subset, len(feats), len(ref.feats)), device=device)
        out.update({"KID×10³": 1e3 * mean, "KID std×10³": 1e3 * std})
    if "lt" in metrics:
        from lt_diffusion import longtail
        if ref.lt is None or labels is None:
            raise ValueError("the long-tail breakdown needs labels= and a reference built with class_counts=")
        lab = labels.numpy() if torch.is_tensor(labels) else np.asarray(labels)
        out["lt"] = longtail.lt_fid_breakdown(feats, lab, None, None, ref.lt["counts"], ref.lt["n_head"],
                                              ref.lt["n_tail"], reference=ref.lt)
    return out


def sample_and_score(sample_fn: Callable, n: int, ref: Reference, *, batch_size: int = 500, labels=None,
                     seed: int = 0, device=None, **score_kwargs) -> Tuple[Dict[str, Any], torch.Tensor]:
    """Draw ``n`` samples with :func:`lt_diffusion.sampling.generate` (batch ``i`` seeded with ``seed + i``) and
    score them with :func:`score_features` (``score_kwargs``: ``metrics``, ``k``, ``kid_subset``; ``labels`` go to
    the sampler and to the long-tail breakdown). Returns ``(scores, images uint8 (n, C, H, W))``."""
    from lt_diffusion.metrics import compute_features
    from lt_diffusion.sampling import generate

    images = generate(sample_fn, n, min(batch_size, n), labels=labels, seed=seed, progress=False, device=device)
    feats = compute_features(images, progress=False)
    return score_features(feats, ref, labels=labels, device=device, **score_kwargs), images


def score_sweep(samplers: Dict[Any, Callable], n: int, ref: Reference, *, key: str = "value",
                **kwargs) -> List[Dict[str, Any]]:
    """:func:`sample_and_score` for each ``{value: sampler}`` (e.g. one sampler per guidance strength), in order;
    ``kwargs`` as there (``batch_size``, ``labels``, ``seed``, ``device``, ``metrics``, ...). Every set uses the
    same ``seed``, so the sets start from the same noise. Returns one row ``{key: value, **scores}`` per sampler."""
    return [{key: value, **sample_and_score(fn, n, ref, **kwargs)[0]} for value, fn in samplers.items()]


class ScoreCurve:
    """An ``on_chunk`` callback of :func:`lt_diffusion.experiments.train_model`: after every chunk, FID of the current
    EMA model from ``n`` samples (:func:`make_sampler` with ``sampler_kwargs``, e.g. ``sample_steps=25,
    method="ddim"``; :func:`sample_and_score` with ``seed``) - a FID curve over training (chapter 05).

    ``points`` holds ``(step, FID)``; ``images`` the last set's uint8 samples.
    """

    def __init__(self, spec, n: int, ref: Reference, *, seed: int = 0, batch_size: int = 500, device=None,
                 **sampler_kwargs):
        self.spec, self.n, self.ref, self.seed, self.batch_size, self.device = spec, n, ref, seed, batch_size, device
        self.sampler_kwargs = sampler_kwargs
        self.points: List[Tuple[int, float]] = []
        self.images: Optional[torch.Tensor] = None

    def __call__(self, trainer) -> bool:
        from lt_diffusion.experiments.build import make_sampler

        sampler = make_sampler(self.spec, trainer.ema_model.eval(), device=self.device, **self.sampler_kwargs)
        scores, self.images = sample_and_score(sampler, self.n, self.ref, batch_size=self.batch_size, seed=self.seed,
                                               device=self.device)
        self.points.append((trainer.step, scores["FID"]))
        return False


def seconds_per_sample(sample_fn: Callable, n: int, *, labels=None, warmup: int = 4, device=None) -> float:
    """Wall seconds per image of one call ``sample_fn(n, labels, generator)`` (after a warm-up call on ``warmup``
    images; synchronised on CUDA): what a sampler costs, e.g. classifier-free against classifier guidance."""
    import time

    from lt_diffusion.sampling import generate

    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    generate(sample_fn, min(n, warmup), min(n, warmup), labels=None if labels is None else labels[:min(n, warmup)],
             progress=False, device=dev)
    sync()
    t0 = time.perf_counter()
    generate(sample_fn, n, n, labels=labels, progress=False, device=dev)
    sync()
    return (time.perf_counter() - t0) / n


def highpass_energy(images: torch.Tensor) -> float:
    """Mean squared response of a 3×3 Laplacian (a high-pass filter) on the grey-scale of uint8 images
    ``(N, 3, H, W)`` in [0, 1]: a proxy for noise left in samples (chapter 05 compares it with real images)."""
    import torch.nn.functional as F

    laplace = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    x = images.float().div(255).mean(1, keepdim=True)
    return float(F.conv2d(x, laplace).pow(2).mean())


@torch.no_grad()
def learned_variance_ratio(diffusion, model, x_start: torch.Tensor, timesteps: Sequence[int],
                           generator: torch.Generator) -> np.ndarray:
    """Chapter 02 (Eq. {eq}`iddpm-learned-var`): the learned reverse variance Σ_θ of ``model`` over β_t at each of
    ``timesteps``, read out with ``diffusion.p_mean_variance`` on ``x_start`` ``(B, C, H, W)`` noised with draws
    from ``generator`` (geometric mean over images and pixels). Returns ``(len(timesteps),)``."""
    from lt_diffusion.experiments.build import amp_model

    out = []
    for t_i in timesteps:
        t = torch.full((len(x_start),), int(t_i), device=x_start.device, dtype=torch.long)
        noise = torch.randn(x_start.shape, generator=generator, device=x_start.device)
        pmv = diffusion.p_mean_variance(amp_model(model), diffusion.q_sample(x_start, t, noise=noise), t)
        out.append(float(torch.exp(pmv["log_variance"].float().mean() - np.log(diffusion.betas[t_i]))))
    return np.array(out)


@torch.no_grad()
def one_step_reconstructions(diffusion, models: Dict[str, Any], x_start: torch.Tensor, timesteps: Sequence[int],
                             generator: torch.Generator):
    """x_0 → x_t → x̂_0 at each of ``timesteps`` (chapter 05): the same x_t (``q_sample`` with ``generator``) for every
    model; x̂_0 is ``p_mean_variance``'s ``pred_xstart``. Returns ``(x_t list, {name: x̂_0 list}, {name: MSE list})``
    with ``(B, C, H, W)`` CPU tensors, x_t clamped to [-1, 1] for display."""
    xs, preds, mse = [], {n: [] for n in models}, {n: [] for n in models}
    for t_i in timesteps:
        t = torch.full((x_start.shape[0],), int(t_i), device=x_start.device, dtype=torch.long)
        x_t = diffusion.q_sample(x_start, t, generator=generator)
        xs.append(x_t.clamp(-1, 1).cpu())
        for name, model in models.items():
            out = diffusion.p_mean_variance(model, x_t, t)
            preds[name].append(out["pred_xstart"].cpu())
            mse[name].append(float(((out["pred_xstart"] - x_start) ** 2).mean()))
    return xs, preds, mse


def classifier_accuracy(arm, images: torch.Tensor, labels: torch.Tensor, test, *, seed: int = 0,
                        device=None) -> Dict[str, Any]:
    """Train a clean-classifier ``arm`` on uint8 ``images (N, 3, H, W)`` with ``labels (N,)`` (real, generated or
    both; chapter 08) and test it on the ``ImageDataset`` ``test``: :func:`lt_diffusion.classify.evaluate_classifier`
    (``accuracy``, ``balanced_accuracy``, ``per_class``) plus the training ``wall_s``."""
    import time

    from lt_diffusion.classify import evaluate_classifier
    from lt_diffusion.data import ImageDataset
    from lt_diffusion.experiments.training import train_model

    t0 = time.perf_counter()
    net = train_model(arm, seed=seed, device=device, data=ImageDataset(images, labels, test.classes)).model
    wall = time.perf_counter() - t0
    return {**evaluate_classifier(net, test.images, test.labels, num_classes=len(test.classes)), "wall_s": wall}


def rarity_table(feats: Dict[str, np.ndarray], ref: Reference, *, fid_sets: Sequence[str] = (), k: int = 3,
                 knn_k: int = 5, lof_k: int = 20, device=None) -> Dict[str, Dict[str, Any]]:
    """How rare and how realistic each generated set is, in Inception space against ``ref.feats`` (chapter 07):
    precision / recall (k-NN balls of ``k``), FID for the sets in ``fid_sets``, AvgkNN (mean distance to the
    ``knn_k`` nearest real images), LOF (fitted once on the real features, ``min(lof_k, N_real - 1)`` neighbours)
    and the rarity score (its mean, and the share of samples outside every real k-NN ball).

    ``feats``: ``{set name: (N, 2048)}``. Returns ``{set name: {"FID", "precision", "recall", "AvgkNN", "LOF",
    "rarity", "outside"}}`` (``FID`` None outside ``fid_sets``)."""
    from lt_diffusion.metrics import avg_knn_distance, local_outlier_factor, rarity_score

    names = list(feats)
    lof_all = local_outlier_factor(np.concatenate([feats[n] for n in names]), ref.feats,
                                   k=min(lof_k, len(ref.feats) - 1))
    offsets = np.cumsum([0] + [len(feats[n]) for n in names])
    out = {}
    for i, name in enumerate(names):
        f = feats[name]
        scores = score_features(f, ref, metrics=("fid", "pr") if name in fid_sets else ("pr",), k=k, device=device)
        rs = rarity_score(f, ref.feats, k=k, device=device)
        out[name] = {"FID": scores.get("FID"), "precision": scores["precision"], "recall": scores["recall"],
                     "AvgkNN": float(avg_knn_distance(f, ref.feats, k=knn_k, device=device).mean()),
                     "LOF": float(np.mean(lof_all[offsets[i]:offsets[i + 1]])), "rarity": rs.mean,
                     "outside": rs.num_outside / len(f)}
    return out
