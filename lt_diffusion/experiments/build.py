"""From specs to engine objects: the diffusion (with the papers' hooks), the model of an arm, its data, and one
sampler for every chapter. Nothing here adds maths; each function hands a spec's fields to the engine.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch

from lt_diffusion.experiments.specs import Arm, DataSpec, DiffusionSpec

__all__ = ["default_device", "build_diffusion", "build_model", "load_data", "make_sampler", "amp_model"]


def default_device() -> torch.device:
    """``cuda`` when available, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_diffusion(spec: DiffusionSpec, *, timestep_respacing: Union[str, int] = "",
                    use_timesteps: Optional[Sequence[int]] = None, sigma_small: Optional[bool] = None,
                    num_classes: Optional[int] = None, class_counts: Optional[Sequence[int]] = None):
    """:func:`lt_diffusion.diffusion.create_diffusion` with ``spec``'s arguments and hooks.

    Args:
        timestep_respacing: ``""`` (all T steps), an int / ``"100"`` (evenly strided) or ``"ddimN"``.
        use_timesteps: an explicit set of kept original steps (e.g. only t < t_start, to start the reverse process
            part-way); the respaced diffusion copies every setting of the full one.
        sigma_small: sample a fixed-variance model with β̃_t (True) or β_t (False) instead of ``spec.sigma_small``.
        num_classes, class_counts: the classes of the model and the training counts per class, for the CBDM
            regulariser (``spec.cbdm_tau > 0``).
    The hooks: ``loss_weight = P2Weight(p2_gamma, p2_k)`` when ``p2_gamma > 0``; ``regularizer =
    CBDMRegularizer(...)`` when ``cbdm_tau > 0``.
    """
    from lt_diffusion.diffusion import SpacedDiffusion, create_diffusion

    loss_weight = regularizer = None
    if spec.p2_gamma > 0:
        from lt_diffusion.weighting import P2Weight
        loss_weight = P2Weight(spec.p2_gamma, spec.p2_k)
    if spec.cbdm_tau > 0:
        from lt_diffusion.cbdm import CBDMRegularizer
        if num_classes is None:
            raise ValueError("cbdm_tau > 0: build_diffusion needs num_classes (the model's real classes)")
        regularizer = CBDMRegularizer(num_classes, tau=spec.cbdm_tau, gamma=spec.cbdm_gamma,
                                      label_dist=spec.cbdm_label_dist, class_counts=class_counts,
                                      num_labels=spec.cbdm_num_labels)
    respacing = "" if str(timestep_respacing) in ("", "None", str(spec.steps)) else str(timestep_respacing)
    diffusion = create_diffusion(
        steps=spec.steps, noise_schedule=spec.noise_schedule, learn_sigma=spec.learn_sigma,
        sigma_small=spec.sigma_small if sigma_small is None else sigma_small, loss=spec.loss,
        rescale_timesteps=spec.rescale_timesteps, timestep_respacing="" if use_timesteps is not None else respacing,
        loss_weight=loss_weight, regularizer=regularizer, vlb_weight=spec.vlb_weight)
    if use_timesteps is None:
        return diffusion
    return SpacedDiffusion(sorted(int(s) for s in use_timesteps), betas=diffusion.betas,
                           model_mean_type=diffusion.model_mean_type, model_var_type=diffusion.model_var_type,
                           loss_type=diffusion.loss_type, rescale_timesteps=diffusion.rescale_timesteps,
                           loss_weight=diffusion.loss_weight, regularizer=diffusion.regularizer,
                           vlb_weight=diffusion.vlb_weight)


def build_model(arm: Arm, *, seed: int = 0, device=None) -> torch.nn.Module:
    """A freshly initialised model of ``arm`` (weights drawn under ``torch.manual_seed(seed)``, the global RNG
    left untouched): UNetModel, ClassTableGenerator (``arm.train.num_classes`` table rows), EncoderUNetModel, or a
    clean classifier (:func:`lt_diffusion.classify.build_classifier`)."""
    from lt_diffusion import classify
    from lt_diffusion.inversion import ClassTableGenerator
    from lt_diffusion.models import EncoderUNetModel, UNetModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if arm.kind == "denoiser":
            model = UNetModel(arm.model)
        elif arm.kind == "generator":
            model = ClassTableGenerator(arm.model, num_classes=arm.train.num_classes)
        elif arm.kind == "noisy_classifier":
            model = EncoderUNetModel(arm.model)
        else:
            model = classify.build_classifier(arm.model, arm.train.num_classes)
    return model.to(device) if device is not None else model


def load_data(spec: DataSpec):
    """The :class:`lt_diffusion.data.ImageDataset` of ``spec``: the CIFAR-10 split, its class-balanced subset of
    ``num_images``, or its long-tailed subset (``imb_factor``, ``n_max``)."""
    from lt_diffusion.data import balanced_subset, load_cifar10, load_cifar10_lt, long_tailed_subset

    if spec.imb_factor is not None:
        if spec.split == "train" and spec.n_max in (None, 5000):   # the cached CIFAR-10-LT (a GPU bundle ships it)
            return load_cifar10_lt(spec.imb_factor)
        return long_tailed_subset(load_cifar10(spec.split), spec.imb_factor, n_max=spec.n_max)
    ds = load_cifar10(spec.split)
    if spec.num_images is not None and spec.num_images < len(ds):
        ds = balanced_subset(ds, spec.num_images)
    return ds


class _Autocast:
    """Calls ``model`` under bfloat16 autocast on CUDA (the engine casts the output back to float32)."""

    def __init__(self, model, enabled: bool):
        self.model, self.enabled = model, enabled

    def __call__(self, x, t, **kwargs):
        if self.enabled and x.is_cuda:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return self.model(x, t, **kwargs)
        return self.model(x, t, **kwargs)


def amp_model(model, enabled: bool = True) -> Callable:
    """``model`` run under bfloat16 autocast on CUDA (a no-op on CPU), for engine loops called directly, e.g.
    ``diffusion.calc_bpd_batched(amp_model(ema), x)``; the engine casts the output to float32 before any
    Gaussian arithmetic."""
    return _Autocast(model, enabled)


def _null_label_of(model) -> Optional[int]:
    n = getattr(model, "num_classes", None)
    return n if n is not None else getattr(getattr(model, "config", None), "num_classes", None)


def make_sampler(spec: DiffusionSpec, model, *, sample_steps: Union[int, str, None] = None,
                 method: str = "ancestral", eta: float = 0.0, use_timesteps: Optional[Sequence[int]] = None,
                 sigma_small: Optional[bool] = None, clip_denoised: bool = True, amp: bool = True,
                 cond_fn: Optional[Callable] = None, guidance_scale: Optional[float] = None, convention: str = "w",
                 null_label: Optional[int] = None, null_cond: Optional[torch.Tensor] = None,
                 unconditional: bool = False, device=None) -> Callable:
    """One sampler for labels, continuous conditions and classifier-free guidance, with the signature
    :func:`lt_diffusion.sampling.generate` expects: ``sample(batch_size, conditions=None, generator=None) ->
    (B, C, H, W)`` float in [-1, 1].

    ``conditions``: integer ``(B,)`` class labels (``model_kwargs["y"]``), float ``(B, D)`` vectors
    (``model_kwargs["cond"]``, Diffusion Inversion), or None.

    Args:
        spec: the :class:`DiffusionSpec` the model was trained with; model: the denoiser (usually the EMA copy).
        sample_steps: respaced steps (int, or a ``space_timesteps`` string such as ``"ddim50"``); None: all T.
        method: ``"ancestral"`` (``p_sample_loop``) or ``"ddim"`` (``ddim_sample_loop`` with ``eta``).
        use_timesteps, sigma_small: see :func:`build_diffusion`.
        amp: run the model under bfloat16 autocast on CUDA.
        cond_fn: a classifier-style guidance hook (ADM, minority guidance).
        guidance_scale: classifier-free guidance (:func:`lt_diffusion.guidance.cfg_model_fn`, one batched forward)
            with this strength in ``convention`` ``"w"`` ((1 + w) ε_c − w ε_∅) or ``"g"`` (ε_∅ + g (ε_c − ε_∅));
            ∅ is ``null_label`` (default: the model's ``num_classes``) for labels, ``null_cond`` for vectors.
        unconditional: give the model the null label while the labels go only to ``cond_fn`` (the unconditional
            half of a model trained with label dropout, guided by a classifier).
        device: default: the model's device.
    The function has attributes ``diffusion`` (the respaced engine diffusion) and ``num_steps``.
    """
    from lt_diffusion.guidance import cfg_model_fn

    if method not in ("ancestral", "ddim"):
        raise ValueError(f"method must be 'ancestral' or 'ddim', got {method!r}")
    diffusion = build_diffusion(spec, timestep_respacing="" if sample_steps is None else sample_steps,
                                use_timesteps=use_timesteps, sigma_small=sigma_small)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    null_label = _null_label_of(model) if null_label is None else null_label
    if unconditional and null_label is None:
        raise ValueError("unconditional=True feeds the null label: the model needs num_classes")
    net = model
    if unconditional:
        def net(x, t, y=None, **kw):  # noqa: E306 - the null label for the model, y stays for cond_fn
            return model(x, t, y=torch.full((x.shape[0],), null_label, dtype=torch.long, device=x.device), **kw)
    if guidance_scale is not None:
        net = cfg_model_fn(net, guidance_scale, null_label=null_label, convention=convention,
                           null_cond=None if null_cond is None else null_cond.to(device))
    net = _Autocast(net, amp)
    config = getattr(model, "config", None)
    shape = (getattr(config, "in_channels", 3), getattr(config, "image_size", 32))

    def sample(batch_size: int, conditions=None, generator=None):
        kwargs = {}
        if conditions is not None:
            key = "cond" if torch.is_floating_point(conditions) else "y"
            kwargs[key] = conditions.to(device)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                loop = diffusion.ddim_sample_loop if method == "ddim" else diffusion.p_sample_loop
                extra = {"eta": eta} if method == "ddim" else {}
                return loop(net, (batch_size, shape[0], shape[1], shape[1]), clip_denoised=clip_denoised,
                            cond_fn=cond_fn, model_kwargs=kwargs, device=device, generator=generator, **extra)
        finally:
            model.train(was_training)

    sample.diffusion = diffusion
    sample.num_steps = diffusion.num_timesteps
    return sample
