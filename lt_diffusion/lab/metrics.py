"""Metrics with a known truth for the lab world (:mod:`lt_diffusion.lab.world`).

Because the data density is a known Gaussian mixture, the labs measure quality against the truth itself
instead of against a learned critic:

* :func:`eps_error` -- the denoiser's ε against the exact ε* = -sqrt(1 - abar_t) grad log p_t(x_t | y) of the
  noised mixture, at chosen timesteps (a denoiser trained with the ε-MSE estimates exactly ε*; Vincent 2011).
* :func:`class_fidelity` -- the share of samples generated for class y that the exact equal-prior Bayes
  classifier, argmax_c p(x | c), assigns to y (true samples of the lab world score about 0.92, not 1:
  the two classes of a pair overlap).
* :func:`log_density` -- the exact log p(x) (or log p(x | y)) of samples: how far into the data's mass they fall.
* :func:`sliced_wasserstein` -- the sliced 2-Wasserstein distance to fresh true samples (``projections``
  random unit directions, fixed by ``seed``; each 1-D W2 from sorted projections of equal-size sets): a
  distance between whole distributions, so it sees both lost modes and spread-out samples.
* :func:`per_class_prdc` -- precision / recall / coverage per class against fresh true samples of that
  class (:func:`lt_diffusion.metrics.prdc`, k = 5 as CBDM's evaluation).
* :func:`nll_bits_per_dim` -- the engine's ``calc_bpd_loop`` on quantized data, beside the exact NLL of the
  quantized world (:func:`exact_nll_bits_per_dim`).
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Sequence

import torch

from .denoiser import deinterleave, interleave
from .world import LabWorld

__all__ = ["eps_error", "class_fidelity", "log_density", "sliced_wasserstein", "per_class_prdc",
           "nll_bits_per_dim", "exact_nll_bits_per_dim", "group_mean"]


@torch.no_grad()
def eps_error(model: Callable, diffusion, world: LabWorld, members: int, t_values: Sequence[int], n: int,
              *, conditional: bool = True, seed: int = 0) -> torch.Tensor:
    """Mean squared error per dimension between the model's ε and the exact ε*, ``(members, len(t_values))``.

    For each t: ``n`` fresh points per member from the world (classes with the world's frequencies, the
    distribution the model was trained on), x_t = q_sample(x_0, t), both predictions at the same (x_t, t, y).
    ``conditional``: feed the labels (compare with ε*(x_t | y)); else the null label (compare with ε*(x_t)); a
    network without a label input is always compared with ε*(x_t) (pass ``conditional=False``).
    ``t_values`` index ``diffusion`` (unspaced); only the ε channels of a learned-variance output are compared.
    """
    g = torch.Generator().manual_seed(int(seed))
    out = torch.empty(members, len(t_values), dtype=torch.float64)
    null = world.num_classes
    for j, t in enumerate(t_values):
        x0, y = world.mixture.sample(members * n, generator=g)
        noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        tt = torch.full((x0.shape[0],), int(t), dtype=torch.long)
        x_t = diffusion.q_sample(x0, tt, noise=noise)
        abar = float(diffusion.alphas_cumprod[int(t)])
        y_in = y if conditional else torch.full_like(y, null)
        eps_true = world.mixture.eps(x_t, abar, y_in)
        kwargs = {} if getattr(model, "num_classes", None) is None else {"y": y_in}   # a network without labels
        eps_model = diffusion._wrap_model(model)(x_t.float(), tt, **kwargs).double()[:, :world.dim]
        err = ((eps_model - eps_true) ** 2).mean(1)
        out[:, j] = deinterleave(err, members).mean(1)
    return out


def class_fidelity(world: LabWorld, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of samples ``x (n, d)`` asked for labels ``y (n,)`` that argmax_c p(x | c) puts in their class."""
    ll = world.mixture.class_log_likelihoods(x.double())
    return float((ll.argmax(1) == y.cpu()).double().mean())


def log_density(world: LabWorld, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> float:
    """Mean exact log p(x) (or log p(x | y)) of samples ``x (n, d)``, in nats."""
    return float(world.mixture.log_prob(x.double(), 1.0, y).mean())


def sliced_wasserstein(x: torch.Tensor, ref: torch.Tensor, projections: int = 256, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance between two equal-size point sets ``(n, d)``.

    SW2 = sqrt(mean over ``projections`` random unit directions theta of W2(theta.x, theta.ref)^2), each 1-D W2^2
    the mean squared difference of the sorted projections.
    """
    if x.shape != ref.shape:
        raise ValueError(f"sliced_wasserstein needs equal-size sets, got {tuple(x.shape)} and {tuple(ref.shape)}")
    g = torch.Generator().manual_seed(int(seed))
    theta = torch.randn(x.shape[1], projections, generator=g, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px = torch.sort(x.double() @ theta, dim=0).values
    pr = torch.sort(ref.double() @ theta, dim=0).values
    return float(((px - pr) ** 2).mean().sqrt())


def per_class_prdc(world: LabWorld, x: torch.Tensor, y: torch.Tensor, ref_x: torch.Tensor, ref_y: torch.Tensor,
                   k: int = 5) -> Dict[int, Dict[str, float]]:
    """``{class: {"precision", "recall", "density", "coverage"}}`` of samples against true samples per class."""
    from ..metrics.prdc import prdc

    out = {}
    for c in range(world.num_classes):
        gx, rx = x[y == c], ref_x[ref_y == c]
        if gx.shape[0] <= k or rx.shape[0] <= k:
            raise ValueError(f"class {c}: need more than k={k} samples on both sides, got {gx.shape[0]}, "
                             f"{rx.shape[0]}")
        out[c] = prdc(rx.double(), gx.double(), k)
    return out


def group_mean(per_class: Dict[int, float], world: LabWorld, group: str) -> float:
    """Mean of a per-class value over the classes of ``group`` (``"head"``, ``"mid"``, ``"tail"``)."""
    return float(sum(per_class[c] for c in world.groups[group]) / len(world.groups[group]))


def exact_nll_bits_per_dim(world: LabWorld, x_uint8: torch.Tensor) -> torch.Tensor:
    """The world's NLL of quantized points in bits/dim, ``(N,)``: -log2 P(bin) / d with P(bin) = p(x) (2/255)^d.

    The bins (width 2/255) are small against the world's smallest standard deviation (0.02), so the midpoint
    rule is accurate to about 0.01 bits/dim.
    """
    x = world.to_model_range(x_uint8).double()
    nats = -world.mixture.log_prob(x) - world.dim * math.log(2.0 / 255.0)
    return nats / (world.dim * math.log(2.0))


@torch.no_grad()
def nll_bits_per_dim(model: Callable, diffusion, x_uint8: torch.Tensor, members: int, seed: int = 0) -> torch.Tensor:
    """The engine's NLL bound (``calc_bpd_loop``: every L_t plus the prior) in bits/dim, ``(members,)`` means.

    ``x_uint8``: ``(n, d)`` points scored by every member, or ``(members, n, d)``: member m scores its own set.
    Conditional networks are given the null label (the unconditional NLL).
    """
    if x_uint8.ndim == 2:
        x_uint8 = x_uint8[None].expand(members, -1, -1)
    x = interleave(x_uint8).float().div(127.5).sub(1.0)
    kwargs = {}
    if getattr(model, "num_classes", None) is not None:
        kwargs = {"y": torch.full((x.shape[0],), model.num_classes, dtype=torch.long)}
    g = torch.Generator().manual_seed(int(seed))
    bpd = diffusion.calc_bpd_loop(model, x, model_kwargs=kwargs, generator=g)["total_bpd"]
    return deinterleave(bpd, members).mean(1)
