#!/usr/bin/env python
"""Pack what a remote CUDA machine needs to run the book's notebooks, in parts under ``.gpu/``.

The remote machine (Python 3.12, x86_64, torch/torchvision/numpy/scipy/matplotlib/... installed,
no network) receives at most 64 MiB per call, so everything is split into folders of < ~55 MiB
that can each be named in the device tool's ``carry`` list:

* ``.gpu/env``            wheels (cp312 manylinux) for papermill, nbclient, ipykernel, jupytext,
                          pytorch-fid, lpips and their dependencies that the machine lacks;
* ``.gpu/weights``        half-precision copies of the FID Inception and AlexNet weights with
                          their own ``SHA256SUMS`` (loaded back as float32 by lt_diffusion.assets);
* ``.gpu/weights-fp32-KofN`` optional lossless alternative: the float32 files cut in 2 parts;
* ``.gpu/data-train-KofN`` CIFAR-10 train (ImageFolder order) as lossless WebP, N shards;
* ``.gpu/data-test``      CIFAR-10 test;
* ``.gpu/data-lt``        the 12,406 long-tailed train images (imb 0.01) with their indices.

On the remote side ``source scripts/gpu_bootstrap.sh`` installs whatever parts it finds into
persistent folders (wheels, weights, uint8 caches), so parts can arrive in different calls.

Usage:
    python scripts/make_gpu_bundle.py [build] [--parts env,weights,data] [--out .gpu]
    python scripts/make_gpu_bundle.py build --parts env --python-version 3.11 --env-name env-py311
    python scripts/make_gpu_bundle.py install-data --cache DIR SHARD_DIR...   (used by the bootstrap)
    python scripts/make_gpu_bundle.py check-env .gpu/env                      (closure check)
"""
from __future__ import annotations

import argparse
import email.parser
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MiB = 1 << 20
SHARD_FORMAT = "lt-diffusion-shard/1"

# What the notebooks need on the remote side beyond the machine's own stack.
TOP_LEVEL = [
    "papermill", "nbclient", "nbformat", "jupyter_client", "jupyter_core", "ipykernel",
    "jupytext", "markdown-it-py", "mdit-py-plugins", "pytorch-fid", "lpips",
]
# Already on the remote machine (normalized names): never downloaded. Dependencies of torch,
# torchvision, numpy, scipy, matplotlib, pillow, requests and jinja2 come with them.
REMOTE_HAS = {
    "torch", "torchvision", "triton", "numpy", "scipy", "matplotlib", "contourpy", "cycler",
    "fonttools", "kiwisolver", "pyparsing", "python-dateutil", "pillow", "tqdm", "pyyaml",
    "requests", "urllib3", "idna", "charset-normalizer", "certifi", "jinja2", "markupsafe",
    "psutil", "pygments", "packaging", "six", "typing-extensions", "attrs", "filelock", "sympy",
    "mpmath", "networkx", "fsspec", "setuptools", "pip", "wheel",
}
REMOTE_HAS_PREFIXES = ("nvidia-", "cuda-")
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def remote_has(name: str) -> bool:
    n = normalize(name)
    return n in REMOTE_HAS or n.startswith(REMOTE_HAS_PREFIXES)


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def write_sha256sums(folder: Path) -> None:
    from lt_diffusion.assets import sha256_file

    lines = [f"{sha256_file(f)}  {f.name}" for f in sorted(folder.iterdir()) if f.is_file() and f.name != "SHA256SUMS"]
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")


# ============================================================================== env (wheels)
def marker_env(python_version: str) -> dict:
    return {
        "python_version": python_version, "python_full_version": python_version + ".0",
        "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
        "os_name": "posix", "implementation_name": "cpython", "platform_python_implementation": "CPython",
        "platform_release": "", "platform_version": "", "implementation_version": python_version + ".0",
        "extra": "",
    }


def wheel_metadata(path: Path) -> tuple[str, str, list[str]]:
    """(name, version, Requires-Dist lines) of a wheel file."""
    with zipfile.ZipFile(path) as z:
        meta = next(n for n in z.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        msg = email.parser.Parser().parsestr(z.read(meta).decode("utf-8"))
    return msg["Name"], msg["Version"], msg.get_all("Requires-Dist") or []


def active_requirements(requires: list[str], python_version: str):
    from packaging.requirements import Requirement

    env = marker_env(python_version)
    for line in requires:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            yield req


def read_pins(path: Path = REPO / "constraints.txt") -> dict[str, str]:
    pins = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)", line)
            if m:
                pins[normalize(m.group(1))] = m.group(2)
    return pins


def check_env(env_dir: Path, python_version: str = "3.12") -> list[str]:
    """Problems with a wheel folder: unmet requirements (neither a wheel nor REMOTE_HAS), bad tags."""
    from packaging.tags import Tag, cpython_tags, compatible_tags
    from packaging.utils import parse_wheel_filename
    from packaging.version import Version

    wheels = sorted((env_dir / "wheels").glob("*.whl"))
    py = tuple(int(p) for p in python_version.split("."))
    ok_tags = set(cpython_tags(py, platforms=PLATFORMS + ["linux_x86_64"])) | set(
        compatible_tags(py, interpreter=f"cp{py[0]}{py[1]}", platforms=PLATFORMS)
    )
    have, problems = {}, []
    for w in wheels:
        name, version, _ = wheel_metadata(w)
        have[normalize(name)] = Version(version)
        if not (set(parse_wheel_filename(w.name)[3]) & ok_tags):
            problems.append(f"{w.name}: no tag usable on cp{py[0]}{py[1]} manylinux x86_64")
    for top in TOP_LEVEL:
        if normalize(top) not in have:
            problems.append(f"top-level package {top} has no wheel")
    for w in wheels:
        name, _, requires = wheel_metadata(w)
        for req in active_requirements(requires, python_version):
            n = normalize(req.name)
            if remote_has(n):
                continue
            if n not in have:
                problems.append(f"{name} needs {req} but no wheel is in {env_dir}")
            elif req.specifier and not req.specifier.contains(have[n], prereleases=True):
                problems.append(f"{name} needs {req} but the wheel is {n} {have[n]}")
    return problems


def build_env(out: Path, python_version: str, env_name: str = "env") -> Path:
    """Download the wheel closure of TOP_LEVEL for ``python_version`` (skipping REMOTE_HAS)."""
    from packaging.specifiers import SpecifierSet

    env_dir = out / env_name
    wheel_dir = env_dir / "wheels"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    pins = read_pins()
    specs: dict[str, SpecifierSet] = {normalize(n): SpecifierSet() for n in TOP_LEVEL}
    chosen: dict[str, Path] = {}
    abi = "cp" + python_version.replace(".", "")
    while missing := [n for n in specs if n not in chosen]:
        reqs = []
        for n in missing:
            pin = pins.get(n)
            reqs.append(f"{n}=={pin}" if pin and specs[n].contains(pin, prereleases=True) else f"{n}{specs[n]}")
        cmd = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
            "--python-version", python_version, "--implementation", "cp", "--abi", abi, "--abi", "abi3",
            "--abi", "none", *sum((["--platform", p] for p in PLATFORMS), []), "--dest", str(wheel_dir), *reqs,
        ]
        print(f"[env] pip download {' '.join(reqs)}", flush=True)
        subprocess.run(cmd, check=True)
        by_name = {normalize(wheel_metadata(w)[0]): w for w in wheel_dir.glob("*.whl")}
        for n in missing:
            if n not in by_name:
                raise SystemExit(f"[env] pip did not produce a wheel for {n}")
            chosen[n] = by_name[n]
            for req in active_requirements(wheel_metadata(chosen[n])[2], python_version):
                d = normalize(req.name)
                if remote_has(d):
                    continue
                specs[d] = specs.get(d, SpecifierSet()) & req.specifier
    # drop wheels left from earlier runs that are no longer in the closure
    keep = set(chosen.values())
    for w in wheel_dir.glob("*.whl"):
        if w not in keep:
            w.unlink()
    problems = check_env(env_dir, python_version)
    if problems:
        raise SystemExit("[env] closure check failed:\n  " + "\n  ".join(problems))
    manifest = {
        "python_version": python_version,
        "top_level": TOP_LEVEL,
        "wheels": sorted(w.name for w in keep),
        "skipped_as_present": sorted(REMOTE_HAS) + [p + "*" for p in REMOTE_HAS_PREFIXES],
    }
    (env_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return env_dir


# ============================================================================== weights
def build_weights(out: Path, data_root=None) -> Path:
    import torch

    from lt_diffusion import assets

    folder = out / "weights"
    folder.mkdir(parents=True, exist_ok=True)
    for src_name, dst_name in [(assets.INCEPTION_FILE, assets.INCEPTION_FP16_FILE), (assets.ALEXNET_FILE, assets.ALEXNET_FP16_FILE)]:
        sd = assets.load_state_dict_file(assets.find_asset(src_name, data_root))
        half = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
        finite = all(torch.isfinite(v).all() for v in half.values() if v.is_floating_point())
        max_abs = max(float((v.float() - sd[k]).abs().max()) for k, v in half.items() if v.is_floating_point())
        max_rel = max(
            float(((v.float() - sd[k]).abs() / sd[k].abs().clamp_min(1e-6)).max()) for k, v in half.items() if v.is_floating_point()
        )
        tmp = folder / (dst_name + ".tmp")
        torch.save(half, tmp)
        os.replace(tmp, folder / dst_name)
        print(f"[weights] {dst_name}: {len(half)} tensors, all finite={finite}, fp16 round-trip max abs diff "
              f"{max_abs:.3g}, max rel diff {max_rel:.3g} (|w|>=1e-6 floor)", flush=True)
        if not finite:
            raise SystemExit(f"[weights] {dst_name}: fp16 overflow; keep this file in float32")
    write_sha256sums(folder)
    return folder


def build_weights_fp32(out: Path, data_root=None, parts: int = 2) -> list[Path]:
    """Lossless option: the float32 weight files cut into ``parts`` byte ranges (``name.KofN``).

    ``install-weights`` on the remote side joins them and checks the original SHA256, so FID
    features there are bit-identical to a local run (the fp16 copy changes them by ~0.5%).
    """
    from lt_diffusion import assets

    sums = assets.read_sha256sums(assets.find_asset(assets.INCEPTION_FILE, data_root).parent)
    folders = []
    inc = assets.find_asset(assets.INCEPTION_FILE, data_root)
    alex = assets.find_asset(assets.ALEXNET_FILE, data_root)
    blob = inc.read_bytes()
    bounds = [round(len(blob) * k / parts) for k in range(parts + 1)]
    for k in range(parts):
        folder = out / f"weights-fp32-{k + 1}of{parts}"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        (folder / f"{inc.name}.{k + 1}of{parts}").write_bytes(blob[bounds[k]:bounds[k + 1]])
        lines = [f"{sums[inc.name]}  {inc.name}"]
        if k == 0:
            shutil.copyfile(alex, folder / alex.name)
            lines.append(f"{sums[alex.name]}  {alex.name}")
        (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")
        folders.append(folder)
    return folders


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def install_weights(assets_dir: Path, src_dirs: list[Path]) -> list[str]:
    """Copy weight files (and join ``name.KofN`` parts) into ``assets_dir``; merge SHA256SUMS.

    Stdlib only, idempotent: a file already there with the right SHA256 is left alone.
    """
    assets_dir.mkdir(parents=True, exist_ok=True)
    (assets_dir / "parts").mkdir(exist_ok=True)
    sums_path = assets_dir / "SHA256SUMS"

    def read_sums(folder: Path) -> dict[str, str]:
        f = folder / "SHA256SUMS"
        if not f.is_file():
            return {}
        return {ln.split(maxsplit=1)[1].lstrip("*").strip(): ln.split()[0] for ln in f.read_text().splitlines() if ln.strip()}

    sums = read_sums(assets_dir)
    status = []
    for src in src_dirs:
        src_sums = read_sums(src)
        for name, digest in src_sums.items():
            dst = assets_dir / name
            if dst.is_file() and sums.get(name) == digest:
                continue
            if (src / name).is_file():
                shutil.copyfile(src / name, dst.with_suffix(".tmp"))
                os.replace(dst.with_suffix(".tmp"), dst)
            for part in src.glob(f"{name}.*of*"):
                shutil.copyfile(part, assets_dir / "parts" / part.name)
            sums[name] = digest
    for name, digest in sums.items():
        dst = assets_dir / name
        parts = sorted((assets_dir / "parts").glob(f"{name}.*of*"))
        if not dst.is_file() and parts:
            n = int(parts[0].name.rsplit("of", 1)[1])
            have = {int(p.name.rsplit(".", 1)[1].split("of")[0]): p for p in parts}
            if len(have) < n:
                status.append(f"{name}: {len(have)}/{n} parts staged, waiting for the rest")
                continue
            with open(dst.with_suffix(".tmp"), "wb") as out:
                for k in range(1, n + 1):
                    out.write(have[k].read_bytes())
            os.replace(dst.with_suffix(".tmp"), dst)
            for p in have.values():
                p.unlink()
        if dst.is_file():
            actual = _sha256(dst)
            if actual != digest:
                dst.unlink()
                raise SystemExit(f"{dst}: SHA256 {actual} != {digest}; carry the weights part again")
            status.append(f"{name}: ok ({dst.stat().st_size / MiB:.1f} MiB)")
    sums = {k: v for k, v in sums.items() if (assets_dir / k).is_file()}
    sums_path.write_text("".join(f"{v}  {k}\n" for k, v in sorted(sums.items())))
    return status


# ============================================================================== data shards
def _encode_webp(img_chw) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img_chw.transpose(1, 2, 0)).save(buf, format="WEBP", lossless=True, quality=100, method=2)
    return buf.getvalue()


def _decode_webp(blob: bytes):
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(blob)) as im:
        return np.asarray(im.convert("RGB")).transpose(2, 0, 1)


def _write_shard(path: Path, encoded: list[bytes], labels, indices, meta: dict) -> None:
    import numpy as np

    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in encoded])
    arrays = {
        "data": np.frombuffer(b"".join(encoded), dtype=np.uint8),
        "offsets": offsets,
        "labels": np.asarray(labels, dtype=np.int64),
        "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
    }
    if indices is not None:
        arrays["indices"] = np.asarray(indices, dtype=np.int64)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def build_data(out: Path, data_root=None, shard_mib: float = 45.0, workers: int | None = None) -> list[Path]:
    import numpy as np

    from lt_diffusion import data

    made = []
    workers = workers or (os.cpu_count() or 1)
    encoded_train = None
    for split in ("test", "train"):
        ds = data.load_cifar10(split, data_root=data_root, download=False)
        images = ds.images.numpy()
        t0 = time.time()
        with ThreadPoolExecutor(workers) as pool:
            enc = list(pool.map(_encode_webp, images, chunksize=256))
        print(f"[data] {split}: {len(enc)} images -> {sum(map(len, enc)) / MiB:.1f} MiB lossless WebP "
              f"(raw {images.nbytes / MiB:.1f} MiB) in {time.time() - t0:.1f} s", flush=True)
        if split == "train":
            encoded_train = (ds, enc)
        made += _write_group(out, f"data-{split}", f"cifar10_{split}_uint8.pt", split, ds, enc, None, shard_mib)
    ds, enc = encoded_train
    lt = data.long_tailed_subset(ds, 0.01)
    lt_idx = lt.indices.numpy()
    made += _write_group(out, "data-lt", data.cifar10_lt_cache_path(0.01).name, "train-lt0.01", lt,
                         [enc[i] for i in lt_idx], lt_idx, shard_mib)
    return made


def _write_group(out, prefix, target, split, ds, enc, indices, shard_mib) -> list[Path]:
    import numpy as np

    total_bytes = sum(map(len, enc))
    parts = max(1, -(-total_bytes // int(shard_mib * MiB)))
    bounds = np.linspace(0, len(enc), parts + 1).round().astype(int)
    images_sha = hashlib.sha256(ds.images.contiguous().numpy().tobytes()).hexdigest()
    folders = []
    for k in range(parts):
        start, stop = int(bounds[k]), int(bounds[k + 1])
        name = prefix if parts == 1 else f"{prefix}-{k + 1}of{parts}"
        folder = out / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        meta = {
            "format": SHARD_FORMAT, "codec": "webp-lossless", "target": target, "split": split, "part": k,
            "parts": parts, "start": start, "stop": stop, "total": len(enc), "classes": list(ds.classes),
            "image_shape": list(ds.images.shape[1:]), "images_sha256": images_sha, "source": "png",
        }
        _write_shard(folder / f"{target.removesuffix('.pt')}.{k + 1}of{parts}.npz", enc[start:stop],
                     ds.labels[start:stop].numpy(), None if indices is None else indices[start:stop], meta)
        folders.append(folder)
    for stale in out.glob(f"{prefix}-*of*"):
        if stale not in folders and re.fullmatch(re.escape(prefix) + r"-\d+of\d+", stale.name):
            shutil.rmtree(stale)
    if parts > 1 and (out / prefix).exists():
        shutil.rmtree(out / prefix)
    return folders


def _read_shard(path: Path, meta_only: bool = False):
    import numpy as np

    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes().decode())
        if meta.get("format") != SHARD_FORMAT:
            raise SystemExit(f"{path}: not an lt-diffusion data shard (format {meta.get('format')!r})")
        arrays = {} if meta_only else {k: z[k] for k in z.files if k != "meta"}
    return meta, arrays


def install_data(cache: Path, shard_dirs: list[Path], workers: int | None = None) -> list[str]:
    """Stage shards into ``cache/shards`` and build each uint8 cache file whose parts are all there.

    Idempotent: a target recorded in ``cache/bundle_installed.json`` with the same images SHA256 is
    skipped. Returns one status line per target.
    """
    import numpy as np

    cache.mkdir(parents=True, exist_ok=True)
    stage = cache / "shards"
    stage.mkdir(exist_ok=True)
    record_path = cache / "bundle_installed.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    status = []
    for d in shard_dirs:
        for f in sorted(Path(d).glob("*.npz")):
            meta, _ = _read_shard(f, meta_only=True)
            if record.get(meta["target"]) == meta["images_sha256"] and (cache / meta["target"]).is_file():
                continue
            dst = stage / f.name
            if not dst.is_file() or dst.stat().st_size != f.stat().st_size:
                shutil.copyfile(f, dst.with_suffix(".part"))
                os.replace(dst.with_suffix(".part"), dst)
    groups: dict[str, list] = {}
    for f in sorted(stage.glob("*.npz")):
        meta, _ = _read_shard(f, meta_only=True)
        groups.setdefault(meta["target"], []).append((meta, None, f))
    for target, items in groups.items():
        meta0 = items[0][0]
        have = {m["part"] for m, _, _ in items if m["images_sha256"] == meta0["images_sha256"]}
        if len(have) < meta0["parts"]:
            status.append(f"{target}: {len(have)}/{meta0['parts']} parts staged, waiting for the rest")
            continue
        import torch  # only now: a warm call with nothing to build stays fast

        from lt_diffusion.data import ImageDataset, _save_atomic, _to_blob

        t0 = time.time()
        items = [(m, _read_shard(f)[1], f) for m, _, f in items]
        images = np.zeros((meta0["total"], *meta0["image_shape"]), dtype=np.uint8)
        labels = np.zeros(meta0["total"], dtype=np.int64)
        indices = np.zeros(meta0["total"], dtype=np.int64) if "indices" in items[0][1] else None
        with ThreadPoolExecutor(workers or (os.cpu_count() or 1)) as pool:
            for meta, arrays, _ in items:
                off, blob = arrays["offsets"], arrays["data"].tobytes()
                dec = pool.map(_decode_webp, [blob[off[i]:off[i + 1]] for i in range(len(off) - 1)], chunksize=256)
                images[meta["start"]:meta["stop"]] = np.stack(list(dec))
                labels[meta["start"]:meta["stop"]] = arrays["labels"]
                if indices is not None:
                    indices[meta["start"]:meta["stop"]] = arrays["indices"]
        sha = hashlib.sha256(images.tobytes()).hexdigest()
        if sha != meta0["images_sha256"]:
            raise SystemExit(f"{target}: decoded images SHA256 {sha} != {meta0['images_sha256']}; rebuild the shards")
        ds = ImageDataset(torch.from_numpy(images), torch.from_numpy(labels), list(meta0["classes"]),
                          None if indices is None else torch.from_numpy(indices))
        _save_atomic(_to_blob(ds, meta0["source"]), cache / target)
        record[target] = sha
        record_path.write_text(json.dumps(record, indent=1) + "\n")
        for _, _, f in items:
            f.unlink()
        status.append(f"{target}: installed {len(ds)} images in {time.time() - t0:.1f} s")
    for target, sha in record.items():
        if (cache / target).is_file() and target not in groups:
            status.append(f"{target}: already installed")
    return status


# ============================================================================== main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    b = sub.add_parser("build", help="build bundle parts (default command)")
    b.add_argument("--parts", default="env,weights,weights-fp32,data,test-env",
                   help="comma list of env, weights (fp16), weights-fp32 (lossless, 2 parts), data, "
                        "test-env (env for this machine's Python, used by tests/test_bundle.py)")
    b.add_argument("--out", type=Path, default=REPO / ".gpu")
    b.add_argument("--python-version", default="3.12")
    b.add_argument("--env-name", default="env", help="folder name of the wheel part under --out")
    b.add_argument("--data-root", default=None, help="asset folder (default: LT_DIFFUSION_ASSETS)")
    b.add_argument("--shard-mib", type=float, default=45.0)
    i = sub.add_parser("install-data", help="install data shards into a cache folder (remote side)")
    i.add_argument("--cache", type=Path, required=True)
    i.add_argument("shard_dirs", nargs="*", type=Path)
    w = sub.add_parser("install-weights", help="install weight parts into an asset folder (remote side)")
    w.add_argument("--assets", type=Path, required=True)
    w.add_argument("src_dirs", nargs="*", type=Path)
    c = sub.add_parser("check-env", help="check a wheel folder's dependency closure")
    c.add_argument("env_dir", type=Path)
    c.add_argument("--python-version", default="3.12")
    args = ap.parse_args(argv if argv is not None else (sys.argv[1:] or ["build"]))

    if args.cmd == "install-data":
        for line in install_data(args.cache, args.shard_dirs):
            print(f"[data] {line}")
        return 0
    if args.cmd == "install-weights":
        for line in install_weights(args.assets, args.src_dirs):
            print(f"[weights] {line}")
        return 0
    if args.cmd == "check-env":
        problems = check_env(args.env_dir, args.python_version)
        print("\n".join(problems) or "ok")
        return 1 if problems else 0

    if args.data_root is None and not os.environ.get("LT_DIFFUSION_ASSETS") and (REPO.parent / "shared/assets").is_dir():
        args.data_root = str(REPO.parent / "shared/assets")
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    unknown = parts - {"env", "weights", "weights-fp32", "data", "test-env"}
    if unknown:
        ap.error(f"unknown parts {sorted(unknown)}; choose from env, weights, weights-fp32, data, test-env")
    args.out.mkdir(parents=True, exist_ok=True)
    made = []
    t0 = time.time()
    if "env" in parts:
        made.append(build_env(args.out, args.python_version, args.env_name))
    local = f"{sys.version_info.major}.{sys.version_info.minor}"
    if "test-env" in parts and local != args.python_version:
        made.append(build_env(args.out, local, f"env-py{local.replace('.', '')}"))
    if "weights" in parts:
        made.append(build_weights(args.out, args.data_root))
    if "weights-fp32" in parts:
        made += build_weights_fp32(args.out, args.data_root)
    if "data" in parts:
        made += build_data(args.out, args.data_root, args.shard_mib)
    print(f"\nbundle parts in {args.out} (built in {time.time() - t0:.0f} s):")
    too_big = []
    for folder in made:
        size = dir_size(folder) / MiB
        print(f"  {folder.relative_to(args.out.parent) if args.out.parent in folder.parents else folder}: {size:6.1f} MiB")
        if size > 55:
            too_big.append(folder.name)
    print("carry e.g. [\".gpu/env\", \".gpu/weights\"], then [\".gpu/data-test\"]; run "
          "`source scripts/gpu_bootstrap.sh` first in every remote command.")
    if too_big:
        print(f"WARNING: parts over 55 MiB: {too_big}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
