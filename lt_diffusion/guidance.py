"""Guidance at sampling time: a classifier's gradient (``cond_fn``) and classifier-free guidance (``model_fn``).

Chapters: ADM + classifier guidance (Dhariwal & Nichol 2021), minority guidance (Um et al. 2024, reuses
:func:`classifier_cond_fn` with a minority-level classifier), classifier-free guidance (Ho & Salimans 2022),
CBDM and Diffusion Inversion (sample with :func:`cfg_model_fn`).

Two conventions for the CFG strength are in use; :func:`cfg_model_fn` takes either:

- **w** (Ho & Salimans 2022, Eq. 6; CBDM's ω): ε̃ = (1 + w) ε(x, c) − w ε(x, ∅). w = 0 is the plain
  conditional model, w = −1 the unconditional one.
- **g**, "guidance scale" (Imagen, diffusers; Diffusion Inversion's ``guidance_scale``):
  ε̃ = ε(x, ∅) + g (ε(x, c) − ε(x, ∅)). g = 1 is the conditional model. The two are the same formula with g = 1 + w.
"""
from __future__ import annotations

from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F

CFG_CONVENTIONS = ("w", "g")


def classifier_cond_fn(classifier: Callable, scale: float = 1.0, label_key: str = "y",
                       labels: Optional[Union[int, torch.Tensor]] = None) -> Callable:
    """Build ``cond_fn(x_t, t, **model_kwargs) -> scale · ∇_x log p_φ(y | x_t)`` (Dhariwal & Nichol 2021,
    Algorithms 1-2; the classifier scale s is folded in, as in guided-diffusion's ``classifier_sample.py``).
    Derived in chapter 03, Eqs. {eq}`adm-ancestral` and {eq}`adm-ddim`; minority guidance is chapter 07, Eq.
    {eq}`mg-guidance`.

    Args:
        classifier: ``classifier(x_t, t) -> logits (B, K)``; called with the original-scale long timesteps that
            the diffusion passes to ``cond_fn``.
        scale: the guidance scale s (a float or a ``(B,)`` tensor, per sample).
        label_key: which ``model_kwargs`` entry holds the target labels ``(B,)`` (default ``"y"``).
        labels: fixed targets instead of ``model_kwargs[label_key]``: an int for every sample (e.g. the
            minority level to steer toward, with an unconditional diffusion model) or a ``(B,)`` tensor.
    Returns: ``cond_fn`` for :meth:`GaussianDiffusion.p_sample_loop` / ``ddim_sample_loop``; its output is
        ``(B, C, H, W)`` in x's dtype.
    """
    def cond_fn(x: torch.Tensor, t: torch.Tensor, **model_kwargs) -> torch.Tensor:
        if labels is not None:
            y = labels if isinstance(labels, torch.Tensor) else torch.full(
                (x.shape[0],), int(labels), device=x.device, dtype=torch.long)
        elif label_key in model_kwargs and model_kwargs[label_key] is not None:
            y = model_kwargs[label_key]
        else:
            raise ValueError(f"classifier guidance needs target labels: pass labels=... or model_kwargs"
                             f"[{label_key!r}] (got keys {sorted(model_kwargs)})")
        y = y.to(x.device).long()
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            log_probs = F.log_softmax(classifier(x_in, t).float(), dim=-1)
            selected = log_probs.gather(1, y.view(-1, 1)).sum()
            grad = torch.autograd.grad(selected, x_in)[0]
        s = scale if not isinstance(scale, torch.Tensor) else scale.to(grad).view(-1, *([1] * (grad.ndim - 1)))
        return (grad * s).to(x.dtype)

    return cond_fn


def cfg_model_fn(model: Callable, guidance_scale: Union[float, torch.Tensor], null_label: Optional[int] = None,
                 *, null_cond: Optional[torch.Tensor] = None, convention: str = "w") -> Callable:
    """Wrap a conditional model into a classifier-free-guided one, ``model_fn(x_t, t, **model_kwargs)``
    (chapter 04, Eq. {eq}`cfg-eps`; the "g" form with a mean learned vector is chapter 08, Eq. {eq}`di-cfg`).

    The conditional and unconditional predictions come from ONE forward pass on a batch of 2B (the inputs
    concatenated with themselves, the second half given the null condition), then combined (Eq. 6, Ho & Salimans
    2022): ε̃ = (1 + w) ε(x, c) − w ε(x, ∅).

    Args:
        model: ``model(x, t, y=..., cond=..., **kw) -> (B, C or 2C, H, W)``.
        guidance_scale: w (``convention="w"``, default; w = 0 is the conditional model) or g = 1 + w
            (``convention="g"``); a float or a per-sample ``(B,)`` tensor.
        null_label: the label index meaning "no class" (DESIGN.md: ``num_classes``), used for ``y``.
        null_cond: ``(cond_dim,)`` or ``(1, cond_dim)`` "no condition" vector, used for a continuous ``cond``.
        convention: ``"w"`` or ``"g"`` (see the module docstring).
    With a learned variance (2C channels) only the ε channels are guided; the v channels are the conditional ones.
    Other ``(B, ...)`` tensor kwargs are duplicated for the 2B batch.
    """
    if convention not in CFG_CONVENTIONS:
        raise ValueError(f"unknown CFG convention {convention!r}; choose one of {list(CFG_CONVENTIONS)} "
                         f"('w': (1+w) eps_c - w eps_u; 'g': eps_u + g (eps_c - eps_u), g = 1 + w)")
    w = guidance_scale - 1.0 if convention == "g" else guidance_scale

    def model_fn(x: torch.Tensor, t: torch.Tensor, **model_kwargs) -> torch.Tensor:
        B, C = x.shape[:2]
        kwargs = {}
        conditioned = False
        for key, value in model_kwargs.items():
            if key == "y" and value is not None:
                if null_label is None:
                    raise ValueError("cfg_model_fn got labels y but no null_label (the 'no class' index)")
                kwargs[key] = torch.cat([value, torch.full_like(value, null_label)])
                conditioned = True
            elif key == "cond" and value is not None:
                if null_cond is None:
                    raise ValueError("cfg_model_fn got a continuous cond but no null_cond vector")
                null = null_cond.to(device=value.device, dtype=value.dtype).reshape(1, -1).expand(B, -1)
                kwargs[key] = torch.cat([value, null])
                conditioned = True
            elif isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == B:
                kwargs[key] = torch.cat([value, value])
            else:
                kwargs[key] = value
        if not conditioned:
            raise ValueError("cfg_model_fn needs a condition in model_kwargs: 'y' (labels) or 'cond' (vectors)")
        out = model(torch.cat([x, x]), torch.cat([t, t]), **kwargs)
        out_cond, out_uncond = out[:B], out[B:]
        eps_cond, eps_uncond = out_cond[:, :C], out_uncond[:, :C]
        scale = w.to(out).view(-1, *([1] * (out.ndim - 1))) if isinstance(w, torch.Tensor) else w
        guided = eps_cond + scale * (eps_cond - eps_uncond)   # = (1 + w) eps_c - w eps_u
        if out.shape[1] > C:
            guided = torch.cat([guided, out_cond[:, C:]], dim=1)
        return guided

    return model_fn
