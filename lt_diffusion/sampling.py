"""Turning a sampler into image files: batched generation, uint8 quantisation, ``.npz`` and grid output.

``generate`` is a thin loop around any ``sample_fn(batch_size, labels_batch, generator)`` that returns
float images in ``[-1, 1]`` (e.g. a lambda around ``diffusion.p_sample_loop`` or ``ddim_sample_loop``);
it quantises each batch to uint8 right away, so 50,000 CIFAR samples take 150 MB, not 600 MB.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

__all__ = ["atomic_write", "generate", "load_npz", "reverse_chain_rows", "save_grid", "save_npz", "to_uint8"]

SampleFn = Callable[[int, "torch.Tensor | None", torch.Generator], torch.Tensor]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically (``os.replace``).

    Readers never see a half-written file, and an interrupted write leaves the old file intact.
    The temporary name keeps ``path``'s suffix, so writers that pick a format from it still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Quantise model output ``x: (B, C, H, W)`` in ``[-1, 1]`` to uint8 ``(B, C, H, W)`` on the same device.

    ``round((x + 1) * 127.5)`` clamped to ``[0, 255]``. The clamp is the standard quantisation of model
    output (samplers may overshoot [-1, 1] slightly); it is not a check on inputs, which is why the
    metrics reject out-of-range floats instead. The official improved-/guided-diffusion scripts truncate
    (``.to(uint8)`` without rounding), which darkens images by half a level on average; we round.
    NaNs raise ``ValueError`` (a diverged sampler should not become black images).
    """
    if not torch.is_floating_point(x):
        raise ValueError(f"to_uint8 expects float images in [-1, 1], got dtype {x.dtype}")
    if torch.isnan(x).any():
        raise ValueError("to_uint8: the images contain NaN; the sampler diverged")
    return ((x.float() + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


def _labels_batch(labels: Any, start: int, stop: int, device: torch.device) -> torch.Tensor | None:
    if labels is None:
        return None
    if isinstance(labels, int):
        return torch.full((stop - start,), labels, dtype=torch.long, device=device)
    return labels[start:stop].to(device)


def generate(
    sample_fn: SampleFn,
    num_samples: int,
    batch_size: int,
    labels: torch.Tensor | int | None = None,
    seed: int = 0,
    progress: bool = True,
    *,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Draw ``num_samples`` images in batches and return them as uint8 ``(N, C, H, W)`` on the CPU.

    Args:
        sample_fn: ``sample_fn(batch_size, labels_batch, generator) -> (B, C, H, W)`` float in ``[-1, 1]``.
            It must draw all its randomness from ``generator`` for the result to be reproducible.
        num_samples: N.
        batch_size: images per call (the last batch may be smaller).
        labels: ``(N,)`` long class labels (sliced per batch and moved to ``device``), one int for all
            images, or ``None`` (unconditional).
        seed: batch ``i`` gets a fresh generator seeded with ``seed + i``, so a run can be resumed or
            split across processes batch by batch; the images depend on ``batch_size``.
        device: device of the generators (and of ``labels_batch``); default ``cuda`` if available,
            else ``cpu``. It must match where ``sample_fn`` draws its noise.
    """
    from .progress import tqdm

    if num_samples < 1 or batch_size < 1:
        raise ValueError(f"num_samples and batch_size must be >= 1, got {num_samples} and {batch_size}")
    if torch.is_tensor(labels) and labels.shape[0] != num_samples:
        raise ValueError(f"labels has {labels.shape[0]} entries, expected num_samples={num_samples}")
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out: torch.Tensor | None = None
    starts = range(0, num_samples, batch_size)
    for i, start in enumerate(tqdm(starts, desc="sampling", disable=not progress, leave=False)):
        stop = min(start + batch_size, num_samples)
        generator = torch.Generator(device).manual_seed(seed + i)
        x = sample_fn(stop - start, _labels_batch(labels, start, stop, device), generator)
        if not torch.is_tensor(x) or x.ndim != 4 or x.shape[0] != stop - start:
            got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"sample_fn must return a (B={stop - start}, C, H, W) tensor, got {got}")
        batch = to_uint8(x.detach()).cpu()
        if out is None:
            out = torch.empty((num_samples, *batch.shape[1:]), dtype=torch.uint8)
        out[start:stop] = batch
    return out


def save_npz(path: str | os.PathLike, images: torch.Tensor | np.ndarray, labels: Any = None) -> Path:
    """Write uint8 images ``(N, 3, H, W)`` (NCHW, as in the design) and optional labels ``(N,)`` atomically.

    Keys: ``images`` (uint8 NCHW) and ``labels`` (int64) if given. Returns the path.
    """
    arr = images.detach().cpu().numpy() if torch.is_tensor(images) else np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim != 4:
        raise ValueError(
            f"save_npz expects uint8 images (N, C, H, W), got {arr.dtype} {arr.shape}; quantise with to_uint8 first"
        )
    data = {"images": arr}
    if labels is not None:
        lab = np.asarray(labels.detach().cpu() if torch.is_tensor(labels) else labels).astype(np.int64).reshape(-1)
        if lab.shape[0] != arr.shape[0]:
            raise ValueError(f"labels has {lab.shape[0]} entries for {arr.shape[0]} images")
        data["labels"] = lab
    path = Path(path)
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as fh:  # a file object: np.savez would otherwise append '.npz'
            np.savez(fh, **data)
    return path


def load_npz(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Read ``(images uint8 (N, 3, H, W), labels (N,) long or None)``; NHWC files are transposed to NCHW."""
    with np.load(path) as f:
        if "images" not in f:
            raise ValueError(f"{path} has keys {list(f.keys())}; expected 'images'")
        images = f["images"]
        labels = f["labels"] if "labels" in f else None
    if images.ndim == 4 and images.shape[1] not in (1, 3) and images.shape[-1] in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    images = torch.from_numpy(np.ascontiguousarray(images))
    return images, (torch.from_numpy(labels).long() if labels is not None else None)


def save_grid(path: str | os.PathLike, images: torch.Tensor, nrow: int = 8, padding: int = 2) -> Path:
    """Save ``images: (N, C, H, W)`` (uint8, or float in ``[-1, 1]``) as one grid image via torchvision."""
    import torchvision.utils as vutils

    x = images.detach().cpu()
    x = x.float() / 255 if x.dtype == torch.uint8 else ((x.float() + 1) / 2).clamp(0, 1)
    path = Path(path)
    with atomic_write(path) as tmp:
        vutils.save_image(x, tmp, nrow=nrow, padding=padding, format=path.suffix.lstrip(".") or "png")
    return path


def reverse_chain_rows(diffusion, model, n: int, num_shown: int, generator: torch.Generator, device=None,
                       image_shape=(3, 32, 32)) -> tuple[dict, list]:
    """Snapshots of ``n`` ancestral chains (``diffusion.p_sample_loop_progressive``, chapter 01) at ``num_shown``
    evenly spread steps: rows ``"x_t #j"`` (the sample after the step) and ``"x0_hat #j"`` (the model's running
    guess of x_0), ``(num_shown, C, H, W)`` each, and column labels ``"t=..."`` in the paper's 1-based steps."""
    keep = set(np.linspace(0, diffusion.num_timesteps - 1, num_shown).round().astype(int).tolist())
    xs, x0s, labels = [], [], []
    with torch.no_grad():
        loop = diffusion.p_sample_loop_progressive(model, (n, *image_shape), device=device, generator=generator)
        for k, out in enumerate(loop):
            i = diffusion.num_timesteps - 1 - k  # spaced index of the step just taken
            if i in keep:
                xs.append(out["sample"].cpu())
                x0s.append(out["pred_xstart"].cpu())
                labels.append(f"t={int(diffusion.timestep_map[i]) + 1}")  # paper indexing (code index + 1)
    rows = {}
    for j in range(n):
        rows[f"x_t #{j}"] = torch.stack([x[j] for x in xs])
        rows[f"x0_hat #{j}"] = torch.stack([x[j] for x in x0s])
    return rows, labels
