"""The lab world: long-tailed data whose density is known in closed form.

Every chapter's lab trains on data drawn from one :class:`~lt_diffusion.toy2d.GaussianMixture`, so every
quality question has an exact answer (the density, the Bayes classifier, the score of the noised data).
:func:`longtail_world` builds it:

* **10 classes with CIFAR-10-LT's frequencies at imbalance 100**: class ``c`` has weight proportional to
  ``5000 * 0.01 ** (c / 9)`` (5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50; Cao et al. 2019's profile,
  :func:`lt_diffusion.data.lt_class_counts`), so classes 0-2 are the head and 7-9 the tail
  (:func:`lt_diffusion.longtail.class_groups`).
* **Each tail class sits next to a head class.** The classes come in five pairs ``(c, 9 - c)``: (0, 9),
  (1, 8), (2, 7), (3, 6), (4, 5). The pair centres lie on a circle of radius 0.5 in the plane of the first two
  coordinates; the two classes of a pair share one covariance and their means differ along a direction of that plane by
  ``separation`` in Mahalanobis distance. With the default 2.5 an equal-prior Bayes classifier confuses the two
  classes of a pair 11% of the time (Phi(-1.25)), and with the long-tailed prior most of a tail class's points are
  more likely to be the head class next to it: a tail can be mistaken for a head.
* **Capacity matters in ``dim`` dimensions.** Each pair's covariance is a random rotation of standard
  deviations between 0.02 and 0.05 (fixed by ``geometry_seed``), so a denoiser has to learn five different
  anisotropic shapes and ten means; in ``dim = 2`` the same construction gives the picture world of the
  chapters' figures.
* **Values in [-1, 1], quantized to 256 levels** like 8-bit pixels. Every mean is at least 6.5 standard
  deviations inside the box (checked at construction), so the mass that the box cuts off is below 1e-9 and the
  rare draws outside are redrawn; data sets are uint8 ``(N, dim)`` arrays that go through
  :func:`lt_diffusion.data.to_model_range` like images, so the engine's trainer, its bits/dim and
  Diffusion Inversion's embedding learning take them unchanged.

A run's training set (:meth:`LabWorld.training_set`) has exactly CIFAR-10-LT's counts (12,406 points) and is
drawn from the run's seed; evaluation sets (:meth:`LabWorld.sample`) are fresh continuous draws.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..data import lt_class_counts, to_model_range
from ..longtail import class_groups
from ..toy2d import GaussianMixture

__all__ = ["LabWorld", "longtail_world", "picture_world", "quantize", "CIFAR10_LT_COUNTS", "DEFAULT_DIM"]

#: CIFAR-10-LT at imbalance 100 (n_max 5000, factor 0.01): the class counts of every lab training set.
CIFAR10_LT_COUNTS: List[int] = lt_class_counts(5000, 10, 0.01)
#: Dimension of the labs' world.
DEFAULT_DIM = 8
#: How far inside [-1, 1] every mean must sit, in standard deviations of that coordinate.
_BOX_MARGIN_SD = 5.0


def quantize(x: torch.Tensor) -> torch.Tensor:
    """float ``(N, d)`` in [-1, 1] -> uint8 ``(N, d)``: the 256 levels of 8-bit data (``round((x + 1) 127.5)``).

    Raises ``ValueError`` for values outside [-1, 1] (nothing is clipped silently).
    """
    if x.numel() and (x.min() < -1 or x.max() > 1):
        raise ValueError(f"quantize expects values in [-1, 1], got range [{float(x.min()):.3g}, {float(x.max()):.3g}]")
    return torch.round((x.double() + 1.0) * 127.5).to(torch.uint8)


@dataclass(frozen=True)
class LabWorld:
    """The ground truth of the labs: a labelled Gaussian mixture plus its class structure.

    Attributes:
        mixture: the exact density (one component per class; ``mixture.labels[k] == k``).
        counts: training points per class (CIFAR-10-LT's profile), ``(C,)``.
        pairs: ``[(head, tail), ...]``: which classes share a neighbourhood.
        groups: ``{"head": [...], "mid": [...], "tail": [...]}`` by frequency (3 / 4 / 3).
        spec: the arguments of :func:`longtail_world` that built it (part of every cache key).
    """

    mixture: GaussianMixture
    counts: Tuple[int, ...]
    pairs: Tuple[Tuple[int, int], ...]
    groups: Dict[str, List[int]]
    spec: Dict[str, object]

    @property
    def dim(self) -> int:
        return self.mixture.dim

    @property
    def num_classes(self) -> int:
        return self.mixture.num_classes

    def group_of_class(self) -> Dict[int, str]:
        """``{class: "head" | "mid" | "tail"}``."""
        return {c: g for g, cs in self.groups.items() for c in cs}

    def sample(self, n_per_class: int, generator: torch.Generator,
               classes: Optional[Sequence[int]] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Fresh continuous draws, ``n_per_class`` of each class (balanced): ``(x (N, d) float64, y (N,))``.

        Draws outside [-1, 1] (probability below 1e-9 per point) are redrawn.
        """
        classes = range(self.num_classes) if classes is None else classes
        xs, ys = [], []
        for c in classes:
            x = self._draw_in_box(int(c), n_per_class, generator)
            xs.append(x)
            ys.append(torch.full((n_per_class,), int(c), dtype=torch.long))
        return torch.cat(xs), torch.cat(ys)

    def _draw_in_box(self, c: int, n: int, generator: torch.Generator) -> torch.Tensor:
        x, _ = self.mixture.sample(n, generator=generator, y=c)
        bad = (x.abs() > 1).any(1)
        while bool(bad.any()):
            x[bad], _ = self.mixture.sample(int(bad.sum()), generator=generator, y=c)
            bad = (x.abs() > 1).any(1)
        return x

    def training_set(self, seed: int, counts: Optional[Sequence[int]] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """A training set drawn with ``seed``: ``(x uint8 (N, d), y long (N,))``, class ``c`` with ``counts[c]``
        points (default :data:`CIFAR10_LT_COUNTS`), in a seeded random order."""
        counts = self.counts if counts is None else tuple(int(n) for n in counts)
        if len(counts) != self.num_classes or min(counts) < 0:
            raise ValueError(f"counts must be {self.num_classes} non-negative integers, got {counts}")
        g = torch.Generator().manual_seed(10_007 * int(seed) + 17)
        xs, ys = [], []
        for c, n in enumerate(counts):
            if n:
                xs.append(self._draw_in_box(c, n, g))
                ys.append(torch.full((n,), c, dtype=torch.long))
        x, y = torch.cat(xs), torch.cat(ys)
        order = torch.randperm(x.shape[0], generator=g)
        return quantize(x[order]), y[order]

    @staticmethod
    def to_model_range(x_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, d)`` -> float32 in [-1, 1] (:func:`lt_diffusion.data.to_model_range`)."""
        return to_model_range(x_uint8)


def _rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))[None, :]


def longtail_world(dim: int = DEFAULT_DIM, separation: float = 2.5, radius: float = 0.35, lift: float = 0.3,
                   std_range: Tuple[float, float] = (0.04, 0.1), geometry_seed: int = 0,
                   counts: Sequence[int] = CIFAR10_LT_COUNTS) -> LabWorld:
    """Build the long-tailed lab world (module docstring).

    Args:
        dim: the data dimension d >= 2 (2: the picture world).
        separation: Mahalanobis distance between the two means of a pair.
        radius: radius of the circle of pair centres (first two coordinates).
        lift: when ``dim >= 7``, pair ``p``'s centre also sits at ``lift`` on coordinate ``2 + p``, which moves
            neighbouring pairs apart.
        std_range: the per-axis standard deviations of each pair's covariance are spread over this range.
        geometry_seed: draws the covariances' rotations and the pairs' directions; the world is the same for
            every run seed.
        counts: the class frequencies (default CIFAR-10-LT at imbalance 100); must be 10 classes, sorted from the
            most to the least frequent.
    """
    counts = tuple(int(n) for n in counts)
    C = len(counts)
    if C != 10 or list(counts) != sorted(counts, reverse=True) or counts[-1] < 1:
        raise ValueError(f"counts must be 10 positive counts from the most to the least frequent class, got {counts}")
    if dim < 2:
        raise ValueError(f"dim must be >= 2, got {dim}")
    rng = np.random.default_rng(geometry_seed)
    lo, hi = std_range
    means, covs = np.zeros((C, dim)), np.zeros((C, dim, dim))
    pairs = tuple((c, C - 1 - c) for c in range(C // 2))
    for p, (head, tail) in enumerate(pairs):
        angle = math.pi / 2 + 2 * math.pi * p / len(pairs)
        centre = np.zeros(dim)
        centre[:2] = radius * np.array([math.cos(angle), math.sin(angle)])
        if dim >= 2 + len(pairs):          # each pair also steps out along an axis of its own
            centre[2 + p] = lift
        stds = np.exp(np.linspace(math.log(hi), math.log(lo), dim))
        rot = _rotation(rng, dim)
        cov = rot @ np.diag(stds ** 2) @ rot.T
        # the pair's axis: a random direction in the plane of the circle
        phi = rng.uniform(0, 2 * math.pi)
        u = np.zeros(dim)
        u[:2] = [math.cos(phi), math.sin(phi)]
        # Mahalanobis distance between the two means = separation: Bayes error Phi(-separation / 2) at equal priors
        step = separation / math.sqrt(u @ np.linalg.solve(cov, u))
        for cls, sign in ((head, -1.0), (tail, 1.0)):
            means[cls] = centre + sign * 0.5 * step * u
            covs[cls] = cov
    margin = (1.0 - np.abs(means)) / np.sqrt(np.diagonal(covs, axis1=1, axis2=2))
    if margin.min() < _BOX_MARGIN_SD:
        raise ValueError(f"the world does not fit in [-1, 1]: a mean is only {margin.min():.2f} standard deviations "
                         f"from the edge (need {_BOX_MARGIN_SD}); lower radius or std_range")
    weights = np.asarray(counts, dtype=np.float64)
    mixture = GaussianMixture(weights, means, covs)
    spec = {"dim": dim, "separation": separation, "radius": radius, "lift": lift, "std_range": list(std_range),
            "geometry_seed": geometry_seed, "counts": list(counts)}
    return LabWorld(mixture=mixture, counts=counts, pairs=pairs, groups=class_groups(counts), spec=spec)


def picture_world() -> LabWorld:
    """The same construction in two dimensions, for figures: ``longtail_world(dim=2, radius=0.55,
    std_range=(0.03, 0.06))`` (wider circle, tighter classes, so the ten classes are visible in one plot)."""
    return longtail_world(dim=2, radius=0.55, lift=0.0, std_range=(0.03, 0.06))
