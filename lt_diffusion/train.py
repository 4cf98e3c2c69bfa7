"""The training loop shared by every chapter: one :class:`Trainer`, papers plug in through the diffusion.

A step (as openai/improved-diffusion's ``TrainLoop.run_step``):

1. draw t and importance weights from the schedule sampler (uniform, or Improved DDPM's
   loss-second-moment sampler for L_vlb);
2. drop labels to the null label with probability ``p_uncond`` (CFG; CBDM drops the whole batch);
3. ``diffusion.training_losses(model, x, t, model_kwargs={"y": y})`` under mixed precision on CUDA
   (bf16 autocast; fp16 autocast with a gradient scaler on GPUs without bf16): P2 weights and the CBDM
   regulariser live inside the diffusion, not here;
4. ``loss = (losses["loss"] * weights).mean()``, backward, optional grad-norm clipping, AdamW
   (fused on CUDA) with linear warm-up, EMA of the weights (float32).

With ``TrainConfig.microbatch`` steps 3-4 run per micro-batch (the gradients summed), after the whole batch's
random draws, so a batch that does not fit in memory gives the update of the whole batch.

Losses are summed on the device per quarter of the timestep range (Improved DDPM's ``loss_q0..q3``)
and read back only every ``log_every`` steps, so a step never waits for the GPU.

Bad input stops at the boundary: :class:`TrainConfig` checks its values, the first batch is checked
against the model (dtype, range, shape, labels), every batch's size against the config, and a
non-finite loss stops the run (:class:`NonFiniteLossError`) before any checkpoint of it is written.

Checkpoints hold only tensors and primitive containers, so ``torch.load(weights_only=True)`` reads them;
resuming reproduces the uninterrupted run exactly (same RNG streams, data position, optimiser state,
loss accumulators, so the logged history does not depend on where a run was split). A checkpoint whose
model configuration differs is refused, and a failed load leaves the trainer as it was.
Under ``torchrun`` (``WORLD_SIZE > 1``) the model is wrapped in DistributedDataParallel and each rank
trains on its shard of the global batch.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import os
import pickle
import re
import tempfile
import time
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["TrainConfig", "Trainer", "setup_distributed", "atomic_torch_save", "ema_warmup_decay", "warmup_cosine_lr",
           "select_precision", "check_batch", "read_checkpoint", "latest_checkpoint", "CheckpointError",
           "NonFiniteLossError", "CHECKPOINT_FORMAT", "remove_stale_temp_files"]

CHECKPOINT_FORMAT = 2  # 1: no loss accumulators, scaler or precision (still readable)
_CKPT_NAME = re.compile(r"^ckpt_(\d+)\.pt$")
_TMP_PREFIX = ".tmp_ckpt_"


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read, or does not fit this trainer (the message says which and why)."""


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or inf; ``step`` is the first step (1-based) whose loss was not finite."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"TrainConfig.{name} must be an integer >= {minimum}, got {value!r}")


def _check_real(name: str, value: Any, lo: float, hi: float = math.inf, lo_open: bool = False,
                hi_open: bool = False, hint: str = "") -> None:
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open or hi == math.inf else ']'}"
        raise ValueError(f"TrainConfig.{name} must be a finite number in {interval}, got {value!r}{hint}")


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (checked on construction: a bad value raises ``ValueError`` naming it).

    Attributes:
        steps: total optimiser steps of the run (:meth:`Trainer.run` stops there); >= 1.
        batch_size: global batch (split across DDP ranks); the data must yield batches of this size.
        lr, weight_decay, betas: AdamW (Improved DDPM: 1e-4, 0; CBDM: 2e-4 Adam).
        optimizer: ``"adamw"`` (the diffusion papers; fused on CUDA) or ``"sgd"`` (SGD with ``momentum``, as the
            Diffusion Inversion repository trains its downstream classifiers).
        momentum: SGD momentum (unused by AdamW, which uses ``betas``).
        lr_schedule: ``"constant"`` (after a linear warm-up from ``lr / warmup_steps``; the diffusion papers) or
            ``"cosine"`` (:func:`warmup_cosine_lr`: warm-up from ``lr_floor * lr``, then cosine to ``lr_floor * lr``
            at ``steps``; the Diffusion Inversion classifier recipe) or ``"linear"`` (``lr * (1 - step / steps)``
            after the warm-up: guided-diffusion's ``--anneal_lr``, used by the minority-guidance classifier).
        lr_floor: the cosine schedule's start and end as a fraction of ``lr``.
        warmup_steps: linear LR warm-up length (CBDM / pytorch-ddpm: 5000); 0 disables.
        grad_clip: max global grad norm (CBDM: 1.0) or None.
        ema_rate: EMA rate (0.9999 in the papers; use ~0.999 for short runs); ``ema_rate`` as in improved-diffusion.
        ema_warmup: use ``min(ema_rate, (1 + n) / (10 + n))`` at optimiser step ``n`` (0-based) instead of a
            constant rate, so that the average forgets the first steps' weights within a short run (the papers'
            code uses the constant rate, which leaves ``ema_rate**steps`` of the initial weights in the EMA).
        p_uncond: probability of replacing a label by the null label (classifier-free guidance).
        uncond_mode: ``"sample"`` (each label independently) or ``"batch"`` (the whole batch, as CBDM).
        schedule_sampler: ``"uniform"`` or ``"loss-second-moment"`` (importance sampling of t).
        random_flip: random horizontal flips of the training images (applied by the data loader that
            :func:`lt_diffusion.experiments.train_model` builds from this config).
        amp: mixed precision on CUDA, chosen by :func:`select_precision`: bfloat16 autocast where the GPU has
            bf16 (compute capability >= 8.0), else float16 autocast with a gradient scaler; ignored on CPU.
        channels_last: NHWC activations (CUDA only).
        compile: ``torch.compile`` the model; compile_mode / compile_regional as in
            :func:`lt_diffusion.models.compile_model`.
        seed: seeds the global torch RNG (+ rank under DDP), which draws t, noise, dropout, label drops.
        log_every: steps between history records (and the only GPU syncs of the loop).
        microbatch: split each step's (per-process) batch into micro-batches of this many samples, with one
            forward and backward pass each and the gradients summed, so the activations of only one micro-batch are
            held at a time (improved-diffusion's ``--microbatch``); ``None``: the whole batch at once. The update is
            the whole batch's: t, label drops and the noise are drawn for the whole batch before it is split, so
            it equals the unsplit step up to floating-point summation order (an objective that draws more
            randomness inside its forward pass, e.g. CBDM's y', draws it per micro-batch, from the same
            distribution). Must divide the per-process batch. Models with batch statistics (BatchNorm) see
            micro-batch statistics.
        ckpt_dir, ckpt_every: write ``ckpt_dir/ckpt_{step:07d}.pt`` every ``ckpt_every`` steps (0: never)
            and at the end of :meth:`Trainer.run` when ``ckpt_dir`` is set.
        num_classes: number of real classes (null label = num_classes); default from the model. When both are
            given they must agree.
        data_range: ``(low, high)`` that every value of the first batch must lie in (the engine's images are in
            ``[-1, 1]``); ``None`` skips the range check (e.g. unscaled vector data).
        device: ``"cuda"``, ``"cpu"``, ... (default: CUDA when available).
        progress: show a tqdm bar (rank 0).
    """

    steps: int = 1000
    batch_size: int = 128
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: Tuple[float, float] = (0.9, 0.999)
    optimizer: str = "adamw"
    momentum: float = 0.9
    lr_schedule: str = "constant"
    lr_floor: float = 1e-3
    warmup_steps: int = 0
    grad_clip: Optional[float] = None
    ema_rate: float = 0.9999
    ema_warmup: bool = False
    p_uncond: float = 0.0
    uncond_mode: str = "sample"
    schedule_sampler: str = "uniform"
    random_flip: bool = True
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    compile_mode: Optional[str] = None
    compile_regional: bool = False
    seed: int = 0
    log_every: int = 100
    microbatch: Optional[int] = None
    ckpt_dir: Optional[str] = None
    ckpt_every: int = 0
    num_classes: Optional[int] = None
    data_range: Optional[Tuple[float, float]] = (-1.0, 1.0)
    device: Optional[str] = None
    progress: bool = True

    def __post_init__(self):
        if self.uncond_mode not in ("sample", "batch"):
            raise ValueError(f"uncond_mode must be 'sample' or 'batch', got {self.uncond_mode!r}")
        if not isinstance(self.p_uncond, Real) or not 0.0 <= self.p_uncond <= 1.0:
            raise ValueError(f"p_uncond must lie in [0, 1], got {self.p_uncond}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.lr_schedule not in ("constant", "linear", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant', 'linear' or 'cosine', got {self.lr_schedule!r}")
        from lt_diffusion.resample import SCHEDULE_SAMPLERS
        if self.schedule_sampler not in SCHEDULE_SAMPLERS:
            raise ValueError(f"TrainConfig.schedule_sampler must be one of {list(SCHEDULE_SAMPLERS)}, "
                             f"got {self.schedule_sampler!r}")
        _check_int("steps", self.steps, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("warmup_steps", self.warmup_steps, 0)
        _check_int("log_every", self.log_every, 1)
        _check_int("ckpt_every", self.ckpt_every, 0)
        _check_int("seed", self.seed, 0)
        if self.num_classes is not None:
            _check_int("num_classes", self.num_classes, 1)
        if self.microbatch is not None:
            _check_int("microbatch", self.microbatch, 1)
            if self.batch_size % self.microbatch:
                raise ValueError(f"TrainConfig.microbatch={self.microbatch} does not divide batch_size="
                                 f"{self.batch_size}: choose a divisor (e.g. {_largest_divisor(self.batch_size, self.microbatch)}) "
                                 f"or None for the whole batch at once")
        _check_real("lr", self.lr, 0.0, lo_open=True, hint="; typical values are 1e-5 to 1e-3")
        _check_real("weight_decay", self.weight_decay, 0.0)
        _check_real("momentum", self.momentum, 0.0, 1.0, hi_open=True)
        _check_real("lr_floor", self.lr_floor, 0.0, 1.0)
        _check_real("ema_rate", self.ema_rate, 0.0, 1.0)
        if self.grad_clip is not None:
            _check_real("grad_clip", self.grad_clip, 0.0, lo_open=True, hint="; use None to disable clipping")
        betas = tuple(self.betas)
        if len(betas) != 2:
            raise ValueError(f"TrainConfig.betas must be two numbers in [0, 1), got {self.betas!r}")
        for b in betas:
            _check_real("betas", b, 0.0, 1.0, hi_open=True)
        object.__setattr__(self, "betas", betas)
        if self.data_range is not None:
            lo_hi = tuple(self.data_range)
            if (len(lo_hi) != 2 or not all(isinstance(v, Real) and math.isfinite(v) for v in lo_hi)
                    or not lo_hi[0] < lo_hi[1]):
                raise ValueError(f"TrainConfig.data_range must be (low, high) with low < high, or None, "
                                 f"got {self.data_range!r}")
            object.__setattr__(self, "data_range", (float(lo_hi[0]), float(lo_hi[1])))


def _largest_divisor(n: int, at_most: int) -> int:
    """The largest divisor of ``n`` that is ``<= at_most`` (at least 1)."""
    return max(d for d in range(1, max(1, min(n, at_most)) + 1) if n % d == 0)


def warmup_cosine_lr(step: int, total: int, lr: float, warmup: int, floor: float = 1e-3) -> float:
    """Learning rate of update ``step`` (0-based) of ``total``: a linear warm-up from ``floor * lr`` over ``warmup``
    steps, then a cosine from ``lr`` down to ``floor * lr`` at ``total`` (the Diffusion Inversion classifier recipe)."""
    lo = floor * lr
    if warmup > 0 and step < warmup:
        return lo + (lr - lo) * step / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return lo + 0.5 * (lr - lo) * (1.0 + math.cos(math.pi * progress))


def ema_warmup_decay(decay: float, step: int) -> float:
    """EMA rate at optimiser step ``step`` (0-based) with warm-up: ``min(decay, (1 + step) / (10 + step))``."""
    return min(decay, (1.0 + step) / (10.0 + step))


def select_precision(amp: bool, device: Any) -> str:
    """The arithmetic a training step uses: ``"bf16"``, ``"fp16"`` or ``"fp32"``.

    ``"fp32"`` without ``amp`` or off CUDA. On CUDA: ``"bf16"`` (autocast, no loss scaling) when the GPU
    computes bfloat16 natively (compute capability >= 8.0: A100, H100, RTX 30xx+), otherwise ``"fp16"``
    (autocast with a ``torch.amp.GradScaler``; e.g. the T4 / V100 of hosted notebooks, which emulate bf16
    slowly or not at all).
    """
    device = torch.device(device)
    if not amp or device.type != "cuda" or not torch.cuda.is_available():
        return "fp32"
    major, _ = torch.cuda.get_device_capability(device)
    try:
        native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch < 2.4 has no emulation flag (and reports native support only)
        native_bf16 = torch.cuda.is_bf16_supported()
    return "bf16" if major >= 8 and native_bf16 else "fp16"


def _warmup_ema_multi_avg_fn(decay: float, step_fn):
    """``AveragedModel`` ``multi_avg_fn`` with the warm-up rate of :func:`ema_warmup_decay`.

    The step comes from the trainer's host-side counter (``step_fn()``), so no device value is read back.
    """

    @torch.no_grad()
    def update(ema_params, current_params, num_averaged):
        rate = ema_warmup_decay(decay, step_fn())
        if torch.is_floating_point(ema_params[0]) or torch.is_complex(ema_params[0]):
            torch._foreach_lerp_(ema_params, current_params, 1.0 - rate)
        else:
            for p_ema, p_model in zip(ema_params, current_params):
                p_ema.copy_(p_ema.to(torch.float32).lerp(p_model.to(torch.float32), 1.0 - rate).to(p_ema.dtype))

    return update


def setup_distributed(device_type: str) -> Tuple[int, int, int]:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE > 1``).

    Uses NCCL for CUDA and gloo otherwise. Returns ``(rank, world_size, local_rank)``; ``(0, 1, 0)``
    for a plain single-process run.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))


# ---------------------------------------------------------------------------------------------- files
def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no /proc: read it the portable way (and put it back at once)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temp_files(folder: str) -> List[str]:
    """Delete the temporary files of checkpoint writes whose writing process no longer runs.

    :func:`atomic_torch_save` names them ``.tmp_ckpt_<pid>_*.pt``; a process killed mid-write (SIGKILL,
    power loss) leaves one behind. Files of live processes are kept. Returns the removed paths.
    """
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(_TMP_PREFIX) and name.endswith(".pt")):
            continue
        m = re.match(re.escape(_TMP_PREFIX) + r"(\d+)_", name)
        if m is not None and (int(m.group(1)) == os.getpid() or _pid_alive(int(m.group(1)))):
            continue  # a write in progress (this process or another live one)
        path = os.path.join(folder, name)
        try:
            os.remove(path)
            removed.append(path)
        except OSError:
            pass
    return removed


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save`` to a temporary file in the target folder, fsync, then ``os.replace`` it into place.

    A crash mid-write leaves the previous file (if any) intact; an exception leaves no partial file behind,
    and the temporary file of a killed process is removed by the next save into the folder. The file gets
    the usual permissions (``0666`` minus the umask), not the temporary file's ``0600``.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_stale_temp_files(folder)
    fd, tmp = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{os.getpid()}_", suffix=".pt", dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        try:  # make the rename itself durable
            dfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def latest_checkpoint(folder: str) -> Optional[str]:
    """Path of the ``ckpt_<step>.pt`` with the highest step in ``folder`` (``None`` if there is none)."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return None
    steps = [(int(m.group(1)), name) for name in names if (m := _CKPT_NAME.match(name))]
    return os.path.join(folder, max(steps)[1]) if steps else None


def read_checkpoint(path: str) -> Dict[str, Any]:
    """Read a trainer checkpoint with ``torch.load(weights_only=True)``, turning every failure into a
    :class:`CheckpointError` that names the file, what is wrong with it and what to do."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    size = os.path.getsize(path)
    if size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a checkpoint; it was not written completely "
                              f"(a checkpoint is only ever renamed into place whole): delete it and load the "
                              f"previous one")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "GLOBAL" in text or "global" in text:
            detail = next((ln.strip() for ln in text.splitlines() if "GLOBAL" in ln or "nsupported global" in ln), "")
            raise CheckpointError(
                f"{path}: refused: the file holds Python objects beyond tensors and plain containers "
                f"({detail or 'weights_only=True refuses them'}). Trainer checkpoints never do; loading it fully "
                f"could run arbitrary code. Use only checkpoints written by Trainer.save_checkpoint") from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({size} bytes that do not unpickle): "
                              f"delete it and load the previous one") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({size} bytes; {first}): "
                              f"delete it and load the previous one") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a trainer checkpoint (a dict)")
    missing = [k for k in ("format", "step", "model", "ema", "optimizer", "rng") if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a trainer checkpoint: keys {missing} are missing (found "
                              f"{sorted(state)[:8]}); a bare model state_dict loads with model.load_state_dict")
    if int(state["format"]) > CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {state['format']} is newer than this code's "
                              f"{CHECKPOINT_FORMAT}: update lt_diffusion")
    return state


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _config_diff(stored: Dict[str, Any], current: Dict[str, Any]) -> List[str]:
    keys = list(current) + [k for k in stored if k not in current]
    out = []
    for k in keys:
        a, b = _plain(stored.get(k, "<absent>")), _plain(current.get(k, "<absent>"))
        if a != b:
            out.append(f"{k}: checkpoint {a!r}, model {b!r}")
    return out


def _state_dict_diff(stored: Dict[str, torch.Tensor], current: Dict[str, torch.Tensor], what: str) -> List[str]:
    out = []
    missing = [k for k in current if k not in stored]
    extra = [k for k in stored if k not in current]
    if missing:
        out.append(f"{what}: {len(missing)} tensors missing from the checkpoint (e.g. {missing[:3]})")
    if extra:
        out.append(f"{what}: {len(extra)} tensors the model does not have (e.g. {extra[:3]})")
    shapes = [f"{what}.{k}: checkpoint shape {tuple(stored[k].shape)}, model {tuple(v.shape)}"
              for k, v in current.items() if torch.is_tensor(stored.get(k)) and torch.is_tensor(v)
              and tuple(stored[k].shape) != tuple(v.shape)]
    out += shapes[:4] + ([f"... and {len(shapes) - 4} more tensors of other shapes"] if len(shapes) > 4 else [])
    return out


# ---------------------------------------------------------------------------------------------- batches
def check_batch(x: Any, y: Any = None, *, batch_sizes: Tuple[int, ...] = (), sample_shape: Optional[Tuple] = None,
                data_range: Optional[Tuple[float, float]] = (-1.0, 1.0), num_classes: Optional[int] = None,
                values: bool = True) -> None:
    """Check one training batch; raises ``ValueError`` naming the value, what was expected and what to do.

    Args:
        x: the inputs ``(B, ...)``: a floating-point tensor (images ``(B, C, H, W)`` or vectors ``(B, D)``).
        y: labels ``(B,)`` of integer dtype, or ``None``.
        batch_sizes: accepted values of ``B`` (empty: any).
        sample_shape: required ``x.shape[1:]`` (e.g. ``(3, 32, 32)`` from the model's config), or ``None``.
        data_range: ``(low, high)`` every value of ``x`` must lie in, or ``None``.
        num_classes: labels must lie in ``[0, num_classes)`` (the null label ``num_classes`` is the trainer's to
            assign, never the data's); ``None`` skips the label range.
        values: also check the values (finite, in range, labels in range): one host sync. Without it only
            dtypes and shapes are checked, which costs nothing.
    """
    if not torch.is_tensor(x):
        raise ValueError(f"training batch: x must be a torch.Tensor (B, ...), got {type(x).__name__}; the data "
                         f"must yield (x, y) tensor pairs or x alone")
    if x.dtype == torch.uint8:
        raise ValueError(f"training batch: x is uint8 {tuple(x.shape)} (pixels in [0, 255]); the engine trains on "
                         f"float images in [-1, 1]: convert with lt_diffusion.data.to_model_range(x) "
                         f"(x / 127.5 - 1) or serve the data with lt_diffusion.data.GPUBatchLoader")
    if not x.is_floating_point():
        raise ValueError(f"training batch: x must be floating point, got {x.dtype}; convert it with x.float() "
                         f"(and scale it to [-1, 1])")
    if x.ndim < 2:
        raise ValueError(f"training batch: x must be (B, ...) with a batch axis, got shape {tuple(x.shape)}")
    if batch_sizes and x.shape[0] not in batch_sizes:
        raise ValueError(f"training batch: the data yields batches of {x.shape[0]} but TrainConfig.batch_size is "
                         f"{' or '.join(map(str, batch_sizes))}: build the loader with the config's batch size "
                         f"(and drop_last=True so the last batch of an epoch is not smaller)")
    if sample_shape is not None and tuple(x.shape[1:]) != tuple(sample_shape):
        raise ValueError(f"training batch: x has shape {tuple(x.shape)} but the model expects (B, "
                         f"{', '.join(map(str, sample_shape))}) (its config's in_channels / image_size): resize or "
                         f"crop the data, or build the model for this size"
                         + ("; the data looks NHWC: permute(0, 3, 1, 2)"
                            if x.ndim == 4 and tuple(x.shape[1:]) == tuple(sample_shape[1:]) + (sample_shape[0],)
                            else ""))
    if y is not None:
        if not torch.is_tensor(y) or y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
            raise ValueError(f"training batch: labels y must be an integer (long) tensor (B,), got "
                             f"{y.dtype if torch.is_tensor(y) else type(y).__name__}; convert with y.long()")
        if tuple(y.shape) != (x.shape[0],):
            raise ValueError(f"training batch: labels y must have shape ({x.shape[0]},) (one per sample), got "
                             f"{tuple(y.shape)}")
    if not values:
        return
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise ValueError(f"training batch: x holds {bad} non-finite value(s) (NaN/inf) of {x.numel()}; the data "
                         f"must be finite: find and drop or repair those samples")
    if data_range is not None:
        lo, hi = float(x.min()), float(x.max())
        if lo < data_range[0] - 1e-5 or hi > data_range[1] + 1e-5:
            if hi > 1.5 and hi <= 255.0 and lo >= 0.0:
                hint = "this looks like [0, 255] pixels: map them with x / 127.5 - 1"
            else:
                hint = "rescale the data (images: 2 * x - 1 for [0, 1], x / 127.5 - 1 for [0, 255])"
            raise ValueError(f"training batch: x has values in [{lo:.4g}, {hi:.4g}] but the expected range is "
                             f"[{data_range[0]:g}, {data_range[1]:g}]: {hint}, or set TrainConfig.data_range for "
                             f"data on another scale")
    if y is not None and num_classes is not None and y.numel():
        lo_y, hi_y = int(y.min()), int(y.max())
        if lo_y < 0 or hi_y >= num_classes:
            null = (f"; label {num_classes} is the null label, which the trainer assigns itself (p_uncond)"
                    if hi_y == num_classes else "")
            raise ValueError(f"training batch: labels lie in [{lo_y}, {hi_y}] but the model has {num_classes} classes "
                             f"(labels 0..{num_classes - 1}){null}: build the model with num_classes = the data's "
                             f"class count, or remap the labels")


class _UniformSampler:
    """Uniform t with unit weights; used only if ``lt_diffusion.resample`` is unavailable."""

    def __init__(self, num_timesteps: int):
        self.num_timesteps = num_timesteps

    def sample(self, batch_size: int, device) -> Tuple[torch.Tensor, torch.Tensor]:
        t = torch.randint(0, self.num_timesteps, (batch_size,), device=device)
        return t, torch.ones(batch_size, device=device)


def _make_sampler(name: str, diffusion: Any) -> Any:
    try:
        from lt_diffusion.resample import create_named_schedule_sampler
    except ImportError:
        if name != "uniform":
            raise
        return _UniformSampler(diffusion.num_timesteps)
    return create_named_schedule_sampler(name, diffusion)


def _sampler_state(sampler: Any) -> Optional[Dict[str, Any]]:
    """The loss-aware sampler's history as tensors (weights_only-safe)."""
    if hasattr(sampler, "state_dict"):
        return sampler.state_dict()
    state = {}
    for k, v in vars(sampler).items():
        if isinstance(v, np.ndarray):
            state[k] = torch.from_numpy(v.copy())
    return state or None


def _load_sampler_state(sampler: Any, state: Optional[Dict[str, Any]]) -> None:
    if state is None:
        return
    if hasattr(sampler, "load_state_dict"):
        sampler.load_state_dict(state)
        return
    for k, v in state.items():
        old = getattr(sampler, k)
        setattr(sampler, k, v.numpy().astype(old.dtype) if isinstance(old, np.ndarray) else v)


def _numpy_rng_state() -> Dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _set_numpy_rng_state(s: Dict[str, Any]) -> None:
    np.random.set_state((s["name"], s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"], s["cached"]))


def _model_num_classes(model: nn.Module) -> Tuple[Optional[int], bool]:
    """(number of real classes the model embeds, whether the model says so); an explicit ``model.num_classes``
    (e.g. a class table in front of a vector-conditioned UNet) wins over ``model.config.num_classes``."""
    own = getattr(model, "num_classes", None)
    if isinstance(own, Integral) and not isinstance(own, bool):
        return int(own), True
    mcfg = getattr(model, "config", None)
    if mcfg is not None and hasattr(mcfg, "num_classes"):
        return mcfg.num_classes, True
    return None, False


class Trainer:
    """Train ``model`` on ``data`` with ``diffusion.training_losses``.

    Args:
        model: a network with the signature ``model(x_t, t, y=None, cond=None)`` (e.g. ``UNetModel``), or any
            module the objective calls (a classifier, an MLP on vectors).
        diffusion: has ``num_timesteps`` and ``training_losses(model, x_start, t, model_kwargs=None)
            -> {"loss": (B,), ...}`` (:class:`lt_diffusion.diffusion.GaussianDiffusion`, or a classifier objective).
        data: iterable yielding ``(x, y)`` (or ``x``) forever: ``x`` float ``(B, ...)`` in ``config.data_range``
            (images ``(B, C, H, W)`` in ``[-1, 1]``), ``y`` long ``(B,)`` in ``[0, num_classes)``, ``B`` =
            ``config.batch_size`` (batches of the global size are split across DDP ranks; batches of the per-rank
            size are used as they are). The first batch is checked in full (:func:`check_batch`), every later
            one for dtype and shape. If it (or its iterator) has ``state_dict()/load_state_dict()``,
            checkpoints record its position.
        config: :class:`TrainConfig`.
        schedule_sampler: an object with ``sample(batch_size, device) -> (t, weights)``; default built
            from ``config.schedule_sampler``.

    After :meth:`run`, ``history`` holds one dict per ``log_every`` steps (``step``, ``loss``,
    ``loss_q0..q3``, the same for every term the diffusion returns, ``lr``, ``grad_norm`` when clipping,
    ``images_per_s`` (counted from the batches actually drawn), ``elapsed_s``, and ``precision``: the arithmetic
    of the steps, ``"bf16"``, ``"fp16"`` or ``"fp32"`` (:func:`select_precision`), also ``Trainer.precision`` and
    the checkpoint's ``"precision"``); ``ema_model`` is the averaged network for sampling.
    """

    def __init__(self, model: nn.Module, diffusion: Any, data: Iterable, config: TrainConfig,
                 schedule_sampler: Any = None):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.config = cfg = config
        dev = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.rank, self.world_size, local_rank = setup_distributed(dev.type)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", local_rank)
            torch.cuda.set_device(dev)
        self.device = dev
        self.precision = select_precision(cfg.amp, dev)
        self.use_bf16 = self.precision == "bf16"
        self._autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        self.scaler = torch.amp.GradScaler(dev.type) if self.precision == "fp16" else None
        self.channels_last = cfg.channels_last and dev.type == "cuda"
        if cfg.batch_size % self.world_size:
            raise ValueError(f"batch_size {cfg.batch_size} not divisible by world size {self.world_size}")
        self.local_batch = cfg.batch_size // self.world_size
        if cfg.microbatch is not None and self.local_batch % cfg.microbatch:
            raise ValueError(f"TrainConfig.microbatch={cfg.microbatch} does not divide the batch of each of the "
                             f"{self.world_size} processes ({self.local_batch}): choose a divisor of {self.local_batch}")
        # micro-batches per step (1: the whole batch in one pass)
        self.micro_chunks = 1 if cfg.microbatch is None else self.local_batch // cfg.microbatch
        self._batch_sizes = tuple(sorted({cfg.batch_size, self.local_batch}))
        loader_batch = getattr(data, "batch_size", None)
        if isinstance(loader_batch, Integral) and not isinstance(loader_batch, bool) \
                and loader_batch not in self._batch_sizes:
            raise ValueError(f"the data loader's batch_size is {loader_batch} but TrainConfig.batch_size is "
                             f"{cfg.batch_size}: build both with the same batch size (the config's is the one the "
                             f"learning rate and the logged throughput refer to)")

        mcfg = getattr(model, "config", None)
        model_classes, declared = _model_num_classes(model)
        if cfg.num_classes is not None and declared and model_classes != cfg.num_classes:
            what = ("an unconditional model (num_classes=None)" if model_classes is None
                    else f"a model with {model_classes} classes")
            raise ValueError(f"TrainConfig.num_classes={cfg.num_classes} but the trainer got {what}: the null "
                             f"label is num_classes, so a mismatch would train a real class as the null label. "
                             f"Leave TrainConfig.num_classes=None (it is read from the model) or build the model "
                             f"with num_classes={cfg.num_classes}")
        self.num_classes = cfg.num_classes if cfg.num_classes is not None else model_classes
        if cfg.p_uncond > 0 and self.num_classes is None:
            raise ValueError("p_uncond > 0 drops labels to the null label: it needs a class-conditional model "
                             "(model.config.num_classes or TrainConfig.num_classes)")
        size, chans = getattr(mcfg, "image_size", None), getattr(mcfg, "in_channels", None)
        self._sample_shape = (chans, size, size) if isinstance(size, int) and isinstance(chans, int) else None

        torch.manual_seed(cfg.seed + self.rank)  # distinct noise / t per rank
        np.random.seed((cfg.seed + self.rank) % 2**32)

        self.model = model.to(dev)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # EMA in float32 via torch's maintained implementation (foreach lerp); buffers are averaged too.
        avg_fn = (_warmup_ema_multi_avg_fn(cfg.ema_rate, lambda: self.step) if cfg.ema_warmup
                  else get_ema_multi_avg_fn(cfg.ema_rate))
        self.ema = AveragedModel(self.model, multi_avg_fn=avg_fn, use_buffers=True)
        self.ema.requires_grad_(False)

        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if cfg.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(self.params, lr=cfg.lr, momentum=cfg.momentum,
                                             weight_decay=cfg.weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, betas=cfg.betas,
                                               weight_decay=cfg.weight_decay,
                                               fused=True if dev.type == "cuda" else None)

        net: nn.Module = self.model
        if cfg.compile and cfg.compile_regional:
            from lt_diffusion.models import compile_model
            net = compile_model(net, mode=cfg.compile_mode, regional=True)
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP
            net = DDP(net, device_ids=[dev.index] if dev.type == "cuda" else None)
        if cfg.compile and not cfg.compile_regional:
            net = torch.compile(net, mode=cfg.compile_mode)
        self.net = net  # what the diffusion calls: maybe DDP- and/or compile-wrapped, same weights

        self.diffusion = diffusion
        self.num_timesteps = int(diffusion.num_timesteps)
        self.sampler = schedule_sampler if schedule_sampler is not None else _make_sampler(cfg.schedule_sampler,
                                                                                           diffusion)
        try:
            self._objective_takes_noise = "noise" in inspect.signature(diffusion.training_losses).parameters
        except (TypeError, ValueError, AttributeError):
            self._objective_takes_noise = False
        self.data = data
        self._data_iter = iter(data)
        self.step = 0
        self.history: List[Dict[str, Any]] = []
        self.last_checkpoint: Optional[str] = None  # the newest checkpoint written or loaded by this trainer
        self._first_batch_checked = False
        # Synchronising each step costs nothing on the CPU; on CUDA the loss is checked at log/checkpoint time.
        self._check_every_step = dev.type != "cuda"
        self._failed_step: Optional[int] = None
        self._bad_step = torch.full((), -1, dtype=torch.long, device=dev)
        self._elapsed_total = 0.0
        self._in_run = False
        self._reset_accumulators()

    # ------------------------------------------------------------------ properties
    @property
    def ema_model(self) -> nn.Module:
        """The EMA network (an ``nn.Module`` with the model's signature), for sampling."""
        return self.ema.module

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def lr_at(self, step: int) -> float:
        """Learning rate of the update with 0-based index ``step`` (``config.lr_schedule``)."""
        if self.config.lr_schedule == "cosine":
            c = self.config
            return warmup_cosine_lr(step, c.steps, c.lr, c.warmup_steps, c.lr_floor)
        if self.config.lr_schedule == "linear":  # guided-diffusion's set_annealed_lr: lr * (1 - step / steps)
            anneal = self.config.lr * (1.0 - step / self.config.steps)
            if self.config.warmup_steps > 0:
                anneal *= min(1.0, (step + 1) / self.config.warmup_steps)
            return anneal
        if self.config.warmup_steps > 0:
            return self.config.lr * min(1.0, (step + 1) / self.config.warmup_steps)
        return self.config.lr

    # ------------------------------------------------------------------ one step
    def _next_batch(self) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        batch = next(self._data_iter)
        x, y = (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (batch, None)
        first = not self._first_batch_checked
        check_batch(x, y, batch_sizes=self._batch_sizes, sample_shape=self._sample_shape,
                    data_range=self.config.data_range, num_classes=self.num_classes, values=first)
        self._first_batch_checked = True
        if self.world_size > 1 and x.shape[0] == self.config.batch_size:
            sl = slice(self.rank * self.local_batch, (self.rank + 1) * self.local_batch)
            x, y = x[sl], (y[sl] if y is not None else None)
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if y is not None:
            y = y.to(self.device, non_blocking=True)
        return x, y

    def _drop_labels(self, y: torch.Tensor) -> torch.Tensor:
        """Replace labels by the null label ``num_classes`` with probability ``p_uncond`` (no host sync)."""
        p = self.config.p_uncond
        if p <= 0:
            return y
        n = 1 if self.config.uncond_mode == "batch" else y.shape[0]
        drop = torch.rand(n, device=y.device) < p
        return torch.where(drop, torch.full_like(y, self.num_classes), y)

    def _reset_accumulators(self) -> None:
        self._acc: Dict[str, torch.Tensor] = {}
        self._count = torch.zeros(4, device=self.device, dtype=torch.float64)
        self._gn_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        self._gn_count = torch.zeros((), device=self.device, dtype=torch.float64)
        self._acc_steps = 0
        self._acc_images = 0
        self._elapsed_pending = 0.0  # seconds of training since the last record, outside the current run() call
        self._t0 = time.perf_counter()

    def _accumulate(self, t: torch.Tensor, weights: torch.Tensor, losses: Dict[str, torch.Tensor]) -> None:
        # Improved DDPM's log_loss_dict: per-term means over all samples and per quarter of [0, T).
        q = (t * 4 // self.num_timesteps).clamp_(0, 3)
        self._count.index_add_(0, q, torch.ones_like(q, dtype=torch.float64))
        for k, v in losses.items():
            if v.ndim != 1:
                continue
            if k not in self._acc:
                self._acc[k] = torch.zeros(4, device=self.device, dtype=torch.float64)
            self._acc[k].index_add_(0, q, (v.detach() * weights).double())

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self._autocast_dtype or torch.bfloat16,
                              enabled=self._autocast_dtype is not None)

    def _backward(self, loss: torch.Tensor) -> None:
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def _micro_steps(self, x: torch.Tensor, t: torch.Tensor, weights: torch.Tensor,
                     kwargs: Dict[str, Any]) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
        """Forward and backward per micro-batch (``config.microbatch`` rows), the gradients summed into the whole
        batch's. Returns the whole batch's per-sample losses ``{name: (B,)}`` and its mean loss (a device scalar).

        The whole batch's label drops (already in ``kwargs``) and noise are drawn before the split, in the order an
        unsplit step draws them, so the update is the unsplit one up to summation order.
        """
        B, n = x.shape[0], self.micro_chunks
        size = B // n
        draw = getattr(self.diffusion, "draw_batch", None)
        noise = None
        if draw is not None:              # DDP's GlobalBatchDiffusion: the global batch's drops and noise, our rows
            kwargs, noise = draw(x, kwargs)
        elif self._objective_takes_noise:  # GaussianDiffusion.training_losses' own draw, for the whole batch
            noise = torch.randn(x.shape, device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float32)
        no_sync = getattr(self.net, "no_sync", None) if self.world_size > 1 else None
        parts: List[Dict[str, torch.Tensor]] = []
        total = torch.zeros((), device=x.device)
        for i in range(n):
            rows = slice(i * size, (i + 1) * size)
            kw = {k: v[rows] if isinstance(v, torch.Tensor) and v.ndim > 0 and v.shape[0] == B else v
                  for k, v in kwargs.items()}
            # DDP: all-reduce the gradients once, in the last micro-batch's backward pass
            sync = no_sync() if no_sync is not None and i < n - 1 else contextlib.nullcontext()
            with sync:
                with self._autocast():
                    if draw is not None:
                        out = self.diffusion.chunk_losses(self.net, x[rows], t[rows], kw, noise[rows], chunk=i)
                    elif noise is not None:
                        out = self.diffusion.training_losses(self.net, x[rows], t[rows], model_kwargs=kw,
                                                             noise=noise[rows])
                    else:
                        out = self.diffusion.training_losses(self.net, x[rows], t[rows], model_kwargs=kw)
                part = (out["loss"].float() * weights[rows]).sum() / B
                self._backward(part)
            parts.append({k: v.detach() for k, v in out.items() if v.ndim == 1 and v.shape[0] == size})
            total = total + part.detach()
        losses = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        return losses, total

    def train_step(self) -> torch.Tensor:
        """One optimiser step; returns the (device) scalar loss without synchronising (on CUDA)."""
        if self._failed_step is not None:
            raise NonFiniteLossError(self._nonfinite_message(self._failed_step), self._failed_step)
        cfg = self.config
        x, y = self._next_batch()
        t, weights = self.sampler.sample(x.shape[0], self.device)
        t = t.to(self.device)
        weights = weights.to(self.device, torch.float32)
        kwargs: Dict[str, Any] = {}
        if self.num_classes is not None and y is not None:
            kwargs["y"] = self._drop_labels(y)
        self.optimizer.zero_grad(set_to_none=True)
        if self.micro_chunks == 1:
            with self._autocast():
                losses = self.diffusion.training_losses(self.net, x, t, model_kwargs=kwargs)
            loss = (losses["loss"].float() * weights).mean()
            self._backward(loss)
        else:
            losses, loss = self._micro_steps(x, t, weights, kwargs)
        # The first step whose loss is not finite, kept on the device (no sync); checked by _check_finite.
        self._bad_step = torch.where((self._bad_step < 0) & ~torch.isfinite(loss),
                                     torch.full_like(self._bad_step, self.step + 1), self._bad_step)
        if cfg.grad_clip is not None:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            gn = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip, foreach=True).double()
            ok = torch.isfinite(gn)
            self._gn_sum += torch.where(ok, gn, torch.zeros_like(gn))
            self._gn_count += ok.double()
        lr = self.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skipped when the scaled gradients overflowed
            self.scaler.update()
        else:
            self.optimizer.step()
        self.ema.update_parameters(self.model)

        if hasattr(self.sampler, "update_with_local_losses"):
            # Feeds the loss-aware sampler (Improved DDPM Sec. 3.3); a no-op for the uniform one.
            self.sampler.update_with_local_losses(t, losses["loss"].detach().float())
        self._accumulate(t, weights, losses)
        self._acc_steps += 1
        self._acc_images += x.shape[0] * self.world_size
        self.step += 1
        if self._check_every_step:
            self._check_finite()
        return loss.detach()

    # ------------------------------------------------------------------ non-finite losses
    def _nonfinite_message(self, step: int) -> str:
        last = self.last_checkpoint or "none (this trainer has not written or loaded one)"
        return (f"training stopped: the loss was not finite (NaN or inf) at step {step} "
                f"(lr {self.lr_at(step - 1):.3g}); "
                f"the weights are no longer usable and no checkpoint of them is written. Last good checkpoint: "
                f"{last}. Fix: lower TrainConfig.lr (now {self.config.lr:g}), set grad_clip, or check the data for "
                f"NaN/inf (only the first batch is checked in full); then resume from the last good checkpoint")

    def _check_finite(self) -> None:
        """Raise :class:`NonFiniteLossError` if any step so far had a non-finite loss (one host sync)."""
        if self._failed_step is None:
            bad = self._bad_step
            if self.world_size > 1:
                bad = bad.clone()
                dist.all_reduce(bad, op=dist.ReduceOp.MAX)
            k = int(bad)
            if k < 0:
                return
            self._failed_step = k
        raise NonFiniteLossError(self._nonfinite_message(self._failed_step), self._failed_step)

    # ------------------------------------------------------------------ logging
    def _log(self) -> Dict[str, Any]:
        """Reduce the accumulators (across ranks too) into one history record; the loop's only sync."""
        self._check_finite()
        keys = sorted(self._acc)
        stacked = torch.stack([self._count] + [self._acc[k] for k in keys]
                              + [self._gn_sum.expand(4), self._gn_count.expand(4)])
        if self.world_size > 1:
            dist.all_reduce(stacked)
        vals = stacked.cpu()
        counts = vals[0]
        now = time.perf_counter()
        rec: Dict[str, Any] = {"step": self.step}
        for i, k in enumerate(keys):
            sums = vals[1 + i]
            rec[k] = float(sums.sum() / counts.sum().clamp(min=1))
            for qi in range(4):
                if counts[qi] > 0:
                    rec[f"{k}_q{qi}"] = float(sums[qi] / counts[qi])
        rec["lr"] = self.lr_at(self.step - 1)
        if self.config.grad_clip is not None:
            rec["grad_norm"] = float(vals[-2][0] / max(float(vals[-1][0]), 1.0))
        elapsed = self._elapsed_pending + (now - self._t0)
        rec["images_per_s"] = self._acc_images / max(elapsed, 1e-9)
        self._elapsed_total += elapsed
        rec["elapsed_s"] = self._elapsed_total
        rec["precision"] = self.precision  # for provenance: "bf16", "fp16" or "fp32"
        self.history.append(rec)
        self._reset_accumulators()
        self._t0 = now
        return rec

    def run(self, num_steps: Optional[int] = None) -> List[Dict[str, Any]]:
        """Train until ``config.steps`` (or for ``num_steps`` more steps); returns ``history``.

        Records are written at every multiple of ``log_every`` and at ``config.steps``, so a run split into
        several calls (or resumed from a checkpoint) logs the same history as one uninterrupted call.
        Raises :class:`NonFiniteLossError` when a loss is not finite (see :meth:`train_step`).
        """
        cfg = self.config
        end = cfg.steps if num_steps is None else min(cfg.steps, self.step + num_steps)
        bar = None
        if cfg.progress and self.is_main:
            from .progress import tqdm
            bar = tqdm(total=end, initial=self.step, desc="train", dynamic_ncols=True)
        self.model.train()
        self._t0 = time.perf_counter()
        self._in_run = True
        try:
            while self.step < end:
                self.train_step()
                if bar is not None:
                    bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    rec = self._log()
                    if bar is not None:
                        bar.set_postfix(loss=f"{rec.get('loss', float('nan')):.4f}",
                                        img_s=f"{rec['images_per_s']:.0f}")
                if cfg.ckpt_dir and cfg.ckpt_every and self.step % cfg.ckpt_every == 0:
                    self.save_checkpoint(os.path.join(cfg.ckpt_dir, f"ckpt_{self.step:07d}.pt"))
            self._check_finite()
            if cfg.ckpt_dir and not (cfg.ckpt_every and self.step % cfg.ckpt_every == 0):
                self.save_checkpoint(os.path.join(cfg.ckpt_dir, f"ckpt_{self.step:07d}.pt"))
        finally:
            now = time.perf_counter()
            self._elapsed_pending += now - self._t0
            self._t0 = now
            self._in_run = False
            if bar is not None:
                bar.close()
        return self.history

    # ------------------------------------------------------------------ checkpoints
    def _data_state_owner(self) -> Any:
        for obj in (self._data_iter, self.data):
            if hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict"):
                return obj
        return None

    def _rng_state(self) -> Dict[str, Any]:
        state: Dict[str, Any] = {"torch_cpu": torch.get_rng_state(), "numpy": _numpy_rng_state()}
        if self.device.type == "cuda":
            state["torch_cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _accumulator_state(self) -> Dict[str, Any]:
        running = time.perf_counter() - self._t0 if self._in_run else 0.0
        return {"acc": {k: v.cpu() for k, v in self._acc.items()}, "count": self._count.cpu(),
                "gn_sum": self._gn_sum.cpu(), "gn_count": self._gn_count.cpu(), "steps": self._acc_steps,
                "images": self._acc_images, "elapsed_pending": self._elapsed_pending + running,
                "elapsed_total": self._elapsed_total}

    def state_dict(self) -> Dict[str, Any]:
        """Everything needed for an exact resume, as tensors and primitive containers."""
        rng = self._rng_state()
        if self.world_size > 1:  # every rank's streams, so each rank resumes its own
            gathered: List[Any] = [None] * self.world_size
            dist.all_gather_object(gathered, rng)
            rng_all = gathered
        else:
            rng_all = [rng]
        owner = self._data_state_owner()
        mcfg = getattr(self.model, "config", None)
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "precision": self.precision,
            "rng": rng_all,
            "data": owner.state_dict() if owner is not None else None,
            "sampler": _sampler_state(self.sampler),
            "config": dataclasses.asdict(self.config),
            "model_config": mcfg.to_dict() if hasattr(mcfg, "to_dict") else None,
            "history": list(self.history),
            "accumulators": self._accumulator_state(),
        }

    def _all_weights_finite(self) -> bool:
        tensors = [t for t in list(self.model.parameters()) + list(self.ema.parameters()) if t.is_floating_point()]
        if not tensors:
            return True
        return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())

    def save_checkpoint(self, path: str) -> None:
        """Write a checkpoint atomically (call on every rank under DDP; rank 0 writes).

        Refuses (:class:`NonFiniteLossError`) when a loss since the last check was not finite or a weight of the
        model or its EMA is NaN/inf, so a checkpoint never holds a diverged state.
        """
        self._check_finite()
        if not self._all_weights_finite():
            raise NonFiniteLossError(
                f"refusing to write {path}: the model or EMA weights hold NaN/inf at step {self.step}. Last good "
                f"checkpoint: {self.last_checkpoint or 'none'}. Fix: lower TrainConfig.lr or set grad_clip, then "
                f"resume from it", self.step)
        state = self.state_dict()
        if self.is_main:
            atomic_torch_save(state, path)
        if self.world_size > 1:
            dist.barrier()
        self.last_checkpoint = path

    def _check_compatible(self, state: Dict[str, Any], path: str) -> None:
        """Refuse (CheckpointError) a checkpoint that does not fit this trainer, listing every difference."""
        problems: List[str] = []
        mcfg = getattr(self.model, "config", None)
        stored_cfg = state.get("model_config")
        if stored_cfg is not None and hasattr(mcfg, "to_dict"):
            diff = _config_diff(stored_cfg, mcfg.to_dict())
            if diff:
                problems.append("model config differs: " + "; ".join(diff))
        problems += _state_dict_diff(state["model"], self.model.state_dict(), "model")
        if not problems:  # the EMA copy mirrors the model; report it only if the model itself matched
            problems += _state_dict_diff(state["ema"], self.ema.state_dict(), "ema")
        stored_opt = (state.get("config") or {}).get("optimizer", "adamw")
        if problems:
            pass  # the optimizer state follows the model's shapes: nothing more to say
        elif stored_opt != self.config.optimizer:
            problems.append(f"optimizer: checkpoint {stored_opt!r}, this trainer {self.config.optimizer!r}")
        else:
            groups = state["optimizer"].get("param_groups", [])
            sizes = [len(g["params"]) for g in groups]
            mine = [len(g["params"]) for g in self.optimizer.param_groups]
            if sizes != mine:
                problems.append(f"optimizer parameter groups hold {sizes} tensors, this trainer's {mine}")
            else:
                params = [p for g in self.optimizer.param_groups for p in g["params"]]
                ids = [i for g in groups for i in g["params"]]
                for pid, p in zip(ids, params):
                    for name, v in state["optimizer"].get("state", {}).get(pid, {}).items():
                        if torch.is_tensor(v) and v.ndim > 0 and tuple(v.shape) != tuple(p.shape):
                            problems.append(f"optimizer state {name} of parameter {pid}: checkpoint shape "
                                            f"{tuple(v.shape)}, parameter {tuple(p.shape)}")
                            break
        if problems:
            raise CheckpointError(f"{path} does not fit this trainer, nothing was loaded:\n  - "
                                  + "\n  - ".join(problems)
                                  + "\nBuild the model (and TrainConfig) the checkpoint was trained with; its settings "
                                    "are in the checkpoint's 'model_config' and 'config' entries")

    def load_checkpoint(self, path: str) -> Dict[str, Any]:
        """Restore a checkpoint written by :meth:`save_checkpoint` (``weights_only=True``); returns it.

        All or nothing: the file is read and checked against this trainer first (model config field by field,
        tensor names and shapes, optimizer layout); a checkpoint that does not fit raises :class:`CheckpointError`
        listing the differences, and any failure leaves the trainer exactly as it was.
        """
        state = read_checkpoint(path)
        self._check_compatible(state, path)
        owner = self._data_state_owner()
        saved = {"data": owner.state_dict() if owner is not None else None, "sampler": _sampler_state(self.sampler)}
        try:
            # The parts that validate themselves go first; model and optimiser were checked above.
            if owner is not None and state.get("data") is not None:
                owner.load_state_dict(state["data"])
            _load_sampler_state(self.sampler, state.get("sampler"))
            if self.scaler is not None and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
        except Exception as exc:
            if owner is not None and saved["data"] is not None:
                owner.load_state_dict(saved["data"])
            _load_sampler_state(self.sampler, saved["sampler"])
            raise CheckpointError(f"{path}: its data-loader or sampler state does not fit this trainer ({exc}); "
                                  f"nothing was loaded. Use the data set, batch size and schedule sampler the "
                                  f"checkpoint was trained with") from exc
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.history = list(state.get("history", []))
        rngs = state["rng"]
        if len(rngs) == self.world_size:
            rng = rngs[self.rank]
            torch.set_rng_state(rng["torch_cpu"])
            _set_numpy_rng_state(rng["numpy"])
            if self.device.type == "cuda" and "torch_cuda" in rng:
                torch.cuda.set_rng_state(rng["torch_cuda"], self.device)
        else:  # a different world size: fresh, distinct streams per rank
            torch.manual_seed(self.config.seed + 1000003 * self.step + self.rank)
        self._reset_accumulators()
        acc = state.get("accumulators")
        if acc is not None:
            self._acc = {k: v.to(self.device) for k, v in acc["acc"].items()}
            self._count = acc["count"].to(self.device)
            self._gn_sum = acc["gn_sum"].to(self.device)
            self._gn_count = acc["gn_count"].to(self.device)
            self._acc_steps, self._acc_images = int(acc["steps"]), int(acc["images"])
            self._elapsed_pending, self._elapsed_total = float(acc["elapsed_pending"]), float(acc["elapsed_total"])
        self._bad_step = torch.full((), -1, dtype=torch.long, device=self.device)
        self._failed_step = None
        self._first_batch_checked = False
        self.last_checkpoint = path
        return state

    def resume(self, path: Optional[str] = None) -> Optional[str]:
        """Load the newest checkpoint of ``path`` (a folder; default ``config.ckpt_dir``) or the file ``path``.

        Removes temporary files that killed writers left in the folder. Returns the loaded file, or ``None`` when
        there is no checkpoint yet (a fresh start). A run killed at any moment resumes from here bit-identically.
        """
        path = path if path is not None else self.config.ckpt_dir
        if path is None:
            raise ValueError("resume() needs a checkpoint file or folder (or TrainConfig.ckpt_dir)")
        if os.path.isdir(path) or not path.endswith(".pt"):
            remove_stale_temp_files(path)
            found = latest_checkpoint(path)
            if found is None:
                return None
            path = found
        self.load_checkpoint(path)
        return path
