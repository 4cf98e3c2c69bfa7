"""Pieces of the labs: the batched ensemble, exact metrics against closed forms, claims, cache keys (fast)."""
import math
import operator

import pytest
import torch

from lt_diffusion.lab import metrics
from lt_diffusion.lab.cache import cache_key
from lt_diffusion.lab.denoiser import EnsembleMLP, deinterleave, interleave
from lt_diffusion.lab.engine import LabRecipe, MemberBatches, make_diffusion
from lt_diffusion.lab.result import LabResult, claim, summary_sentence
from lt_diffusion.lab.world import longtail_world


pytestmark = pytest.mark.usefixtures("one_thread")   # tiny models: one intra-op thread (conftest.py)


def test_interleave_round_trip():
    x = torch.arange(24.0).reshape(3, 4, 2)
    flat = interleave(x)
    assert flat.shape == (12, 2) and torch.equal(flat[1], x[1, 0]) and torch.equal(flat[3], x[0, 1])
    assert torch.equal(deinterleave(flat, 3), x)
    with pytest.raises(ValueError, match="members"):
        deinterleave(torch.zeros(7, 2), 3)


def test_members_are_independent_networks():
    net = EnsembleMLP(3, 8, 8, 10, hidden=16, depth=2, emb_dim=8, seeds=[5, 6, 5])
    x, t, y = torch.randn(12, 8), torch.rand(12) * 1000, torch.randint(0, 11, (12,))
    out = net(x, t, y=y)
    # members 0 and 2 share a seed, hence their initial weights
    assert torch.equal(net.weights[0][0], net.weights[0][2]) and not torch.equal(net.weights[0][0], net.weights[0][1])
    # the loss of member 1's rows has no gradient on members 0 and 2
    out[1::3].pow(2).sum().backward()
    for p in list(net.weights) + [net.label_emb]:
        assert p.grad[0].abs().sum() == 0 and p.grad[2].abs().sum() == 0 and p.grad[1].abs().sum() > 0
    # a member on its own computes the same function; whole-batch concatenation keeps rows with their member
    one = net.member(1)
    torch.testing.assert_close(one(x[1::3], t[1::3], y=y[1::3]), out[1::3].detach())
    doubled = net(torch.cat([x, x]), torch.cat([t, t]), y=torch.cat([y, y]))
    torch.testing.assert_close(doubled[:12], out.detach())
    torch.testing.assert_close(doubled[12:], out.detach())
    with pytest.raises(ValueError, match="multiple"):
        net(x[:7], t[:7])


def test_batches_pair_members_with_equal_seeds():
    data = [(torch.randn(50, 2), torch.randint(0, 3, (50,))) for _ in range(2)]
    batches = MemberBatches([data[0], data[1], data[0]], 4, [7, 8, 7])
    assert batches.batch_size == 12
    x, y = next(batches)
    parts = deinterleave(x, 3)
    assert x.shape == (12, 2) and torch.equal(parts[0], parts[2]) and not torch.equal(parts[0], parts[1])


def test_recipe_switches_on_the_papers_extension_points():
    d = make_diffusion(LabRecipe(p2_gamma=1.0, cbdm_tau=1.0), class_counts=[5, 3, 2] + [1] * 7)
    assert d.loss_weight is not None and d.loss_weight.gamma == 1.0
    assert d.regularizer is not None and d.regularizer.tau == 1.0
    plain = make_diffusion(LabRecipe())
    assert plain.loss_weight is None and plain.regularizer is None and plain.rescale_timesteps
    assert len(make_diffusion(LabRecipe(), "ddim25").timestep_map) == 25


def test_sliced_wasserstein_closed_forms():
    x = torch.randn(2000, 8, generator=torch.Generator().manual_seed(0))
    assert metrics.sliced_wasserstein(x, x) == 0.0
    # a constant shift c: each projection moves by theta.c, and E[(theta.c)^2] = |c|^2 / d for random unit theta
    c = torch.tensor([0.3, -0.1, 0.2, 0.0, 0.0, 0.1, 0.0, 0.0])
    sw = metrics.sliced_wasserstein(x + c, x, projections=1024)
    assert sw == pytest.approx(float(c.norm()) / math.sqrt(8), rel=0.1)
    with pytest.raises(ValueError, match="equal-size"):
        metrics.sliced_wasserstein(x, x[:10])


def test_exact_eps_error_of_the_exact_model_is_zero():
    from lt_diffusion.toy2d import ExactEpsModel

    world = longtail_world()
    d = make_diffusion(LabRecipe())
    exact = ExactEpsModel(world.mixture, d.alphas_cumprod, 1.0).double()
    err = metrics.eps_error(exact, d, world, 1, [0, 100, 999], 200)
    assert err.shape == (1, 3) and float(err.max()) < 1e-10   # float32 inputs, float64 maths


def test_claims_need_three_seeds_and_carry_the_verdict():
    c = claim("x", "m", {"a": [1.0, 1.1, 1.2], "b": [2.0, 2.1, 2.2]}, "b", "a", False, 3.0, "b beats a")
    assert c["verdict"] == "yes" and c["gain"] == pytest.approx(1.0) and c["spread"] == pytest.approx(0.2)
    c2 = claim("x", "m", {"a": [1.0, 1.1, 1.2], "b": [1.0, 1.0, 1.1]}, "b", "a", False, 3.0, "b beats a again")
    assert c2["verdict"] == "no"
    assert summary_sentence([c, c2]) == ("Reproduced beyond the seed spread: b beats a. "
                                         "Did not reproduce: b beats a again.")
    with pytest.raises(ValueError, match="3 seeds"):
        claim("x", "m", {"a": [1.0, 2.0], "b": [2.0, 3.0]}, "b", "a", False, 1.0, "s")
    with pytest.raises(ValueError, match="not in arms"):
        claim("x", "m", {"a": [1.0] * 3}, "b", "a", False, 1.0, "s")
    res = LabResult("p2", "t", "q?", "d", [c, c2], {}, [0, 1, 2], 3.0)
    back = LabResult.from_json(res.to_json())
    assert back.summary == res.summary and back.verdicts() == {"b beats a": "yes", "b beats a again": "no"}


def test_cache_keys_follow_name_seeds_and_config():
    k = cache_key("lab-p2", [0, 1, 2], {"a": 1})
    assert k == cache_key("lab-p2", [0, 1, 2], {"a": 1})
    assert k != cache_key("lab-p2", [0, 1, 3], {"a": 1}) != cache_key("lab-p2", [0, 1, 2], {"a": 2})
    assert k.startswith("lab-p2-")


def test_arms_trained_in_worker_processes_equal_the_arms_trained_here(tmp_path, monkeypatch):
    """train_arms' side-by-side processes change the wall time, not one bit of the networks."""
    from lt_diffusion.lab.engine import train_arms
    from lt_diffusion.lab.jobs import lab_workers, run_jobs

    monkeypatch.setenv("LT_DIFFUSION_LAB_CACHE", "0")   # nothing read back: both paths train
    world = longtail_world()
    small = LabRecipe(hidden=16, depth=1, emb_dim=8, steps=12, batch_size=16, warmup_steps=2)
    recipes = [small, small.replace(p2_gamma=1.0), small.replace(cbdm_tau=1.0), small]
    here = train_arms(recipes, world, [0, 1, 2], workers=1)
    apart = train_arms(recipes, world, [0, 1, 2], workers=2)
    for a, b in zip(here, apart):
        assert a.recipe == b.recipe and a.history[-1]["loss"] == b.history[-1]["loss"]
        for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
            assert torch.equal(x, y), name
    assert not torch.equal(here[0].model.weights[0], here[1].model.weights[0])   # the arms differ
    assert torch.equal(here[0].model.weights[0], here[3].model.weights[0])       # a repeated recipe trains once
    # results come back in the order of the jobs, whatever order the costs start them in
    assert run_jobs(operator.sub, [(5, 1), (9, 2), (4, 4)], cost=[0.0, 2.0, 1.0], workers=2) == [4, 7, 0]
    monkeypatch.setenv("LT_DIFFUSION_LAB_WORKERS", "3")
    assert lab_workers() == 3
    for bad in ("0", "two"):
        monkeypatch.setenv("LT_DIFFUSION_LAB_WORKERS", bad)
        with pytest.raises(ValueError, match="LT_DIFFUSION_LAB_WORKERS"):
            lab_workers()
