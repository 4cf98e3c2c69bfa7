"""Small MLPs for the labs, several independent members evaluated as ONE batched network.

A lab compares arms over seeds; training each (arm, seed) model alone would pay the per-step overhead of the
trainer many times over for tiny matrix products. :class:`EnsembleMLP` holds ``members`` independent MLPs as
stacked weights and runs them with batched matrix products (``torch.baddbmm``): the members share nothing but the
call. Rows are **interleaved**: row ``i`` of a batch belongs to member ``i % members``. Concatenating whole
batches (``torch.cat([x, x])`` in :func:`lt_diffusion.guidance.cfg_model_fn`, ``x.repeat(L, 1)`` in
:class:`lt_diffusion.cbdm.CBDMRegularizer`) keeps every row with its member, so the engine's extension points run
on an ensemble unchanged. Because each member's loss depends only on its own weights, the gradient of the
batch mean is each member's own gradient (scaled by 1/members, which Adam's update ignores up to its ε):
training the ensemble is training each member alone, on its own batch.

The same class is the denoiser (``model(x_t, t, y=None, cond=None) -> eps (N, d)`` or ``(N, 2d)`` with a
learned variance) and the noisy classifier (``num_classes=None``, ``out_dim = K``: ``classifier(x_t, t) ->
logits (N, K)``). Conditioning, as the image models: a sinusoidal embedding of the timestep the diffusion
passes, and a learned label table with a null row ``num_classes`` (CFG / CBDM); a continuous ``cond`` vector
``(N, emb_dim)`` replaces the table's row (Diffusion Inversion learns such vectors per sample).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ["EnsembleMLP", "interleave", "deinterleave", "timestep_embedding"]


def interleave(xs: torch.Tensor) -> torch.Tensor:
    """``(M, n, ...)`` per-member tensors -> ``(M * n, ...)`` with row ``i`` from member ``i % M``."""
    return xs.transpose(0, 1).reshape(xs.shape[0] * xs.shape[1], *xs.shape[2:])


def deinterleave(x: torch.Tensor, members: int) -> torch.Tensor:
    """Inverse of :func:`interleave`: ``(M * n, ...)`` -> ``(M, n, ...)``."""
    if x.shape[0] % members:
        raise ValueError(f"a batch of {x.shape[0]} rows does not split into {members} members")
    return x.reshape(x.shape[0] // members, members, *x.shape[1:]).transpose(0, 1)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``(N, dim)`` of float timesteps ``(N,)`` (as in the image UNet and improved-diffusion)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class EnsembleMLP(nn.Module):
    """``members`` MLPs ``[x, emb(t), emb(y)] -> hidden x depth (SiLU) -> out_dim`` run as one network
    (the design of :class:`lt_diffusion.toy2d.ToyDenoiser`, stacked).

    Args:
        members: number of independent networks M.
        dim: input dimension d.
        out_dim: output dimension (default ``dim``: ε; ``2 * dim`` with a learned variance; K for a classifier).
        num_classes: real classes of the label table (rows ``num_classes + 1``, the last the null label); ``None``
            for a network without labels (a classifier, an unconditional denoiser).
        hidden, depth: width and number of hidden layers.
        emb_dim: size of the time embedding and of the label / ``cond`` vector.
        seeds: one initialisation seed per member (default ``0..M-1``): two ensembles whose member ``m`` has the
            same seed start from the same weights (the labs pair arms this way).
    """

    def __init__(self, members: int, dim: int, out_dim: Optional[int] = None, num_classes: Optional[int] = None,
                 hidden: int = 128, depth: int = 3, emb_dim: int = 32, seeds: Optional[Sequence[int]] = None):
        super().__init__()
        if members < 1 or depth < 1:
            raise ValueError(f"members and depth must be >= 1, got {members}, {depth}")
        self.members, self.dim, self.out_dim = int(members), int(dim), int(out_dim or dim)
        self.num_classes, self.hidden, self.depth, self.emb_dim = num_classes, int(hidden), int(depth), int(emb_dim)
        seeds = list(range(members)) if seeds is None else [int(s) for s in seeds]
        if len(seeds) != members:
            raise ValueError(f"{members} members need {members} seeds, got {seeds}")
        self.seeds = seeds
        widths = [dim + emb_dim + (emb_dim if num_classes is not None else 0)] + [hidden] * depth + [self.out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        gens = [torch.Generator().manual_seed(1_000_003 * s + 7) for s in seeds]
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            bound = 1.0 / math.sqrt(fan_in)   # nn.Linear's default initialisation, drawn per member
            w = torch.stack([(torch.rand(fan_in, fan_out, generator=g) * 2 - 1) * bound for g in gens])
            b = torch.stack([(torch.rand(1, fan_out, generator=g) * 2 - 1) * bound for g in gens])
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))
        if num_classes is not None:
            self.label_emb = nn.Parameter(torch.stack([torch.randn(num_classes + 1, emb_dim, generator=g)
                                                       for g in gens]))
        else:
            self.register_parameter("label_emb", None)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: Optional[torch.Tensor] = None,
                cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: ``(N, d)``; t: ``(N,)`` float timesteps; y: ``(N,)`` long labels (``num_classes`` = null) or None;
        cond: ``(N, emb_dim)`` vectors instead of labels. Returns ``(N, out_dim)`` in x's dtype."""
        M = self.members
        N = x.shape[0]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected x of shape (N, {self.dim}), got {tuple(x.shape)}")
        if N % M:
            raise ValueError(f"batch of {N} rows is not a multiple of the {M} members (rows are interleaved)")
        parts = [x.float(), timestep_embedding(t, self.emb_dim)]
        if self.num_classes is not None:
            if cond is not None:
                if y is not None:
                    raise ValueError("pass either y (label table) or cond (vectors), not both")
                if cond.shape != (N, self.emb_dim):
                    raise ValueError(f"cond must be ({N}, {self.emb_dim}), got {tuple(cond.shape)}")
                parts.append(cond.float())
            else:
                if y is None:
                    y = torch.full((N,), self.num_classes, dtype=torch.long, device=x.device)
                table = self.label_emb                                          # (M, C + 1, E)
                member = torch.arange(N, device=x.device) % M
                parts.append(table[member, y.long()])
        elif y is not None or cond is not None:
            raise ValueError("this network has no label input (num_classes=None)")
        h = deinterleave(torch.cat(parts, dim=1), M)                            # (M, n, in)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < len(self.weights) - 1:
                h = F.silu(h)
        return interleave(h).to(x.dtype)

    def member(self, m: int) -> "EnsembleMLP":
        """Member ``m`` alone, as a one-member :class:`EnsembleMLP` that shares its weights (views, no copy):
        for code that treats every row of a batch alike (one null vector for CFG, per-image embeddings)."""
        if not 0 <= m < self.members:
            raise ValueError(f"member {m} out of range [0, {self.members})")
        one = EnsembleMLP.__new__(EnsembleMLP)
        nn.Module.__init__(one)
        one.members, one.dim, one.out_dim = 1, self.dim, self.out_dim
        one.num_classes, one.hidden, one.depth, one.emb_dim = self.num_classes, self.hidden, self.depth, self.emb_dim
        one.seeds = [self.seeds[m]]
        one.weights = nn.ParameterList([nn.Parameter(w[m:m + 1], requires_grad=w.requires_grad) for w in self.weights])
        one.biases = nn.ParameterList([nn.Parameter(b[m:m + 1], requires_grad=b.requires_grad) for b in self.biases])
        if self.label_emb is not None:
            one.label_emb = nn.Parameter(self.label_emb[m:m + 1], requires_grad=self.label_emb.requires_grad)
        else:
            one.register_parameter("label_emb", None)
        one.train(self.training)
        return one

    def extra_repr(self) -> str:
        return (f"members={self.members}, dim={self.dim}, out_dim={self.out_dim}, num_classes={self.num_classes}, "
                f"hidden={self.hidden}, depth={self.depth}, emb_dim={self.emb_dim}")
