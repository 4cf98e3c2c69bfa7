"""Downloads for machines without the offline assets: fetched, verified (SHA-256) before they are kept, cached.

A local HTTP server on 127.0.0.1 (a thread of this process) stands in for the public hosts through
``LT_DIFFUSION_MIRROR``. It serves copies of the offline weights under torch.hub-style names (``-<sha256
prefix>.pth``, as the public files are named) and a small CIFAR-10 archive in the public archive's format, and
counts the requests, so the tests see what is fetched, what is cached, and that a corrupt download is refused
and not kept.
"""
from __future__ import annotations

import hashlib
import http.server
import io
import os
import pickle
import tarfile
import threading

import numpy as np
import pytest
import torch

from lt_diffusion import assets
from lt_diffusion.assets import REMOTE_FILES, AssetChecksumError, AssetNotFoundError, RemoteFile


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        name = self.path.lstrip("/")
        self.server.hits.append(name)
        data = self.server.files.get(name)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """The local server; no asset folder; private cache and torch.hub folders."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.files, server.hits = {}, []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv(assets.MIRROR_ENV, f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("LT_DIFFUSION_ASSETS", "")  # empty: no asset folder, so the package downloads
    monkeypatch.setenv("LT_DIFFUSION_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _hub(tmp_path):
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def _serve_weights(server, monkeypatch, key: str, stem: str, state_dict) -> tuple[str, bytes]:
    """Serve ``state_dict`` as ``<stem>-<sha256[:8]>.pth`` and point ``REMOTE_FILES[key]`` at it."""
    buf = io.BytesIO()
    torch.save(state_dict, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    name = f"{stem}-{digest[:8]}.pth"
    server.files[name] = data
    monkeypatch.setitem(REMOTE_FILES, key, RemoteFile(name, f"https://example.invalid/{name}", digest[:8]))
    return name, data


def test_public_urls_and_checksums_are_the_libraries():
    """The registry names the files the field's libraries download, with their checksums."""
    from pytorch_fid.inception import FID_WEIGHTS_URL
    from torchvision.datasets import CIFAR10
    from torchvision.models import AlexNet_Weights

    c, i, a = REMOTE_FILES["cifar10"], REMOTE_FILES["fid_inception"], REMOTE_FILES["alexnet"]
    assert (c.url, c.name, c.md5) == (CIFAR10.url, CIFAR10.filename, CIFAR10.tgz_md5) and len(c.sha256) == 64
    assert i.url == FID_WEIGHTS_URL and a.url == AlexNet_Weights.IMAGENET1K_V1.url
    for r in (i, a):  # torch.hub's convention: the file name carries the SHA-256 prefix
        assert r.url.endswith("/" + r.name) and r.name.endswith(f"-{r.sha256}.pth") and len(r.sha256) == 8
    assert assets.remote_url(c) == c.url  # no mirror set: the public URL


def test_weights_are_fetched_verified_and_cached(mirror, monkeypatch, tmp_path, assets_dir):
    alex_features = assets.load_state_dict_file(assets_dir / assets.ALEXNET_FILE)
    full = dict(alex_features, **{"classifier.6.weight": torch.zeros(1000, 4096),
                                  "classifier.6.bias": torch.zeros(1000)})
    alex_name, _ = _serve_weights(mirror, monkeypatch, "alexnet", "alexnet-owt", full)
    inception = dict(assets.load_state_dict_file(assets_dir / assets.INCEPTION_FILE))
    inception["fc.weight"], inception["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    inc_name, _ = _serve_weights(mirror, monkeypatch, "fid_inception", "pt_inception-2015-12-05", inception)

    got = assets.alexnet_features_state_dict()
    assert sorted(got) == sorted(alex_features) and all(torch.equal(got[k], alex_features[k]) for k in got)
    sd = assets.fid_inception_state_dict()
    assert len(sd) == 566 and torch.equal(sd["Conv2d_1a_3x3.conv.weight"], inception["Conv2d_1a_3x3.conv.weight"])
    assert mirror.hits == [alex_name, inc_name]
    assert sorted(os.listdir(_hub(tmp_path))) == sorted([alex_name, inc_name])  # cached where torch.hub keeps them
    monkeypatch.setattr(assets, "sha256_file", lambda p: pytest.fail("re-hashed a verified download"))
    assets.alexnet_features_state_dict()
    assets.fid_inception_state_dict()
    assert mirror.hits == [alex_name, inc_name]  # served from the cache, no second request


@pytest.mark.parametrize("damage", ["flipped byte", "truncated"])
def test_corrupt_download_is_refused_and_not_cached(mirror, monkeypatch, tmp_path, damage):
    g = torch.Generator().manual_seed(0)
    name, data = _serve_weights(mirror, monkeypatch, "alexnet", "alexnet-owt",
                                {"features.0.weight": torch.randn(64, 3, 11, 11, generator=g)})
    mirror.files[name] = (data[:100] + bytes([data[100] ^ 1]) + data[101:]) if damage == "flipped byte" else data[:-500]
    with pytest.raises(AssetChecksumError, match="SHA256 does not match.*nothing was cached"):
        assets.alexnet_features_state_dict()
    assert not _hub(tmp_path).exists() or os.listdir(_hub(tmp_path)) == []  # neither the file nor a partial one
    mirror.files[name] = data  # the server is fixed: the next call fetches the good file
    assert torch.equal(assets.alexnet_features_state_dict()["features.0.weight"],
                       torch.randn(64, 3, 11, 11, generator=torch.Generator().manual_seed(0)))


def test_corrupted_cached_download_is_refused(mirror, monkeypatch, tmp_path):
    name, _ = _serve_weights(mirror, monkeypatch, "alexnet", "alexnet-owt", {"features.0.bias": torch.ones(64)})
    assets.alexnet_features_state_dict()
    path = _hub(tmp_path) / name
    data = bytearray(path.read_bytes())
    data[-10] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(AssetChecksumError, match=f"{name}: SHA256 mismatch.*delete"):
        assets.alexnet_features_state_dict()


def test_unreachable_server_is_a_clear_error(tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:  # a port with nothing listening: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(assets.MIRROR_ENV, f"http://127.0.0.1:{port}")
    monkeypatch.setenv("LT_DIFFUSION_ASSETS", "")  # empty: no asset folder, so the package downloads
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(AssetNotFoundError, match="LT_DIFFUSION_ASSETS.*network access.*pt_inception"):
        assets.fid_inception_state_dict()


# ---------------------------------------------------------------------------------------------- CIFAR-10
def _cifar_archive(n_per_batch: int = 2):
    """A CIFAR-10 python archive in the public format (``cifar-10-batches-py/``): five train batches and a test
    batch of ``n_per_batch`` images, ``batches.meta``; returns (bytes, {file: md5}, train images, train labels)."""
    rng = np.random.default_rng(0)
    files, md5s, train_x, train_y = {}, {}, [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        files[name] = pickle.dumps({"data": x, "labels": y})
        if name != "test_batch":
            train_x.append(x)
            train_y += y
    from torchvision.datasets import CIFAR10

    files["batches.meta"] = pickle.dumps({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog",
                                                          "frog", "horse", "ship", "truck"]})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{CIFAR10.base_folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            md5s[name] = hashlib.md5(data).hexdigest()
    images = np.concatenate(train_x).reshape(-1, 3, 32, 32)
    return buf.getvalue(), md5s, torch.from_numpy(images), torch.tensor(train_y)


def test_cifar10_archive_fetched_verified_and_cached(mirror, monkeypatch, tmp_path):
    from torchvision.datasets import CIFAR10

    from lt_diffusion.data import load_cifar10

    archive, md5s, images, labels = _cifar_archive()
    # torchvision checks every batch file against its table of the public files' MD5s: give it this archive's
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5s[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5s["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", dict(CIFAR10.meta, md5=md5s["batches.meta"]))
    name = REMOTE_FILES["cifar10"].name
    monkeypatch.setitem(REMOTE_FILES, "cifar10", RemoteFile(name, REMOTE_FILES["cifar10"].url,
                                                            hashlib.sha256(archive).hexdigest(),
                                                            md5=hashlib.md5(archive).hexdigest()))
    tv_root = tmp_path / "cache" / "torchvision"

    mirror.files[name] = archive[:-1000]  # a truncated transfer first: refused, nothing kept
    with pytest.raises(AssetChecksumError, match="nothing was cached"):
        load_cifar10("train", download=True)
    assert not (tv_root / name).exists() and not [f for f in os.listdir(tv_root) if f.endswith(".partial")]

    mirror.files[name] = archive
    ds = load_cifar10("train", download=True)
    assert len(ds) == 10 and torch.equal(ds.images, images) and torch.equal(ds.labels, labels)
    assert ds.classes[0] == "airplane" and (tv_root / name).is_file()
    assert mirror.hits == [name, name]
    test = load_cifar10("test", download=True)  # the archive is in the cache: no new request
    assert len(test) == 2 and mirror.hits == [name, name]
