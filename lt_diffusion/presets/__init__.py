"""Chapter presets: ``smoke`` (CPU, CI), ``book`` (one GPU, minutes), ``paper`` (the paper's settings).

A preset is plain data: one :class:`lt_diffusion.experiments.ChapterPreset` subclass per chapter, whose ``arms``
name every training run (``preset.arm(name)``) and whose other fields are the chapter's flat values. A notebook's
``parameters`` cell only names a scale; the chapter calls ``get_preset(chapter, SCALE)``. What a preset would cost
on one H100 is :func:`lt_diffusion.experiments.projected_gpu_seconds`.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Dict

SCALES = ("smoke", "book", "paper")
CHAPTER_MODULES = {"ddpm": "ddpm", "improved_ddpm": "improved_ddpm", "adm": "adm", "cfg": "cfg", "p2": "p2",
                   "cbdm": "cbdm", "minority_guidance": "minority", "diffusion_inversion": "inversion"}


def chapters() -> list:
    """Names of all chapters that have presets."""
    return sorted(CHAPTER_MODULES)


def get_preset(chapter: str, scale: str) -> Any:
    """The preset of ``chapter`` at ``scale``; a ``ValueError`` names the valid choices when either is unknown."""
    if chapter not in CHAPTER_MODULES:
        raise ValueError(f"unknown chapter {chapter!r}; known chapters: {chapters()}")
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {list(SCALES)} "
                         f"(smoke: CPU/CI, book: one GPU in minutes, paper: the paper's settings)")
    presets: Dict[str, Any] = importlib.import_module(f"{__name__}.{CHAPTER_MODULES[chapter]}").PRESETS
    return dataclasses.replace(presets[scale], chapter=chapter)
