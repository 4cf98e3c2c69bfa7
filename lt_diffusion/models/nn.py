"""Building blocks shared by the UNet and the noisy classifier (ADM, Dhariwal & Nichol 2021, App. A).

Every block that needs the timestep embedding takes it as ``forward(x, emb)``, where ``emb`` is the
embedding **after** its SiLU: ADM applies ``SiLU`` first in every block's embedding projection, so the
model computes ``silu(emb)`` once and hands it to all blocks (same maths, one kernel instead of dozens).

Speed notes (they are why the code looks the way it does):
- GroupNorm runs in float32 and returns the input dtype, followed by SiLU in one function
  (:func:`norm_act`), a pattern ``torch.compile`` fuses into one kernel.
- Attention keeps tokens as ``(B, H*W, C)``, which is a free view of a ``channels_last`` feature map,
  and calls ``F.scaled_dot_product_attention`` (flash / memory-efficient kernels on CUDA).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "check_model_input",
    "check_timesteps",
    "check_labels",
    "norm_groups",
    "GroupNorm32",
    "norm_act",
    "timestep_embedding",
    "sinusoidal_freqs",
    "zero_module",
    "EmbedSequential",
    "ResBlock",
    "AttentionBlock",
    "Downsample",
    "Upsample",
]


def check_model_input(x: torch.Tensor, in_channels: int, image_size: int, model: str) -> None:
    """Refuse input a network was not built for: ``x`` must be float ``(B, in_channels, image_size, image_size)``.

    Only dtype and shape are read (no device synchronisation; ``torch.compile`` turns them into guards).
    """
    if not torch.is_tensor(x):
        raise ValueError(f"{model}: x must be a torch.Tensor (B, {in_channels}, {image_size}, {image_size}), "
                         f"got {type(x).__name__}")
    if x.dtype == torch.uint8:
        raise ValueError(f"{model}: x is uint8 (pixels in [0, 255]); the model takes float images in [-1, 1]: "
                         f"convert with lt_diffusion.data.to_model_range(x) (x / 127.5 - 1)")
    if not x.is_floating_point():
        raise ValueError(f"{model}: x must be a floating-point tensor, got {x.dtype}")
    expected = (in_channels, image_size, image_size)
    if x.ndim != 4 or tuple(x.shape[1:]) != expected:
        nhwc = x.ndim == 4 and tuple(x.shape[1:]) == (image_size, image_size, in_channels)
        raise ValueError(f"{model}: x has shape {tuple(x.shape)} but the model was built for (B, {in_channels}, "
                         f"{image_size}, {image_size}) (config in_channels={in_channels}, image_size={image_size}): "
                         + ("the input looks NHWC, use x.permute(0, 3, 1, 2)" if nhwc else
                            "resize the images to the model's size or build the model with this image_size"))


def check_timesteps(t: torch.Tensor, batch: int, model: str) -> None:
    """``t`` must be a scalar or ``(B,)`` of a real dtype."""
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != batch):
        raise ValueError(f"{model}: t must be a scalar or have shape ({batch},) (one timestep per sample), "
                         f"got {tuple(t.shape)}")
    if t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"{model}: t must be float or integer timesteps, got {t.dtype}")


def check_labels(y: torch.Tensor, batch: int, num_classes: Optional[int], model: str, null_label: bool) -> None:
    """``y`` must be integer ``(B,)``; values in ``[0, num_classes]`` (``null_label``) or ``[0, num_classes)``.

    The value range is read only for CPU tensors outside ``torch.compile``, where it costs no device sync.
    """
    if not torch.is_tensor(y) or y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise ValueError(f"{model}: labels y must be an integer (long) tensor of shape ({batch},), got "
                         f"{y.dtype if torch.is_tensor(y) else type(y).__name__}; convert with y.long()")
    if tuple(y.shape) != (batch,):
        raise ValueError(f"{model}: labels y must have shape ({batch},) (one per sample), got {tuple(y.shape)}")
    if num_classes is None or y.device.type != "cpu" or torch.compiler.is_compiling() or not y.numel():
        return
    hi = num_classes if null_label else num_classes - 1
    lo_y, hi_y = int(y.min()), int(y.max())
    if lo_y < 0 or hi_y > hi:
        null = f" (label {num_classes} is the null label)" if null_label else ""
        raise ValueError(f"{model}: labels lie in [{lo_y}, {hi_y}] but the model has {num_classes} classes, so labels "
                         f"must lie in [0, {hi}]{null}: build the model with the data's class count or remap the "
                         f"labels")


def norm_groups(channels: int, max_groups: int = 32, min_group_size: int = 2) -> int:
    """Largest group count ``<= max_groups`` dividing ``channels`` with ``>= min_group_size`` channels each.

    32 for every CIFAR preset (as ADM). The group-size floor matters for tiny models: with one channel
    per group GroupNorm becomes InstanceNorm, which erases the per-channel timestep offset added just
    before it (the non-AdaGN path), so a 16-channel test model gets 8 groups, not 16.
    """
    for g in range(min(max_groups, channels // min_group_size), 0, -1):
        if channels % g == 0:
            return g
    return 1


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32, returned in the input's dtype (ADM's ``GroupNorm32``).

    Under bf16 autocast the statistics stay accurate while the output stays bf16 for the next conv.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, H, W) or (B, C, L)
        return F.group_norm(x.float(), self.num_groups, self.weight, self.bias, self.eps).to(x.dtype)


def norm_act(
    x: torch.Tensor,
    norm: nn.GroupNorm,
    scale: Optional[torch.Tensor] = None,
    shift: Optional[torch.Tensor] = None,
    act: bool = True,
) -> torch.Tensor:
    """``silu(norm(x) * (1 + scale) + shift)``: GroupNorm, optional AdaGN modulation, SiLU.

    x: (B, C, H, W); scale, shift: (B, C, 1, 1) or None. Written as one expression so that
    ``torch.compile`` emits a single fused kernel for norm + modulation + activation.
    """
    h = F.group_norm(x.float(), norm.num_groups, norm.weight, norm.bias, norm.eps)
    if scale is not None:
        # AdaGN (ADM Sec. 3): the embedding rescales and shifts the normalised features.
        h = h * (1 + scale.float()) + shift.float()
    if act:
        h = F.silu(h)
    return h.to(x.dtype)


def timestep_embedding(t: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Sinusoidal embedding ``[cos(t f_k), sin(t f_k)]`` of float timesteps (Transformer / DDPM style).

    t: (B,) float or long (already rescaled to the 0..1000 range by the diffusion);
    freqs: (dim // 2,) float32. Returns (B, dim) float32 (dim even; ADM's cos-then-sin order).
    """
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def sinusoidal_freqs(dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Frequencies ``max_period^(-k / (dim/2))``, k = 0..dim/2-1: shape (dim // 2,)."""
    half = dim // 2
    return torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)


def zero_module(module: nn.Module) -> nn.Module:
    """Zero a module's parameters: residual branches start as the identity (ADM, Improved DDPM)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class EmbedSequential(nn.Sequential):
    """A sequence of blocks that all take ``(x, emb)``; blocks that ignore ``emb`` still accept it."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb)
        return x


class Downsample(nn.Module):
    """Halve H and W: a stride-2 3x3 conv (``use_conv``) or 2x2 average pooling. (B,C,H,W)->(B,C',H/2,W/2)."""

    def __init__(self, channels: int, use_conv: bool = True, out_channels: Optional[int] = None):
        super().__init__()
        out_channels = out_channels or channels
        self.op = (nn.Conv2d(channels, out_channels, 3, stride=2, padding=1) if use_conv
                   else nn.AvgPool2d(kernel_size=2, stride=2))

    def forward(self, x: torch.Tensor, emb: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour, then an optional 3x3 conv. (B,C,H,W)->(B,C',2H,2W)."""

    def __init__(self, channels: int, use_conv: bool = True, out_channels: Optional[int] = None):
        super().__init__()
        out_channels = out_channels or channels
        self.conv = nn.Conv2d(channels, out_channels, 3, padding=1) if use_conv else None

    def forward(self, x: torch.Tensor, emb: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x) if self.conv is not None else x


class ResBlock(nn.Module):
    """ADM residual block: GN-SiLU-conv, add (or AdaGN with) the timestep embedding, GN-SiLU-dropout-conv.

    Args:
        channels: input channels C.
        emb_channels: size E of the (activated) embedding.
        out_channels: output channels C' (default C).
        dropout: dropout before the last conv (0.3 in Improved DDPM's CIFAR model).
        use_scale_shift_norm: AdaGN ``norm(h) * (1 + s) + b`` instead of ``norm(h + e)``.
        up, down: BigGAN-style resampling inside the block (``resblock_updown``).
        rescale: multiply the output by 1/sqrt(2) (keeps the variance of skip + residual ~ constant).
        max_groups: GroupNorm group count cap.

    Shapes: x (B, C, H, W), emb (B, E) -> (B, C', H', W') with H' = 2H (up), H/2 (down) or H.
    """

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        out_channels: Optional[int] = None,
        dropout: float = 0.0,
        use_scale_shift_norm: bool = False,
        up: bool = False,
        down: bool = False,
        rescale: bool = False,
        max_groups: int = 32,
    ):
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.rescale = rescale
        self.in_norm = GroupNorm32(norm_groups(channels, max_groups), channels)
        self.in_conv = nn.Conv2d(channels, out_channels, 3, padding=1)
        # Parameter-free resampling of both branches (BigGAN): nearest up / average-pool down.
        if up:
            self.resample: Optional[nn.Module] = Upsample(channels, use_conv=False)
        elif down:
            self.resample = Downsample(channels, use_conv=False)
        else:
            self.resample = None
        self.emb_proj = nn.Linear(emb_channels, 2 * out_channels if use_scale_shift_norm else out_channels)
        self.out_norm = GroupNorm32(norm_groups(out_channels, max_groups), out_channels)
        self.dropout = nn.Dropout(dropout)
        self.out_conv = zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = norm_act(x, self.in_norm)
        if self.resample is not None:
            h = self.resample(h)
            x = self.resample(x)
        h = self.in_conv(h)
        e = self.emb_proj(emb)[:, :, None, None]  # (B, C' or 2C', 1, 1)
        if self.use_scale_shift_norm:
            scale, shift = e.chunk(2, dim=1)
            h = norm_act(h, self.out_norm, scale, shift)
        else:
            h = norm_act(h + e.to(h.dtype), self.out_norm)
        h = self.out_conv(self.dropout(h))
        out = self.skip(x) + h
        return out * (1.0 / math.sqrt(2.0)) if self.rescale else out


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the H*W positions, with a residual connection.

    Tokens are the ``(B, H*W, C)`` view of the feature map (free under ``channels_last``); q, k, v come
    from one linear layer (the 1x1 conv of ADM) and attention runs in
    ``F.scaled_dot_product_attention`` with scale 1/sqrt(head_dim).

    Args:
        channels: C.
        num_heads: used when ``num_head_channels == -1``.
        num_head_channels: fixed channels per head (heads = C // num_head_channels), or -1.

    Shapes: x (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int, num_heads: int = 1, num_head_channels: int = -1, max_groups: int = 32):
        super().__init__()
        if num_head_channels == -1:
            self.num_heads = num_heads
        else:
            if channels % num_head_channels:
                raise ValueError(f"channels {channels} not divisible by num_head_channels {num_head_channels}")
            self.num_heads = channels // num_head_channels
        if channels % self.num_heads:
            raise ValueError(f"channels {channels} not divisible by num_heads {self.num_heads}")
        self.norm = GroupNorm32(norm_groups(channels, max_groups), channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = zero_module(nn.Linear(channels, channels))

    def forward(self, x: torch.Tensor, emb: Optional[torch.Tensor] = None) -> torch.Tensor:
        B, C, H, W = x.shape
        L, nh = H * W, self.num_heads
        h = norm_act(x, self.norm, act=False)
        h = h.permute(0, 2, 3, 1).reshape(B, L, C)  # view if channels_last, one copy otherwise
        q, k, v = self.qkv(h).view(B, L, 3, nh, C // nh).permute(2, 0, 3, 1, 4).unbind(0)  # (B, nh, L, d)
        a = F.scaled_dot_product_attention(q, k, v)  # (B, nh, L, d)
        a = self.proj(a.transpose(1, 2).reshape(B, L, C))  # (B, L, C)
        return x + a.view(B, H, W, C).permute(0, 3, 1, 2)
