"""How much GPU memory training an arm takes, and the micro-batch that makes it fit (:func:`fit_microbatch`).

The estimate of a training step: the weights, their gradients, AdamW's two moments and the EMA copy in float32
(20 bytes per parameter), plus the tensors that one forward pass keeps for the backward pass, counted at batch 2 on
the CPU in float32 (``torch.autograd.graph.saved_tensors_hooks``, shared storages once) and scaled to the batch.
Mixed precision keeps many of those tensors in 16 bits, so the estimate errs high; the CUDA context, the allocator's
caching and cuDNN's workspaces come on top, which is why :func:`fit_microbatch` fills only a fraction of the GPU.
It is an estimate, not a measurement on a GPU.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch

__all__ = ["STATE_BYTES_PER_PARAM", "GPU_FRACTION", "saved_activation_bytes", "step_memory", "fit_microbatch",
           "gpu_microbatch", "memory_rows", "memory_table_markdown"]

#: float32 weights + gradients + AdamW's two moments + the EMA copy
STATE_BYTES_PER_PARAM = 20
#: the share of a GPU's memory :func:`fit_microbatch` plans to fill (the rest: CUDA context, allocator, cuDNN)
GPU_FRACTION = 0.8
_CACHE: Dict[str, Tuple[int, int]] = {}


def saved_activation_bytes(arm, batch: int = 2) -> int:
    """Bytes of the distinct tensors one training forward pass of ``arm`` keeps for its backward pass, at ``batch``
    images in float32 on the CPU (shared storages counted once; the weights not counted)."""
    from lt_diffusion.cli import LT_IMB_FACTOR
    from lt_diffusion.data import lt_class_counts
    from lt_diffusion.experiments.build import build_model
    from lt_diffusion.experiments.training import build_objective

    class _Counts:  # CBDM's y' distribution: CIFAR-10-LT's class counts
        @staticmethod
        def class_counts():
            return lt_class_counts(5000, 10, LT_IMB_FACTOR)

    model = build_model(arm)
    model.train()
    objective = build_objective(arm, _Counts())
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, 32, 32, generator=g) * 2 - 1
    classes = arm.train.num_classes if arm.train.num_classes is not None else getattr(arm.model, "num_classes",
                                                                                        None)
    kwargs = {} if classes is None else {"y": torch.arange(batch) % classes}
    steps = getattr(objective, "num_timesteps", 1)
    t = torch.arange(batch) * max(1, steps // batch) % steps
    seen: Dict[int, int] = {}

    def pack(tensor):
        if tensor.device.type != "meta":
            storage = tensor.untyped_storage()
            seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes())
        return tensor

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        objective.training_losses(model, x, t, model_kwargs=kwargs)["loss"].mean()
    return sum(n for ptr, n in seen.items() if ptr not in params)


def step_memory(arm) -> Tuple[int, float]:
    """``(parameters, activation bytes per training sample)`` of ``arm`` (one forward pass at batch 2 on the CPU,
    remembered per distinct model and objective)."""
    from lt_diffusion.experiments.build import build_model

    key = repr((arm.kind, arm.model, arm.diffusion, arm.train.num_classes))
    if key not in _CACHE:
        with torch.device("meta"):
            params = sum(p.numel() for p in build_model(arm).parameters())
        _CACHE[key] = (params, saved_activation_bytes(arm, 2))
    params, per_two = _CACHE[key]
    return params, per_two / 2


def fit_microbatch(arm, batch: int, gpu_bytes: float, fraction: float = GPU_FRACTION) -> Optional[int]:
    """The micro-batch (``TrainConfig.microbatch``) that fits a training step of ``arm`` at ``batch`` samples per
    process into ``fraction`` of ``gpu_bytes``: ``None`` when the whole batch fits, else the largest
    ``batch / 2**k`` that does. A ``ValueError`` says so when not even one sample fits."""
    params, per_sample = step_memory(arm)
    budget = fraction * float(gpu_bytes) - STATE_BYTES_PER_PARAM * params
    if budget >= per_sample * batch:
        return None
    micro = batch
    while micro % 2 == 0 and per_sample * micro > budget:
        micro //= 2
    if per_sample * micro > budget:
        raise ValueError(f"a training step of this arm needs about {(STATE_BYTES_PER_PARAM * params + per_sample * micro) / 1e9:.1f} GB "
                         f"even in micro-batches of {micro}, more than {fraction:.0%} of the GPU's "
                         f"{gpu_bytes / 1e9:.1f} GB: use a GPU with more memory")
    return micro


def gpu_microbatch(arm, model: torch.nn.Module, batch: int, device) -> Optional[int]:
    """The micro-batch :func:`lt_diffusion.experiments.train_model` trains ``arm`` with when none is set: on a CUDA
    device, :func:`fit_microbatch` for its total memory; ``None`` (the whole batch) on a CPU, and for a ``model``
    with BatchNorm, whose batch statistics a split would change."""
    device = torch.device(device)
    if device.type != "cuda" or any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return None
    return fit_microbatch(arm, batch, torch.cuda.get_device_properties(device).total_memory)


def memory_rows(scale: str = "book", gpu_gb: float = 15.0) -> List[Dict[str, Any]]:
    """Per chapter, the largest arm at ``scale``: parameters, batch, the estimate of a step on the whole batch, and
    the micro-batch :func:`fit_microbatch` picks on a ``gpu_gb`` GPU with the estimate of a step in it."""
    from lt_diffusion.cli import NOTEBOOKS
    from lt_diffusion.presets import get_preset

    rows = []
    for chapter in NOTEBOOKS:
        best = None
        for name, arm in get_preset(chapter, scale).arms.items():
            params, per_sample = step_memory(arm)
            batch = arm.train.batch_size
            total = STATE_BYTES_PER_PARAM * params + per_sample * batch
            if best is None or total > best["total_gb"] * 1e9:
                micro = fit_microbatch(arm, batch, gpu_gb * 1e9)
                best = {"chapter": chapter, "arm": name, "params_m": params / 1e6, "batch": batch,
                        "state_gb": STATE_BYTES_PER_PARAM * params / 1e9, "activations_gb": per_sample * batch / 1e9,
                        "total_gb": total / 1e9, "microbatch": micro,
                        "fitted_gb": (STATE_BYTES_PER_PARAM * params + per_sample * (micro or batch)) / 1e9}
        rows.append(best)
    return rows


def memory_table_markdown(scale: str = "book", gpu_gb: float = 15.0) -> str:
    """:func:`memory_rows` as a Markdown table."""
    lines = ["| chapter | largest arm | parameters (M) | batch | weights + Adam + EMA (GB) | activations, fp32 (GB) "
             f"| estimate (GB) | micro-batch on a {gpu_gb:g} GB GPU | estimate with it (GB) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in memory_rows(scale, gpu_gb):
        micro = "whole batch" if r["microbatch"] is None else str(r["microbatch"])
        lines.append(f"| `{r['chapter']}` | `{r['arm']}` | {r['params_m']:.1f} | {r['batch']} | {r['state_gb']:.2f} | "
                     f"{r['activations_gb']:.1f} | {r['total_gb']:.1f} | {micro} | {r['fitted_gb']:.1f} |")
    return "\n".join(lines)
