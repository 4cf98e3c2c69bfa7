"""lt_diffusion.paths / lt_diffusion.assets: folders, SHA256 checks, weight loading."""
from __future__ import annotations

import shutil

import pytest
import torch

from lt_diffusion import assets, paths
from lt_diffusion.assets import AssetChecksumError, AssetNotFoundError, find_asset


def test_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("LT_DIFFUSION_ASSETS", str(tmp_path / "a"))
    assert paths.assets_dir() == tmp_path / "a"
    assert paths.assets_dir(tmp_path / "b") == tmp_path / "b"  # argument wins
    monkeypatch.setenv("LT_DIFFUSION_ASSETS", "")  # set but empty: no asset folder (unset: ../shared/assets)
    assert paths.assets_dir() is None
    monkeypatch.setenv("LT_DIFFUSION_CACHE", str(tmp_path / "c" / "d"))
    assert paths.cache_dir() == tmp_path / "c" / "d" and (tmp_path / "c" / "d").is_dir()


def _fake_folder(tmp_path, name="w.pth", payload=b"hello"):
    folder = tmp_path / "assets"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(payload)
    (folder / "SHA256SUMS").write_text(f"{assets.sha256_file(folder / name)}  {name}\n")
    return folder


def test_find_asset_verifies_and_remembers(tmp_path, monkeypatch):
    monkeypatch.setenv("LT_DIFFUSION_CACHE", str(tmp_path / "cache"))
    folder = _fake_folder(tmp_path)
    assert find_asset("w.pth", folder) == folder / "w.pth"
    record = (tmp_path / "cache" / "verified_assets.json").read_text()
    assert str((folder / "w.pth").resolve()) in record
    # second call must not re-hash: make hashing fail loudly
    monkeypatch.setattr(assets, "sha256_file", lambda p: pytest.fail("re-hashed a verified file"))
    find_asset("w.pth", folder)


def test_sha_mismatch_is_detected(tmp_path, monkeypatch):
    monkeypatch.setenv("LT_DIFFUSION_CACHE", str(tmp_path / "cache"))
    folder = _fake_folder(tmp_path)
    find_asset("w.pth", folder)  # verified and remembered ...
    (folder / "w.pth").write_bytes(b"hellO")  # ... then changed (same size, new mtime)
    with pytest.raises(AssetChecksumError) as info:
        find_asset("w.pth", folder)
    msg = str(info.value)
    assert "w.pth" in msg and "expected" in msg and "actual" in msg and assets.sha256_file(folder / "w.pth") in msg
    assert find_asset("w.pth", folder, verify=False) == folder / "w.pth"


def test_sha_mismatch_on_copy_of_real_asset(tmp_path, monkeypatch, assets_dir):
    monkeypatch.setenv("LT_DIFFUSION_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "copy"
    folder.mkdir()
    shutil.copy(assets_dir / "alexnet-features.pth", folder)
    shutil.copy(assets_dir / "SHA256SUMS", folder)
    find_asset("alexnet-features.pth", folder)
    with open(folder / "alexnet-features.pth", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    with pytest.raises(AssetChecksumError, match="2cfd5f4a6057f5192a993aef67434861e84fbab5afc5c354e6c41fcce242757f"):
        find_asset("alexnet-features.pth", folder)


def test_missing_asset_messages(tmp_path, monkeypatch):
    monkeypatch.setenv("LT_DIFFUSION_CACHE", str(tmp_path / "cache"))
    folder = _fake_folder(tmp_path)
    with pytest.raises(AssetNotFoundError) as info:
        find_asset("nothere.pth", folder)
    assert str(folder) in str(info.value) and "LT_DIFFUSION_ASSETS" in str(info.value) and "download" in str(info.value)
    (folder / "extra.pth").write_bytes(b"x")
    with pytest.raises(AssetChecksumError, match="no SHA256SUMS entry"):
        find_asset("extra.pth", folder)
    with pytest.raises(AssetNotFoundError, match="alexnet-features.pth"):
        assets.alexnet_features_state_dict(folder)  # folder set but file missing: no silent download


def test_no_assets_no_network_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LT_DIFFUSION_ASSETS", "")  # no asset folder, not even ../shared/assets
    monkeypatch.setenv("LT_DIFFUSION_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(AssetNotFoundError) as info:
        assets.fid_inception_state_dict()
    assert "LT_DIFFUSION_ASSETS" in str(info.value) and "network" in str(info.value)
    with pytest.raises(AssetNotFoundError, match="LT_DIFFUSION_ASSETS"):
        assets.alexnet_features_state_dict()


def test_fp16_copy_loads_as_float32(tmp_path, monkeypatch):
    monkeypatch.setenv("LT_DIFFUSION_CACHE", str(tmp_path / "cache"))
    g = torch.Generator().manual_seed(0)
    sd = {"features.0.weight": torch.randn(4, 3, 3, 3, generator=g), "bn.num_batches_tracked": torch.tensor(0)}
    folder = tmp_path / "fp16"
    folder.mkdir()
    torch.save({k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}, folder / assets.ALEXNET_FP16_FILE)
    (folder / "SHA256SUMS").write_text(f"{assets.sha256_file(folder / assets.ALEXNET_FP16_FILE)}  {assets.ALEXNET_FP16_FILE}\n")
    back = assets.alexnet_features_state_dict(folder)
    assert back["features.0.weight"].dtype == torch.float32 and back["bn.num_batches_tracked"].dtype == torch.int64
    assert torch.allclose(back["features.0.weight"], sd["features.0.weight"], atol=2e-3, rtol=1e-3)


def test_real_weights(assets_dir):
    inc = assets.fid_inception_state_dict(assets_dir)
    assert len(inc) == 564 and "fc.weight" not in inc
    assert all(v.dtype == torch.float32 for k, v in inc.items() if not k.endswith("num_batches_tracked"))
    assert inc["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    alex = assets.alexnet_features_state_dict(assets_dir)
    assert sorted(alex) == sorted(f"features.{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias"))
    assert alex["features.0.weight"].shape == (64, 3, 11, 11)
