"""ADM's two forms of classifier guidance (Dhariwal & Nichol 2021, Algorithms 1-2) agree to first order.

Ancestral form: μ' = μ + Σ g.  DDIM form: ε' = ε − √(1 − ᾱ_t) g, then x̂_0 and the posterior mean are
recomputed. With Σ = β_t (fixed_large) and no clipping, the posterior mean moves by β_t / √α_t · g, so the
ratio of the two shifts is exactly 1 / √α_t for t ≥ 1 (and → 1 as the step gets small).
"""
import numpy as np
import pytest
import torch

from lt_diffusion.diffusion import create_diffusion
from lt_diffusion.guidance import classifier_cond_fn

B, C, H, W = 4, 3, 4, 4


class LinearEps(torch.nn.Module):
    """ε(x) = 0.3 x: any model works, the shifts do not depend on it."""

    def forward(self, x, t, y=None, cond=None):
        return 0.3 * x


def _constant_grad(value):
    def cond_fn(x, t, **kw):
        return torch.full_like(x, value)
    return cond_fn


@pytest.mark.parametrize("respacing", ["", "ddim10"])
def test_ddim_shift_is_ancestral_shift_over_sqrt_alpha(respacing):
    d = create_diffusion(100, "cosine", sigma_small=False, timestep_respacing=respacing)
    x = torch.randn(B, C, H, W, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model = LinearEps()
    alphas = 1.0 - d.betas
    for k in range(1, d.num_timesteps):
        t = torch.full((B,), k, dtype=torch.long)
        out = d.p_mean_variance(model, x, t, clip_denoised=False)
        g = 0.7
        shift_anc = d.condition_mean(_constant_grad(g), out, x, t) - out["mean"]
        shift_ddim = d.condition_score(_constant_grad(g), out, x, t)["mean"] - out["mean"]
        torch.testing.assert_close(shift_anc, torch.full_like(x, d.betas[k] * g))       # Σ = β_t
        torch.testing.assert_close(shift_ddim, shift_anc / np.sqrt(alphas[k]), rtol=1e-9, atol=1e-12)


def test_guided_eps_is_a_score_shift_with_a_real_classifier():
    """condition_score with a classifier cond_fn: ε' − ε = −√(1 − ᾱ_t) s ∇ log p(y | x_t)."""
    d = create_diffusion(50, "linear", timestep_respacing="ddim5")
    torch.manual_seed(0)
    clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(C * H * W, 5))
    classifier = lambda x, t: clf(x)  # noqa: E731
    x = torch.randn(B, C, H, W, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3])
    t = torch.full((B,), 2, dtype=torch.long)
    out = d.p_mean_variance(LinearEps(), x, t, clip_denoised=False, model_kwargs={"y": y})
    s = 3.0
    new = d.condition_score(classifier_cond_fn(classifier, scale=s), out, x, t, model_kwargs={"y": y})
    x_in = x.clone().requires_grad_(True)
    logp = torch.log_softmax(clf(x_in), -1).gather(1, y[:, None]).sum()
    grad = torch.autograd.grad(logp, x_in)[0]
    expected = out["eps"] - float(d.sqrt_one_minus_alphas_cumprod[2]) * s * grad
    torch.testing.assert_close(new["eps"], expected, rtol=1e-5, atol=1e-6)
