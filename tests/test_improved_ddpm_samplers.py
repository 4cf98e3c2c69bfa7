"""Chapter 02's sample sets run through the engine: every sampler of the fewer-steps figure and the skip sweep."""
import numpy as np
import pytest
import torch

from lt_diffusion.experiments import common
from lt_diffusion.presets import get_preset
from lt_diffusion.presets.improved_ddpm import SAMPLER_OPTIONS, STEP_ARMS

P = get_preset("improved_ddpm", "smoke")


@pytest.fixture(scope="module")
def models():
    # Untrained smoke UNets (0.19 M parameters): enough to check wiring, shapes and variance types.
    keys = {run for run, _ in STEP_ARMS.values()} | set(P.skip_runs)
    return {k: common.build_model(P.model, P.run(k).diffusion, seed=0).eval() for k in keys}


def _sampler(models, s):
    r = P.run(s.run)
    return common.make_sampler(r.diffusion, models[s.run], use_timesteps=s.timesteps, bf16=False,
                               device="cpu", **SAMPLER_OPTIONS[s.sampler])


@pytest.mark.parametrize("arm", sorted(STEP_ARMS))
def test_step_arms_sample(models, arm):
    s = P.step_set(arm, 5)
    sampler = _sampler(models, s)
    expected_var = {"learned": "learned_range", "fixed_large": "fixed_large", "fixed_small": "fixed_small",
                    "ddim": "fixed_large"}[arm]
    assert sampler.diffusion.model_var_type == expected_var
    assert sampler.diffusion.num_timesteps == 5
    x = sampler(2, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 3, 32, 32) and torch.isfinite(x).all() and x.abs().max() <= 1.0 + 1e-6
    if arm == "ddim":  # η = 0: the same starting noise gives the same sample
        torch.testing.assert_close(x, sampler(2, generator=torch.Generator().manual_seed(0)))


def test_skip_set_keeps_alpha_bar_of_the_kept_steps(models):
    s = P.skip_set("cosine_simple", 0.5)
    sampler = _sampler(models, s)
    full = common.build_diffusion(P.run("cosine_simple").diffusion)
    # respacing keeps ᾱ on the kept steps: the chain now starts at t = T/2, where ᾱ is far from 0 (cosine)
    np.testing.assert_allclose(sampler.diffusion.alphas_cumprod, full.alphas_cumprod[list(s.timesteps)], rtol=1e-10)
    assert max(s.timesteps) == P.T // 2 - 1
    assert sampler.diffusion.alphas_cumprod[-1] > 0.4
    x = sampler(2, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 3, 32, 32) and torch.isfinite(x).all()
