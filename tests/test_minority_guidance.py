"""Minority guidance end to end on the exact 2-D toy (Ch. 07): levels from the minority score, guidance through
the engine's ``cond_fn`` with an exact noisy classifier, timestep plumbing under respacing, input checks."""
import numpy as np
import pytest
import torch

from lt_diffusion import guidance, minority
from lt_diffusion.experiments import DiffusionSpec, build_diffusion
from lt_diffusion.toy2d import ExactEpsModel, ExactModeClassifier, GaussianMixture

SPEC = DiffusionSpec(steps=1000, noise_schedule="linear")
SQ = lambda a, b: ((a - b) ** 2).sum(-1)   # noqa: E731  (the toy's distance d)


def _toy():
    mix = GaussianMixture([0.95, 0.05], [[-0.6, 0.0], [1.2, 0.6]], [np.eye(2) * 0.12 ** 2] * 2, labels=[0, 1])
    diff = build_diffusion(SPEC)
    return mix, diff, ExactEpsModel(mix, diff.alphas_cumprod)


class _ExactModeClassifier(ExactModeClassifier):
    """The package's exact classifier of the toy's modes, recording the timesteps it is called with."""

    def __init__(self, mix, alphas_cumprod):
        super().__init__(mix, alphas_cumprod)
        self.seen = []

    def forward(self, x_t, t):
        self.seen.append(t.detach().cpu().clone())
        return super().forward(x_t, t)


def _rare_share(mix, x):
    return float((mix.class_posterior(x)[:, 1] > 0.5).double().mean())


def test_top_level_of_the_toy_is_the_rare_mode():
    mix, diff, model = _toy()
    x0, mode = mix.sample(2000, generator=torch.Generator().manual_seed(0))
    s = minority.minority_score(model, diff, x0, 605, num_draws=5, batch_size=2000, distance=SQ,
                                clip_denoised=False, seed=0, device="cpu")
    levels, _ = minority.minority_levels(s, 20)
    top = levels == 19
    assert int(top.sum()) == 100                                  # 1/L of the data
    assert float(top[mode == 1].float().mean()) >= 0.95           # the rare mode lands in the top level
    assert float((mode[top] == 1).float().mean()) >= 0.75         # and fills most of it (5 % rare vs 5 % level)


def test_exact_guidance_moves_samples_to_the_requested_mode():
    mix, full, model = _toy()
    sampler = build_diffusion(SPEC, timestep_respacing="50")
    clf = _ExactModeClassifier(mix, full.alphas_cumprod)   # indexed by original t (the engine maps it back)

    def draw(cond_fn):
        return sampler.p_sample_loop(model, (400, 2), clip_denoised=False, cond_fn=cond_fn, device="cpu",
                                     generator=torch.Generator().manual_seed(3))

    unguided = draw(None)
    # w = 0 through cond_fn adds exactly nothing (same noise, same draws)
    torch.testing.assert_close(draw(guidance.classifier_cond_fn(clf, scale=0.0, labels=1)), unguided,
                               atol=0, rtol=0)
    to_rare = draw(guidance.classifier_cond_fn(clf, scale=1.0, labels=1))
    to_common = draw(guidance.classifier_cond_fn(clf, scale=1.0, labels=0))
    assert _rare_share(mix, unguided) < 0.15
    assert _rare_share(mix, to_rare) > 0.95          # exact classifier, w = 1: samples p(x | rare)
    assert _rare_share(mix, to_common) == 0.0
    # guided rare samples sit inside the rare mode, not between the modes
    d = (to_rare - mix.means[1]).pow(2).sum(1).sqrt()
    assert float(d.median()) < 3 * 0.12


def test_cond_fn_gets_original_timesteps_under_respacing():
    mix, full, model = _toy()
    sampler = build_diffusion(SPEC, timestep_respacing="10")
    clf = _ExactModeClassifier(mix, full.alphas_cumprod)
    sampler.p_sample_loop(model, (8, 2), clip_denoised=False, device="cpu",
                          cond_fn=guidance.classifier_cond_fn(clf, scale=1.0, labels=1),
                          generator=torch.Generator().manual_seed(0))
    seen = sorted({int(t[0]) for t in clf.seen})
    assert seen == sorted(int(v) for v in sampler.timestep_map)
    assert seen[-1] == 999 and len(seen) == 10


def test_bad_inputs_raise():
    mix, diff, model = _toy()
    x0 = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="num_draws"):
        minority.minority_score(model, diff, x0, 10, num_draws=0, distance=SQ, device="cpu")
    for t in (-1, 1000):
        with pytest.raises(ValueError, match="outside"):
            minority.minority_score(model, diff, x0, t, distance=SQ, device="cpu")
    with pytest.raises(ValueError, match="num_levels"):
        minority.level_thresholds(torch.rand(5), 0)
    with pytest.raises(ValueError, match="at least one"):
        minority.level_thresholds(torch.tensor([]), 4)
