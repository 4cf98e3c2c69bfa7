"""CIFAR-10, its long-tailed version, and a loader that keeps the whole dataset on the GPU.

Sources, tried in this order by :func:`load_cifar10`:

1. the uint8 tensor cache ``$LT_DIFFUSION_CACHE/cifar10_{split}_uint8.pt`` (written by step 2, or
   installed from a GPU-bundle shard by ``scripts/gpu_bootstrap.sh``);
2. the offline archive ``cifar10-png.tar.gz`` in the asset folder: extracted once into the cache
   (``cifar10-png/{train,test}/<class>/<name>.png``) and decoded once into the cache of step 1.
   Order = ``torchvision.datasets.ImageFolder``: classes sorted (= official label order), files
   sorted by name within a class;
3. the public CIFAR-10 archive (torchvision's ``CIFAR10`` files, fetched and checked by
   :func:`lt_diffusion.assets.fetch`) into the cache, for machines with network; cached as
   ``cifar10tv_{split}_uint8.pt``. Same labels, **different image order** than 1-2.

Long tail (the LDAM / CBDM protocol): class ``c`` keeps
``n_c = int(n_max * imb_factor ** (c / (C - 1)))`` images. CBDM's ``dataset.py`` shuffles each class
with ``np.random.seed(0)`` before taking ``n_c``; here we take the **first** ``n_c`` images of each
class in the source's order, which is deterministic without a numpy RNG and gives the same counts
(CIFAR-10, imb 0.01: 5000 2997 1796 1077 645 387 232 139 83 50, total 12,406).
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .assets import CIFAR10_ARCHIVE, REMOTE_FILES, AssetChecksumError, AssetNotFoundError, fetch, find_asset
from .paths import ASSETS_ENV, CACHE_ENV, assets_dir, cache_dir

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_SIZES",
    "DataSourceError",
    "ImageDataset",
    "load_cifar10",
    "load_cifar10_lt",
    "cifar10_cache_path",
    "cifar10_lt_cache_path",
    "lt_class_counts",
    "take_per_class",
    "long_tailed_subset",
    "balanced_subset",
    "to_model_range",
    "random_hflip",
    "check_images",
    "GPUBatchLoader",
]

CIFAR10_CLASSES: list[str] = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]
CIFAR10_SIZES = {"train": 50_000, "test": 10_000}
_EXTRACT_DIR = "cifar10-png"
_MARKER = ".extracted-ok"


class DataSourceError(RuntimeError):
    """No usable CIFAR-10 source, or a broken one (corrupt archive, bad cache file)."""


# --------------------------------------------------------------------------------------------
# Dataset container
# --------------------------------------------------------------------------------------------
@dataclass(eq=False)
class ImageDataset(torch.utils.data.Dataset):
    """Images kept as one uint8 tensor, with integer labels.

    Attributes:
        images: uint8 ``(N, 3, H, W)``.
        labels: int64 ``(N,)``, values in ``[0, len(classes))``.
        classes: class names, index = label.
        indices: int64 ``(N,)`` positions in the source split (``None`` for a full split).

    ``ds[i]`` returns ``(x, y)`` with ``x`` float32 ``(3, H, W)`` in ``[-1, 1]`` and ``y`` an int,
    so it also works with a plain ``torch.utils.data.DataLoader``; for training prefer
    :class:`GPUBatchLoader`.
    """

    images: Tensor
    labels: Tensor
    classes: list[str]
    indices: Tensor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_images(self.images, size=None, dtype=torch.uint8, name="ImageDataset.images")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"ImageDataset.labels must be int64 of shape ({self.images.shape[0]},), got "
                f"{self.labels.dtype} {tuple(self.labels.shape)}"
            )
        if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)):
            raise ValueError(f"labels must lie in [0, {len(self.classes)}) (one per class name)")

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return to_model_range(self.images[i]), int(self.labels[i])

    def __repr__(self) -> str:
        return (
            f"ImageDataset(n={len(self)}, shape={tuple(self.images.shape[1:])}, "
            f"classes={len(self.classes)}, counts={self.class_counts()})"
        )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_counts(self) -> list[int]:
        """Images per class, a list of length ``num_classes`` (zeros included)."""
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def subset(self, indices) -> "ImageDataset":
        """New dataset with the rows ``indices`` (int sequence/tensor, or bool mask), in that order."""
        idx = torch.as_tensor(indices)
        if idx.dtype == torch.bool:
            idx = idx.nonzero().flatten()
        idx = idx.long()
        if idx.numel() and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise IndexError(f"subset indices must lie in [0, {len(self)})")
        base = self.indices if self.indices is not None else torch.arange(len(self))
        return ImageDataset(self.images[idx], self.labels[idx], list(self.classes), base[idx])


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
def cifar10_cache_path(split: str, source: str = "png") -> Path:
    """Cache file of a split: ``cifar10_{split}_uint8.pt`` (png) or ``cifar10tv_{split}_uint8.pt``."""
    _check_split(split)
    prefix = {"png": "cifar10", "torchvision": "cifar10tv"}[source]
    return cache_dir() / f"{prefix}_{split}_uint8.pt"


def cifar10_lt_cache_path(imb_factor: float = 0.01) -> Path:
    """Cache file of the long-tailed train subset (png order): ``cifar10_train-lt{imb}_uint8.pt``."""
    return cache_dir() / f"cifar10_train-lt{imb_factor:g}_uint8.pt"


def _check_split(split: str) -> None:
    if split not in CIFAR10_SIZES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def _save_atomic(obj, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load_cache(path: Path, expected_n: int | None) -> ImageDataset:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        ds = ImageDataset(blob["images"], blob["labels"], list(blob["classes"]), blob.get("indices"))
    except Exception as exc:
        raise DataSourceError(
            f"{path}: unreadable CIFAR-10 cache ({exc}); delete the file and load again to rebuild it"
        ) from exc
    if expected_n is not None and len(ds) != expected_n:
        raise DataSourceError(f"{path}: holds {len(ds)} images, expected {expected_n}; delete it to rebuild")
    return ds


def _to_blob(ds: ImageDataset, source: str) -> dict:
    blob = {"images": ds.images.contiguous(), "labels": ds.labels, "classes": list(ds.classes), "source": source}
    if ds.indices is not None:
        blob["indices"] = ds.indices
    return blob


def _extract_archive(archive: Path, root: Path) -> Path:
    """Extract ``archive`` into ``root/cifar10-png`` once (temp dir + rename, then a marker file)."""
    target = root / _EXTRACT_DIR
    root.mkdir(parents=True, exist_ok=True)
    if (target / _MARKER).is_file():
        return target
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".extract-"))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise DataSourceError(
                f"{archive}: corrupt or truncated archive ({type(exc).__name__}: {exc}); copy "
                f"{CIFAR10_ARCHIVE} again from the offline assets"
            ) from exc
        if not (tmp / _EXTRACT_DIR / "train").is_dir() or not (tmp / _EXTRACT_DIR / "test").is_dir():
            raise DataSourceError(f"{archive}: expected {_EXTRACT_DIR}/train and {_EXTRACT_DIR}/test inside")
        if target.exists():  # a partial tree without marker (interrupted run): replace it
            shutil.rmtree(target)
        os.replace(tmp / _EXTRACT_DIR, target)
        (target / _MARKER).write_text(f"extracted from {archive}\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _decode_png(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _decode_folder(split_dir: Path, workers: int | None = None) -> ImageDataset:
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    files, labels = [], []
    for c, name in enumerate(classes):
        names = sorted(f for f in os.listdir(split_dir / name) if f.lower().endswith(".png"))
        files += [str(split_dir / name / f) for f in names]
        labels += [c] * len(names)
    workers = workers or min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(workers) as pool:
        arrays = list(pool.map(_decode_png, files, chunksize=256))
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise DataSourceError(f"{split_dir}: images of different sizes {sorted(shapes)[:4]}")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return ImageDataset(images, torch.tensor(labels, dtype=torch.int64), classes)


def _from_torchvision(split: str, download: bool) -> ImageDataset:
    """CIFAR-10 through ``torchvision.datasets.CIFAR10`` from ``cache_dir()/torchvision``. The archive is fetched
    from its public URL (or ``LT_DIFFUSION_MIRROR``) by :func:`lt_diffusion.assets.fetch`, which checks its SHA-256
    and torchvision's MD5 before it is kept; torchvision then checks every batch file's MD5 as it loads."""
    import torchvision
    from torchvision.datasets.utils import extract_archive

    root = cache_dir() / "torchvision"
    train = split == "train"
    try:
        ds = torchvision.datasets.CIFAR10(root=str(root), train=train, download=False)
    except RuntimeError:  # not there yet, or its batch files fail torchvision's MD5 check
        if not download:
            raise
        archive = fetch(REMOTE_FILES["cifar10"], root)
        extract_archive(str(archive), str(root))
        ds = torchvision.datasets.CIFAR10(root=str(root), train=train, download=False)
    images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
    return ImageDataset(images, torch.tensor(ds.targets, dtype=torch.int64), list(ds.classes))


def _no_source_message(split: str, folder: Path | None, why: str) -> str:
    where = f"the asset folder {folder} has no {CIFAR10_ARCHIVE}" if folder else f"no asset folder is set ({ASSETS_ENV} / data_root)"
    return (
        f"CIFAR-10 {split}: no source available: {where}, no cache in {cache_dir()} ({CACHE_ENV}), "
        f"and {why}. Fix either: (1) set {ASSETS_ENV} or pass data_root= to a folder with "
        f"{CIFAR10_ARCHIVE} and SHA256SUMS, or (2) allow download (download=True) on a machine with "
        f"network access. On a GPU node without network: see CONTRIBUTING.md (the offline GPU bundle)"
    )


def load_cifar10(split: str = "train", data_root=None, download: bool | None = None) -> ImageDataset:
    """CIFAR-10 ``split`` ("train": 50,000 or "test": 10,000 images) as an :class:`ImageDataset`.

    Args:
        split: "train" or "test".
        data_root: asset folder with ``cifar10-png.tar.gz`` (default: ``LT_DIFFUSION_ASSETS``).
        download: torchvision download when the archive is not available. ``None`` (default)
            allows it; ``False`` forbids it (an error then names both fixes).

    Returns: images uint8 ``(N, 3, 32, 32)``, labels int64 ``(N,)``, classes = ``CIFAR10_CLASSES``.
    The first call extracts and decodes (about a minute on 2 CPU cores); later calls load the
    uint8 cache (well under a second).
    """
    _check_split(split)
    n = CIFAR10_SIZES[split]
    png_cache = cifar10_cache_path(split, "png")
    if png_cache.is_file():
        return _load_cache(png_cache, n)
    folder = assets_dir(data_root)
    if folder is not None and (folder / CIFAR10_ARCHIVE).is_file():
        archive = find_asset(CIFAR10_ARCHIVE, folder)
        root = _extract_archive(archive, cache_dir())
        ds = _decode_folder(root / split)
        if ds.classes != CIFAR10_CLASSES or len(ds) != n:
            raise DataSourceError(f"{archive}: unexpected content ({len(ds)} images, classes {ds.classes})")
        _save_atomic(_to_blob(ds, "png"), png_cache)
        return ds
    tv_cache = cifar10_cache_path(split, "torchvision")
    if tv_cache.is_file():
        return _load_cache(tv_cache, n)
    if download is False:
        raise DataSourceError(_no_source_message(split, folder, "download=False"))
    try:
        ds = _from_torchvision(split, download=True)
    except AssetChecksumError:
        raise  # a corrupt download: its message says so (and nothing was kept)
    except Exception as exc:
        raise DataSourceError(_no_source_message(split, folder, f"the CIFAR-10 download failed ({exc})")) from exc
    _save_atomic(_to_blob(ds, "torchvision"), tv_cache)
    return ds


def load_cifar10_lt(imb_factor: float = 0.01, data_root=None, download: bool | None = None) -> ImageDataset:
    """Long-tailed CIFAR-10 train set, ``long_tailed_subset(load_cifar10("train"), imb_factor)``.

    Reads ``cifar10_train-lt{imb}_uint8.pt`` from the cache when present (a GPU-bundle shard
    installs it, so the remote side need not carry all 50,000 images); otherwise builds it from
    the full train split and writes that cache. ``indices`` hold the positions in the full split.
    """
    path = cifar10_lt_cache_path(imb_factor)
    if path.is_file():
        return _load_cache(path, sum(lt_class_counts(5000, 10, imb_factor)))
    ds = long_tailed_subset(load_cifar10("train", data_root, download), imb_factor)
    if cifar10_cache_path("train", "png").is_file():  # only cache the png order under this name
        _save_atomic(_to_blob(ds, "png"), path)
    return ds


# --------------------------------------------------------------------------------------------
# Long-tailed and balanced subsets
# --------------------------------------------------------------------------------------------
def lt_class_counts(n_max: int, num_classes: int, imb_factor: float) -> list[int]:
    """Per-class counts ``int(n_max * imb_factor ** (c / (C - 1)))``, ``c = 0..C-1``.

    ``imb_factor`` = n_min / n_max in ``(0, 1]`` (0.01 = "ratio 100"; 1 = balanced).
    CIFAR-10, imb 0.01: ``[5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]`` (12,406).
    """
    if not isinstance(imb_factor, (int, float)) or not (0 < imb_factor <= 1):
        raise ValueError(f"imb_factor must be in (0, 1] (e.g. 0.01 for ratio 100), got {imb_factor!r}")
    if int(n_max) < 1 or int(num_classes) < 1:
        raise ValueError(f"n_max and num_classes must be >= 1, got {n_max}, {num_classes}")
    if num_classes == 1:
        return [int(n_max)]
    return [int(n_max * imb_factor ** (c / (num_classes - 1))) for c in range(num_classes)]


def take_per_class(dataset: ImageDataset, counts: list[int]) -> ImageDataset:
    """Subset with the first ``counts[c]`` images of each class ``c``, kept in the source's order.

    Raises ValueError if ``len(counts) != num_classes`` or a class has fewer images than asked.
    """
    if len(counts) != dataset.num_classes:
        raise ValueError(f"counts has {len(counts)} entries, dataset has {dataset.num_classes} classes")
    available = dataset.class_counts()
    short = [(c, k, a) for c, (k, a) in enumerate(zip(counts, available)) if k > a or k < 0]
    if short:
        desc = ", ".join(f"class {c} ({dataset.classes[c]}): asked {k}, has {a}" for c, k, a in short)
        raise ValueError(f"subset asks for more images than the dataset has: {desc}")
    keep = []
    for c, k in enumerate(counts):
        keep.append((dataset.labels == c).nonzero().flatten()[:k])
    idx = torch.sort(torch.cat(keep)).values
    return dataset.subset(idx)


def long_tailed_subset(dataset: ImageDataset, imb_factor: float = 0.01, n_max: int | None = None) -> ImageDataset:
    """Long-tailed subset: the first ``n_c`` images of class ``c`` (see :func:`lt_class_counts`).

    ``n_max`` defaults to the largest class (5,000 for CIFAR-10 train). Deterministic.
    """
    n_max = max(dataset.class_counts()) if n_max is None else n_max
    return take_per_class(dataset, lt_class_counts(n_max, dataset.num_classes, imb_factor))


def balanced_subset(dataset: ImageDataset, total: int) -> ImageDataset:
    """Class-balanced subset of ``total`` images, e.g. the size of the LT set (12,406).

    Rule: every class gets ``total // C``; the remainder ``total % C`` goes one each to the first
    classes (label order). For 12,406 on CIFAR-10: 1,241 for classes 0-5, 1,240 for 6-9.
    """
    C = dataset.num_classes
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    counts = [total // C + (1 if c < total % C else 0) for c in range(C)]
    return take_per_class(dataset, counts)


# --------------------------------------------------------------------------------------------
# Transforms
# --------------------------------------------------------------------------------------------
def check_images(x, size: int | None = 32, dtype: torch.dtype | None = None, channels: int = 3, name: str = "images") -> Tensor:
    """Check ``x`` is a ``(B, channels, size, size)`` image batch; return it unchanged.

    ``dtype``: required dtype, or ``None`` to accept uint8 or any float. ``size=None`` skips the
    size check (square or not). Raises ValueError naming what is wrong and what is expected.
    """
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor (B, {channels}, H, W), got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(
            f"{name} must have shape (B, {channels}, H, W) (NCHW), got {tuple(x.shape)}"
            + ("; looks like NHWC: use x.permute(0, 3, 1, 2)" if x.ndim == 4 and x.shape[-1] == channels else "")
        )
    if size is not None and tuple(x.shape[2:]) != (size, size):
        raise ValueError(f"{name} must be {size}x{size}, got {x.shape[2]}x{x.shape[3]}; resize or pick the matching preset")
    if dtype is not None and x.dtype != dtype:
        raise ValueError(f"{name} must have dtype {dtype}, got {x.dtype}")
    if dtype is None and not (x.dtype == torch.uint8 or x.is_floating_point()):
        raise ValueError(f"{name} must be uint8 or floating point, got {x.dtype}")
    return x


def to_model_range(x: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 ``[0, 255]`` → float ``[-1, 1]`` (``x / 127.5 - 1``), any shape, same device."""
    if x.dtype != torch.uint8:
        raise ValueError(f"to_model_range expects uint8 pixels in [0, 255], got {x.dtype}")
    return x.to(dtype).div_(127.5).sub_(1.0)


def random_hflip(x: Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> Tensor:
    """Flip each image of ``x`` ``(B, C, H, W)`` left-right with probability ``p``, on ``x``'s device.

    The training augmentation of DDPM/IDDPM/CBDM (``RandomHorizontalFlip``); evaluation does not
    flip. One ``torch.rand(B)`` draw from ``generator`` (which must live on ``x.device``).
    """
    if x.ndim != 4:
        raise ValueError(f"random_hflip expects a batch (B, C, H, W), got shape {tuple(x.shape)}")
    mask = torch.rand(x.shape[0], generator=generator, device=x.device) < p
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


# --------------------------------------------------------------------------------------------
# Device-resident loader
# --------------------------------------------------------------------------------------------
class GPUBatchLoader:
    """Infinite batches from a dataset kept on ``device`` as uint8.

    Each epoch draws a random permutation on the device; a batch is a gather from the resident
    uint8 tensor, converted to ``[-1, 1]`` and (``flip=True``) randomly flipped, all on the device:
    no host→device copy and no host sync per batch. CIFAR-10 train is 154 MB as uint8.

    Yields ``(x, y)``: ``x`` float32 ``(B, 3, H, W)`` in ``[-1, 1]`` (channels_last memory format if
    asked), ``y`` int64 ``(B,)``. With ``drop_last=True`` every batch has ``batch_size`` rows and an
    epoch has ``len(dataset) // batch_size`` batches. ``state_dict()`` / ``load_state_dict()``
    restore the exact position (epoch, position, permutation, generator state).
    """

    def __init__(self, dataset: ImageDataset, batch_size: int, device="cpu", flip: bool = True, seed: int = 0,
                 drop_last: bool = True, channels_last: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if drop_last and len(dataset) < batch_size:
            raise ValueError(f"dataset has {len(dataset)} images < batch_size {batch_size} with drop_last=True")
        if len(dataset) == 0:
            raise ValueError("dataset is empty")
        self.device = torch.device(device)
        self.images = dataset.images.to(self.device)
        self.labels = dataset.labels.to(self.device)
        self.batch_size, self.flip, self.drop_last, self.channels_last = batch_size, flip, drop_last, channels_last
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.epoch, self.position = 0, 0
        self._perm: Tensor | None = None

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        return self

    def __next__(self) -> tuple[Tensor, Tensor]:
        n, b = len(self.images), self.batch_size
        if self._perm is None or self.position >= n or (self.drop_last and self.position + b > n):
            if self._perm is not None:
                self.epoch += 1
            self._perm = torch.randperm(n, generator=self.generator, device=self.device)
            self.position = 0
        idx = self._perm[self.position:self.position + b]
        self.position += idx.shape[0]
        x = to_model_range(self.images[idx])
        if self.flip:
            x = random_hflip(x, self.generator)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.labels[idx]

    def state_dict(self) -> dict:
        """Resume state (CPU tensors): epoch, position, current permutation, generator state."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "perm": None if self._perm is None else self._perm.cpu(),
            "generator_state": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        perm = state["perm"]
        if perm is not None and len(perm) != len(self.images):
            raise ValueError(f"state is for a dataset of {len(perm)} images, this loader has {len(self.images)}")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._perm = None if perm is None else perm.to(self.device)
        self.generator.set_state(state["generator_state"])
