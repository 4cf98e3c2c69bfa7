"""lt_diffusion.experiments.common: specs validate, builders hand the right options to the engine, and a tiny
train -> sample -> FID-input round trip runs on CPU."""
import dataclasses

import numpy as np
import pytest
import torch

from lt_diffusion.data import ImageDataset
from lt_diffusion.experiments import common
from lt_diffusion.experiments.common import DiffusionSpec, EvalSpec, TrainSpec
from lt_diffusion.models import get_model_config


def test_specs_validate():
    with pytest.raises(ValueError):
        DiffusionSpec(objective="l1")
    with pytest.raises(ValueError):
        DiffusionSpec(schedule_sampler="importance")
    with pytest.raises(ValueError):
        TrainSpec(steps=0, batch_size=1, lr=1e-4)
    with pytest.raises(ValueError):
        EvalSpec(num_samples=1, sample_steps=10)
    assert not DiffusionSpec(objective="simple").learn_sigma
    assert DiffusionSpec(objective="hybrid").learn_sigma and DiffusionSpec(objective="vlb").learn_sigma
    assert TrainSpec(steps=10, batch_size=4, lr=1e-3).images_seen == 40
    assert "cosine / L_vlb + IS" == DiffusionSpec(noise_schedule="cosine", objective="vlb",
                                                  schedule_sampler="loss-second-moment").label


def test_build_diffusion_options():
    d = common.build_diffusion(DiffusionSpec(steps=100, noise_schedule="cosine", objective="hybrid"))
    assert d.num_timesteps == 100 and d.model_var_type == "learned_range" and d.loss_type == "hybrid"
    assert d.rescale_timesteps and d.vlb_weight == pytest.approx(0.001)
    s = common.build_diffusion(DiffusionSpec(steps=100), timestep_respacing=10)
    assert s.num_timesteps == 10 and s.model_var_type == "fixed_large"
    small = common.build_diffusion(DiffusionSpec(steps=100), sigma_small=True)
    assert small.model_var_type == "fixed_small"
    # starting the reverse process part-way: only steps < 50 kept, alpha_bar preserved on them
    part = common.build_diffusion(DiffusionSpec(steps=100), use_timesteps=range(0, 50, 5))
    full = common.build_diffusion(DiffusionSpec(steps=100))
    np.testing.assert_allclose(part.alphas_cumprod, full.alphas_cumprod[list(range(0, 50, 5))], rtol=1e-12)
    # guided-diffusion's plain MSE: lambda = 1/T
    g = common.build_diffusion(DiffusionSpec(steps=100, objective="hybrid", rescale_learned_sigmas=False))
    assert g.vlb_weight == pytest.approx(0.01)


def test_build_model_follows_objective():
    cfg = get_model_config("smoke")
    m = common.build_model(cfg, DiffusionSpec(objective="hybrid"), seed=0)
    assert m.config.learn_sigma
    m2 = common.build_model(cfg, DiffusionSpec(objective="hybrid"), seed=0)
    for a, b in zip(m.parameters(), m2.parameters()):
        assert torch.equal(a, b)  # seeded init


def _tiny_data(n=32):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    return ImageDataset(images, torch.arange(n) % 10, [str(i) for i in range(10)])


@pytest.mark.parametrize("objective,sampler", [("simple", "uniform"), ("vlb", "loss-second-moment")])
def test_train_then_sample_roundtrip(objective, sampler):
    spec = DiffusionSpec(steps=20, noise_schedule="cosine", objective=objective, schedule_sampler=sampler)
    train = TrainSpec(steps=3, batch_size=4, lr=1e-3, ema_rate=0.5, bf16=False)
    cfg = dataclasses.replace(get_model_config("smoke"), attention_resolutions=())
    model, ema, history = common.train_model(cfg, spec, train, _tiny_data(), seed=0, device="cpu", log_every=1)
    assert len(history) == 3 and all(np.isfinite(h["loss"]) for h in history)
    assert not ema.training
    for method in ("ancestral", "ddim"):
        fn = common.make_sampler(spec, ema, sample_steps=5, method=method)
        assert fn.num_steps == 5
        x = fn(2, None, torch.Generator().manual_seed(0))
        assert x.shape == (2, 3, 32, 32) and x.abs().max() <= 1.0 + 1e-5
        y = fn(2, None, torch.Generator().manual_seed(0))
        assert torch.equal(x, y)  # all randomness from the generator


def test_generate_uses_make_sampler_signature():
    from lt_diffusion.sampling import generate

    spec = DiffusionSpec(steps=50)
    model = common.build_model(dataclasses.replace(get_model_config("smoke"), attention_resolutions=()), spec)
    images = generate(common.make_sampler(spec, model, sample_steps=2), 3, 2, progress=False, device="cpu")
    assert images.dtype == torch.uint8 and images.shape == (3, 3, 32, 32)


def test_projected_gpu_seconds():
    train = TrainSpec(steps=100, batch_size=10, lr=1e-4)
    ev = EvalSpec(num_samples=100, sample_steps=10, fid_reference="test")
    cost = common.projected_gpu_seconds(train, ev, train_img_per_s=1000.0, sample_img_per_s=100.0)
    assert cost["train_s"] == pytest.approx(1.0) and cost["sample_s"] == pytest.approx(10.0)
    assert cost["fid_s"] == pytest.approx((100 + 10_000) / common.H100_INCEPTION_IMG_PER_S)
    assert cost["total_s"] == pytest.approx(cost["train_s"] + cost["sample_s"] + cost["fid_s"])


def test_save_results_goes_to_repository_results(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "results_dir", lambda scale=None: tmp_path / (scale or "book"))
    path = common.save_results("unit_test", {"fid": np.float64(1.5), "n": np.int64(3), "scale": "smoke"})
    assert path == tmp_path / "smoke" / "unit_test.json" and '"fid": 1.5' in path.read_text()
    assert common.results_dir("smoke").name == "smoke"


@pytest.mark.parametrize("objective", ["simple", "hybrid"])
def test_calc_bpd_batched_matches_calc_bpd_loop(objective):
    spec = DiffusionSpec(steps=30, noise_schedule="cosine", objective=objective)
    model = common.build_model(dataclasses.replace(get_model_config("smoke"), attention_resolutions=()), spec).eval()
    diffusion = common.build_diffusion(spec)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    ref = diffusion.calc_bpd_loop(model, x, generator=torch.Generator().manual_seed(5))
    for batch in (3, 7, 12, 1000):  # one t per pass, partial groups, all t in one pass
        out = common.calc_bpd_batched(diffusion, model, x, batch_size=batch, generator=torch.Generator().manual_seed(5))
        torch.testing.assert_close(out["vb"], ref["vb"], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(out["total_bpd"], ref["total_bpd"], rtol=1e-4, atol=1e-5)
