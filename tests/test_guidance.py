"""Classifier guidance cond_fn and classifier-free guidance model_fn."""
import pytest
import torch

from lt_diffusion.diffusion import create_diffusion
from lt_diffusion.guidance import cfg_model_fn, classifier_cond_fn

B, C, H, W = 3, 2, 4, 4
K = 5


class LinearClassifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(K, C * H * W, generator=torch.Generator().manual_seed(0)))

    def forward(self, x, t):
        return x.flatten(1) @ self.weight.t()


def test_classifier_cond_fn_matches_analytic_gradient():
    clf = LinearClassifier()
    x = torch.randn(B, C, H, W, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 3, 4])
    cond_fn = classifier_cond_fn(clf, scale=2.5)
    with torch.no_grad():   # samplers call cond_fn under no_grad: it must enable grad itself
        grad = cond_fn(x, torch.zeros(B, dtype=torch.long), y=y)
    # ∇_x log softmax(Wx)_y = W_y − Σ_k p_k W_k
    p = torch.softmax(x.flatten(1) @ clf.weight.t(), dim=-1)
    expected = (clf.weight[y] - p @ clf.weight).view(B, C, H, W) * 2.5
    torch.testing.assert_close(grad, expected.detach(), atol=1e-5, rtol=1e-5)
    assert clf.weight.grad is None    # no gradient leaks into the classifier
    # fixed level label (minority guidance) and a custom label key
    g_fixed = classifier_cond_fn(clf, 1.0, labels=3)(x, torch.zeros(B, dtype=torch.long))
    g_key = classifier_cond_fn(clf, 1.0, label_key="level")(x, torch.zeros(B, dtype=torch.long),
                                                             level=torch.full((B,), 3))
    torch.testing.assert_close(g_fixed, g_key)
    with pytest.raises(ValueError, match="labels"):
        classifier_cond_fn(clf)(x, torch.zeros(B, dtype=torch.long))


class CountingModel(torch.nn.Module):
    """ε(x, t, y) = x · (y + 1)/10 with y = K the null label; learned sigma adds v = y."""

    def __init__(self, learn_sigma=False):
        super().__init__()
        self.calls = []
        self.learn_sigma = learn_sigma

    def forward(self, x, t, y=None, cond=None):
        self.calls.append(x.shape[0])
        if cond is not None:
            eps = x * cond.sum(1).view(-1, 1, 1, 1)
            scale = cond.sum(1).view(-1, 1, 1, 1)
        else:
            scale = (y.float() + 1).view(-1, 1, 1, 1) / 10
            eps = x * scale
        if self.learn_sigma:
            return torch.cat([eps, scale.expand_as(x)], dim=1)
        return eps


def test_cfg_w0_is_conditional_and_one_batched_forward():
    model = CountingModel()
    x = torch.randn(B, C, H, W, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([1.0, 2.0, 3.0])
    y = torch.tensor([0, 1, 2])
    out = cfg_model_fn(model, 0.0, null_label=K)(x, t, y=y)
    assert model.calls == [2 * B]
    torch.testing.assert_close(out, model(x, t, y=y))
    # w = 2: (1 + w) ε_c − w ε_u
    out = cfg_model_fn(model, 2.0, null_label=K)(x, t, y=y)
    eps_c, eps_u = model(x, t, y=y), model(x, t, y=torch.full_like(y, K))
    torch.testing.assert_close(out, 3 * eps_c - 2 * eps_u)
    # the g convention: g = 1 + w
    out_g = cfg_model_fn(model, 3.0, null_label=K, convention="g")(x, t, y=y)
    torch.testing.assert_close(out_g, out)
    # per-sample scales
    w = torch.tensor([0.0, 1.0, 2.0])
    out_w = cfg_model_fn(model, w, null_label=K)(x, t, y=y)
    torch.testing.assert_close(out_w, (1 + w.view(-1, 1, 1, 1)) * eps_c - w.view(-1, 1, 1, 1) * eps_u)


def test_cfg_learned_sigma_guides_eps_only():
    model = CountingModel(learn_sigma=True)
    x = torch.randn(B, C, H, W, generator=torch.Generator().manual_seed(0))
    t = torch.zeros(B)
    y = torch.tensor([0, 1, 2])
    out = cfg_model_fn(model, 1.5, null_label=K)(x, t, y=y)
    cond, uncond = model(x, t, y=y), model(x, t, y=torch.full_like(y, K))
    torch.testing.assert_close(out[:, :C], 2.5 * cond[:, :C] - 1.5 * uncond[:, :C])
    torch.testing.assert_close(out[:, C:], cond[:, C:])


def test_cfg_continuous_cond():
    model = CountingModel()
    x = torch.randn(B, C, H, W, generator=torch.Generator().manual_seed(0))
    t = torch.zeros(B)
    cond = torch.rand(B, 4, generator=torch.Generator().manual_seed(1))
    null = torch.zeros(4)
    out = cfg_model_fn(model, 1.0, null_cond=null)(x, t, cond=cond)
    expected = 2 * model(x, t, cond=cond) - model(x, t, cond=null.expand(B, 4))
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="null_cond"):
        cfg_model_fn(model, 1.0, null_label=K)(x, t, cond=cond)
    with pytest.raises(ValueError, match="convention"):
        cfg_model_fn(model, 1.0, null_label=K, convention="omega")


def test_cfg_inside_sampler_runs_one_forward_per_step():
    d = create_diffusion(100, "linear", timestep_respacing="ddim10")
    model = CountingModel()
    y = torch.tensor([0, 1, 2])
    d.ddim_sample_loop(cfg_model_fn(model, 1.0, null_label=K), (B, C, H, W), model_kwargs={"y": y},
                       generator=torch.Generator().manual_seed(0))
    assert model.calls == [2 * B] * 10
