"""Inception Score (Salimans et al. 2016): IS = exp( E_x KL( p(y|x) || p(y) ) ).

p(y) is the mean of p(y|x) over the split; the score is averaged over ``splits`` equal parts (10 in the
original code and in CBDM's evaluation). IS is between 1 (every prediction equals the marginal) and the
number of classes (confident predictions, uniformly spread over classes).

**Offline limitation.** IS needs the Inception *classifier* (``fc``, 1008 logits). The offline FID
weights in the shared assets have no ``fc`` layer (the source model never had one), so
:func:`inception_score_from_images` raises :class:`InceptionScoreUnavailable` there. With full
pytorch-fid weights (online hosts) it works. :func:`inception_score` itself takes logits or any
classifier, e.g. a CIFAR-10 classifier trained in the book (which is *not* comparable with papers' IS).
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import torch

from lt_diffusion.metrics.features import DEFAULT_BATCH_SIZE, as_image_tensor, build_fid_inception_v3, default_device

__all__ = ["InceptionScoreUnavailable", "inception_score", "inception_score_from_images"]


class InceptionScoreUnavailable(RuntimeError):
    """The Inception weights have no ``fc`` classifier layer, so the Inception Score cannot be computed."""


def _is_from_logits(logits: np.ndarray, splits: int) -> tuple[float, float]:
    logits = logits - logits.max(axis=1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))  # log p(y|x), float64
    n = log_p.shape[0]
    scores = []
    for i in range(splits):
        part = log_p[i * n // splits : (i + 1) * n // splits]  # split boundaries of the original code
        p = np.exp(part)
        log_py = np.log(p.mean(axis=0, keepdims=True))
        kl = (p * (part - log_py)).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def inception_score(
    logits: Any | Callable[[torch.Tensor], torch.Tensor],
    splits: int = 10,
    *,
    images: Any = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device | None = None,
) -> tuple[float, float]:
    """Inception Score ``(mean, std)`` over ``splits``.

    Args:
        logits: either class logits ``(N, C)`` (tensor or array; log-probabilities also work), or a
            classifier callable ``f(x: (B, 3, H, W) float in [0, 1] on device) -> logits (B, C)``, in which
            case ``images`` must be given (any form accepted by ``compute_features``).
        splits: number of equal parts (``N >= splits`` required).
    """
    if callable(logits) and not torch.is_tensor(logits):
        if images is None:
            raise ValueError("inception_score: a classifier callable needs images=...")
        classifier = logits
        x = as_image_tensor(images)
        dev = torch.device(device) if device is not None else default_device()
        parts = []
        with torch.inference_mode():
            for s in range(0, x.shape[0], batch_size):
                batch = x[s : s + batch_size].to(dev)
                batch = batch.float().div(255) if batch.dtype == torch.uint8 else batch.float()
                parts.append(classifier(batch).double().cpu())
        logits = torch.cat(parts)
    arr = logits.detach().double().cpu().numpy() if torch.is_tensor(logits) else np.asarray(logits, np.float64)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"inception_score needs logits shaped (N, C) with C >= 2, got {arr.shape}")
    if splits < 1 or arr.shape[0] < splits:
        raise ValueError(f"inception_score: {arr.shape[0]} samples cannot be cut into {splits} splits")
    if not np.isfinite(arr).all():
        raise ValueError("inception_score: logits contain NaN or inf")
    return _is_from_logits(arr, splits)


def inception_score_from_images(
    images: Any,
    splits: int = 10,
    *,
    device: str | torch.device | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    state_dict: dict[str, torch.Tensor] | None = None,
    data_root: str | os.PathLike | None = None,
) -> tuple[float, float]:
    """Inception Score of ``images`` with the FID Inception network's own 1008-way classifier.

    Preprocessing as for FID (bilinear resize to 299, ``2x - 1``). Raises
    :class:`InceptionScoreUnavailable` when the weights (``state_dict`` or the assets loader's) have no
    ``fc.weight``, which is the case for the offline asset ``pt_inception-2015-12-05-nofc.pth``.
    """
    if state_dict is None:
        from lt_diffusion.metrics.features import fid_state_dict

        state_dict = fid_state_dict(data_root)
    if "fc.weight" not in state_dict or "fc.bias" not in state_dict:
        raise InceptionScoreUnavailable(
            "The FID Inception weights have no 'fc' classifier layer (the offline asset "
            "pt_inception-2015-12-05-nofc.pth never had one), so the Inception Score is unavailable offline. "
            "Report FID/KID/precision-recall instead, or pass state_dict= with pytorch-fid's full weights "
            "(pt_inception-2015-12-05-6726825d.pth) on a machine with network access."
        )
    dev = torch.device(device) if device is not None else default_device()
    net = build_fid_inception_v3(state_dict).to(dev)

    def classifier(x01: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.interpolate(x01, size=(299, 299), mode="bilinear", align_corners=False)
        return net(2 * x - 1)  # torchvision Inception3.forward in eval mode -> fc logits (B, 1008)

    return inception_score(classifier, splits, images=images, batch_size=batch_size, device=dev)
