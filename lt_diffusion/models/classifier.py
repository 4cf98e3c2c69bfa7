"""ADM's noisy classifier (``EncoderUNetModel``, Dhariwal & Nichol 2021, Sec. 4): the UNet's encoder half
and middle block, then a pooling head. It reads x_t and t, so its gradient ``grad_x log p(y | x_t)`` can
steer sampling (classifier guidance, Ch. ADM) or towards rare samples (minority guidance, whose
"classes" are ordinal minority-score levels).

The defaults are guided-diffusion's ``classifier_defaults`` with the 32x32 channel multipliers of
DDPM-IP: width 128, depth 2, attention at 32/16/8, AdaGN, BigGAN up/down blocks, attention pooling,
64 channels per head.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .nn import (AttentionBlock, Downsample, EmbedSequential, GroupNorm32, ResBlock, check_model_input,
                 check_timesteps, norm_act, norm_groups, sinusoidal_freqs, timestep_embedding, zero_module)

__all__ = ["ClassifierConfig", "EncoderUNetModel", "AttentionPool2d"]


@dataclass(frozen=True)
class ClassifierConfig:
    """Hyper-parameters of :class:`EncoderUNetModel` (guided-diffusion names in comments).

    Attributes:
        num_classes: number of logits (``out_channels``); e.g. 10 for CIFAR-10, L levels for minority guidance.
        image_size: input height = width.
        in_channels: input channels (3 for images; more when fed features, as minority guidance does).
        model_channels: base width (``classifier_width``).
        num_res_blocks: residual blocks per level (``classifier_depth``).
        attention_resolutions: feature-map sizes with self-attention (``classifier_attention_resolutions``).
        channel_mult: width multiplier per level.
        dropout: dropout in the residual blocks.
        num_heads, num_head_channels: attention heads, or fixed channels per head (-1 disables).
        use_scale_shift_norm: AdaGN (``classifier_use_scale_shift_norm``).
        resblock_updown: BigGAN down-sampling blocks (``classifier_resblock_updown``).
        pool: ``"attention"`` (attention pooling, ADM's choice) or ``"adaptive"`` (global average + 1x1 conv).
    """

    num_classes: int = 10
    image_size: int = 32
    in_channels: int = 3
    model_channels: int = 128
    num_res_blocks: int = 2
    attention_resolutions: Tuple[int, ...] = (32, 16, 8)
    channel_mult: Tuple[int, ...] = (1, 2, 2, 2)
    dropout: float = 0.0
    num_heads: int = 1
    num_head_channels: int = 64
    use_scale_shift_norm: bool = True
    resblock_updown: bool = True
    pool: str = "attention"
    max_norm_groups: int = 32

    def __post_init__(self):
        object.__setattr__(self, "attention_resolutions", tuple(int(r) for r in self.attention_resolutions))
        object.__setattr__(self, "channel_mult", tuple(int(m) for m in self.channel_mult))
        if self.pool not in ("attention", "adaptive"):
            raise ValueError(f"pool must be 'attention' or 'adaptive', got {self.pool!r}")
        if self.image_size % (2 ** (len(self.channel_mult) - 1)):
            raise ValueError(f"image_size {self.image_size} not divisible by 2^{len(self.channel_mult) - 1}")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


class AttentionPool2d(nn.Module):
    """CLIP-style attention pooling: the spatial mean token attends to all tokens (+ learned positions).

    Shapes: x (B, C, H, W) -> (B, out_dim). Heads = C // head_channels.
    """

    def __init__(self, spatial: int, channels: int, head_channels: int, out_dim: int):
        super().__init__()
        self.num_heads = max(1, channels // head_channels)
        self.pos = nn.Parameter(torch.randn(spatial * spatial + 1, channels) / channels ** 0.5)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        nh = self.num_heads
        tok = x.permute(0, 2, 3, 1).reshape(B, H * W, C)
        tok = torch.cat([tok.mean(dim=1, keepdim=True), tok], dim=1) + self.pos.to(tok.dtype)  # (B, L+1, C)
        q, k, v = self.qkv(tok).view(B, -1, 3, nh, C // nh).permute(2, 0, 3, 1, 4).unbind(0)
        # Only the pooled (mean) token's output is read, so it is the only query.
        a = F.scaled_dot_product_attention(q[:, :, :1], k, v)  # (B, nh, 1, d)
        return self.proj(a.reshape(B, C))


class EncoderUNetModel(nn.Module):
    """Timestep-conditioned classifier: ``forward(x, t) -> logits (B, num_classes)``.

    x: (B, in_channels, image_size, image_size); t: (B,) timesteps (original scale, as ADM's
    ``_WrappedModel`` passes them; float or long).
    """

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = cfg = config
        mc = cfg.model_channels
        ed = 4 * mc
        g = cfg.max_norm_groups
        self.register_buffer("freqs", sinusoidal_freqs(mc), persistent=False)
        self.time_embed = nn.Sequential(nn.Linear(mc, ed), nn.SiLU(), nn.Linear(ed, ed))

        def res(cin: int, cout: int, down: bool = False) -> ResBlock:
            return ResBlock(cin, ed, cout, cfg.dropout, cfg.use_scale_shift_norm, down=down, max_groups=g)

        def attn(ch: int) -> AttentionBlock:
            return AttentionBlock(ch, cfg.num_heads, cfg.num_head_channels, max_groups=g)

        ch = int(cfg.channel_mult[0] * mc)
        self.input_conv = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)
        self.input_blocks = nn.ModuleList()
        res_now = cfg.image_size
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: List[nn.Module] = [res(ch, mult * mc)]
                ch = mult * mc
                if res_now in cfg.attention_resolutions:
                    layers.append(attn(ch))
                self.input_blocks.append(EmbedSequential(*layers))
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(EmbedSequential(
                    res(ch, ch, down=True) if cfg.resblock_updown else Downsample(ch, True)))
                res_now //= 2
        self.middle_block = EmbedSequential(res(ch, ch), attn(ch), res(ch, ch))
        self.out_norm = GroupNorm32(norm_groups(ch, g), ch)
        if cfg.pool == "attention":
            hc = cfg.num_head_channels if cfg.num_head_channels != -1 else ch // cfg.num_heads
            self.head: nn.Module = AttentionPool2d(res_now, ch, hc, cfg.num_classes)
        else:
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), zero_module(nn.Conv2d(ch, cfg.num_classes, 1)),
                                      nn.Flatten())

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x: float (B, in_channels, image_size, image_size), t: (B,) or scalar -> logits (B, num_classes)."""
        check_model_input(x, self.config.in_channels, self.config.image_size, "EncoderUNetModel")
        if not torch.is_tensor(t):
            t = torch.tensor(t, device=x.device)
        check_timesteps(t, x.shape[0], "EncoderUNetModel")
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = F.silu(self.time_embed(timestep_embedding(t, self.freqs)))
        h = self.input_conv(x)
        for block in self.input_blocks:
            h = block(h, emb)
        h = self.middle_block(h, emb)
        return self.head(norm_act(h, self.out_norm))
