"""Diffusion Inversion (Ch. 08): the class-table generator, embedding learning with a frozen model, sampling."""
import pytest
import torch

from lt_diffusion import inversion
from lt_diffusion.diffusion import create_diffusion
from lt_diffusion.experiments import DiffusionSpec, make_sampler
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
    # the one make_sampler: vectors (float) go to `cond`, labels (long) to the table; CFG in the "g" convention
    cfg = dict(sample_steps=5, method="ddim", eta=1.0, guidance_scale=2.0, convention="g", device="cpu")
    s = make_sampler(DiffusionSpec(steps=50), gen, null_cond=emb.mean(0), **cfg)
    out = generate(s, 3, 3, labels=cond, device="cpu", progress=False)
    assert out.shape == (3, 3, 32, 32) and out.dtype == torch.uint8
    s2 = make_sampler(DiffusionSpec(steps=50), gen, **cfg)   # ∅ = the table's null row (gen.num_classes)
    out2 = generate(s2, 2, 2, labels=torch.tensor([0, 1]), device="cpu", progress=False)
    assert out2.shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="null_cond"):
        s2(3, cond, torch.Generator().manual_seed(0))


def test_denoising_loss_closed_form_and_batching(gen):
    diff = create_diffusion(steps=50)
    g = torch.Generator().manual_seed(1)
    imgs = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8, generator=g)
    cond = torch.randn(5, 8, generator=g)
    ts = [0, 17, 49]
    out = inversion.denoising_loss(gen, diff, imgs, cond, ts, seed=3, device="cpu")
    assert out.shape == (5, 3) and out.dtype == torch.float32
    # the ε of timestep k is one CPU draw for all images: rebuild image 2 at t = 17 by hand (Eq. 4 and 14, DDPM)
    eps = torch.randn(imgs.shape, generator=torch.Generator().manual_seed(3 * 100_003 + 1))[2:3]
    x0 = imgs[2:3].float() / 127.5 - 1
    ab = float(diff.alphas_cumprod[17])
    x_t = ab ** 0.5 * x0 + (1 - ab) ** 0.5 * eps
    t_model = torch.tensor([17.0 * 1000 / 50 if diff.rescale_timesteps else 17.0])
    with torch.no_grad():
        manual = ((gen(x_t, t_model, cond=cond[2:3]) - eps) ** 2).mean()
    torch.testing.assert_close(out[2, 1], manual, rtol=1e-5, atol=1e-6)
    # independent of the batching, and a (D,) condition is broadcast to every image
    torch.testing.assert_close(inversion.denoising_loss(gen, diff, imgs, cond, ts, seed=3, batch_size=2,
                                                        device="cpu"), out)
    shared = inversion.denoising_loss(gen, diff, imgs, cond[0], ts, seed=3, device="cpu")
    torch.testing.assert_close(shared, inversion.denoising_loss(gen, diff, imgs, cond[0][None].expand(5, -1), ts,
                                                                seed=3, device="cpu"))
    with pytest.raises(ValueError, match="t_values"):
        inversion.denoising_loss(gen, diff, imgs, cond, [50], device="cpu")
    with pytest.raises(ValueError, match="rows"):
        inversion.denoising_loss(gen, diff, imgs, cond[:3], ts, device="cpu")


def test_inversion_lowers_the_fixed_noise_loss():
    torch.manual_seed(0)
    # a 16×16 model without attention: the check is about the optimisation, not the network's size
    cfg = get_model_config("smoke", cond_dim=8, model_channels=8, image_size=16, attention_resolutions=())
    g = inversion.ClassTableGenerator(cfg, num_classes=3).eval()
    with torch.no_grad():   # the zero-initialised output layers would hide the conditioning from the loss
        for p in g.parameters():
            if not p.any():
                p.normal_(0, 0.05)
    diff = create_diffusion(steps=50)
    imgs = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    init = inversion.initial_embeddings(g, None, 4, "mean")
    res = inversion.learn_embeddings(g, diff, imgs, init, steps=40, group_size=4, lr=0.1, device="cpu", seed=0)
    ts = list(range(0, 50, 5))
    before = inversion.denoising_loss(g, diff, imgs, init, ts, seed=7, device="cpu").mean()
    after = inversion.denoising_loss(g, diff, imgs, res.embeddings, ts, seed=7, device="cpu").mean()
    assert after < before   # the vectors fit their own images on (t, ε) never used during the optimisation
