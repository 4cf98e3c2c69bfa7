"""Offline weights and data files, checked against ``SHA256SUMS``.

The asset folder (``data_root`` argument or ``LT_DIFFUSION_ASSETS``, see :mod:`lt_diffusion.paths`)
holds the files listed in ``/work/shared/assets/README.md``:

* ``cifar10-png.tar.gz``: CIFAR-10 as PNG files in ImageFolder layout (read by :mod:`lt_diffusion.data`);
* ``pt_inception-2015-12-05-nofc.pth``: pytorch-fid's FID Inception-v3 state dict **without** ``fc``;
* ``alexnet-features.pth``: torchvision AlexNet ``features.*`` (ImageNet weights), the LPIPS backbone;
* ``SHA256SUMS``: ``<sha256>  <file name>`` lines, as written by ``sha256sum``.

A folder may instead hold half-precision transport copies (``*.fp16.pth``, made by
``scripts/make_gpu_bundle.py`` with their own ``SHA256SUMS``); the loaders below turn them back into
float32. Hashing a 134 MB archive takes about half a second, so a file that has been verified is
remembered by (path, size, mtime) in ``verified_assets.json`` in the cache folder.

This module only returns state dicts; the networks are built in :mod:`lt_diffusion.metrics`.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch

from .paths import ASSETS_ENV, assets_dir, cache_dir

__all__ = [
    "AssetError",
    "AssetNotFoundError",
    "AssetChecksumError",
    "CIFAR10_ARCHIVE",
    "INCEPTION_FILE",
    "INCEPTION_FP16_FILE",
    "ALEXNET_FILE",
    "ALEXNET_FP16_FILE",
    "FID_WEIGHTS_URL",
    "read_sha256sums",
    "sha256_file",
    "find_asset",
    "load_state_dict_file",
    "fid_inception_state_dict",
    "alexnet_features_state_dict",
]

CIFAR10_ARCHIVE = "cifar10-png.tar.gz"
INCEPTION_FILE = "pt_inception-2015-12-05-nofc.pth"
INCEPTION_FP16_FILE = "pt_inception-2015-12-05-nofc.fp16.pth"
ALEXNET_FILE = "alexnet-features.pth"
ALEXNET_FP16_FILE = "alexnet-features.fp16.pth"
# pytorch-fid's own weights (with fc); used only when no asset folder is configured.
FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth"
)
_VERIFIED_JSON = "verified_assets.json"


class AssetError(RuntimeError):
    """Base class for problems with the offline assets."""


class AssetNotFoundError(AssetError, FileNotFoundError):
    """An asset is neither in the asset folder nor obtainable by download."""


class AssetChecksumError(AssetError):
    """A file's SHA256 differs from the one listed in ``SHA256SUMS``."""


def _missing_message(name: str, folder: Path | None, download_hint: str) -> str:
    where = (
        f"not found in the asset folder {folder}"
        if folder is not None
        else f"no asset folder is configured (neither data_root nor {ASSETS_ENV} is set)"
    )
    return (
        f"{name}: {where}. Fix: set {ASSETS_ENV} (or pass data_root=) to a folder holding {name} "
        f"and its SHA256SUMS entry (the project's offline assets, e.g. ../shared/assets), "
        f"or {download_hint}"
    )


def read_sha256sums(folder: str | os.PathLike) -> dict[str, str]:
    """Parse ``folder/SHA256SUMS`` into ``{file name: lowercase hex sha256}``.

    Accepts ``sha256sum`` text (``<hash>  <name>``) and binary (``<hash> *<name>``) lines; blank
    lines and ``#`` comments are skipped. A missing file gives an empty dict.
    """
    path = Path(folder) / "SHA256SUMS"
    if not path.is_file():
        return {}
    sums: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise AssetError(f"{path}:{lineno}: expected '<sha256>  <file name>', got {line!r}")
        digest, name = parts
        sums[name.lstrip("*").strip()] = digest.lower()
    return sums


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA256 hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _load_verified() -> dict:
    try:
        return json.loads((cache_dir() / _VERIFIED_JSON).read_text())
    except (OSError, ValueError):
        return {}


def _save_verified(record: dict) -> None:
    target = cache_dir() / _VERIFIED_JSON
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".verified-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=1, sort_keys=True)
        os.replace(tmp, target)
    except OSError:
        pass  # the record only saves time; a read-only cache is not an error


def _verify(path: Path, expected: str) -> None:
    st = path.stat()
    key = str(path.resolve())
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": expected}
    record = _load_verified()
    if record.get(key) == stamp:
        return
    actual = sha256_file(path)
    if actual != expected:
        raise AssetChecksumError(
            f"{path}: SHA256 mismatch (expected {expected}, actual {actual}). The file is corrupt, "
            f"truncated or a different version: copy it again from the project's offline assets "
            f"(e.g. ../shared/assets) or fix the SHA256SUMS entry in {path.parent}"
        )
    record[key] = stamp
    _save_verified(record)


def find_asset(name: str, data_root: str | os.PathLike | None = None, verify: bool = True) -> Path:
    """Path of asset ``name`` in the asset folder, its SHA256 checked against ``SHA256SUMS``.

    Raises :class:`AssetNotFoundError` when no folder is configured or the file is missing, and
    :class:`AssetChecksumError` when the hash differs or (with ``verify=True``) ``SHA256SUMS`` has
    no entry for the file.
    """
    folder = assets_dir(data_root)
    hint = "let the package download it (unset the asset folder and allow network access)"
    if folder is None or not (folder / name).is_file():
        raise AssetNotFoundError(_missing_message(name, folder, hint))
    path = folder / name
    if verify:
        expected = read_sha256sums(folder).get(name)
        if expected is None:
            raise AssetChecksumError(
                f"{path}: no SHA256SUMS entry for {name} in {folder}; add one "
                f"(`sha256sum {name} >> SHA256SUMS`) or call with verify=False"
            )
        _verify(path, expected)
    return path


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a plain state dict with ``weights_only=True``; floating tensors come back as float32.

    Half-precision transport copies (``*.fp16.pth``) are converted back to float32 here; integer
    tensors (BN ``num_batches_tracked``) are left as they are. Key order is kept.
    """
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(sd, dict):
        raise AssetError(f"{path}: expected a state dict (str -> Tensor), got {type(sd).__name__}")
    return {k: (v.float().contiguous() if v.is_floating_point() else v) for k, v in sd.items()}


def _from_folder(data_root, names: tuple[str, ...]) -> dict[str, torch.Tensor] | None:
    """Load the first of ``names`` present in the asset folder; None if no folder is configured."""
    folder = assets_dir(data_root)
    if folder is None:
        return None
    for name in names:
        if (folder / name).is_file():
            return load_state_dict_file(find_asset(name, folder))
    # Missing in a configured folder: say so instead of silently downloading.
    find_asset(names[0], folder)
    raise AssertionError("unreachable")  # pragma: no cover


def fid_inception_state_dict(data_root: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """FID Inception-v3 (TF ``inception-2015-12-05``) weights in pytorch-fid's key names, float32.

    From the asset folder: ``pt_inception-2015-12-05-nofc.pth`` or its ``.fp16.pth`` copy (564
    tensors, **no** ``fc.weight``/``fc.bias``). Without an asset folder: pytorch-fid's own file
    (``FID_WEIGHTS_URL`` through ``torch.hub``), which also holds ``fc`` (1008 classes). Callers
    that need ``fc`` (Inception Score) must check ``"fc.weight" in sd``.
    """
    sd = _from_folder(data_root, (INCEPTION_FILE, INCEPTION_FP16_FILE))
    if sd is not None:
        return sd
    try:
        from pytorch_fid.inception import FID_WEIGHTS_URL as url
    except ImportError:
        url = FID_WEIGHTS_URL
    try:
        sd = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True, weights_only=True)
    except Exception as exc:  # network errors come in many types (URLError, OSError, HTTPError...)
        raise AssetNotFoundError(
            _missing_message(INCEPTION_FILE, None, f"give the machine network access (the download of {url} failed: {exc})")
        ) from exc
    return {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}


def alexnet_features_state_dict(data_root: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """AlexNet ``features.*`` weights (ImageNet), float32: ``features.{0,3,6,8,10}.{weight,bias}``.

    From the asset folder: ``alexnet-features.pth`` or its ``.fp16.pth`` copy. Without one:
    torchvision's ``AlexNet_Weights.IMAGENET1K_V1`` (downloaded), keeping only ``features.*``.
    """
    sd = _from_folder(data_root, (ALEXNET_FILE, ALEXNET_FP16_FILE))
    if sd is not None:
        return sd
    try:
        from torchvision.models import AlexNet_Weights

        full = AlexNet_Weights.IMAGENET1K_V1.get_state_dict(progress=True, weights_only=True)
    except Exception as exc:
        raise AssetNotFoundError(
            _missing_message(ALEXNET_FILE, None, f"give the machine network access (torchvision's AlexNet download failed: {exc})")
        ) from exc
    return {k: v.float() for k, v in full.items() if k.startswith("features.")}
