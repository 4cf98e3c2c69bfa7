"""Chapter presets: ``smoke`` (CPU, CI), ``book`` (one GPU, minutes), ``paper`` (the paper's settings).

Each chapter module in this package registers its presets with :func:`register`; a notebook's
``parameters`` cell only names a scale, and the chapter calls ``get_preset(chapter, SCALE)``.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Dict

SCALES = ("smoke", "book", "paper")
_REGISTRY: Dict[str, Dict[str, Any]] = {}


def register(chapter: str, presets: Dict[str, Any]) -> None:
    """Register the ``{scale: preset}`` mapping of one chapter (all three scales are required)."""
    missing = [s for s in SCALES if s not in presets]
    if missing:
        raise ValueError(f"chapter {chapter!r} lacks presets for scales {missing}; every chapter needs {SCALES}")
    _REGISTRY[chapter] = dict(presets)


def _load_all() -> None:
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


def chapters() -> list:
    """Names of all chapters that have presets."""
    _load_all()
    return sorted(_REGISTRY)


def get_preset(chapter: str, scale: str) -> Any:
    """Return the preset of ``chapter`` at ``scale``.

    Raises ``ValueError`` naming the valid choices when either is unknown.
    """
    _load_all()
    if chapter not in _REGISTRY:
        raise ValueError(f"unknown chapter {chapter!r}; known chapters: {sorted(_REGISTRY)}")
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {list(SCALES)} "
                         f"(smoke: CPU/CI, book: one GPU in minutes, paper: the paper's settings)")
    return _REGISTRY[chapter][scale]
