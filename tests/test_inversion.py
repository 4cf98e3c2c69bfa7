"""Diffusion Inversion (Ch. 08): the class-table generator, embedding learning with a frozen model, sampling."""
import pytest
import torch

from lt_diffusion import inversion
from lt_diffusion.diffusion import create_diffusion
from lt_diffusion.models import get_model_config
from lt_diffusion.sampling import generate


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    g = inversion.ClassTableGenerator(get_model_config("smoke", cond_dim=8, model_channels=8), num_classes=3)
    return g.eval()


def test_generator_conditioning_paths(gen):
    x = torch.randn(2, 3, 32, 32)
    t = torch.tensor([3.0, 500.0])
    y = torch.tensor([1, 2])
    torch.testing.assert_close(gen(x, t, y=y), gen(x, t, cond=gen.class_table(y)))
    torch.testing.assert_close(gen(x, t), gen(x, t, y=torch.tensor([3, 3])))   # None = null row
    with pytest.raises(ValueError):
        gen(x, t, y=y, cond=gen.class_table(y))
    with pytest.raises(ValueError):
        inversion.ClassTableGenerator(get_model_config("smoke"), 3)


def test_initial_embeddings(gen):
    y = torch.tensor([0, 2, 1])
    torch.testing.assert_close(inversion.initial_embeddings(gen, y, 3, "class"), gen.class_vectors[y].detach())
    m = inversion.initial_embeddings(gen, None, 3, "mean")
    torch.testing.assert_close(m[0], gen.class_vectors.mean(0).detach())
    with pytest.raises(ValueError):
        inversion.initial_embeddings(gen, None, 3, "class")


def test_learn_embeddings_moves_only_the_vectors(gen):
    diff = create_diffusion(steps=50)
    imgs = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    before = [p.detach().clone() for p in gen.parameters()]
    init = inversion.initial_embeddings(gen, torch.tensor([0, 1, 2, 0, 1, 2]), 6, "class")
    res = inversion.learn_embeddings(gen, diff, imgs, init, steps=3, group_size=4, lr=0.05, device="cpu")
    assert res.embeddings.shape == (6, 8) and res.loss.shape == (2, 3)
    assert float((res.embeddings - init).abs().max()) > 0
    assert all(torch.equal(a, b) for a, b in zip(before, gen.parameters()))
    assert not any(p.requires_grad for p in gen.parameters())


def test_conditions_and_sampling(gen):
    emb = torch.randn(6, 8)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    cond, src = inversion.variation_conditions(emb, labels, torch.tensor([2, 0, 0]), strength=0.0, noise=0.0)
    assert labels[src].tolist() == [2, 0, 0]
    torch.testing.assert_close(cond, emb[src])
    with pytest.raises(ValueError):
        inversion.variation_conditions(emb, labels, torch.tensor([5]))
    torch.testing.assert_close(inversion.interpolate(emb[:1], emb[1:2], 0.25), 0.25 * emb[:1] + 0.75 * emb[1:2])
    assert inversion.mean_embedding(emb).shape == (8,)
    diff = create_diffusion(steps=50, timestep_respacing="5")
    s = inversion.make_cond_sampler(diff, gen, null_cond=emb.mean(0), device="cpu")
    out = generate(s, 3, 3, labels=cond, device="cpu", progress=False)
    assert out.shape == (3, 3, 32, 32) and out.dtype == torch.uint8
    s2 = inversion.make_cond_sampler(diff, gen, key="y", device="cpu")
    out2 = generate(s2, 2, 2, labels=torch.tensor([0, 1]), device="cpu", progress=False)
    assert out2.shape == (2, 3, 32, 32)
    with pytest.raises(ValueError):
        inversion.make_cond_sampler(diff, gen, key="cond")
