#!/usr/bin/env python
"""Training and sampling throughput of the CIFAR-10 UNets (see benchmarks/README.md).

For each model (our ``iddpm_cifar10`` and ``ddpm_cifar10`` presets, and diffusers' ``UNet2DModel`` at the
google/ddpm-cifar10-32 config when diffusers imports) it times one full training step
(q_sample, ε-MSE forward, backward, fused AdamW) at batch 128 on 3x32x32 in three modes:

- ``fp32``: float32 weights and activations, TF32 matmuls/convs allowed;
- ``bf16``: bf16 autocast, eager;
- ``compile``: bf16 autocast + channels_last + ``torch.compile``;

and forward-only sampling throughput at batch 512 in bf16 (eager + channels_last, and compiled when the
``compile`` mode is selected). Reported: median step time over >= 20 timed steps after warm-up (CUDA
events), images/s, training FLOPs per image (``FlopCounterMode``, forward + backward), achieved TFLOP/s and
MFU against ``--peak-tflops``, peak memory, compile time. A table is printed last; ``--out`` gets JSON.

CPU check (seconds): ``python benchmarks/train_throughput.py --tiny --device cpu``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from lt_diffusion.models import UNetModel, count_parameters, get_model_config  # noqa: E402

DDPM_CIFAR10_DIFFUSERS = dict(  # google/ddpm-cifar10-32 config.json
    sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256), layers_per_block=2,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), norm_num_groups=32, norm_eps=1e-6,
    attention_head_dim=None, dropout=0.1, downsample_padding=0, flip_sin_to_cos=False, freq_shift=1,
    act_fn="silu", time_embedding_type="positional", resnet_time_scale_shift="default",
)
TINY_DIFFUSERS = dict(DDPM_CIFAR10_DIFFUSERS, block_out_channels=(16, 32), layers_per_block=1,
                      down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                      norm_num_groups=8)
MODES = ("fp32", "bf16", "compile")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Timer:
    """Per-step timing: CUDA events on GPU (stream time, no per-step sync), perf_counter on CPU."""

    def __init__(self, device: torch.device):
        self.device, self.pairs, self.cpu_ms = device, [], []

    def time(self, fn: Callable[[], Any]) -> None:
        if self.device.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            self.pairs.append((a, b))
        else:
            t0 = time.perf_counter()
            fn()
            self.cpu_ms.append(1e3 * (time.perf_counter() - t0))

    def median_ms(self) -> float:
        _sync(self.device)
        ms = [a.elapsed_time(b) for a, b in self.pairs] if self.pairs else self.cpu_ms
        return statistics.median(ms)


def build_model(name: str, tiny: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "diffusers_ddpm_cifar10":
        from diffusers import UNet2DModel
        return UNet2DModel(**(TINY_DIFFUSERS if tiny else DDPM_CIFAR10_DIFFUSERS))
    return UNetModel(get_model_config(name))


def forward_fn(model: torch.nn.Module, is_diffusers: bool) -> Callable:
    if is_diffusers:
        return lambda x, t: model(x, t, return_dict=False)[0]
    return lambda x, t: model(x, t)


def make_train_step(model, is_diffusers: bool, device, bf16: bool, channels_last: bool, compile_model: bool,
                    compile_mode: Optional[str], batch: int, T: int = 1000) -> Callable[[], torch.Tensor]:
    """A closure doing one full training step on a fixed random batch (B, 3, 32, 32)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    net = torch.compile(model, mode=compile_mode) if compile_model else model
    call = forward_fn(net, is_diffusers)
    g = torch.Generator(device=device).manual_seed(0)
    x0 = torch.rand(batch, 3, 32, 32, device=device, generator=g) * 2 - 1
    if channels_last:
        x0 = x0.contiguous(memory_format=torch.channels_last)
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    alphas_cumprod = torch.cumprod(1 - betas, 0).float().to(device)

    def step() -> torch.Tensor:
        t = torch.randint(0, T, (batch,), device=device)
        noise = torch.randn_like(x0)
        ab = alphas_cumprod[t].view(-1, 1, 1, 1)
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = call(x_t, t)
        loss = F.mse_loss(out[:, :3].float(), noise)  # learned-sigma models: eps channels only
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    return step


def count_train_flops(model, is_diffusers: bool, device, batch: int = 4) -> float:
    """Forward + backward FLOPs per image of the ε-MSE step (FlopCounterMode counts matmul/conv/attention)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode
    call = forward_fn(model, is_diffusers)
    x = torch.randn(batch, 3, 32, 32, device=device)
    t = torch.randint(0, 1000, (batch,), device=device)
    # The math SDPA backend is made of bmm's that the counter sees on every device (the fused CPU kernel
    # is not counted), so the count does not depend on which attention kernel the device would pick.
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        out = call(x, t)
        F.mse_loss(out[:, :3], torch.randn_like(x)).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch


def bench_train(name: str, mode: str, args, device) -> Dict[str, Any]:
    is_diffusers = name.startswith("diffusers")
    model = build_model(name, args.tiny).to(device).train()
    channels_last = mode == "compile"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    step = make_train_step(model, is_diffusers, device, bf16=mode != "fp32", channels_last=channels_last,
                           compile_model=mode == "compile", compile_mode=args.compile_mode, batch=args.batch)
    t0 = time.perf_counter()
    step()
    _sync(device)
    first_s = time.perf_counter() - t0
    for _ in range(args.warmup - 1):
        step()
    _sync(device)
    timer = _Timer(device)
    for _ in range(args.steps):
        timer.time(step)
    ms = timer.median_ms()
    res = {"median_ms": ms, "images_per_s": args.batch / (ms / 1e3), "first_step_s": first_s}
    if mode == "compile":
        res["compile_s"] = first_s
    if device.type == "cuda":
        res["peak_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    return res


def bench_sample(name: str, compiled: bool, args, device) -> Dict[str, Any]:
    is_diffusers = name.startswith("diffusers")
    model = build_model(name, args.tiny).to(device).eval().to(memory_format=torch.channels_last)
    net = torch.compile(model, mode=args.compile_mode) if compiled else model
    call = forward_fn(net, is_diffusers)
    B = args.sample_batch
    x = torch.randn(B, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    t = torch.full((B,), 500, device=device)

    def fwd():
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
            return call(x, t)

    t0 = time.perf_counter()
    fwd()
    _sync(device)
    first_s = time.perf_counter() - t0
    for _ in range(args.warmup - 1):
        fwd()
    timer = _Timer(device)
    for _ in range(args.steps):
        timer.time(fwd)
    ms = timer.median_ms()
    out = {"median_ms": ms, "images_per_s": B / (ms / 1e3)}
    if compiled:
        out["compile_s"] = first_s
    return out


def _safe(fn: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    try:
        return fn()
    except Exception as e:  # one failing mode (e.g. no compiler for inductor) must not sink the run
        traceback.print_exc()
        return {"error": f"{type(e).__name__}: {e}"}
    finally:
        torch._dynamo.reset() if hasattr(torch, "_dynamo") else None


def _with_flop_rate(res: Dict[str, Any], flops_per_image: float, peak_tflops: float) -> Dict[str, Any]:
    """Add ``tflops`` and ``mfu`` to a timing result that has ``images_per_s`` (a failed one is left as is)."""
    if "images_per_s" in res:
        res["tflops"] = flops_per_image * res["images_per_s"] / 1e12
        res["mfu"] = res["tflops"] / peak_tflops
    return res


def _fmt(v: Optional[float], spec: str = ".0f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if spec == ".0f" and abs(v) < 100:  # tiny CPU runs: keep some digits
        spec = ".3g"
    return format(v, spec)


def print_table(results: List[Dict[str, Any]], peak: float) -> None:
    head = ["model", "params M", "GFLOP/img", "fp32 img/s", "bf16 img/s", "bf16+cl+compile img/s (compile s)",
            "sample bf16 b{sb} img/s eager / compile", "best MFU %", "peak mem GB"]
    rows = []
    for r in results:
        m = r["train"]
        g = lambda k, f="images_per_s": m.get(k, {}).get(f)  # noqa: E731
        comp = g("compile")
        comp_s = _fmt(comp) + (f" ({_fmt(m['compile'].get('compile_s'), '.0f')})" if comp is not None else "")
        best = max([v.get("mfu", 0) for v in m.values()] or [0])
        mem = max([v.get("peak_mem_gb", 0) for v in m.values()] or [0])
        s = r["sample"]
        rows.append([r["model"], f"{r['params'] / 1e6:.2f}", _fmt(r["gflops_per_image"], ".1f"), _fmt(g("fp32")),
                     _fmt(g("bf16")), comp_s,
                     f"{_fmt(s.get('eager', {}).get('images_per_s'))} / {_fmt(s.get('compile', {}).get('images_per_s'))}",
                     _fmt(100 * best, ".1f"), _fmt(mem, ".2f") if mem else "-"])
    head[6] = head[6].format(sb=results[0]["sample_batch"] if results else "")
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    print()
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
    print(f"(MFU against a peak of {peak} TFLOP/s; FLOPs from FlopCounterMode, forward + backward.)")


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=None,
                   help="presets and/or 'diffusers_ddpm_cifar10' (default: iddpm_cifar10 ddpm_cifar10 + diffusers)")
    p.add_argument("--modes", nargs="+", default=None, choices=MODES)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=None, help="training batch (default 128; --tiny 8)")
    p.add_argument("--sample-batch", type=int, default=None, help="sampling batch (default 512; --tiny 16)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 25; --tiny 3)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps incl. the first (default 5; --tiny 1)")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode (default: default mode)")
    p.add_argument("--peak-tflops", type=float, default=790.0, help="peak for MFU (H100 bf16 dense, measured)")
    p.add_argument("--no-diffusers", action="store_true", help="skip diffusers' UNet2DModel")
    p.add_argument("--no-sample", action="store_true", help="skip the sampling throughput")
    p.add_argument("--tiny", action="store_true", help="smoke model, tiny batches: a CPU check in seconds")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU intra-op threads (default: torch's; 1 with --tiny on CPU)")
    p.add_argument("--batch-sweep", type=int, nargs="+", default=None, metavar="B",
                   help="also time the training step at each of these batch sizes (e.g. 64 128 256 512 1024) for "
                        "every model and mode: the throughput-vs-batch curve (benchmarks/plot_batch_sweep.py)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    if args.batch_sweep and min(args.batch_sweep) < 1:
        p.error(f"--batch-sweep sizes must be positive, got {args.batch_sweep}")

    device = torch.device(args.device)
    tiny = args.tiny
    args.batch = args.batch or (8 if tiny else 128)
    args.sample_batch = args.sample_batch or (16 if tiny else 512)
    args.steps = args.steps or (3 if tiny else 25)
    args.warmup = max(1, args.warmup or (1 if tiny else 5))
    if args.threads or (tiny and device.type == "cpu"):
        # A tiny model gains nothing from threads, and OpenMP spin-waiting on a busy CPU costs 10x or more.
        torch.set_num_threads(args.threads or 1)
    if args.modes is None:  # inductor on CPU needs a C++ toolchain and minutes: opt in with --modes
        args.modes = list(MODES) if device.type == "cuda" else ["fp32", "bf16"]
    models = args.models or (["smoke"] if tiny else ["iddpm_cifar10", "ddpm_cifar10"])
    if not args.no_diffusers and "diffusers_ddpm_cifar10" not in models and args.models is None:
        try:
            import diffusers  # noqa: F401
            models.append("diffusers_ddpm_cifar10")
        except Exception as e:
            print(f"diffusers not importable ({type(e).__name__}: {e}); skipping UNet2DModel")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # "fp32" mode = TF32 tensor cores, as the references
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True

    meta = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
            "batch": args.batch, "sample_batch": args.sample_batch, "timed_steps": args.steps,
            "warmup_steps": args.warmup, "compile_mode": args.compile_mode, "peak_tflops": args.peak_tflops,
            "tiny": tiny, "batch_sweep": args.batch_sweep}
    print(json.dumps(meta))
    results = []
    for name in models:
        model = build_model(name, tiny).to(device)
        flops = count_train_flops(model, name.startswith("diffusers"), device)
        entry = {"model": name, "params": count_parameters(model), "gflops_per_image": flops / 1e9,
                 "sample_batch": args.sample_batch, "train": {}, "sample": {}}
        del model
        for mode in args.modes:
            print(f"[{name}] train {mode} ...", flush=True)
            res = _with_flop_rate(_safe(lambda: bench_train(name, mode, args, device)), flops, args.peak_tflops)
            entry["train"][mode] = res
            print(f"[{name}] train {mode}: {json.dumps(res)}", flush=True)
        if args.batch_sweep:
            entry["sweep"] = {}
            for mode in args.modes:
                rows = []
                for b in args.batch_sweep:
                    at_b = argparse.Namespace(**{**vars(args), "batch": b})
                    res = _with_flop_rate(_safe(lambda: bench_train(name, mode, at_b, device)), flops,
                                          args.peak_tflops)
                    res["batch"] = b
                    rows.append(res)
                    print(f"[{name}] sweep {mode} batch {b}: {json.dumps(res)}", flush=True)
                entry["sweep"][mode] = rows
        if not args.no_sample:
            for compiled in ([False, True] if "compile" in args.modes else [False]):
                key = "compile" if compiled else "eager"
                print(f"[{name}] sample {key} ...", flush=True)
                entry["sample"][key] = _safe(lambda: bench_sample(name, compiled, args, device))
                print(f"[{name}] sample {key}: {json.dumps(entry['sample'][key])}", flush=True)
        results.append(entry)

    report = {"meta": meta, "results": results}
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
    print_table(results, args.peak_tflops)
    return report


if __name__ == "__main__":
    main()
