"""Every chapter preset: frozen plain data, valid at every scale, the papers' settings at ``paper`` scale, and every
field reaching the object that uses it (the Trainer, the engine diffusion, the loader, the model, the notebook)."""
import dataclasses
import inspect
import re
from pathlib import Path

import pytest
import torch

from lt_diffusion.data import ImageDataset, lt_class_counts
from lt_diffusion.experiments import ChapterPreset, DiffusionSpec, EvalSpec, projected_gpu_seconds, training
from lt_diffusion.presets import CHAPTER_MODULES, SCALES, chapters, get_preset
from lt_diffusion.schedules import get_named_beta_schedule
from lt_diffusion.train import TrainConfig

CASES = [(c, s) for c in sorted(CHAPTER_MODULES) for s in SCALES]
NOTEBOOKS = {"ddpm": "01_ddpm", "improved_ddpm": "02_improved_ddpm", "adm": "03_adm", "cfg": "04_cfg", "p2": "05_p2",
             "cbdm": "06_cbdm", "minority_guidance": "07_minority_guidance",
             "diffusion_inversion": "08_diffusion_inversion"}
RUNTIME = {"seed", "device", "progress", "ckpt_dir"}   # set by train_model, not by a preset


@pytest.fixture(params=CASES, ids=[f"{c}-{s}" for c, s in CASES])
def preset(request):
    chapter, scale = request.param
    return get_preset(chapter, scale)


def test_presets_are_frozen_data(preset):
    assert isinstance(preset, ChapterPreset) and preset.arms
    for obj in (preset, preset.eval, *preset.arms.values(), *(a.train for a in preset.arms.values())):
        name = dataclasses.fields(obj)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, name, getattr(obj, name))
    with pytest.raises(ValueError, match="unknown arm"):
        preset.arm("nope")


def test_unknown_names_raise():
    assert chapters() == sorted(NOTEBOOKS)
    with pytest.raises(ValueError, match="ddpm"):
        get_preset("nope", "smoke")
    with pytest.raises(ValueError, match="smoke"):
        get_preset("ddpm", "large")


@pytest.mark.parametrize("chapter", sorted(CHAPTER_MODULES))
def test_smoke_is_tiny_and_book_fits_one_device_call(chapter):
    smoke, book = get_preset(chapter, "smoke"), get_preset(chapter, "book")
    assert not smoke.comparable and book.comparable
    for arm in smoke.arms.values():
        assert arm.train.steps <= 40 and arm.train.batch_size <= 32
        assert arm.model == "tiny_cnn" or arm.model.model_channels <= 16
        assert arm.diffusion is None or arm.diffusion.steps <= 100
    assert projected_gpu_seconds(book)["total_s"] < 9 * 60          # one device call, with its start-up


# --------------------------------------------------------------------------------------------- the papers' settings
def test_ddpm_paper_matches_ho_et_al():
    a = get_preset("ddpm", "paper").arm("ddpm")
    m, d, t = a.model, a.diffusion, a.train
    assert (m.model_channels, m.channel_mult, m.num_res_blocks, m.attention_resolutions, m.dropout) == (
        128, (1, 2, 2, 2), 2, (16,), 0.1)
    assert (d.steps, d.noise_schedule, d.loss, d.learn_sigma) == (1000, "linear", "simple", False)
    assert (t.batch_size, t.lr, t.steps, t.warmup_steps, t.grad_clip, t.ema_rate) == (128, 2e-4, 800_000, 5000, 1.0,
                                                                                      0.9999)
    assert t.random_flip and not t.ema_warmup


def test_improved_ddpm_paper_matches_official_readme():
    from lt_diffusion.presets.improved_ddpm import PAPER_TABLE

    p = get_preset("improved_ddpm", "paper")
    main = p.arm("cosine_hybrid")
    m, t = main.model, main.train
    assert (m.model_channels, m.num_res_blocks, m.channel_mult, m.attention_resolutions, m.dropout) == (
        128, 3, (1, 2, 2, 2), (16, 8), 0.3)
    assert p.T == 4000 and main.diffusion.loss == "hybrid" and main.diffusion.rescale_timesteps
    assert (t.batch_size, t.lr, t.steps, t.weight_decay, t.ema_rate, t.random_flip) == (128, 1e-4, 500_000, 0.0,
                                                                                       0.9999, False)
    assert not t.amp and t.grad_clip is None and not t.ema_warmup   # use_fp16=False, no clipping, constant EMA
    assert p.arm("cosine_vlb_is").train.schedule_sampler == "loss-second-moment"
    assert p.arm("linear_simple").model.dropout == 0.1
    assert set(PAPER_TABLE) < set(p.arms) and PAPER_TABLE["cosine_hybrid"] == (3.17, 3.19)


def test_adm_paper_matches_guided_diffusion():
    p = get_preset("adm", "paper")
    m, c = p.arm("guided").model, p.arm("classifier").model
    assert m.attention_resolutions == (32, 16, 8) and m.num_head_channels == 64 and m.resblock_updown
    assert m.use_scale_shift_norm and m.learn_sigma and (m.model_channels, m.num_res_blocks, m.dropout) == (128, 3,
                                                                                                            0.1)
    assert p.arm("guided").diffusion.loss == "hybrid" and p.arm("guided").diffusion.noise_schedule == "cosine"
    assert (c.model_channels, c.num_res_blocks, c.attention_resolutions, c.pool) == (128, 2, (32, 16, 8), "attention")
    assert p.arm("classifier").train.steps == 150_000 and p.arm("classifier").train.lr == 3e-4
    assert p.eval.sample_steps == 250 and p.eval.num_samples == 50_000
    book = get_preset("adm", "book")
    diff = lambda c: {f.name for f in dataclasses.fields(c)   # noqa: E731 - one change per ablation variant
                      if getattr(c, f.name) != getattr(book.arm("ablation_baseline").model, f.name)}
    assert diff(book.arm("ablation_heads64").model) == {"num_head_channels"}
    assert diff(book.arm("ablation_add_emb").model) == {"use_scale_shift_norm"}
    assert diff(book.arm("ablation_wide_shallow").model) == {"model_channels", "num_res_blocks"}
    assert book.arm("ablation_baseline").train.steps >= book.ablation_steps   # the cap is above the steps mark


def test_cfg_paper_and_book():
    p = get_preset("cfg", "paper")
    assert {a.train.p_uncond for a in p.arms.values() if a.kind == "denoiser"} == {0.1, 0.2, 0.5}
    assert 0.0 in p.ws and max(p.ws) >= 4.0 and p.eval.num_samples == 50_000
    with pytest.raises(ValueError, match="w = 0"):
        dataclasses.replace(p, ws=(1.0, 2.0))


def test_p2_paper_hyperparameters():
    p = get_preset("p2", "paper")
    a = p.arm("p2")
    assert (a.diffusion.p2_gamma, a.diffusion.p2_k) == (1.0, 1.0) and p.arm("baseline").diffusion.p2_gamma == 0.0
    assert a.diffusion.loss == "hybrid" and a.train.lr == 2e-5 and a.train.batch_size == 8 and not a.train.ema_warmup
    m = a.model
    assert (m.model_channels, m.num_res_blocks, m.attention_resolutions, m.num_head_channels) == (128, 1, (16,), 64)
    assert m.resblock_updown and m.use_scale_shift_norm and m.learn_sigma and m.dropout == 0.0
    assert p.arm("p2_noattn").model.attention_resolutions == () and p.eval.sample_steps == 250


def test_cbdm_paper_hyperparameters():
    p = get_preset("cbdm", "paper")
    a = p.arm("cbdm")
    m, d, t = a.model, a.diffusion, a.train
    assert (m.model_channels, m.channel_mult, m.num_res_blocks, m.attention_resolutions, m.dropout) == (
        128, (1, 2, 2, 2), 2, (16,), 0.1)
    assert (d.steps, d.noise_schedule, d.loss, d.sigma_small) == (1000, "linear", "simple", False)   # fixedlarge
    assert (t.lr, t.warmup_steps, t.grad_clip, t.ema_rate, t.batch_size) == (2e-4, 5000, 1.0, 0.9999, 48)
    assert (t.p_uncond, t.uncond_mode) == (0.1, "batch") and not t.ema_warmup
    assert (d.cbdm_tau, d.cbdm_gamma, d.cbdm_label_dist, d.cbdm_num_labels) == (1.0, 0.25, "train", 1)
    assert p.omega == 1.6 and p.recall_k == 5 and p.eval.sample_steps == 1000
    assert p.arm("baseline").diffusion.cbdm_tau == 0.0 and p.arm("cbdm_uniform").diffusion.cbdm_label_dist == "uniform"
    assert sum(lt_class_counts(5000, 10, a.data.imb_factor)) == 12406
    with pytest.raises(ValueError, match="multiple"):
        dataclasses.replace(get_preset("cbdm", "book"), sweep_samples=1001)


def test_minority_paper_values():
    p = get_preset("minority_guidance", "paper")
    assert p.perturb_t == 605 and p.num_draws == 5 and p.num_levels == 100
    lc = p.arm("level_classifier")
    assert lc.model.num_classes == 100 and lc.train.steps == 60_000 and (lc.train.lr, lc.train.weight_decay) == (
        3e-4, 0.05)
    assert p.eval.sample_steps == 250 and p.guidance_scale == 3.5
    with pytest.raises(ValueError, match="num_levels"):
        dataclasses.replace(p, num_levels=10)


def test_inversion_paper_values():
    p = get_preset("diffusion_inversion", "paper")
    assert (p.invert_lr, p.invert_wd, p.invert_group, p.invert_init) == (3e-2, 1e-2, 100, "mean")
    assert (p.eval.sample_steps, p.eta, p.guidance_g, p.interp_strength, p.emb_noise) == (100, 1.0, 2.0, 0.1, 0.1)
    c = p.arm("classifier").train
    assert (c.optimizer, c.momentum, c.weight_decay, c.warmup_steps, c.steps, c.batch_size) == (
        "sgd", 0.9, 5e-4, 1000, 50_000, 128)
    g = p.arm("generator").train
    assert not g.ema_warmup and g.compile and g.p_uncond == 0.1   # the official constant EMA, compiled
    with pytest.raises(ValueError, match="lambda_grid"):
        dataclasses.replace(p, lambda_grid=(0.1, 1.0))


# --------------------------------------------------------------------------- every field reaches what uses it
class _StopTrainer:
    """Records what train_model hands the Trainer, trains nothing."""

    seen = {}

    def __init__(self, model, diffusion, data, config, schedule_sampler=None):
        _StopTrainer.seen = {"model": model, "diffusion": diffusion, "data": data, "config": config,
                             "schedule_sampler": schedule_sampler}
        self.model = self.ema_model = torch.nn.Linear(1, 1)
        self.config, self.step, self.history = config, config.steps, []

    def run(self, num_steps=None):
        return []


def _check_diffusion(engine, spec: DiffusionSpec):
    assert engine.num_timesteps == spec.steps and engine.loss_type == spec.loss
    assert engine.rescale_timesteps == spec.rescale_timesteps and engine.vlb_weight == spec.vlb_weight
    assert engine.model_var_type == ("learned_range" if spec.learn_sigma else
                                     "fixed_small" if spec.sigma_small else "fixed_large")
    torch.testing.assert_close(torch.as_tensor(engine.betas), torch.as_tensor(
        get_named_beta_schedule(spec.noise_schedule, spec.steps)))
    w, r = engine.loss_weight, engine.regularizer
    assert (w is None) == (spec.p2_gamma == 0) and (w is None or (w.gamma, w.k) == (spec.p2_gamma, spec.p2_k))
    assert (r is None) == (spec.cbdm_tau == 0)
    if r is not None:
        assert (r.tau, r.gamma, r.num_labels) == (spec.cbdm_tau, spec.cbdm_gamma, spec.cbdm_num_labels)
        uniform = torch.allclose(r.label_probs, torch.full_like(r.label_probs, 1 / len(r.label_probs)))
        assert uniform == (spec.cbdm_label_dist == "uniform")   # the test data's classes are imbalanced


def test_every_arm_field_reaches_the_trainer_the_engine_and_the_loader(preset, monkeypatch):
    g = torch.Generator().manual_seed(0)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate([200, 150, 120, 100, 90, 80, 70, 60, 40, 114])])
    fake = ImageDataset(torch.randint(0, 256, (1024, 3, 32, 32), dtype=torch.uint8, generator=g), labels,
                        [str(c) for c in range(10)])
    asked = []
    monkeypatch.setattr("lt_diffusion.train.Trainer", _StopTrainer)
    monkeypatch.setattr(training, "load_data", lambda spec: asked.append(spec) or fake)
    monkeypatch.setattr(training, "build_model", lambda arm, seed=0: torch.nn.Linear(1, 1))
    for name, arm in preset.arms.items():
        asked.clear()
        training.train_model(arm, seed=7, device="cpu", data=fake if arm.data.from_arm else None)
        seen = _StopTrainer.seen
        assert asked == ([] if arm.data.from_arm else [arm.data]), name          # DataSpec -> load_data
        for f in dataclasses.fields(TrainConfig):                                 # TrainConfig -> Trainer, unchanged
            if f.name not in RUNTIME:
                assert getattr(seen["config"], f.name) == getattr(arm.train, f.name), (name, f.name)
        assert (seen["config"].seed, seen["config"].device) == (7, "cpu")
        loader = seen["data"]                                                     # batch, flips, crop -> loader
        x, y = next(loader)
        assert x.shape[0] == arm.train.batch_size and loader.flip == arm.train.random_flip, name
        if arm.kind == "classifier":
            assert loader.padding == (4 if arm.random_crop else 0)
        else:                                                                     # DiffusionSpec -> engine
            engine = seen["diffusion"].diffusion if arm.kind == "noisy_classifier" else seen["diffusion"]
            _check_diffusion(engine, arm.diffusion)


def test_every_model_config_reaches_the_model():
    # the build_model path for the small scales (the paper models are the same code with larger numbers)
    for chapter in sorted(CHAPTER_MODULES):
        for scale in ("smoke", "book"):
            for name, arm in get_preset(chapter, scale).arms.items():
                if arm.kind == "classifier":
                    continue
                model = training.build_model(arm)
                assert (model.unet.config if arm.kind == "generator" else model.config) == arm.model, (chapter, name)


# The package module that holds a chapter's own stages (they take the preset as ``P``, as the notebook names it).
CHAPTER_GLUE = {"improved_ddpm": "improved_ddpm_study", "adm": "guidance_chapters", "cfg": "guidance_chapters",
                "p2": "loss_hook_chapters", "cbdm": "loss_hook_chapters", "minority_guidance": "minority_chapter",
                "diffusion_inversion": "inversion_chapter"}


def _notebook_reads(chapter: str) -> str:
    """The notebook's source and its stages' module: where a chapter reads its preset's fields."""
    root = Path(__file__).resolve().parents[1]
    source = (root / "notebooks" / f"{NOTEBOOKS[chapter]}.py").read_text()
    if chapter in CHAPTER_GLUE:
        source += (root / "lt_diffusion" / "experiments" / f"{CHAPTER_GLUE[chapter]}.py").read_text()
    return source


@pytest.mark.parametrize("chapter", sorted(CHAPTER_MODULES))
def test_every_chapter_field_is_read_by_its_notebook(chapter):
    """A chapter's own fields, and every EvalSpec field a preset sets, are read by the notebook or its stages'
    module (or by projected_gpu_seconds): a value set in a preset and used nowhere fails."""
    source = _notebook_reads(chapter)
    cls = type(get_preset(chapter, "book"))
    own = [f.name for f in dataclasses.fields(cls) if f.name not in {g.name for g in dataclasses.fields(ChapterPreset)}]
    for name in own:
        assert re.search(rf"(\bP|get_preset\([^)]*\))\.{name}\b", source), \
            f"{cls.__name__}.{name} is read nowhere in the notebook"
    defaults = EvalSpec(num_samples=2, sample_steps=1)
    projected = set(re.findall(r"\bev\.(\w+)", inspect.getsource(projected_gpu_seconds)))   # the cost's fields
    for scale in SCALES:
        ev = get_preset(chapter, scale).eval
        for f in dataclasses.fields(EvalSpec):
            if f.name in projected or getattr(ev, f.name) == getattr(defaults, f.name):
                continue
            assert re.search(rf"\.eval\.{f.name}\b", source), f"{chapter} {scale}: eval.{f.name} is set, never read"
