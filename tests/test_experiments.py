"""lt_diffusion.experiments: the specs validate themselves, the builders hand every field to the engine, one
train_model trains every kind of arm (with a chunk callback and a checkpoint that load_trained reads back), one
make_sampler serves labels, vectors and CFG, and the batched bound is the loop's bound."""
import dataclasses

import numpy as np
import pytest
import torch

from lt_diffusion.data import ImageDataset
from lt_diffusion.experiments import (Arm, DataSpec, DiffusionSpec, EvalSpec, Marks, build_diffusion, build_model,
                                      load_trained, make_sampler, save_results, train_model)
from lt_diffusion.experiments import results as results_module
from lt_diffusion.models import get_model_config
from lt_diffusion.train import TrainConfig

TINY = dataclasses.replace(get_model_config("smoke"), attention_resolutions=())
TRAIN = TrainConfig(steps=3, batch_size=4, lr=1e-3, ema_rate=0.5, amp=False, log_every=1)


def _tiny_data(n=32):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    return ImageDataset(images, torch.arange(n) % 10, [str(i) for i in range(10)])


def test_specs_validate_with_clear_errors():
    with pytest.raises(ValueError, match="loss"):
        DiffusionSpec(loss="l1")
    with pytest.raises(ValueError, match="learn_sigma"):
        DiffusionSpec(loss="hybrid")                      # L_hybrid trains a learned variance
    with pytest.raises(ValueError, match="p2_gamma"):
        DiffusionSpec(loss="vlb", learn_sigma=True, p2_gamma=1.0)
    with pytest.raises(ValueError, match="both"):
        DataSpec(num_images=10, imb_factor=0.1)
    with pytest.raises(ValueError, match="at least 2"):
        EvalSpec(num_samples=1, sample_steps=10)
    with pytest.raises(ValueError, match="learn_sigma"):
        Arm("denoiser", TINY, TRAIN, diffusion=DiffusionSpec(loss="hybrid", learn_sigma=True))
    with pytest.raises(ValueError, match="kind"):
        Arm("gan", TINY, TRAIN, diffusion=DiffusionSpec())
    with pytest.raises(ValueError, match="class-conditional"):
        Arm("denoiser", TINY, TRAIN, diffusion=DiffusionSpec(cbdm_tau=1.0))
    with pytest.raises(ValueError, match="num_classes"):
        Arm("classifier", "tiny_cnn", TRAIN)


def test_build_diffusion_hands_the_spec_to_create_diffusion():
    d = build_diffusion(DiffusionSpec(steps=100, noise_schedule="cosine", learn_sigma=True, loss="hybrid"))
    assert d.num_timesteps == 100 and d.model_var_type == "learned_range" and d.loss_type == "hybrid"
    assert d.rescale_timesteps and d.vlb_weight == pytest.approx(0.001) and d.loss_weight is None
    s = build_diffusion(DiffusionSpec(steps=100), timestep_respacing=10)
    assert s.num_timesteps == 10 and s.model_var_type == "fixed_large"
    assert build_diffusion(DiffusionSpec(steps=100), sigma_small=True).model_var_type == "fixed_small"
    # starting the reverse process part-way: only steps < 50 kept, alpha_bar preserved on them
    part = build_diffusion(DiffusionSpec(steps=100), use_timesteps=range(0, 50, 5))
    full = build_diffusion(DiffusionSpec(steps=100))
    np.testing.assert_allclose(part.alphas_cumprod, full.alphas_cumprod[list(range(0, 50, 5))], rtol=1e-12)
    # the papers' hooks, as data
    p2 = build_diffusion(DiffusionSpec(steps=100, p2_gamma=0.5, p2_k=2.0))
    assert (p2.loss_weight.gamma, p2.loss_weight.k) == (0.5, 2.0)
    cbdm = build_diffusion(DiffusionSpec(steps=100, cbdm_tau=2.0, cbdm_gamma=0.1, cbdm_label_dist="train"),
                           num_classes=2, class_counts=[3, 1])
    assert (cbdm.regularizer.tau, cbdm.regularizer.gamma) == (2.0, 0.1)
    torch.testing.assert_close(cbdm.regularizer.label_probs, torch.tensor([0.75, 0.25], dtype=torch.float64))
    with pytest.raises(ValueError, match="num_classes"):
        build_diffusion(DiffusionSpec(cbdm_tau=1.0))


def test_build_model_is_seeded_and_follows_the_arm():
    arm = Arm("denoiser", TINY, TRAIN, diffusion=DiffusionSpec())
    a, b = build_model(arm, seed=3), build_model(arm, seed=3)
    assert a.config == TINY and all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    gen = build_model(Arm("generator", dataclasses.replace(TINY, cond_dim=4), dataclasses.replace(TRAIN, num_classes=3),
                          diffusion=DiffusionSpec()))
    assert gen.num_classes == 3 and gen.class_table.num_embeddings == 4


@pytest.mark.parametrize("loss,sampler", [("simple", "uniform"), ("vlb", "loss-second-moment")])
def test_train_then_sample_roundtrip(loss, sampler):
    spec = DiffusionSpec(steps=20, noise_schedule="cosine", loss=loss, learn_sigma=loss != "simple")
    arm = Arm("denoiser", dataclasses.replace(TINY, learn_sigma=loss != "simple"),
              dataclasses.replace(TRAIN, schedule_sampler=sampler), diffusion=spec)
    run = train_model(arm, data=_tiny_data(), seed=0, device="cpu")
    assert len(run.history) == 3 and all(np.isfinite(h["loss"]) for h in run.history)
    assert not run.ema.training and run.trainer.config.schedule_sampler == sampler
    for method in ("ancestral", "ddim"):
        fn = make_sampler(spec, run.ema, sample_steps=5, method=method)
        assert fn.num_steps == 5
        x = fn(2, None, torch.Generator().manual_seed(0))
        assert x.shape == (2, 3, 32, 32) and x.abs().max() <= 1.0 + 1e-5
        assert torch.equal(x, fn(2, None, torch.Generator().manual_seed(0)))   # all randomness from the generator


def test_chunks_callback_and_checkpoint_roundtrip(tmp_path):
    arm = Arm("denoiser", TINY, dataclasses.replace(TRAIN, steps=5, log_every=2), diffusion=DiffusionSpec(steps=50))
    steps = []
    run = train_model(arm, data=_tiny_data(), device="cpu", every=2, on_chunk=lambda tr: steps.append(tr.step),
                      ckpt_dir=str(tmp_path))
    assert steps == [2, 4, 5] and run.trainer.step == 5
    stop = train_model(arm, data=_tiny_data(), device="cpu", every=2, on_chunk=lambda tr: tr.step >= 4)
    assert stop.trainer.step == 4                                 # True from the callback ends the run
    loaded = load_trained(arm, str(tmp_path / "ckpt_0000005.pt"), device="cpu")
    for a, b in zip(loaded.ema.parameters(), run.ema.parameters()):
        torch.testing.assert_close(a, b)
    assert loaded.history == run.history
    with pytest.raises(ValueError, match="config"):
        load_trained(dataclasses.replace(arm, model=dataclasses.replace(TINY, dropout=0.3)),
                     str(tmp_path / "ckpt_0000005.pt"))
    marks = Marks(steps=3, seconds=1e9)                           # the time mark is never reached: the last EMA
    train_model(arm, data=_tiny_data(), device="cpu", every=2, on_chunk=marks)
    assert marks.snapshots["steps"][1] == 4 and marks.snapshots["time"][1] == 5


def test_derived_data_must_be_passed():
    arm = Arm("denoiser", TINY, TRAIN, DataSpec(from_arm="backbone"), DiffusionSpec(steps=50))
    with pytest.raises(ValueError, match="backbone"):
        train_model(arm, device="cpu")


def test_one_sampler_for_labels_vectors_cfg_and_the_null_label():
    spec = DiffusionSpec(steps=50)
    model = build_model(Arm("denoiser", dataclasses.replace(TINY, num_classes=3), TRAIN, diffusion=spec)).eval()
    calls = []
    model.register_forward_pre_hook(lambda m, args, kwargs: calls.append(kwargs.get("y")), with_kwargs=True)
    y = torch.tensor([0, 2])
    make_sampler(spec, model, sample_steps=2)(2, y, torch.Generator().manual_seed(0))
    assert torch.equal(calls[-1], y)
    make_sampler(spec, model, sample_steps=2, guidance_scale=1.5)(2, y, torch.Generator().manual_seed(0))
    assert torch.equal(calls[-1], torch.tensor([0, 2, 3, 3]))      # one batched forward: labels, then the null label
    make_sampler(spec, model, sample_steps=2, unconditional=True)(2, y, torch.Generator().manual_seed(0))
    assert torch.equal(calls[-1], torch.tensor([3, 3]))            # the model sees ∅; a cond_fn would see y
    vec = build_model(Arm("denoiser", dataclasses.replace(TINY, cond_dim=4), TRAIN, diffusion=spec)).eval()
    x = make_sampler(spec, vec, sample_steps=2, guidance_scale=2.0, convention="g", null_cond=torch.zeros(4))(
        2, torch.randn(2, 4), torch.Generator().manual_seed(0))
    assert x.shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="method"):
        make_sampler(spec, model, method="euler")


def test_save_results_goes_to_repository_results(tmp_path, monkeypatch):
    monkeypatch.setattr(results_module, "results_dir", lambda scale=None: tmp_path / (scale or "book"))
    path = save_results("unit_test", {"fid": np.float64(1.5), "n": np.int64(3), "scale": "smoke"})
    assert path == tmp_path / "smoke" / "unit_test.json" and '"fid": 1.5' in path.read_text()


@pytest.mark.parametrize("loss", ["simple", "hybrid"])
def test_calc_bpd_batched_matches_calc_bpd_loop(loss):
    # a tiny model and T: the check is about grouping timesteps and drawing the noise in the loop's order
    cfg = dataclasses.replace(TINY, model_channels=8, image_size=8, channel_mult=(1,), learn_sigma=loss != "simple")
    spec = DiffusionSpec(steps=12, noise_schedule="cosine", loss=loss, learn_sigma=loss != "simple")
    model = build_model(Arm("denoiser", cfg, TRAIN, diffusion=spec)).eval()
    diffusion = build_diffusion(spec)
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    ref = diffusion.calc_bpd_loop(model, x, generator=torch.Generator().manual_seed(5))
    for batch in (3, 7, 12, 1000):  # one t per pass, partial groups, all t in one pass
        out = diffusion.calc_bpd_batched(model, x, batch_size=batch, generator=torch.Generator().manual_seed(5))
        torch.testing.assert_close(out["vb"], ref["vb"], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(out["total_bpd"], ref["total_bpd"], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(out["prior_bpd"], ref["prior_bpd"])


def test_fit_microbatch_halves_the_batch_until_the_estimate_fits():
    from lt_diffusion.experiments.memory import STATE_BYTES_PER_PARAM, fit_microbatch, step_memory
    from lt_diffusion.presets import get_preset

    arm = get_preset("ddpm", "smoke").arms["ddpm"]
    params, per_sample = step_memory(arm)
    assert params > 0 and per_sample > 0
    need = lambda b: STATE_BYTES_PER_PARAM * params + per_sample * b   # noqa: E731
    assert fit_microbatch(arm, 16, need(16), fraction=1.0) is None          # the whole batch fits
    assert fit_microbatch(arm, 16, need(16) - 1, fraction=1.0) == 8         # one sample too many: halve
    assert fit_microbatch(arm, 16, need(3), fraction=1.0) == 2              # 16 -> 8 -> 4 -> 2
    assert fit_microbatch(arm, 16, need(16) / 0.8, fraction=0.8) is None    # the fraction is the budget
    with pytest.raises(ValueError, match="use a GPU with more memory"):
        fit_microbatch(arm, 16, need(1) - 1, fraction=1.0)


def test_gpu_microbatch_splits_on_a_small_gpu_only(monkeypatch):
    """train_model's default: the whole batch on a CPU or a large GPU, micro-batches on a small one, never with
    BatchNorm (the GPU is faked: only its memory size is read)."""
    from types import SimpleNamespace

    from lt_diffusion.experiments.memory import STATE_BYTES_PER_PARAM, gpu_microbatch, step_memory
    from lt_diffusion.presets import get_preset

    arm = get_preset("ddpm", "smoke").arms["ddpm"]
    params, per_sample = step_memory(arm)
    small = (STATE_BYTES_PER_PARAM * params + per_sample * 8) / 0.8
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(total_memory=small))
    model = build_model(arm)
    assert gpu_microbatch(arm, model, 16, "cpu") is None
    assert gpu_microbatch(arm, model, 16, "cuda") == 8
    assert gpu_microbatch(arm, torch.nn.Sequential(model, torch.nn.BatchNorm2d(3)), 16, "cuda") is None
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(total_memory=80e9))
    assert gpu_microbatch(arm, model, 16, "cuda") is None
