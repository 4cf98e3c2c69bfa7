"""Training and evaluating a *noisy* classifier p_φ(y | x_t, t) for guidance (ADM, Dhariwal & Nichol 2021, Sec. 4).

Classifier guidance needs ∇_x log p_φ(y | x_t) at every noise level the sampler visits, so the classifier
is trained on forward-process samples: x_0 from the data, t ~ U{0, …, T−1}, x_t = q_sample(x_0, t), and
cross-entropy on the label (guided-diffusion's ``scripts/classifier_train.py`` with ``noised=True``).

Nothing here is specific to CIFAR-10 classes: the labels are any integers in ``[0, K)`` — class labels for
ADM's guidance (Ch. 03, 04), ordinal minority-score levels for minority guidance (Ch. 07). The classifier
is any ``classifier(x_t, t) -> logits (B, K)`` module, normally :class:`lt_diffusion.models.EncoderUNetModel`;
it receives the *original-scale* long timesteps, exactly what :func:`lt_diffusion.guidance.classifier_cond_fn`
hands it during sampling (also with a respaced diffusion, whose ``timestep_map`` is applied here).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ClassifierTrainResult", "train_noisy_classifier", "accuracy_vs_t", "default_eval_timesteps"]


@dataclass
class ClassifierTrainResult:
    """What :func:`train_noisy_classifier` returns.

    Attributes:
        steps: optimiser steps taken.
        wall_s: training wall time in seconds (synchronised on CUDA).
        images_per_s: training throughput.
        history: ``{"step": [...], "loss": [...], "accuracy": [...], "t_mean": [...]}`` every ``log_every``
            steps (train-batch loss/accuracy over all noise levels, so it stays well below clean accuracy).
    """

    steps: int
    wall_s: float
    images_per_s: float
    history: Dict[str, List[float]] = field(default_factory=dict)


def _device_of(module: nn.Module) -> torch.device:
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batches(data, batch_size: int, device: torch.device, random_flip: bool, seed: int) -> Iterator:
    """(x in [-1, 1], y) batches from an ImageDataset (resident on ``device``) or from an iterator."""
    from .data import GPUBatchLoader, ImageDataset
    if isinstance(data, ImageDataset):
        return GPUBatchLoader(data, batch_size, device=device, flip=random_flip, seed=seed)
    return iter(data)


def _timestep_map(diffusion, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(getattr(diffusion, "timestep_map", range(diffusion.num_timesteps)),
                           dtype=torch.long, device=device)


def train_noisy_classifier(classifier: nn.Module, diffusion, data, *, steps: int, batch_size: int,
                           lr: float = 3e-4, weight_decay: float = 0.0, anneal_lr: bool = False,
                           random_flip: bool = True, noised: bool = True, max_t: Optional[int] = None,
                           bf16: bool = True, grad_clip: Optional[float] = None,
                           time_budget_s: Optional[float] = None, log_every: int = 10,
                           seed: int = 0) -> ClassifierTrainResult:
    """Train ``classifier`` on noised data: cross-entropy of p_φ(y | x_t, t) with t ~ U{0, …, T−1}.

    Args:
        classifier: ``classifier(x_t, t_original) -> logits (B, K)``; trained in place, on its own device.
        diffusion: the (Gaussian/Spaced) diffusion whose forward process q(x_t | x_0) noises the data;
            use the one the sampler will use (its ``timestep_map`` turns spaced indices into original t).
        data: an :class:`lt_diffusion.data.ImageDataset` (labels = the targets; moved to the device once and
            batched by :class:`~lt_diffusion.data.GPUBatchLoader`) or an iterator of ``(x, y)`` batches with x in
            [-1, 1] ``(B, C, H, W)`` and y long ``(B,)`` in ``[0, K)``.
        steps, batch_size, lr, weight_decay: AdamW optimisation (guided-diffusion: lr 3e-4, wd 0 or 0.05).
        anneal_lr: decay the learning rate linearly to 0 over ``steps`` (guided-diffusion's ``--anneal_lr``).
        random_flip: horizontal flips (ImageDataset input only).
        noised: False trains on clean x_0 with t = 0 (the ablation "a classifier that never saw noise").
        max_t: draw t only below this spaced index (None: all T steps).
        bf16: bfloat16 autocast on CUDA (ignored on CPU).
        grad_clip: gradient-norm clip, None disables.
        time_budget_s: stop early once this much wall time has passed (for equal-time comparisons).
        log_every: record loss/accuracy every this many steps.
        seed: seeds the batch order, the timesteps and the noise.
    Returns: a :class:`ClassifierTrainResult`.
    """
    device = _device_of(classifier)
    batches = _batches(data, batch_size, device, random_flip, seed)
    g = torch.Generator(device=device).manual_seed(seed + 1)
    tmap = _timestep_map(diffusion, device)
    t_hi = diffusion.num_timesteps if max_t is None else int(max_t)
    opt = torch.optim.AdamW(classifier.parameters(), lr=lr, weight_decay=weight_decay)
    use_bf16 = bf16 and device.type == "cuda"
    history: Dict[str, List[float]] = {"step": [], "loss": [], "accuracy": [], "t_mean": []}
    classifier.train()
    _sync(device)
    start = time.perf_counter()
    done = 0
    for step in range(steps):
        if anneal_lr:
            for group in opt.param_groups:
                group["lr"] = lr * (1.0 - step / steps)
        x0, y = next(batches)
        x0, y = x0.to(device), y.to(device)
        if noised:
            t = torch.randint(0, t_hi, (x0.shape[0],), generator=g, device=device)
            noise = torch.randn(x0.shape, generator=g, device=device, dtype=x0.dtype)
            x_t = diffusion.q_sample(x0, t, noise=noise)
        else:
            t = torch.zeros(x0.shape[0], dtype=torch.long, device=device)
            x_t = x0
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            logits = classifier(x_t, tmap[t])
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(classifier.parameters(), grad_clip)
        opt.step()
        done = step + 1
        if step % log_every == 0 or done == steps:
            history["step"].append(done)
            history["loss"].append(float(loss.detach()))
            history["accuracy"].append(float((logits.argmax(1) == y).float().mean()))
            history["t_mean"].append(float(tmap[t].float().mean()))
        if time_budget_s is not None and step % 10 == 0:
            _sync(device)
            if time.perf_counter() - start >= time_budget_s:
                break
    _sync(device)
    wall = time.perf_counter() - start
    classifier.eval()
    return ClassifierTrainResult(steps=done, wall_s=wall, images_per_s=done * batch_size / max(wall, 1e-9),
                                 history=history)


def default_eval_timesteps(num_timesteps: int, n: int = 11) -> List[int]:
    """``n`` spaced indices from 0 to T−1, evenly spread (for accuracy-vs-t curves)."""
    return sorted({int(round(i * (num_timesteps - 1) / (n - 1))) for i in range(n)})


@torch.no_grad()
def accuracy_vs_t(classifier: nn.Module, diffusion, images: torch.Tensor, labels: torch.Tensor,
                  timesteps: Optional[Sequence[int]] = None, batch_size: int = 500, bf16: bool = True,
                  ordinal: bool = False, seed: int = 0) -> Dict[str, List[float]]:
    """Accuracy and cross-entropy of the noisy classifier on held-out images noised to each of ``timesteps``.

    Args:
        images: uint8 ``(N, C, H, W)`` or float in [-1, 1]; labels: long ``(N,)``.
        timesteps: spaced indices of ``diffusion`` (default: 11 evenly spread); the output reports the original t.
        ordinal: also report the mean absolute error |argmax − y| (for ordinal labels such as minority levels).
        seed: the noise draw (the same noise for every t, so the curve is smooth).
    Returns: ``{"t": [...], "alpha_bar": [...], "accuracy": [...], "loss": [...], ("mae": [...])}``
        with one entry per timestep; ``t`` in original-scale steps.
    """
    from .data import to_model_range
    device = _device_of(classifier)
    timesteps = default_eval_timesteps(diffusion.num_timesteps) if timesteps is None else list(timesteps)
    tmap = _timestep_map(diffusion, device)
    use_bf16 = bf16 and device.type == "cuda"
    g = torch.Generator(device="cpu").manual_seed(seed)
    noise_all = torch.randn(images.shape, generator=g)
    was_training = classifier.training
    classifier.eval()
    out: Dict[str, List[float]] = {"t": [], "alpha_bar": [], "accuracy": [], "loss": []}
    if ordinal:
        out["mae"] = []
    for k in timesteps:
        correct, loss_sum, abs_err = 0.0, 0.0, 0.0
        for i in range(0, images.shape[0], batch_size):
            xb = images[i:i + batch_size].to(device)
            x0 = to_model_range(xb) if xb.dtype == torch.uint8 else xb.float()
            y = labels[i:i + batch_size].to(device)
            t = torch.full((x0.shape[0],), int(k), dtype=torch.long, device=device)
            x_t = diffusion.q_sample(x0, t, noise=noise_all[i:i + batch_size].to(device))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = classifier(x_t, tmap[t]).float()
            pred = logits.argmax(1)
            correct += float((pred == y).sum())
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            abs_err += float((pred - y).abs().sum())
        n = images.shape[0]
        out["t"].append(int(tmap[int(k)]))
        out["alpha_bar"].append(float(diffusion.alphas_cumprod[int(k)]))
        out["accuracy"].append(correct / n)
        out["loss"].append(loss_sum / n)
        if ordinal:
            out["mae"].append(abs_err / n)
    classifier.train(was_training)
    return out
