"""Forward process, posterior, parameterisations and training losses against hand-derived closed forms."""
import math

import numpy as np
import pytest
import torch

from lt_diffusion.diffusion import GaussianDiffusion, SpacedDiffusion, create_diffusion
from lt_diffusion.losses import (approx_standard_normal_cdf, discretized_gaussian_log_likelihood, mean_flat,
                                 normal_kl)
from lt_diffusion.schedules import get_named_beta_schedule, space_timesteps

TINY_BETAS = np.array([0.1, 0.2, 0.3, 0.4])


# ------------------------------------------------------------------------------------------ losses.py
def test_normal_kl_identical_is_zero_and_matches_closed_form():
    m = torch.randn(5, generator=torch.Generator().manual_seed(0))
    lv = torch.randn(5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(normal_kl(m, lv, m, lv), torch.zeros(5), atol=1e-7, rtol=0)
    # KL(N(1, 1) || N(0, 4)) = log(2/1) + (1 + 1)/(2·4) − 1/2
    kl = normal_kl(torch.tensor(1.0), 0.0, 0.0, math.log(4.0))
    assert kl.item() == pytest.approx(math.log(2.0) + 2.0 / 8.0 - 0.5, rel=1e-6)
    # and against torch.distributions on random inputs
    m2, lv2 = m.flip(0), lv.flip(0)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(m, torch.exp(0.5 * lv)),
                                            torch.distributions.Normal(m2, torch.exp(0.5 * lv2)))
    torch.testing.assert_close(normal_kl(m, lv, m2, lv2), ref, atol=1e-5, rtol=1e-5)


def test_approx_cdf_close_to_exact():
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    exact = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
    assert (approx_standard_normal_cdf(x) - exact).abs().max() < 5e-4


@pytest.mark.parametrize("mean,log_scale", [(0.0, math.log(0.1)), (0.7, math.log(0.01)), (-0.99, 0.0)])
def test_discretized_likelihood_sums_to_one(mean, log_scale):
    x = (torch.arange(256, dtype=torch.float64) / 127.5 - 1.0).view(1, 256)  # the 256 pixel values in [-1, 1]
    logp = discretized_gaussian_log_likelihood(x, means=torch.full_like(x, mean),
                                               log_scales=torch.full_like(x, log_scale))
    assert logp.shape == x.shape
    assert torch.exp(logp).sum().item() == pytest.approx(1.0, abs=1e-9)


def test_mean_flat():
    x = torch.arange(24.0).view(2, 3, 4)
    torch.testing.assert_close(mean_flat(x), x.view(2, -1).mean(1))


# ------------------------------------------------------------------------------------------ precomputation
def test_posterior_matches_bayes_rule_on_tiny_schedule():
    d = GaussianDiffusion(TINY_BETAS)
    alphas = 1 - TINY_BETAS
    abar = np.cumprod(alphas)
    for t in range(1, 4):
        # Complete the square: prior x_{t-1} ~ N(√ᾱ_{t-1} x0, 1 − ᾱ_{t-1}), likelihood x_t ~ N(√α_t x_{t-1}, β_t).
        precision = 1 / (1 - abar[t - 1]) + alphas[t] / TINY_BETAS[t]
        var = 1 / precision
        coef_x0 = var * math.sqrt(abar[t - 1]) / (1 - abar[t - 1])
        coef_xt = var * math.sqrt(alphas[t]) / TINY_BETAS[t]
        assert d.posterior_variance[t] == pytest.approx(var, rel=1e-12)
        assert d.posterior_mean_coef1[t] == pytest.approx(coef_x0, rel=1e-12)
        assert d.posterior_mean_coef2[t] == pytest.approx(coef_xt, rel=1e-12)
    # t = 0: the posterior is a point mass at x0; the log variance is clipped to index 1.
    assert d.posterior_variance[0] == 0 and d.posterior_mean_coef1[0] == pytest.approx(1.0)
    assert d.posterior_mean_coef2[0] == 0
    assert d.posterior_log_variance_clipped[0] == pytest.approx(math.log(d.posterior_variance[1]))
    np.testing.assert_allclose(d.alphas_cumprod_prev, np.append(1.0, abar[:-1]))
    np.testing.assert_allclose(d.alphas_cumprod_next, np.append(abar[1:], 0.0))
    # fixed_large = [β̃_1, β_2, ..., β_T]
    np.testing.assert_allclose(d.fixed_large_variance, [d.posterior_variance[1], 0.2, 0.3, 0.4])

    x0 = torch.tensor([[0.5, -0.25]])
    xt = torch.tensor([[0.1, 0.3]])
    t = torch.tensor([2])
    mean, var, logvar = d.q_posterior_mean_variance(x0, xt, t)
    torch.testing.assert_close(mean, float(d.posterior_mean_coef1[2]) * x0 + float(d.posterior_mean_coef2[2]) * xt)
    torch.testing.assert_close(var, torch.full_like(x0, float(d.posterior_variance[2])))
    torch.testing.assert_close(logvar, torch.full_like(x0, math.log(d.posterior_variance[2])))


def test_q_sample_statistics_and_q_mean_variance():
    d = create_diffusion(1000, "linear")
    x0 = torch.full((200_000, 1), 0.8)
    t = torch.full((200_000,), 300)
    xt = d.q_sample(x0, t, generator=torch.Generator().manual_seed(0))
    abar = d.alphas_cumprod[300]
    assert xt.mean().item() == pytest.approx(math.sqrt(abar) * 0.8, abs=5e-3)
    assert xt.var().item() == pytest.approx(1 - abar, rel=1e-2)
    mean, var, logvar = d.q_mean_variance(x0[:2], t[:2])
    torch.testing.assert_close(var, torch.full((2, 1), 1 - abar, dtype=torch.float32))
    torch.testing.assert_close(logvar, torch.log(var))
    # explicit noise: exact
    noise = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    x0 = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    tt = torch.tensor([0, 10, 500, 999])
    ab = torch.tensor(d.alphas_cumprod[tt.numpy()], dtype=torch.float32).view(4, 1)
    torch.testing.assert_close(d.q_sample(x0, tt, noise), ab.sqrt() * x0 + (1 - ab).sqrt() * noise)


def test_eps_xstart_round_trip():
    d = create_diffusion(100, "cosine")
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 2, 4, 4, generator=g)
    t = torch.tensor([0, 50, 99])
    xt = d.q_sample(x0, t, eps)
    torch.testing.assert_close(d._predict_xstart_from_eps(xt, t, eps), x0, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(d._predict_eps_from_xstart(xt, t, x0), eps, atol=2e-4, rtol=1e-4)


def test_respaced_alphas_cumprod_and_timestep_map():
    T = 1000
    betas = get_named_beta_schedule("cosine", T)
    base = GaussianDiffusion(betas)
    for spec, expected_map in [("ddim50", list(range(0, 1000, 20))), ("10,10,30", None)]:
        steps = space_timesteps(T, spec)
        spaced = SpacedDiffusion(steps, betas=betas)
        assert spaced.num_timesteps == len(steps) and spaced.original_num_steps == T
        assert list(spaced.timestep_map) == sorted(steps)
        if expected_map is not None:
            assert list(spaced.timestep_map) == expected_map
        np.testing.assert_allclose(spaced.alphas_cumprod, base.alphas_cumprod[sorted(steps)], rtol=1e-10)
    assert create_diffusion(T, "cosine", timestep_respacing="10,10,30").timestep_map[10] == 334  # sections 334/333/333


# ------------------------------------------------------------------------------------------ p_mean_variance
def _const_model(value_fn):
    return lambda x, t, **kw: value_fn(x)


def test_learned_range_endpoints():
    d = GaussianDiffusion(get_named_beta_schedule("linear", 100), model_var_type="learned_range",
                          loss_type="hybrid")
    x = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 40, 99])
    for v, ref in [(-1.0, d.posterior_log_variance_clipped), (1.0, np.log(d.betas))]:
        model = _const_model(lambda x, v=v: torch.cat([torch.zeros_like(x), torch.full_like(x, v)], 1))
        out = d.p_mean_variance(model, x, t)
        expected = torch.tensor(ref[t.numpy()], dtype=torch.float32).view(3, 1, 1, 1).expand_as(x)
        torch.testing.assert_close(out["log_variance"], expected)
        torch.testing.assert_close(out["variance"], expected.exp())
    # v = 0: the geometric mean of β̃ and β
    model = _const_model(lambda x: torch.cat([torch.zeros_like(x), torch.zeros_like(x)], 1))
    out = d.p_mean_variance(model, x, t)
    mid = 0.5 * (d.posterior_log_variance_clipped + np.log(d.betas))[t.numpy()]
    torch.testing.assert_close(out["log_variance"][:, 0, 0, 0], torch.tensor(mid, dtype=torch.float32))
    with pytest.raises(ValueError, match="channels"):
        d.p_mean_variance(_const_model(torch.zeros_like), x, t)


def test_fixed_variances_and_start_x():
    betas = get_named_beta_schedule("linear", 50)
    x = torch.randn(2, 1, 2, 2, generator=torch.Generator().manual_seed(0)) * 3
    t = torch.tensor([0, 30])
    small = GaussianDiffusion(betas, model_var_type="fixed_small")
    large = GaussianDiffusion(betas, model_var_type="fixed_large", model_mean_type="start_x")
    out = small.p_mean_variance(_const_model(torch.zeros_like), x, t)
    torch.testing.assert_close(out["variance"][:, 0, 0, 0],
                               torch.tensor(small.posterior_variance[[0, 30]], dtype=torch.float32))
    out = large.p_mean_variance(_const_model(lambda x: 2 * x), x, t, clip_denoised=True)
    torch.testing.assert_close(out["variance"][:, 0, 0, 0],
                               torch.tensor([small.posterior_variance[1], betas[30]], dtype=torch.float32))
    torch.testing.assert_close(out["pred_xstart"], (2 * x).clamp(-1, 1))
    out = large.p_mean_variance(_const_model(lambda x: 2 * x), x, t, clip_denoised=False)
    torch.testing.assert_close(out["eps"], large._predict_eps_from_xstart(x, t, 2 * x))


# ------------------------------------------------------------------------------------------ training losses
class SplitHeadModel(torch.nn.Module):
    """Outputs (eps, v) with separate parameters per head, to check where gradients flow."""

    def __init__(self):
        super().__init__()
        self.eps_scale = torch.nn.Parameter(torch.tensor(0.3))
        self.v_scale = torch.nn.Parameter(torch.tensor(0.2))
        self.v_bias = torch.nn.Parameter(torch.tensor(0.1))

    def forward(self, x, t, **kwargs):
        return torch.cat([self.eps_scale * x, self.v_scale * x + self.v_bias], dim=1)


def test_hybrid_stop_grad_and_value():
    T = 200
    d = GaussianDiffusion(get_named_beta_schedule("cosine", T), model_var_type="learned_range",
                          loss_type="hybrid")
    model = SplitHeadModel()
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 3, 4, 4, generator=g) * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    t = torch.tensor([0, 5, 100, 199])
    terms = d.training_losses(model, x0, t, noise=noise)
    grads = torch.autograd.grad(terms["vb"].sum(), [model.eps_scale, model.v_scale, model.v_bias],
                                allow_unused=True, retain_graph=True)
    assert grads[0] is None or grads[0].abs().item() == 0.0     # vb does not reach the eps head
    assert grads[1].abs().item() > 0 and grads[2].abs().item() > 0
    # mse reaches only the eps head
    grads = torch.autograd.grad(terms["mse"].sum(), [model.eps_scale, model.v_bias], allow_unused=True)
    assert grads[0].abs().item() > 0 and (grads[1] is None or grads[1].abs().item() == 0.0)
    # value: loss = mse + 0.001 · T · vb_t
    with torch.no_grad():
        xt = d.q_sample(x0, t, noise)
        vb = d._vb_terms_bpd(model, x0, xt, t, clip_denoised=False)["output"]
        mse = mean_flat((noise - model(xt, t)[:, :3]) ** 2)
    torch.testing.assert_close(terms["vb"].detach(), vb * T * 0.001)
    torch.testing.assert_close(terms["loss"].detach(), mse + vb * T / 1000)
    torch.testing.assert_close(terms["mse"].detach(), mse)


def test_vlb_loss_equals_T_times_closed_form_kl():
    # With σ² = β̃_t (fixed_small), L_{t-1} = β_t² / (2 β̃_t α_t (1 − ᾱ_t)) ‖ε − ε_θ‖² (Eq. 12, Ho et al. 2020).
    T = 100
    betas = get_named_beta_schedule("linear", T)
    d = GaussianDiffusion(betas, model_var_type="fixed_small", loss_type="vlb")
    model = lambda x, t, **kw: 0.5 * x  # noqa: E731
    g = torch.Generator().manual_seed(3)
    x0 = torch.rand(3, 2, 4, 4, generator=g) * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    t = torch.tensor([1, 50, 99])
    terms = d.training_losses(model, x0, t, noise=noise)
    xt = d.q_sample(x0, t, noise)
    tn = t.numpy()
    alphas_cumprod = np.cumprod(1 - betas)
    factor = betas[tn] ** 2 / (2 * d.posterior_variance[tn] * (1 - betas[tn]) * (1 - alphas_cumprod[tn]))
    expected = T * torch.tensor(factor, dtype=torch.float32) * mean_flat((noise - 0.5 * xt) ** 2) / math.log(2)
    torch.testing.assert_close(terms["loss"], expected, rtol=2e-4, atol=1e-5)
    assert "mse" not in terms


def test_simple_loss_loss_weight_and_regularizer_hooks():
    d = GaussianDiffusion(get_named_beta_schedule("linear", 100),
                          loss_weight=lambda t, diff: t.float() + 1.0,
                          regularizer=lambda model, x_t, t, kw, out, noise, x0, diff: 0.5 * torch.ones(len(t)))
    model = lambda x, t, **kw: torch.zeros_like(x)  # noqa: E731
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 1, 2, 2, generator=g)
    noise = torch.randn(x0.shape, generator=g)
    t = torch.tensor([0, 4, 9])
    terms = d.training_losses(model, x0, t, noise=noise)
    mse = mean_flat(noise ** 2)
    torch.testing.assert_close(terms["mse"], mse)
    torch.testing.assert_close(terms["loss"], (t.float() + 1) * mse + 0.5)
    torch.testing.assert_close(terms["reg"], torch.full((3,), 0.5))


def test_model_receives_float_mapped_rescaled_timesteps():
    seen = []

    def model(x, t, **kw):
        seen.append(t)
        return torch.zeros_like(x)

    d = create_diffusion(4000, "cosine", timestep_respacing="ddim40", rescale_timesteps=True)
    x0 = torch.zeros(2, 1, 2, 2)
    d.training_losses(model, x0, torch.tensor([0, 39]))
    assert seen[0].dtype == torch.float32
    torch.testing.assert_close(seen[0], torch.tensor([0.0, 3900 * 1000 / 4000]))


def test_invalid_configurations():
    betas = get_named_beta_schedule("linear", 10)
    with pytest.raises(ValueError, match="epsilon"):
        GaussianDiffusion(betas, model_mean_type="previous_x")
    with pytest.raises(ValueError, match="hybrid"):
        GaussianDiffusion(betas, model_var_type="learned_range", loss_type="simple")
    with pytest.raises(ValueError, match="learned_range"):
        GaussianDiffusion(betas, loss_type="hybrid")
    with pytest.raises(ValueError, match="betas"):
        GaussianDiffusion(np.array([0.1, 1.5]))
    with pytest.raises(ValueError, match="T > 20"):
        GaussianDiffusion(get_named_beta_schedule("linear", 10))


# ------------------------------------------------------------------------------------------ bpd
def test_calc_bpd_loop_total_is_prior_plus_terms():
    d = create_diffusion(20, "cosine", sigma_small=True)
    x0 = (torch.randint(0, 256, (2, 3, 4, 4), generator=torch.Generator().manual_seed(0)).float() / 127.5 - 1)
    model = lambda x, t, **kw: torch.zeros_like(x)  # noqa: E731
    out = d.calc_bpd_loop(model, x0, clip_denoised=False, generator=torch.Generator().manual_seed(1))
    assert out["vb"].shape == (2, 20) and out["mse"].shape == (2, 20) and out["xstart_mse"].shape == (2, 20)
    assert torch.isfinite(out["total_bpd"]).all() and (out["total_bpd"] > 0).all()
    torch.testing.assert_close(out["total_bpd"], out["prior_bpd"] + out["vb"].sum(1))
    # the prior of the cosine schedule is near zero (ᾱ_{T-1} ≈ 0), and never negative
    assert (out["prior_bpd"] >= 0).all() and (out["prior_bpd"] < 1e-3).all()
    # the zero-eps model's ε-MSE is E‖ε‖² ≈ 1 at every t
    assert abs(out["mse"].mean().item() - 1.0) < 0.15
