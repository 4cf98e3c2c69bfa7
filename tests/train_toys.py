"""Toy pieces for the trainer tests: a stand-in diffusion, a resumable toy data set, a tiny UNet, and the
child process of the fault tests (``python tests/train_toys.py ...``), which trains, resumes and can be killed.

Not collected by pytest (no ``test_`` prefix); the test modules import it by name.
"""
from __future__ import annotations

import io
import json
import os
import signal
import sys
import time

import torch

from lt_diffusion.models import UNetConfig, UNetModel
from lt_diffusion.train import TrainConfig


class StandInDiffusion:
    """DDPM ε-MSE on a linear schedule. ``fixed_noise`` makes the noise a function of x (for DDP tests)."""

    def __init__(self, num_timesteps: int = 100, fixed_noise: bool = False):
        self.num_timesteps = num_timesteps
        betas = torch.linspace(1e-4, 0.2, num_timesteps, dtype=torch.float64)
        self.alphas_cumprod = torch.cumprod(1 - betas, 0).float()
        self.fixed_noise = fixed_noise
        self.seen_y = []

    def training_losses(self, model, x_start, t, model_kwargs=None, noise=None):
        model_kwargs = model_kwargs or {}
        if "y" in model_kwargs:
            self.seen_y.append(model_kwargs["y"].clone())
        if noise is None:
            noise = torch.sin(7.0 * x_start + 1.0) if self.fixed_noise else torch.randn_like(x_start)
        ab = self.alphas_cumprod.to(x_start.device)[t].view(-1, 1, 1, 1)
        x_t = ab.sqrt() * x_start + (1 - ab).sqrt() * noise
        out = model(x_t, t.float() * (1000.0 / self.num_timesteps), **model_kwargs)
        mse = (out.float() - noise).square().mean(dim=(1, 2, 3))
        return {"loss": mse, "mse": mse}


class ToyData:
    """64 fixed 8x8 images of 4 classes (a colour per class plus a gradient), served in batches in a
    deterministic order that depends only on the position, which ``state_dict`` records."""

    def __init__(self, batch_size: int = 16, n: int = 64, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(n) % 4
        colours = torch.tensor([[1.0, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1]])
        ramp = torch.linspace(-0.5, 0.5, 8)
        x = 0.6 * colours[self.y][:, :, None, None] + 0.3 * ramp[None, None, :, None]
        self.x = (x + 0.05 * torch.randn(n, 3, 8, 8, generator=g)).clamp(-1, 1)
        self.batch_size, self.n, self.seed, self.pos = batch_size, n, seed, 0

    def __iter__(self):
        return self

    def __next__(self):
        per_epoch = self.n // self.batch_size
        epoch, k = divmod(self.pos, per_epoch)
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1000 + epoch))
        idx = perm[k * self.batch_size:(k + 1) * self.batch_size]
        self.pos += 1
        return self.x[idx], self.y[idx]

    def state_dict(self):
        return {"pos": self.pos}

    def load_state_dict(self, state):
        self.pos = int(state["pos"])


def tiny_model(seed: int = 0, **kw) -> UNetModel:
    torch.manual_seed(seed)
    cfg = dict(image_size=8, model_channels=16, channel_mult=(1, 2), num_res_blocks=1,
               attention_resolutions=(4,), num_heads=2, use_scale_shift_norm=True, num_classes=4)
    cfg.update(kw)
    return UNetModel(UNetConfig(**cfg))


def cfg(**kw) -> TrainConfig:
    base = dict(steps=10, batch_size=16, lr=1e-3, ema_rate=0.9, log_every=1, device="cpu", progress=False)
    base.update(kw)
    return TrainConfig(**base)


# ---------------------------------------------------------------------------------------------- fault child
FAULT_STEPS, FAULT_CKPT_EVERY, FAULT_LOG_EVERY = 12, 3, 2
TIMING_KEYS = ("images_per_s", "elapsed_s")


def fault_config(ckpt_dir=None, steps: int = FAULT_STEPS) -> TrainConfig:
    """The run every fault test trains: dropout, label dropout, clipping, warm-up, the loss-aware sampler and the
    warmed-up EMA, so every piece of resumable state matters."""
    return cfg(steps=steps, log_every=FAULT_LOG_EVERY, ckpt_dir=ckpt_dir,
               ckpt_every=FAULT_CKPT_EVERY if ckpt_dir else 0,
               p_uncond=0.3, grad_clip=0.5, warmup_steps=3, schedule_sampler="loss-second-moment", ema_warmup=True)


def fault_trainer(ckpt_dir=None, steps: int = FAULT_STEPS):
    from lt_diffusion.train import Trainer

    return Trainer(tiny_model(dropout=0.2), StandInDiffusion(), ToyData(), fault_config(ckpt_dir, steps))


def _child(ckpt_dir: str, mode: str, arg: int, progress_file: str) -> None:
    """Resume from ``ckpt_dir`` and train; ``mode``: ``finish``, ``kill-at`` (SIGKILL itself after step ``arg``),
    ``kill-in-save`` (SIGKILL itself halfway through writing the checkpoint of step ``arg``) or ``slow`` (report
    each step to ``progress_file`` and pause 50 ms, so the parent can kill it from outside)."""
    torch.set_num_threads(1)
    trainer = fault_trainer(ckpt_dir)
    trainer.resume()
    real_save, real_step = torch.save, trainer.train_step

    def save(obj, f, *args, **kwargs):
        if mode == "kill-in-save" and trainer.step == arg:
            buf = io.BytesIO()
            real_save(obj, buf)
            data = buf.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *args, **kwargs)

    def train_step():
        loss = real_step()
        if mode == "kill-at" and trainer.step == arg:
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "slow":
            with open(progress_file + ".tmp", "w") as f:
                json.dump({"step": trainer.step}, f)
            os.replace(progress_file + ".tmp", progress_file)
            time.sleep(0.05)
        return loss

    torch.save = save
    trainer.train_step = train_step
    trainer.run()


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else "")
