"""Chapter 02's sample sets run through the engine: every sampler of the fewer-steps figure and the skip sweep."""
import numpy as np
import pytest
import torch

from lt_diffusion.experiments import build_diffusion, build_model, make_sampler
from lt_diffusion.presets import get_preset
from lt_diffusion.presets.improved_ddpm import SAMPLER_OPTIONS, STEP_ARMS
from lt_diffusion.schedules import skip_prefix_timesteps, space_timesteps

P = get_preset("improved_ddpm", "smoke")


@pytest.fixture(scope="module")
def models():
    # Untrained smoke UNets (0.19 M parameters): enough to check wiring, shapes and variance types.
    keys = {run for run, _ in STEP_ARMS.values()} | set(P.skip_runs)
    return {k: build_model(P.arm(k), seed=0).eval() for k in keys}


@pytest.mark.parametrize("name", sorted(STEP_ARMS))
def test_step_arms_sample(models, name):
    key, sampler_name = STEP_ARMS[name]
    sampler = make_sampler(P.arm(key).diffusion, models[key], use_timesteps=sorted(space_timesteps(P.T, 5)),
                           amp=False, device="cpu", **SAMPLER_OPTIONS[sampler_name])
    expected_var = {"learned": "learned_range", "fixed_large": "fixed_large", "fixed_small": "fixed_small",
                    "ddim": "fixed_large"}[name]
    assert sampler.diffusion.model_var_type == expected_var
    assert sampler.diffusion.num_timesteps == 5
    x = sampler(2, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 3, 32, 32) and torch.isfinite(x).all() and x.abs().max() <= 1.0 + 1e-6
    if name == "ddim":  # η = 0: the same starting noise gives the same sample
        torch.testing.assert_close(x, sampler(2, generator=torch.Generator().manual_seed(0)))


def test_skip_set_keeps_alpha_bar_of_the_kept_steps(models):
    kept = sorted(skip_prefix_timesteps(P.T, 0.5, P.skip_steps))
    sampler = make_sampler(P.arm("cosine_simple").diffusion, models["cosine_simple"], use_timesteps=kept, amp=False,
                           device="cpu")
    full = build_diffusion(P.arm("cosine_simple").diffusion)
    # respacing keeps ᾱ on the kept steps: the chain now starts at t = T/2, where ᾱ is far from 0 (cosine)
    np.testing.assert_allclose(sampler.diffusion.alphas_cumprod, full.alphas_cumprod[kept], rtol=1e-10)
    assert max(kept) == P.T // 2 - 1
    assert sampler.diffusion.alphas_cumprod[-1] > 0.4
    x = sampler(2, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 3, 32, 32) and torch.isfinite(x).all()
