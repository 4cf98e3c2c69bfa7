"""Chapter helpers: thin, documented wrappers over the engine that several chapters share.

The notebooks import these so that a chapter reads as "train this preset, sample it, score it" while the
maths stays in the engine modules (:mod:`lt_diffusion.diffusion`, :mod:`lt_diffusion.train`, ...), where
the chapters show it with ``inspect.getsource``.
"""
from .common import (DiffusionSpec, EvalSpec, TrainSpec, bf16_model, build_diffusion, calc_bpd_batched, build_model, default_device,
                     evaluate_fid, fid_reference_stats, load_train_images, make_sampler, projected_gpu_seconds,
                     results_dir, save_results, train_model)

__all__ = [
    "DiffusionSpec",
    "TrainSpec",
    "EvalSpec",
    "build_diffusion",
    "build_model",
    "load_train_images",
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
