"""Minority score and ordinal levels (Ch. 07): the quantile rule, Tweedie on an exact toy, score ordering."""
import numpy as np
import torch

from lt_diffusion import minority
from lt_diffusion.diffusion import GaussianDiffusion
from lt_diffusion.schedules import get_named_beta_schedule
from lt_diffusion.toy2d import ExactEpsModel, GaussianMixture


def test_official_perturb_timestep():
    assert minority.official_perturb_timestep(1000) == 605   # index 60 of a "100" respacing, as the official code


def test_levels_follow_the_quantile_rule():
    s = torch.tensor([0.1, 0.35, 0.2, 0.9, 0.5, 0.2, 0.7, 0.15, 0.4, 0.6])
    levels, q = minority.minority_levels(s, 4)
    np.testing.assert_allclose(q.numpy(), np.quantile(s.double().numpy(), [0.25, 0.5, 0.75, 1.0]))
    for j in range(4):   # q_{j-1} < s <= q_j
        lo = -np.inf if j == 0 else float(q[j - 1])
        sel = s[levels == j].double()
        assert bool(((sel > lo) & (sel <= q[j])).all())
    assert int(levels[s.argmax()]) == 3 and int(levels[s.argmin()]) == 0
    # reuse of thresholds; values above the top threshold go to the top level
    lv, _ = minority.minority_levels(torch.tensor([-1.0, 5.0]), 4, thresholds=q)
    assert lv.tolist() == [0, 3]
    counts = torch.bincount(minority.minority_levels(torch.rand(1000), 10)[0], minlength=10)
    assert int(counts.min()) >= 95 and int(counts.max()) <= 105


def _toy():
    mix = GaussianMixture([0.95, 0.05], [[-0.6, 0.0], [1.2, 0.6]], [np.eye(2) * 0.0144] * 2, labels=[0, 0])
    diff = GaussianDiffusion(get_named_beta_schedule("linear", 1000))
    return mix, diff, ExactEpsModel(mix, diff.alphas_cumprod)


def test_tweedie_reconstruction_is_the_posterior_mean():
    mix, diff, model = _toy()
    x0, _ = mix.sample(64, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t = 605
    x_t, x0_hat = minority.tweedie_reconstruction(model, diff, x0, t, noise=noise, clip_denoised=False)
    a = float(diff.alphas_cumprod[t])
    expected = (x_t + (1 - a) * mix.score(x_t, a)) / a ** 0.5
    torch.testing.assert_close(x0_hat, expected, atol=1e-8, rtol=0)


def test_rare_mode_scores_higher_and_score_is_seeded():
    mix, diff, model = _toy()
    g = torch.Generator().manual_seed(0)
    common = mix.means[0] + 0.12 * torch.randn(100, 2, generator=g, dtype=torch.float64)
    rare = mix.means[1] + 0.12 * torch.randn(100, 2, generator=g, dtype=torch.float64)
    d = lambda a, b: ((a - b) ** 2).sum(-1)
    kw = dict(num_draws=3, batch_size=64, distance=d, clip_denoised=False, device="cpu")
    s = minority.minority_score(model, diff, torch.cat([common, rare]), 605, seed=0, **kw)
    assert s.shape == (200,)
    assert float(s[100:].mean()) > 2 * float(s[:100].mean())
    s2 = minority.minority_score(model, diff, torch.cat([common, rare]), 605, seed=0, **kw)
    torch.testing.assert_close(s, s2)


def test_minority_score_with_lpips_on_images():
    from lt_diffusion.models import UNetModel, get_model_config
    import pytest
    pytest.importorskip("lpips")
    import os
    if not os.environ.get("LT_DIFFUSION_ASSETS"):
        pytest.skip("no offline assets")
    diff = GaussianDiffusion(get_named_beta_schedule("linear", 50))
    model = UNetModel(get_model_config("smoke")).eval()
    imgs = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    s = minority.minority_score(model, diff, imgs, 30, num_draws=2, batch_size=2, device="cpu")
    assert s.shape == (4,) and bool((s >= 0).all()) and bool(torch.isfinite(s).all())
