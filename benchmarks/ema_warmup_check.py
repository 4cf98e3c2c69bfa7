#!/usr/bin/env python
"""Held-out ε-MSE of the raw weights and of the EMA after a short run, with and without the EMA warm-up.

A constant EMA rate ``d`` keeps ``d**steps`` of the first step's weights in the average; this measures what that
costs on real CIFAR-10 (DESIGN.md, "EMA warm-up"). CPU, the ``smoke`` UNet, a few minutes::

    LT_DIFFUSION_ASSETS=/path/to/assets python benchmarks/ema_warmup_check.py --steps 300 --decay 0.992
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> dict:
    from lt_diffusion.data import load_cifar10
    from lt_diffusion.diffusion import create_diffusion
    from lt_diffusion.experiments import Arm, DataSpec, DiffusionSpec, train_model
    from lt_diffusion.models import get_model_config
    from lt_diffusion.train import TrainConfig

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--decay", type=float, default=0.992)
    ap.add_argument("--images", type=int, default=2000, help="training images (first N of the train split)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    test = load_cifar10("test")
    x = test.images[:256].float() / 127.5 - 1
    g = torch.Generator().manual_seed(1)
    t = torch.randint(0, 1000, (256,), generator=g)
    noise = torch.randn(x.shape, generator=g)
    diffusion = create_diffusion(1000)

    @torch.no_grad()
    def heldout_mse(model) -> float:
        model.eval()
        dev = next(model.parameters()).device
        return diffusion.training_losses(model, x.to(dev), t.to(dev), noise=noise.to(dev))["mse"].mean().item()

    out = {"steps": args.steps, "decay": args.decay, "initial_share": args.decay ** args.steps}
    for warmup in (False, True):
        arm = Arm("denoiser", get_model_config("smoke"),
                  TrainConfig(steps=args.steps, batch_size=32, lr=1e-3, warmup_steps=20, grad_clip=1.0,
                              ema_rate=args.decay, ema_warmup=warmup, amp=False, log_every=50),
                  DataSpec(num_images=args.images), DiffusionSpec(steps=1000))
        t0 = time.perf_counter()
        run = train_model(arm, seed=0, device=args.device)
        model, ema = run.model, run.ema
        out["raw"] = heldout_mse(model)  # same seed: the raw weights are identical in both runs
        out["ema_warmup" if warmup else "ema_constant"] = heldout_mse(ema)
        print(f"warmup={warmup}: trained in {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"{args.steps} steps, rate {args.decay} (initial weights' share {out['initial_share']:.3f}): held-out eps-MSE "
          f"raw {out['raw']:.4f} | EMA constant rate {out['ema_constant']:.4f} | EMA warm-up {out['ema_warmup']:.4f}")
    return out


if __name__ == "__main__":
    main()
