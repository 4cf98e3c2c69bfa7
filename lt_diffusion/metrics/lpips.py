"""LPIPS (Zhang et al. 2018) through the ``lpips`` package, with the offline AlexNet backbone.

The five LPIPS linear layers ship inside the ``lpips`` package (``weights/v0.1/alex.pth``); the AlexNet
convolutions come from :func:`lt_diffusion.assets.alexnet_features_state_dict` and are copied into the
package's network by position (``net.slice1.0`` <- ``features.0``, ..., as the assets README shows).

Resolution: both inputs are resized bilinearly (``align_corners=False``, antialias off) to
``LPIPS_RESOLUTION = 64`` before the network. At CIFAR's native 32x32, AlexNet's stride-4 first layer and
two max-pools leave 1x1 maps for the last three layers, so those layers only see global colour
statistics; at 64x64 every layer keeps a spatial map (15, 7, 3, 3, 3) while staying cheap. LPIPS values
depend strongly on this choice (assets README: 0.24 at 32, 0.50 at 64, 0.67 at 224 for the same pairs);
use one resolution for everything that is compared.

Note: minority guidance (papers.md §6.2) uses LPIPS with a VGG backbone; only AlexNet is available offline.
"""
from __future__ import annotations

import os
import warnings
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["LPIPS_RESOLUTION", "get_lpips", "lpips_distance", "resize_for_lpips"]

LPIPS_RESOLUTION = 64

_CACHE: dict[tuple, torch.nn.Module] = {}


def _alexnet_state_dict(data_root=None) -> dict[str, torch.Tensor]:
    from lt_diffusion.assets import alexnet_features_state_dict

    return alexnet_features_state_dict(data_root)


def get_lpips(device: str | torch.device | None = None, data_root: str | os.PathLike | None = None) -> torch.nn.Module:
    """``lpips.LPIPS(net="alex")`` with the offline AlexNet convolutions, eval mode, on ``device`` (cached)."""
    import lpips

    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    key = (str(device), str(data_root) if data_root is not None else "env:" + os.environ.get("LT_DIFFUSION_ASSETS", ""))
    if key in _CACHE:
        return _CACHE[key]
    sd = _alexnet_state_dict(data_root)
    # pnet_rand=True: do not ask torchvision to download AlexNet; the linear layers still load.
    with warnings.catch_warnings():  # lpips 0.1.4 still calls torchvision's deprecated `pretrained=`
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        loss_fn = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    copied = 0
    for name, module in loss_fn.net.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            index = name.split(".")[-1]  # torchvision features index, e.g. "slice2.3" -> "3"
            try:
                module.weight.data.copy_(sd[f"features.{index}.weight"])
                module.bias.data.copy_(sd[f"features.{index}.bias"])
            except KeyError as exc:
                raise KeyError(f"AlexNet state dict lacks {exc}; expected torchvision 'features.*' names") from exc
            copied += 1
    if copied != 5:
        raise RuntimeError(f"expected 5 AlexNet conv layers in lpips' network, found {copied}")
    loss_fn = loss_fn.eval().to(device).requires_grad_(False)
    _CACHE[key] = loss_fn
    return loss_fn


def resize_for_lpips(x: torch.Tensor, resolution: int = LPIPS_RESOLUTION) -> torch.Tensor:
    """Bilinear resize of ``x: (B, 3, H, W)`` to ``(B, 3, resolution, resolution)`` (no-op if already there)."""
    if x.shape[-2:] == (resolution, resolution):
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)


def _check(x: Any, name: str) -> torch.Tensor:
    if not torch.is_tensor(x) or not torch.is_floating_point(x):
        raise ValueError(f"{name}: expected a float tensor (N, 3, H, W) in [-1, 1], got {type(x).__name__}"
                         + (f" {x.dtype}" if torch.is_tensor(x) else ""))
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name}: expected shape (N, 3, H, W), got {tuple(x.shape)}")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1.0 - 1e-6 or hi > 1.0 + 1e-6:
        raise ValueError(f"{name}: expected values in [-1, 1], got [{lo:.4g}, {hi:.4g}] (uint8 images: x / 127.5 - 1)")
    return x


def lpips_distance(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    resolution: int = LPIPS_RESOLUTION,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    data_root: str | os.PathLike | None = None,
) -> torch.Tensor:
    """LPIPS distance between paired images: ``a, b: (N, 3, H, W)`` in ``[-1, 1]`` -> ``(N,)`` float32 (CPU).

    Both inputs are resized to ``resolution`` first (see module docstring). No gradients (inference
    mode); 0 for identical images.
    """
    a, b = _check(a, "a"), _check(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"lpips_distance compares pairs: a {tuple(a.shape)} and b {tuple(b.shape)} must match")
    net = get_lpips(device, data_root)
    dev = next(net.parameters()).device
    out = []
    with torch.inference_mode():
        for s in range(0, a.shape[0], batch_size):
            xa = resize_for_lpips(a[s : s + batch_size].to(dev, torch.float32), resolution)
            xb = resize_for_lpips(b[s : s + batch_size].to(dev, torch.float32), resolution)
            out.append(net(xa, xb).flatten().cpu())
    return torch.cat(out)
