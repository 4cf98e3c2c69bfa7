"""Chapter 08 presets: the projected book cost, counted by hand from the measured step times."""
import math

import pytest

from lt_diffusion.presets import get_preset
from lt_diffusion.presets import inversion as pinv


def test_book_cost_parts_by_hand():
    b = get_preset("diffusion_inversion", "book")
    c = b.projected_gpu_seconds()
    # two generators, 600 Trainer steps at batch 512 and 4,600 img/s (measured): 111 ms a step
    assert c["train_s"] == pytest.approx(2 * 600 * 512 / 4600)
    # 1,000 scarce images -> 2 groups of 512; 1,536 LT images -> 3 groups; 100 steps of 512 / 6,700 s each
    assert c["invert_s"] == pytest.approx(5 * 100 * 512 / 6700)
    # a CFG sampling step of 1,000 images runs 2,000 forwards: 2,000 / 13,300 s; 2,000 images = 2 batches
    assert b._cfg_sample_s(2000, 1000) == pytest.approx(50 * 2 * 2000 / 13300)
    # a figure call of 200 images stays on the launch-bound floor of 75 ms a step
    assert b._cfg_sample_s(200, 1000) == pytest.approx(50 * 0.075)
    assert b.n_scarce_runs == 3 + 2 * 3 + 2
    clf = (11 * 100 + pinv.N_LT_ARMS * 120) * 512 / 8500 + (11 + pinv.N_LT_ARMS) * 10 * 0.05
    assert c["classifier_s"] == pytest.approx(clf)
    assert c["total_s"] < 480 and c["total_s"] == pytest.approx(sum(v for k, v in c.items() if k != "total_s"))


def test_lt_plan_fills_the_tail_to_balance_to():
    for scale in ("smoke", "book", "paper"):
        p = get_preset("diffusion_inversion", scale)
        assert all(n + g == max(n, p.balance_to) for n, g in zip(p.lt_counts, p.lt_to_generate))
        assert p.lt_to_invert == sum(n for n in p.lt_counts if n < p.balance_to)
    s = get_preset("diffusion_inversion", "smoke")
    assert s.projected_gpu_seconds()["total_s"] < 120 and not math.isnan(s.projected_gpu_seconds()["total_s"])
