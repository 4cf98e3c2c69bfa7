"""Where lt-diffusion finds its offline assets and keeps its caches.

Two environment variables steer everything that touches the disk:

* ``LT_DIFFUSION_ASSETS``: a folder with the offline assets (``cifar10-png.tar.gz``, the FID Inception
  and AlexNet weights, and a ``SHA256SUMS`` file). When it is unset, the folder ``shared/assets`` beside
  the checkout (``../shared/assets`` from the repository root) is used if it exists, as the ``Makefile``
  does. Set it to an empty value for no asset folder: the package then uses the usual download paths
  (torchvision, pytorch-fid).
* ``LT_DIFFUSION_CACHE``: where the extracted dataset, the uint8 tensor caches and FID reference
  statistics live; default ``~/.cache/lt_diffusion``.
"""
from __future__ import annotations

import os
from pathlib import Path

ASSETS_ENV = "LT_DIFFUSION_ASSETS"
CACHE_ENV = "LT_DIFFUSION_CACHE"
DEFAULT_CACHE = Path("~/.cache/lt_diffusion")

__all__ = ["ASSETS_ENV", "CACHE_ENV", "assets_dir", "cache_dir", "default_assets_dir"]


def default_assets_dir() -> Path | None:
    """``shared/assets`` beside the checkout that holds this package, if that folder exists; else ``None``.

    The ``Makefile``'s rule (``../shared/assets`` from the repository root), so that a fresh clone placed
    next to the asset folder runs its notebooks with papermill or Jupyter without any setting.
    """
    candidate = Path(__file__).resolve().parent.parent.parent / "shared" / "assets"
    return candidate if candidate.is_dir() else None


def assets_dir(data_root: str | os.PathLike | None = None) -> Path | None:
    """Return the offline asset folder, or ``None`` if there is none.

    The explicit ``data_root`` wins; then the ``LT_DIFFUSION_ASSETS`` environment variable when it is set
    (an empty value means "no asset folder": download instead); when it is unset,
    :func:`default_assets_dir`. The folder is not required to exist here: the functions that read from it
    raise an error that says which file is missing and how to get it.
    """
    if data_root is not None:
        return Path(data_root).expanduser()
    env = os.environ.get(ASSETS_ENV)
    if env is not None:
        env = env.strip()
        return Path(env).expanduser() if env else None
    return default_assets_dir()


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
