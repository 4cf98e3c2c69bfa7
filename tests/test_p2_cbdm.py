"""P2 weighting (loss_weight hook) and the CBDM regulariser (regularizer hook)."""
import numpy as np
import pytest
import torch

from lt_diffusion.cbdm import CBDMRegularizer
from lt_diffusion.diffusion import GaussianDiffusion, create_diffusion
from lt_diffusion.losses import mean_flat
from lt_diffusion.schedules import get_named_beta_schedule
from lt_diffusion.weighting import P2Weight, p2_lambda_t, snr

K = 4


# ------------------------------------------------------------------------------------------ P2
def test_p2_gamma0_equals_baseline_exactly():
    betas = get_named_beta_schedule("linear", 100)
    base = GaussianDiffusion(betas)
    p2 = GaussianDiffusion(betas, loss_weight=P2Weight(gamma=0.0))
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)
    model = lambda x, t, **kw: conv(x)  # noqa: E731
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(4, 3, 4, 4, generator=g) * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    t = torch.tensor([0, 10, 50, 99])
    a = base.training_losses(model, x0, t, noise=noise)["loss"]
    b = p2.training_losses(model, x0, t, noise=noise)["loss"]
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_p2_weights_closed_form_linear_1000():
    d = create_diffusion(1000, "linear")
    t = torch.tensor([0, 250, 500, 999])
    w1 = P2Weight(gamma=1.0, k=1.0)(t, d)
    abar = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
    expected = 1.0 / (1.0 + abar / (1 - abar))      # = 1 − ᾱ_t for γ = 1, k = 1
    torch.testing.assert_close(w1, torch.tensor(expected[t.numpy()], dtype=torch.float32))
    assert w1[0].item() == pytest.approx(1e-4, rel=1e-3)     # ᾱ_0 = 1 − 1e-4
    assert w1[-1].item() == pytest.approx(1.0, abs=1e-4)
    assert w1[1].item() == pytest.approx(0.48, abs=0.01) and w1[2].item() == pytest.approx(0.92, abs=0.01)
    w_half = P2Weight(gamma=0.5)(t, d)
    assert w_half[0].item() == pytest.approx(0.01, rel=1e-3)
    # the weight multiplies only the eps-MSE
    d_p2 = create_diffusion(1000, "linear", loss_weight=P2Weight(1.0))
    x0 = torch.zeros(4, 1, 2, 2)
    noise = torch.ones_like(x0)
    terms = d_p2.training_losses(lambda x, t, **kw: torch.zeros_like(x), x0, t, noise=noise)
    torch.testing.assert_close(terms["loss"], w1 * 1.0)
    torch.testing.assert_close(terms["mse"], torch.ones(4))


def test_snr_and_lambda_helpers():
    # worked by hand: betas 0.1, 0.2, 0.5 give alpha_bar 0.9, 0.72, 0.36, so SNR = 9, 0.72/0.28, 0.36/0.64 and
    # lambda_t = (1 - beta)(1 - alpha_bar)/beta = 0.9 * 0.1/0.1, 0.8 * 0.28/0.2, 0.5 * 0.64/0.5
    betas = np.array([0.1, 0.2, 0.5])
    np.testing.assert_allclose(snr(np.cumprod(1 - betas)), [9.0, 18 / 7, 0.5625])
    np.testing.assert_allclose(p2_lambda_t(betas), [0.9, 1.12, 0.64])
    torch.testing.assert_close(p2_lambda_t(torch.tensor(betas)), torch.tensor([0.9, 1.12, 0.64], dtype=torch.float64))
    # lambda_t is the inverse of the bound's weight on the eps-MSE (Ho et al. 2020, Eq. 12 with sigma^2 = beta):
    # an eps error e adds |e|^2 / (2 lambda_t) nats per dimension to the engine's L_{t-1}
    d = GaussianDiffusion(betas, model_var_type="fixed_large")
    x0, t = torch.zeros(1, 1, 1, 1, dtype=torch.float64), torch.tensor([1])
    x_t = d.q_sample(x0, t, noise=torch.zeros_like(x0))
    kl = [float(d._vb_terms_bpd(lambda x, tt, e=e, **kw: torch.full_like(x, e), x0, x_t, t,
                                clip_denoised=False)["output"]) * np.log(2) for e in (0.0, 0.01)]
    assert kl[1] - kl[0] == pytest.approx(0.01 ** 2 / (2 * p2_lambda_t(betas)[1]), rel=1e-6)
    with pytest.raises(ValueError):
        P2Weight(gamma=-1)


# ------------------------------------------------------------------------------------------ CBDM
class EmbedModel(torch.nn.Module):
    """ε(x, t, y) = 0.5 x + emb[y] (broadcast over pixels); y = K is the null label."""

    def __init__(self, depends_on_label=True):
        super().__init__()
        self.emb = torch.nn.Parameter(torch.randn(K + 1, 2, 1, 1, generator=torch.Generator().manual_seed(0)))
        self.depends_on_label = depends_on_label
        self.calls = []

    def forward(self, x, t, y=None, cond=None):
        self.calls.append(x.shape[0])
        if not self.depends_on_label:
            return 0.5 * x + self.emb[0]
        return 0.5 * x + self.emb[y]


def _diffusion(reg, T=100):
    return GaussianDiffusion(get_named_beta_schedule("linear", T), regularizer=reg)


def _data(B=4):
    g = torch.Generator().manual_seed(5)
    return torch.rand(B, 2, 3, 3, generator=g) * 2 - 1, torch.randn(B, 2, 3, 3, generator=g)


def test_cbdm_zero_when_model_ignores_labels():
    reg = CBDMRegularizer(K, generator=torch.Generator().manual_seed(0))
    d = _diffusion(reg)
    model = EmbedModel(depends_on_label=False)
    x0, noise = _data()
    terms = d.training_losses(model, x0, torch.tensor([10, 20, 50, 99]), model_kwargs={"y": torch.tensor([0, 1, 2, 3])},
                              noise=noise)
    torch.testing.assert_close(terms["reg"], torch.zeros(4))
    torch.testing.assert_close(terms["loss"], terms["mse"])
    assert model.calls == [4, 4]   # one extra forward of batch B


def test_cbdm_stop_grad_structure_and_value():
    # y' is always class 2 (a one-hot label distribution); y = 0; h − h' = emb[0] − emb[2] =: δ per channel.
    gamma, tau, T = 0.25, 1.0, 100
    reg = CBDMRegularizer(K, tau=tau, gamma=gamma, label_dist=torch.tensor([0.0, 0.0, 1.0, 0.0]))
    d = _diffusion(reg, T)
    model = EmbedModel()
    x0, noise = _data(1)
    t = torch.tensor([60])
    terms = d.training_losses(model, x0, t, model_kwargs={"y": torch.tensor([0])}, noise=noise)
    delta = (model.emb[0] - model.emb[2]).detach().view(2)
    w_t = tau * 60 / T
    expected = w_t * (1 + gamma) * (delta ** 2).mean()      # both terms equal ‖δ‖² in value
    assert terms["reg"].item() == pytest.approx(expected.item(), rel=1e-5)
    (grad,) = torch.autograd.grad(terms["reg"].sum(), [model.emb])
    # d/d emb[y]: only the first term, 2 w δ / C; d/d emb[y']: only the γ term, −2 w γ δ / C
    torch.testing.assert_close(grad[0].view(2), 2 * w_t * delta / 2)
    torch.testing.assert_close(grad[2].view(2), -2 * w_t * gamma * delta / 2)
    torch.testing.assert_close(grad[2], -gamma * grad[0])
    assert grad[[1, 3, 4]].abs().max() == 0


def test_cbdm_weight_grows_linearly_with_t_and_skips_null():
    reg = CBDMRegularizer(K, label_dist=torch.tensor([0.0, 1.0, 0.0, 0.0]))
    d = _diffusion(reg, 100)
    model = EmbedModel()
    x0, noise = _data(4)
    x0, noise = x0[:1].expand(4, -1, -1, -1), noise[:1].expand(4, -1, -1, -1)
    y = torch.tensor([3, 3, 3, K])         # the last sample carries the null label
    # with ε depending on x only through 0.5 x, h − h' = emb[y] − emb[1] does not depend on t
    t = torch.tensor([0, 25, 50, 75])
    r = d.training_losses(model, x0, t, model_kwargs={"y": y}, noise=noise)["reg"].detach()
    assert r[0] == 0 and r[3] == 0
    assert r[1] > 0
    torch.testing.assert_close(r[2] / r[1], torch.tensor(2.0))
    torch.testing.assert_close(reg.weight(t, d), t.float() / 100)


def test_cbdm_label_distribution_and_num_labels():
    counts = torch.tensor([500.0, 200.0, 50.0, 250.0])
    reg = CBDMRegularizer(K, label_dist="train", class_counts=counts, num_labels=3,
                          generator=torch.Generator().manual_seed(0))
    labels = reg.sample_labels(20_000, "cpu")
    assert labels.shape == (3, 20_000)
    freq = torch.bincount(labels.flatten(), minlength=K).float() / labels.numel()
    torch.testing.assert_close(freq, counts / counts.sum(), atol=0.01, rtol=0)
    # |Y'| = 3 labels: one extra forward of batch 3B; the loss averages the per-label terms
    d = _diffusion(reg)
    model = EmbedModel()
    x0, noise = _data(2)
    terms = d.training_losses(model, x0, torch.tensor([30, 90]), model_kwargs={"y": torch.tensor([0, 1])},
                              noise=noise)
    assert model.calls == [2, 6]
    assert terms["reg"].shape == (2,) and (terms["reg"] > 0).all()
    with pytest.raises(ValueError, match="class_counts"):
        CBDMRegularizer(K, label_dist="train")
    with pytest.raises(ValueError, match="uniform"):
        CBDMRegularizer(K, label_dist="balanced")


def test_cbdm_with_learned_sigma_uses_eps_channels():
    class TwoHead(EmbedModel):
        def forward(self, x, t, y=None, cond=None):
            eps = super().forward(x, t, y=y)
            return torch.cat([eps, torch.full_like(x, 100.0) * y.view(-1, 1, 1, 1)], dim=1)

    reg = CBDMRegularizer(K, label_dist=torch.tensor([0.0, 0.0, 1.0, 0.0]))
    d = create_diffusion(100, "linear", learn_sigma=True, loss="hybrid", regularizer=reg)
    model = TwoHead()
    x0, noise = _data(1)
    r = d.training_losses(model, x0, torch.tensor([50]), model_kwargs={"y": torch.tensor([0])}, noise=noise)["reg"]
    delta = (model.emb[0] - model.emb[2]).detach()
    assert r.item() == pytest.approx((0.5 * 1.25 * (delta ** 2).mean()).item(), rel=1e-5)
