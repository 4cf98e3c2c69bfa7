"""Gaussian-mixture toys with exact scores under the forward process (chapters 04 CFG, 07 minority guidance).

A mixture of Gaussian *components* ``k`` with weights ``pi_k``, means ``mu_k`` and covariances ``Sigma_k``;
each component carries a class label (several components may share one label, so a class can itself be
multi-modal, e.g. a common mode plus a rare one). Under the variance-preserving forward process
``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` every component stays Gaussian:

    p_t(x | k) = N(x; sqrt(abar_t) mu_k, abar_t Sigma_k + (1 - abar_t) I)

so the class-conditional density ``p_t(x | c)`` and the marginal ``p_t(x)`` are mixtures with known
parameters, their scores are closed-form, and the *exact* noise prediction of an ideal denoiser is
``eps*(x_t, t, c) = -sqrt(1 - abar_t) grad log p_t(x_t | c)`` (Tweedie / denoising score matching).
The null label ``num_classes`` (as in the image models) selects the marginal.

:class:`ExactEpsModel` wraps these scores in the model signature ``model(x_t, t, y=None, cond=None)`` so
the package's samplers and :func:`lt_diffusion.guidance.cfg_model_fn` run on it unchanged, and
:class:`ToyDenoiser` is a small MLP trained on the same data with label dropout, for comparing a
learned denoiser with the exact one. Everything is written for any dimension ``d``; the chapters use 2-D.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

__all__ = [
    "GaussianMixture",
    "three_class_mixture",
    "ExactEpsModel",
    "ToyDenoiser",
    "train_toy_denoiser",
    "density_grid",
    "guided_sample_stats",
]

Tensorish = Union[torch.Tensor, np.ndarray, Sequence]


def _as_abar(alpha_bar, batch: int, like: torch.Tensor) -> torch.Tensor:
    """alpha_bar as a (B,) float64 tensor (scalar broadcast)."""
    a = torch.as_tensor(alpha_bar, dtype=torch.float64, device=like.device)
    if a.ndim == 0:
        a = a.expand(batch)
    return a


class GaussianMixture:
    """A Gaussian mixture with labelled components and exact densities/scores at any noise level.

    weights: (K,) positive (normalised here); means: (K, d); covs: (K, d, d) symmetric positive definite;
    labels: (K,) long class of each component (default ``arange(K)``: one component per class).
    All maths in float64 on CPU.
    """

    def __init__(self, weights: Tensorish, means: Tensorish, covs: Tensorish, labels: Optional[Tensorish] = None):
        self.weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        self.weights = self.weights / self.weights.sum()
        self.means = torch.as_tensor(np.asarray(means, dtype=np.float64))
        self.covs = torch.as_tensor(np.asarray(covs, dtype=np.float64))
        K, d = self.means.shape
        if self.weights.shape != (K,) or self.covs.shape != (K, d, d):
            raise ValueError(f"shapes disagree: weights {tuple(self.weights.shape)}, means {(K, d)}, "
                             f"covs {tuple(self.covs.shape)}")
        if labels is None:
            labels = np.arange(K)
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        if self.labels.shape != (K,) or self.labels.min() < 0:
            raise ValueError("labels must be (K,) non-negative integers")
        self.num_classes = int(self.labels.max()) + 1
        if set(self.labels.tolist()) != set(range(self.num_classes)):
            raise ValueError("every class 0..C-1 needs at least one component")
        self.dim = d
        self.num_components = K
        # Sigma_k = U_k diag(lambda_k) U_k^T: every noise level shares the eigenvectors, because
        # abar Sigma_k + (1 - abar) I = U_k diag(abar lambda_k + 1 - abar) U_k^T. So the densities and scores
        # below cost O(B K d^2) with no per-sample Cholesky, in any dimension.
        if not torch.allclose(self.covs, self.covs.transpose(-1, -2), atol=1e-12):
            raise ValueError("covs must be symmetric")
        self.cov_eigvals, self.cov_eigvecs = torch.linalg.eigh(self.covs)       # (K, d), (K, d, d)
        if not (self.cov_eigvals > 0).all():
            raise ValueError(f"covs must be positive definite; smallest eigenvalue {float(self.cov_eigvals.min()):.3g}")

    # --- class structure -------------------------------------------------------------------------
    def class_weights(self) -> torch.Tensor:
        """p(c): (C,) total weight of each class's components."""
        return torch.zeros(self.num_classes, dtype=torch.float64).index_add_(0, self.labels, self.weights)

    def _log_component_prior(self, y: Optional[torch.Tensor], batch: int) -> torch.Tensor:
        """log p(k | c) (B, K) for labels y (B,), -inf off-class; the null label / None gives log pi_k."""
        logw = self.weights.log().expand(batch, -1).clone()
        if y is None:
            return logw
        y = torch.as_tensor(y, dtype=torch.long).reshape(-1).cpu()
        y = y.expand(batch) if y.numel() == 1 else y.reshape(batch)
        cond = y < self.num_classes                              # rows with a real class
        in_class = self.labels[None, :] == y[:, None]            # (B, K)
        logw = torch.where(cond[:, None] & ~in_class, torch.full_like(logw, -math.inf), logw)
        # renormalise p(k | c) = pi_k / p(c) on conditional rows
        return logw - torch.logsumexp(logw, dim=1, keepdim=True)

    # --- the forward process -----------------------------------------------------------------------
    def component_params(self, alpha_bar: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Means (B, K, d) and covariances (B, K, d, d) of p_t(x | k) for alpha_bar (B,)."""
        a = alpha_bar.to(torch.float64).cpu()
        m = a.sqrt()[:, None, None] * self.means[None]
        eye = torch.eye(self.dim, dtype=torch.float64)
        S = a[:, None, None, None] * self.covs[None] + (1 - a)[:, None, None, None] * eye
        return m, S

    def _component_terms(self, x: torch.Tensor, alpha_bar) -> Tuple[torch.Tensor, torch.Tensor]:
        """log N(x; m_k, S_k) (B, K) and the component scores -S_k^{-1}(x - m_k) (B, K, d).

        In the eigenbasis of Sigma_k the noised covariance S_k is diagonal (see ``__init__``), so the Mahalanobis
        term and the score are projections onto U_k: O(B K d^2) in float64, differentiable in x.
        """
        x64 = x.to(torch.float64).cpu().reshape(x.shape[0], self.dim)   # differentiable (tests autograd it)
        a = _as_abar(alpha_bar, x64.shape[0], x64)
        var = a[:, None, None] * self.cov_eigvals[None] + (1 - a)[:, None, None]          # (B, K, d)
        diff = x64[:, None, :] - a.sqrt()[:, None, None] * self.means[None]               # (B, K, d)
        proj = torch.einsum("bkd,kde->bke", diff, self.cov_eigvecs)                       # U_k^T (x - m_k)
        maha = (proj ** 2 / var).sum(-1)
        logdet = torch.log(var).sum(-1)
        logn = -0.5 * (maha + logdet + self.dim * math.log(2 * math.pi))
        comp_score = -torch.einsum("bke,kde->bkd", proj / var, self.cov_eigvecs)          # -S_k^{-1}(x - m_k)
        return logn, comp_score

    def log_prob(self, x: torch.Tensor, alpha_bar=1.0, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """log p_t(x | y) (B,) float64; y None or the null label gives the marginal log p_t(x).

        x: (B, d); alpha_bar: scalar or (B,) (1.0 = data distribution).
        """
        logn, _ = self._component_terms(x, alpha_bar)
        return torch.logsumexp(logn + self._log_component_prior(y, x.shape[0]), dim=1)

    def score(self, x: torch.Tensor, alpha_bar, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """grad_x log p_t(x | y) (B, d) float64: the responsibility-weighted component scores."""
        logn, comp_score = self._component_terms(x, alpha_bar)
        resp = torch.softmax(logn + self._log_component_prior(y, x.shape[0]), dim=1)   # p(k | x_t, y)
        return (resp[..., None] * comp_score).sum(1)

    def eps(self, x_t: torch.Tensor, alpha_bar, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The exact noise prediction eps* = -sqrt(1 - abar) grad log p_t(x_t | y), (B, d) float64."""
        a = _as_abar(alpha_bar, x_t.shape[0], torch.empty(0))
        return -(1 - a).sqrt()[:, None] * self.score(x_t, a, y)

    def class_log_likelihoods(self, x: torch.Tensor, alpha_bar=1.0) -> torch.Tensor:
        """log p_t(x | c) for every class at once, (B, C) float64 (one pass over the components)."""
        logn, _ = self._component_terms(x, alpha_bar)
        logw = self.weights.log()[None] + logn                                    # log pi_k N_k
        out = torch.full((x.shape[0], self.num_classes), -math.inf, dtype=torch.float64)
        for c in range(self.num_classes):
            comp = self.labels == c
            out[:, c] = torch.logsumexp(logw[:, comp], dim=1) - self.class_weights()[c].log()
        return out

    def class_posterior(self, x: torch.Tensor, alpha_bar=1.0) -> torch.Tensor:
        """p_t(c | x) (B, C): the exact (Bayes) noisy classifier of this mixture."""
        logn, _ = self._component_terms(x, alpha_bar)
        logjoint = logn + self.weights.log()[None]
        post_k = torch.softmax(logjoint, dim=1)
        return torch.zeros(x.shape[0], self.num_classes, dtype=torch.float64).index_add_(1, self.labels, post_k)

    def guided_log_density(self, x: torch.Tensor, y: torch.Tensor, w: float, alpha_bar=1.0) -> torch.Tensor:
        """Unnormalised log of p(x|c)^(1+w) / p(x)^w = log p(x|c) + w log p(c|x) + const (B,).

        The density whose score is the CFG combination (1+w) grad log p(x|c) - w grad log p(x)."""
        return (1 + w) * self.log_prob(x, alpha_bar, y) - w * self.log_prob(x, alpha_bar, None)

    # --- data ----------------------------------------------------------------------------------------
    def sample(self, n: int, generator: Optional[torch.Generator] = None,
               y: Optional[Union[int, torch.Tensor]] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` points from p_0 (or from p_0(. | y) when y is given): (x0 (n, d) float64, labels (n,))."""
        logp = self._log_component_prior(None if y is None else torch.as_tensor(y).reshape(-1).expand(n), n)
        comp = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
        L = torch.linalg.cholesky(self.covs)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        x0 = self.means[comp] + (L[comp] @ z.unsqueeze(-1)).squeeze(-1)
        return x0, self.labels[comp]


def three_class_mixture(radius: float = 1.0, std: float = 0.4, weights: Sequence[float] = (1, 1, 1)) -> GaussianMixture:
    """Three isotropic Gaussian classes on a triangle (the setting of Ho & Salimans' toy figure).

    With the default ``std = 0.4`` at ``radius = 1`` the classes overlap, so guidance has something to
    separate; ``weights`` lets the minority-guidance chapter make one class rare.
    """
    angles = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
    means = radius * np.stack([np.cos(angles), np.sin(angles)], 1)
    covs = np.stack([np.eye(2) * std ** 2] * 3)
    return GaussianMixture(weights, means, covs)


class ExactEpsModel(nn.Module):
    """The ideal denoiser of a :class:`GaussianMixture` in the model signature ``(x_t, t, y=None, cond=None)``.

    alphas_cumprod: the *original* (unspaced) schedule, (T,); timestep_scale: the factor the diffusion
    applies before calling the model (``1000 / T`` with ``rescale_timesteps``, else 1). ``t`` arrives as
    float timesteps already mapped back from any respacing, so ``round(t / timestep_scale)`` indexes
    alphas_cumprod. Returns (B, d) in x_t's dtype.
    """

    def __init__(self, mixture: GaussianMixture, alphas_cumprod: np.ndarray, timestep_scale: float = 1.0):
        super().__init__()
        self.mixture = mixture
        self.register_buffer("alphas_cumprod", torch.as_tensor(np.asarray(alphas_cumprod, dtype=np.float64)))
        self.timestep_scale = float(timestep_scale)
        self.num_classes = mixture.num_classes

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y: Optional[torch.Tensor] = None,
                cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        idx = torch.round(t.detach().to(torch.float64) / self.timestep_scale).long()
        idx = idx.clamp(0, len(self.alphas_cumprod) - 1).cpu()
        a = self.alphas_cumprod.cpu()[idx]
        eps = self.mixture.eps(x_t, a, None if y is None else y.cpu())
        return eps.to(device=x_t.device, dtype=x_t.dtype)


class ToyDenoiser(nn.Module):
    """A small MLP eps-predictor for d-dimensional toys: ``model(x_t, t, y=None, cond=None) -> (B, d)``.

    Input: x_t, a sinusoidal embedding of the (rescaled) timestep, and a learned label embedding with
    ``num_classes + 1`` rows (the last row is the null label used for CFG's unconditional branch;
    ``y=None`` also means null).
    """

    def __init__(self, dim: int = 2, num_classes: int = 3, hidden: int = 128, depth: int = 3, emb_dim: int = 32):
        super().__init__()
        self.dim, self.num_classes, self.emb_dim = dim, num_classes, emb_dim
        self.label_emb = nn.Embedding(num_classes + 1, emb_dim)
        layers, width = [], dim + 2 * emb_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)
        half = emb_dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(half) / half))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y: Optional[torch.Tensor] = None,
                cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        if y is None:
            y = torch.full((x_t.shape[0],), self.num_classes, dtype=torch.long, device=x_t.device)
        args = t.float()[:, None] * self.freqs[None]
        temb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
        h = torch.cat([x_t.float(), temb, self.label_emb(y)], dim=1)
        return self.net(h).to(x_t.dtype)


def train_toy_denoiser(model: nn.Module, mixture: GaussianMixture, diffusion, steps: int = 2000,
                       batch_size: int = 512, lr: float = 2e-3, p_uncond: float = 0.1,
                       seed: int = 0) -> list:
    """Train ``model`` on fresh mixture samples with the package's eps-MSE loss and per-sample label dropout.

    Each step draws x_0 ~ p_0, its labels, replaces each label by the null label with probability
    ``p_uncond`` (the joint conditional/unconditional training of classifier-free guidance), draws
    t ~ U{0..T-1} and minimises ``diffusion.training_losses(...)["loss"]``. Returns the loss per step.
    """
    g = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    model.train()
    for _ in range(steps):
        x0, y = mixture.sample(batch_size, generator=g)
        drop = torch.rand(batch_size, generator=g) < p_uncond
        y = torch.where(drop, torch.full_like(y, mixture.num_classes), y)
        t = torch.randint(0, diffusion.num_timesteps, (batch_size,), generator=g)
        noise = torch.randn(batch_size, mixture.dim, generator=g)
        x0, y, t, noise = x0.float().to(device), y.to(device), t.to(device), noise.to(device)
        loss = diffusion.training_losses(model, x0, t, model_kwargs={"y": y}, noise=noise)["loss"].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def density_grid(mixture: GaussianMixture, y: Optional[int] = None, w: float = 0.0, lim: float = 2.5,
                 n: int = 121, alpha_bar: float = 1.0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (guided) density of a 2-D mixture on an n x n grid over [-lim, lim]^2, normalised to sum 1.

    y None: the marginal p(x); otherwise p(x|y)^(1+w) / p(x)^w (w = 0: the plain conditional).
    Returns (xs, ys, density (n, n)) for contour plots.
    """
    if mixture.dim != 2:
        raise ValueError("density_grid is for 2-D mixtures")
    xs = np.linspace(-lim, lim, n)
    X, Y = np.meshgrid(xs, xs)
    pts = torch.as_tensor(np.stack([X.ravel(), Y.ravel()], 1))
    if y is None:
        logd = mixture.log_prob(pts, alpha_bar)
    else:
        logd = mixture.guided_log_density(pts, torch.full((pts.shape[0],), int(y)), w, alpha_bar)
    d = torch.softmax(logd, 0).reshape(n, n).numpy()
    return xs, xs, d


def guided_sample_stats(mixture: GaussianMixture, x0: torch.Tensor, y: torch.Tensor) -> Dict[str, float]:
    """How samples drawn for labels y sit in the data distribution (all exact, no learned critic).

    - ``class_accuracy``: fraction whose Bayes class argmax p(c|x) equals the requested y (separation);
    - ``mean_p_y``: mean posterior p(y|x) of the requested class (CFG pushes it towards 1);
    - ``spread``: RMS distance to the mean of each requested class's samples (sharpening shrinks it);
    - ``log_p_y``: mean log p(x|y) (fidelity to the class; falls when samples leave the class mass).
    """
    x0 = x0.detach().to(torch.float64).cpu()
    y = y.cpu()
    post = mixture.class_posterior(x0)
    acc = float((post.argmax(1) == y).double().mean())
    p_y = float(post.gather(1, y[:, None]).mean())
    spreads = []
    for c in y.unique():
        xc = x0[y == c]
        spreads.append(((xc - xc.mean(0)) ** 2).sum(1))
    spread = float(torch.cat(spreads).mean().sqrt())
    return {"class_accuracy": acc, "mean_p_y": p_y, "spread": spread,
            "log_p_y": float(mixture.log_prob(x0, 1.0, y).mean())}


class ExactModeClassifier(nn.Module):
    """The toy's exact noisy classifier of its mixture components (chapter 07, the perfect level classifier of
    minority guidance, Eq. {eq}`mg-guidance`): ``forward(x_t, t) -> log p_t(k | x_t)``, ``(B, K)``.

    Args:
        mixture: the :class:`GaussianMixture`; alphas_cumprod: ``(T,)`` ᾱ of the diffusion; ``t`` is taken in its
            original (long) steps, as :func:`lt_diffusion.guidance.classifier_cond_fn` hands it over.
    """

    def __init__(self, mixture: GaussianMixture, alphas_cumprod: np.ndarray):
        super().__init__()
        self.mixture = mixture
        self.register_buffer("alphas_cumprod", torch.as_tensor(alphas_cumprod))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.mixture.class_posterior(x_t, self.alphas_cumprod[t.long().cpu()]).clamp_min(1e-300).log()
