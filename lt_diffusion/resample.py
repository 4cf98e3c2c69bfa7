"""Timestep samplers for training: uniform, and Improved DDPM's loss-aware importance sampler.

Chapter: Improved DDPM (L_vlb has high gradient noise; importance sampling t ∝ √E[L_t²] reduces it,
Eq. 18, Nichol & Dhariwal 2021).

A sampler returns timesteps ``t`` (long ``(B,)``) and importance weights ``1/(T p_t)`` ``(B,)``; the trainer
minimises ``(losses["loss"] * weights).mean()``, an unbiased estimate of the uniform-t mean loss.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

SCHEDULE_SAMPLERS = ("uniform", "loss-second-moment")


class ScheduleSampler:
    """Base class: a distribution p over the ``num_timesteps`` steps, given by (unnormalised) :meth:`weights`."""

    num_timesteps: int

    def weights(self) -> torch.Tensor:
        """Non-negative ``(T,)`` weights; p_t = weights / weights.sum()."""
        raise NotImplementedError

    def probabilities(self) -> torch.Tensor:
        """``(T,)`` probabilities p_t (sum to 1)."""
        w = self.weights().to(torch.float64)
        return w / w.sum()

    def sample(self, batch_size: int, device, generator: Optional[torch.Generator] = None
               ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Draw ``t`` ~ p, long ``(batch_size,)`` on ``device``, and importance weights 1/(T p_t) float ``(B,)``.

        With a ``generator`` the draw happens on the generator's device and is moved to ``device``.
        """
        p = self.probabilities()
        draw_device = generator.device if generator is not None else p.device
        idx = torch.multinomial(p.to(draw_device), batch_size, replacement=True, generator=generator)
        weights = 1.0 / (self.num_timesteps * p.to(draw_device)[idx])
        return idx.to(device), weights.float().to(device)

    def update_with_local_losses(self, ts: torch.Tensor, losses: torch.Tensor) -> None:
        """Report this step's per-sample losses; a no-op except for loss-aware samplers."""


class UniformSampler(ScheduleSampler):
    """p_t = 1/T: the DDPM default. Weights are all 1."""

    def __init__(self, num_timesteps: int):
        if num_timesteps < 1:
            raise ValueError(f"num_timesteps must be >= 1, got {num_timesteps}")
        self.num_timesteps = int(num_timesteps)

    def weights(self) -> torch.Tensor:
        return torch.ones(self.num_timesteps, dtype=torch.float64)

    def sample(self, batch_size: int, device, generator: Optional[torch.Generator] = None
               ) -> Tuple[torch.Tensor, torch.Tensor]:
        draw_device = generator.device if generator is not None else torch.device(device)
        t = torch.randint(0, self.num_timesteps, (batch_size,), generator=generator, device=draw_device)
        return t.to(device), torch.ones(batch_size, device=device)


class LossSecondMomentResampler(ScheduleSampler):
    """Sample t with p_t ∝ √E[L_t²] (Eq. 18, Nichol & Dhariwal 2021), estimated from the last
    ``history_per_term`` losses seen at each t, mixed with ``uniform_prob`` of the uniform distribution.

    Uniform until every t has a full history. The history is a torch tensor that lives on the device of the
    losses it is fed, and updates are vectorised: no host synchronisation per training step.
    """

    def __init__(self, num_timesteps: int, history_per_term: int = 10, uniform_prob: float = 0.001,
                 device=None):
        if num_timesteps < 1 or history_per_term < 1:
            raise ValueError("num_timesteps and history_per_term must be >= 1")
        if not 0.0 <= uniform_prob <= 1.0:
            raise ValueError(f"uniform_prob must lie in [0, 1], got {uniform_prob}")
        self.num_timesteps = int(num_timesteps)
        self.history_per_term = int(history_per_term)
        self.uniform_prob = float(uniform_prob)
        self._allocate(torch.device("cpu") if device is None else torch.device(device))

    def _allocate(self, device: torch.device) -> None:
        T, H = self.num_timesteps, self.history_per_term
        # Ring buffer per t; the extra last column is a scratch slot for writes that a full buffer drops.
        self._loss_history = torch.zeros(T, H + 1, dtype=torch.float64, device=device)
        self._write_pos = torch.zeros(T, dtype=torch.long, device=device)
        self._loss_counts = torch.zeros(T, dtype=torch.long, device=device)

    def to(self, device) -> "LossSecondMomentResampler":
        """Move the history to ``device`` (done automatically on the first update)."""
        device = torch.device(device)
        self._loss_history = self._loss_history.to(device)
        self._write_pos = self._write_pos.to(device)
        self._loss_counts = self._loss_counts.to(device)
        return self

    @property
    def loss_history(self) -> torch.Tensor:
        """``(T, history_per_term)`` last losses per t (ring-buffer order; unfilled slots are 0)."""
        return self._loss_history[:, : self.history_per_term]

    @property
    def loss_counts(self) -> torch.Tensor:
        """``(T,)`` number of losses held per t (at most ``history_per_term``)."""
        return self._loss_counts

    def warmed_up(self) -> torch.Tensor:
        """0-dim bool tensor: every t has a full history."""
        return (self._loss_counts == self.history_per_term).all()

    def weights(self) -> torch.Tensor:
        rms = torch.sqrt((self.loss_history ** 2).mean(dim=-1))
        w = rms / rms.sum()
        w = w * (1.0 - self.uniform_prob) + self.uniform_prob / self.num_timesteps
        # Uniform until warmed up; torch.where keeps the choice on the device (no host sync).
        w = torch.where(self.warmed_up(), w, torch.ones_like(w))
        # A degenerate history (all losses 0) would give NaNs: fall back to uniform there too.
        return torch.where(torch.isfinite(w).all(), w, torch.ones_like(w))

    def update_with_local_losses(self, ts: torch.Tensor, losses: torch.Tensor) -> None:
        """Record per-sample ``losses`` ``(B,)`` at timesteps ``ts`` ``(B,)``.

        Under ``torch.distributed`` the batches of all ranks are gathered first (equal local batch sizes assumed),
        so every rank keeps the same history, as the official sampler does.
        """
        ts = ts.detach().reshape(-1).long()
        losses = losses.detach().reshape(-1).to(torch.float64)
        if ts.shape != losses.shape:
            raise ValueError(f"ts {tuple(ts.shape)} and losses {tuple(losses.shape)} must have the same length")
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world = torch.distributed.get_world_size()
            all_ts = [torch.empty_like(ts) for _ in range(world)]
            all_losses = [torch.empty_like(losses) for _ in range(world)]
            torch.distributed.all_gather(all_ts, ts)
            torch.distributed.all_gather(all_losses, losses)
            ts, losses = torch.cat(all_ts), torch.cat(all_losses)
        self.update_with_all_losses(ts, losses)

    def update_with_all_losses(self, ts: torch.Tensor, losses: torch.Tensor) -> None:
        """Push each (t, loss) into t's FIFO of the last ``history_per_term`` losses, in batch order.

        Vectorised: the j-th occurrence of a timestep in the batch writes ``rank_j`` slots after the current
        write position; when a batch holds more than ``history_per_term`` losses for one t, only its last ones are
        kept (the others go to the scratch column), exactly as pushing them one by one would.
        """
        ts = ts.reshape(-1).long()
        if self._loss_history.device != ts.device:
            self.to(ts.device)
        losses = losses.reshape(-1).to(device=ts.device, dtype=torch.float64)
        T, H = self.num_timesteps, self.history_per_term
        B = ts.shape[0]
        same = ts[:, None] == ts[None, :]                                          # (B, B)
        earlier = torch.ones(B, B, dtype=torch.bool, device=ts.device).triu(diagonal=1)  # i < j
        rank = (same & earlier).sum(dim=0)                                         # occurrences before j
        n_in_batch = torch.zeros(T, dtype=torch.long, device=ts.device).index_add_(0, ts, torch.ones_like(ts))
        keep = rank >= n_in_batch[ts] - H
        column = torch.where(keep, (self._write_pos[ts] + rank) % H, torch.full_like(rank, H))
        self._loss_history[ts, column] = losses
        self._write_pos = (self._write_pos + n_in_batch) % H
        self._loss_counts = (self._loss_counts + n_in_batch).clamp(max=H)

    def state_dict(self) -> dict:
        return {"loss_history": self._loss_history.cpu(), "write_pos": self._write_pos.cpu(),
                "loss_counts": self._loss_counts.cpu()}

    def load_state_dict(self, state: dict) -> None:
        device = self._loss_history.device
        if tuple(state["loss_history"].shape) != tuple(self._loss_history.shape):
            raise ValueError(f"history shape {tuple(state['loss_history'].shape)} does not match "
                             f"{tuple(self._loss_history.shape)}")
        self._loss_history = state["loss_history"].to(device=device, dtype=torch.float64)
        self._write_pos = state["write_pos"].to(device)
        self._loss_counts = state["loss_counts"].to(device)


def create_named_schedule_sampler(name: str, diffusion) -> ScheduleSampler:
    """``"uniform"`` or ``"loss-second-moment"`` over ``diffusion.num_timesteps`` steps."""
    if name == "uniform":
        return UniformSampler(diffusion.num_timesteps)
    if name == "loss-second-moment":
        return LossSecondMomentResampler(diffusion.num_timesteps)
    raise ValueError(f"unknown schedule sampler {name!r}; choose one of {list(SCHEDULE_SAMPLERS)}")
