"""A CIFAR ResNet-18 for "train on generated data" experiments (Diffusion Inversion, Ch. 08) and for labelling
generated samples (minority guidance, Ch. 07).

The recipe follows the Diffusion Inversion repository's ``src/train_net.py``: torchvision's
ResNet-18 (He et al. 2016) with a 3×3 stride-1 stem and no max-pool (the usual 32×32 adaptation), SGD with
momentum 0.9 and weight decay 5e-4, a linear warm-up from 0.001·lr followed by a cosine decay to 0.001·lr,
random-crop (padding = size/8) and horizontal-flip augmentation, tested on the real test split. Real and
synthetic images are mixed per batch with separate batch sizes (the official ``--real-bs`` / ``--syn-bs``).

The network is trained by the one :class:`lt_diffusion.train.Trainer` (``TrainConfig(optimizer="sgd",
lr_schedule="cosine", lr_floor=1e-3)``) with :class:`CrossEntropyLoss` as its objective and batches from
:class:`MixedBatchLoader`: the uint8 images stay resident on the device and the augmentation is a gather, so a
step never waits for a host loader. Chapters call :func:`lt_diffusion.experiments.train_model` with an arm of
kind ``"classifier"``.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ARCHS", "build_classifier", "resnet18_cifar", "random_crop_flip", "MixedBatchLoader", "CrossEntropyLoss",
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


def build_classifier(arch: str = "resnet18", num_classes: int = 10) -> nn.Module:
    """``"resnet18"`` (:func:`resnet18_cifar`) or ``"tiny_cnn"`` (smoke only), initialised from the global RNG
    (:func:`lt_diffusion.experiments.build_model` seeds it)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown classifier arch {arch!r}; choose one of {list(ARCHS)}")
    return resnet18_cifar(num_classes) if arch == "resnet18" else _tiny_cnn(num_classes)


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


# ImageNet-style per-channel normalisation of CIFAR-10 (train-set statistics), applied to every batch.
_CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR_STD = (0.2470, 0.2435, 0.2616)


def _normalise(x_u8: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(_CIFAR_MEAN, device=x_u8.device).view(1, 3, 1, 1)
    std = torch.tensor(_CIFAR_STD, device=x_u8.device).view(1, 3, 1, 1)
    return (x_u8.float() / 255.0 - mean) / std


class MixedBatchLoader:
    """Batches for the clean classifier: every batch draws ``batch_size`` images uniformly with replacement from
    each source and concatenates them (the official real / synthetic split, ``--real-bs`` / ``--syn-bs``), then
    normalises and, as the recipe, random-crops (zero padding H/8) and flips, all on ``device``.

    Args:
        sources: ``[(images uint8 (N, 3, H, W), labels long (N,), batch_size), ...]``; a source with batch size 0
            is skipped.
        random_crop, flip: the augmentation (both off: the "no augmentation" baseline).
        seed: the draws and the augmentation (one generator on ``device``).
    Yields ``(x float (B, 3, H, W), y long (B,))``; ``state_dict()`` holds the generator state.
    """

    def __init__(self, sources: Sequence[Tuple[torch.Tensor, torch.Tensor, int]], device="cpu",
                 random_crop: bool = True, flip: bool = True, seed: int = 0, channels_last: bool = False):
        self.device = torch.device(device)
        self.sources = [(x.to(self.device), y.to(self.device).long(), int(b)) for x, y, b in sources
                        if int(b) > 0 and len(x) > 0]
        if not self.sources:
            raise ValueError("MixedBatchLoader needs at least one source with images and a positive batch size")
        for x, y, _ in self.sources:
            if x.dtype != torch.uint8 or x.ndim != 4 or y.shape != (x.shape[0],):
                raise ValueError(f"sources must be (uint8 (N, C, H, W), long (N,), batch); got {x.dtype} "
                                 f"{tuple(x.shape)} and labels {tuple(y.shape)}")
        self.padding = self.sources[0][0].shape[-1] // 8 if random_crop else 0
        self.flip, self.channels_last = flip, channels_last
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def __iter__(self):
        return self

    def __next__(self) -> Tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for x, y, b in self.sources:
            idx = torch.randint(0, x.shape[0], (b,), generator=self.generator, device=self.device)
            xs.append(x[idx])
            ys.append(y[idx])
        xb = _normalise(torch.cat(xs))
        if self.padding or self.flip:
            xb = random_crop_flip(xb, padding=self.padding, flip=self.flip, generator=self.generator)
        if self.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        return xb, torch.cat(ys)

    def state_dict(self) -> Dict[str, torch.Tensor]:
        return {"generator_state": self.generator.get_state()}

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator_state"])


class CrossEntropyLoss:
    """The clean classifier's objective in the Trainer's ``diffusion`` slot: ``training_losses(model, x, t,
    model_kwargs={"y": y}) -> {"loss": (B,) cross-entropy, "accuracy": (B,)}``; ``t`` is unused
    (``num_timesteps = 1``)."""

    num_timesteps = 1

    def training_losses(self, model: nn.Module, x_start: torch.Tensor, t: torch.Tensor,
                        model_kwargs: Optional[dict] = None) -> Dict[str, torch.Tensor]:
        y = (model_kwargs or {}).get("y")
        if y is None:
            raise ValueError("the classifier objective needs labels: model_kwargs['y'] (TrainConfig.num_classes)")
        logits = model(x_start).float()
        return {"loss": F.cross_entropy(logits, y, reduction="none"),
                "accuracy": (logits.argmax(1) == y).float()}


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


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
