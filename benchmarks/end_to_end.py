#!/usr/bin/env python
"""End-to-end numbers users feel, on the current device (a CUDA GPU for meaningful figures).

1. A ``book``-scale training run through :func:`lt_diffusion.experiments.train_model` (GPU-resident
   loader with on-device flips, EMA, bf16 autocast, logging): images/s over the timed part of the run.
2. Sampling wall time of the same model with DDIM-50 and with 1000-step ancestral sampling, measured on one
   batch and reported per 10k samples (``--full-10k`` draws all 10k instead of extrapolating).

Prints a short table last and writes JSON with ``--out``. ``--tiny`` runs the smoke model on CPU in seconds.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="book", help="model preset (lt_diffusion.models.presets)")
    ap.add_argument("--steps", type=int, default=600, help="training steps (the first 100 are warm-up)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--split", default="test", help="CIFAR-10 split to train on (only what the run carries)")
    ap.add_argument("--sample-batch", type=int, default=1000)
    ap.add_argument("--full-10k", action="store_true")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from lt_diffusion.experiments import Arm, DataSpec, DiffusionSpec, load_data, make_sampler, train_model
    from lt_diffusion.models import count_parameters, get_model_config
    from lt_diffusion.train import TrainConfig

    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if args.tiny:
        args.model, args.steps, args.batch, args.sample_batch = "smoke", 30, 8, 8
    data = load_data(DataSpec(split=args.split))
    spec = DiffusionSpec(steps=1000, noise_schedule="linear")
    warm = max(1, min(100, args.steps // 6))
    train = TrainConfig(steps=warm, batch_size=args.batch, lr=2e-4, grad_clip=1.0, ema_rate=0.999, ema_warmup=True,
                        log_every=warm)
    arm = Arm("denoiser", get_model_config(args.model), train, DataSpec(split=args.split), spec)

    # warm-up run (allocator, cuDNN autotuning), then the timed run: same code path as the chapters
    train_model(arm, data=data, device=device)
    _sync(device)
    arm = dataclasses.replace(arm, train=dataclasses.replace(train, steps=args.steps, log_every=100))
    t0 = time.perf_counter()
    run = train_model(arm, data=data, device=device)
    model, ema, history = run.model, run.ema, run.history
    _sync(device)
    train_s = time.perf_counter() - t0
    train_ips = args.steps * args.batch / train_s
    first, last = history[0]["loss"], history[-1]["loss"]

    rows = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "model": args.model,
            "params_M": round(count_parameters(model) / 1e6, 2), "train_steps": args.steps, "batch": args.batch,
            "train_img_per_s_end_to_end": round(train_ips, 1), "loss_first_log": first, "loss_last_log": last}
    for name, kw in [("ddim50", dict(sample_steps="ddim50", method="ddim")),
                     ("ancestral1000", dict(sample_steps=None, method="ancestral"))]:
        fn = make_sampler(spec, ema, **kw)
        n = 10_000 if args.full_10k else args.sample_batch
        g = torch.Generator(device=device).manual_seed(0)
        fn(min(64, n), generator=g)  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        done = 0
        while done < n:
            b = min(args.sample_batch, n - done)
            x = fn(b, generator=g)
            done += b
        _sync(device)
        dt = time.perf_counter() - t0
        assert torch.isfinite(x).all(), f"{name}: non-finite samples"
        rows[f"{name}_s_per_10k"] = round(dt * 10_000 / n, 1)
        rows[f"{name}_measured_on"] = n
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)
    print("\nend-to-end")
    for k, v in rows.items():
        print(f"  {k:<32} {v}")


if __name__ == "__main__":
    main()
