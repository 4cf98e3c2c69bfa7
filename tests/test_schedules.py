"""Noise schedules and respacing against their closed forms."""
import math

import numpy as np
import pytest

from lt_diffusion.schedules import betas_for_alpha_bar, get_named_beta_schedule, space_timesteps


def test_cosine_alpha_bar_matches_cos_squared_ratio():
    T = 1000
    betas = get_named_beta_schedule("cosine", T)
    alphas_cumprod = np.cumprod(1.0 - betas)
    f = lambda t: math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    ts = np.arange(T - 1)  # the last beta is clipped at 0.999, so ᾱ_{T-1} leaves the closed form
    expected = np.array([f(t + 1) / f(0) for t in ts])
    np.testing.assert_allclose(alphas_cumprod[ts], expected, rtol=1e-10, atol=1e-14)
    assert betas.dtype == np.float64 and betas.shape == (T,)
    assert betas.max() == pytest.approx(0.999) and betas[-1] == pytest.approx(0.999)


def test_betas_for_alpha_bar_clips():
    betas = betas_for_alpha_bar(10, lambda u: 1.0 - u, max_beta=0.5)
    assert betas.max() <= 0.5 and betas[-1] == 0.5
    np.testing.assert_allclose(betas[0], 1 - 0.9 / 1.0)


@pytest.mark.parametrize("T", [1000, 4000, 250])
def test_linear_endpoints_scale_with_T(T):
    betas = get_named_beta_schedule("linear", T)
    scale = 1000 / T
    assert betas[0] == pytest.approx(1e-4 * scale, rel=1e-12)
    assert betas[-1] == pytest.approx(0.02 * scale, rel=1e-12)
    np.testing.assert_allclose(np.diff(betas), (0.02 - 1e-4) * scale / (T - 1), rtol=1e-8)


def test_unknown_schedule_lists_options():
    with pytest.raises(ValueError, match="linear.*cosine"):
        get_named_beta_schedule("quadratic", 10)


def test_space_timesteps_ddim():
    assert space_timesteps(1000, "ddim50") == set(range(0, 1000, 20))
    assert space_timesteps(1000, "ddim1000") == set(range(1000))
    with pytest.raises(ValueError, match="stride"):
        space_timesteps(10, "ddim7")


def test_space_timesteps_sections():
    # Three sections of 100 steps; count n from a section of size 100 takes round(k * 99/(n-1)).
    steps = space_timesteps(300, "10,10,30")
    expected = {round(k * 11.0) for k in range(10)}
    expected |= {100 + round(k * 11.0) for k in range(10)}
    expected |= {200 + round(k * 99 / 29) for k in range(30)}
    assert steps == expected and len(steps) == 50
    assert {0, 99, 100, 199, 200, 299} <= steps
    # A single section spans the whole range, first and last step included.
    single = space_timesteps(1000, "100")
    assert single == {round(k * 999 / 99) for k in range(100)}
    assert space_timesteps(1000, [100]) == single == space_timesteps(1000, 100)
    # Uneven split: the first sections get the extra step (sizes 4, 3, 3).
    assert space_timesteps(10, "2,2,2") == {0, 3, 4, 6, 7, 9}


def test_space_timesteps_errors():
    with pytest.raises(ValueError, match="cannot take"):
        space_timesteps(10, "20")
    with pytest.raises(ValueError, match="parse"):
        space_timesteps(10, "ten")


def test_skip_prefix_timesteps():
    from lt_diffusion.schedules import skip_prefix_timesteps

    # Skipping nothing is the ordinary respacing; skipping 20% of T=1000 keeps only t < 800.
    assert skip_prefix_timesteps(1000, 0.0, 50) == space_timesteps(1000, "50")
    kept = skip_prefix_timesteps(1000, 0.2, 50)
    assert len(kept) == 50 and min(kept) == 0 and max(kept) == 799
    assert kept == {round(k * 799 / 49) for k in range(50)}
    # (1 - 0.3) * 1000 is 700.0000000000001 in floating point: the start is still t = 700.
    assert max(skip_prefix_timesteps(1000, 0.3, 10)) == 699
    assert skip_prefix_timesteps(100, 0.5, 50) == set(range(50))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        skip_prefix_timesteps(100, 1.0, 10)
    with pytest.raises(ValueError, match="steps"):
        skip_prefix_timesteps(100, 0.5, 51)
