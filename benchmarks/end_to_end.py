#!/usr/bin/env python
"""End-to-end numbers users feel, on the current device (a CUDA GPU for meaningful figures).

1. A ``book``-scale training run through :func:`lt_diffusion.experiments.common.train_model` (GPU-resident
   loader with on-device flips, EMA, bf16 autocast, logging): images/s over the timed part of the run.
2. Sampling wall time of the same model with DDIM-50 and with 1000-step ancestral sampling, measured on one
   batch and reported per 10k samples (``--full-10k`` draws all 10k instead of extrapolating).

Prints a short table last and writes JSON with ``--out``. ``--tiny`` runs the smoke model on CPU in seconds.
"""
from __future__ import annotations

import argparse
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

    from lt_diffusion.experiments.common import DiffusionSpec, TrainSpec, load_train_images, make_sampler, train_model
    from lt_diffusion.models import get_model_config
    from lt_diffusion.models import count_parameters

    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if args.tiny:
        args.model, args.steps, args.batch, args.sample_batch = "smoke", 30, 8, 8
    data = load_train_images(None, split=args.split)
    spec = DiffusionSpec(steps=1000, noise_schedule="linear", objective="simple")
    warm = max(1, min(100, args.steps // 6))

    # warm-up run (allocator, cuDNN autotuning), then the timed run: same code path as the chapters
    train = TrainSpec(steps=warm, batch_size=args.batch, lr=2e-4, ema_rate=0.999, log_every=warm)
    train_model(get_model_config(args.model), spec, train, data=data, device=device)
    _sync(device)
    train = TrainSpec(steps=args.steps, batch_size=args.batch, lr=2e-4, ema_rate=0.999, log_every=100)
    t0 = time.perf_counter()
    model, ema, history = train_model(get_model_config(args.model), spec, train, data=data, device=device)
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
