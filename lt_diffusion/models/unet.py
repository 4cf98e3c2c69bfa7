"""ADM-style UNet (Dhariwal & Nichol 2021; Nichol & Dhariwal 2021), with a null label and a
continuous conditioning vector.

Conditioning (see DESIGN.md, "Model call"):
- ``y``: long (B,) class labels. The embedding table has ``num_classes + 1`` rows; row ``num_classes``
  is the **null label** used by classifier-free guidance and CBDM. ``y=None`` means null for every sample.
- ``cond``: float (B, cond_dim), e.g. a Diffusion Inversion embedding; a small MLP maps it into the
  timestep-embedding space, where it is added. It replaces the label embedding, so passing both ``y``
  and ``cond`` is an error. ``cond=None`` adds nothing (unconditional).

Every knob of the ADM ablation is a field of :class:`UNetConfig`; named configurations of the papers' CIFAR-10
models are in :mod:`lt_diffusion.models.presets` (``UNetModel(get_model_config("book"))``), which imports this
module and not the other way round.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .nn import (AttentionBlock, Downsample, EmbedSequential, GroupNorm32, ResBlock, Upsample, check_labels,
                 check_model_input, check_timesteps, norm_act, norm_groups, sinusoidal_freqs, timestep_embedding,
                 zero_module)

__all__ = ["UNetConfig", "UNetModel", "compile_model", "count_parameters"]


@dataclass(frozen=True)
class UNetConfig:
    """Hyper-parameters of :class:`UNetModel` (names as in openai/guided-diffusion).

    Attributes:
        image_size: input height = width (used to place attention by resolution).
        in_channels: C of x_t.
        model_channels: base width; the timestep embedding has ``4 * model_channels`` dims.
        out_channels: channels of the prediction (default: ``in_channels``); doubled by ``learn_sigma``.
        num_res_blocks: residual blocks per level on the way down (one more on the way up).
        attention_resolutions: feature-map sizes that get self-attention, e.g. ``(16, 8)``. The middle
            block always has attention.
        dropout: dropout inside the residual blocks.
        channel_mult: width multiplier per level; ``len(channel_mult) - 1`` downsamplings.
        num_heads: attention heads (when ``num_head_channels == -1``).
        num_head_channels: channels per head, overriding ``num_heads``; -1 disables.
        resblock_updown: BigGAN-style residual blocks for down/up-sampling (ADM) instead of convs.
        use_scale_shift_norm: AdaGN (ADM) instead of adding the embedding before the second norm.
        resblock_rescale: multiply every residual block's output by 1/sqrt(2).
        learn_sigma: output ``2 * out_channels`` channels (eps and the variance interpolation v).
        num_classes: None for an unconditional model, else the number of real classes.
        cond_dim: None, or the size of a continuous conditioning vector.
        conv_resample: 3x3 convs in the (non-residual) up/down-sampling layers.
        max_norm_groups: GroupNorm groups (32; fewer only when a width is not divisible).
    """

    image_size: int = 32
    in_channels: int = 3
    model_channels: int = 128
    out_channels: Optional[int] = None
    num_res_blocks: int = 2
    attention_resolutions: Tuple[int, ...] = (16,)
    dropout: float = 0.0
    channel_mult: Tuple[int, ...] = (1, 2, 2, 2)
    num_heads: int = 1
    num_head_channels: int = -1
    resblock_updown: bool = False
    use_scale_shift_norm: bool = False
    resblock_rescale: bool = False
    learn_sigma: bool = False
    num_classes: Optional[int] = None
    cond_dim: Optional[int] = None
    conv_resample: bool = True
    max_norm_groups: int = 32

    def __post_init__(self):
        # Lists from JSON / checkpoints become tuples, so configs stay hashable and comparable.
        object.__setattr__(self, "attention_resolutions", tuple(int(r) for r in self.attention_resolutions))
        object.__setattr__(self, "channel_mult", tuple(int(m) for m in self.channel_mult))
        if self.image_size % (2 ** (len(self.channel_mult) - 1)):
            raise ValueError(f"image_size {self.image_size} not divisible by 2^{len(self.channel_mult) - 1}")

    @property
    def output_channels(self) -> int:
        """Channels of the model output: ``out_channels`` (or ``in_channels``), times 2 with learned sigma."""
        c = self.out_channels or self.in_channels
        return 2 * c if self.learn_sigma else c

    @property
    def time_embed_dim(self) -> int:
        return 4 * self.model_channels

    def to_dict(self) -> Dict[str, Any]:
        """Plain dict of primitives (safe for ``torch.load(weights_only=True)``)."""
        return dataclasses.asdict(self)


class UNetModel(nn.Module):
    """ADM UNet: ``forward(x, t, y=None, cond=None) -> (B, output_channels, H, W)``.

    Layout (as guided-diffusion): stem conv; per level ``num_res_blocks`` ResBlocks (+attention at the
    listed resolutions) then a downsampling; middle ResBlock-Attention-ResBlock; the mirror path with
    ``num_res_blocks + 1`` ResBlocks per level on concatenated skips; GN-SiLU-conv head. The last conv of
    every residual branch, every attention projection and the head start at zero.
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = cfg = config
        mc, ed = cfg.model_channels, cfg.time_embed_dim
        self.register_buffer("freqs", sinusoidal_freqs(mc), persistent=False)
        # The final SiLU of the MLP is the one every block would apply first (see nn.py), done once here.
        self.time_embed = nn.Sequential(nn.Linear(mc, ed), nn.SiLU(), nn.Linear(ed, ed))
        # Row num_classes is the null label (CFG / CBDM); guided-diffusion has no such row.
        self.label_emb = nn.Embedding(cfg.num_classes + 1, ed) if cfg.num_classes is not None else None
        self.cond_embed = (nn.Sequential(nn.Linear(cfg.cond_dim, ed), nn.SiLU(), nn.Linear(ed, ed))
                           if cfg.cond_dim is not None else None)

        g = cfg.max_norm_groups

        def res(cin: int, cout: int, up: bool = False, down: bool = False) -> ResBlock:
            return ResBlock(cin, ed, cout, cfg.dropout, cfg.use_scale_shift_norm, up=up, down=down,
                            rescale=cfg.resblock_rescale, max_groups=g)

        def attn(ch: int) -> AttentionBlock:
            return AttentionBlock(ch, cfg.num_heads, cfg.num_head_channels, max_groups=g)

        ch = int(cfg.channel_mult[0] * mc)
        self.input_conv = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)
        self.input_blocks = nn.ModuleList()
        skip_chans: List[int] = [ch]
        res_now = cfg.image_size
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: List[nn.Module] = [res(ch, mult * mc)]
                ch = mult * mc
                if res_now in cfg.attention_resolutions:
                    layers.append(attn(ch))
                self.input_blocks.append(EmbedSequential(*layers))
                skip_chans.append(ch)
            if level != len(cfg.channel_mult) - 1:
                down = res(ch, ch, down=True) if cfg.resblock_updown else Downsample(ch, cfg.conv_resample)
                self.input_blocks.append(EmbedSequential(down))
                skip_chans.append(ch)
                res_now //= 2

        self.middle_block = EmbedSequential(res(ch, ch), attn(ch), res(ch, ch))

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [res(ch + skip_chans.pop(), mult * mc)]
                ch = mult * mc
                if res_now in cfg.attention_resolutions:
                    layers.append(attn(ch))
                if level and i == cfg.num_res_blocks:
                    layers.append(res(ch, ch, up=True) if cfg.resblock_updown else Upsample(ch, cfg.conv_resample))
                    res_now *= 2
                self.output_blocks.append(EmbedSequential(*layers))

        self.out_norm = GroupNorm32(norm_groups(ch, g), ch)
        self.out_conv = zero_module(nn.Conv2d(ch, cfg.output_channels, 3, padding=1))

    def embed(self, t: torch.Tensor, y: Optional[torch.Tensor] = None,
              cond: Optional[torch.Tensor] = None, batch_size: Optional[int] = None) -> torch.Tensor:
        """Conditioning embedding ``silu(time_embed(t) + label or cond embedding)``: (B, 4 * model_channels).

        t: (B,) or scalar (broadcast to ``batch_size``); y: long (B,) or None; cond: (B, cond_dim) or None.
        """
        if t.ndim == 0:
            t = t.expand(batch_size if batch_size is not None else 1)
        emb = self.time_embed(timestep_embedding(t, self.freqs).to(self.time_embed[0].weight.dtype))
        if cond is not None:
            if self.cond_embed is None:
                raise ValueError("cond given but the model has cond_dim=None")
            if y is not None:
                raise ValueError("pass either y or cond: the cond vector replaces the label embedding")
            emb = emb + self.cond_embed(cond.to(self.cond_embed[0].weight.dtype))
        elif self.label_emb is not None:
            if y is None:  # unconditional pass of a conditional model: the null label for every sample
                y = torch.full((emb.shape[0],), self.config.num_classes, dtype=torch.long, device=emb.device)
            emb = emb + self.label_emb(y)
        elif y is not None:
            raise ValueError("y given but the model is unconditional (num_classes=None)")
        return F.silu(emb)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: Optional[torch.Tensor] = None,
                cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Predict (eps[, v]) from x_t.

        x: float (B, in_channels, image_size, image_size); t: (B,) float or long timesteps (rescaled by the
        diffusion) or scalar; y: long (B,) labels in ``[0, num_classes]`` (num_classes = null) or None;
        cond: float (B, cond_dim) or None. Returns (B, output_channels, H, W).

        Raises ``ValueError`` for input of another dtype or shape (the message says what to do); label values
        are checked on the CPU only, where that costs no device synchronisation.
        """
        check_model_input(x, self.config.in_channels, self.config.image_size, "UNetModel")
        if not torch.is_tensor(t):
            t = torch.tensor(t, device=x.device)
        check_timesteps(t, x.shape[0], "UNetModel")
        if y is not None:
            check_labels(y, x.shape[0], self.config.num_classes, "UNetModel", null_label=True)
        if cond is not None and self.config.cond_dim is not None and tuple(cond.shape) != (x.shape[0], self.config.cond_dim):
            raise ValueError(f"UNetModel: cond must have shape ({x.shape[0]}, {self.config.cond_dim}) (B, cond_dim), "
                             f"got {tuple(cond.shape)}")
        emb = self.embed(t, y, cond, batch_size=x.shape[0])
        h = self.input_conv(x)
        skips = [h]
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out_conv(norm_act(h, self.out_norm))


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _repeated_blocks(model: nn.Module) -> List[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (ResBlock, AttentionBlock))]


def compile_model(model: nn.Module, mode: Optional[str] = None, regional: bool = False,
                  dynamic: Optional[bool] = False, fullgraph: bool = False, backend: str = "inductor") -> nn.Module:
    """``torch.compile`` a UNet / classifier, whole or region by region.

    - ``regional=False``: returns ``torch.compile(model)`` (an ``OptimizedModule`` sharing the weights);
      the fastest steady state, longest compile.
    - ``regional=True``: compiles each ResBlock and AttentionBlock in place (``nn.Module.compile``) and
      returns ``model`` itself. Blocks with the same shapes reuse one compiled graph, so compile time
      grows with the number of distinct block shapes, not with depth. The recompile limit is raised so
      that every distinct shape gets compiled instead of falling back to eager.

    The blocks contain no graph breaks, so ``fullgraph=True`` works for both. ``backend`` is passed to
    ``torch.compile`` (``"eager"`` traces without code generation, for tests).
    """
    kwargs: Dict[str, Any] = dict(dynamic=dynamic, fullgraph=fullgraph, backend=backend)
    if mode is not None:
        kwargs["mode"] = mode
    if not regional:
        return torch.compile(model, **kwargs)
    import torch._dynamo.config as dcfg
    blocks = _repeated_blocks(model)
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(dcfg, name):
            setattr(dcfg, name, max(getattr(dcfg, name), 8 * len(blocks)))
    for block in blocks:
        block.compile(**kwargs)
    return model
