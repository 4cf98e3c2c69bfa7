"""Timestep samplers: uniform, and the loss-aware second-moment sampler."""
from collections import deque

import pytest
import torch

from lt_diffusion.diffusion import create_diffusion
from lt_diffusion.resample import (LossSecondMomentResampler, UniformSampler,
                                   create_named_schedule_sampler)


def test_uniform_sampler():
    s = UniformSampler(10)
    t, w = s.sample(5000, "cpu", generator=torch.Generator().manual_seed(0))
    assert t.dtype == torch.long and t.min() >= 0 and t.max() <= 9
    torch.testing.assert_close(w, torch.ones(5000))
    counts = torch.bincount(t, minlength=10).float() / 5000
    assert (counts - 0.1).abs().max() < 0.02
    torch.testing.assert_close(s.probabilities().sum(), torch.tensor(1.0, dtype=torch.float64))


def test_second_moment_uniform_before_warmup():
    s = LossSecondMomentResampler(8, history_per_term=3)
    s.update_with_local_losses(torch.arange(7), torch.arange(7.0) + 1)  # t = 7 never seen
    assert not bool(s.warmed_up())
    torch.testing.assert_close(s.weights(), torch.ones(8, dtype=torch.float64))
    _, w = s.sample(100, "cpu", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(w, torch.ones(100))


def _reference_history(T, H, ts, losses):
    """The official FIFO, element by element."""
    hist = [deque(maxlen=H) for _ in range(T)]
    for t, l in zip(ts.tolist(), losses.tolist()):
        hist[t].append(l)
    return hist


def test_second_moment_history_matches_sequential_fifo():
    T, H = 5, 3
    s = LossSecondMomentResampler(T, history_per_term=H)
    g = torch.Generator().manual_seed(0)
    all_ts, all_losses = [], []
    for _ in range(6):
        ts = torch.randint(0, T, (9,), generator=g)   # duplicates, sometimes more than H of one t
        losses = torch.rand(9, generator=g)
        s.update_with_local_losses(ts, losses)
        all_ts.append(ts)
        all_losses.append(losses)
    ref = _reference_history(T, H, torch.cat(all_ts), torch.cat(all_losses))
    for t in range(T):
        assert int(s.loss_counts[t]) == len(ref[t])
        got = sorted(s.loss_history[t, : len(ref[t])].tolist())
        assert got == pytest.approx(sorted(ref[t]), abs=1e-12)


def test_second_moment_weights_and_unbiased_estimator():
    T, H = 6, 10
    s = LossSecondMomentResampler(T, history_per_term=H, uniform_prob=0.001)
    toy_loss = (torch.arange(T, dtype=torch.float64) + 1) ** 2      # L(t), deterministic
    ts = torch.arange(T).repeat(H)
    s.update_with_local_losses(ts, toy_loss[ts])
    assert bool(s.warmed_up())
    p = s.probabilities()
    assert p.sum().item() == pytest.approx(1.0, abs=1e-12)
    expected = toy_loss / toy_loss.sum() * (1 - 0.001) + 0.001 / T    # RMS of a constant loss is the loss
    torch.testing.assert_close(p, expected)
    # E_p[L(t) / (T p_t)] = mean_t L(t): importance weights make the estimator unbiased
    t, w = s.sample(200_000, "cpu", generator=torch.Generator().manual_seed(1))
    estimate = (w.double() * toy_loss[t]).mean().item()
    assert estimate == pytest.approx(toy_loss.mean().item(), rel=0.01)
    torch.testing.assert_close(w.double(), 1.0 / (T * p[t]), rtol=1e-6, atol=0)


def test_state_dict_round_trip_and_factory():
    d = create_diffusion(20, "cosine")
    s = create_named_schedule_sampler("loss-second-moment", d)
    assert isinstance(s, LossSecondMomentResampler) and s.num_timesteps == 20
    s.update_with_local_losses(torch.arange(20).repeat(10), torch.rand(200, generator=torch.Generator().manual_seed(0)))
    s2 = LossSecondMomentResampler(20)
    s2.load_state_dict(s.state_dict())
    torch.testing.assert_close(s2.weights(), s.weights())
    assert isinstance(create_named_schedule_sampler("uniform", d), UniformSampler)
    with pytest.raises(ValueError, match="uniform.*loss-second-moment"):
        create_named_schedule_sampler("importance", d)
