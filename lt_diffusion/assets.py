"""Offline weights and data files, checked against ``SHA256SUMS``.

The asset folder (``data_root`` argument or ``LT_DIFFUSION_ASSETS``, see :mod:`lt_diffusion.paths`)
holds these files (with a ``SHA256SUMS`` file listing their digests):

* ``cifar10-png.tar.gz``: CIFAR-10 as PNG files in ImageFolder layout (read by :mod:`lt_diffusion.data`);
* ``pt_inception-2015-12-05-nofc.pth``: pytorch-fid's FID Inception-v3 state dict **without** ``fc``;
* ``alexnet-features.pth``: torchvision AlexNet ``features.*`` (ImageNet weights), the LPIPS backbone;
* ``SHA256SUMS``: ``<sha256>  <file name>`` lines, as written by ``sha256sum``.

Without an asset folder the files come from their public URLs (:data:`REMOTE_FILES`): CIFAR-10 from its
authors' site (the archive torchvision's ``CIFAR10`` downloads), pytorch-fid's FID Inception weights from its
GitHub release, torchvision's AlexNet weights from download.pytorch.org. :func:`fetch` hashes each file while
it downloads (``torch.hub.download_url_to_file``) and moves it into the cache only if its SHA-256 matches (the
full digest for CIFAR-10, plus torchvision's MD5; the 8-digit prefix that the weight files' names carry, as
``torch.hub`` checks it), so a corrupt download is refused and never cached. ``LT_DIFFUSION_MIRROR`` (a base
URL) fetches the same file names from another server instead.

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
from dataclasses import dataclass
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
    "MIRROR_ENV",
    "RemoteFile",
    "REMOTE_FILES",
    "remote_url",
    "fetch",
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
MIRROR_ENV = "LT_DIFFUSION_MIRROR"


@dataclass(frozen=True)
class RemoteFile:
    """A file with a public URL and the checksum it must have.

    Attributes:
        name: file name on the server and in the cache.
        url: its public URL.
        sha256: the full SHA-256 hex digest, or the prefix a ``torch.hub`` file name carries (``-<8 hex>.pth``).
        md5: an MD5 the field's library also checks (torchvision's ``CIFAR10.tgz_md5``), or None.
    """

    name: str
    url: str
    sha256: str
    md5: str | None = None


# The checksums are those of the field's libraries: torchvision's CIFAR10 archive (its MD5, and the archive's
# SHA-256), and the hash prefixes in pytorch-fid's and torchvision's weight file names.
REMOTE_FILES: dict[str, RemoteFile] = {
    "cifar10": RemoteFile(
        "cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce", md5="c58f30108f718f92721af3b95e74349a"),
    "fid_inception": RemoteFile("pt_inception-2015-12-05-6726825d.pth", FID_WEIGHTS_URL, "6726825d"),
    "alexnet": RemoteFile("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                          "7be5be79"),
}


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
        f"and its SHA256SUMS entry (see the README, section Data and weights), "
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


def _verify(path: Path, expected: str, fix: str | None = None) -> None:
    """Check ``path``'s SHA-256 against ``expected`` (a full digest or a prefix), remembering a match by
    (path, size, mtime) so that an unchanged file is hashed once."""
    st = path.stat()
    key = str(path.resolve())
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": expected}
    record = _load_verified()
    if record.get(key) == stamp:
        return
    actual = sha256_file(path)
    if not actual.startswith(expected):
        raise AssetChecksumError(
            f"{path}: SHA256 mismatch (expected {expected}, actual {actual}). The file is corrupt, "
            f"truncated or a different version: "
            + (fix or f"copy it again from the asset folder's source or fix the "
                      f"SHA256SUMS entry in {path.parent}")
        )
    record[key] = stamp
    _save_verified(record)


def _remember_verified(path: Path, expected: str) -> None:
    st = path.stat()
    record = _load_verified()
    record[str(path.resolve())] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": expected}
    _save_verified(record)


def remote_url(remote: RemoteFile) -> str:
    """Where :func:`fetch` downloads ``remote`` from: its public URL, or ``$LT_DIFFUSION_MIRROR/<name>``."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    return f"{mirror.rstrip('/')}/{remote.name}" if mirror else remote.url


def _md5_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fetch(remote: RemoteFile, folder: str | os.PathLike, progress: bool = True) -> Path:
    """``folder/remote.name``, downloaded from :func:`remote_url` unless a verified copy is already there.

    The download goes to a temporary file and is hashed on the way (``torch.hub.download_url_to_file``); only a
    file whose SHA-256 matches ``remote.sha256`` (and MD5 ``remote.md5``) is moved into ``folder``. A mismatch
    raises :class:`AssetChecksumError` and leaves nothing behind; a network failure raises
    :class:`AssetNotFoundError` naming both fixes. A cached copy is checked against the same hash (once per
    file version, see :func:`find_asset`).
    """
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / remote.name
    fix = f"delete {target} to download it again"
    if target.is_file():
        _verify(target, remote.sha256, fix)
        return target
    url = remote_url(remote)
    try:
        torch.hub.download_url_to_file(url, str(target), hash_prefix=remote.sha256, progress=progress)
    except RuntimeError as exc:
        if "invalid hash value" not in str(exc):
            raise
        raise AssetChecksumError(
            f"{url}: the downloaded file's SHA256 does not match (expected {remote.sha256}; {exc}); it was "
            f"discarded and nothing was cached. The server sent a truncated, corrupt or different file: try again, "
            f"or set {ASSETS_ENV} to a folder with the project's offline assets"
        ) from None
    except Exception as exc:  # network errors come in many types (URLError, HTTPError, OSError, timeouts...)
        raise AssetNotFoundError(_missing_message(
            remote.name, None, f"give the machine network access (the download of {url} failed: {exc})")) from exc
    if remote.md5 is not None and _md5_file(target) != remote.md5:
        target.unlink()
        raise AssetChecksumError(f"{url}: the downloaded file's MD5 is not {remote.md5}; it was discarded")
    _remember_verified(target, remote.sha256)  # hashed while downloading: later calls need not hash it again
    return target


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
    (``FID_WEIGHTS_URL``, fetched and verified by :func:`fetch` into ``torch.hub``'s checkpoint folder), which
    also holds ``fc`` (1008 classes). Callers that need ``fc`` (Inception Score) must check
    ``"fc.weight" in sd``.
    """
    sd = _from_folder(data_root, (INCEPTION_FILE, INCEPTION_FP16_FILE))
    if sd is not None:
        return sd
    path = fetch(REMOTE_FILES["fid_inception"], _hub_checkpoints())
    return load_state_dict_file(path)


def _hub_checkpoints() -> Path:
    """``torch.hub``'s checkpoint folder (``$TORCH_HOME/hub/checkpoints``), where pytorch-fid and torchvision keep
    these weights too, so a copy either of them downloaded is reused."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def alexnet_features_state_dict(data_root: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """AlexNet ``features.*`` weights (ImageNet), float32: ``features.{0,3,6,8,10}.{weight,bias}``.

    From the asset folder: ``alexnet-features.pth`` or its ``.fp16.pth`` copy. Without one:
    torchvision's ``AlexNet_Weights.IMAGENET1K_V1`` file (fetched and verified by :func:`fetch`), keeping only
    ``features.*``.
    """
    sd = _from_folder(data_root, (ALEXNET_FILE, ALEXNET_FP16_FILE))
    if sd is not None:
        return sd
    full = load_state_dict_file(fetch(REMOTE_FILES["alexnet"], _hub_checkpoints()))
    return {k: v for k, v in full.items() if k.startswith("features.")}
