"""Trainer: learning on a toy set, exact resume, DDP equivalence, checkpoint safety, label dropout.

Most tests use a minimal stand-in diffusion (``train_toys.py``: the ε-MSE of DDPM in ten lines), so the
trainer is tested on its own; one test runs it against ``lt_diffusion.diffusion``. Bad input and
checkpoint safety: ``test_train_robustness.py``; processes killed mid-run: ``test_train_faults.py``.
"""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from lt_diffusion import train as train_mod
from lt_diffusion.diffusion import create_diffusion
from lt_diffusion.models import UNetConfig
from lt_diffusion.train import Trainer, atomic_torch_save, ema_warmup_decay
from train_toys import StandInDiffusion, ToyData, cfg, tiny_model



pytestmark = pytest.mark.usefixtures("one_thread")   # tiny models: one intra-op thread (conftest.py)

@pytest.mark.slow   # an integration run: trains a tiny UNet until its loss falls (~20 s)
def test_tiny_unet_learns_toy_set():
    diffusion = StandInDiffusion()
    trainer = Trainer(tiny_model(), diffusion, ToyData(batch_size=32), cfg(steps=300, batch_size=32, lr=2e-3, log_every=50,
                                                                            warmup_steps=20, grad_clip=1.0))
    hist = trainer.run()
    assert [h["step"] for h in hist] == [50, 100, 150, 200, 250, 300]
    first, last = hist[0]["loss"], hist[-1]["loss"]
    # The zero-initialised model starts at E[eps^2] = 1; a working loop cuts that by far more than half.
    assert first > 0.3 and last < 0.4 * first, (first, last)
    for key in ("loss_q0", "loss_q3", "mse", "mse_q2", "grad_norm", "lr", "images_per_s"):
        assert key in hist[-1], key
    assert hist[-1]["lr"] == pytest.approx(2e-3)
    # Both extremes of t are easy for eps-prediction relative to the middle; all quarters are finite.
    assert all(0 <= hist[-1][f"loss_q{i}"] < 2 for i in range(4))
    # The EMA model is a separate, finite copy that tracks the weights.
    p_ema = torch.cat([p.flatten() for p in trainer.ema_model.parameters()])
    p = torch.cat([p.flatten() for p in trainer.model.parameters()])
    assert torch.isfinite(p_ema).all() and not torch.equal(p_ema, p)
    assert (p_ema - p).norm() < 0.5 * p.norm()


def test_warmup_is_linear():
    trainer = Trainer(tiny_model(), StandInDiffusion(), ToyData(), cfg(lr=1e-3, warmup_steps=4))
    assert [trainer.lr_at(s) for s in range(6)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])


def test_cosine_schedule_closed_form():
    # warm-up from floor*lr to lr over 4 steps, then cos from lr (step 4) to floor*lr (step 12)
    trainer = Trainer(tiny_model(), StandInDiffusion(), ToyData(),
                      cfg(lr=0.1, steps=12, warmup_steps=4, lr_schedule="cosine", lr_floor=0.01))
    lrs = [trainer.lr_at(s) for s in range(13)]
    assert lrs[0] == pytest.approx(0.001) and lrs[2] == pytest.approx(0.001 + 0.099 * 0.5)
    assert lrs[4] == pytest.approx(0.1) and lrs[8] == pytest.approx(0.001 + 0.099 * 0.5)
    assert lrs[12] == pytest.approx(0.001)


def test_linear_anneal_closed_form():
    # guided-diffusion's --anneal_lr: lr * (1 - step / steps)
    trainer = Trainer(tiny_model(), StandInDiffusion(), ToyData(), cfg(lr=0.1, steps=10, lr_schedule="linear"))
    assert [trainer.lr_at(s) for s in (0, 5, 9)] == pytest.approx([0.1, 0.05, 0.01])


def test_sgd_optimizer_is_used_and_learns():
    trainer = Trainer(tiny_model(), StandInDiffusion(), ToyData(batch_size=32),
                      cfg(steps=60, batch_size=32, lr=0.05, optimizer="sgd", momentum=0.9, log_every=30, grad_clip=1.0))
    assert isinstance(trainer.optimizer, torch.optim.SGD)
    assert trainer.optimizer.param_groups[0]["momentum"] == 0.9
    hist = trainer.run()
    assert hist[-1]["loss"] < hist[0]["loss"]


@pytest.mark.parametrize("bad", [dict(optimizer="adam"), dict(lr_schedule="step")])
def test_config_rejects_unknown_choices(bad):
    with pytest.raises(ValueError, match="must be"):
        cfg(**bad)


def test_ema_warmup_rate_closed_form():
    assert ema_warmup_decay(0.999, 0) == pytest.approx(0.1)
    assert ema_warmup_decay(0.999, 90) == pytest.approx(0.91)
    assert ema_warmup_decay(0.999, 10_000) == pytest.approx(0.999)
    # after 1200 steps at 0.998 the constant rate leaves 0.998**1200 = 9% of the first weights in the average
    assert 0.998 ** 1200 == pytest.approx(0.0906, abs=1e-3)


@pytest.mark.parametrize("warmup", [False, True])
def test_ema_follows_its_recursion(warmup):
    """EMA after K steps == e_1 = w_1, e_n = r_n e_{n-1} + (1 - r_n) w_n, r_n constant or warmed up."""
    decay, K = 0.9, 5
    trainer = Trainer(tiny_model(), StandInDiffusion(), ToyData(), cfg(steps=K, ema_rate=decay, ema_warmup=warmup))
    weights = []
    for _ in range(K):
        trainer.run(1)  # one more step
        weights.append(torch.cat([p.detach().flatten().clone() for p in trainer.model.parameters()]))
    expected = weights[0].clone()
    for n in range(1, K):  # the update after optimiser step n (0-based) uses the rate at n
        r = ema_warmup_decay(decay, n) if warmup else decay
        expected = r * expected + (1 - r) * weights[n]
    got = torch.cat([p.flatten() for p in trainer.ema_model.parameters()])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def _flat(model):
    return torch.cat([v.flatten().float() for v in model.state_dict().values()])


def test_exact_resume(tmp_path):
    """N steps straight == N/2 steps, save, fresh trainer, load, N/2 steps (losses and weights)."""
    kw = dict(steps=8, dropout=0.2)
    c = cfg(steps=kw["steps"], p_uncond=0.3, grad_clip=0.5, warmup_steps=3, schedule_sampler="loss-second-moment",
            ema_warmup=True)  # the warm-up rate depends on the step: the resumed run must continue it
    straight = Trainer(tiny_model(dropout=kw["dropout"]), StandInDiffusion(), ToyData(), c)
    hist_straight = straight.run()

    first = Trainer(tiny_model(dropout=kw["dropout"]), StandInDiffusion(), ToyData(), c)
    first.run(4)
    path = str(tmp_path / "half.pt")
    first.save_checkpoint(path)
    torch.manual_seed(12345)  # scramble the global RNG: the checkpoint must restore it
    resumed = Trainer(tiny_model(seed=99, dropout=kw["dropout"]), StandInDiffusion(), ToyData(), c)
    resumed.load_checkpoint(path)
    assert resumed.step == 4
    hist_resumed = resumed.run()

    assert [h["loss"] for h in hist_resumed] == [h["loss"] for h in hist_straight]
    assert len(hist_resumed) == 8
    torch.testing.assert_close(_flat(resumed.model), _flat(straight.model), rtol=0, atol=0)
    torch.testing.assert_close(_flat(resumed.ema), _flat(straight.ema), rtol=0, atol=0)


def test_checkpoint_is_weights_only_and_complete(tmp_path):
    trainer = Trainer(tiny_model(), StandInDiffusion(), ToyData(), cfg(steps=2))
    trainer.run()
    path = tmp_path / "c.pt"
    trainer.save_checkpoint(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "ema", "optimizer", "step", "rng", "data", "sampler", "config", "model_config"):
        assert key in state, key
    assert state["step"] == 2 and state["data"] == {"pos": 2}
    assert state["config"]["batch_size"] == 16 and state["model_config"]["num_classes"] == 4
    assert UNetConfig(**state["model_config"]) == trainer.model.config
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    atomic_torch_save({"a": torch.ones(3)}, str(path))

    def failing_save(obj, f, *a, **k):
        f.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(train_mod.torch, "save", failing_save)
    with pytest.raises(OSError):
        atomic_torch_save({"a": torch.zeros(3)}, str(path))
    with pytest.raises(OSError):
        atomic_torch_save({"a": torch.zeros(3)}, str(tmp_path / "new.pt"))
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt"]  # no temp file, no partial new.pt
    torch.testing.assert_close(torch.load(path, weights_only=True)["a"], torch.ones(3))  # old file intact


@pytest.mark.parametrize("mode", ["sample", "batch"])
def test_label_dropout(mode):
    diffusion = StandInDiffusion()
    trainer = Trainer(tiny_model(), diffusion, ToyData(batch_size=64), cfg(steps=40, batch_size=64, p_uncond=0.5, uncond_mode=mode))
    trainer.run()
    ys = torch.stack(diffusion.seen_y)  # (steps, B)
    null = ys == 4
    per_step = null.float().mean(1)
    if mode == "batch":  # CBDM: all or nothing per batch; 40 coin flips
        assert ((per_step == 0) | (per_step == 1)).all()
        assert 0.2 < null.float().mean() < 0.8
    else:  # 2560 independent draws: the rate is 0.5 +- 0.01
        assert 0.45 < null.float().mean() < 0.55
        assert ((per_step > 0) & (per_step < 1)).float().mean() > 0.9
    kept = ys[~null]
    assert kept.min() >= 0 and kept.max() <= 3


def test_unconditional_model_gets_no_labels():
    diffusion = StandInDiffusion()
    trainer = Trainer(tiny_model(num_classes=None), diffusion, ToyData(), cfg(steps=2))
    trainer.run()
    assert diffusion.seen_y == []
    with pytest.raises(ValueError, match="p_uncond"):
        Trainer(tiny_model(num_classes=None), diffusion, ToyData(), cfg(p_uncond=0.1))
    with pytest.raises(ValueError):
        cfg(uncond_mode="half")


def test_with_package_diffusion(tmp_path):
    """Integration with lt_diffusion.diffusion (hybrid loss, learned sigma, loss-aware sampler)."""
    diffusion = create_diffusion(steps=40, noise_schedule="cosine", learn_sigma=True, loss="hybrid",
                                               rescale_timesteps=True)
    trainer = Trainer(tiny_model(learn_sigma=True), diffusion, ToyData(),
                      cfg(steps=4, schedule_sampler="loss-second-moment", log_every=2))
    hist = trainer.run()
    assert len(hist) == 2 and all(torch.isfinite(torch.tensor(h["loss"])) for h in hist)
    assert "vb" in hist[-1] and "mse_q0" in hist[-1]
    trainer.save_checkpoint(str(tmp_path / "c.pt"))
    torch.load(tmp_path / "c.pt", weights_only=True)


# ---------------------------------------------------------------------------------------------- DDP
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    try:
        trainer = Trainer(tiny_model(), StandInDiffusion(num_timesteps=1, fixed_noise=True), ToyData(batch_size=16),
                          cfg(steps=1, lr=1e-2, grad_clip=None))
        assert trainer.world_size == world and trainer.local_batch == 16 // world
        trainer.run()
        if rank == 0:
            torch.save(trainer.model.state_dict(), os.path.join(out_dir, "ddp.pt"))
            torch.save(trainer.history, os.path.join(out_dir, "ddp_hist.pt"))
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_two_ranks_match_single_process(tmp_path):
    """One DDP step on two half-batches (gloo, 2 CPU processes) == one step on the full batch."""
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    single = Trainer(tiny_model(), StandInDiffusion(num_timesteps=1, fixed_noise=True), ToyData(batch_size=16),
                     cfg(steps=1, lr=1e-2, grad_clip=None))
    single.run()
    ddp_state = torch.load(tmp_path / "ddp.pt", weights_only=True)
    init_state = tiny_model().state_dict()
    moved = 0.0
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(ddp_state[k], v, rtol=0, atol=1e-6, msg=k)
        moved = max(moved, (v - init_state[k]).abs().max().item())
    assert moved > 1e-3  # the step did change the weights
    ddp_hist = torch.load(tmp_path / "ddp_hist.pt", weights_only=True)
    assert ddp_hist[0]["loss"] == pytest.approx(single.history[0]["loss"], rel=1e-6)


# ---------------------------------------------------------------------------------------------- micro-batches
def _package_run(microbatch, **kw):
    from lt_diffusion.weighting import P2Weight

    diffusion = create_diffusion(steps=40, noise_schedule="cosine", learn_sigma=True, loss="hybrid",
                                 rescale_timesteps=True, loss_weight=P2Weight(1.0, 1.0))
    trainer = Trainer(tiny_model(learn_sigma=True), diffusion, ToyData(),
                      cfg(steps=3, lr=1e-2, p_uncond=0.3, grad_clip=1.0, schedule_sampler="loss-second-moment",
                          microbatch=microbatch, optimizer="sgd", momentum=0.0, **kw))
    trainer.run()
    return trainer


def test_microbatches_give_the_whole_batch_update():
    """Four micro-batches of 4 == one batch of 16: same t, label drops and noise, the same summed gradient.
    (Plain SGD, so the weights show the gradient itself: Adam divides by sqrt(v), which turns the rounding noise of
    near-zero gradients into steps of size lr.)"""
    whole, split = _package_run(None), _package_run(4)
    assert split.micro_chunks == 4 and whole.micro_chunks == 1
    init = tiny_model(learn_sigma=True).state_dict()
    moved = 0.0
    for (k, a), b in zip(whole.model.state_dict().items(), split.model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6, msg=k)
        moved = max(moved, (a - init[k]).abs().max().item())
    assert moved > 1e-3
    for a, b in zip(whole.history, split.history):
        for key in ("loss", "mse", "vb", "loss_q0", "grad_norm"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-4), key


def test_microbatch_must_divide_the_batch():
    with pytest.raises(ValueError, match="microbatch=5 does not divide batch_size=16.*e.g. 4"):
        cfg(microbatch=5)
    with pytest.raises(ValueError, match="microbatch"):
        cfg(microbatch=0)


def _ddp_micro_worker(rank: int, world: int, port: int, out_dir: str, microbatch) -> None:
    from lt_diffusion.experiments.training import GlobalBatchDiffusion, GlobalBatchSampler
    from lt_diffusion.resample import UniformSampler

    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                          LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    try:
        base = StandInDiffusion(num_timesteps=10)
        shared = GlobalBatchDiffusion(base, rank, world, p_uncond=0.5, null_label=4, seed=3)
        trainer = Trainer(tiny_model(), shared, ToyData(batch_size=16), cfg(steps=2, lr=1e-2, microbatch=microbatch),
                          schedule_sampler=GlobalBatchSampler(UniformSampler(10), rank, world))
        torch.manual_seed(3)   # the stream every rank shares (as train_model does)
        shared.step_fn = lambda: trainer.step
        trainer.run()
        if rank == 0:
            torch.save(trainer.model.state_dict(), os.path.join(out_dir, f"w{world}.pt"))
            torch.save(torch.cat(base.seen_y), os.path.join(out_dir, f"y{world}.pt"))
    finally:
        if world > 1:
            torch.distributed.destroy_process_group()


def test_ddp_with_microbatches_matches_single_process(tmp_path):
    """Two ranks, each in two micro-batches of 4, == one process on the whole batch of 16 (global draws)."""
    mp.spawn(_ddp_micro_worker, args=(2, _free_port(), str(tmp_path), 4), nprocs=2, join=True)
    _ddp_micro_worker(0, 1, 0, str(tmp_path), None)
    one, two = torch.load(tmp_path / "w1.pt", weights_only=True), torch.load(tmp_path / "w2.pt", weights_only=True)
    for k, v in one.items():
        torch.testing.assert_close(two[k], v, rtol=0, atol=1e-5, msg=k)
    y1, y2 = torch.load(tmp_path / "y1.pt"), torch.load(tmp_path / "y2.pt")
    # rank 0 saw the first half of each step's labels, split in two micro-batches of 4
    assert torch.equal(y2, torch.cat([y1[:8], y1[16:24]])) and (y1 == 4).any()
