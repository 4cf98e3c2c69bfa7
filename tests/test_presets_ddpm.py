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


@pytest.mark.parametrize("chapter, minutes", [("ddpm", 4), ("improved_ddpm", 8)])
def test_book_fits_a_few_minutes(chapter, minutes):
    # improved_ddpm trains six models: it takes most of one 9-minute device call, with a minute of slack
    p = get_preset(chapter, "book")
    assert p.eval.comparable and p.eval.fid_reference_images is None  # full CIFAR-10 train statistics
    assert p.projected_gpu_seconds()["total_s"] < minutes * 60


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
    assert not t.bf16 and t.grad_clip is None   # use_fp16=False, no clipping in improved-diffusion
    assert not t.ema_warmup                    # the official constant EMA rate
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
    # every experiment runs at smoke too, on 8 samples per set (exact low-rank Fréchet distance: cheap on CPU)
    assert set(smoke.step_arms) == set(book.step_arms) == {"learned", "fixed_large", "fixed_small", "ddim"}
    assert all(s.num_samples <= 8 and s.num_steps <= 10 for s in smoke.sample_sets())
    assert set(book.fid_runs) == {r.key for r in book.runs}
    with pytest.raises(ValueError, match="step arms"):
        dataclasses.replace(book, step_arms=("euler",))
    with pytest.raises(ValueError, match="nope"):
        dataclasses.replace(book, skip_runs=("nope",))
    with pytest.raises(ValueError, match="steps"):
        dataclasses.replace(book, skip_steps=900)   # 50% skipped leaves 500 steps
    with pytest.raises(ValueError, match="step counts"):
        dataclasses.replace(book, step_sweep=(10, 2000))


def test_improved_ddpm_sample_sets_are_shared():
    from lt_diffusion.schedules import space_timesteps

    book = get_preset("improved_ddpm", "book")
    sets = book.sample_sets()
    assert len(sets) == len(set(sets))
    # 6 table rows + 4 samplers x 4 step counts + 2 schedules x 5 fractions, of which three coincide with a table
    # row at 50 steps: learned@50 (cosine_hybrid), beta_t@50 (cosine_simple), and both skip sweeps at f = 0.
    assert len(sets) == 6 + 4 * 4 + 2 * 5 - 4 == book.fid_calls()
    assert book.step_set("learned", 50) == book.objective_set("cosine_hybrid")
    assert book.skip_set("linear_simple", 0.0) == book.objective_set("linear_simple")
    ddim = book.step_set("ddim", 25)
    assert (ddim.run, ddim.sampler, ddim.num_samples) == ("cosine_simple", "ddim", 1000)
    assert ddim.timesteps == tuple(sorted(space_timesteps(1000, 25)))
    skip = book.skip_set("cosine_simple", 0.2)
    assert skip.num_steps == 50 and max(skip.timesteps) == 799
    with pytest.raises(ValueError, match="step arm"):
        book.step_set("euler", 10)


def test_improved_ddpm_projected_cost_closed_form():
    # One run, no sweeps: the projection is steps x step cost + bound passes + one sample set + overhead.
    book = get_preset("improved_ddpm", "book")
    p = dataclasses.replace(book, runs=book.runs[:1], fid_runs=("linear_simple",), step_arms=(), skip_runs=(),
                            noise_runs=(), main_run="linear_simple")
    c = p.projected_gpu_seconds()
    assert c["train_s"] == pytest.approx(300 * (0.111 + 0.02 / 10))
    assert c["bpd_s"] == pytest.approx(16 * 0.0762 * 4.096 * 1.5)        # 64 images x 1000 t / 4096 per pass
    assert c["sample_s"] == pytest.approx(50 * 0.0762)
    assert c["total_s"] == pytest.approx(sum(v for k, v in c.items() if k != "total_s"))
    paper = get_preset("improved_ddpm", "paper")
    per_run_h = paper.train.steps * paper.train_step_s / 3600
    assert 13 < per_run_h < 16   # ~14.8 h per 500K-step run at the measured 88.6 ms (x 1.2 Trainer)


def test_improved_ddpm_paper_table_is_the_papers():
    from lt_diffusion.presets.improved_ddpm import PAPER_TABLE

    p = get_preset("improved_ddpm", "paper")
    assert set(PAPER_TABLE) == {r.key for r in p.runs if r.in_paper_table}
    # papers.md §1.2: L_vlb has the best NLL and by far the worst FID; linear / L_simple the best FID
    assert min(PAPER_TABLE, key=lambda k: PAPER_TABLE[k][0]) == "cosine_vlb_is"
    assert min(PAPER_TABLE, key=lambda k: PAPER_TABLE[k][1]) == "linear_simple"
    assert PAPER_TABLE["cosine_hybrid"] == (3.17, 3.19)
