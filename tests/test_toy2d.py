"""The Gaussian-mixture toy: exact densities and scores under the forward process."""
import math

import numpy as np
import pytest
import torch

from lt_diffusion.toy2d import (ExactEpsModel, GaussianMixture, ToyDenoiser, density_grid, guided_sample_stats,
                                three_class_mixture)


def _two_component_class_mixture():
    # class 0 = two components (a common and a rare mode), class 1 = one anisotropic component
    means = [[0.0, 0.0], [2.0, 1.0], [-1.5, 0.5]]
    covs = [np.eye(2) * 0.3, np.eye(2) * 0.05, [[0.4, 0.1], [0.1, 0.2]]]
    return GaussianMixture([0.6, 0.1, 0.3], means, covs, labels=[0, 0, 1])


def _autograd_score(mix, x, a, y):
    x = x.clone().requires_grad_(True)
    mix_lp = mix.log_prob(x, a, y)
    return torch.autograd.grad(mix_lp.sum(), x)[0]


@pytest.mark.parametrize("a", [1.0, 0.7, 0.05])
def test_score_matches_autograd_of_log_prob(a):
    mix = _two_component_class_mixture()
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for y in [None, torch.zeros(16, dtype=torch.long), torch.ones(16, dtype=torch.long),
              torch.full((16,), 2, dtype=torch.long)]:
        torch.testing.assert_close(mix.score(x, a, y), _autograd_score(mix, x, a, y), rtol=1e-8, atol=1e-10)


def test_single_gaussian_closed_form():
    mu, s2, a = np.array([0.5, -1.0]), 0.25, 0.6
    mix = GaussianMixture([1.0], [mu], [np.eye(2) * s2])
    x = torch.tensor([[0.1, 0.2], [-1.0, 3.0]], dtype=torch.float64)
    var = a * s2 + 1 - a
    expected_score = -(x - math.sqrt(a) * torch.as_tensor(mu)) / var
    torch.testing.assert_close(mix.score(x, a), expected_score)
    torch.testing.assert_close(mix.eps(x, a), -math.sqrt(1 - a) * expected_score)
    # at pure noise the density is the standard normal whatever the data
    torch.testing.assert_close(mix.log_prob(x, 0.0), -0.5 * (x ** 2).sum(1) - math.log(2 * math.pi))


def test_null_label_is_marginal_and_posterior_normalised():
    mix = _two_component_class_mixture()
    x = torch.randn(32, 2, dtype=torch.float64)
    null = torch.full((32,), mix.num_classes, dtype=torch.long)
    torch.testing.assert_close(mix.log_prob(x, 0.5, null), mix.log_prob(x, 0.5))
    post = mix.class_posterior(x, 0.5)
    torch.testing.assert_close(post.sum(1), torch.ones(32, dtype=torch.float64))
    # Bayes: log p(x|c) + log p(c) - log p(x) = log p(c|x)
    c = torch.zeros(32, dtype=torch.long)
    lhs = mix.log_prob(x, 0.5, c) + mix.class_weights()[0].log() - mix.log_prob(x, 0.5)
    torch.testing.assert_close(lhs, post[:, 0].log())


def test_guided_density_score_is_cfg_combination():
    mix = three_class_mixture()
    x = torch.randn(8, 2, dtype=torch.float64).requires_grad_(True)
    y, w = torch.full((8,), 1, dtype=torch.long), 2.0
    g = torch.autograd.grad(mix.guided_log_density(x, y, w, 0.3).sum(), x)[0]
    torch.testing.assert_close(g, (1 + w) * mix.score(x.detach(), 0.3, y) - w * mix.score(x.detach(), 0.3))


def test_sampling_moments():
    mix = _two_component_class_mixture()
    x, y = mix.sample(40000, generator=torch.Generator().manual_seed(1))
    assert abs(float((y == 1).double().mean()) - 0.3) < 0.01
    exp_mean = (mix.weights[:, None] * mix.means).sum(0)
    torch.testing.assert_close(x.mean(0), exp_mean, atol=0.03, rtol=0)
    xc, _ = mix.sample(20000, generator=torch.Generator().manual_seed(2), y=1)
    torch.testing.assert_close(torch.cov(xc.T), mix.covs[2], atol=0.02, rtol=0)


def test_exact_eps_model_signature_and_timestep_mapping():
    mix = three_class_mixture()
    T = 1000
    abar = np.cumprod(1 - np.linspace(1e-4, 0.02, T))
    model = ExactEpsModel(mix, abar, timestep_scale=1000 / T)
    x = torch.randn(5, 2)
    t = torch.tensor([0, 10, 500, 998, 999]).float()
    y = torch.tensor([0, 1, 2, 3, 0])
    out = model(x, t, y=y)
    assert out.shape == (5, 2) and out.dtype == torch.float32
    ref = mix.eps(x.double(), torch.as_tensor(abar[[0, 10, 500, 998, 999]]), y)
    torch.testing.assert_close(out, ref.float())


def test_toy_denoiser_shapes_and_null_label():
    net = ToyDenoiser(dim=2, num_classes=3, hidden=16, depth=2)
    x, t = torch.randn(4, 2), torch.rand(4) * 1000
    out_none = net(x, t)
    out_null = net(x, t, y=torch.full((4,), 3))
    assert out_none.shape == (4, 2)
    torch.testing.assert_close(out_none, out_null)


def test_density_grid_and_stats():
    mix = three_class_mixture()
    xs, ys, d = density_grid(mix, y=0, w=3.0, n=41)
    assert d.shape == (41, 41) and abs(d.sum() - 1) < 1e-9
    x, y = mix.sample(500, generator=torch.Generator().manual_seed(0))
    s = guided_sample_stats(mix, x, y)
    assert 0.5 < s["class_accuracy"] <= 1 and s["spread"] > 0
