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

import torch
from torch import nn

from lt_diffusion.experiments.build import build_diffusion, build_model, default_device, load_data
from lt_diffusion.experiments.specs import Arm

__all__ = ["TrainResult", "train_model", "build_objective", "build_loader", "load_trained", "Marks"]


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


def train_model(arm: Arm, *, seed: int = 0, device=None, data=None, every: Optional[int] = None,
                on_chunk: Optional[Callable[[Any], Optional[bool]]] = None, progress: bool = False,
                ckpt_dir: Optional[str] = None) -> TrainResult:
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
    """
    from lt_diffusion.train import Trainer

    if data is None:
        if arm.data.from_arm is not None:
            raise ValueError(f"this arm trains on data made from arm {arm.data.from_arm!r}: pass data=")
        data = load_data(arm.data)
    device = torch.device(device) if device is not None else default_device()
    config = dataclasses.replace(arm.train, seed=seed, device=str(device), progress=progress,
                                 ckpt_dir=ckpt_dir if ckpt_dir is not None else arm.train.ckpt_dir)
    model = build_model(arm, seed=seed)
    trainer = Trainer(model, build_objective(arm, data), build_loader(arm, data, config, device), config)
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
