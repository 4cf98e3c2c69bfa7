"""Diffusion Inversion (Zhou, Sahak & Ba 2023; Ch. 08) on a pixel-space model of our own.

The paper freezes Stable Diffusion and, for every training image x_i, learns its own conditioning c_i — the
tensor that normally comes out of the text encoder — by minimising the ordinary denoising loss

    c_i = argmin_c  E_{t, ε} || ε − ε_θ(sqrt(ᾱ_t) x_i + sqrt(1 − ᾱ_t) ε, t, c) ||²          (θ frozen)

(the official ``src/pipeline_emb.py``: a bias-free linear map of a one-hot image index, AdamW, constant lr 3e-2). New training data
are then sampled from perturbed and interpolated vectors, c = (1 − s) c_i + s c_j + λ ε with j of the same
class, with classifier-free guidance whose *unconditional* input is the **mean of all learned vectors**
(not the null prompt), which keeps the guided sampler inside the region the learned vectors occupy (§7.2).

Stable Diffusion is not available here. :class:`ClassTableGenerator` is the stand-in: the engine's UNet with a
continuous ``cond`` input (the text-encoder-output analogue), whose conditioning during pretraining comes
from a learned per-class vector table (the "text encoder" of ten one-word prompts) with a null row for CFG
dropout. It is pretrained as an arm of kind ``"generator"`` by :func:`lt_diffusion.experiments.train_model`
(label dropout to the null row is ``TrainConfig.p_uncond``), and sampled by
:func:`lt_diffusion.experiments.make_sampler` with continuous conditions and CFG (``convention="g"``, ``null_cond`` =
:func:`mean_embedding`). After pretraining the UNet and the table are frozen and only the per-image vectors are
learned.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import nn

__all__ = ["ClassTableGenerator", "InversionResult", "initial_embeddings", "learn_embeddings", "denoising_loss",
           "mean_embedding", "perturb", "interpolate", "variation_conditions"]


class ClassTableGenerator(nn.Module):
    """A UNet conditioned on a vector c ∈ R^D, with a class table that supplies c for labelled pretraining.

    ``forward(x, t, y=None, cond=None)``: with ``cond`` (B, D) the table is bypassed (inversion, sampling from
    learned vectors); otherwise ``cond = table[y]``, and ``y=None`` or ``y = num_classes`` selects the null row
    (CFG dropout during pretraining, the unconditional branch of plain class-conditional CFG).

    Args:
        unet_config: a :class:`lt_diffusion.models.UNetConfig` with ``cond_dim = D`` and ``num_classes=None``.
        num_classes: real classes of the table (it has ``num_classes + 1`` rows; the last is null).
    """

    def __init__(self, unet_config, num_classes: int = 10):
        super().__init__()
        from .models import UNetModel

        if unet_config.cond_dim is None or unet_config.num_classes is not None:
            raise ValueError("ClassTableGenerator needs a UNetConfig with cond_dim set and num_classes=None "
                             f"(got cond_dim={unet_config.cond_dim}, num_classes={unet_config.num_classes})")
        self.unet = UNetModel(unet_config)
        self.config = unet_config            # image size / channels for samplers
        self.num_classes = int(num_classes)
        self.cond_dim = int(unet_config.cond_dim)
        self.class_table = nn.Embedding(self.num_classes + 1, self.cond_dim)

    @property
    def class_vectors(self) -> torch.Tensor:
        """(num_classes, D): the table rows of the real classes."""
        return self.class_table.weight[: self.num_classes]

    @property
    def null_vector(self) -> torch.Tensor:
        """(D,): the null row (the unconditional input seen during pretraining)."""
        return self.class_table.weight[self.num_classes]

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: Optional[torch.Tensor] = None,
                cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        if cond is None:
            if y is None:
                y = torch.full((x.shape[0],), self.num_classes, dtype=torch.long, device=x.device)
            cond = self.class_table(y)
        elif y is not None:
            raise ValueError("pass either y (class table) or cond (a vector), not both")
        return self.unet(x, t, cond=cond)


@dataclass
class InversionResult:
    """What :func:`learn_embeddings` returns.

    Attributes:
        embeddings: (N, D) float32 learned vectors c_i (CPU), in the order of the images.
        loss: (num_groups, steps) ε-MSE of each group at each step (CPU), for loss curves.
        wall_s, images_per_s: optimisation time and image-steps per second.
    """

    embeddings: torch.Tensor
    loss: torch.Tensor
    wall_s: float
    images_per_s: float
    extras: Dict[str, float] = field(default_factory=dict)


def initial_embeddings(model: ClassTableGenerator, labels: Optional[torch.Tensor], n: int, init: str = "mean",
                       noise: float = 0.0, seed: int = 0) -> torch.Tensor:
    """Starting vectors (n, D) for inversion.

    ``init``: ``"mean"`` — the mean class vector for every image (uses no label, like the paper's label-free
    inversion); ``"class"`` — the table row of the image's class (a warm start for short budgets);
    ``"null"`` — the null row. ``noise``: std of Gaussian jitter added (seeded by ``seed``).
    """
    with torch.no_grad():
        if init == "mean":
            base = model.class_vectors.mean(0, keepdim=True).expand(n, -1)
        elif init == "class":
            if labels is None:
                raise ValueError("init='class' needs the images' labels")
            base = model.class_vectors[labels.to(model.class_table.weight.device).long()]
        elif init == "null":
            base = model.null_vector[None].expand(n, -1)
        else:
            raise ValueError(f"init must be 'mean', 'class' or 'null', got {init!r}")
        out = base.detach().float().cpu().clone()
    if noise > 0:
        g = torch.Generator().manual_seed(seed)
        out += noise * torch.randn(out.shape, generator=g)
    return out


def learn_embeddings(model: Callable, diffusion, images: torch.Tensor, init: torch.Tensor, *, steps: int,
                     group_size: int, lr: float = 3e-2, weight_decay: float = 1e-2,
                     betas: Tuple[float, float] = (0.9, 0.999), bf16: bool = True, device=None,
                     seed: int = 0) -> InversionResult:
    """Stage 1: learn one conditioning vector per image with the generator frozen (chapter 08, Eq. {eq}`di-inversion`).

    The images are split into groups of ``group_size`` (the official code inverts groups of 100 with one run
    each); within a group every step uses every image once, with its own t ~ U{0..T−1} and ε, and the loss is
    the engine's ε-MSE (``diffusion.training_losses`` with ``model_kwargs={"cond": c}``), so the gradient reaches
    only the vectors. AdamW with a constant learning rate (official: lr 3e-2, weight decay 1e-2, no warm-up).

    Args:
        model: the frozen generator ``model(x_t, t, cond=c)``; its parameters are set to ``requires_grad=False``.
        images: uint8 (N, C, H, W). init: (N, D) starting vectors (:func:`initial_embeddings`).
        steps: optimiser steps per group. seed: t and ε draws.
    """
    from .data import to_model_range

    if init.shape[0] != images.shape[0]:
        raise ValueError(f"init has {init.shape[0]} rows for {images.shape[0]} images")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.requires_grad_(False)
    was_training = model.training
    model.eval()
    use_bf16 = bf16 and device.type == "cuda"
    T = diffusion.num_timesteps
    out = torch.empty(init.shape, dtype=torch.float32)
    losses = []
    g = torch.Generator(device=device).manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for start in range(0, images.shape[0], group_size):
        x0 = to_model_range(images[start:start + group_size].to(device))
        if device.type == "cuda":
            x0 = x0.contiguous(memory_format=torch.channels_last)
        c = init[start:start + group_size].to(device).float().clone().requires_grad_(True)
        opt = torch.optim.AdamW([c], lr=lr, betas=betas, weight_decay=weight_decay)
        curve = torch.zeros(steps, device=device)
        for step in range(steps):
            t = torch.randint(0, T, (x0.shape[0],), generator=g, device=device)
            noise = torch.randn(x0.shape, generator=g, device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                terms = diffusion.training_losses(model, x0, t, model_kwargs={"cond": c}, noise=noise)
            loss = terms["loss"].float().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            curve[step] = loss.detach()
        out[start:start + group_size] = c.detach().float().cpu()
        losses.append(curve.cpu())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - t0
    model.train(was_training)
    return InversionResult(out, torch.stack(losses), wall, images.shape[0] * steps / max(wall, 1e-9))


@torch.no_grad()
def denoising_loss(model: Callable, diffusion, images: torch.Tensor, cond: torch.Tensor,
                   t_values: Union[List[int], torch.Tensor], *, seed: int = 0, batch_size: int = 1000,
                   bf16: bool = True, device=None) -> torch.Tensor:
    """The objective of stage 1 (the ε-MSE inside the argmin of the module docstring) at fixed timesteps.

    Image n at timestep ``t_values[k]`` is noised with an ε that depends only on ``(seed, k, n)``, so two calls
    with different ``cond`` see the same (x_t, t, ε) and their difference is due to the conditioning alone
    (common random numbers), unlike the one-random-t-per-step curve of :func:`learn_embeddings`.

    Args:
        model: ``model(x_t, t, cond=c)``, e.g. a frozen :class:`ClassTableGenerator`.
        images: uint8 (N, C, H, W). cond: (N, D) one vector per image, or (D,) the same for all.
        t_values: K timesteps in ``[0, T)``. seed: ε draws (independent of ``batch_size``).

    Returns:
        (N, K) float32 (CPU): the per-image ε-MSE at each timestep.
    """
    from .data import to_model_range

    t_values = torch.as_tensor(t_values, dtype=torch.long).flatten()
    T = diffusion.num_timesteps
    if t_values.numel() == 0 or int(t_values.min()) < 0 or int(t_values.max()) >= T:
        raise ValueError(f"t_values must be non-empty timesteps in [0, {T}), got {t_values.tolist()}")
    n = images.shape[0]
    if cond.ndim == 1:
        cond = cond[None].expand(n, -1)
    if cond.shape[0] != n:
        raise ValueError(f"cond has {cond.shape[0]} rows for {n} images; pass (N, D) or one (D,) vector")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    use_bf16 = bf16 and device.type == "cuda"
    was = model.training
    model.eval()
    out = torch.empty(n, t_values.numel())
    for k, t in enumerate(t_values.tolist()):
        # one CPU draw per timestep for all N images: the noise does not depend on the batching below
        eps_all = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed * 100_003 + k))
        for s in range(0, n, batch_size):
            x0 = to_model_range(images[s:s + batch_size].to(device))
            eps = eps_all[s:s + batch_size].to(device)
            tt = torch.full((x0.shape[0],), t, dtype=torch.long, device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                terms = diffusion.training_losses(model, x0, tt, model_kwargs={"cond": cond[s:s + batch_size]
                                                                               .to(device).float()}, noise=eps)
            if "mse" not in terms:
                raise ValueError("denoising_loss needs a diffusion with an ε-MSE term (not loss_type 'vlb')")
            out[s:s + batch_size, k] = terms["mse"].float().cpu()
    model.train(was)
    return out


def mean_embedding(embeddings: torch.Tensor) -> torch.Tensor:
    """(D,): the mean of the learned vectors, the unconditional input of the paper's guided sampler (§7.2)."""
    return embeddings.float().mean(0)


def perturb(c: torch.Tensor, lam: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Gaussian perturbation c + λ ε, ε ~ N(0, I) (the official ``emb_noise``); c: (B, D)."""
    return c + lam * torch.randn(c.shape, generator=generator, dtype=c.dtype, device=c.device)


def interpolate(c1: torch.Tensor, c2: torch.Tensor, alpha: Union[float, torch.Tensor]) -> torch.Tensor:
    """α c1 + (1 − α) c2 (linear in the one-hot index space of the official code, hence in c)."""
    return alpha * c1 + (1.0 - alpha) * c2


def variation_conditions(embeddings: torch.Tensor, labels: torch.Tensor, wanted: torch.Tensor, *,
                         strength: float = 0.1, noise: float = 0.1, seed: int = 0
                         ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Conditions for new samples of the classes ``wanted`` (M,), as ``interpolation_sample`` builds them (chapter 08,
    Eq. {eq}`di-variation`):
    for each, a random image i of that class and a random j of the same class,
    c = interpolate(c_j, c_i, s) + λ ε = (1 − s) c_i + s c_j + λ ε.

    Returns ``(cond (M, D), source index i (M,))``. Raises if a wanted class has no inverted image.
    """
    g = torch.Generator().manual_seed(seed)
    labels = labels.cpu().long()
    wanted = wanted.cpu().long()
    cond = torch.empty(wanted.shape[0], embeddings.shape[1])
    src = torch.empty(wanted.shape[0], dtype=torch.long)
    for c in wanted.unique().tolist():
        pool = (labels == c).nonzero().flatten()
        if pool.numel() == 0:
            raise ValueError(f"no inverted image of class {c}")
        rows = (wanted == c).nonzero().flatten()
        i = pool[torch.randint(0, pool.numel(), (rows.numel(),), generator=g)]
        j = pool[torch.randint(0, pool.numel(), (rows.numel(),), generator=g)]
        cond[rows] = interpolate(embeddings[j].float(), embeddings[i].float(), strength)
        src[rows] = i
    return perturb(cond, noise, g), src
