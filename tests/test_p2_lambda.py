"""λ_t of P2 (Choi et al. 2022) against the engine's own variational bound: L_simple = Σ_t 2 λ_t L_{t-1}."""
import math

import numpy as np
import pytest
import torch

from lt_diffusion.diffusion import GaussianDiffusion
from lt_diffusion.schedules import get_named_beta_schedule
from lt_diffusion.weighting import P2Weight, p2_lambda_t


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_lambda_turns_the_engine_vlb_term_into_the_eps_mse(schedule):
    # σ_t² = β_t ("fixed_large", DDPM): the ε-error δ adds β_t / (2 α_t (1 − ᾱ_t)) ‖δ‖² to KL term t (t ≥ 1), so
    # 2 λ_t times that increase must give back the plain ε-MSE, for every t and every δ.
    T = 50
    d = GaussianDiffusion(get_named_beta_schedule(schedule, T), model_mean_type="epsilon",
                          model_var_type="fixed_large", loss_type="simple")
    g = torch.Generator().manual_seed(0)
    B = T - 1
    x0 = torch.rand(B, 3, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    delta = 0.3 * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    t = torch.arange(1, T)                      # t = 0 is the decoder NLL, not a KL
    x_t = d.q_sample(x0, t, noise=eps)
    exact = d._vb_terms_bpd(lambda x, s, **kw: eps, x0, x_t, t, clip_denoised=False)["output"]
    wrong = d._vb_terms_bpd(lambda x, s, **kw: eps + delta, x0, x_t, t, clip_denoised=False)["output"]
    kl_increase = (wrong - exact) * math.log(2.0)            # nats per dimension
    mse = (delta ** 2).mean(dim=(1, 2, 3))
    lam = torch.as_tensor(p2_lambda_t(d.betas))[t]
    torch.testing.assert_close(2 * lam * kl_increase, mse, rtol=1e-6, atol=1e-10)


def test_lambda_values_on_the_linear_schedule():
    d = GaussianDiffusion(get_named_beta_schedule("linear", 1000))
    lam = p2_lambda_t(d.betas)
    assert lam[0] == pytest.approx(1 - 1e-4)                  # 1 − ᾱ_1 = β_1
    assert lam[-1] == pytest.approx(0.98 / 0.02, rel=1e-3)    # 1 − ᾱ_T ≈ 1
    assert 95 < lam.max() < 105 and 300 < int(np.argmax(lam)) < 400


def test_p2_factor_is_monotone_in_snr_and_in_gamma():
    d = GaussianDiffusion(get_named_beta_schedule("cosine", 200))
    w_half, w_one = P2Weight(0.5).weights(d), P2Weight(1.0).weights(d)
    assert np.all(np.diff(w_one) > 0)                          # t up, SNR down, weight up
    assert np.all(w_one <= w_half + 1e-15) and np.all(w_half <= 1.0)
    np.testing.assert_allclose(w_one, w_half ** 2)
