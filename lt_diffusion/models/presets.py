"""Named UNet configurations.

- ``iddpm_cifar10``: the openai/improved-diffusion CIFAR-10 model (README flags ``--num_channels 128
  --num_res_blocks 3 --learn_sigma True --dropout 0.3``, defaults attention at 16 and 8, 4 heads, AdaGN,
  ``channel_mult=(1, 2, 2, 2)`` for 32x32): 52.5 M parameters ("50M" in the checkpoint name).
- ``ddpm_cifar10``: the DDPM CIFAR-10 model as used by CBDM (pytorch-ddpm) and google/ddpm-cifar10-32:
  128 channels, (1, 2, 2, 2), 2 blocks, attention at 16, 1 head, dropout 0.1, embedding added (no AdaGN),
  fixed variance. 35.7 M parameters unconditional, the same count as diffusers' ``UNet2DModel`` at that
  config (checked in tests/test_models.py).
- ``book``: a small model for minutes-scale single-GPU runs in the book.
- ``smoke``: a tiny model for CPU tests and CI.

Class conditioning is a per-run choice, so presets are unconditional; pass ``num_classes=10``.

:func:`ablation_configs` derives the variants of ADM's architecture ablation (chapter 03) from a baseline.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Tuple

from .unet import UNetConfig

__all__ = ["MODEL_PRESETS", "get_model_config", "ABLATION_VARIANTS", "ABLATION_DESCRIPTIONS", "ablation_configs"]

MODEL_PRESETS: Dict[str, UNetConfig] = {
    "iddpm_cifar10": UNetConfig(
        image_size=32, model_channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=3,
        attention_resolutions=(16, 8), num_heads=4, dropout=0.3, learn_sigma=True,
        use_scale_shift_norm=True,
    ),
    "ddpm_cifar10": UNetConfig(
        image_size=32, model_channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=2,
        attention_resolutions=(16,), num_heads=1, dropout=0.1, learn_sigma=False,
        use_scale_shift_norm=False,
    ),
    "book": UNetConfig(
        image_size=32, model_channels=64, channel_mult=(1, 2, 2), num_res_blocks=2,
        attention_resolutions=(16,), num_heads=4, dropout=0.1, use_scale_shift_norm=True,
    ),
    "smoke": UNetConfig(
        image_size=32, model_channels=16, channel_mult=(1, 2), num_res_blocks=1,
        attention_resolutions=(16,), num_heads=2, dropout=0.0, use_scale_shift_norm=True,
    ),
}


def get_model_config(name: str, **overrides: Any) -> UNetConfig:
    """The :class:`UNetConfig` of preset ``name`` with ``overrides`` applied (e.g. ``num_classes=10``).

    Raises ``ValueError`` listing the preset names when ``name`` is unknown, and ``TypeError`` for an
    override that is not a config field.
    """
    if name not in MODEL_PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(MODEL_PRESETS)}")
    return dataclasses.replace(MODEL_PRESETS[name], **overrides)


#: The single changes of ADM's architecture ablation, in the order of its Tables 1-3, then ADM's combination.
ABLATION_VARIANTS: Tuple[str, ...] = (
    "baseline", "wide_shallow", "heads64", "attn_32_16_8", "biggan_updown", "rescale_1_sqrt2", "add_emb", "adm",
)

ABLATION_DESCRIPTIONS: Dict[str, str] = {
    "baseline": "base UNet: 1 attention head at 16×16, AdaGN, conv up/down",
    "wide_shallow": "×1.5 channels, 1 residual block per level instead of 2",
    "heads64": "attention heads of a fixed 64 channels (more heads at wide levels)",
    "attn_32_16_8": "self-attention at 32×32, 16×16 and 8×8",
    "biggan_updown": "BigGAN residual blocks for down/up-sampling",
    "rescale_1_sqrt2": "residual outputs multiplied by 1/√2",
    "add_emb": "embedding added before the second norm (no AdaGN)",
    "adm": "ADM's choice: 64-channel heads + attention 32/16/8 + BigGAN up/down + AdaGN",
}


def ablation_configs(base: UNetConfig, head_channels: int = 64,
                     variants: Tuple[str, ...] = ABLATION_VARIANTS) -> Dict[str, UNetConfig]:
    """The UNet of each variant of ADM's architecture ablation (chapter 03, Eq. {eq}`adm-adagn` for AdaGN): ``base``
    with one change (``"adm"``: ADM's combination).

    ``base`` should have ``num_heads=1``, ``num_head_channels=-1``, AdaGN on, conv up/down-sampling and no
    rescaling (the baseline row); ``head_channels`` is the fixed head width of ``"heads64"`` (64 as ADM;
    smaller for tiny smoke models whose widths are below 64).
    """
    attention_32_16_8 = tuple(r for r in (32, 16, 8) if base.image_size // r < 2 ** len(base.channel_mult))
    changes: Dict[str, Dict[str, Any]] = {
        "baseline": {},
        "wide_shallow": {"model_channels": int(round(base.model_channels * 1.5 / 16)) * 16,
                         "num_res_blocks": max(1, base.num_res_blocks - 1)},
        "heads64": {"num_head_channels": head_channels},
        "attn_32_16_8": {"attention_resolutions": attention_32_16_8},
        "biggan_updown": {"resblock_updown": True},
        "rescale_1_sqrt2": {"resblock_rescale": True},
        "add_emb": {"use_scale_shift_norm": False},
        "adm": {"num_head_channels": head_channels, "attention_resolutions": attention_32_16_8,
                "resblock_updown": True, "use_scale_shift_norm": True},
    }
    unknown = [v for v in variants if v not in changes]
    if unknown:
        raise ValueError(f"unknown ablation variants {unknown}; choose from {list(changes)}")
    return {v: dataclasses.replace(base, **changes[v]) for v in variants}
