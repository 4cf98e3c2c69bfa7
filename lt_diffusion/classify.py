"""A CIFAR ResNet-18 for "train on generated data" experiments (Diffusion Inversion, Ch. 08) and for labelling
generated samples (minority guidance, Ch. 07).

The recipe follows the Diffusion Inversion repository's ``train_net.py`` (papers.md §7.3): torchvision's
ResNet-18 (He et al. 2016) with a 3×3 stride-1 stem and no max-pool (the usual 32×32 adaptation), SGD with
momentum 0.9 and weight decay 5e-4, a linear warm-up from 0.001·lr followed by a cosine decay to 0.001·lr,
random-crop (padding = size/8) and horizontal-flip augmentation, tested on the real test split. Real and
synthetic images are mixed per batch with separate batch sizes (the official ``--real-bs`` / ``--syn-bs``).

Everything runs on one device: the uint8 images stay resident there and the augmentation is a gather, so a
step never waits for a host loader.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ARCHS", "build_classifier", "resnet18_cifar", "random_crop_flip", "warmup_cosine_lr", "ClassifierRun", "train_classifier",
           "predict", "evaluate_classifier", "equivalent_real_size"]


def resnet18_cifar(num_classes: int = 10) -> nn.Module:
    """torchvision ResNet-18 for 32×32 inputs: 3×3 stride-1 first conv, max-pool removed (11.2 M parameters)."""
    import torchvision

    net = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


def _tiny_cnn(num_classes: int = 10) -> nn.Module:
    """A 3-conv network (~25 k parameters) used only by ``smoke`` presets, where a ResNet-18 step on a shared
    CPU costs seconds. Never used for reported numbers."""
    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.MaxPool2d(2))
    return nn.Sequential(block(3, 16), block(16, 32), block(32, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(64, num_classes))


ARCHS = ("resnet18", "tiny_cnn")


def build_classifier(arch: str = "resnet18", num_classes: int = 10, seed: int = 0, device=None) -> nn.Module:
    """``"resnet18"`` (:func:`resnet18_cifar`) or ``"tiny_cnn"`` (smoke only), initialised under ``seed``."""
    if arch not in ARCHS:
        raise ValueError(f"unknown classifier arch {arch!r}; choose one of {list(ARCHS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = resnet18_cifar(num_classes) if arch == "resnet18" else _tiny_cnn(num_classes)
    return net.to(device) if device is not None else net


def random_crop_flip(x: torch.Tensor, padding: int = 4, flip: bool = True,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Per-image random crop after zero padding (torchvision ``RandomCrop(size, padding)``) and random flip.

    x: (B, C, H, W) on any device; ``generator`` must live on that device. Returns a new (B, C, H, W) tensor.
    """
    B, C, H, W = x.shape
    if padding > 0:
        xp = F.pad(x, (padding, padding, padding, padding))
        oy = torch.randint(0, 2 * padding + 1, (B,), generator=generator, device=x.device)
        ox = torch.randint(0, 2 * padding + 1, (B,), generator=generator, device=x.device)
        rows = (oy[:, None] + torch.arange(H, device=x.device)[None]).view(B, 1, H, 1)
        cols = (ox[:, None] + torch.arange(W, device=x.device)[None]).view(B, 1, 1, W)
        bi = torch.arange(B, device=x.device).view(B, 1, 1, 1)
        ci = torch.arange(C, device=x.device).view(1, C, 1, 1)
        x = xp[bi, ci, rows, cols]
    if flip:
        mask = torch.rand(B, generator=generator, device=x.device) < 0.5
        x = torch.where(mask.view(B, 1, 1, 1), x.flip(-1), x)
    return x


def warmup_cosine_lr(step: int, total: int, lr: float, warmup: int, floor: float = 1e-3) -> float:
    """The official schedule: linear warm-up from ``floor·lr`` over ``warmup`` steps, then cosine to ``floor·lr``."""
    lo = floor * lr
    if warmup > 0 and step < warmup:
        return lo + (lr - lo) * step / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return lo + 0.5 * (lr - lo) * (1.0 + math.cos(math.pi * progress))


# ImageNet-style per-channel normalisation of CIFAR-10 (train-set statistics), applied inside the model call.
_CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR_STD = (0.2470, 0.2435, 0.2616)


def _normalise(x_u8: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(_CIFAR_MEAN, device=x_u8.device).view(1, 3, 1, 1)
    std = torch.tensor(_CIFAR_STD, device=x_u8.device).view(1, 3, 1, 1)
    return (x_u8.float() / 255.0 - mean) / std


@dataclass
class ClassifierRun:
    """What :func:`train_classifier` returns: the trained model (eval mode), steps, wall time, throughput and a
    history ``{"step", "loss", "lr"}`` (loss averaged over ``log_every`` steps)."""

    model: nn.Module
    steps: int
    wall_s: float
    images_per_s: float
    history: Dict[str, List[float]] = field(default_factory=dict)


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def train_classifier(model: nn.Module, sources: Sequence[Tuple[torch.Tensor, torch.Tensor, int]], *, steps: int,
                     lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 5e-4, warmup_steps: int = 0,
                     augment: bool = True, bf16: bool = True, channels_last: bool = True, log_every: int = 50,
                     seed: int = 0) -> ClassifierRun:
    """Train ``model`` (in place, on its device) with cross-entropy on batches mixed from several sources.

    Args:
        model: e.g. :func:`resnet18_cifar`, already on its device.
        sources: ``[(images uint8 (N, 3, H, W), labels long (N,), batch_size), ...]``; every step draws
            ``batch_size`` images uniformly with replacement from each source and concatenates them (the
            official real / synthetic batch split). A source with batch size 0 is skipped.
        steps, lr, momentum, weight_decay, warmup_steps: SGD with :func:`warmup_cosine_lr`.
        augment: random crop (padding H/8) + flip; False trains on the images as they are (the "no
            augmentation" baseline).
        bf16, channels_last: CUDA speed-ups (ignored on CPU).
        seed: seeds the batch draws and the augmentation.
    """
    device = _device_of(model)
    use_bf16 = bf16 and device.type == "cuda"
    cl = channels_last and device.type == "cuda"
    if cl:
        model = model.to(memory_format=torch.channels_last)
    srcs = [(x.to(device), y.to(device).long(), int(b)) for x, y, b in sources if int(b) > 0 and len(x) > 0]
    if not srcs:
        raise ValueError("train_classifier needs at least one source with images and a positive batch size")
    for x, y, _ in srcs:
        if x.dtype != torch.uint8 or x.ndim != 4 or y.shape != (x.shape[0],):
            raise ValueError(f"sources must be (uint8 (N, C, H, W), long (N,), batch); got {x.dtype} "
                             f"{tuple(x.shape)} and labels {tuple(y.shape)}")
    g = torch.Generator(device=device).manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=False)
    history: Dict[str, List[float]] = {"step": [], "loss": [], "lr": []}
    pad = srcs[0][0].shape[-1] // 8
    model.train()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    acc_loss = torch.zeros((), device=device)
    n_img = 0
    for step in range(steps):
        xs, ys = [], []
        for x, y, b in srcs:
            idx = torch.randint(0, x.shape[0], (b,), generator=g, device=device)
            xs.append(x[idx])
            ys.append(y[idx])
        xb, yb = _normalise(torch.cat(xs)), torch.cat(ys)
        if augment:
            xb = random_crop_flip(xb, padding=pad, generator=g)
        if cl:
            xb = xb.contiguous(memory_format=torch.channels_last)
        cur = warmup_cosine_lr(step, steps, lr, warmup_steps)
        for group in opt.param_groups:
            group["lr"] = cur
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = F.cross_entropy(model(xb).float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        acc_loss += loss.detach()
        n_img += xb.shape[0]
        if (step + 1) % log_every == 0 or step + 1 == steps:
            k = (step % log_every) + 1
            history["step"].append(step + 1)
            history["loss"].append(float(acc_loss) / k)
            history["lr"].append(cur)
            acc_loss.zero_()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - t0
    model.eval()
    return ClassifierRun(model, steps, wall, n_img / max(wall, 1e-9), history)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 1000, bf16: bool = True) -> torch.Tensor:
    """Predicted labels (N,) long (CPU) of uint8 images (N, 3, H, W) (or float in [-1, 1], converted)."""
    device = _device_of(model)
    use_bf16 = bf16 and device.type == "cuda"
    was = model.training
    model.eval()
    out = []
    for s in range(0, images.shape[0], batch_size):
        xb = images[s:s + batch_size].to(device)
        if xb.dtype != torch.uint8:
            xb = ((xb.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            out.append(model(_normalise(xb)).float().argmax(1).cpu())
    model.train(was)
    return torch.cat(out)


def evaluate_classifier(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, num_classes: int = 10,
                        batch_size: int = 1000) -> Dict[str, object]:
    """Test accuracy: overall, balanced (mean of per-class accuracies) and per class.

    Returns ``{"accuracy": float, "balanced_accuracy": float, "per_class": [C floats]}``; a class absent from
    ``labels`` gets NaN and is left out of the balanced mean.
    """
    pred = predict(model, images, batch_size)
    y = labels.cpu().long()
    correct = (pred == y).float()
    per_class = []
    for c in range(num_classes):
        m = y == c
        per_class.append(float(correct[m].mean()) if m.any() else float("nan"))
    present = [v for v in per_class if v == v]
    return {"accuracy": float(correct.mean()), "balanced_accuracy": sum(present) / max(1, len(present)),
            "per_class": per_class}


def equivalent_real_size(sizes: Sequence[int], accuracies: Sequence[float], target: float) -> Tuple[float, str]:
    """How many real images a real-only classifier needs to reach ``target`` accuracy: the reading of a
    data-size curve behind "k× sample complexity" claims (a set whose accuracy matches n real images is worth n).

    The curve (``sizes`` increasing, ``accuracies`` measured there) is interpolated linearly in log size, and the
    first crossing of ``target`` is returned. Outside the measured range nothing is extrapolated: ``(sizes[0],
    "below")`` if ``target`` is under the first point, ``(sizes[-1], "above")`` if the curve never reaches it.

    Returns ``(size, where)`` with ``where`` in ``{"below", "inside", "above"}``.
    """
    n = np.asarray(sizes, dtype=float)
    a = np.asarray(accuracies, dtype=float)
    if n.ndim != 1 or n.shape != a.shape or n.size == 0 or np.any(np.diff(n) <= 0) or n[0] <= 0:
        raise ValueError(f"sizes must be increasing positive numbers with one accuracy each, got {list(sizes)} "
                         f"and {list(accuracies)}")
    if target < a[0]:
        return float(n[0]), "below"
    if target == a[0]:
        return float(n[0]), "inside"
    for k in range(1, n.size):
        if a[k] >= target:
            frac = (target - a[k - 1]) / (a[k] - a[k - 1])
            return float(np.exp(np.log(n[k - 1]) + frac * (np.log(n[k]) - np.log(n[k - 1])))), "inside"
    return float(n[-1]), "above"
