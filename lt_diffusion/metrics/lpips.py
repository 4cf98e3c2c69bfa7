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

Note: minority guidance's official code (``construct_ms_dataset.py``) uses LPIPS with a VGG backbone; only AlexNet is available offline.
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


_RANGES = {(-1, 1): "[-1, 1]", (0, 1): "[0, 1]"}


def _stats(x: torch.Tensor, name: str) -> tuple[float, float]:
    """(min, max) of a float tensor after refusing NaN/inf with the tensor's name."""
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        raise ValueError(f"{name}: {int((~finite).sum())} non-finite value(s) (NaN/inf) of {x.numel()}; LPIPS needs "
                         f"finite images: find where they come from (e.g. a diverged model) and drop or repair them")
    return float(x.min()), float(x.max())


def _check(x: Any, name: str, value_range: tuple | None) -> tuple[torch.Tensor, tuple | None]:
    """Validate one LPIPS input; returns ``(x, range)`` with ``range`` ``(0, 255)`` for uint8, the float range
    given, or ``None`` when it is to be inferred from both inputs."""
    if not torch.is_tensor(x):
        raise ValueError(f"{name}: expected a tensor (N, 3, H, W), uint8 or float in [-1, 1] / [0, 1], got "
                         f"{type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        nhwc = x.ndim == 4 and x.shape[-1] == 3
        raise ValueError(f"{name}: expected shape (N, 3, H, W), got {tuple(x.shape)}"
                         + ("; it looks NHWC: x.permute(0, 3, 1, 2)" if nhwc else ""))
    if x.dtype == torch.uint8:
        return x, (0, 255)
    if not torch.is_floating_point(x):
        raise ValueError(f"{name}: expected uint8 or float images, got {x.dtype}")
    lo, hi = _stats(x, name)
    if value_range is None:
        if lo < -1.0 - 1e-6 or hi > 1.0 + 1e-6:
            raise ValueError(f"{name}: expected values in [-1, 1] (or [0, 1] with value_range=(0, 1)), got "
                             f"[{lo:.4g}, {hi:.4g}]; pass uint8 images as they are (or x / 127.5 - 1)")
        return x, None
    lo_ok, hi_ok = value_range
    if lo < lo_ok - 1e-6 or hi > hi_ok + 1e-6:
        hint = ("; values below 0 look like model-range images: pass value_range=(-1, 1)"
                if value_range == (0, 1) and lo < 0 and lo >= -1 - 1e-6 and hi <= 1 + 1e-6 else "")
        raise ValueError(f"{name}: value_range={value_range} but the values lie in [{lo:.4g}, {hi:.4g}]{hint}")
    return x, tuple(value_range)


def _to_lpips_range(x: torch.Tensor, value_range: tuple) -> torch.Tensor:
    """To ``[-1, 1]`` (the ``lpips`` package's input, ``normalize=False``), float32, on ``x``'s device."""
    if value_range == (0, 255):
        return x.float() / 127.5 - 1
    if value_range == (0, 1):
        return 2 * x.float() - 1  # as lpips' own normalize=True
    return x.float()


def lpips_distance(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    value_range: tuple[float, float] | None = None,
    resolution: int = LPIPS_RESOLUTION,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    data_root: str | os.PathLike | None = None,
) -> torch.Tensor:
    """LPIPS distance between paired images ``a, b: (N, 3, H, W)`` -> ``(N,)`` float32 (CPU).

    Inputs: uint8 (``[0, 255]``, as every metric here accepts), or float with ``value_range`` ``(-1, 1)``
    (model range, the ``lpips`` package's convention) or ``(0, 1)``. With ``value_range=None`` (default) float
    input is taken as ``[-1, 1]``, except that when *both* inputs lie entirely in ``[0, 1]`` the range cannot be
    told and a ``ValueError`` asks for ``value_range`` (taking ``[0, 1]`` images as ``[-1, 1]`` changes LPIPS a lot:
    0.41 instead of 0.48 on CIFAR pairs). NaN/inf are refused, naming the tensor. Both inputs are resized to
    ``resolution`` first (see module docstring). No gradients (inference mode); 0 for identical images.
    """
    if value_range is not None:
        value_range = tuple(value_range)
        if value_range not in _RANGES:
            raise ValueError(f"value_range must be (-1, 1), (0, 1) or None, got {value_range}")
    a, range_a = _check(a, "a", value_range)
    b, range_b = _check(b, "b", value_range)
    if a.shape != b.shape:
        raise ValueError(f"lpips_distance compares pairs: a {tuple(a.shape)} and b {tuple(b.shape)} must match")
    floats = [x for x, r in ((a, range_a), (b, range_b)) if r is None]
    if floats and all(float(x.min()) >= 0.0 for x in floats):
        raise ValueError("lpips_distance: the float input lies entirely in [0, 1], so its range cannot be told: pass "
                         "value_range=(0, 1) for images in [0, 1], or value_range=(-1, 1) for model-range images "
                         "that happen to be non-negative")
    range_a, range_b = range_a or (-1, 1), range_b or (-1, 1)
    net = get_lpips(device, data_root)
    dev = next(net.parameters()).device
    out = []
    with torch.inference_mode():
        for s in range(0, a.shape[0], batch_size):
            xa = resize_for_lpips(_to_lpips_range(a[s : s + batch_size].to(dev), range_a), resolution)
            xb = resize_for_lpips(_to_lpips_range(b[s : s + batch_size].to(dev), range_b), resolution)
            out.append(net(xa, xb).flatten().cpu())
    return torch.cat(out)
