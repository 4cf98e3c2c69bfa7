"""The labs' only doors into the engine: one recipe, one function that trains, one that samples.

Every lab trains its denoisers with :func:`train_denoisers` (a :class:`lt_diffusion.train.Trainer` on the
engine's :func:`lt_diffusion.diffusion.create_diffusion`, with the papers' extension points P2
``loss_weight`` and CBDM ``regularizer`` switched on by the recipe), its noisy classifiers with
:func:`train_classifiers` (the Trainer with :class:`lt_diffusion.classifier_train.NoisyClassifierLoss`), and samples with
:func:`sample` (the engine's ``p_sample_loop`` / ``ddim_sample_loop`` with a ``cond_fn`` or a CFG ``model_fn``).
Nothing here re-implements a loss, a sampler or a guidance rule.

Seeds are trained together: an :class:`~lt_diffusion.lab.denoiser.EnsembleMLP` with one member per seed,
each member on its own training set (drawn from its seed) and its own batches. Two arms trained on the same
seeds start from the same weights and see the same batches (common random numbers), so the difference
between arms is the arm's. Arms are independent networks: :func:`train_arms` trains a lab's arms side by side
(:mod:`lt_diffusion.lab.jobs`), each run exactly the run :func:`train_denoisers` makes alone.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from ..cbdm import CBDMRegularizer
from ..diffusion import create_diffusion
from ..weighting import P2Weight
from .denoiser import EnsembleMLP, deinterleave, interleave
from .world import LabWorld

__all__ = ["LabRecipe", "make_diffusion", "MemberBatches", "TrainedEnsemble", "train_denoisers",
           "train_arms", "relative_cost", "train_classifiers", "sample", "DEFAULT_RECIPE"]


@dataclass(frozen=True)
class LabRecipe:
    """Everything that defines a lab denoiser and its training, as flat values (hashed into the cache key).

    Diffusion (names of :func:`lt_diffusion.diffusion.create_diffusion`): ``diffusion_steps`` T,
    ``noise_schedule``, ``loss`` (``"simple"``, ``"hybrid"``, ``"vlb"``), ``learn_sigma``, ``sigma_small``.
    Papers' extension points: ``p2_gamma`` / ``p2_k`` (P2 ``loss_weight``, off at γ = 0), ``cbdm_tau`` /
    ``cbdm_gamma`` / ``cbdm_label_dist`` (CBDM ``regularizer``, off at τ = 0).
    Network (:class:`EnsembleMLP`): ``hidden``, ``depth``, ``emb_dim``, ``conditional`` (a label table).
    Training (:class:`lt_diffusion.train.TrainConfig` names): ``steps``, ``batch_size`` (per member), ``lr``,
    ``warmup_steps``, ``lr_floor`` (cosine decay to this fraction), ``ema_rate`` (with warm-up), ``p_uncond``,
    ``uncond_mode``, ``schedule_sampler``.
    """

    diffusion_steps: int = 1000
    noise_schedule: str = "linear"
    loss: str = "simple"
    learn_sigma: bool = False
    sigma_small: bool = False
    p2_gamma: float = 0.0
    p2_k: float = 1.0
    cbdm_tau: float = 0.0
    cbdm_gamma: float = 0.25
    cbdm_label_dist: str = "uniform"
    hidden: int = 128
    depth: int = 3
    emb_dim: int = 32
    conditional: bool = True
    steps: int = 2000
    batch_size: int = 256
    lr: float = 2e-3
    warmup_steps: int = 100
    lr_floor: float = 0.05
    ema_rate: float = 0.999
    p_uncond: float = 0.1
    uncond_mode: str = "sample"
    schedule_sampler: str = "uniform"

    def replace(self, **changes) -> "LabRecipe":
        return dataclasses.replace(self, **changes)


DEFAULT_RECIPE = LabRecipe()


def make_diffusion(recipe: LabRecipe, respacing: str = "", class_counts: Optional[Sequence[int]] = None):
    """The engine's diffusion for ``recipe`` (``respacing`` e.g. ``"50"`` or ``"ddim25"`` for sampling).

    P2 (``p2_gamma > 0``) and CBDM (``cbdm_tau > 0``, label distribution ``"train"`` needs ``class_counts``)
    plug in at their extension points, exactly as in the image chapters.
    """
    loss_weight = P2Weight(recipe.p2_gamma, recipe.p2_k) if recipe.p2_gamma > 0 else None
    regularizer = None
    if recipe.cbdm_tau > 0:
        if not recipe.conditional:
            raise ValueError("CBDM regularises a class-conditional model: set conditional=True")
        regularizer = CBDMRegularizer(10 if class_counts is None else len(class_counts), tau=recipe.cbdm_tau,
                                      gamma=recipe.cbdm_gamma, label_dist=recipe.cbdm_label_dist,
                                      class_counts=class_counts)
    return create_diffusion(steps=recipe.diffusion_steps, noise_schedule=recipe.noise_schedule,
                            learn_sigma=recipe.learn_sigma, sigma_small=recipe.sigma_small, loss=recipe.loss,
                            rescale_timesteps=True, timestep_respacing=respacing, loss_weight=loss_weight,
                            regularizer=regularizer)


class MemberBatches:
    """Endless interleaved batches for an ensemble: member ``m`` draws ``per_member`` rows of ``data[m]``.

    ``data``: one ``(x float (N_m, d) in [-1, 1], y long (N_m,))`` per member; ``seeds``: one per member. Members
    with equal seeds draw the same rows (arms are paired). Yields ``(x (M * B, d), y (M * B,))``;
    ``batch_size`` is that whole batch, ``M * per_member`` (what :class:`~lt_diffusion.train.TrainConfig` gets).
    """

    def __init__(self, data: Sequence[Tuple[torch.Tensor, torch.Tensor]], per_member: int, seeds: Sequence[int]):
        if len(data) != len(seeds):
            raise ValueError(f"{len(data)} data sets for {len(seeds)} seeds")
        self.data = [(x.float(), y.long()) for x, y in data]
        self.per_member = int(per_member)
        self.batch_size = self.per_member * len(self.data)
        self.generators = [torch.Generator().manual_seed(7919 * int(s) + 3) for s in seeds]

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        return self

    def __next__(self) -> Tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for (x, y), g in zip(self.data, self.generators):
            idx = torch.randint(0, x.shape[0], (self.per_member,), generator=g)
            xs.append(x[idx])
            ys.append(y[idx])
        return interleave(torch.stack(xs)), interleave(torch.stack(ys))


@dataclass
class TrainedEnsemble:
    """A trained ensemble: ``model`` (the EMA weights, eval mode), the recipe's ``diffusion``, ``seeds`` (one per
    member), the trainer's ``history`` and the training wall time."""

    model: EnsembleMLP
    diffusion: object
    recipe: LabRecipe
    seeds: List[int]
    history: List[Dict[str, float]]
    wall_s: float

    @property
    def members(self) -> int:
        return self.model.members


def _trainer_seed(seeds: Sequence[int]) -> int:
    return int(sum((i + 1) * 104_729 * (int(s) + 1) for i, s in enumerate(seeds)) % (2 ** 31))


def _new_denoiser(recipe: LabRecipe, world: LabWorld, seeds: Sequence[int]) -> EnsembleMLP:
    out_dim = 2 * world.dim if recipe.learn_sigma else world.dim
    return EnsembleMLP(len(seeds), world.dim, out_dim, world.num_classes if recipe.conditional else None,
                       recipe.hidden, recipe.depth, recipe.emb_dim, seeds=seeds)


def _as_float_data(world: LabWorld, data):
    return [(world.to_model_range(x) if x.dtype == torch.uint8 else x.float(), y.long()) for x, y in data]


def _denoiser_key(recipe: LabRecipe, world: LabWorld, seeds: Sequence[int], data_tag: Optional[str]) -> str:
    from . import cache

    return cache.cache_key("denoiser", seeds, {"recipe": dataclasses.asdict(recipe), "world": world.spec,
                                              "data": data_tag or "training_set"})


def _fit_denoisers(recipe: LabRecipe, world: LabWorld, seeds: List[int],
                   data: Optional[Sequence[Tuple[torch.Tensor, torch.Tensor]]] = None) -> Dict[str, object]:
    """Train ``recipe``'s ensemble (no cache); returns ``{"state": EMA state dict, "history", "wall_s"}``."""
    from ..train import TrainConfig, Trainer

    if data is None:
        data = [world.training_set(s) for s in seeds]
    data = _as_float_data(world, data)
    model = _new_denoiser(recipe, world, seeds)
    config = TrainConfig(steps=recipe.steps, batch_size=recipe.batch_size * len(seeds), lr=recipe.lr,
                         warmup_steps=recipe.warmup_steps, lr_schedule="cosine", lr_floor=recipe.lr_floor,
                         ema_rate=recipe.ema_rate, ema_warmup=True, p_uncond=recipe.p_uncond if recipe.conditional
                         else 0.0, uncond_mode=recipe.uncond_mode, schedule_sampler=recipe.schedule_sampler,
                         random_flip=False, amp=False, channels_last=False, seed=_trainer_seed(seeds),
                         log_every=max(1, recipe.steps // 20), num_classes=world.num_classes if recipe.conditional
                         else None, device="cpu", progress=False)
    start = time.perf_counter()
    trainer = Trainer(model, make_diffusion(recipe, class_counts=world.counts),
                      MemberBatches(data, recipe.batch_size, seeds), config)
    history = trainer.run()
    wall = time.perf_counter() - start
    return {"state": trainer.ema_model.state_dict(), "history": history, "wall_s": wall}


def _ensemble(recipe: LabRecipe, world: LabWorld, seeds: List[int], fitted: Dict[str, object]) -> TrainedEnsemble:
    model = _new_denoiser(recipe, world, seeds)
    model.load_state_dict(fitted["state"])
    return TrainedEnsemble(model.eval().requires_grad_(False), make_diffusion(recipe, class_counts=world.counts),
                           recipe, seeds, list(fitted["history"]), float(fitted["wall_s"]))


def train_denoisers(recipe: LabRecipe, world: LabWorld, seeds: Sequence[int],
                    data: Optional[Sequence[Tuple[torch.Tensor, torch.Tensor]]] = None,
                    data_tag: Optional[str] = None) -> TrainedEnsemble:
    """Train one denoiser per seed, all at once, with the engine's :class:`~lt_diffusion.train.Trainer`.

    Args:
        recipe: the diffusion, network and training settings.
        world: the ground truth; member ``m`` trains on ``world.training_set(seeds[m])`` (CIFAR-10-LT's counts)
            unless ``data`` is given: one ``(x uint8 or float in [-1, 1] (N, d), y (N,))`` per seed.
        data_tag: a name for ``data`` that identifies it in the cache (without it, runs on explicit ``data`` are
            not cached).
    Returns a :class:`TrainedEnsemble` whose model is the EMA network (read back from the cache when this recipe
    has been trained on these seeds and data with the same source before).
    """
    from . import cache

    seeds = [int(s) for s in seeds]
    key = _denoiser_key(recipe, world, seeds, data_tag) if data is None or data_tag is not None else None
    fitted = cache.load_state(key) if key is not None else None
    if fitted is None:
        fitted = _fit_denoisers(recipe, world, seeds, data)
        if key is not None:
            cache.save_state(key, fitted)
    return _ensemble(recipe, world, seeds, fitted)


def _relative_cost(recipe: LabRecipe) -> float:
    """Rough training cost, to start the longest runs first (CBDM's regulariser is a second forward pass)."""
    return recipe.steps * recipe.batch_size * (2.0 if recipe.cbdm_tau > 0 else 1.0) * (recipe.hidden / 128) ** 2


def relative_cost(recipe: LabRecipe) -> float:
    """Rough cost of training ``recipe`` (for :func:`lt_diffusion.lab.jobs.run_jobs`, which starts the longest jobs
    first): steps x batch x width², doubled by CBDM's regulariser (a second forward pass)."""
    return recipe.steps * recipe.batch_size * (2.0 if recipe.cbdm_tau > 0 else 1.0) * (recipe.hidden / 128) ** 2


def train_arms(recipes: Sequence[LabRecipe], world: LabWorld, seeds: Sequence[int],
               workers: Optional[int] = None) -> List[TrainedEnsemble]:
    """:func:`train_denoisers` for several recipes on the training sets of ``seeds``: the cached ones read back,
    the others trained side by side by :func:`lt_diffusion.lab.jobs.run_jobs` (up to ``workers`` processes, one
    thread each; the networks are the ones this process would train). One :class:`TrainedEnsemble` per recipe."""
    from . import cache
    from .jobs import run_jobs

    seeds = [int(s) for s in seeds]
    recipes = list(recipes)
    keys = [_denoiser_key(r, world, seeds, None) for r in recipes]
    fitted: Dict[str, Dict[str, object]] = {}
    todo: Dict[str, LabRecipe] = {}
    for key, recipe in zip(keys, recipes):
        if key not in fitted and key not in todo:
            hit = cache.load_state(key)
            if hit is not None:
                fitted[key] = hit
            else:
                todo[key] = recipe
    results = run_jobs(_fit_denoisers, [(r, world, seeds) for r in todo.values()],
                       cost=[relative_cost(r) for r in todo.values()], workers=workers)
    for key, result in zip(todo, results):
        fitted[key] = result
        cache.save_state(key, result)
    return [_ensemble(r, world, seeds, fitted[k]) for r, k in zip(recipes, keys)]


def train_classifiers(world: LabWorld, seeds: Sequence[int], diffusion, *, num_labels: int,
                      data: Sequence[Tuple[torch.Tensor, torch.Tensor]], data_tag: Optional[str] = None,
                      noised: bool = True, steps: int = 1500, batch_size: int = 128, lr: float = 2e-3,
                      hidden: int = 128, depth: int = 2, emb_dim: int = 32) -> EnsembleMLP:
    """Classifiers p_phi(label | x_t, t), one per seed, trained together by the engine's
    :class:`~lt_diffusion.train.Trainer` with :class:`lt_diffusion.classifier_train.NoisyClassifierLoss` (AdamW,
    learning rate annealed linearly to 0 as guided-diffusion's ``--anneal_lr``) on ``data`` (one ``(x, labels)``
    per seed; labels in ``[0, num_labels)``: classes for ADM guidance, minority levels for minority guidance).
    ``noised=False`` trains on clean data only (a downstream classifier, t = 0). ``data_tag`` names ``data`` for
    the cache. Returns the ensemble ``classifier(x_t, t) -> logits (N, num_labels)`` in eval mode."""
    from ..classifier_train import NoisyClassifierLoss
    from ..train import TrainConfig, Trainer
    from . import cache

    seeds = [int(s) for s in seeds]
    init_seeds = [s + 50_000 for s in seeds]
    clf = EnsembleMLP(len(seeds), world.dim, num_labels, None, hidden, depth, emb_dim, seeds=init_seeds)
    config = {"world": world.spec, "data": data_tag, "num_labels": num_labels, "noised": noised, "steps": steps,
              "batch_size": batch_size, "lr": lr, "hidden": hidden, "depth": depth, "emb_dim": emb_dim}
    key = cache.cache_key("classifier", seeds, config) if data_tag is not None else None
    hit = cache.load_state(key) if key is not None else None
    if hit is not None:
        clf.load_state_dict(hit["state"])
        return clf.eval().requires_grad_(False)
    train = TrainConfig(steps=steps, batch_size=batch_size * len(seeds), lr=lr, lr_schedule="linear",
                        ema_rate=0.0, random_flip=False, amp=False, channels_last=False,
                        seed=_trainer_seed(seeds) + 1, log_every=max(1, steps // 10), num_classes=num_labels,
                        device="cpu", progress=False)
    trainer = Trainer(clf, NoisyClassifierLoss(diffusion, noised=noised),
                      MemberBatches(_as_float_data(world, data), batch_size, init_seeds), train)
    trainer.run()
    clf = trainer.model
    if key is not None:
        cache.save_state(key, {"state": clf.state_dict()})
    return clf.eval().requires_grad_(False)


@torch.no_grad()
def sample(model: Callable, diffusion, members: int, n: int, dim: int, *, labels: Optional[torch.Tensor] = None,
           model_kwargs: Optional[Dict[str, torch.Tensor]] = None, cond_fn: Optional[Callable] = None,
           method: str = "ancestral", eta: float = 0.0, seed: int = 0) -> torch.Tensor:
    """Draw ``n`` samples per member with the engine's samplers; returns ``(members, n, dim)`` float32.

    Args:
        model: the ensemble, or a wrapper with its signature (a CFG ``model_fn``).
        diffusion: the (respaced) engine diffusion to sample with (:func:`make_diffusion` with ``respacing``).
        labels: ``(n,)`` the same labels for every member, or ``(members, n)``; ``None`` for no labels.
        model_kwargs: other per-member inputs as ``(members, n, ...)`` tensors (e.g. ``cond`` vectors).
        cond_fn: a guidance gradient (:func:`lt_diffusion.guidance.classifier_cond_fn`).
        method: ``"ancestral"`` (``p_sample_loop``) or ``"ddim"`` (``ddim_sample_loop`` with ``eta``).
        seed: the initial noise and the per-step noise.
    """
    kwargs: Dict[str, torch.Tensor] = {}
    if labels is not None:
        labels = labels.long()
        if labels.ndim == 1:
            labels = labels[None].expand(members, -1)
        kwargs["y"] = interleave(labels)
    for key, value in (model_kwargs or {}).items():
        kwargs[key] = interleave(value)
    g = torch.Generator().manual_seed(int(seed))
    shape = (members * n, dim)
    if method == "ancestral":
        x = diffusion.p_sample_loop(model, shape, model_kwargs=kwargs, cond_fn=cond_fn, generator=g, device="cpu")
    elif method == "ddim":
        x = diffusion.ddim_sample_loop(model, shape, model_kwargs=kwargs, cond_fn=cond_fn, eta=eta, generator=g,
                                       device="cpu")
    else:
        raise ValueError(f"method must be 'ancestral' or 'ddim', got {method!r}")
    return deinterleave(x.float(), members)
