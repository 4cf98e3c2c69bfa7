"""On-disk cache of lab runs and trained lab models, under ``lt_diffusion.paths.cache_dir() / "lab"``.

A cached item is keyed by what produced it: a name, the seeds, the configuration (any JSON-able value) and
:func:`source_hash`, a hash of the source of the lab package and of every engine module a lab runs through.
Editing any of them changes the key, so a stale result is never read back; a notebook that runs a lab right
after the test suite did reads the suite's run instead of training again.

Set ``LT_DIFFUSION_LAB_CACHE=0`` to switch the cache off (every call recomputes and nothing is written).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional

import torch

__all__ = ["source_hash", "cache_key", "lab_cache_dir", "cache_enabled", "load_json", "save_json",
           "load_state", "save_state"]

# Engine modules a lab runs through (relative to the lt_diffusion package).
_ENGINE_FILES = ("schedules.py", "losses.py", "diffusion.py", "resample.py", "train.py", "guidance.py",
                 "weighting.py", "cbdm.py", "minority.py", "inversion.py", "classifier_train.py", "toy2d.py",
                 "data.py", "longtail.py", "metrics/prdc.py", "metrics/features.py")
CACHE_ENV = "LT_DIFFUSION_LAB_CACHE"
_HASH: Optional[str] = None


def source_hash() -> str:
    """SHA-256 (first 16 hex digits) of the lab package's and the engine's source files (and the torch version)."""
    global _HASH
    if _HASH is None:
        pkg = Path(__file__).resolve().parents[1]
        # every lab module but the figures (drawing does not change a number)
        files = sorted(f for f in (pkg / "lab").rglob("*.py") if f.name != "plots.py") + [pkg / f for f in _ENGINE_FILES]
        h = hashlib.sha256()
        for f in files:
            h.update(str(f.relative_to(pkg)).encode())
            h.update(f.read_bytes() if f.is_file() else b"<missing>")
        h.update(torch.__version__.encode())
        _HASH = h.hexdigest()[:16]
    return _HASH


def cache_key(name: str, seeds, config: Any) -> str:
    """A file-name-safe key: ``<name>-<sha256 of (name, seeds, config, source_hash)>``."""
    blob = json.dumps({"name": name, "seeds": [int(s) for s in seeds], "config": config, "source": source_hash()},
                      sort_keys=True, default=str)
    return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:20]}"


def cache_enabled() -> bool:
    return os.environ.get(CACHE_ENV, "1").strip() not in ("0", "false", "no")


def lab_cache_dir() -> Path:
    from ..paths import cache_dir

    path = cache_dir() / "lab"
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_json(key: str) -> Optional[dict]:
    """The cached JSON object for ``key``, or None (also when the cache is off or the file is unreadable)."""
    if not cache_enabled():
        return None
    path = lab_cache_dir() / f"{key}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def save_json(key: str, obj: dict) -> None:
    if not cache_enabled():
        return
    path = lab_cache_dir() / f"{key}.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)          # readers never see a half-written file


def load_state(key: str) -> Optional[dict]:
    """A cached ``torch.save``d dict (tensors and primitives; read with ``weights_only=True``), or None."""
    if not cache_enabled():
        return None
    path = lab_cache_dir() / f"{key}.pt"
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:   # a truncated or foreign file: recompute
        return None


def save_state(key: str, state: dict) -> None:
    if not cache_enabled():
        return
    from ..train import atomic_torch_save

    atomic_torch_save(state, str(lab_cache_dir() / f"{key}.pt"))
