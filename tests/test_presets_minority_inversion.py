"""Presets of chapters 07 (minority guidance) and 08 (Diffusion Inversion)."""
import dataclasses

import pytest

from lt_diffusion.presets import SCALES, get_preset

CHAPTERS = ["minority_guidance", "diffusion_inversion"]
# projected H100 seconds of `book`: one papermill run each; inversion uses most of one 10-minute device call
BOOK_BUDGET_S = {"minority_guidance": 240, "diffusion_inversion": 480}


@pytest.mark.parametrize("chapter", CHAPTERS)
@pytest.mark.parametrize("scale", SCALES)
def test_all_scales_validate(chapter, scale):
    p = get_preset(chapter, scale)
    assert p.scale == scale and dataclasses.is_dataclass(p)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.scale = "x"
    cost = p.projected_gpu_seconds()
    parts = sum(v for k, v in cost.items() if k != "total_s")
    assert cost["total_s"] == pytest.approx(parts) and all(v >= 0 for v in cost.values())


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_unknown_scale(chapter):
    with pytest.raises(ValueError, match="smoke"):
        get_preset(chapter, "huge")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_smoke_tiny_book_fits(chapter):
    s, b = get_preset(chapter, "smoke"), get_preset(chapter, "book")
    assert not s.comparable and b.comparable
    assert s.model.model_channels <= 16 and s.diffusion.steps <= 100
    assert b.projected_gpu_seconds()["total_s"] < BOOK_BUDGET_S[chapter]


def test_minority_paper_values():
    p = get_preset("minority_guidance", "paper")
    assert p.perturb_t == 605 and p.num_draws == 5 and p.num_levels == 100       # papers.md §6.2
    assert p.classifier.num_classes == 100 and p.classifier_train.steps == 60_000
    assert p.classifier_train.lr == 3e-4 and p.classifier_train.weight_decay == 0.05
    assert p.sample_steps == 250 and p.guidance_scale == 3.5                        # §6.3
    assert p.diffusion.noise_schedule == "linear" and p.diffusion.steps == 1000
    with pytest.raises(ValueError):
        dataclasses.replace(p, num_levels=10)   # classifier must have L outputs


def test_inversion_paper_values_and_lt_plan():
    p = get_preset("diffusion_inversion", "paper")
    assert (p.invert_lr, p.invert_wd, p.invert_group) == (3e-2, 1e-2, 100)        # papers.md §7.1
    assert (p.sample_steps, p.eta, p.guidance_g, p.interp_strength, p.emb_noise) == (100, 1.0, 2.0, 0.1, 0.1)
    assert p.clf_warmup == 1000 and p.clf_steps_scarce == 50_000                    # §7.3
    b = get_preset("diffusion_inversion", "book")
    assert b.lt_counts == (5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50)
    assert all(n + g == max(n, b.balance_to) for n, g in zip(b.lt_counts, b.lt_to_generate))
    assert b.balance_to == 1000 and b.lt_to_invert == 645 + 387 + 232 + 139 + 83 + 50   # classes below 1,000
    assert b.real_sizes[0] == b.scarce_images and b.lambda_grid[0] == 0.0
    assert get_preset("diffusion_inversion", "paper").lt_to_generate[0] == 0          # paper: fully balanced
    assert sum(get_preset("diffusion_inversion", "paper").lt_to_generate) == 10 * 5000 - sum(b.lt_counts)
    with pytest.raises(ValueError, match="real_sizes"):
        dataclasses.replace(b, real_sizes=(500, 1000))
    with pytest.raises(ValueError, match="lambda_grid"):
        dataclasses.replace(b, lambda_grid=(0.1, 1.0))
