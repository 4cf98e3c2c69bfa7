"""One training path: :func:`train_model` trains any :class:`~lt_diffusion.experiments.specs.Arm` (a denoiser,
Diffusion Inversion's generator, ADM's noisy classifier, a clean classifier) with the one
:class:`lt_diffusion.train.Trainer`, optionally in chunks with a callback between them; :func:`load_trained` reads
back an arm the Trainer checkpointed.

The arm's :class:`~lt_diffusion.train.TrainConfig` goes to the Trainer unchanged except for the run-time values
``seed``, ``device``, ``progress`` and ``ckpt_dir``; the objective sits in the Trainer's ``diffusion`` slot (an
object with ``num_timesteps`` and ``training_losses``).
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from lt_diffusion.experiments.build import build_diffusion, build_model, default_device, load_data
from lt_diffusion.experiments.specs import Arm

__all__ = ["TrainResult", "train_model", "build_objective", "build_loader", "load_trained", "Marks",
           "GlobalBatchSampler", "GlobalBatchDiffusion"]


@dataclass
class TrainResult:
    """What :func:`train_model` returns.

    Attributes:
        model: the trained network (eval mode): what a classifier arm is used as.
        ema: its exponential moving average (eval mode): what a denoiser or generator samples with.
        history: the Trainer's records (``step``, ``loss`` and the other terms, ``lr``, ``images_per_s``, ...).
        trainer: the :class:`lt_diffusion.train.Trainer` (its ``step``, optimiser and checkpoint methods).
    """

    model: nn.Module
    ema: nn.Module
    history: List[Dict[str, float]]
    trainer: Any


def _num_classes(arm: Arm) -> Optional[int]:
    n = arm.train.num_classes
    return n if n is not None else getattr(arm.model, "num_classes", None)


def build_objective(arm: Arm, data=None):
    """What the Trainer minimises for ``arm``: the engine diffusion of a denoiser or generator (with the P2 / CBDM
    hooks; CBDM's label frequencies from ``data.class_counts()``), :class:`~lt_diffusion.classifier_train.
    NoisyClassifierLoss` or :class:`~lt_diffusion.classify.CrossEntropyLoss`."""
    if arm.kind == "classifier":
        from lt_diffusion.classify import CrossEntropyLoss
        return CrossEntropyLoss()
    counts = data.class_counts() if arm.diffusion.cbdm_tau > 0 and hasattr(data, "class_counts") else None
    diffusion = build_diffusion(arm.diffusion, num_classes=_num_classes(arm), class_counts=counts)
    if arm.kind == "noisy_classifier":
        from lt_diffusion.classifier_train import NoisyClassifierLoss
        return NoisyClassifierLoss(diffusion)
    return diffusion


def build_loader(arm: Arm, data, config, device):
    """The batches of ``arm``: :class:`lt_diffusion.data.GPUBatchLoader` (images in [-1, 1], flips from
    ``config.random_flip``) or, for a classifier, :class:`lt_diffusion.classify.MixedBatchLoader` (normalised,
    ``arm.random_crop`` and flips). A classifier's ``data`` may be a list of ``(ImageDataset, batch_size)`` whose
    batch sizes sum to ``config.batch_size`` (the real / synthetic mix)."""
    device = torch.device(device)
    if arm.kind == "classifier":
        from lt_diffusion.classify import MixedBatchLoader
        sources = [(data, config.batch_size)] if hasattr(data, "images") else list(data)
        if sum(b for _, b in sources) != config.batch_size:
            raise ValueError(f"the sources' batch sizes {[b for _, b in sources]} must sum to "
                             f"train.batch_size={config.batch_size}")
        return MixedBatchLoader([(d.images, d.labels, b) for d, b in sources], device=device,
                                random_crop=arm.random_crop, flip=config.random_flip, seed=config.seed,
                                channels_last=device.type == "cuda")
    from lt_diffusion.data import GPUBatchLoader
    return GPUBatchLoader(data, config.batch_size, device=device, flip=config.random_flip, seed=config.seed,
                          channels_last=device.type == "cuda")


class GlobalBatchSampler:
    """A schedule sampler that draws the timesteps of the *global* batch and returns this rank's share.

    Under DDP every rank holds the same RNG state (the shared stream, see :func:`train_model`), draws ``t`` and the
    importance weights for all ``world * B_local`` samples exactly as one process would for the whole batch, and keeps
    rows ``[rank * B_local, (rank + 1) * B_local)``: the same rows of the same global batch that the Trainer gives
    this rank. Losses reported back go to the wrapped sampler (a loss-aware one gathers them across ranks itself).
    """

    def __init__(self, inner, rank: int, world_size: int):
        self.inner, self.rank, self.world_size = inner, int(rank), int(world_size)
        self.num_timesteps = inner.num_timesteps

    def sample(self, batch_size: int, device) -> Tuple[torch.Tensor, torch.Tensor]:
        """``t`` long ``(batch_size,)`` and weights ``(batch_size,)``: this rank's rows of a global draw."""
        t, w = self.inner.sample(batch_size * self.world_size, device)
        rows = slice(self.rank * batch_size, (self.rank + 1) * batch_size)
        return t[rows], w[rows]

    def update_with_local_losses(self, ts: torch.Tensor, losses: torch.Tensor) -> None:
        if hasattr(self.inner, "update_with_local_losses"):
            self.inner.update_with_local_losses(ts, losses)

    def state_dict(self):
        from lt_diffusion.train import _sampler_state
        return _sampler_state(self.inner)

    def load_state_dict(self, state) -> None:
        from lt_diffusion.train import _load_sampler_state
        _load_sampler_state(self.inner, state)


class GlobalBatchDiffusion:
    """The diffusion's ``training_losses`` with the random draws of the global batch, for DDP runs whose result does
    not depend on the number of processes.

    One process training on a batch of B draws, in this order from one RNG stream: the timesteps (B,), the label
    drops of classifier-free guidance (B,) or (1,), and the noise ε (B, C, H, W). Here every rank draws the same
    global quantities from the shared stream and keeps its rows, so for a model without dropout (and without CBDM's
    random labels y') N processes compute the very same per-sample losses as one process, and their averaged
    gradients agree up to floating-point summation order. The model's forward pass (dropout, the CBDM
    regulariser's y') draws from a per-rank stream seeded from ``(seed, step, rank)`` instead, so ranks do not share
    dropout masks and a resumed run repeats the same draws; those arms equal a 1-process run in distribution only.

    Args:
        diffusion: the engine diffusion (:func:`build_objective`).
        rank, world_size: this process and the number of processes.
        p_uncond, uncond_mode, null_label: the label drops that the Trainer would otherwise make per rank
            (``TrainConfig.p_uncond`` / ``uncond_mode``; the null label is ``num_classes``).
        seed: the run's seed (for the per-rank forward stream).
    """

    def __init__(self, diffusion, rank: int, world_size: int, *, p_uncond: float = 0.0, uncond_mode: str = "sample",
                 null_label: Optional[int] = None, seed: int = 0):
        self.diffusion, self.rank, self.world_size = diffusion, int(rank), int(world_size)
        self.p_uncond, self.uncond_mode, self.null_label, self.seed = float(p_uncond), uncond_mode, null_label, seed
        self.num_timesteps = diffusion.num_timesteps
        self.step_fn: Callable[[], int] = lambda: 0

    def __getattr__(self, name):  # everything else (respacing, hooks, ...) is the wrapped diffusion's
        if name == "diffusion":
            raise AttributeError(name)
        return getattr(self.diffusion, name)

    def _rows(self, n: int) -> slice:
        return slice(self.rank * n, (self.rank + 1) * n)

    def draw_batch(self, x_start: torch.Tensor, model_kwargs=None,
                   noise: Optional[torch.Tensor] = None) -> Tuple[Dict[str, Any], torch.Tensor]:
        """The global batch's label drops and noise, this rank's rows: ``(model_kwargs with y dropped, noise
        (B_local, ...))`` for the local batch ``x_start``. The Trainer calls it once per step before it splits the
        batch into micro-batches (``TrainConfig.microbatch``)."""
        from lt_diffusion.diffusion import _as_float_dtype

        n = x_start.shape[0]
        kwargs = dict(model_kwargs or {})
        y = kwargs.get("y")
        if self.p_uncond > 0 and y is not None:  # Trainer._drop_labels, drawn for the global batch
            if self.uncond_mode == "batch":
                drop = (torch.rand(1, device=y.device) < self.p_uncond).expand(n)
            else:
                drop = (torch.rand(n * self.world_size, device=y.device) < self.p_uncond)[self._rows(n)]
            kwargs["y"] = torch.where(drop, torch.full_like(y, self.null_label), y)
        if noise is None:  # GaussianDiffusion.training_losses' own draw, made for the global batch
            noise = torch.randn((n * self.world_size, *x_start.shape[1:]), device=x_start.device,
                                dtype=_as_float_dtype(x_start))[self._rows(n)]
        return kwargs, noise

    def chunk_losses(self, model, x_start: torch.Tensor, t: torch.Tensor, model_kwargs: Dict[str, Any],
                     noise: torch.Tensor, chunk: int = 0) -> Dict[str, torch.Tensor]:
        """The wrapped diffusion's losses on rows already drawn by :meth:`draw_batch` (micro-batch ``chunk`` of the
        step), with the forward pass's own draws from the per-rank stream of ``(seed, step, rank, chunk)``."""
        devices = [x_start.device] if x_start.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed((int(self.seed) * 1_000_003 + int(self.step_fn()) * 1009 + self.rank + 1
                               + int(chunk) * 7_919_000_003) % 2**62)
            return self.diffusion.training_losses(model, x_start, t, model_kwargs=model_kwargs, noise=noise)

    def training_losses(self, model, x_start: torch.Tensor, t: torch.Tensor, model_kwargs=None,
                        noise: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Per-sample losses ``(B_local,)`` of this rank's rows, with the global batch's label drops and noise."""
        kwargs, noise = self.draw_batch(x_start, model_kwargs, noise)
        return self.chunk_losses(model, x_start, t, kwargs, noise)


def _share_rng_state(device: torch.device) -> None:
    """Give every rank rank 0's torch (CPU and ``device``) and numpy RNG states."""
    import torch.distributed as dist

    state = [torch.get_rng_state(), np.random.get_state(),
             torch.cuda.get_rng_state(device) if device.type == "cuda" else None]
    dist.broadcast_object_list(state, src=0)
    torch.set_rng_state(state[0])
    np.random.set_state(state[1])
    if state[2] is not None:
        torch.cuda.set_rng_state(state[2], device)


def train_model(arm: Arm, *, seed: int = 0, device=None, data=None, every: Optional[int] = None,
                on_chunk: Optional[Callable[[Any], Optional[bool]]] = None, progress: bool = False,
                ckpt_dir: Optional[str] = None, resume: bool = False, ckpt_every: Optional[int] = None,
                steps: Optional[int] = None, microbatch: Optional[int] = None) -> TrainResult:
    """Train ``arm`` with :class:`lt_diffusion.train.Trainer`.

    Args:
        arm: the run (model, TrainConfig, data, diffusion).
        seed: seeds the weights, the data order and the Trainer's RNG (``TrainConfig.seed``).
        device: default: CUDA when available.
        data: the training images (default: ``load_data(arm.data)``); required when ``arm.data.from_arm`` is set.
            A classifier also takes ``[(ImageDataset, batch_size), ...]``.
        every, on_chunk: train ``every`` steps at a time and call ``on_chunk(trainer)`` after each chunk (the
            last one included), e.g. to score the EMA model along training; returning True stops the run early.
        progress: a tqdm bar. ckpt_dir: the Trainer's checkpoint folder (exact resume; see :func:`load_trained`).
        resume: continue from the newest checkpoint in ``ckpt_dir`` (the Trainer's exact resume); a
            ``FileNotFoundError`` when there is none.
        ckpt_every: a checkpoint every this many steps (default: the arm's ``train.ckpt_every``).
        steps: train to this many steps instead of ``arm.train.steps``.
        microbatch: split each process's batch into micro-batches of this size (``TrainConfig.microbatch``: the
            same update, less memory). Default: the arm's; when that is None too and the device is a GPU, the
            largest micro-batch whose estimated memory fits the GPU (:func:`lt_diffusion.experiments.memory.
            fit_microbatch`; ``None``, the whole batch, when it fits), so a ``book`` preset also trains on a 15 GB
            GPU; never for a model with BatchNorm, whose batch statistics would change. The Trainer's
            ``config.microbatch`` records the choice.

    Under ``torchrun`` (``WORLD_SIZE > 1``) the Trainer wraps the model in DistributedDataParallel and each rank
    trains on its rows of the global batch ``arm.train.batch_size``. A denoiser or generator then draws its
    timesteps, label drops and noise for the global batch from one stream shared by all ranks
    (:class:`GlobalBatchSampler`, :class:`GlobalBatchDiffusion`), so the run does not depend on the number of
    processes: without dropout it equals a 1-process run up to floating-point summation order.
    """
    from lt_diffusion.train import Trainer, _make_sampler, setup_distributed

    if data is None:
        if arm.data.from_arm is not None:
            raise ValueError(f"this arm trains on data made from arm {arm.data.from_arm!r}: pass data=")
        data = load_data(arm.data)
    device = torch.device(device) if device is not None else default_device()
    rank, world, local_rank = setup_distributed(device.type)
    if device.type == "cuda" and device.index is None and world > 1:  # one GPU per process, before any tensor
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    overrides: Dict[str, Any] = {} if steps is None else {"steps": int(steps)}
    if ckpt_every is not None:
        overrides["ckpt_every"] = int(ckpt_every)
    if microbatch is not None:
        overrides["microbatch"] = int(microbatch)
    config = dataclasses.replace(arm.train, seed=seed, device=str(device), progress=progress,
                                 ckpt_dir=ckpt_dir if ckpt_dir is not None else arm.train.ckpt_dir, **overrides)
    if resume and not config.ckpt_dir:
        raise ValueError("resume=True needs ckpt_dir (the folder of the run's checkpoints)")
    model = build_model(arm, seed=seed)
    if config.microbatch is None:
        from lt_diffusion.experiments.memory import gpu_microbatch

        config = dataclasses.replace(config, microbatch=gpu_microbatch(arm, model, config.batch_size // world, device))
    objective = build_objective(arm, data)
    sampler = shared = None
    if world > 1 and arm.kind in ("denoiser", "generator"):
        null = config.num_classes if config.num_classes is not None else getattr(model, "num_classes", None)
        null = null if null is not None else getattr(arm.model, "num_classes", None)
        shared = GlobalBatchDiffusion(objective, rank, world, p_uncond=config.p_uncond,
                                      uncond_mode=config.uncond_mode, null_label=null, seed=seed)
        sampler = GlobalBatchSampler(_make_sampler(config.schedule_sampler, objective), rank, world)
        objective, config = shared, dataclasses.replace(config, p_uncond=0.0)  # the drops happen in `shared`
    trainer = Trainer(model, objective, build_loader(arm, data, config, device), config, schedule_sampler=sampler)
    if shared is not None:  # one stream for the global draws, the same on every rank (the Trainer seeded seed+rank)
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        shared.step_fn = lambda: trainer.step
    if resume and trainer.resume() is None:
        raise FileNotFoundError(f"{config.ckpt_dir} holds no checkpoint (ckpt_*.pt) to resume from")
    if shared is not None and resume:  # a checkpoint of another world size reseeds per rank: share rank 0's stream
        _share_rng_state(device)
    if every is None:
        trainer.run()
        if on_chunk is not None:
            on_chunk(trainer)
    else:
        if every < 1:
            raise ValueError(f"every must be a positive number of steps, got {every}")
        while trainer.step < config.steps:
            trainer.run(num_steps=every)
            if on_chunk is not None and on_chunk(trainer):
                break
    trainer.model.eval()
    trainer.ema_model.eval()
    return TrainResult(trainer.model, trainer.ema_model, trainer.history, trainer)


def load_trained(arm: Arm, path: str, *, device=None) -> TrainResult:
    """Read an arm's checkpoint written by the Trainer (``train_model(..., ckpt_dir=...)``): the model, its EMA
    copy and the history, without training. ``weights_only`` loading; the stored model config must be the arm's."""
    device = torch.device(device) if device is not None else default_device()
    state = torch.load(path, map_location="cpu", weights_only=True)
    stored = state.get("model_config")
    if stored is not None and hasattr(arm.model, "to_dict") and stored != arm.model.to_dict():
        raise ValueError(f"{path} holds a model with config {stored}, not this arm's {arm.model.to_dict()}")
    model = build_model(arm)
    model.load_state_dict(state["model"])
    ema = copy.deepcopy(model)
    ema.load_state_dict({k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")})
    return TrainResult(model.to(device).eval(), ema.to(device).eval(), list(state.get("history", [])), None)


class Marks:
    """An ``on_chunk`` callback that snapshots the EMA model at two marks of one run: when it has trained ``steps``
    steps and when its training time (the Trainer's ``elapsed_s``, synchronised) has reached ``seconds``
    (ADM's ablation at equal steps and at equal wall time, chapter 03). It stops the run once both are passed; a run
    that ends first (``TrainConfig.steps`` is a cap) takes its last EMA for the marks it missed.

    ``snapshots[mark] = (ema copy in eval mode, step, seconds)`` for ``mark`` in ``("steps", "time")``.
    """

    def __init__(self, steps: int, seconds: float):
        self.steps, self.seconds = int(steps), float(seconds)
        self.snapshots: Dict[str, Tuple[nn.Module, int, float]] = {}

    def __call__(self, trainer) -> bool:
        elapsed = trainer.history[-1]["elapsed_s"] if trainer.history else 0.0
        done = trainer.step >= trainer.config.steps
        for mark, reached in (("steps", trainer.step >= self.steps), ("time", elapsed >= self.seconds)):
            if mark not in self.snapshots and (reached or done):
                self.snapshots[mark] = (copy.deepcopy(trainer.ema_model).eval(), trainer.step, elapsed)
        return len(self.snapshots) == 2
