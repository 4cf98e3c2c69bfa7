"""The glue of chapters 03 and 04 (lt_diffusion.experiments.guidance_chapters): the listing helper
and the deterministic checks the chapters print (the two forms of classifier guidance, CFG by hand, the tilted
densities of the toy)."""
import pytest
import torch

from lt_diffusion import toy2d
from lt_diffusion.experiments import DiffusionSpec, build_diffusion
from lt_diffusion.experiments import guidance_chapters as gc
from lt_diffusion.guidance import cfg_model_fn
from lt_diffusion.presets import get_preset




def test_source_without_docstring_drops_only_the_docstring():
    src = gc.source_without_docstring(cfg_model_fn)
    assert src.startswith("def cfg_model_fn(") and '"""' not in src
    assert "guided = eps_cond + scale * (eps_cond - eps_uncond)" in src
    no_doc = gc.source_without_docstring(_no_docstring)   # has no docstring: unchanged
    assert no_doc == "def _no_docstring(x):\n    return 2 * x\n"


def _no_docstring(x):
    return 2 * x


@pytest.mark.parametrize("steps", [5, 25])
def test_the_two_forms_of_classifier_guidance_differ_by_one_over_sqrt_alpha(steps):
    spec = get_preset("adm", "smoke").arm("guided").diffusion
    out = gc.guidance_form_shifts(spec, steps, seed=0)
    assert len(out["t"]) == steps - 1 == len(out["ratio"])
    assert torch.allclose(out["ratio"], out["closed"], rtol=1e-6)
    assert (out["ratio"] > 1).all()
    assert all(a > 0 for a in out["shift"]["ancestral: Σ_t (condition_mean)"])


def test_cfg_by_hand_and_the_tilted_toy():
    mix = toy2d.three_class_mixture(radius=1.0, std=0.45)
    diffusion = build_diffusion(DiffusionSpec(steps=100, noise_schedule="cosine"))
    exact = toy2d.ExactEpsModel(mix, diffusion.alphas_cumprod, timestep_scale=10.0)
    diffs = gc.cfg_by_hand_check(mix, exact, 100, ws=(0.0, 2.0))
    assert set(diffs) == {0.0, 2.0} and max(diffs.values()) < 1e-10
    rows = gc.toy_tilted_rows(mix, ws=(0.0, 1.0, 3.0), n=81)
    post = [r["E[p(c|x)]"] for r in rows]
    spread = [r["spread"] for r in rows]
    assert post[0] < post[1] < post[2] <= 1.0
    assert spread[0] > spread[1] > spread[2] > 0
