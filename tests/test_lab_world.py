"""The lab world and its exact quantities against closed forms (fast: no training)."""
import math

import numpy as np
import pytest
import torch

from lt_diffusion.diffusion import create_diffusion
from lt_diffusion.lab import metrics
from lt_diffusion.lab.exact import exact_class_log_posterior_grad
from lt_diffusion.lab.world import CIFAR10_LT_COUNTS, longtail_world, picture_world, quantize
from lt_diffusion.toy2d import ExactEpsModel


pytestmark = pytest.mark.usefixtures("one_thread")   # tiny models: one intra-op thread (conftest.py)


@pytest.fixture(scope="module")
def world():
    return longtail_world()


def test_counts_follow_cifar10_lt_at_imbalance_100(world):
    assert list(world.counts) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50] == CIFAR10_LT_COUNTS
    torch.testing.assert_close(world.mixture.class_weights(),
                               torch.tensor(CIFAR10_LT_COUNTS, dtype=torch.float64) / sum(CIFAR10_LT_COUNTS))
    assert world.groups == {"head": [0, 1, 2], "mid": [3, 4, 5, 6], "tail": [7, 8, 9]}


@pytest.mark.parametrize("make", [longtail_world, picture_world])
def test_pairs_sit_at_the_stated_mahalanobis_distance(make):
    w = make()
    for head, tail in w.pairs:
        assert head + tail == 9
        diff = (w.mixture.means[tail] - w.mixture.means[head]).numpy()
        cov = w.mixture.covs[head].numpy()
        np.testing.assert_allclose(w.mixture.covs[tail].numpy(), cov)
        assert math.sqrt(diff @ np.linalg.solve(cov, diff)) == pytest.approx(2.5, rel=1e-10)


def test_equal_prior_bayes_accuracy_is_phi_of_half_the_separation(world):
    # each class is confused only with its pair partner, so accuracy = Phi(1.25) = 0.8944 (closed form)
    x, y = world.sample(2000, torch.Generator().manual_seed(0))
    fid = metrics.class_fidelity(world, x, y)
    assert fid == pytest.approx(0.5 * (1 + math.erf(1.25 / math.sqrt(2))), abs=0.01)


def test_world_fits_the_box_and_training_set_is_exact(world):
    x, y = world.training_set(3)
    assert x.dtype == torch.uint8 and x.shape == (sum(CIFAR10_LT_COUNTS), world.dim)
    assert torch.bincount(y).tolist() == CIFAR10_LT_COUNTS
    x2, y2 = world.training_set(3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(world.training_set(4)[0], x)
    xf = world.to_model_range(x)
    assert xf.min() >= -1 and xf.max() <= 1
    with pytest.raises(ValueError, match="does not fit"):
        longtail_world(std_range=(0.04, 0.3))


def test_quantize_refuses_values_outside_the_range():
    assert quantize(torch.tensor([[-1.0, 0.0, 1.0]])).tolist() == [[0, 128, 255]]
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        quantize(torch.tensor([[1.01]]))


@pytest.mark.parametrize("a", [1.0, 0.5, 0.02])
def test_noised_score_matches_autograd_of_the_log_density(world, a):
    x = torch.randn(64, world.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.5
    for y in (None, torch.arange(64) % 10):
        xg = x.clone().requires_grad_(True)
        auto = torch.autograd.grad(world.mixture.log_prob(xg, a, y).sum(), xg)[0]
        torch.testing.assert_close(world.mixture.score(x, a, y), auto, rtol=1e-8, atol=1e-10)


def test_class_log_likelihoods_and_posterior_gradient(world):
    x = torch.randn(32, world.dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 0.4
    ll = world.mixture.class_log_likelihoods(x, 0.3)
    for c in (0, 9):
        torch.testing.assert_close(ll[:, c], world.mixture.log_prob(x, 0.3, torch.full((32,), c)))
    y = torch.arange(32) % 10
    xg = x.clone().requires_grad_(True)
    logpost = world.mixture.class_posterior(xg, 0.3).log().gather(1, y[:, None]).sum()
    auto = torch.autograd.grad(logpost, xg)[0]
    torch.testing.assert_close(exact_class_log_posterior_grad(world, x, torch.full((32,), 0.3), y), auto,
                               rtol=1e-7, atol=1e-9)


def test_the_exact_eps_has_the_lowest_denoising_loss(world):
    """E||eps - eps_theta||^2 is minimised by eps* (Tweedie): any change of the exact prediction raises it."""
    d = create_diffusion(1000, rescale_timesteps=True)
    model = ExactEpsModel(world.mixture, d.alphas_cumprod, 1.0)
    g = torch.Generator().manual_seed(3)
    x0, y = world.mixture.sample(20000, generator=g)
    for t in (30, 300):
        tt = torch.full((x0.shape[0],), t, dtype=torch.long)
        noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        x_t = d.q_sample(x0, tt, noise=noise)
        eps = model(x_t, tt.double(), y=y)
        best = ((noise - eps) ** 2).mean()
        for changed in (eps * 1.05, eps * 0.95, eps + 0.05 * torch.randn(world.dim, generator=g, dtype=torch.float64)):
            assert ((noise - changed) ** 2).mean() > best
        # and the engine's training loss agrees with the hand-written one
        engine = d.training_losses(model, x0, tt, model_kwargs={"y": y}, noise=noise)["mse"].mean()
        torch.testing.assert_close(engine, best)


def test_engine_bound_of_the_exact_model_is_above_the_exact_nll(world):
    """The variational bound of any model is an upper bound of its NLL, itself >= the data's entropy (Gibbs): on
    quantized true points the engine's bound for the exact denoiser cannot beat the exact NLL."""
    d = create_diffusion(200, rescale_timesteps=True, sigma_small=True)
    model = ExactEpsModel(world.mixture, d.alphas_cumprod, 1000 / 200)
    x, _ = world.sample(20, torch.Generator().manual_seed(4))
    xq = quantize(x)
    bound = d.calc_bpd_loop(model, world.to_model_range(xq).double(),
                            generator=torch.Generator().manual_seed(5))["total_bpd"].mean()
    exact = metrics.exact_nll_bits_per_dim(world, xq).mean()
    assert float(bound) > float(exact) - 0.05
