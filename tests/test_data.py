"""lt_diffusion.data: CIFAR-10 sources, LT/balanced subsets, transforms, device loader."""
from __future__ import annotations

import io
import tarfile

import pytest
import torch

from lt_diffusion import data
from lt_diffusion.data import (
    CIFAR10_CLASSES,
    DataSourceError,
    GPUBatchLoader,
    ImageDataset,
    balanced_subset,
    check_images,
    long_tailed_subset,
    lt_class_counts,
    random_hflip,
    to_model_range,
)

LT_COUNTS = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def toy_dataset(per_class=(6, 5, 4), size=4, seed=0) -> ImageDataset:
    """Small dataset with interleaved labels; pixel [0,0,0] of image i encodes i (mod 256)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.cat([torch.full((k,), c) for c, k in enumerate(per_class)])
    labels = labels[torch.randperm(len(labels), generator=g)]
    images = torch.randint(0, 256, (len(labels), 3, size, size), dtype=torch.uint8, generator=g)
    images[:, 0, 0, 0] = torch.arange(len(labels), dtype=torch.uint8)
    return ImageDataset(images, labels.long(), [f"c{c}" for c in range(len(per_class))])


# ---------------------------------------------------------------------------------- counts
def test_lt_class_counts_cifar10():
    counts = lt_class_counts(5000, 10, 0.01)
    assert counts == LT_COUNTS and sum(counts) == 12_406
    assert lt_class_counts(500, 100, 0.01)[-1] == 5 and sum(lt_class_counts(500, 100, 0.01)) == 10_847
    assert lt_class_counts(100, 4, 1.0) == [100] * 4


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, float("nan")])
def test_lt_class_counts_rejects_bad_imb_factor(bad):
    with pytest.raises(ValueError, match="imb_factor"):
        lt_class_counts(5000, 10, bad)


# ---------------------------------------------------------------------------------- subsets
def test_long_tailed_subset_takes_first_per_class_in_order():
    ds = toy_dataset((6, 6, 6))
    lt = long_tailed_subset(ds, imb_factor=1 / 3)
    assert lt.class_counts() == lt_class_counts(6, 3, 1 / 3) == [6, 3, 2]
    # first n_c of each class, source order kept
    expect = torch.cat([(ds.labels == c).nonzero().flatten()[:k] for c, k in enumerate([6, 3, 2])]).sort().values
    assert torch.equal(lt.indices, expect)
    assert torch.equal(lt.images, ds.images[expect]) and torch.equal(lt.labels, ds.labels[expect])
    again = long_tailed_subset(ds, imb_factor=1 / 3)
    assert torch.equal(again.images, lt.images)  # deterministic


def test_balanced_subset_rule_and_errors():
    ds = toy_dataset((6, 5, 4))
    assert balanced_subset(ds, 11).class_counts() == [4, 4, 3]  # 11 // 3 = 3, remainder 2 -> classes 0, 1
    assert len(balanced_subset(ds, 0)) == 0
    with pytest.raises(ValueError, match="class 2 .*asked 5, has 4"):
        balanced_subset(ds, 15)
    with pytest.raises(ValueError, match="more images than the dataset has"):
        long_tailed_subset(ds, 0.5, n_max=10)


def test_subset_and_getitem():
    ds = toy_dataset()
    sub = ds.subset([3, 1])
    assert torch.equal(sub.indices, torch.tensor([3, 1])) and torch.equal(sub.images, ds.images[[3, 1]])
    x, y = ds[2]
    assert x.dtype == torch.float32 and x.shape == (3, 4, 4) and -1 <= x.min() and x.max() <= 1
    assert y == int(ds.labels[2])
    assert torch.equal(sub.subset([1]).indices, torch.tensor([1]))  # indices stay in the base split
    with pytest.raises(IndexError):
        ds.subset([len(ds)])
    with pytest.raises(ValueError, match="labels must lie"):
        ImageDataset(ds.images, ds.labels + 5, ds.classes)


# ---------------------------------------------------------------------------------- transforms
def test_to_model_range():
    x = torch.tensor([0, 1, 127, 128, 254, 255], dtype=torch.uint8)
    y = to_model_range(x)
    assert y.dtype == torch.float32 and y[0] == -1 and y[-1] == 1
    assert torch.allclose(((y + 1) * 127.5).round().to(torch.uint8).float(), x.float())
    with pytest.raises(ValueError, match="uint8"):
        to_model_range(x.float())


def test_random_hflip():
    x = torch.randn(64, 3, 4, 5, generator=torch.Generator().manual_seed(1))
    y = random_hflip(x, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(y[i], x[i].flip(-1)) for i in range(64)])
    kept = torch.tensor([torch.equal(y[i], x[i]) for i in range(64)])
    assert bool((flipped ^ kept).all())  # each image either flipped or untouched
    assert 20 <= int(flipped.sum()) <= 44  # about half
    z = random_hflip(y, torch.Generator().manual_seed(0))  # same draws -> flips the same images back
    assert torch.equal(z, x)
    assert torch.equal(random_hflip(x, p=0.0), x) and torch.equal(random_hflip(x, p=1.0), x.flip(-1))


def test_check_images_errors():
    good = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    assert check_images(good) is good
    with pytest.raises(ValueError, match="32x32"):
        check_images(torch.zeros(2, 3, 64, 64))
    with pytest.raises(ValueError, match="NHWC"):
        check_images(torch.zeros(2, 32, 32, 3))
    with pytest.raises(ValueError, match="uint8 or floating"):
        check_images(torch.zeros(2, 3, 32, 32, dtype=torch.int32))
    with pytest.raises(ValueError, match="dtype torch.uint8"):
        check_images(good.float(), dtype=torch.uint8)
    with pytest.raises(ValueError, match="torch.Tensor"):
        check_images(good.numpy())


# ---------------------------------------------------------------------------------- loader
def test_gpu_batch_loader_shapes_epochs_and_resume():
    ds = toy_dataset((6, 5, 4), size=8)  # 15 images, batch 4 -> 3 batches per epoch (drop_last)
    loader = GPUBatchLoader(ds, batch_size=4, device="cpu", flip=True, seed=3)
    assert len(loader) == 3
    for _ in range(3):
        x, y = next(loader)
        assert x.shape == (4, 3, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.min() >= -1 and x.max() <= 1
    assert loader.epoch == 0
    next(loader)
    assert loader.epoch == 1 and loader.position == 4

    state = loader.state_dict()
    expect = [next(loader) for _ in range(5)]
    resumed = GPUBatchLoader(ds, batch_size=4, device="cpu", flip=True, seed=999)
    resumed.load_state_dict(state)
    for (xa, ya), (xb, yb) in zip(expect, (next(resumed) for _ in range(5))):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_gpu_batch_loader_epoch_is_a_permutation_and_no_flip_is_exact():
    ds = toy_dataset((4, 4), size=4)
    loader = GPUBatchLoader(ds, batch_size=8, flip=False, seed=0, channels_last=True)
    x, y = next(loader)
    assert x.is_contiguous(memory_format=torch.channels_last)
    ids = ((x[:, 0, 0, 0] + 1) * 127.5).round().long()  # pixel [0,0,0] encodes the index
    assert sorted(ids.tolist()) == list(range(8))
    assert torch.equal(y, ds.labels[ids])
    assert torch.equal(x, to_model_range(ds.images[ids]))
    with pytest.raises(ValueError, match="batch_size"):
        GPUBatchLoader(ds, batch_size=9)
    last = GPUBatchLoader(ds, batch_size=5, drop_last=False, flip=False)
    assert [next(last)[0].shape[0] for _ in range(3)] == [5, 3, 5]


# ---------------------------------------------------------------------------------- sources
def test_no_source_error_names_both_fixes(tmp_path, monkeypatch):
    empty = tmp_path / "empty_assets"
    empty.mkdir()
    monkeypatch.setenv("LT_DIFFUSION_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataSourceError) as info:
        data.load_cifar10("train", data_root=empty, download=False)
    msg = str(info.value)
    assert "LT_DIFFUSION_ASSETS" in msg and "cifar10-png.tar.gz" in msg and "download=True" in msg
    with pytest.raises(ValueError, match="'train' or 'test'"):
        data.load_cifar10("val", data_root=empty)


def test_corrupt_archive_names_the_file(tmp_path, monkeypatch):
    from lt_diffusion.assets import sha256_file

    folder = tmp_path / "assets"
    folder.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        payload = b"x" * 50_000
        info = tarfile.TarInfo("cifar10-png/train/airplane/a.png")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    archive = folder / "cifar10-png.tar.gz"
    archive.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])  # truncated gzip stream
    (folder / "SHA256SUMS").write_text(f"{sha256_file(archive)}  cifar10-png.tar.gz\n")
    cache = tmp_path / "cache"
    monkeypatch.setenv("LT_DIFFUSION_CACHE", str(cache))
    with pytest.raises(DataSourceError, match=r"cifar10-png\.tar\.gz: corrupt or truncated"):
        data.load_cifar10("test", data_root=folder, download=False)
    assert not (cache / "cifar10-png").exists()  # nothing half-extracted left behind
    assert not list(cache.glob(".extract-*"))


def test_extract_once_with_marker(tmp_path, monkeypatch):
    """A tiny well-formed archive: decoded in ImageFolder order, marker prevents re-extraction."""
    import numpy as np
    from PIL import Image

    from lt_diffusion.assets import sha256_file

    folder = tmp_path / "assets"
    folder.mkdir()
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    arrays = {}
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for split in ("train", "test"):
            for cls in ("b_cls", "a_cls"):
                for name in ("z.png", "m.png"):
                    arr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                    arrays[(split, cls, name)] = arr
                    png = io.BytesIO()
                    Image.fromarray(arr).save(png, format="PNG")
                    info = tarfile.TarInfo(f"cifar10-png/{split}/{cls}/{name}")
                    info.size = png.tell()
                    png.seek(0)
                    tar.addfile(info, png)
    archive = folder / "cifar10-png.tar.gz"
    archive.write_bytes(buf.getvalue())
    (folder / "SHA256SUMS").write_text(f"{sha256_file(archive)}  cifar10-png.tar.gz\n")
    monkeypatch.setenv("LT_DIFFUSION_CACHE", str(tmp_path / "cache"))
    root = data._extract_archive(archive, tmp_path / "cache")
    assert (root / data._MARKER).is_file()
    ds = data._decode_folder(root / "test")
    assert ds.classes == ["a_cls", "b_cls"] and ds.labels.tolist() == [0, 0, 1, 1]
    assert torch.equal(ds.images[1], torch.from_numpy(arrays[("test", "a_cls", "z.png")]).permute(2, 0, 1))
    archive.write_bytes(b"garbage")  # would fail if extracted again
    assert data._extract_archive(archive, tmp_path / "cache") == root


# ---------------------------------------------------------------------------------- real CIFAR-10
@pytest.fixture(scope="module")
def cifar_train(assets_dir):
    return data.load_cifar10("train", data_root=assets_dir)


def test_cifar10_train_real(cifar_train):
    ds = cifar_train
    assert ds.classes == CIFAR10_CLASSES == sorted(CIFAR10_CLASSES)
    assert ds.images.shape == (50_000, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.class_counts() == [5000] * 10
    assert torch.equal(ds.labels, torch.arange(10).repeat_interleave(5000))  # ImageFolder: class-major
    lt = long_tailed_subset(ds, 0.01)
    assert lt.class_counts() == LT_COUNTS and len(lt) == 12_406
    assert torch.equal(lt.indices[:5000], torch.arange(5000)) and int(lt.indices[5000]) == 5000
    assert torch.equal(lt.images, long_tailed_subset(ds, 0.01).images)
    bal = balanced_subset(ds, 12_406)
    assert bal.class_counts() == [1241] * 6 + [1240] * 4
    lt_cached = data.load_cifar10_lt(0.01)
    assert torch.equal(lt_cached.images, lt.images) and torch.equal(lt_cached.indices, lt.indices)


def test_cifar10_test_real(assets_dir):
    ds = data.load_cifar10("test", data_root=assets_dir)
    assert ds.images.shape == (10_000, 3, 32, 32) and ds.class_counts() == [1000] * 10
    assert 0 < ds.images.float().mean() < 255 and int(ds.images.max()) == 255
