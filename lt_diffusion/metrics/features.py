"""Inception pool3 features for FID, KID, precision/recall and the rarity metrics.

The network is pytorch-fid's ``InceptionV3([BLOCK_INDEX_BY_DIM[2048]])`` (the TensorFlow FID Inception,
``inception-2015-12-05``) built offline from the state dict that :mod:`lt_diffusion.assets` provides.
Preprocessing is pytorch-fid's own: bilinear resize to 299x299 (``align_corners=False``) and
``2x - 1`` scaling, done inside the module (``resize_input=True, normalize_input=True``). Features are
computed in float32 (no autocast, no TF32 convolutions on GPU) and returned as float64 numpy arrays,
exactly the convention of ``pytorch_fid.fid_score.get_activations``. Reference statistics and sample
statistics must come from this one convention (see the assets README: other pipelines differ by ~0.6%).

Accepted image inputs (``images`` below), all with 3 colour channels and at least 2 images:

* uint8 ``torch.Tensor`` / ``np.ndarray`` of shape ``(N, 3, H, W)`` or ``(N, H, W, 3)``;
* float tensor / array in ``[0, 1]`` of the same shapes (e.g. ``(x + 1) / 2`` of model output);
* a list or tuple of single images ``(3, H, W)`` / ``(H, W, 3)`` of one shape;
* a path to a ``.npz`` file with key ``images`` (uint8, NCHW or NHWC), e.g. from
  :func:`lt_diffusion.sampling.save_npz`;
* a path to a folder of ``.png`` files (read in sorted order, converted to RGB as pytorch-fid does).

Anything else raises ``ValueError`` saying what is expected.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

__all__ = [
    "FEATURE_DIM",
    "FEATURE_NET_ID",
    "DEFAULT_BATCH_SIZE",
    "InceptionFeatureExtractor",
    "as_features",
    "as_image_tensor",
    "build_fid_inception_v3",
    "build_inception",
    "compute_features",
    "default_device",
    "feature_net_id",
    "fid_state_dict",
    "strict_fp32",
]

FEATURE_DIM = 2048
FEATURE_NET_ID = "pytorch-fid-inception-2015-12-05-pool3"
DEFAULT_BATCH_SIZE = 200

_NET_CACHE: dict[tuple, torch.nn.Module] = {}
_PATCH_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------------
def fid_state_dict(data_root: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """Return the FID Inception state dict (pytorch-fid key names, float32, possibly without ``fc``).

    Delegates to :func:`lt_diffusion.assets.fid_inception_state_dict`; a missing or corrupt weight file
    raises the error from there (it names the file and how to get it).
    """
    from lt_diffusion.assets import fid_inception_state_dict

    return fid_inception_state_dict(data_root)


def _state_dict_hash(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA256 over the floating-point tensors (sorted keys, raw float32 bytes), ``fc`` excluded."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        value = state_dict[key]
        if key.startswith("fc.") or not torch.is_floating_point(value):
            continue  # the classifier is not part of the feature network; BN counters carry nothing
        h.update(key.encode())
        h.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def feature_net_id(net: torch.nn.Module) -> str:
    """Identifier of a feature network built by :func:`build_inception`.

    ``FEATURE_NET_ID`` plus the first 12 hex digits of a SHA256 over the network's weights. It goes into
    the file names of cached reference statistics, so statistics from other weights (e.g. a float16
    round trip) are never mixed up with these. Computed once per network object.
    """
    cached = getattr(net, "_lt_feature_net_id", None)
    if cached is None:
        cached = f"{FEATURE_NET_ID}-{_state_dict_hash(net.state_dict())[:12]}"
        net._lt_feature_net_id = cached
    return cached


def default_device() -> torch.device:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _with_placeholder_fc(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    sd = dict(state_dict)
    if "fc.weight" not in sd:
        # InceptionV3's feature blocks never touch fc; pytorch-fid loads strictly, so give it zeros.
        sd["fc.weight"] = torch.zeros(1008, 2048)
        sd["fc.bias"] = torch.zeros(1008)
    return sd


@contextlib.contextmanager
def _offline_pytorch_fid(state_dict: dict[str, torch.Tensor]) -> Iterator[None]:
    """While inside, pytorch-fid's weight download returns ``state_dict`` (fc placeholders added).

    pytorch-fid fetches its weights inside the model constructor with ``load_state_dict_from_url`` and
    loads them strictly; swapping that function is the offline recipe of the assets README.
    """
    import pytorch_fid.inception as pfi

    sd = _with_placeholder_fc(state_dict)
    with _PATCH_LOCK:
        original = pfi.load_state_dict_from_url
        pfi.load_state_dict_from_url = lambda *args, **kwargs: sd
        try:
            yield
        finally:
            pfi.load_state_dict_from_url = original


def build_fid_inception_v3(state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """pytorch-fid's full ``fid_inception_v3()`` (torchvision Inception3 with the FID patches, 1008-way
    ``fc``) from ``state_dict``, in eval mode on CPU. A missing ``fc`` becomes zeros (see IS module)."""
    import pytorch_fid.inception as pfi

    with _offline_pytorch_fid(state_dict):
        return pfi.fid_inception_v3().eval()


def _cache_key(device: torch.device, channels_last: bool, data_root) -> tuple:
    root = str(data_root) if data_root is not None else "env:" + os.environ.get("LT_DIFFUSION_ASSETS", "")
    return (str(device), bool(channels_last), root)


def build_inception(
    device: str | torch.device | None = None,
    *,
    state_dict: dict[str, torch.Tensor] | None = None,
    data_root: str | os.PathLike | None = None,
    channels_last: bool = False,
    use_cache: bool = True,
) -> torch.nn.Module:
    """pytorch-fid ``InceptionV3([3])`` (2048-d pool3 output) in eval mode on ``device``.

    Input of the returned module: float ``(B, 3, H, W)`` in ``[0, 1]`` (resized to 299 and mapped to
    ``[-1, 1]`` inside); output: a one-element list with ``(B, 2048, 1, 1)``. With ``use_cache`` (and no
    explicit ``state_dict``) the network is built once per ``(device, channels_last, asset folder)``.
    """
    import pytorch_fid.inception as pfi

    device = torch.device(device) if device is not None else default_device()
    key = _cache_key(device, channels_last, data_root)
    cacheable = use_cache and state_dict is None
    if cacheable and key in _NET_CACHE:
        return _NET_CACHE[key]
    sd = state_dict if state_dict is not None else fid_state_dict(data_root)
    with _offline_pytorch_fid(sd):
        net = pfi.InceptionV3(
            [pfi.InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIM]], resize_input=True, normalize_input=True
        )
    net = net.eval().to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    net.requires_grad_(False)
    if cacheable:
        _NET_CACHE[key] = net
    return net


@contextlib.contextmanager
def strict_fp32(device: torch.device | str) -> Iterator[None]:
    """Turn off TF32 for cuDNN convolutions and matmuls while inside (restored on exit); no-op on CPU.

    Ampere+ GPUs run float32 convolutions in TF32 by default, which moves pool3 features by ~1e-3
    relative; FID statistics are compared across machines, so we ask for IEEE float32.
    """
    device = torch.device(device)
    if device.type != "cuda":
        yield
        return
    conv = getattr(torch.backends.cudnn, "conv", None)
    matmul = getattr(torch.backends.cuda, "matmul", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # torch >= 2.9 API
        saved = (conv.fp32_precision, matmul.fp32_precision)
        conv.fp32_precision = "ieee"
        matmul.fp32_precision = "ieee"
        try:
            yield
        finally:
            conv.fp32_precision, matmul.fp32_precision = saved
    else:  # older torch
        saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


# --------------------------------------------------------------------------------------------------
# image input
# --------------------------------------------------------------------------------------------------
_EXPECTED = (
    "expected uint8 images or float images in [0, 1], shaped (N, 3, H, W) or (N, H, W, 3) with N >= 2, "
    "or a path to a .npz file (key 'images') or to a folder of .png files"
)


def _load_png_folder(folder: Path) -> torch.Tensor:
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    if not files:
        raise ValueError(f"no .png files in {folder}; {_EXPECTED}")
    arrays = []
    for p in files:
        with Image.open(p) as im:
            arrays.append(np.asarray(im.convert("RGB")))  # as pytorch-fid's ImagePathDataset
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"images in {folder} have different shapes {sorted(shapes)}; all must be the same size")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _load_npz(path: Path) -> np.ndarray:
    with np.load(path) as f:
        if "images" not in f:
            raise ValueError(f"{path} has keys {list(f.keys())}; expected an 'images' array (uint8, NCHW or NHWC)")
        return f["images"]


def as_image_tensor(images: Any, *, name: str = "images") -> torch.Tensor:
    """Validate ``images`` (see the module docstring) and return a CPU tensor ``(N, 3, H, W)``.

    The result is uint8 (kept compact for large sets) or float32 in ``[0, 1]``; it shares memory with
    the input where possible. Raises ``ValueError`` for anything outside the accepted forms and
    ``FileNotFoundError`` for a path that does not exist.
    """
    if isinstance(images, (str, os.PathLike)):
        path = Path(images).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"{name}: {path} does not exist; {_EXPECTED}")
        if path.is_dir():
            images = _load_png_folder(path)
        elif path.suffix == ".npz":
            images = _load_npz(path)
        else:
            raise ValueError(f"{name}: {path} is neither a folder of .png files nor a .npz file; {_EXPECTED}")
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError(f"{name}: got an empty list; {_EXPECTED}")
        items = [torch.as_tensor(np.asarray(x)) if not torch.is_tensor(x) else x for x in images]
        shapes = {tuple(x.shape) for x in items}
        if len(shapes) > 1:
            raise ValueError(f"{name}: images have different shapes {sorted(shapes)}; all must be the same size")
        if items[0].ndim != 3:
            raise ValueError(f"{name}: list items must be single images (3, H, W) or (H, W, 3), got {items[0].shape}")
        images = torch.stack(items)
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not torch.is_tensor(images):
        raise ValueError(f"{name}: got {type(images).__name__}; {_EXPECTED}")
    x = images.detach()
    if x.ndim != 4:
        raise ValueError(f"{name}: got shape {tuple(x.shape)}; {_EXPECTED}")
    if x.shape[1] == 3:
        pass
    elif x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2)
    else:
        raise ValueError(
            f"{name}: got shape {tuple(x.shape)} with no axis of 3 colour channels at position 1 or -1; "
            f"grayscale images must be repeated to 3 channels first; {_EXPECTED}"
        )
    if x.shape[0] < 2:
        raise ValueError(f"{name}: got {x.shape[0]} image(s); at least 2 are needed for feature statistics")
    if x.dtype == torch.uint8:
        return x.cpu()
    if not torch.is_floating_point(x):
        raise ValueError(f"{name}: got dtype {x.dtype}; {_EXPECTED}")
    x = x.to("cpu", torch.float32)
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        raise ValueError(
            f"{name}: {int((~finite).sum())} non-finite value(s) (NaN/inf) of {x.numel()}; float images must be "
            f"finite and lie in [0, 1]: find where they come from (e.g. a diverged model) and drop or repair them"
        )
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{name}: float images must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]. Model output in "
            f"[-1, 1] can be mapped with lt_diffusion.sampling.to_uint8(x) (or (x + 1) / 2 after clamping)."
        )
    return x


# --------------------------------------------------------------------------------------------------
# extractor
# --------------------------------------------------------------------------------------------------
class InceptionFeatureExtractor:
    """Callable that maps images to FID Inception pool3 features ``(N, 2048)`` float64.

    Args:
        device: where the network runs (default: ``cuda`` if available, else ``cpu``).
        batch_size: images per forward pass (CPU: 50-100 is enough; GPU: 200-500).
        channels_last: run the convolutions in channels-last memory format (faster on recent GPUs;
            results agree with the default layout to float32 rounding).
        state_dict: explicit FID Inception weights (e.g. for the float16 round-trip benchmark); by
            default they come from :func:`lt_diffusion.assets.fid_inception_state_dict`.
        data_root: asset folder passed to the assets loader.
    """

    def __init__(
        self,
        device: str | torch.device | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        channels_last: bool = False,
        state_dict: dict[str, torch.Tensor] | None = None,
        data_root: str | os.PathLike | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device) if device is not None else default_device()
        self.batch_size = int(batch_size)
        self.channels_last = channels_last
        self.data_root = data_root
        self.net = build_inception(
            self.device, state_dict=state_dict, data_root=data_root, channels_last=channels_last
        )

    @property
    def net_id(self) -> str:
        """Feature-network id with weights-hash prefix (see :func:`feature_net_id`)."""
        return feature_net_id(self.net)

    def __call__(self, images: Any, *, progress: bool = True, desc: str = "Inception features") -> np.ndarray:
        """Features of ``images`` (any accepted form): ``np.ndarray (N, 2048)`` float64, input order."""
        from ..progress import tqdm

        x = as_image_tensor(images)
        n = x.shape[0]
        out = np.empty((n, FEATURE_DIM), dtype=np.float64)
        pin = self.device.type == "cuda"
        with torch.inference_mode(), strict_fp32(self.device), torch.autocast(self.device.type, enabled=False):
            for start in tqdm(range(0, n, self.batch_size), desc=desc, disable=not progress, leave=False):
                batch = x[start : start + self.batch_size]
                if pin:
                    batch = batch.pin_memory()
                batch = batch.to(self.device, non_blocking=True)
                # uint8 -> [0, 1] exactly as torchvision's ToTensor (float32 then /255)
                batch = batch.float().div(255) if batch.dtype == torch.uint8 else batch.float()
                if self.channels_last:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                pred = self.net(batch)[0]  # (B, 2048, 1, 1)
                out[start : start + pred.shape[0]] = pred.flatten(1).cpu().numpy()
        return out


def compute_features(
    images: Any,
    *,
    device: str | torch.device | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    channels_last: bool = False,
    data_root: str | os.PathLike | None = None,
) -> np.ndarray:
    """Inception pool3 features of ``images``: ``np.ndarray (N, 2048)`` float64 (pytorch-fid convention).

    ``images``: see the module docstring. The network is cached per device, so repeated calls are cheap
    apart from the forward passes themselves.
    """
    extractor = InceptionFeatureExtractor(
        device, batch_size, channels_last=channels_last, data_root=data_root
    )
    return extractor(images, progress=progress)


def check_finite_features(f: np.ndarray, name: str = "features") -> np.ndarray:
    """Return ``f (N, D)`` unchanged if every value is finite; else a ``ValueError`` naming the rows."""
    ok = np.isfinite(f)
    if not ok.all():
        rows = np.flatnonzero(~ok.all(axis=1))
        raise ValueError(
            f"{name}: {rows.size} of {f.shape[0]} feature rows hold NaN/inf (rows {rows[:5].tolist()}"
            f"{', ...' if rows.size > 5 else ''}); features must be finite: recompute them from valid images "
            f"(lt_diffusion.metrics.compute_features) or drop those rows"
        )
    return f


def as_features(x: Any, *, name: str = "features", **feature_kwargs) -> np.ndarray:
    """Return ``x`` as features ``(N, D)`` float64: a 2-D array/tensor is taken as features as is,
    anything else is treated as images and passed to :func:`compute_features` (with ``feature_kwargs``).
    Non-finite features are refused (``ValueError`` naming ``name`` and the rows)."""
    if torch.is_tensor(x) and x.ndim == 2:
        if not (x.is_floating_point() or x.is_complex()):
            raise ValueError(f"{name}: a 2-D tensor is read as features and must be float, got {x.dtype}")
        return check_finite_features(x.detach().to("cpu", torch.float64).numpy(), name)
    if isinstance(x, np.ndarray) and x.ndim == 2:
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{name}: a 2-D array is read as features and must be float, got {x.dtype}")
        return check_finite_features(x.astype(np.float64, copy=False), name)
    return check_finite_features(compute_features(x, **feature_kwargs), name)
