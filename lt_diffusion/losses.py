"""Probability pieces of the variational bound: Gaussian KL, the discretised decoder likelihood, per-sample means.

Chapter: DDPM / Improved DDPM (L_vlb, L_hybrid, bits per dimension).
All functions work element-wise and broadcast; results keep the input's shape unless stated.
"""
from __future__ import annotations

import math
from typing import Union

import torch

Number = Union[float, torch.Tensor]

# Half-width of one of the 256 pixel bins of data scaled to [-1, 1] (Ho et al. 2020, Eq. 13).
BIN_HALF_WIDTH = 1.0 / 255.0
# Data values beyond ±0.999 are the extreme pixels 0 and 255: their bins extend to ∓infinity.
EDGE = 0.999


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """Mean over every dimension but the first: ``(B, ...) -> (B,)``."""
    return x.mean(dim=tuple(range(1, x.ndim))) if x.ndim > 1 else x


def normal_kl(mean1: Number, logvar1: Number, mean2: Number, logvar2: Number) -> torch.Tensor:
    """KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))) element-wise, in nats.

    KL = ½ (log σ₂² − log σ₁² + σ₁²/σ₂² + (μ₁ − μ₂)²/σ₂² − 1). At least one argument must be a tensor;
    floats broadcast against it.
    """
    ref = next((a for a in (mean1, logvar1, mean2, logvar2) if isinstance(a, torch.Tensor)), None)
    if ref is None:
        raise TypeError("normal_kl needs at least one tensor argument")
    logvar1, logvar2 = (a if isinstance(a, torch.Tensor) else torch.tensor(a, dtype=ref.dtype, device=ref.device)
                        for a in (logvar1, logvar2))
    return 0.5 * (logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2) - 1.0)


def approx_standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    """Φ(x) ≈ ½(1 + tanh(√(2/π)(x + 0.044715 x³))): the tanh approximation used by the official decoder."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def discretized_gaussian_log_likelihood(x: torch.Tensor, *, means: torch.Tensor,
                                        log_scales: torch.Tensor) -> torch.Tensor:
    """Log-probability (nats) of data ``x`` under a Gaussian discretised into 256 bins on [-1, 1].

    The decoder L_0 of Ho et al. 2020, Eq. 13: the mass of N(means, exp(log_scales)²) inside the bin
    [x − 1/255, x + 1/255]; the bins of the extreme values (|x| > 0.999) extend to ±∞ so the 256 masses sum to 1.

    Args:
        x: ``(B, C, H, W)`` data, uint8 values rescaled to [-1, 1].
        means, log_scales: broadcastable to ``x``; ``log_scales`` is log σ (half the log-variance).
    Returns: ``(B, C, H, W)`` log-likelihoods in nats.
    """
    if x.shape != torch.broadcast_shapes(x.shape, means.shape, log_scales.shape):
        raise ValueError(f"means {tuple(means.shape)} and log_scales {tuple(log_scales.shape)} must broadcast "
                         f"to x {tuple(x.shape)}")
    centered = x - means
    inv_std = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_std * (centered + BIN_HALF_WIDTH))
    cdf_min = approx_standard_normal_cdf(inv_std * (centered - BIN_HALF_WIDTH))
    tiny = 1e-12
    log_cdf_plus = torch.log(cdf_plus.clamp(min=tiny))             # lowest bin: P(X < x + 1/255)
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=tiny))  # highest bin: P(X > x - 1/255)
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=tiny))     # interior bins
    return torch.where(x < -EDGE, log_cdf_plus,
                       torch.where(x > EDGE, log_one_minus_cdf_min, log_delta))
