"""The training loop shared by every chapter: one :class:`Trainer`, papers plug in through the diffusion.

A step (as openai/improved-diffusion's ``TrainLoop.run_step``):

1. draw t and importance weights from the schedule sampler (uniform, or Improved DDPM's
   loss-second-moment sampler for L_vlb);
2. drop labels to the null label with probability ``p_uncond`` (CFG; CBDM drops the whole batch);
3. ``diffusion.training_losses(model, x, t, model_kwargs={"y": y})`` under bf16 autocast on CUDA:
   P2 weights and the CBDM regulariser live inside the diffusion, not here;
4. ``loss = (losses["loss"] * weights).mean()``, backward, optional grad-norm clipping, AdamW
   (fused on CUDA) with linear warm-up, EMA of the weights (float32).

Losses are summed on the device per quarter of the timestep range (Improved DDPM's ``loss_q0..q3``)
and read back only every ``log_every`` steps, so a step never waits for the GPU.

Checkpoints hold only tensors and primitive containers, so ``torch.load(weights_only=True)`` reads them;
resuming reproduces the uninterrupted run exactly (same RNG streams, data position, optimiser state).
Under ``torchrun`` (``WORLD_SIZE > 1``) the model is wrapped in DistributedDataParallel and each rank
trains on its shard of the global batch.
"""
from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["TrainConfig", "Trainer", "setup_distributed", "atomic_torch_save", "ema_warmup_decay", "warmup_cosine_lr"]


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters.

    Attributes:
        steps: total optimiser steps of the run (:meth:`Trainer.run` stops there).
        batch_size: global batch (split across DDP ranks).
        lr, weight_decay, betas: AdamW (Improved DDPM: 1e-4, 0; CBDM: 2e-4 Adam).
        optimizer: ``"adamw"`` (the diffusion papers; fused on CUDA) or ``"sgd"`` (SGD with ``momentum``, as the
            Diffusion Inversion repository trains its downstream classifiers).
        momentum: SGD momentum (unused by AdamW, which uses ``betas``).
        lr_schedule: ``"constant"`` (after a linear warm-up from ``lr / warmup_steps``; the diffusion papers) or
            ``"cosine"`` (:func:`warmup_cosine_lr`: warm-up from ``lr_floor * lr``, then cosine to ``lr_floor * lr``
            at ``steps``; the Diffusion Inversion classifier recipe).
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
        amp: mixed precision on CUDA (bfloat16 autocast); ignored on CPU. channels_last: NHWC activations (CUDA only).
        random_flip: random horizontal flips of the training images (applied by the data loader that
            :func:`lt_diffusion.experiments.train_model` builds from this config).
        compile: ``torch.compile`` the model; compile_mode / compile_regional as in
            :func:`lt_diffusion.models.compile_model`.
        seed: seeds the global torch RNG (+ rank under DDP), which draws t, noise, dropout, label drops.
        log_every: steps between history records (and the only GPU syncs of the loop).
        ckpt_dir, ckpt_every: write ``ckpt_dir/ckpt_{step:07d}.pt`` every ``ckpt_every`` steps (0: never)
            and at the end of :meth:`Trainer.run` when ``ckpt_dir`` is set.
        num_classes: number of real classes (null label = num_classes); default from ``model.config``.
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
    ckpt_dir: Optional[str] = None
    ckpt_every: int = 0
    num_classes: Optional[int] = None
    device: Optional[str] = None
    progress: bool = True

    def __post_init__(self):
        if self.uncond_mode not in ("sample", "batch"):
            raise ValueError(f"uncond_mode must be 'sample' or 'batch', got {self.uncond_mode!r}")
        if not 0.0 <= self.p_uncond <= 1.0:
            raise ValueError(f"p_uncond must lie in [0, 1], got {self.p_uncond}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        object.__setattr__(self, "betas", tuple(self.betas))


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


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save`` to a temporary file in the target folder, then ``os.replace`` it into place.

    A crash mid-write leaves the previous file (if any) intact and no partial file behind.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp_ckpt_", suffix=".pt", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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


class Trainer:
    """Train ``model`` on ``data`` with ``diffusion.training_losses``.

    Args:
        model: a network with the signature ``model(x_t, t, y=None, cond=None)`` (e.g. ``UNetModel``).
        diffusion: has ``num_timesteps`` and ``training_losses(model, x_start, t, model_kwargs=None)
            -> {"loss": (B,), ...}`` (:class:`lt_diffusion.diffusion.GaussianDiffusion`).
        data: iterable yielding ``(x (B, 3, H, W) float in [-1, 1], y (B,) long)`` forever. Batches of the
            global size are split across DDP ranks; batches of the per-rank size are used as they are.
            If it (or its iterator) has ``state_dict()/load_state_dict()``, checkpoints record its position.
        config: :class:`TrainConfig`.
        schedule_sampler: an object with ``sample(batch_size, device) -> (t, weights)``; default built
            from ``config.schedule_sampler``.

    After :meth:`run`, ``history`` holds one dict per ``log_every`` steps (``step``, ``loss``,
    ``loss_q0..q3``, the same for every term the diffusion returns, ``lr``, ``grad_norm`` when clipping,
    ``images_per_s``, ``elapsed_s``); ``ema_model`` is the averaged network for sampling.
    """

    def __init__(self, model: nn.Module, diffusion: Any, data: Iterable, config: TrainConfig,
                 schedule_sampler: Any = None):
        self.config = cfg = config
        dev = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.rank, self.world_size, local_rank = setup_distributed(dev.type)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", local_rank)
            torch.cuda.set_device(dev)
        self.device = dev
        self.use_bf16 = cfg.amp and dev.type == "cuda"
        self.channels_last = cfg.channels_last and dev.type == "cuda"
        if cfg.batch_size % self.world_size:
            raise ValueError(f"batch_size {cfg.batch_size} not divisible by world size {self.world_size}")
        self.local_batch = cfg.batch_size // self.world_size

        torch.manual_seed(cfg.seed + self.rank)  # distinct noise / t per rank
        np.random.seed((cfg.seed + self.rank) % 2**32)

        self.model = model.to(dev)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        mcfg = getattr(model, "config", None)
        self.num_classes = cfg.num_classes if cfg.num_classes is not None else getattr(mcfg, "num_classes", None)
        if cfg.p_uncond > 0 and self.num_classes is None:
            raise ValueError("p_uncond > 0 drops labels to the null label: it needs a class-conditional model "
                             "(model.config.num_classes or TrainConfig.num_classes)")
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
        self.data = data
        self._data_iter = iter(data)
        self.step = 0
        self.history: List[Dict[str, float]] = []
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
        if self.config.warmup_steps > 0:
            return self.config.lr * min(1.0, (step + 1) / self.config.warmup_steps)
        return self.config.lr

    # ------------------------------------------------------------------ one step
    def _next_batch(self) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        batch = next(self._data_iter)
        x, y = (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (batch, None)
        if self.world_size > 1 and x.shape[0] == self.config.batch_size:
            sl = slice(self.rank * self.local_batch, (self.rank + 1) * self.local_batch)
            x, y = x[sl], (y[sl] if y is not None else None)
        x = x.to(self.device, non_blocking=True)
        if self.channels_last:
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
        self._acc_steps = 0
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

    def train_step(self) -> torch.Tensor:
        """One optimiser step; returns the (device) scalar loss without synchronising."""
        cfg = self.config
        x, y = self._next_batch()
        t, weights = self.sampler.sample(x.shape[0], self.device)
        t = t.to(self.device)
        weights = weights.to(self.device, torch.float32)
        kwargs: Dict[str, Any] = {}
        if self.num_classes is not None and y is not None:
            kwargs["y"] = self._drop_labels(y)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            losses = self.diffusion.training_losses(self.net, x, t, model_kwargs=kwargs)
        loss = (losses["loss"].float() * weights).mean()

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            gn = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip, foreach=True)
            self._gn_sum += gn.double()
        lr = self.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.ema.update_parameters(self.model)

        if hasattr(self.sampler, "update_with_local_losses"):
            # Feeds the loss-aware sampler (Improved DDPM Sec. 3.3); a no-op for the uniform one.
            self.sampler.update_with_local_losses(t, losses["loss"].detach().float())
        self._accumulate(t, weights, losses)
        self._acc_steps += 1
        self.step += 1
        return loss.detach()

    def _log(self) -> Dict[str, float]:
        """Reduce the accumulators (across ranks too) into one history record; the loop's only sync."""
        keys = sorted(self._acc)
        stacked = torch.stack([self._count] + [self._acc[k] for k in keys] + [self._gn_sum.expand(4)])
        if self.world_size > 1:
            dist.all_reduce(stacked)
        vals = stacked.cpu()
        counts = vals[0]
        now = time.perf_counter()
        rec: Dict[str, float] = {"step": self.step}
        for i, k in enumerate(keys):
            sums = vals[1 + i]
            rec[k] = float(sums.sum() / counts.sum().clamp(min=1))
            for qi in range(4):
                if counts[qi] > 0:
                    rec[f"{k}_q{qi}"] = float(sums[qi] / counts[qi])
        rec["lr"] = self.lr_at(self.step - 1)
        if self.config.grad_clip is not None:
            rec["grad_norm"] = float(vals[-1][0] / max(self._acc_steps, 1) / self.world_size)
        elapsed = now - self._t0
        rec["images_per_s"] = self._acc_steps * self.config.batch_size / max(elapsed, 1e-9)
        self._elapsed_total = getattr(self, "_elapsed_total", 0.0) + elapsed
        rec["elapsed_s"] = self._elapsed_total
        self.history.append(rec)
        self._reset_accumulators()
        return rec

    def run(self, num_steps: Optional[int] = None) -> List[Dict[str, float]]:
        """Train until ``config.steps`` (or for ``num_steps`` more steps); returns ``history``."""
        cfg = self.config
        end = cfg.steps if num_steps is None else min(cfg.steps, self.step + num_steps)
        bar = None
        if cfg.progress and self.is_main:
            from .progress import tqdm
            bar = tqdm(total=end, initial=self.step, desc="train", dynamic_ncols=True)
        self.model.train()
        self._reset_accumulators()
        while self.step < end:
            self.train_step()
            if bar is not None:
                bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == end:
                rec = self._log()
                if bar is not None:
                    bar.set_postfix(loss=f"{rec.get('loss', float('nan')):.4f}",
                                    img_s=f"{rec['images_per_s']:.0f}")
            if cfg.ckpt_dir and cfg.ckpt_every and self.step % cfg.ckpt_every == 0:
                self.save_checkpoint(os.path.join(cfg.ckpt_dir, f"ckpt_{self.step:07d}.pt"))
        if cfg.ckpt_dir and not (cfg.ckpt_every and self.step % cfg.ckpt_every == 0):
            self.save_checkpoint(os.path.join(cfg.ckpt_dir, f"ckpt_{self.step:07d}.pt"))
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
            "format": 1,
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_all,
            "data": owner.state_dict() if owner is not None else None,
            "sampler": _sampler_state(self.sampler),
            "config": dataclasses.asdict(self.config),
            "model_config": mcfg.to_dict() if hasattr(mcfg, "to_dict") else None,
            "history": list(self.history),
        }

    def save_checkpoint(self, path: str) -> None:
        """Write a checkpoint atomically (call on every rank under DDP; rank 0 writes)."""
        state = self.state_dict()
        if self.is_main:
            atomic_torch_save(state, path)
        if self.world_size > 1:
            dist.barrier()

    def load_checkpoint(self, path: str) -> Dict[str, Any]:
        """Restore a checkpoint written by :meth:`save_checkpoint` (``weights_only=True``); returns it."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.history = list(state.get("history", []))
        _load_sampler_state(self.sampler, state.get("sampler"))
        owner = self._data_state_owner()
        if owner is not None and state.get("data") is not None:
            owner.load_state_dict(state["data"])
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
        return state
