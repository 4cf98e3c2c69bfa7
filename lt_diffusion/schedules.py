"""Noise schedules (beta_t) and timestep respacing.

Chapters: DDPM / Improved DDPM (linear vs cosine schedule), every chapter that samples with fewer steps.

All schedules are float64 numpy arrays of shape ``(T,)``; index ``t = 0`` is the least noisy step.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, List, Sequence, Set, Union

import numpy as np

NAMED_SCHEDULES = ("linear", "cosine")


def cosine_alpha_bar(u: float, s: float = 0.008) -> float:
    """The cosine schedule's signal level f(u) = cos²((u + s)/(1 + s) · π/2), u = t/T ∈ [0, 1].

    Eq. 17, Nichol & Dhariwal 2021 (ᾱ_t = f(t)/f(0); the division by f(0) cancels in the beta ratios below).
    """
    return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2


def betas_for_alpha_bar(num_diffusion_timesteps: int, alpha_bar: Callable[[float], float],
                        max_beta: float = 0.999) -> np.ndarray:
    """Discretise a continuous signal curve ``alpha_bar(u)``, u ∈ [0, 1], into ``T`` betas.

    beta_i = min(1 - alpha_bar((i+1)/T) / alpha_bar(i/T), max_beta), so the product of (1 - beta) telescopes to
    alpha_bar(t/T) / alpha_bar(0) wherever the clip is inactive. The clip at 0.999 avoids the singularity of the
    cosine curve at u = 1 (Nichol & Dhariwal 2021, Sec. 3.2).

    Returns: betas ``(T,)`` float64.
    """
    if num_diffusion_timesteps < 1:
        raise ValueError(f"num_diffusion_timesteps must be >= 1, got {num_diffusion_timesteps}")
    T = num_diffusion_timesteps
    betas = [min(1.0 - alpha_bar((i + 1) / T) / alpha_bar(i / T), max_beta) for i in range(T)]
    return np.asarray(betas, dtype=np.float64)


def get_named_beta_schedule(schedule_name: str, num_diffusion_timesteps: int) -> np.ndarray:
    """Betas ``(T,)`` float64 for a named schedule.

    - ``"linear"``: Ho et al. 2020's linspace(1e-4, 0.02) for T = 1000, rescaled by 1000/T so that other T keep
      the same total noise (as improved-diffusion does).
    - ``"cosine"``: Eq. 17, Nichol & Dhariwal 2021, s = 0.008, beta clipped at 0.999.
    """
    if num_diffusion_timesteps < 1:
        raise ValueError(f"num_diffusion_timesteps must be >= 1, got {num_diffusion_timesteps}")
    if schedule_name == "linear":
        scale = 1000.0 / num_diffusion_timesteps
        return np.linspace(scale * 1e-4, scale * 0.02, num_diffusion_timesteps, dtype=np.float64)
    if schedule_name == "cosine":
        return betas_for_alpha_bar(num_diffusion_timesteps, cosine_alpha_bar)
    raise ValueError(f"unknown beta schedule {schedule_name!r}; choose one of {list(NAMED_SCHEDULES)}")


def space_timesteps(num_timesteps: int, section_counts: Union[str, int, Sequence[int]]) -> Set[int]:
    """Choose which of the original ``num_timesteps`` steps to keep for a shorter sampler.

    ``section_counts`` may be
    - ``"ddimN"``: the uniform integer stride that gives exactly N steps (``range(0, T, stride)``), as DDIM does;
    - ``"10,10,30"`` (or a list of ints): split [0, T) into equal sections and take that many steps from each,
      evenly strided with fractional stride (size - 1)/(count - 1), rounded, so each section keeps its first and last
      step; a single ``"100"`` or ``100`` is one section covering the whole range.

    Returns the set of kept original indices (as improved-diffusion's ``respace.py``); feed it to
    :class:`lt_diffusion.diffusion.SpacedDiffusion`.
    """
    if isinstance(section_counts, str):
        if section_counts.startswith("ddim"):
            try:
                desired = int(section_counts[len("ddim"):])
            except ValueError:
                raise ValueError(f"cannot parse {section_counts!r}; expected 'ddimN' such as 'ddim50'") from None
            for stride in range(1, num_timesteps + 1):
                if len(range(0, num_timesteps, stride)) == desired:
                    return set(range(0, num_timesteps, stride))
            raise ValueError(f"no integer stride gives exactly {desired} steps out of {num_timesteps}; "
                             f"use a section string such as '{desired}' instead")
        try:
            counts: List[int] = [int(c) for c in section_counts.split(",")]
        except ValueError:
            raise ValueError(f"cannot parse {section_counts!r}; expected 'ddimN' or comma-separated "
                             f"integers such as '10,10,30'") from None
    elif isinstance(section_counts, int):
        counts = [section_counts]
    else:
        counts = [int(c) for c in section_counts]
    if not counts or any(c < 1 for c in counts):
        raise ValueError(f"section counts must be positive integers, got {counts}")

    base, extra = divmod(num_timesteps, len(counts))
    kept: List[int] = []
    start = 0
    for i, count in enumerate(counts):
        size = base + (1 if i < extra else 0)
        if count > size:
            raise ValueError(f"cannot take {count} steps from a section of {size} steps "
                             f"(T={num_timesteps}, sections={counts})")
        stride = 1.0 if count <= 1 else (size - 1) / (count - 1)
        # Accumulate the fractional index (rather than k * stride) so that the kept set is bit-for-bit the one
        # improved-diffusion's respace.py picks; the two differ by one step in rare cases (e.g. T=2000, 25 steps).
        position = 0.0
        for _ in range(count):
            kept.append(start + round(position))
            position += stride
        start += size
    return set(kept)


def _as_sorted_steps(use_timesteps: Iterable[int], num_timesteps: int) -> List[int]:
    steps = sorted({int(s) for s in use_timesteps})
    if not steps:
        raise ValueError("use_timesteps is empty")
    if steps[0] < 0 or steps[-1] >= num_timesteps:
        raise ValueError(f"use_timesteps must lie in [0, {num_timesteps}), got min {steps[0]}, max {steps[-1]}")
    return steps


def skip_prefix_timesteps(num_timesteps: int, fraction: float, steps: int) -> Set[int]:
    """Kept steps for a sampler that skips the first ``fraction`` of the *reverse* process.

    The reverse chain starts from x ~ N(0, I) at ``t_start = floor((1 - fraction) T)`` instead of ``T`` and runs
    ``steps`` evenly strided steps over ``[0, t_start)`` (``space_timesteps(t_start, steps)``; respacing keeps ᾱ on
    the kept steps). With ``fraction = 0`` this is exactly ``space_timesteps(T, steps)``. It measures how much the
    noisiest part of a schedule contributes to samples (Nichol & Dhariwal 2021, Sec. 3.2, their Fig. 4: a linear
    schedule loses little FID when up to 20% of the reverse process is skipped).

    Returns the set of kept original indices (feed it to ``use_timesteps``).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must lie in [0, 1), got {fraction}")
    # The small offset keeps e.g. (1 - 0.3) * 1000 = 700.0000000000001 and 699.9999999999999 both at 700.
    t_start = int(math.floor((1.0 - fraction) * num_timesteps + 1e-9))
    if steps < 1 or steps > t_start:
        raise ValueError(f"cannot run {steps} steps over the {t_start} steps left after skipping {fraction:.0%} of "
                         f"T={num_timesteps}; use 1 <= steps <= {t_start} or a smaller fraction")
    return space_timesteps(t_start, steps)
