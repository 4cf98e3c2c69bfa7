"""Chapter 07's package stages (lt_diffusion.experiments.minority_chapter): the exact toy and the claim checks."""
import torch

from lt_diffusion.experiments import minority_chapter as mc


def test_toy_posterior_mean_three_ways_and_the_bias():
    toy = mc.mixture_toy(seed=0, n=50)
    assert torch.allclose(toy.x0_hat, toy.tweedie, atol=1e-8)
    assert torch.allclose(toy.x0_hat, toy.mixture_form, atol=1e-8)
    # at t* the noise hides the mode: the rare mode's responsibility at rare points is well below 1
    assert float(toy.resp[toy.n:, 1].mean()) < 0.9
    scores = mc.toy_scores(toy, toy.x0)
    assert scores.shape == (2 * toy.n,)
    assert float(scores[toy.n:].mean()) > 2 * float(scores[:toy.n].mean())


def test_toy_rare_weight_moves_the_prior():
    common = mc.mixture_toy(seed=0, n=50, rare_weight=0.05)
    balanced = mc.mixture_toy(seed=0, n=50, rare_weight=0.5)
    assert float(balanced.resp[50:, 1].mean()) > float(common.resp[50:, 1].mean())


def test_cifar_claims_read_the_rows():
    def row(name, knn, lof, ms):
        return {"set": name, "AvgkNN": knn, "LOF": lof, "minority score": ms}

    main = [row("unguided", 1.0, 1.0, 0.5), row("level 9, w=3.5", 2.0, 1.5, 0.7), row("level 0, w=3.5", 0.5, 0.9, 0.4)]
    sweep = [row("w=0", 1.0, 1.0, 0.5), row("w=1", 1.5, 1.1, 0.6), row("w=7", 1.2, 1.2, 0.6)]
    claims = dict(mc.cifar_claims(main, sweep, {"unguided": 0.1, "level 9, w=3.5": 0.05, "level 0, w=3.5": 0.1}))
    assert claims["top-level guidance raises AvgkNN over unguided"] is True
    assert claims["level-0 guidance lowers AvgkNN below unguided"] is True
    assert claims["AvgkNN grows with w along the sweep"] is False
    assert claims["top-level guidance raises the tail-class share"] is False
