"""Class-Balancing Diffusion Models (Qin et al., CVPR 2023): a regulariser plugged into ``regularizer``.

Chapter: CBDM. As the official code (qym7/CBDM-pytorch, ``diffusion.py``) implements it, for each sample with a
real label y a second label y' is drawn independently of y, the same x_t and t are denoised under y', and

    L_cb = τ · t/T · ( ‖h − sg(h')‖² + γ ‖sg(h) − h'‖² ),   h = ε_θ(x_t, t, y),  h' = ε_θ(x_t, t, y')

with sg the stop-gradient, t 0-indexed, τ = 1 and γ = 0.25 (the "commitment" term). The first term pulls the
prediction under the true (often head) class toward the one under a class drawn from the target distribution.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

from .losses import mean_flat

LABEL_DISTS = ("uniform", "train")


class CBDMRegularizer:
    """``regularizer(model, x_t, t, model_kwargs, model_output, noise, x_start, diffusion) -> (B,)``: CBDM's
    class-balancing term (chapter 06, Eq. {eq}`cbdm-loss`).

    Args:
        num_classes: K; labels are 0..K−1, and ``y == K`` is the null label (DESIGN.md), skipped by the regulariser.
        tau: τ, overall strength (the official ``--tau 1.0``).
        gamma: γ, weight of the commitment term (official 0.25).
        label_dist: distribution of y': ``"uniform"`` (the official fine-tuning setting), ``"train"`` (the
            empirical training-label frequencies, the official from-scratch setting; needs ``class_counts``), or a
            ``(K,)`` tensor of probabilities.
        class_counts: ``(K,)`` training-set counts per class, for ``label_dist="train"``.
        num_labels: |Y'|, labels drawn per sample; the loss averages over them (the paper's Σ_{y'∈Y'} / |Y'|).
            All of them go through ONE extra forward pass of batch ``num_labels · B``.
        generator: optional ``torch.Generator`` for drawing y'.
    """

    def __init__(self, num_classes: int, tau: float = 1.0, gamma: float = 0.25,
                 label_dist: Union[str, torch.Tensor, Sequence[float]] = "uniform",
                 class_counts: Optional[Union[torch.Tensor, Sequence[int]]] = None, num_labels: int = 1,
                 generator: Optional[torch.Generator] = None):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if num_labels < 1:
            raise ValueError(f"num_labels must be >= 1, got {num_labels}")
        self.num_classes = int(num_classes)
        self.tau = float(tau)
        self.gamma = float(gamma)
        self.num_labels = int(num_labels)
        self.generator = generator
        if isinstance(label_dist, str):
            if label_dist == "uniform":
                probs = torch.full((num_classes,), 1.0 / num_classes, dtype=torch.float64)
            elif label_dist == "train":
                if class_counts is None:
                    raise ValueError("label_dist='train' needs class_counts (training images per class)")
                counts = torch.as_tensor(class_counts, dtype=torch.float64)
                if counts.shape != (num_classes,) or (counts < 0).any() or counts.sum() <= 0:
                    raise ValueError(f"class_counts must be {num_classes} non-negative counts, got {counts}")
                probs = counts / counts.sum()
            else:
                raise ValueError(f"unknown label_dist {label_dist!r}; choose one of {list(LABEL_DISTS)} "
                                 f"or pass a tensor of {num_classes} probabilities")
        else:
            probs = torch.as_tensor(label_dist, dtype=torch.float64)
            if probs.shape != (num_classes,) or (probs < 0).any() or abs(float(probs.sum()) - 1.0) > 1e-6:
                raise ValueError(f"label_dist must be {num_classes} non-negative probabilities summing to 1")
        self.label_probs = probs
        self._probs_on = {}

    def weight(self, t: torch.Tensor, diffusion) -> torch.Tensor:
        """w_t = τ · t / T with 0-indexed t, as the official code: ``(B,)`` float."""
        return self.tau * t.float() / diffusion.num_timesteps

    def sample_labels(self, batch_size: int, device) -> torch.Tensor:
        """Draw y' ~ label_dist, long ``(num_labels, batch_size)`` on ``device``, independently of y."""
        draw_device = self.generator.device if self.generator is not None else torch.device(device)
        probs = self._probs_on.get(draw_device)
        if probs is None:
            probs = self._probs_on[draw_device] = self.label_probs.to(draw_device)
        y_prime = torch.multinomial(probs, self.num_labels * batch_size, replacement=True, generator=self.generator)
        return y_prime.view(self.num_labels, batch_size).to(device)

    def __call__(self, model, x_t: torch.Tensor, t: torch.Tensor, model_kwargs: dict, model_output: torch.Tensor,
                 noise: torch.Tensor, x_start: torch.Tensor, diffusion) -> torch.Tensor:
        """Per-sample L_cb ``(B,)``; zero for samples whose label is the null label.

        ``model`` is the diffusion's wrapped model (takes the diffusion's index timesteps); ``model_output`` is the
        first forward's raw output ``(B, C or 2C, H, W)``, of which the first C channels are h.
        """
        y = model_kwargs.get("y") if model_kwargs else None
        if y is None:
            raise ValueError("CBDMRegularizer needs class labels in model_kwargs['y']")
        B, C = x_t.shape[:2]
        L = self.num_labels
        h = model_output[:, :C]
        y_prime = self.sample_labels(B, x_t.device).reshape(L * B)
        kwargs = {}
        for key, value in model_kwargs.items():   # repeat other per-sample inputs for the L·B batch
            if key == "y":
                continue
            if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == B:
                value = value.repeat(L, *([1] * (value.ndim - 1)))
            kwargs[key] = value
        x_rep = x_t.repeat(L, *([1] * (x_t.ndim - 1)))
        h_prime = model(x_rep, t.repeat(L), y=y_prime, **kwargs)[:, :C].to(h.dtype)
        h_prime = h_prime.reshape(L, B, *h.shape[1:])
        h_b = h.unsqueeze(0).expand_as(h_prime)
        reg = (h_b - h_prime.detach()) ** 2                    # pulls h toward sg(h')
        commit = (h_b.detach() - h_prime) ** 2                 # pulls h' toward sg(h), weight γ
        per_label = mean_flat((reg + self.gamma * commit).reshape(L * B, -1)).view(L, B)
        loss = self.weight(t, diffusion).to(h.dtype) * per_label.mean(dim=0)
        is_real = (y != self.num_classes).to(loss.dtype)       # tensor mask: no host sync
        return loss * is_real

    def __repr__(self) -> str:
        return (f"CBDMRegularizer(num_classes={self.num_classes}, tau={self.tau}, gamma={self.gamma}, "
                f"num_labels={self.num_labels})")
