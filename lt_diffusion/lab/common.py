"""What the chapter labs share: the world, the base recipe, the shared baseline model, and run bookkeeping.

Design choices every lab inherits (each lab's docstring states its own on top):

* **World**: :func:`lt_diffusion.lab.world.longtail_world` with its defaults (8 dimensions, 10 classes with
  CIFAR-10-LT's frequencies at imbalance 100, tail classes paired with head classes).
* **Diffusion**: T = 1000, linear schedule, ε-prediction, timesteps rescaled to [0, 1000) for the network
  (improved-diffusion's defaults); samples are drawn with DDIM (η = 0, Song et al. 2021) over 50 respaced
  steps (:func:`draw`) unless a lab sweeps the sampler (with 50 ancestral steps the samples come out too
  narrow with σ² = β̃_t and too wide with σ² = β_t: their recall and precision against true samples drop).
* **Denoiser**: :class:`~lt_diffusion.lab.denoiser.EnsembleMLP`, 3 hidden layers of 128 SiLU units
  (about 40k parameters per member), a 32-d time embedding and a 32-d label table with a null row; trained
  2000 steps at batch 256 per seed with AdamW (lr 4e-3, 100 warm-up steps, cosine decay to 5%), EMA 0.999 with
  warm-up, label dropout 0.1 (so the same model serves conditional and CFG sampling).
* **Seeds**: three (0, 1, 2) by default; seed s draws the training set, the initial weights and the batches of
  member s, and its reference set of fresh true samples; the sampling noise of all members comes from one
  generator per call. Arms share seeds (common random numbers).
* **CPU, one thread**: labs run with ``torch.set_num_threads(1)``, so a run is the same on any machine with the
  same torch build and does not fight other processes for cores.
"""
from __future__ import annotations

import contextlib
import time
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch

from .engine import LabRecipe, TrainedEnsemble, make_diffusion, sample, train_denoisers
from .world import LabWorld, longtail_world

__all__ = ["DEFAULT_SEEDS", "BASE_RECIPE", "UNCOND_RECIPE", "SAMPLE_STEPS", "lab_world", "baseline", "sampling_diffusion", "draw",
           "single_thread", "cpu_seconds", "Timer", "lab_provenance", "t_grid"]

DEFAULT_SEEDS = (0, 1, 2)
BASE_RECIPE = LabRecipe(sigma_small=True, steps=2000, batch_size=256, lr=4e-3)
#: The same network and budget without labels (chapters 02 and 07).
UNCOND_RECIPE = BASE_RECIPE.replace(conditional=False, p_uncond=0.0)
SAMPLE_STEPS = 50
_WORLD: Optional[LabWorld] = None


def lab_world() -> LabWorld:
    """The labs' world (built once per process)."""
    global _WORLD
    if _WORLD is None:
        _WORLD = longtail_world()
    return _WORLD


def baseline(seeds: Sequence[int]) -> TrainedEnsemble:
    """The shared baseline: :data:`BASE_RECIPE` on the long-tailed training sets (cached: chapters 01, 03, 04,
    06, 07 and the benchmark start from the same networks)."""
    return train_denoisers(BASE_RECIPE, lab_world(), seeds)


def sampling_diffusion(recipe: LabRecipe, steps: int = SAMPLE_STEPS, ddim: bool = False):
    """The recipe's diffusion respaced to ``steps`` steps (``"ddimN"`` spacing for DDIM)."""
    return make_diffusion(recipe, f"ddim{steps}" if ddim else str(steps), class_counts=lab_world().counts)


def draw(model, recipe: LabRecipe, members: int, labels=None, *, n: Optional[int] = None, cond_fn=None,
         model_kwargs=None, seed: int = 0, steps: int = SAMPLE_STEPS, method: str = "ddim"):
    """The labs' default sampler: :func:`lt_diffusion.lab.engine.sample` with ``recipe``'s diffusion respaced to
    ``steps`` (DDIM, η = 0, unless ``method="ancestral"``). ``labels``: ``(n,)`` (or ``(members, n)``);
    ``model_kwargs`` ``(members, n, ...)``; ``n`` samples per member when neither is given. Returns
    ``(members, n, d)``."""
    if labels is not None:
        n = labels.shape[-1]
    elif model_kwargs:
        n = next(iter(model_kwargs.values())).shape[1]
    if n is None:
        raise ValueError("draw needs labels, model_kwargs or n")
    d = sampling_diffusion(recipe, steps, ddim=method == "ddim")
    return sample(model, d, members, n, lab_world().dim, labels=labels, model_kwargs=model_kwargs, cond_fn=cond_fn,
                  method=method, seed=seed)


def t_grid(num_timesteps: int = 1000, n: int = 12) -> List[int]:
    """``n`` timesteps spread evenly on a log scale from 0 to T-1 (for error-vs-t curves)."""
    grid = np.unique(np.round(np.geomspace(1, num_timesteps, n)).astype(int) - 1)
    return [int(t) for t in grid]


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and by its finished child processes (the workers of
    :func:`lt_diffusion.lab.jobs.run_jobs`)."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class Timer:
    """Wall-clock seconds since creation."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def lab_provenance(seeds: Sequence[int], wall_s: float, extra: Optional[Dict] = None) -> Dict:
    """:func:`lt_diffusion.provenance.record` for a lab (scale ``"lab"``), with the source hash and thread count."""
    from ..provenance import record
    from .cache import source_hash

    return record("lab", list(seeds), wall_s, {"torch_threads": torch.get_num_threads(),
                                                "lab_source": source_hash(), **(extra or {})})
