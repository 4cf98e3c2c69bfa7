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
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict

from .unet import UNetConfig

__all__ = ["MODEL_PRESETS", "get_model_config"]

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
