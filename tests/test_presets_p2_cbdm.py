"""Presets of chapters 05 (P2) and 06 (CBDM): every scale validates, smoke is tiny, paper holds the papers' values."""
import dataclasses

import pytest

from lt_diffusion.data import lt_class_counts
from lt_diffusion.presets import SCALES, get_preset


@pytest.mark.parametrize("chapter", ["p2", "cbdm"])
@pytest.mark.parametrize("scale", SCALES)
def test_all_scales_validate(chapter, scale):
    p = get_preset(chapter, scale)
    assert p.scale == scale
    assert dataclasses.is_dataclass(p)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.scale = "x"
    cost = p.projected_gpu_seconds()
    parts = sum(v for k, v in cost.items() if k != "total_s")
    assert cost["total_s"] == pytest.approx(parts)
    assert {"train_s", "sample_s", "fid_s", "overhead_s"} <= set(cost) and all(v > 0 for v in cost.values())


@pytest.mark.parametrize("chapter", ["p2", "cbdm"])
def test_unknown_scale_and_chapter(chapter):
    with pytest.raises(ValueError, match="smoke"):
        get_preset(chapter, "huge")
    with pytest.raises(ValueError):
        get_preset(chapter + "_nope", "smoke")


@pytest.mark.parametrize("chapter", ["p2", "cbdm"])
def test_smoke_is_tiny_and_book_fits(chapter):
    s, b = get_preset(chapter, "smoke"), get_preset(chapter, "book")
    assert not s.eval.comparable and b.eval.comparable
    assert s.model.model_channels <= 16 and s.train.steps <= 40 and s.train.batch_size <= 16
    assert s.eval.num_samples <= 64 and (s.eval.fid_reference_images or 0) <= 64
    assert s.diffusion.steps <= 100
    # the whole book notebook must fit one device call (10 minutes) with a margin: projected under 500 s
    assert b.projected_gpu_seconds()["total_s"] < 500
    assert b.eval.num_samples >= 2000
    # the projection uses the throughputs measured on the H100 for the book UNet (DESIGN.md), not optimistic ones
    assert b.train_img_per_s <= 5_200 and b.sample_img_per_s <= 13_300
    assert b.train.batch_size >= 512                     # the measured rates hold at batch 512-1024 only
    # a short run needs an EMA horizon well inside the run: at most a few percent of the initial weights left
    assert b.train.ema_rate ** b.train.steps < 0.05


def test_p2_paper_hyperparameters():
    p = get_preset("p2", "paper")
    assert (p.p2_gamma, p.p2_k) == (1.0, 1.0)                 # README: --p2_gamma 1 --p2_k 1
    assert p.diffusion.steps == 1000 and p.diffusion.noise_schedule == "linear"
    assert p.diffusion.objective == "hybrid" and p.diffusion.rescale_learned_sigmas
    assert p.train.lr == 2e-5 and p.train.batch_size == 8 and not p.train.ema_warmup
    m = p.model
    assert (m.model_channels, m.num_res_blocks, m.attention_resolutions, m.num_head_channels) == (128, 1, (16,), 64)
    assert m.resblock_updown and m.use_scale_shift_norm and m.learn_sigma and m.dropout == 0.0
    assert p.eval.sample_steps == 250


def test_p2_projection_counts_every_chunk_and_fid():
    b = get_preset("p2", "book")
    assert b.main_arms == ("baseline", "P2", "baseline (1k)", "P2 (1k)")
    n_arms, n_ckpt = len(b.arms), len(b.checkpoints)
    assert b.num_fids() == {"curve": 4 * n_ckpt + n_arms - 4, "final": 4}
    cost = b.projected_gpu_seconds()
    assert cost["train_s"] == pytest.approx(n_arms * b.train.steps * b.train.batch_size / b.train_img_per_s)
    passes = (4 * n_ckpt + n_arms - 4) * b.curve_samples * b.curve_ddim_steps + 4 * b.eval.num_samples * b.eval.sample_steps
    assert cost["sample_s"] == pytest.approx(passes / b.sample_img_per_s)
    # twice the checkpoints: only the curve FIDs grow
    more = dataclasses.replace(b, eval_every=b.eval_every // 2)
    extra = 4 * (len(more.checkpoints) - n_ckpt) * b.curve_samples * b.curve_ddim_steps / b.sample_img_per_s
    assert more.projected_gpu_seconds()["sample_s"] == pytest.approx(cost["sample_s"] + extra)


def test_p2_arms_and_checkpoints():
    b = get_preset("p2", "book")
    names = [a[0] for a in b.arms]
    assert names[:4] == ["baseline", "P2", "baseline (1k)", "P2 (1k)"]
    assert [a[1] for a in b.arms[:2]] == [0.0, b.p2_gamma]
    assert b.checkpoints[-1] == b.train.steps
    assert b.model_for(False).attention_resolutions == () and b.model_for(True) == b.model
    assert b.plot_gammas == (0.0, 0.5, 1.0) and b.large_gamma > 2
    with pytest.raises(ValueError):
        dataclasses.replace(b, eval_every=0)


def test_cbdm_paper_hyperparameters():
    p = get_preset("cbdm", "paper")
    m = p.model
    assert (m.model_channels, m.channel_mult, m.num_res_blocks, m.attention_resolutions) == (128, (1, 2, 2, 2), 2, (16,))
    assert m.dropout == 0.1 and m.num_classes == 10 and not m.learn_sigma
    d = p.diffusion
    assert (d.steps, d.noise_schedule, d.objective, d.sigma_small) == (1000, "linear", "simple", False)  # fixedlarge
    t = p.train
    assert (t.lr, t.warmup_steps, t.grad_clip, t.ema_rate, t.batch_size) == (2e-4, 5000, 1.0, 0.9999, 48)
    assert not t.ema_warmup                                    # the official constant-rate EMA
    assert (p.p_uncond, p.uncond_mode) == (0.1, "batch")
    assert (p.tau, p.gamma, p.label_dist) == (1.0, 0.25, "train")
    assert p.omega == 1.6 and p.recall_k == 5 and p.eval.sample_steps == 1000 and p.eval.num_samples == 50_000
    assert sum(lt_class_counts(p.n_max, 10, p.imb_factor)) == 12406


def test_cbdm_book_design():
    b = get_preset("cbdm", "book")
    assert len(b.seeds) >= 2                                   # seed spread of the main comparison
    names = [a[0] for a in b.arms]
    assert names.count("baseline") == len(b.seeds) and names.count("CBDM") == len(b.seeds)
    assert len(b.tau_sweep) >= 1                               # τ sweep: 0 (baseline), tau, and at least one more
    # a CBDM arm costs two baseline arms (second forward pass), measured 2.6k vs 5.2k img/s
    cost = b.projected_gpu_seconds()
    n_cbdm = len(b.arms) - len(b.seeds)
    assert cost["train_s"] == pytest.approx((len(b.seeds) + 2 * n_cbdm) * b.train.images_seen / b.train_img_per_s)
    assert sum(lt_class_counts(b.n_max, 10, b.imb_factor)) == 12406
    assert b.omega in b.omega_sweep
    names = [n for n, _ in b.ablations]
    assert any("uniform" in n for n in names) and any("P2" in n for n in names)   # both label sets, hooks compose
    paper = [n for n, _ in get_preset("cbdm", "paper").ablations]
    assert sum("τ" in n for n in paper) >= 2                    # the τ sweep runs in full at paper scale
    with pytest.raises(ValueError, match="multiple of eval.batch_size"):
        dataclasses.replace(b, sweep_samples=b.eval.batch_size + 1)
    with pytest.raises(ValueError):
        dataclasses.replace(b, label_dist="balanced")
    with pytest.raises(ValueError):
        dataclasses.replace(b, model=dataclasses.replace(b.model, num_classes=None))
