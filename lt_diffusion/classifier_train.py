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

from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NoisyClassifierLoss", "accuracy_vs_t", "default_eval_timesteps"]


def _device_of(module: nn.Module) -> torch.device:
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _timestep_map(diffusion, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(getattr(diffusion, "timestep_map", range(diffusion.num_timesteps)),
                           dtype=torch.long, device=device)


class NoisyClassifierLoss:
    """The noisy classifier's objective in the :class:`lt_diffusion.train.Trainer`'s ``diffusion`` slot
    (guided-diffusion's ``scripts/classifier_train.py`` with ``noised=True``; chapter 03, Eq. {eq}`adm-bayes`).

    ``training_losses(classifier, x_start, t, model_kwargs={"y": y})``: ``x_t = q_sample(x_start, t)`` with fresh
    noise, logits = ``classifier(x_t, t_original)``, per-sample cross-entropy on ``y`` (any integer labels in
    ``[0, K)``: classes, or minority levels in chapter 07). The trainer draws ``t ~ U{0, ..., num_timesteps - 1}``.

    Args:
        diffusion: the forward process (use the one the sampler will use: its ``timestep_map`` turns spaced
            indices into the original t that ``classifier_cond_fn`` hands the classifier while sampling).
        max_t: draw t only below this spaced index (None: all T steps).
        noised: False trains on clean x_0 with t = 0 (guided-diffusion's ``--noised False``: a classifier that never
            sees noise, e.g. a downstream classifier of clean points).
    Returns ``{"loss": (B,), "accuracy": (B,)}``.
    """

    def __init__(self, diffusion, max_t: Optional[int] = None, noised: bool = True):
        self.diffusion, self.noised = diffusion, bool(noised)
        self.num_timesteps = 1 if not noised else diffusion.num_timesteps if max_t is None else int(max_t)

    def training_losses(self, model: nn.Module, x_start: torch.Tensor, t: torch.Tensor,
                        model_kwargs: Optional[dict] = None) -> Dict[str, torch.Tensor]:
        y = (model_kwargs or {}).get("y")
        if y is None:
            raise ValueError("the noisy classifier needs labels: model_kwargs['y'] (the classifier's num_classes)")
        x_t = self.diffusion.q_sample(x_start, t) if self.noised else x_start
        logits = model(x_t, _timestep_map(self.diffusion, x_start.device)[t]).float()
        return {"loss": F.cross_entropy(logits, y, reduction="none"), "accuracy": (logits.argmax(1) == y).float()}


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
