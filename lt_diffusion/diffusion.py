"""The Gaussian diffusion engine: forward process, posterior, model parameterisations, losses, samplers, bpd.

Chapters: DDPM / Improved DDPM (everything here), ADM (``cond_fn`` hooks), P2 (``loss_weight`` hook),
CBDM (``regularizer`` hook), and every chapter that samples.

Names follow openai/improved-diffusion and guided-diffusion (``q_sample``, ``p_mean_variance``, ``training_losses``,
``p_sample_loop``, ``ddim_sample_loop``, ``calc_bpd_loop``) so a reader can hold the two side by side.

Conventions (DESIGN.md): images ``(B, C, H, W)`` float in [-1, 1]; ``t``: long ``(B,)``, 0-indexed, ``t = 0`` the least
noisy step; schedule arrays are float64 numpy ``(T,)`` gathered per sample and cast to float32; the model is called
as ``model(x_t, t_model, **model_kwargs)`` with ``t_model`` a float ``(B,)`` tensor holding the *original* timestep
(after respacing), times ``1000 / T_original`` when ``rescale_timesteps``.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Iterator, Optional, Sequence

import numpy as np
import torch

from .losses import discretized_gaussian_log_likelihood, mean_flat, normal_kl
from .schedules import _as_sorted_steps, get_named_beta_schedule, space_timesteps

MODEL_MEAN_TYPES = ("epsilon", "start_x")
MODEL_VAR_TYPES = ("fixed_small", "fixed_large", "learned_range")
LOSS_TYPES = ("simple", "hybrid", "vlb")

_LN2 = math.log(2.0)


def _extract_into_tensor(arr, timesteps: torch.Tensor, broadcast_shape, dtype=torch.float32) -> torch.Tensor:
    """Gather ``arr[timesteps]`` and broadcast to ``broadcast_shape``: ``(T,)``, ``(B,)`` -> ``(B, 1, ..., 1)``.

    ``arr`` is a float64 numpy array or a tensor; the result has ``dtype``. (GaussianDiffusion keeps per-device
    copies of its arrays instead of calling this with numpy, so sampling loops do no host-to-device copies.)
    """
    if isinstance(arr, np.ndarray):
        arr = torch.from_numpy(arr)
    res = arr.to(timesteps.device)[timesteps].to(dtype)
    return res.view(res.shape + (1,) * (len(broadcast_shape) - res.ndim)).expand(broadcast_shape)


def _check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {list(choices)}")
    return value


def _as_float_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.is_floating_point() else torch.float32


class _WrappedModel:
    """Calls ``model`` (or a ``cond_fn``) with the original-scale timestep of a (possibly respaced) diffusion.

    ``timestep_map[k]`` is the original index of spaced step ``k``. For a model (``for_model=True``) the timestep is
    passed as float, rescaled to [0, 1000) when ``rescale_timesteps``; a ``cond_fn`` receives the original long index
    (DESIGN.md: ``cond_fn`` sees original-scale timesteps).
    """

    def __init__(self, fn: Callable, timestep_map: np.ndarray, rescale_timesteps: bool,
                 original_num_steps: int, for_model: bool = True):
        self.fn = fn
        self.timestep_map = timestep_map
        self.rescale_timesteps = rescale_timesteps
        self.original_num_steps = original_num_steps
        self.for_model = for_model
        self._maps: Dict[torch.device, torch.Tensor] = {}

    def map_timesteps(self, t: torch.Tensor) -> torch.Tensor:
        """Spaced indices ``(B,)`` long -> what the wrapped function receives ``(B,)``."""
        table = self._maps.get(t.device)
        if table is None:  # one copy per device, made once: no host-to-device copy per step
            table = self._maps[t.device] = torch.as_tensor(self.timestep_map, dtype=torch.long, device=t.device)
        new_t = table[t.long()]
        if not self.for_model:
            return new_t
        new_t = new_t.float()
        if self.rescale_timesteps:
            new_t = new_t * (1000.0 / self.original_num_steps)
        return new_t

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **kwargs):
        return self.fn(x, self.map_timesteps(t), **kwargs)


class GaussianDiffusion:
    """DDPM / Improved DDPM diffusion over a fixed beta schedule.

    Args:
        betas: ``(T,)`` noise schedule, each in (0, 1).
        model_mean_type: ``"epsilon"`` (the model predicts ε, Ho et al. 2020) or ``"start_x"`` (predicts x_0).
        model_var_type: ``"fixed_small"`` (σ² = β̃_t), ``"fixed_large"`` (σ² = β_t, first entry β̃_1), or
            ``"learned_range"`` (model outputs 2C channels (ε, v); Eq. 15, Nichol & Dhariwal 2021).
        loss_type: ``"simple"`` (ε-MSE, Eq. 14 of Ho et al. 2020), ``"hybrid"`` (ε-MSE + λ·L_vlb with the mean
            stop-gradient, Eq. 16 of Nichol & Dhariwal 2021; needs ``learned_range``) or ``"vlb"`` (T·L_t, bits/dim).
        rescale_timesteps: pass ``t · 1000/T`` to the model (improved-diffusion default) instead of ``t``.
        loss_weight: ``loss_weight(t, diffusion) -> (B,)`` multiplying only the ε-MSE term (P2 weighting).
        regularizer: ``regularizer(model, x_t, t, model_kwargs, model_output, noise, x_start, diffusion) -> (B,)``
            added to the loss (CBDM). ``model`` there is the diffusion's wrapped model: call it with spaced index
            timesteps ``t`` (long), it maps/rescales them as for every other call.
        vlb_weight: λ of L_hybrid in units of the *full* VLB. The single-t bound term vb_t estimates L_vlb / T,
            so the hybrid loss adds ``vb_t · T · vlb_weight``. The default 0.001 equals improved-diffusion's
            ``RESCALED_MSE`` (vb · T/1000); guided-diffusion's plain ``MSE`` with learned sigmas (vb unscaled)
            corresponds to ``vlb_weight = 1/T``.
    """

    def __init__(self, betas, model_mean_type: str = "epsilon", model_var_type: str = "fixed_small",
                 loss_type: str = "simple", rescale_timesteps: bool = False,
                 loss_weight: Optional[Callable] = None, regularizer: Optional[Callable] = None,
                 vlb_weight: float = 0.001):
        self.model_mean_type = _check_choice("model_mean_type", model_mean_type, MODEL_MEAN_TYPES)
        self.model_var_type = _check_choice("model_var_type", model_var_type, MODEL_VAR_TYPES)
        self.loss_type = _check_choice("loss_type", loss_type, LOSS_TYPES)
        if loss_type == "hybrid" and model_var_type != "learned_range":
            raise ValueError("loss_type='hybrid' trains the variance: it needs model_var_type='learned_range'")
        if loss_type == "simple" and model_var_type == "learned_range":
            raise ValueError("loss_type='simple' gives the learned variance no gradient; use loss_type='hybrid' "
                             "(vlb_weight=0.001 as improved-diffusion, 1/T as guided-diffusion's plain MSE)")
        if loss_type == "vlb" and loss_weight is not None:
            raise ValueError("loss_weight multiplies the eps-MSE term, which loss_type='vlb' does not have")
        self.rescale_timesteps = rescale_timesteps
        self.loss_weight = loss_weight
        self.regularizer = regularizer
        self.vlb_weight = float(vlb_weight)

        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or betas.size == 0:
            raise ValueError(f"betas must be a non-empty 1-D array, got shape {betas.shape}")
        if not ((betas > 0).all() and (betas < 1).all()):
            raise ValueError(f"betas must lie in (0, 1), got range [{betas.min():.3g}, {betas.max():.3g}] "
                             f"(the 'linear' schedule scales by 1000/T and needs T > 20)")
        self.betas = betas
        self.num_timesteps = T = int(betas.shape[0])
        # Identity map; SpacedDiffusion replaces it with the kept original indices.
        if not hasattr(self, "timestep_map"):
            self.timestep_map = np.arange(T, dtype=np.int64)
            self.original_num_steps = T

        alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(alphas)                                   # ᾱ_t
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])         # ᾱ_{t-1}, ᾱ_{-1} = 1
        self.alphas_cumprod_next = np.append(self.alphas_cumprod[1:], 0.0)          # ᾱ_{t+1}, ᾱ_T = 0
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.log_one_minus_alphas_cumprod = np.log(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1.0)

        # q(x_{t-1} | x_t, x_0) = N(coef1 x_0 + coef2 x_t, β̃_t)  (Eqs. 6-7, Ho et al. 2020)
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        # β̃_0 = 0: its log is replaced by log β̃_1 (T >= 2), as the official code does.
        first = self.posterior_variance[1] if T > 1 else betas[0]
        self.posterior_log_variance_clipped = np.log(np.append(first, self.posterior_variance[1:]))
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)
        self.log_betas = np.log(betas)
        # "fixed_large": σ² = β_t, but with β̃_1 at t = 0 for a better decoder likelihood (official code).
        self.fixed_large_variance = np.append(first, betas[1:])
        self.fixed_large_log_variance = np.log(self.fixed_large_variance)

        self._device_arrays: Dict[Any, torch.Tensor] = {}

    # ----------------------------------------------------------------------------------------- helpers
    def _extract(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``getattr(self, name)[t]`` broadcast to ``like.shape``, in ``like``'s float dtype.

        Arrays are copied to each device once (float64, float32 on MPS) so per-step gathers stay on the device.
        """
        key = (name, t.device)
        table = self._device_arrays.get(key)
        if table is None:
            dtype = torch.float32 if t.device.type == "mps" else torch.float64
            table = self._device_arrays[key] = torch.as_tensor(getattr(self, name), dtype=dtype, device=t.device)
        return _extract_into_tensor(table, t, like.shape, dtype=_as_float_dtype(like))

    def _wrap_model(self, model: Callable) -> Callable:
        if isinstance(model, _WrappedModel):
            return model
        return _WrappedModel(model, self.timestep_map, self.rescale_timesteps, self.original_num_steps)

    def _wrap_cond_fn(self, cond_fn: Callable) -> Callable:
        if isinstance(cond_fn, _WrappedModel):
            return cond_fn
        return _WrappedModel(cond_fn, self.timestep_map, False, self.original_num_steps, for_model=False)

    # ----------------------------------------------------------------------------------------- forward process
    def q_mean_variance(self, x_start: torch.Tensor, t: torch.Tensor):
        """q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) (Eq. 4, Ho et al. 2020).

        Returns ``(mean, variance, log_variance)``, each broadcast to ``x_start``'s shape ``(B, C, H, W)``.
        """
        mean = self._extract("sqrt_alphas_cumprod", t, x_start) * x_start
        variance = self._extract("alphas_cumprod", t, x_start).neg().add(1.0)
        log_variance = self._extract("log_one_minus_alphas_cumprod", t, x_start)
        return mean, variance, log_variance

    def q_sample(self, x_start: torch.Tensor, t: torch.Tensor, noise: Optional[torch.Tensor] = None,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Draw x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (Eq. 4, Ho et al. 2020). ``x_start``, ``noise``: ``(B, C, H, W)``."""
        if noise is None:
            noise = _randn(x_start.shape, generator, x_start.device, _as_float_dtype(x_start))
        if noise.shape != x_start.shape:
            raise ValueError(f"noise shape {tuple(noise.shape)} != x_start shape {tuple(x_start.shape)}")
        return (self._extract("sqrt_alphas_cumprod", t, x_start) * x_start
                + self._extract("sqrt_one_minus_alphas_cumprod", t, x_start) * noise)

    def q_posterior_mean_variance(self, x_start: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor):
        """q(x_{t-1} | x_t, x_0) = N(μ̃_t, β̃_t I) (Eqs. 6-7, Ho et al. 2020).

        Returns ``(mean, variance, log_variance_clipped)``, each ``(B, C, H, W)``.
        """
        if x_start.shape != x_t.shape:
            raise ValueError(f"x_start {tuple(x_start.shape)} and x_t {tuple(x_t.shape)} differ in shape")
        mean = (self._extract("posterior_mean_coef1", t, x_t) * x_start
                + self._extract("posterior_mean_coef2", t, x_t) * x_t)
        variance = self._extract("posterior_variance", t, x_t)
        log_variance = self._extract("posterior_log_variance_clipped", t, x_t)
        return mean, variance, log_variance

    def _predict_xstart_from_eps(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x̂_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t, inverting Eq. 4 of Ho et al. 2020."""
        return (self._extract("sqrt_recip_alphas_cumprod", t, x_t) * x_t
                - self._extract("sqrt_recipm1_alphas_cumprod", t, x_t) * eps)

    def _predict_eps_from_xstart(self, x_t: torch.Tensor, t: torch.Tensor, pred_xstart: torch.Tensor):
        """ε̂ = (x_t / √ᾱ_t − x̂_0) / √(1/ᾱ_t − 1): the inverse of :meth:`_predict_xstart_from_eps`."""
        return ((self._extract("sqrt_recip_alphas_cumprod", t, x_t) * x_t - pred_xstart)
                / self._extract("sqrt_recipm1_alphas_cumprod", t, x_t))

    # ----------------------------------------------------------------------------------------- reverse process
    def p_mean_variance(self, model: Callable, x: torch.Tensor, t: torch.Tensor, clip_denoised: bool = True,
                        denoised_fn: Optional[Callable] = None, model_kwargs: Optional[dict] = None) -> dict:
        """p_θ(x_{t-1} | x_t): run the model once and turn its output into a Gaussian.

        Args:
            model: ``model(x, t_model, **model_kwargs) -> (B, C or 2C, H, W)``.
            x: ``(B, C, H, W)`` x_t.  t: ``(B,)`` long, indices of this diffusion.
            clip_denoised: clamp x̂_0 to [-1, 1] before forming the mean.
            denoised_fn: optional map applied to x̂_0 before clipping.
        Returns dict of ``(B, C, H, W)`` tensors: ``mean``, ``variance``, ``log_variance``, ``pred_xstart``
            (processed x̂_0), ``eps`` (the model's ε prediction, unclipped; derived from x̂_0 for ``start_x``) and
            ``model_output`` (the raw output, all channels, cast to x's dtype).
        """
        model_kwargs = {} if model_kwargs is None else model_kwargs
        model = self._wrap_model(model)
        B, C = x.shape[:2]
        model_output = model(x, t, **model_kwargs).to(_as_float_dtype(x))

        if self.model_var_type == "learned_range":
            if model_output.shape != (B, 2 * C, *x.shape[2:]):
                raise ValueError(f"learned_range expects the model to output {2 * C} channels (eps, v), "
                                 f"got shape {tuple(model_output.shape)} for x of shape {tuple(x.shape)}")
            mean_output, v = torch.split(model_output, C, dim=1)
            # Eq. 15, Nichol & Dhariwal 2021: interpolate log σ² between log β̃_t and log β_t; v is unconstrained.
            min_log = self._extract("posterior_log_variance_clipped", t, x)
            max_log = self._extract("log_betas", t, x)
            frac = (v + 1.0) / 2.0
            log_variance = frac * max_log + (1.0 - frac) * min_log
            variance = torch.exp(log_variance)
        else:
            if model_output.shape != x.shape:
                raise ValueError(f"{self.model_var_type} expects the model to output x's shape {tuple(x.shape)}, "
                                 f"got {tuple(model_output.shape)} (learned sigma needs 'learned_range')")
            mean_output = model_output
            if self.model_var_type == "fixed_small":
                variance = self._extract("posterior_variance", t, x)
                log_variance = self._extract("posterior_log_variance_clipped", t, x)
            else:
                variance = self._extract("fixed_large_variance", t, x)
                log_variance = self._extract("fixed_large_log_variance", t, x)

        def process_xstart(x0: torch.Tensor) -> torch.Tensor:
            if denoised_fn is not None:
                x0 = denoised_fn(x0)
            return x0.clamp(-1.0, 1.0) if clip_denoised else x0

        if self.model_mean_type == "epsilon":
            eps = mean_output
            pred_xstart = process_xstart(self._predict_xstart_from_eps(x, t, eps))
        else:
            eps = self._predict_eps_from_xstart(x, t, mean_output)
            pred_xstart = process_xstart(mean_output)
        # μ_θ = μ̃_t(x̂_0, x_t): the posterior mean at the predicted x_0 (Eq. 7 with Eq. 11, Ho et al. 2020).
        mean, _, _ = self.q_posterior_mean_variance(pred_xstart, x, t)
        return {"mean": mean, "variance": variance, "log_variance": log_variance, "pred_xstart": pred_xstart,
                "eps": eps, "model_output": model_output}

    def condition_mean(self, cond_fn: Callable, p_mean_var: dict, x: torch.Tensor, t: torch.Tensor,
                       model_kwargs: Optional[dict] = None) -> torch.Tensor:
        """Classifier guidance for ancestral sampling: μ' = μ + Σ ∇_x log p(y | x_t) (Dhariwal & Nichol 2021,
        Algorithm 1). ``cond_fn(x, t_original, **model_kwargs)`` returns the scaled gradient ``(B, C, H, W)``.
        """
        model_kwargs = {} if model_kwargs is None else model_kwargs
        gradient = self._wrap_cond_fn(cond_fn)(x, t, **model_kwargs)
        return p_mean_var["mean"] + p_mean_var["variance"] * gradient.to(p_mean_var["mean"].dtype)

    def condition_score(self, cond_fn: Callable, p_mean_var: dict, x: torch.Tensor, t: torch.Tensor,
                        model_kwargs: Optional[dict] = None) -> dict:
        """Classifier guidance for DDIM: ε' = ε − √(1 − ᾱ_t) ∇_x log p(y | x_t) (Dhariwal & Nichol 2021,
        Eq. 14 / Algorithm 2); x̂_0 and the mean are recomputed from ε' (x̂_0 is not re-clipped, as official).
        Returns a new dict like :meth:`p_mean_variance`'s.
        """
        model_kwargs = {} if model_kwargs is None else model_kwargs
        gradient = self._wrap_cond_fn(cond_fn)(x, t, **model_kwargs)
        eps = self._predict_eps_from_xstart(x, t, p_mean_var["pred_xstart"])
        eps = eps - self._extract("sqrt_one_minus_alphas_cumprod", t, x) * gradient.to(eps.dtype)
        out = dict(p_mean_var)
        out["pred_xstart"] = self._predict_xstart_from_eps(x, t, eps)
        out["eps"] = eps
        out["mean"], _, _ = self.q_posterior_mean_variance(out["pred_xstart"], x, t)
        return out

    def p_sample(self, model: Callable, x: torch.Tensor, t: torch.Tensor, clip_denoised: bool = True,
                 denoised_fn: Optional[Callable] = None, cond_fn: Optional[Callable] = None,
                 model_kwargs: Optional[dict] = None, generator: Optional[torch.Generator] = None) -> dict:
        """One ancestral step x_t -> x_{t-1} ~ N(μ_θ, Σ_θ) (Algorithm 2, Ho et al. 2020); no noise at t = 0.

        Returns ``{"sample": (B, C, H, W), "pred_xstart": (B, C, H, W)}``.
        """
        out = self.p_mean_variance(model, x, t, clip_denoised=clip_denoised, denoised_fn=denoised_fn,
                                   model_kwargs=model_kwargs)
        noise = _randn(x.shape, generator, x.device, out["mean"].dtype)
        nonzero_mask = _nonzero_mask(t, x)  # tensor mask, not a Python branch: no host sync
        mean = out["mean"]
        if cond_fn is not None:
            mean = self.condition_mean(cond_fn, out, x, t, model_kwargs=model_kwargs)
        sample = mean + nonzero_mask * torch.exp(0.5 * out["log_variance"]) * noise
        return {"sample": sample, "pred_xstart": out["pred_xstart"]}

    def p_sample_loop(self, model: Callable, shape, noise: Optional[torch.Tensor] = None,
                      clip_denoised: bool = True, denoised_fn: Optional[Callable] = None,
                      cond_fn: Optional[Callable] = None, model_kwargs: Optional[dict] = None, device=None,
                      progress: bool = False, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Ancestral sampling from x_T ~ N(0, I) (or ``noise``) down to x_0. Returns ``shape`` = (B, C, H, W).

        Args:
            model: ``model(x, t_model, **model_kwargs)`` (an ``nn.Module`` or any callable, e.g. a CFG ``model_fn``).
            shape: ``(B, C, H, W)``.  noise: optional x_T of that shape.
            clip_denoised: clamp x̂_0 to [-1, 1] at every step.  denoised_fn: optional map applied to x̂_0.
            cond_fn: ``cond_fn(x_t, t_original, **model_kwargs) -> (B, C, H, W)`` guidance gradient, added to the
                mean as μ + Σ·cond_fn (:meth:`condition_mean`).
            device: where to sample; inferred from ``noise``, the model's parameters or ``model_kwargs`` if None.
            progress: show a tqdm bar.
            generator: draws x_T and the per-step noise. Give one on the sampling device: a CPU generator works
                for a CUDA run but copies the noise to the device at every step.
        """
        final = None
        for final in self.p_sample_loop_progressive(model, shape, noise=noise, clip_denoised=clip_denoised,
                                                    denoised_fn=denoised_fn, cond_fn=cond_fn,
                                                    model_kwargs=model_kwargs, device=device, progress=progress,
                                                    generator=generator):
            pass
        return final["sample"]

    def p_sample_loop_progressive(self, model: Callable, shape, noise: Optional[torch.Tensor] = None,
                                  clip_denoised: bool = True, denoised_fn: Optional[Callable] = None,
                                  cond_fn: Optional[Callable] = None, model_kwargs: Optional[dict] = None,
                                  device=None, progress: bool = False,
                                  generator: Optional[torch.Generator] = None) -> Iterator[dict]:
        """Like :meth:`p_sample_loop` but yields each step's ``{"sample", "pred_xstart"}`` (from t = T−1 to 0)."""
        device = _resolve_device(device, noise, model, generator, model_kwargs)
        img = _initial_noise(shape, noise, generator, device)
        for i in _progress(range(self.num_timesteps - 1, -1, -1), progress):
            t = torch.full((shape[0],), i, device=device, dtype=torch.long)
            with torch.no_grad():
                out = self.p_sample(model, img, t, clip_denoised=clip_denoised, denoised_fn=denoised_fn,
                                    cond_fn=cond_fn, model_kwargs=model_kwargs, generator=generator)
            yield out
            img = out["sample"]

    def ddim_sample(self, model: Callable, x: torch.Tensor, t: torch.Tensor, clip_denoised: bool = True,
                    denoised_fn: Optional[Callable] = None, cond_fn: Optional[Callable] = None,
                    model_kwargs: Optional[dict] = None, eta: float = 0.0,
                    generator: Optional[torch.Generator] = None) -> dict:
        """One DDIM step (Eq. 12, Song et al. 2021) from spaced step t to t−1.

        σ_t = η √((1 − ᾱ_{t-1})/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_{t-1}) (Eq. 16); η = 0 is deterministic, η = 1 is the
        ancestral sampler with σ² = β̃_t. Returns ``{"sample", "pred_xstart"}``, each ``(B, C, H, W)``.
        """
        out = self.p_mean_variance(model, x, t, clip_denoised=clip_denoised, denoised_fn=denoised_fn,
                                   model_kwargs=model_kwargs)
        if cond_fn is not None:
            out = self.condition_score(cond_fn, out, x, t, model_kwargs=model_kwargs)
        # ε re-derived from the (possibly clipped) x̂_0 so that x̂_0 and ε stay consistent with x_t.
        eps = self._predict_eps_from_xstart(x, t, out["pred_xstart"])
        alpha_bar = self._extract("alphas_cumprod", t, x)
        alpha_bar_prev = self._extract("alphas_cumprod_prev", t, x)
        sigma = (eta * torch.sqrt((1.0 - alpha_bar_prev) / (1.0 - alpha_bar))
                 * torch.sqrt(1.0 - alpha_bar / alpha_bar_prev))
        mean_pred = (out["pred_xstart"] * torch.sqrt(alpha_bar_prev)
                     + torch.sqrt((1.0 - alpha_bar_prev - sigma ** 2).clamp(min=0.0)) * eps)
        sample = mean_pred
        if eta != 0.0:
            noise = _randn(x.shape, generator, x.device, mean_pred.dtype)
            sample = mean_pred + _nonzero_mask(t, x) * sigma * noise
        return {"sample": sample, "pred_xstart": out["pred_xstart"]}

    def ddim_sample_loop(self, model: Callable, shape, noise: Optional[torch.Tensor] = None,
                         clip_denoised: bool = True, denoised_fn: Optional[Callable] = None,
                         cond_fn: Optional[Callable] = None, model_kwargs: Optional[dict] = None, device=None,
                         progress: bool = False, eta: float = 0.0,
                         generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """DDIM sampling over this diffusion's (usually respaced) steps. Returns ``shape`` = (B, C, H, W).

        Arguments as :meth:`p_sample_loop`; ``eta`` = η of Song et al. 2021 (0: deterministic). ``cond_fn`` enters
        through the score (:meth:`condition_score`). With ``eta=0`` the generator only draws x_T.
        """
        final = None
        for final in self.ddim_sample_loop_progressive(model, shape, noise=noise, clip_denoised=clip_denoised,
                                                       denoised_fn=denoised_fn, cond_fn=cond_fn,
                                                       model_kwargs=model_kwargs, device=device,
                                                       progress=progress, eta=eta, generator=generator):
            pass
        return final["sample"]

    def ddim_sample_loop_progressive(self, model: Callable, shape, noise: Optional[torch.Tensor] = None,
                                     clip_denoised: bool = True, denoised_fn: Optional[Callable] = None,
                                     cond_fn: Optional[Callable] = None, model_kwargs: Optional[dict] = None,
                                     device=None, progress: bool = False, eta: float = 0.0,
                                     generator: Optional[torch.Generator] = None) -> Iterator[dict]:
        """Like :meth:`ddim_sample_loop` but yields each step's ``{"sample", "pred_xstart"}``."""
        device = _resolve_device(device, noise, model, generator, model_kwargs)
        img = _initial_noise(shape, noise, generator, device)
        for i in _progress(range(self.num_timesteps - 1, -1, -1), progress):
            t = torch.full((shape[0],), i, device=device, dtype=torch.long)
            with torch.no_grad():
                out = self.ddim_sample(model, img, t, clip_denoised=clip_denoised, denoised_fn=denoised_fn,
                                       cond_fn=cond_fn, model_kwargs=model_kwargs, eta=eta, generator=generator)
            yield out
            img = out["sample"]

    def ddim_reverse_sample(self, model: Callable, x: torch.Tensor, t: torch.Tensor, clip_denoised: bool = True,
                            denoised_fn: Optional[Callable] = None, model_kwargs: Optional[dict] = None) -> dict:
        """Deterministic DDIM step *up* the chain, x_t -> x_{t+1} (η = 0; the ODE run forwards, used for inversion).

        Returns ``{"sample", "pred_xstart"}``, each ``(B, C, H, W)``.
        """
        out = self.p_mean_variance(model, x, t, clip_denoised=clip_denoised, denoised_fn=denoised_fn,
                                   model_kwargs=model_kwargs)
        eps = self._predict_eps_from_xstart(x, t, out["pred_xstart"])
        alpha_bar_next = self._extract("alphas_cumprod_next", t, x)
        sample = out["pred_xstart"] * torch.sqrt(alpha_bar_next) + torch.sqrt(1.0 - alpha_bar_next) * eps
        return {"sample": sample, "pred_xstart": out["pred_xstart"]}

    # ----------------------------------------------------------------------------------------- losses
    def _vb_terms_bpd(self, model: Callable, x_start: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                      clip_denoised: bool = True, model_kwargs: Optional[dict] = None) -> dict:
        """One term of the variational bound, in bits per dimension (Eq. 5, Ho et al. 2020).

        L_{t} = KL(q(x_{t-1} | x_t, x_0) || p_θ(x_{t-1} | x_t)) for t > 0; at t = 0 the decoder NLL
        −log p_θ(x_0 | x_1) under the discretised Gaussian (Eq. 13). Both averaged over dims and divided by ln 2.
        Returns ``{"output": (B,), "pred_xstart": (B, C, H, W)}``.
        """
        true_mean, _, true_log_variance = self.q_posterior_mean_variance(x_start, x_t, t)
        out = self.p_mean_variance(model, x_t, t, clip_denoised=clip_denoised, model_kwargs=model_kwargs)
        kl = mean_flat(normal_kl(true_mean, true_log_variance, out["mean"], out["log_variance"])) / _LN2
        decoder_nll = -discretized_gaussian_log_likelihood(x_start, means=out["mean"],
                                                           log_scales=0.5 * out["log_variance"])
        decoder_nll = mean_flat(decoder_nll) / _LN2
        return {"output": torch.where(t == 0, decoder_nll, kl), "pred_xstart": out["pred_xstart"]}

    def _prior_bpd(self, x_start: torch.Tensor) -> torch.Tensor:
        """L_T = KL(q(x_T | x_0) || N(0, I)) in bits per dimension, ``(B,)``. No parameters; near 0 for a good
        schedule."""
        t = torch.full((x_start.shape[0],), self.num_timesteps - 1, device=x_start.device, dtype=torch.long)
        mean, _, log_variance = self.q_mean_variance(x_start, t)
        return mean_flat(normal_kl(mean, log_variance, 0.0, 0.0)) / _LN2

    def training_losses(self, model: Callable, x_start: torch.Tensor, t: torch.Tensor,
                        model_kwargs: Optional[dict] = None, noise: Optional[torch.Tensor] = None,
                        generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
        """Per-sample training loss at timesteps ``t`` ``(B,)`` for data ``x_start`` ``(B, C, H, W)``.

        Returns a dict of ``(B,)`` tensors:
            ``loss`` (what to minimise; the trainer multiplies by importance weights and averages),
            ``mse`` (the unweighted ε-MSE, or x_0-MSE for ``start_x``; absent for ``"vlb"``),
            ``vb`` (the single-t bound term in bits/dim, as added to the loss; when the variance is learned or
            the loss is ``"vlb"``), ``loss_weight`` (when a ``loss_weight`` is set) and ``reg`` (when a
            ``regularizer`` is set).
            loss = loss_weight · mse + vb + reg.
        """
        model_kwargs = {} if model_kwargs is None else model_kwargs
        model = self._wrap_model(model)
        if noise is None:
            noise = _randn(x_start.shape, generator, x_start.device, _as_float_dtype(x_start))
        x_t = self.q_sample(x_start, t, noise=noise)
        terms: Dict[str, torch.Tensor] = {}
        model_output = None

        if self.loss_type == "vlb":
            # T · L_t: an unbiased single-t estimate of the full bound Σ_t L_t (Nichol & Dhariwal 2021, L_vlb).
            out = self._vb_terms_bpd(model, x_start, x_t, t, clip_denoised=False, model_kwargs=model_kwargs)
            terms["vb"] = out["output"] * self.num_timesteps
            terms["loss"] = terms["vb"]
            model_output = None
        else:
            model_output = model(x_t, t, **model_kwargs).to(_as_float_dtype(x_start))
            C = x_start.shape[1]
            loss = torch.zeros(x_start.shape[0], device=x_start.device, dtype=model_output.dtype)
            if self.model_var_type == "learned_range":
                if model_output.shape[1] != 2 * C:
                    raise ValueError(f"learned_range expects {2 * C} output channels (eps, v), "
                                     f"got {model_output.shape[1]}")
                mean_output, v = torch.split(model_output, C, dim=1)
                # Stop-gradient on the mean (Sec. 3.1, Nichol & Dhariwal 2021): L_vlb trains only the variance,
                # the mean is trained by the ε-MSE alone.
                frozen = torch.cat([mean_output.detach(), v], dim=1)
                vb = self._vb_terms_bpd(lambda *args, r=frozen, **kwargs: r, x_start, x_t, t,
                                        clip_denoised=False)["output"]
                # L_hybrid = L_simple + λ L_vlb with L_vlb ≈ T · L_t (Eq. 16): vb_t · T · λ, λ = 0.001.
                terms["vb"] = vb * (self.num_timesteps * self.vlb_weight)
                loss = loss + terms["vb"]
            else:
                mean_output = model_output
                if mean_output.shape != x_start.shape:
                    raise ValueError(f"model output {tuple(mean_output.shape)} != x shape {tuple(x_start.shape)}")
            target = noise if self.model_mean_type == "epsilon" else x_start
            terms["mse"] = mean_flat((target - mean_output) ** 2)   # Eq. 14, Ho et al. 2020 (L_simple)
            if self.loss_weight is not None:
                weight = self.loss_weight(t, self).to(device=loss.device, dtype=loss.dtype)
                terms["loss_weight"] = weight
                loss = loss + weight * terms["mse"]
            else:
                loss = loss + terms["mse"]
            terms["loss"] = loss

        if self.regularizer is not None:
            if model_output is None:  # "vlb": give the regulariser the same raw output it would otherwise see
                model_output = model(x_t, t, **model_kwargs).to(_as_float_dtype(x_start))
            terms["reg"] = self.regularizer(model, x_t, t, model_kwargs, model_output, noise, x_start, self)
            terms["loss"] = terms["loss"] + terms["reg"]
        return terms

    def calc_bpd_loop(self, model: Callable, x_start: torch.Tensor, clip_denoised: bool = True,
                      model_kwargs: Optional[dict] = None, progress: bool = False,
                      generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
        """The full variational bound in bits/dim for a batch ``x_start`` ``(B, C, H, W)``: every L_t plus the
        prior (Eq. 5, Ho et al. 2020), one fresh noise draw per term, batched over B.

        Returns ``total_bpd (B,)``, ``prior_bpd (B,)``, ``vb (B, T)``, ``xstart_mse (B, T)``, ``mse (B, T)``
        (ε-MSE); columns are indexed by t.
        """
        device = x_start.device
        B = x_start.shape[0]
        vb, xstart_mse, mse = [], [], []
        for i in _progress(range(self.num_timesteps - 1, -1, -1), progress):
            t = torch.full((B,), i, device=device, dtype=torch.long)
            noise = _randn(x_start.shape, generator, device, _as_float_dtype(x_start))
            x_t = self.q_sample(x_start, t, noise=noise)
            with torch.no_grad():
                out = self._vb_terms_bpd(model, x_start, x_t, t, clip_denoised=clip_denoised,
                                         model_kwargs=model_kwargs)
            vb.append(out["output"])
            xstart_mse.append(mean_flat((out["pred_xstart"] - x_start) ** 2))
            eps = self._predict_eps_from_xstart(x_t, t, out["pred_xstart"])
            mse.append(mean_flat((eps - noise) ** 2))
        # Collected from t = T-1 down to 0; flip so that column t holds L_t.
        vb_t = torch.stack(vb[::-1], dim=1)
        prior_bpd = self._prior_bpd(x_start)
        return {"total_bpd": vb_t.sum(dim=1) + prior_bpd, "prior_bpd": prior_bpd, "vb": vb_t,
                "xstart_mse": torch.stack(xstart_mse[::-1], dim=1), "mse": torch.stack(mse[::-1], dim=1)}


    def calc_bpd_batched(self, model: Callable, x_start: torch.Tensor, batch_size: int = 4096,
                         clip_denoised: bool = True, model_kwargs: Optional[dict] = None,
                         generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
        """:meth:`calc_bpd_loop`'s bound with several timesteps per forward pass (``batch_size`` images x t each).

        ``calc_bpd_loop`` makes T passes of batch B; on a GPU bound by kernel launches, T passes of a small batch
        cost far more than ``T * B / batch_size`` passes of a large one. The terms are the same (:meth:`_vb_terms_bpd`
        at every t, :meth:`_prior_bpd`), evaluated on groups of ``batch_size // B`` timesteps, and the noise is drawn
        in the loop's order (t = T-1 down to 0, one ``(B, C, H, W)`` draw per t): with the same ``generator`` the
        numbers are the loop's up to float rounding.

        Args:
            model: the denoiser; x_start: ``(B, C, H, W)`` in [-1, 1]; model_kwargs: ``(B, ...)`` tensors (repeated
                for every timestep of a group).
        Returns: ``total_bpd (B,)``, ``prior_bpd (B,)``, ``vb (B, T)`` (column t holds L_t), as ``calc_bpd_loop``.
        """
        B, T = x_start.shape[0], self.num_timesteps
        group = max(1, batch_size // B)
        dtype = _as_float_dtype(x_start)
        columns: Dict[int, torch.Tensor] = {}
        for top in range(T - 1, -1, -group):
            ts = list(range(top, max(top - group, -1), -1))             # descending, as calc_bpd_loop
            noise = torch.cat([_randn(x_start.shape, generator, x_start.device, dtype) for _ in ts])
            t = torch.tensor(ts, device=x_start.device, dtype=torch.long).repeat_interleave(B)
            xs = x_start.repeat(len(ts), *([1] * (x_start.ndim - 1)))
            kwargs = {k: v.repeat(len(ts), *([1] * (v.ndim - 1))) if torch.is_tensor(v) else v
                      for k, v in (model_kwargs or {}).items()}
            with torch.no_grad():
                out = self._vb_terms_bpd(model, xs, self.q_sample(xs, t, noise=noise), t,
                                         clip_denoised=clip_denoised, model_kwargs=kwargs)["output"]
            for k, ti in enumerate(ts):
                columns[ti] = out[k * B:(k + 1) * B]
        vb = torch.stack([columns[ti] for ti in range(T)], dim=1)
        prior = self._prior_bpd(x_start)
        return {"total_bpd": vb.sum(dim=1) + prior, "prior_bpd": prior, "vb": vb}


class SpacedDiffusion(GaussianDiffusion):
    """A diffusion that keeps only the original steps in ``use_timesteps``, for faster sampling.

    Betas are recomputed as β'_k = 1 − ᾱ_{s_k}/ᾱ_{s_{k-1}} so that ᾱ is unchanged on the kept steps
    (Nichol & Dhariwal 2021, Sec. 4). ``timestep_map[k] = s_k``; the model and ``cond_fn`` always receive the
    original timesteps. ``kwargs`` are those of :class:`GaussianDiffusion` (``betas`` = the original schedule).
    """

    def __init__(self, use_timesteps, **kwargs):
        if "betas" not in kwargs:
            raise ValueError("SpacedDiffusion needs betas=<the original schedule>")
        original_betas = np.asarray(kwargs["betas"], dtype=np.float64)
        steps = _as_sorted_steps(use_timesteps, len(original_betas))
        self.use_timesteps = set(steps)
        self.original_num_steps = len(original_betas)
        alphas_cumprod = np.cumprod(1.0 - original_betas)
        kept = alphas_cumprod[steps]
        new_betas = 1.0 - kept / np.append(1.0, kept[:-1])
        self.timestep_map = np.asarray(steps, dtype=np.int64)
        kwargs["betas"] = new_betas
        super().__init__(**kwargs)


def create_diffusion(steps: int = 1000, noise_schedule: str = "linear", learn_sigma: bool = False,
                     sigma_small: bool = False, predict_xstart: bool = False, loss: str = "simple",
                     rescale_timesteps: bool = False, timestep_respacing="", loss_weight=None, regularizer=None,
                     vlb_weight: float = 0.001) -> SpacedDiffusion:
    """Build a (possibly respaced) diffusion from flat options, like improved-diffusion's ``create_gaussian_diffusion``.

    ``learn_sigma`` -> ``learned_range`` (use ``loss="hybrid"`` or ``"vlb"``); otherwise ``sigma_small`` picks
    ``fixed_small`` over ``fixed_large``. ``timestep_respacing``: ``""`` (all steps) or a :func:`space_timesteps`
    spec such as ``"ddim50"`` or ``"100"``.
    """
    betas = get_named_beta_schedule(noise_schedule, steps)
    if learn_sigma:
        var_type = "learned_range"
    else:
        var_type = "fixed_small" if sigma_small else "fixed_large"
    use_timesteps = space_timesteps(steps, timestep_respacing) if timestep_respacing else range(steps)
    return SpacedDiffusion(use_timesteps, betas=betas,
                           model_mean_type="start_x" if predict_xstart else "epsilon",
                           model_var_type=var_type, loss_type=loss, rescale_timesteps=rescale_timesteps,
                           loss_weight=loss_weight, regularizer=regularizer, vlb_weight=vlb_weight)


# --------------------------------------------------------------------------------------------- sampling helpers
def _randn(shape, generator: Optional[torch.Generator], device, dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise; with a ``generator`` the draw happens on the generator's device (then moved)."""
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    noise = torch.randn(shape, generator=generator, device=generator.device, dtype=dtype)
    return noise.to(device)


def _nonzero_mask(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(B, 1, ..., 1)`` float mask, 0 where t == 0 (no noise on the last step)."""
    return (t != 0).to(_as_float_dtype(x)).view(-1, *([1] * (x.ndim - 1)))


def _resolve_device(device, noise, model, generator, model_kwargs=None):
    """Sampling device: ``device``, else that of ``noise``, the model's parameters, a tensor in ``model_kwargs``
    (for wrapped models such as :func:`lt_diffusion.guidance.cfg_model_fn`), the generator, or CPU."""
    if device is not None:
        return torch.device(device)
    if noise is not None:
        return noise.device
    if isinstance(model, torch.nn.Module):
        param = next(model.parameters(), None)
        if param is not None:
            return param.device
    for value in (model_kwargs or {}).values():
        if isinstance(value, torch.Tensor):
            return value.device
    if generator is not None:
        return generator.device
    return torch.device("cpu")


def _initial_noise(shape, noise, generator, device) -> torch.Tensor:
    if noise is not None:
        if tuple(noise.shape) != tuple(shape):
            raise ValueError(f"noise shape {tuple(noise.shape)} != requested shape {tuple(shape)}")
        return noise.to(device)
    return _randn(tuple(shape), generator, device)


def _progress(iterable, progress: bool):
    if not progress:
        return iterable
    from .progress import tqdm
    return tqdm(iterable)
