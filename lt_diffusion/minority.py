"""Minority score and ordinal minority levels (Um, Lee & Ye, ICLR 2024, "Don't Play Favorites"; Ch. 07).

A denoiser trained with the ε-MSE learns the posterior mean x̂_0(x_t) = E[x_0 | x_t] (Tweedie's formula), an
average over every image that could have produced x_t. For an image from a dense (majority) region that
average looks like the image; for a rare image it is pulled towards its common neighbours. The paper turns
this into a per-image score,

    l(x_0) = E_{ε} [ d(x_0, x̂_0(x_t)) ],   x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε,  t fixed,

with d = LPIPS (VGG) and 5 noise draws at the original step t ≈ 605 of 1000 (the official ``construct_ms_dataset.py``), and sorts the
training set into L ordinal **levels** by quantiles of l (level L−1 = the most unusual). A noise-conditional
classifier p_ψ(l̃ | x_t, t) on those levels then steers sampling, exactly like ADM's classifier guidance
(:func:`lt_diffusion.guidance.classifier_cond_fn` with ``labels=level``).

Here d defaults to LPIPS with the offline **AlexNet** backbone (:mod:`lt_diffusion.metrics.lpips`, at 64×64);
the paper's VGG backbone is not available offline. Any ``distance(a, b) -> (B,)`` can be passed instead
(the 2-D toy of Ch. 07 uses the squared Euclidean distance).
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import numpy as np
import torch

__all__ = ["official_perturb_timestep", "tweedie_reconstruction", "minority_score", "level_thresholds",
           "minority_levels", "lpips_distance_fn"]


def official_perturb_timestep(num_timesteps: int = 1000, respacing: int = 100, index: int = 60) -> int:
    """The original-scale t the official code perturbs to: index ``60`` of a ``"100"`` respacing.

    ``construct_ms_dataset.py`` forces ``timestep_respacing="100"`` and uses ``perturb_t=60``; with T = 1000
    that is original step 605. The fraction t/T, not ᾱ_t, carries over between schedules.
    """
    from .schedules import space_timesteps

    kept = sorted(space_timesteps(num_timesteps, str(respacing)))
    return int(kept[index])


def lpips_distance_fn(device=None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``d(a, b) -> (B,)``: LPIPS (offline AlexNet, :func:`lt_diffusion.metrics.lpips_distance`) on ``device``.

    Inputs in [-1, 1]; x̂_0 is clipped to that range by the sampler convention (``clip_denoised=True``).
    """
    from .metrics.lpips import lpips_distance

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return lpips_distance(a.float().clamp(-1, 1), b.float().clamp(-1, 1), value_range=(-1, 1),
                              device=device or a.device, batch_size=max(1, a.shape[0])).to(a.device)

    return distance


@torch.no_grad()
def tweedie_reconstruction(model: Callable, diffusion, x_start: torch.Tensor, t: int,
                           noise: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None,
                           clip_denoised: bool = True, model_kwargs: Optional[dict] = None
                           ) -> Tuple[torch.Tensor, torch.Tensor]:
    """One-shot posterior-mean reconstruction: x_t = q_sample(x_0, t), then x̂_0 = ``pred_xstart`` of the model
    (Tweedie's formula, chapter 07, Eq. {eq}`mg-tweedie`).

    x_start: (B, C, H, W) in [-1, 1] (or (B, d) for a toy); t: an index of ``diffusion``. Returns ``(x_t, x̂_0)``.
    This is the official code's path (``q_sample`` then ``p_mean_variance(...)["pred_xstart"]``).
    """
    tt = torch.full((x_start.shape[0],), int(t), dtype=torch.long, device=x_start.device)
    x_t = diffusion.q_sample(x_start, tt, noise=noise, generator=generator)
    out = diffusion.p_mean_variance(model, x_t, tt, clip_denoised=clip_denoised, model_kwargs=model_kwargs)
    return x_t, out["pred_xstart"]


@torch.no_grad()
def minority_score(model: Callable, diffusion, images: torch.Tensor, t: int, *, num_draws: int = 5,
                   batch_size: int = 500, distance: Optional[Callable] = None, device=None,
                   clip_denoised: bool = True, seed: int = 0, bf16: bool = True) -> torch.Tensor:
    """Minority score l(x_0) = mean over ``num_draws`` noise draws of d(x_0, x̂_0(x_t)) at step ``t`` (chapter 07,
    Eq. {eq}`mg-score`).

    Args:
        model: the (EMA) denoiser, ``model(x_t, t, **kw)``.
        diffusion: the diffusion the model was trained with; ``t`` is one of its indices.
        images: uint8 (N, C, H, W) or float in [-1, 1] ((N, d) for toys); processed in batches on ``device``.
        num_draws: independent ε per image (official: 5).
        distance: ``d(a, b) -> (B,)``; default LPIPS with the offline AlexNet (:func:`lpips_distance_fn`).
        clip_denoised: clamp x̂_0 to [-1, 1] (the official default).
        seed: the noise; batch i, draw k uses its own generator seeded with (seed, i, k), so scores do not
            depend on ``batch_size`` beyond the split points.
        bf16: run the model under bfloat16 autocast on CUDA.
    Returns: (N,) float32 on the CPU; larger = the model reconstructs the image worse = more "minority".
    """
    from .data import to_model_range

    if num_draws < 1:
        raise ValueError(f"num_draws must be >= 1, got {num_draws}")
    if not 0 <= int(t) < diffusion.num_timesteps:
        raise ValueError(f"t={t} outside [0, {diffusion.num_timesteps}) of this diffusion")
    if device is None:
        p = next(model.parameters(), None) if hasattr(model, "parameters") else None
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    distance = distance or lpips_distance_fn(device)
    use_bf16 = bf16 and device.type == "cuda"
    scores = []
    for i, start in enumerate(range(0, images.shape[0], batch_size)):
        xb = images[start:start + batch_size].to(device)
        x0 = to_model_range(xb) if xb.dtype == torch.uint8 else xb.float()
        total = torch.zeros(x0.shape[0], device=device)
        for k in range(num_draws):
            g = torch.Generator(device=device).manual_seed(int(seed) * 1_000_003 + i * 101 + k)
            noise = torch.randn(x0.shape, generator=g, device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                _, x0_hat = tweedie_reconstruction(model, diffusion, x0, t, noise=noise, clip_denoised=clip_denoised)
            total += distance(x0, x0_hat.float()).float().to(device)
        scores.append((total / num_draws).cpu())
    return torch.cat(scores)


def level_thresholds(scores, num_levels: int) -> torch.Tensor:
    """Quantile thresholds q_j = quantile(scores, (j + 1) / L), j = 0..L−1 (as ``construct_ms_dataset.py``).

    q_{L−1} is the maximum. Returns (L,) float64 (numpy's default linear interpolation).
    """
    if num_levels < 1:
        raise ValueError(f"num_levels must be >= 1, got {num_levels}")
    s = np.asarray(torch.as_tensor(scores).double().cpu().numpy(), dtype=np.float64).reshape(-1)
    if s.size == 0:
        raise ValueError("level_thresholds needs at least one score")
    qs = np.quantile(s, (np.arange(num_levels) + 1) / num_levels)
    return torch.from_numpy(qs)


def minority_levels(scores, num_levels: int, thresholds: Optional[torch.Tensor] = None
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Ordinal minority levels: the label j with q_{j−1} < l ≤ q_j (level L−1 = the rarest images).

    Args:
        scores: (N,) minority scores. num_levels: L (official default 100).
        thresholds: reuse given thresholds (e.g. to level new images on the training set's scale);
            default :func:`level_thresholds` of ``scores``.
    Returns: ``(levels (N,) int64, thresholds (L,) float64)``; scores above q_{L−1} get level L−1.
    """
    s = torch.as_tensor(scores).double().cpu().reshape(-1)
    q = level_thresholds(s, num_levels) if thresholds is None else torch.as_tensor(thresholds).double().cpu()
    levels = torch.searchsorted(q, s, right=False).clamp_(max=len(q) - 1)
    return levels.long(), q
