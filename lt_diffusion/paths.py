"""Where lt-diffusion finds its offline assets and keeps its caches.

Two environment variables steer everything that touches the disk:

* ``LT_DIFFUSION_ASSETS``: a folder with the offline assets (``cifar10-png.tar.gz``, the FID Inception
  and AlexNet weights, and a ``SHA256SUMS`` file), for example ``../shared/assets``. Without it the
  package uses the usual download paths (torchvision, pytorch-fid).
* ``LT_DIFFUSION_CACHE``: where the extracted dataset, the uint8 tensor caches and FID reference
  statistics live; default ``~/.cache/lt_diffusion``.
"""
from __future__ import annotations

import os
from pathlib import Path

ASSETS_ENV = "LT_DIFFUSION_ASSETS"
CACHE_ENV = "LT_DIFFUSION_CACHE"
DEFAULT_CACHE = Path("~/.cache/lt_diffusion")

__all__ = ["ASSETS_ENV", "CACHE_ENV", "assets_dir", "cache_dir"]


def assets_dir(data_root: str | os.PathLike | None = None) -> Path | None:
    """Return the offline asset folder, or ``None`` if none is configured.

    The explicit ``data_root`` wins; otherwise the ``LT_DIFFUSION_ASSETS`` environment variable
    (an empty value counts as unset). The folder is not required to exist here: the functions that
    read from it raise an error that says which file is missing and how to get it.
    """
    if data_root is not None:
        return Path(data_root).expanduser()
    env = os.environ.get(ASSETS_ENV, "").strip()
    return Path(env).expanduser() if env else None


def cache_dir() -> Path:
    """Return the cache folder (``LT_DIFFUSION_CACHE`` or ``~/.cache/lt_diffusion``), creating it."""
    env = os.environ.get(CACHE_ENV, "").strip()
    path = Path(env).expanduser() if env else DEFAULT_CACHE.expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(
            f"cannot create the lt-diffusion cache folder {path} ({exc}); "
            f"set {CACHE_ENV} to a writable folder"
        ) from exc
    return path
