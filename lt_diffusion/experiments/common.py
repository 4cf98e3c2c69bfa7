"""Shared chapter helpers: specs for a run, and thin wrappers that hand them to the engine.

A chapter preset (``lt_diffusion/presets/<chapter>.py``) is built from three small frozen records:

* :class:`DiffusionSpec` — which forward process and objective (T, schedule, L_simple / L_hybrid / L_vlb,
  timestep sampler); turned into a diffusion by :func:`build_diffusion`.
* :class:`TrainSpec` — how long and how to train (batch, lr, steps, EMA, precision); consumed by
  :func:`train_model`.
* :class:`EvalSpec` — how many samples, with how many sampling steps, against which FID reference.

plus a :class:`lt_diffusion.models.UNetConfig`. The functions here only translate these records into the
engine's own calls (:mod:`lt_diffusion.diffusion`, :mod:`lt_diffusion.train`, :mod:`lt_diffusion.data`,
:mod:`lt_diffusion.sampling`, :mod:`lt_diffusion.metrics`); they add no maths of their own.

Engine modules are imported inside the functions, so presets can import the specs cheaply.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

OBJECTIVES = ("simple", "hybrid", "vlb")
SCHEDULE_SAMPLERS = ("uniform", "loss-second-moment")

__all__ = [
    "OBJECTIVES",
    "H100_BOOK_TRAIN_IMG_PER_S",
    "H100_BOOK_SAMPLE_IMG_PER_S",
    "H100_INCEPTION_IMG_PER_S",
    "SCHEDULE_SAMPLERS",
    "DiffusionSpec",
    "TrainSpec",
    "EvalSpec",
    "build_diffusion",
    "build_model",
    "load_train_images",
    "trainer_config",
    "train_model",
    "make_sampler",
    "fid_reference_stats",
    "evaluate_fid",
    "save_results",
    "results_dir",
    "default_device",
    "projected_gpu_seconds",
    "bf16_model",
    "calc_bpd_batched",
]

# Throughputs behind the presets' cost projections on one H100 (bf16), in one place so every chapter projects
# with the same numbers (DESIGN.md's cost model; benchmarks/results/*.json):
# - the ``book`` UNet through the Trainer (GPU loader, EMA, logging) at batch 512: measured 4,614 img/s in chapter 1's
#   book run (~5,200 at batch 1024);
# - its sampling forward passes at batch 1000: measured ~75 ms per pass (DDIM-50 draws 10k samples in 38 s);
# - Inception pool3 features: not measured on the GPU yet (no GPU since the metrics benchmark existed); assumed.
H100_BOOK_TRAIN_IMG_PER_S = 4_600.0
H100_BOOK_SAMPLE_IMG_PER_S = 13_300.0
H100_INCEPTION_IMG_PER_S = 3_000.0


@dataclass(frozen=True)
class DiffusionSpec:
    """The forward process and the training objective (names as in openai/improved-diffusion).

    Attributes:
        steps: T, the number of diffusion steps.
        noise_schedule: ``"linear"`` (Ho et al. 2020) or ``"cosine"`` (Nichol & Dhariwal 2021, Eq. 17).
        objective: ``"simple"`` (ε-MSE, fixed variance), ``"hybrid"`` (L_simple + λ L_vlb with learned-range
            variance and a stop-gradient on the mean) or ``"vlb"`` (the bound alone, learned variance).
        sigma_small: with a fixed variance, use β̃_t (posterior variance) instead of β_t.
        schedule_sampler: ``"uniform"`` t ~ U{0..T-1}, or ``"loss-second-moment"`` (importance sampling of t,
            Nichol & Dhariwal 2021, Eq. 18).
        rescale_timesteps: the model sees ``t * 1000 / T`` (improved-diffusion's default).
        rescale_learned_sigmas: scale the bound term by T/1000 in L_hybrid, i.e. λ = 0.001 (Eq. 16).
    """

    steps: int = 1000
    noise_schedule: str = "linear"
    objective: str = "simple"
    sigma_small: bool = False
    schedule_sampler: str = "uniform"
    rescale_timesteps: bool = True
    rescale_learned_sigmas: bool = True

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.schedule_sampler not in SCHEDULE_SAMPLERS:
            raise ValueError(f"schedule_sampler must be one of {SCHEDULE_SAMPLERS}, got {self.schedule_sampler!r}")
        if self.noise_schedule not in ("linear", "cosine"):
            raise ValueError(f"noise_schedule must be 'linear' or 'cosine', got {self.noise_schedule!r}")
        if self.steps < 2:
            raise ValueError(f"steps must be >= 2, got {self.steps}")

    @property
    def learn_sigma(self) -> bool:
        """L_hybrid and L_vlb learn the variance (the model outputs ε and v); L_simple keeps it fixed."""
        return self.objective != "simple"

    @property
    def label(self) -> str:
        """Short row label such as ``"cosine / L_hybrid"`` (``+ IS`` when t is importance-sampled)."""
        lab = f"{self.noise_schedule} / L_{self.objective}"
        return lab + (" + IS" if self.schedule_sampler != "uniform" else "")


@dataclass(frozen=True)
class TrainSpec:
    """How a model is trained (consumed by :func:`train_model`, mapped onto ``lt_diffusion.train.TrainConfig``).

    Attributes:
        steps: optimiser steps.
        batch_size: images per step.
        lr: AdamW learning rate (constant after warm-up).
        weight_decay: AdamW weight decay (0 in improved-diffusion).
        warmup_steps: linear learning-rate warm-up (DDPM: 5000).
        grad_clip: gradient-norm clip, 0 or None disables (DDPM: 1.0).
        ema_rate: EMA decay of the weights used for sampling.
        ema_warmup: ramp the EMA rate as ``min(ema_rate, (1 + n) / (10 + n))`` (see
            :class:`lt_diffusion.train.TrainConfig`). On for the chapters' short runs, where a constant rate keeps
            ``ema_rate**steps`` of the initial weights in the average (measured on CPU after 300 steps at 0.992:
            held-out ε-MSE 0.086 with the constant rate, 0.054 with the warm-up, 0.053 for the raw weights; see
            DESIGN.md); the ``paper`` presets turn it off to match the official code.
        random_flip: random horizontal flips (DDPM: yes; improved-diffusion: no).
        num_train_images: use the first N images of the CIFAR-10 train set (None: all 50,000).
        bf16: bfloat16 autocast on CUDA.
        compile: ``torch.compile`` the model (pays off only for long runs).
        log_every: record the training loss every this many steps.
    """

    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: Optional[float] = 1.0
    ema_rate: float = 0.9999
    ema_warmup: bool = True
    random_flip: bool = True
    num_train_images: Optional[int] = None
    bf16: bool = True
    compile: bool = False
    log_every: int = 1

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"steps, batch_size and lr must be positive, got {self.steps}, {self.batch_size}, {self.lr}")
        if not 0.0 <= self.ema_rate < 1.0:
            raise ValueError(f"ema_rate must lie in [0, 1), got {self.ema_rate}")

    @property
    def images_seen(self) -> int:
        """Training images processed: ``steps * batch_size``."""
        return self.steps * self.batch_size


@dataclass(frozen=True)
class EvalSpec:
    """How samples are drawn and scored.

    Attributes:
        num_samples: samples for FID.
        sample_steps: sampling steps (respacing of the T training steps; T means no respacing).
        batch_size: sampling batch.
        fid_reference: ``"train"`` or ``"test"`` split of CIFAR-10 for the reference statistics.
        fid_reference_images: how many reference images (None: the whole split).
        grid: images in the sample grid figure.
        comparable: False for smoke-scale metrics, which are printed with "smoke: not comparable".
    """

    num_samples: int
    sample_steps: int
    batch_size: int = 500
    fid_reference: str = "train"
    fid_reference_images: Optional[int] = None
    grid: int = 64
    comparable: bool = True

    def __post_init__(self):
        if self.fid_reference not in ("train", "test"):
            raise ValueError(f"fid_reference must be 'train' or 'test', got {self.fid_reference!r}")
        if self.num_samples < 2:
            raise ValueError(f"FID needs at least 2 samples, got {self.num_samples}")


def projected_gpu_seconds(train: TrainSpec, evaluation: EvalSpec, train_img_per_s: float,
                          sample_img_per_s: float, n_trainings: int = 1, n_sample_sets: int = 1,
                          inception_img_per_s: float = H100_INCEPTION_IMG_PER_S) -> Dict[str, float]:
    """Projected GPU seconds of a run from throughputs (an estimate, not a measurement).

    ``train_img_per_s``: training images per second (forward + backward); ``sample_img_per_s``: denoiser
    forward passes per second, one per image per sampling step. The Inception term covers the samples of
    every sample set and the reference images (50,000 for a whole CIFAR-10 train split).

    Returns ``{"train_s", "sample_s", "fid_s", "total_s"}``.
    """
    train_s = n_trainings * train.images_seen / train_img_per_s
    sample_s = n_sample_sets * evaluation.num_samples * evaluation.sample_steps / sample_img_per_s
    n_ref = evaluation.fid_reference_images or (50_000 if evaluation.fid_reference == "train" else 10_000)
    fid_s = (n_sample_sets * evaluation.num_samples + n_ref) / inception_img_per_s
    return {"train_s": train_s, "sample_s": sample_s, "fid_s": fid_s, "total_s": train_s + sample_s + fid_s}


# --------------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------------
def build_diffusion(spec: DiffusionSpec, timestep_respacing: Union[str, int, Sequence[int]] = "",
                    use_timesteps: Optional[Sequence[int]] = None, sigma_small: Optional[bool] = None,
                    **engine_kwargs: Any):
    """The engine diffusion for ``spec`` (``lt_diffusion.diffusion.create_diffusion``).

    Args:
        spec: the run's :class:`DiffusionSpec`.
        timestep_respacing: ``""`` (all T steps), an int / ``"100"`` (evenly strided steps) or ``"ddimN"``.
        use_timesteps: an explicit set of kept original steps instead (e.g. only t < t_start, to start the
            reverse process part-way); overrides ``timestep_respacing``.
        sigma_small: override the fixed-variance choice (β̃_t instead of β_t) for sampling a L_simple model.
        engine_kwargs: passed through (``loss_weight``, ``regularizer``, ``vlb_weight``).
    """
    from lt_diffusion.diffusion import SpacedDiffusion, create_diffusion
    from lt_diffusion.schedules import get_named_beta_schedule

    small = spec.sigma_small if sigma_small is None else sigma_small
    if spec.objective == "simple" or spec.rescale_learned_sigmas:
        engine_kwargs.setdefault("vlb_weight", 0.001)
    else:  # guided-diffusion's plain MSE: the bound term is not rescaled, λ = 1/T
        engine_kwargs.setdefault("vlb_weight", 1.0 / spec.steps)
    if use_timesteps is not None:
        var_type = "learned_range" if spec.learn_sigma else ("fixed_small" if small else "fixed_large")
        return SpacedDiffusion(sorted(int(s) for s in use_timesteps),
                               betas=get_named_beta_schedule(spec.noise_schedule, spec.steps),
                               model_mean_type="epsilon", model_var_type=var_type, loss_type=spec.objective,
                               rescale_timesteps=spec.rescale_timesteps, **engine_kwargs)
    respacing = str(timestep_respacing) if timestep_respacing not in ("", None, spec.steps, str(spec.steps)) else ""
    return create_diffusion(steps=spec.steps, noise_schedule=spec.noise_schedule, learn_sigma=spec.learn_sigma,
                            sigma_small=small, loss=spec.objective, rescale_timesteps=spec.rescale_timesteps,
                            timestep_respacing=respacing, **engine_kwargs)


def build_model(config, spec: Optional[DiffusionSpec] = None, device=None, seed: int = 0):
    """A fresh :class:`lt_diffusion.models.UNetModel` from a ``UNetConfig``.

    With ``spec`` the model's ``learn_sigma`` follows the objective (L_hybrid / L_vlb output ε and v).
    The weights are initialised under ``torch.manual_seed(seed)`` so runs are repeatable.
    """
    import torch

    from lt_diffusion.models import UNetModel

    if spec is not None and config.learn_sigma != spec.learn_sigma:
        config = dataclasses.replace(config, learn_sigma=spec.learn_sigma)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = UNetModel(config)
    return model.to(device) if device is not None else model


def load_train_images(num_images: Optional[int] = None, split: str = "train"):
    """CIFAR-10 ``split`` as an ``ImageDataset``; with ``num_images`` a class-balanced subset of that size
    (``lt_diffusion.data.balanced_subset``), e.g. for smoke runs on CPU."""
    from lt_diffusion.data import balanced_subset, load_cifar10

    ds = load_cifar10(split)
    if num_images is not None and num_images < len(ds):
        ds = balanced_subset(ds, num_images)
    return ds


def default_device():
    """``cuda`` when available, else ``cpu``."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class _Autocast:
    """Calls ``model`` under bfloat16 autocast on CUDA (the engine casts the output back to float32)."""

    def __init__(self, model, enabled: bool):
        self.model, self.enabled = model, enabled

    def __call__(self, x, t, **kwargs):
        import torch

        if self.enabled and x.is_cuda:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return self.model(x, t, **kwargs)
        return self.model(x, t, **kwargs)

    def parameters(self):  # lets the engine find the device
        return self.model.parameters()


def bf16_model(model, enabled: bool = True) -> Callable:
    """Wrap ``model`` so that it runs under bfloat16 autocast on CUDA (a no-op on CPU or with ``enabled=False``).

    For engine loops called directly, e.g. ``diffusion.calc_bpd_loop(bf16_model(ema), x)``; the engine casts the
    output back to float32 before any Gaussian arithmetic.
    """
    return _Autocast(model, enabled)


def calc_bpd_batched(diffusion, model, x_start, batch_size: int = 4096, clip_denoised: bool = True,
                     generator=None) -> Dict[str, Any]:
    """``diffusion.calc_bpd_loop`` evaluated with several timesteps per forward pass.

    ``calc_bpd_loop`` runs T forward passes of batch B; on a GPU that is bound by kernel launches, T passes of a
    small batch cost far more than T·B/``batch_size`` passes of a large one. This helper evaluates the same terms
    (``diffusion._vb_terms_bpd`` at every t, ``diffusion._prior_bpd``) on groups of ``batch_size // B`` timesteps
    at once, drawing the noise in the same order as ``calc_bpd_loop`` (t = T-1 down to 0, one ``(B, C, H, W)``
    draw per t), so with the same ``generator`` it returns the same numbers up to float rounding.

    Args:
        diffusion: an engine ``GaussianDiffusion``; model: the denoiser (e.g. ``bf16_model(ema)``).
        x_start: ``(B, C, H, W)`` images in [-1, 1] on the model's device.
    Returns: ``total_bpd (B,)``, ``prior_bpd (B,)``, ``vb (B, T)`` (column t holds L_t), as ``calc_bpd_loop``.
    """
    import torch

    from lt_diffusion.diffusion import _randn

    B, T = x_start.shape[0], diffusion.num_timesteps
    group = max(1, batch_size // B)
    dtype = x_start.dtype if x_start.is_floating_point() else torch.float32
    columns: Dict[int, torch.Tensor] = {}
    for top in range(T - 1, -1, -group):
        ts = list(range(top, max(top - group, -1), -1))             # descending, as calc_bpd_loop
        noise = torch.cat([_randn(x_start.shape, generator, x_start.device, dtype) for _ in ts])
        t = torch.tensor(ts, device=x_start.device, dtype=torch.long).repeat_interleave(B)
        xs = x_start.repeat(len(ts), 1, 1, 1)
        x_t = diffusion.q_sample(xs, t, noise=noise)
        with torch.no_grad():
            out = diffusion._vb_terms_bpd(model, xs, x_t, t, clip_denoised=clip_denoised)["output"]
        for k, ti in enumerate(ts):
            columns[ti] = out[k * B:(k + 1) * B]
    vb = torch.stack([columns[ti] for ti in range(T)], dim=1)
    prior = diffusion._prior_bpd(x_start)
    return {"total_bpd": vb.sum(dim=1) + prior, "prior_bpd": prior, "vb": vb}


def make_sampler(spec: DiffusionSpec, model, *, sample_steps: Union[int, str, None] = None,
                 method: str = "ancestral", eta: float = 0.0, use_timesteps: Optional[Sequence[int]] = None,
                 sigma_small: Optional[bool] = None, clip_denoised: bool = True, bf16: bool = True,
                 cond_fn: Optional[Callable] = None, model_fn: Optional[Callable] = None,
                 device=None) -> Callable:
    """A sampling function with the signature :func:`lt_diffusion.sampling.generate` expects:
    ``sample(batch_size, labels=None, generator=None) -> (B, C, H, W)`` float in [-1, 1].

    Args:
        spec: the :class:`DiffusionSpec` the model was trained with.
        model: the denoiser (usually the EMA copy); it is put in eval mode while sampling.
        sample_steps: respaced number of steps (int, evenly strided as improved-diffusion's ``"N"``), a
            ``space_timesteps`` string (``"ddim50"``, ``"10,10,30"``), or None for all T steps.
        method: ``"ancestral"`` (``p_sample_loop``, Ho et al. 2020 Alg. 2) or ``"ddim"`` (``ddim_sample_loop``).
        eta: DDIM's η (0: deterministic).
        use_timesteps: explicit kept original steps (see :func:`build_diffusion`).
        sigma_small: sample a fixed-variance model with β̃_t (True) or β_t (False) instead of its training choice.
        bf16: run the model under bfloat16 autocast on CUDA.
        cond_fn: classifier-style guidance hook (ADM, minority guidance), passed to the engine loop.
        model_fn: a wrapper with the model's signature to call instead of ``model`` (e.g. CFG); ``model`` still
            decides the device and the image shape.
        device: default: the model's device.

    ``labels`` (long ``(B,)``), when given, are passed as ``model_kwargs={"y": labels}``. The returned function
    has attributes ``diffusion`` (the respaced engine diffusion) and ``num_steps``.
    """
    import torch

    if method not in ("ancestral", "ddim"):
        raise ValueError(f"method must be 'ancestral' or 'ddim', got {method!r}")
    respacing: Union[int, str] = "" if sample_steps is None else sample_steps
    diffusion = build_diffusion(spec, timestep_respacing=respacing, use_timesteps=use_timesteps,
                                sigma_small=sigma_small)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    net = _Autocast(model_fn if model_fn is not None else model, bf16)
    config = getattr(model, "config", None)
    image_size = getattr(config, "image_size", 32)
    channels = getattr(config, "in_channels", 3)

    def sample(batch_size: int, labels=None, generator=None):
        shape = (batch_size, channels, image_size, image_size)
        kwargs = {} if labels is None else {"y": labels}
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                if method == "ddim":
                    return diffusion.ddim_sample_loop(net, shape, clip_denoised=clip_denoised, eta=eta,
                                                      cond_fn=cond_fn, model_kwargs=kwargs, device=device,
                                                      generator=generator)
                return diffusion.p_sample_loop(net, shape, clip_denoised=clip_denoised, cond_fn=cond_fn,
                                               model_kwargs=kwargs, device=device, generator=generator)
        finally:
            model.train(was_training)

    sample.diffusion = diffusion
    sample.num_steps = diffusion.num_timesteps
    return sample


def fid_reference_stats(split: str = "train", num_images: Optional[int] = None, progress: bool = False):
    """FID reference statistics (Inception pool3 mean and covariance) of CIFAR-10 ``split``, cached on disk.

    ``num_images=None`` uses the whole split (the papers' convention: the 50,000 train images); a smaller
    number takes a class-balanced subset (smoke scale only) under its own cache key.
    """
    from lt_diffusion.metrics.fid import dataset_reference_stats

    subset = "full" if num_images is None else f"balanced{int(num_images)}"
    return dataset_reference_stats("cifar10", split, lambda: load_train_images(num_images, split).images,
                                   subset=subset, progress=progress)


def evaluate_fid(sample_fn: Callable, n: int, ref_stats, batch_size: int = 500, seed: int = 0,
                 labels=None, device=None, return_images: bool = False):
    """FID of ``n`` samples from ``sample_fn`` against ``ref_stats`` (from :func:`fid_reference_stats`).

    Samples are drawn with :func:`lt_diffusion.sampling.generate` (batch ``i`` seeded with ``seed + i``) and
    scored with :func:`lt_diffusion.metrics.fid.fid`. Returns the FID (float), or ``(fid, images)`` with the
    uint8 samples ``(n, C, H, W)`` when ``return_images``. FID is biased upwards at small ``n``: quote ``n``
    and the reference next to it.
    """
    from lt_diffusion.metrics.fid import fid
    from lt_diffusion.sampling import generate

    images = generate(sample_fn, n, min(batch_size, n), labels=labels, seed=seed, progress=False, device=device)
    value = fid(images, ref_stats, progress=False)
    return (value, images) if return_images else value


def results_dir(scale: Optional[str] = None) -> Path:
    """``<repository>/results`` when the package runs from a checkout (next to ``DESIGN.md``), else ``./results``.

    Smoke-scale results go to the ``smoke/`` subfolder, so a CI run never overwrites the committed ``book`` results.
    """
    root = Path(__file__).resolve().parents[2]
    folder = root / "results" if (root / "DESIGN.md").is_file() else Path("results").resolve()
    return folder / "smoke" if scale == "smoke" else folder


def save_results(chapter: str, results: Dict[str, Any]) -> Path:
    """:func:`lt_diffusion.provenance.save_results` into :func:`results_dir` (``results/<chapter>.json``;
    ``results/smoke/<chapter>.json`` when ``results["scale"] == "smoke"``)."""
    from lt_diffusion.provenance import save_results as _save

    return _save(chapter, results, folder=results_dir(results.get("scale")))


def trainer_config(train: TrainSpec, *, seed: int = 0, device=None, steps: Optional[int] = None,
                   log_every: Optional[int] = None, progress: bool = False, schedule_sampler: str = "uniform",
                   **extra) -> "TrainConfig":
    """The :class:`lt_diffusion.train.TrainConfig` of a :class:`TrainSpec`: the one place the chapters' specs
    become trainer settings (also for chapters that drive the :class:`~lt_diffusion.train.Trainer` in chunks).

    ``steps`` overrides ``train.steps`` (e.g. a cap for a wall-time mark); ``extra`` sets other ``TrainConfig``
    fields (``p_uncond``, ``uncond_mode``, ``num_classes``, ...).
    """
    from lt_diffusion.train import TrainConfig

    device = default_device() if device is None else device
    return TrainConfig(steps=train.steps if steps is None else steps, batch_size=train.batch_size, lr=train.lr,
                       weight_decay=train.weight_decay, warmup_steps=train.warmup_steps,
                       grad_clip=train.grad_clip or None, ema_rate=train.ema_rate, ema_warmup=train.ema_warmup,
                       schedule_sampler=schedule_sampler, amp=train.bf16, random_flip=train.random_flip, compile=train.compile, seed=seed,
                       log_every=log_every or train.log_every, device=str(device), progress=progress, **extra)


def train_model(model_config, diffusion: DiffusionSpec, train: TrainSpec, data=None, *, seed: int = 0,
                device=None, progress: bool = False, log_every: Optional[int] = None,
                trainer_kwargs: Optional[Dict[str, Any]] = None, diffusion_kwargs: Optional[Dict[str, Any]] = None):
    """Train one denoiser with :class:`lt_diffusion.train.Trainer`; returns ``(model, ema_model, history)``.

    Args:
        model_config: a :class:`lt_diffusion.models.UNetConfig` (``learn_sigma`` is set from ``diffusion``).
        diffusion: the :class:`DiffusionSpec` (objective, schedule, timestep sampler).
        train: the :class:`TrainSpec`.
        data: an ``ImageDataset`` (default: CIFAR-10 train, or its balanced subset of ``train.num_train_images``).
        seed: seeds the weights, the data order and the trainer's RNG.
        log_every: override ``train.log_every`` (history records are averages over this many steps).
        trainer_kwargs: extra :class:`lt_diffusion.train.TrainConfig` fields (``p_uncond``, ``uncond_mode``, ...).
        diffusion_kwargs: extra engine-diffusion arguments (``loss_weight`` for P2, ``regularizer`` for CBDM).

    ``history`` is the trainer's list of records (``step``, ``loss``, ``mse``/``vb``, ``loss_q0..q3``,
    ``images_per_s``, ``elapsed_s``). The model stays on ``device`` (default: CUDA when available).
    """
    from lt_diffusion.data import GPUBatchLoader
    from lt_diffusion.train import Trainer

    device = default_device() if device is None else device
    if data is None:
        data = load_train_images(train.num_train_images)
    model = build_model(model_config, diffusion, seed=seed)
    engine = build_diffusion(diffusion, **(diffusion_kwargs or {}))
    loader = GPUBatchLoader(data, train.batch_size, device=device, flip=train.random_flip, seed=seed,
                            channels_last=str(device).startswith("cuda"))
    config = trainer_config(train, schedule_sampler=diffusion.schedule_sampler, seed=seed, device=device,
                            log_every=log_every, progress=progress, **(trainer_kwargs or {}))
    trainer = Trainer(model, engine, loader, config)
    history = trainer.run()
    trainer.ema_model.eval()
    return trainer.model, trainer.ema_model, history
