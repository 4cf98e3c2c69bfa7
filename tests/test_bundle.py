"""GPU bundle (scripts/make_gpu_bundle.py + scripts/gpu_bootstrap.sh).

Fast unit tests use tiny fake parts. The end-to-end tests need parts built beforehand and skip
otherwise:

    python scripts/make_gpu_bundle.py                       # .gpu/env (cp312), weights, data-*
    python scripts/make_gpu_bundle.py build --parts env --python-version 3.11 --env-name env-py311

``test_bootstrap_end_to_end`` plays the remote machine on this one: a fresh venv whose only
packages are those the remote already has (torch, numpy, ... linked from this venv), the parts
copied into a fresh folder, the bootstrap sourced, and a notebook run through papermill.
"""
from __future__ import annotations

import hashlib
import importlib.metadata as md
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
GPU = REPO / ".gpu"
PYVER = f"{sys.version_info.major}.{sys.version_info.minor}"

spec = importlib.util.spec_from_file_location("make_gpu_bundle", REPO / "scripts" / "make_gpu_bundle.py")
mgb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mgb)


# ------------------------------------------------------------------------------------- unit
def test_shards_roundtrip_and_idempotent_install(tmp_path, monkeypatch):
    from lt_diffusion.data import ImageDataset, load_cifar10

    monkeypatch.setenv("LT_DIFFUSION_CACHE", str(tmp_path / "cache"))
    g = torch.Generator().manual_seed(0)
    n = 30
    ds = ImageDataset(
        torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
        torch.arange(10).repeat(3), [f"c{i}" for i in range(10)],
    )
    enc = [mgb._encode_webp(im) for im in ds.images.numpy()]
    parts = mgb._write_group(tmp_path / "out", "data-test", "cifar10_test_uint8.pt", "test", ds, enc, None,
                             shard_mib=sum(map(len, enc)) / 2.5 / mgb.MiB)
    assert [p.name for p in parts] == ["data-test-1of3", "data-test-2of3", "data-test-3of3"]
    cache = tmp_path / "cache"
    status = mgb.install_data(cache, parts[:2])  # parts may arrive in different calls
    assert "2/3 parts staged" in status[0] and not (cache / "cifar10_test_uint8.pt").exists()
    status = mgb.install_data(cache, parts[2:])
    assert "installed 30 images" in status[0]
    blob = torch.load(cache / "cifar10_test_uint8.pt", weights_only=True)
    assert torch.equal(blob["images"], ds.images) and torch.equal(blob["labels"], ds.labels)
    assert mgb.install_data(cache, parts) == ["cifar10_test_uint8.pt: already installed"]
    assert not list((cache / "shards").iterdir())
    # lt_diffusion.data reads it without an asset folder (count check aside: fake has 30 images)
    with pytest.raises(Exception, match="holds 30 images, expected 10000"):
        load_cifar10("test", download=False)


def test_install_weights_joins_parts_and_checks_sha(tmp_path):
    src = tmp_path / "src"
    payload = os.urandom(1000)
    digest = hashlib.sha256(payload).hexdigest()
    dirs = []
    for k, chunk in enumerate([payload[:400], payload[400:]], 1):
        d = src / f"weights-fp32-{k}of2"
        d.mkdir(parents=True)
        (d / f"w.pth.{k}of2").write_bytes(chunk)
        (d / "SHA256SUMS").write_text(f"{digest}  w.pth\n")
        dirs.append(d)
    assets = tmp_path / "assets"
    assert "1/2 parts staged" in mgb.install_weights(assets, dirs[:1])[0]
    assert mgb.install_weights(assets, dirs[1:]) == ["w.pth: ok (0.0 MiB)"]
    assert (assets / "w.pth").read_bytes() == payload
    assert (assets / "SHA256SUMS").read_text() == f"{digest}  w.pth\n"
    bad = src / "bad"
    bad.mkdir()
    (bad / "v.pth").write_bytes(b"abc")
    (bad / "SHA256SUMS").write_text(f"{'0' * 64}  v.pth\n")
    with pytest.raises(SystemExit, match="v.pth: SHA256"):
        mgb.install_weights(assets, [bad])


def test_env_closure_check_flags_missing_dependency(tmp_path):
    import zipfile

    wheels = tmp_path / "env" / "wheels"
    wheels.mkdir(parents=True)
    with zipfile.ZipFile(wheels / "demo-1.0-py3-none-any.whl", "w") as z:
        z.writestr("demo-1.0.dist-info/METADATA",
                   "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Dist: torch\n"
                   "Requires-Dist: notthere>=2\nRequires-Dist: winonly; sys_platform == 'win32'\n")
    problems = mgb.check_env(tmp_path / "env", "3.12")
    assert any("needs notthere>=2" in p for p in problems)
    assert not any("needs torch" in p or "winonly" in p for p in problems)
    assert any("top-level package papermill has no wheel" in p for p in problems)


# ------------------------------------------------------------------------------------- built parts
def _need(*names):
    missing = [n for n in names if not (GPU / n).is_dir()]
    if missing:
        pytest.skip(f"bundle parts not built: {missing} (run scripts/make_gpu_bundle.py, see module docstring)")


def test_built_parts_sizes_and_cp312_closure():
    _need("env", "weights", "data-test", "data-lt")
    for part in [p for p in GPU.iterdir() if p.is_dir()]:
        assert mgb.dir_size(part) < 55 * mgb.MiB, part.name
    assert mgb.check_env(GPU / "env", "3.12") == []


@pytest.mark.slow
def test_cp312_wheels_install_and_import(tmp_path):
    """The compiled cp312 wheels install and import on a real Python 3.12 (if one is found)."""
    _need("env")
    candidates = [*Path("~/.pyenv/versions").expanduser().glob("3.12*/bin/python3.12"), shutil.which("python3.12")]
    py312 = next((c for c in candidates if c and subprocess.run([str(c), "-c", "import pip"], capture_output=True).returncode == 0), None)
    if not py312:
        pytest.skip("no python3.12 with pip on this machine")
    r = subprocess.run([str(py312), "-m", "pip", "install", "-q", "--no-compile", "--no-index", "--no-deps", "--target", str(tmp_path / "site"),
                        *map(str, (GPU / "env" / "wheels").glob("*.whl"))], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([str(py312), "-c", "import zmq, tornado.ioloop, rpds, multidict, frozenlist, propcache, debugpy, traitlets, jedi; print(zmq.zmq_version())"],
                       env={**os.environ, "PYTHONPATH": str(tmp_path / "site")}, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


def _remote_like_python(root: Path) -> Path:
    """A fresh venv that sees only the packages the remote machine already has (linked from here)."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root / "venv")
    farm = root / "base-site"
    farm.mkdir()
    for dist in md.distributions():
        name = mgb.normalize(dist.metadata["Name"])
        if not (mgb.remote_has(name) or name == "pip") or not dist.files:
            continue
        base = Path(dist.locate_file(""))
        for top in {f.parts[0] for f in dist.files if not f.parts[0].startswith("..") and f.parts[0] != "bin"}:
            src, dst = base / top, farm / top
            if src.exists() and not dst.exists():
                dst.symlink_to(src)
    site = next((root / "venv" / "lib").glob("python3*/site-packages"))
    (site / "remote_base.pth").write_text(str(farm) + "\n")
    return root / "venv" / "bin" / "python"


@pytest.mark.slow
def test_bootstrap_end_to_end(tmp_path):
    env_part = f"env-py{PYVER.replace('.', '')}"
    _need(env_part, "weights", "data-test")
    import nbformat

    remote = tmp_path / "remote"
    (remote / ".gpu").mkdir(parents=True)
    for name in ("lt_diffusion", "scripts"):
        shutil.copytree(REPO / name, remote / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(GPU / env_part, remote / ".gpu" / "env")
    shutil.copytree(GPU / "weights", remote / ".gpu" / "weights")
    shutil.copytree(GPU / "data-test", remote / ".gpu" / "data-test")
    py = _remote_like_python(tmp_path)
    r = subprocess.run([str(py), "-c", "import papermill"], capture_output=True)
    assert r.returncode != 0  # the emulated machine starts without papermill

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                                            "language_info": {"name": "python"}})
    nb.cells = [
        nbformat.v4.new_code_cell("out_path = ''", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import json, sys, torch, papermill, lpips, pytorch_fid\n"
            "from lt_diffusion.assets import fid_inception_state_dict, alexnet_features_state_dict\n"
            "from lt_diffusion.data import load_cifar10\n"
            "sd = fid_inception_state_dict()\n"
            "te = load_cifar10('test', download=False)\n"
            "json.dump({'python': sys.executable, 'papermill': papermill.__file__, 'n': len(sd),\n"
            "           'dtypes': sorted({str(v.dtype) for v in sd.values() if v.is_floating_point()}),\n"
            "           'alex': str(alexnet_features_state_dict()['features.0.weight'].dtype),\n"
            "           'test': te.class_counts(), 'img0': te.images[0].sum().item()}, open(out_path, 'w'))\n"
        ),
    ]
    nbformat.write(nb, remote / "tiny.ipynb")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LT_DIFFUSION_ASSETS", "VIRTUAL_ENV")}
    env.update(HOME=str(home), PATH=f"{py.parent}:{env['PATH']}", LT_PYTHON=str(py), LT_SITE=str(tmp_path / "lt-site"),
               LT_ASSETS_DIR=str(tmp_path / "lt-assets"), LT_DIFFUSION_CACHE=str(tmp_path / "lt-cache"),
               JUPYTER_DATA_DIR=str(home / "jupyter"))
    cmd = ("source scripts/gpu_bootstrap.sh && python -m papermill tiny.ipynb out.ipynb -k python3 "
           f"-p out_path {tmp_path / 'result.json'} --no-progress-bar")
    r = subprocess.run(["bash", "-c", cmd], cwd=remote, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    print(r.stdout)
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["python"] == str(py) and res["papermill"].startswith(str(tmp_path / "lt-site"))
    assert res["n"] == 564 and res["dtypes"] == ["torch.float32"] and res["alex"] == "torch.float32"
    assert res["test"] == [1000] * 10
    from lt_diffusion.data import load_cifar10

    assert res["img0"] == load_cifar10("test").images[0].sum().item()  # same pixels as the local cache

    r2 = subprocess.run(["bash", "-c", "source scripts/gpu_bootstrap.sh"], cwd=remote, env=env, capture_output=True, text=True)
    assert r2.returncode == 0, r2.stderr
    assert "wheels: already installed" in r2.stdout and "already installed" in r2.stdout.split("[data]")[-1]
    assert "kernel: python3 already registered" in r2.stdout
