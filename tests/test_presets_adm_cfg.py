"""Presets of chapters 03 (ADM) and 04 (CFG): all scales validate, smoke is tiny, paper matches the papers."""
import dataclasses

import pytest

from lt_diffusion.presets import SCALES, get_preset
from lt_diffusion.presets.adm import ABLATION_VARIANTS, ablation_configs


@pytest.mark.parametrize("chapter", ["adm", "cfg"])
@pytest.mark.parametrize("scale", SCALES)
def test_presets_validate(chapter, scale):
    p = get_preset(chapter, scale)
    assert p.scale == scale
    assert dataclasses.is_dataclass(p)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.scale = "x"
    cost = p.projected_gpu_seconds()
    assert cost["total_s"] > 0
    if scale == "book":
        assert cost["total_s"] < 7.5 * 60      # inside one 9-minute device call on one H100, with margin
    assert p.model.num_classes == 10 and p.classifier.num_classes == 10


@pytest.mark.parametrize("chapter", ["adm", "cfg"])
def test_unknown_scale_raises(chapter):
    with pytest.raises(ValueError, match="smoke"):
        get_preset(chapter, "huge")


def test_smoke_is_tiny():
    adm, cfg = get_preset("adm", "smoke"), get_preset("cfg", "smoke")
    for p in (adm, cfg):
        assert p.model.model_channels <= 16
        assert p.train.steps <= 10 and p.classifier_train.steps <= 10
        assert p.eval.num_samples <= 64 and not p.eval.comparable
        assert p.eval.fid_reference_images is not None and p.eval.fid_reference_images <= 64
    assert len(adm.ablation_variants) <= 2 and adm.ablation_eval.num_samples <= 64
    assert adm.ablation_train.steps <= 10
    assert cfg.toy.mlp_steps <= 100 and cfg.toy.samples_per_class <= 200


def test_ablation_variants_change_one_thing():
    base = get_preset("adm", "book").ablation_base
    cfgs = ablation_configs(base)
    assert list(cfgs) == list(ABLATION_VARIANTS)
    diff = lambda c: {f.name for f in dataclasses.fields(c) if getattr(c, f.name) != getattr(base, f.name)}  # noqa
    assert diff(cfgs["baseline"]) == set()
    assert diff(cfgs["heads64"]) == {"num_head_channels"} and cfgs["heads64"].num_head_channels == 64
    assert diff(cfgs["attn_32_16_8"]) == {"attention_resolutions"}
    assert cfgs["attn_32_16_8"].attention_resolutions == (32, 16, 8)
    assert diff(cfgs["biggan_updown"]) == {"resblock_updown"}
    assert diff(cfgs["rescale_1_sqrt2"]) == {"resblock_rescale"}
    assert diff(cfgs["add_emb"]) == {"use_scale_shift_norm"} and not cfgs["add_emb"].use_scale_shift_norm
    assert diff(cfgs["wide_shallow"]) == {"model_channels", "num_res_blocks"}
    assert base.use_scale_shift_norm and base.num_heads == 1 and not base.resblock_updown
    with pytest.raises(ValueError):
        ablation_configs(base, variants=("nope",))


def test_adm_paper_matches_guided_diffusion():
    p = get_preset("adm", "paper")
    m = p.model
    # ADM's smallest official model flags (papers.md §2.1) at 32x32 with the DDPM-IP channel multipliers
    assert m.attention_resolutions == (32, 16, 8) and m.num_head_channels == 64
    assert m.resblock_updown and m.use_scale_shift_norm and m.learn_sigma
    assert m.model_channels == 128 and m.num_res_blocks == 3 and m.dropout == 0.1
    assert m.channel_mult == (1, 2, 2, 2)
    assert p.diffusion.steps == 1000 and p.diffusion.noise_schedule == "cosine"
    assert p.diffusion.objective == "hybrid" and not p.diffusion.rescale_learned_sigmas
    c = p.classifier   # classifier_defaults + scripts/classifier_train.py
    assert (c.model_channels, c.num_res_blocks, c.attention_resolutions) == (128, 2, (32, 16, 8))
    assert c.pool == "attention" and c.use_scale_shift_norm and c.resblock_updown
    assert p.classifier_train.steps == 150_000 and p.classifier_train.lr == 3e-4
    assert p.eval.sample_steps == 250 and p.eval.num_samples == 50_000


def test_adm_book_runs_the_whole_ablation_and_both_guidance_forms():
    p = get_preset("adm", "book")
    assert p.ablation_variants == ABLATION_VARIANTS
    assert p.ablation_max_steps >= p.ablation_train.steps
    assert 0.0 in p.ancestral_scales and any(s > 0 for s in p.ancestral_scales)
    assert set(p.ancestral_scales) <= set(p.guidance_scales_uncond)   # each ancestral point has a DDIM twin
    # the ancestral arm is charged: dropping it lowers the projection by exactly its term
    cost = p.projected_gpu_seconds()
    bare = dataclasses.replace(p, ancestral_scales=()).projected_gpu_seconds()
    assert cost["ancestral_sample_s"] > 0 and bare["ancestral_sample_s"] == 0
    assert cost["total_s"] - bare["total_s"] > cost["ancestral_sample_s"]   # + its FID features and distances


def test_cfg_paper_and_conventions():
    p = get_preset("cfg", "paper")
    assert set(p.p_unconds) >= {0.1, 0.2}
    assert 0.0 in p.ws and max(p.ws) >= 4.0
    assert p.model.num_classes == 10 and p.eval.num_samples == 50_000
    assert p.g_of_w(0.0) == 1.0 and p.g_of_w(2.0) == 3.0
    book = get_preset("cfg", "book")
    assert {0.1, 0.2} <= set(book.p_unconds)
    assert len(book.ws) >= 4 and len([s for s in book.classifier_scales if s > 0]) >= 2
