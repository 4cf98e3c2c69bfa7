"""P2 weighting (Choi et al., CVPR 2022): a per-timestep weight on the ε-MSE, plugged into ``loss_weight``.

Chapter: P2 weighting. The whole paper on top of the engine is :class:`P2Weight`:

    weight_t = 1 / (k + SNR_t)^γ,   SNR_t = ᾱ_t / (1 − ᾱ_t)        (Choi et al. 2022)

γ = 0 gives weight 1 (the DDPM baseline). As in the official code the weights are not normalised (issue #13 of
jychoi118/P2-weighting): with γ = 1, k = 1 on the linear T = 1000 schedule the low-noise steps get ~1e-4.
"""
from __future__ import annotations

from typing import Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]


def snr(alphas_cumprod: ArrayLike) -> ArrayLike:
    """Signal-to-noise ratio SNR_t = ᾱ_t / (1 − ᾱ_t), elementwise, same type and shape as the input ``(T,)``."""
    return alphas_cumprod / (1.0 - alphas_cumprod)


def p2_lambda_t(betas: ArrayLike) -> ArrayLike:
    """The VLB's weight on the ε-MSE relative to L_simple, λ_t = (1 − β_t)(1 − ᾱ_t)/β_t (Choi et al. 2022; chapter 05,
    Eq. {eq}`p2-lambda`).

    L_vlb's term t is ‖ε − ε_θ‖² β_t² / (2σ_t² α_t (1 − ᾱ_t)) (Ho et al. 2020, Eq. 12); with σ_t² = β_t,
    L_simple drops that factor, i.e. reweights the VLB by λ_t ∝ 1/factor. P2 then multiplies λ_t by 1/(k + SNR_t)^γ. ``betas``: ``(T,)``.
    """
    if isinstance(betas, torch.Tensor):
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    else:
        alphas_cumprod = np.cumprod(1.0 - np.asarray(betas, dtype=np.float64))
    return (1.0 - betas) * (1.0 - alphas_cumprod) / betas


class P2Weight:
    """``loss_weight(t, diffusion) -> (B,)`` = 1/(k + SNR_t)^γ for the ε-MSE term (chapter 05, Eq. {eq}`p2-weight`).

    Args:
        gamma: γ ≥ 0, how strongly to down-weight the high-SNR (low-noise) steps; 0 = baseline, the paper uses
            0.5 and 1.
        k: k > 0, keeps the weight finite as SNR → 0 (the paper's k = 1).
    """

    def __init__(self, gamma: float, k: float = 1.0):
        if gamma < 0:
            raise ValueError(f"P2 gamma must be >= 0, got {gamma}")
        if k <= 0:
            raise ValueError(f"P2 k must be > 0, got {k}")
        self.gamma = float(gamma)
        self.k = float(k)
        self._tables = {}

    def weights(self, diffusion) -> np.ndarray:
        """The weight of every step, ``(T,)`` float64, for plots against t or SNR."""
        return 1.0 / (self.k + snr(diffusion.alphas_cumprod)) ** self.gamma

    def __call__(self, t: torch.Tensor, diffusion) -> torch.Tensor:
        """``t``: long ``(B,)`` indices of ``diffusion`` -> float32 ``(B,)`` weights on t's device."""
        # One device copy per (schedule, device): no host-to-device copy per training step.
        cached = self._tables.get(t.device)
        if cached is None or cached[0] is not diffusion.alphas_cumprod:
            cached = (diffusion.alphas_cumprod, torch.as_tensor(self.weights(diffusion), device=t.device))
            self._tables[t.device] = cached
        return cached[1][t.long()].float()

    def __repr__(self) -> str:
        return f"P2Weight(gamma={self.gamma}, k={self.k})"
