"""The layer between the presets and the engine, one module per job:

* :mod:`~lt_diffusion.experiments.specs` — the records a preset is made of (:class:`Arm`, :class:`DiffusionSpec`,
  :class:`DataSpec`, :class:`EvalSpec`, :class:`ChapterPreset`);
* :mod:`~lt_diffusion.experiments.build` — specs to engine objects (diffusion, model, data, :func:`make_sampler`);
* :mod:`~lt_diffusion.experiments.training` — :func:`train_model`, the one training path, and :func:`load_trained`;
* :mod:`~lt_diffusion.experiments.evaluate` — the FID reference, :func:`score_features`, :func:`sample_and_score`;
* :mod:`~lt_diffusion.experiments.results` — ``results/<chapter>.json``;
* :mod:`~lt_diffusion.experiments.runs` — saved runs (model cards) and :func:`train_or_load`, which a chapter's
  ``CHECKPOINT_DIR`` uses;
* :mod:`~lt_diffusion.experiments.cost` — the one projection of a preset's GPU time;
* :mod:`~lt_diffusion.experiments.summary` — chapter headlines and the results page.
"""
from .build import amp_model, build_diffusion, build_model, default_device, load_data, make_sampler
from .cost import cost_rows, projected_gpu_seconds
from .evaluate import (Reference, ScoreCurve, classifier_accuracy, fid_reference, highpass_energy,
                       learned_variance_ratio, one_step_reconstructions, rarity_table, reference_from_images,
                       sample_and_score, score_features, score_sweep, seconds_per_sample)
from .results import finish_chapter, results_dir, save_results, start_chapter
from .runs import SavedRunError, model_card, read_model_card, train_or_load, write_model_card
from .specs import Arm, ChapterPreset, DataSpec, DiffusionSpec, EvalSpec
from .training import Marks, TrainResult, load_trained, train_model

__all__ = ["Arm", "ChapterPreset", "DataSpec", "DiffusionSpec", "EvalSpec", "Marks", "Reference", "ScoreCurve",
           "TrainResult", "amp_model", "build_diffusion", "build_model", "classifier_accuracy", "cost_rows",
           "default_device", "fid_reference", "finish_chapter", "highpass_energy", "learned_variance_ratio",
           "load_data", "load_trained", "make_sampler", "one_step_reconstructions", "projected_gpu_seconds",
           "rarity_table", "read_model_card", "reference_from_images", "results_dir", "SavedRunError", "model_card",
           "write_model_card", "train_or_load", "sample_and_score", "save_results",
           "score_features", "score_sweep", "seconds_per_sample", "start_chapter", "train_model"]
