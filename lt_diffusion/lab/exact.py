"""Exact guidance signals of the lab world, in the engine's ``cond_fn`` signature.

The world's noisy class posterior p_t(y | x_t) is known in closed form, so its gradient -- what a noisy classifier
is trained to approximate (Dhariwal & Nichol 2021, Sec. 4) -- is too:

    grad_x log p_t(y | x_t) = grad_x log p_t(x_t | y) - grad_x log p_t(x_t).

:func:`exact_classifier_cond_fn` returns ``cond_fn(x_t, t, y=...) -> scale * that`` for
:meth:`lt_diffusion.diffusion.GaussianDiffusion.p_sample_loop`, the reference beside a trained classifier;
:func:`classifier_gradient_agreement` measures how close a trained classifier's gradient is to it.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .denoiser import deinterleave
from .world import LabWorld

__all__ = ["exact_classifier_cond_fn", "exact_class_log_posterior_grad", "classifier_gradient_agreement"]


def exact_class_log_posterior_grad(world: LabWorld, x_t: torch.Tensor, alpha_bar: torch.Tensor,
                                   y: torch.Tensor) -> torch.Tensor:
    """grad_x log p_t(y | x_t) ``(B, d)`` float64 with the world's (long-tailed) class prior; alpha_bar ``(B,)``."""
    return world.mixture.score(x_t, alpha_bar, y) - world.mixture.score(x_t, alpha_bar)


def exact_classifier_cond_fn(world: LabWorld, alphas_cumprod: np.ndarray, scale: float = 1.0) -> Callable:
    """``cond_fn(x_t, t, y=..., **kw) -> scale * grad_x log p_t(y | x_t)`` in x_t's dtype.

    ``alphas_cumprod``: the *original* schedule (``cond_fn`` receives original-scale long timesteps).
    """
    abar = torch.as_tensor(np.asarray(alphas_cumprod, dtype=np.float64))

    def cond_fn(x: torch.Tensor, t: torch.Tensor, y=None, **kwargs) -> torch.Tensor:
        if y is None:
            raise ValueError("exact classifier guidance needs target labels y")
        grad = exact_class_log_posterior_grad(world, x, abar[t.long().cpu()], y)
        return (scale * grad).to(x.dtype)

    return cond_fn


@torch.no_grad()
def classifier_gradient_agreement(classifier: Callable, world: LabWorld, diffusion, members: int,
                                  t_values: Sequence[int], n: int, seed: int = 0) -> torch.Tensor:
    """Cosine similarity between a trained noisy classifier's grad_x log p_phi(y | x_t) and the exact one,
    averaged over ``n`` points per member with their true labels, ``(members, len(t_values))``."""
    g = torch.Generator().manual_seed(int(seed))
    out = torch.empty(members, len(t_values), dtype=torch.float64)
    for j, t in enumerate(t_values):
        x0, y = world.mixture.sample(members * n, generator=g)
        tt = torch.full((x0.shape[0],), int(t), dtype=torch.long)
        x_t = diffusion.q_sample(x0, tt, noise=torch.randn(x0.shape, generator=g, dtype=torch.float64))
        exact = exact_class_log_posterior_grad(world, x_t, torch.full((x0.shape[0],),
                                                                      float(diffusion.alphas_cumprod[int(t)])), y)
        with torch.enable_grad():
            x_in = x_t.float().requires_grad_(True)
            logp = F.log_softmax(classifier(x_in, tt).float(), dim=-1).gather(1, y[:, None]).sum()
            learned = torch.autograd.grad(logp, x_in)[0].double()
        cos = F.cosine_similarity(learned, exact, dim=1, eps=1e-12)
        out[:, j] = deinterleave(cos, members).mean(1)
    return out
