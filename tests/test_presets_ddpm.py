"""Presets of chapters 01 (ddpm) and 02 (improved_ddpm): all scales exist, smoke is tiny, paper is the paper's."""
import dataclasses

import pytest

from lt_diffusion.presets import SCALES, get_preset

CHAPTERS = ("ddpm", "improved_ddpm")


@pytest.mark.parametrize("chapter", CHAPTERS)
@pytest.mark.parametrize("scale", SCALES)
def test_every_scale_exists_and_is_frozen(chapter, scale):
    p = get_preset(chapter, scale)
    assert p.scale == scale
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.scale = "other"
    cost = p.projected_gpu_seconds()
    assert cost["total_s"] > 0 and set(cost) >= {"train_s", "sample_s", "fid_s", "total_s"}


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_unknown_scale_raises(chapter):
    with pytest.raises(ValueError, match="smoke"):
        get_preset(chapter, "huge")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_smoke_is_tiny(chapter):
    p = get_preset(chapter, "smoke")
    assert p.model.model_channels <= 32 and p.model.image_size == 32   # real 32x32 CIFAR-10, small net
    assert p.train.steps <= 50 and p.train.batch_size <= 32
    assert p.train.num_train_images is not None and p.train.num_train_images <= 1024
    assert p.eval.num_samples <= 64 and not p.eval.comparable
    assert p.eval.fid_reference_images is not None and p.eval.fid_reference_images <= 64
    T = p.diffusion.steps if chapter == "ddpm" else p.T
    assert 100 <= T <= 200


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_book_fits_a_few_minutes(chapter):
    p = get_preset(chapter, "book")
    assert p.eval.comparable and p.eval.fid_reference_images is None  # full CIFAR-10 train statistics
    assert p.projected_gpu_seconds()["total_s"] < 4 * 60


def test_ddpm_paper_matches_ho_et_al():
    p = get_preset("ddpm", "paper")
    m, d, t = p.model, p.diffusion, p.train
    assert (m.model_channels, m.channel_mult, m.num_res_blocks, m.attention_resolutions) == (128, (1, 2, 2, 2), 2, (16,))
    assert m.dropout == 0.1
    assert (d.steps, d.noise_schedule, d.objective, d.learn_sigma) == (1000, "linear", "simple", False)
    assert (t.batch_size, t.lr, t.steps, t.warmup_steps, t.grad_clip, t.ema_rate) == (128, 2e-4, 800_000, 5000, 1.0, 0.9999)
    assert t.random_flip
    assert (p.eval.num_samples, p.eval.sample_steps, p.eval.fid_reference) == (50_000, 1000, "train")


def test_improved_ddpm_paper_matches_official_readme():
    p = get_preset("improved_ddpm", "paper")
    m, t = p.model, p.train
    assert (m.model_channels, m.num_res_blocks, m.channel_mult, m.attention_resolutions) == (128, 3, (1, 2, 2, 2), (16, 8))
    assert p.T == 4000
    assert (t.batch_size, t.lr, t.steps, t.weight_decay, t.ema_rate, t.random_flip) == (128, 1e-4, 500_000, 0.0, 0.9999, False)
    main = p.run(p.main_run)
    assert (main.diffusion.noise_schedule, main.diffusion.objective, main.dropout) == ("cosine", "hybrid", 0.3)
    assert main.diffusion.learn_sigma and main.diffusion.rescale_timesteps and main.diffusion.rescale_learned_sigmas
    vlb = p.run("cosine_vlb_is")
    assert vlb.diffusion.objective == "vlb" and vlb.diffusion.schedule_sampler == "loss-second-moment"
    table = [(r.diffusion.noise_schedule, r.diffusion.objective, r.dropout) for r in p.runs if r.in_paper_table]
    assert table == [("linear", "simple", 0.1), ("linear", "hybrid", 0.1), ("cosine", "simple", 0.3),
                     ("cosine", "hybrid", 0.3), ("cosine", "vlb", 0.3)]


def test_improved_ddpm_run_lookup():
    p = get_preset("improved_ddpm", "book")
    assert p.run("cosine_hybrid").diffusion.objective == "hybrid"
    with pytest.raises(ValueError, match="cosine_hybrid"):
        p.run("nope")


def test_improved_ddpm_fid_budget_and_validation():
    smoke, book = get_preset("improved_ddpm", "smoke"), get_preset("improved_ddpm", "book")
    assert smoke.fid_calls() <= 3  # each Fréchet distance is a 2048x2048 sqrtm (~15 s on one CPU thread)
    assert {"learned", "fixed_large", "ddim"} <= set(book.step_arms)  # the paper's Fig. 8 contrast
    assert set(book.fid_runs) == {r.key for r in book.runs if r.in_paper_table}
    with pytest.raises(ValueError, match="step arms"):
        dataclasses.replace(book, step_arms=("euler",))
    with pytest.raises(ValueError, match="nope"):
        dataclasses.replace(book, skip_runs=("nope",))
