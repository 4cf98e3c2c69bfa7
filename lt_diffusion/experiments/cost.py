"""What a preset would cost on one H100: one projection over one set of throughputs (an estimate, not a
measurement; the provenance cell of a chapter records what a run really took).

Measured on an NVIDIA H100 (torch 2.11, bf16; ``benchmarks/results/``): the 6.9 M-parameter ``book`` UNet trains at 4,600 img/s
through the Trainer at batch 512 and samples 13,300 denoiser passes/s at batch 1,000; the 52.5 M ``iddpm_cifar10``
UNet trains at 1,271 img/s (eager) and samples 4,942 passes/s. Assumed: Inception features at 3,000 img/s, noisy
classifiers at twice their UNet's training rate, a ResNet-18 at 8,500 img/s, 20 s of start-up.
"""
from __future__ import annotations

from typing import Dict

__all__ = ["projected_gpu_seconds", "cost_rows", "TRAIN_IMG_PER_S", "SAMPLE_PASSES_PER_S", "INCEPTION_IMG_PER_S",
           "CLASSIFIER_IMG_PER_S", "STARTUP_S"]

# keyed by model size: "small" = under 128 base channels (the book UNet family), "large" = the papers' 128
TRAIN_IMG_PER_S = {"small": 4_600.0, "large": 1_271.0}
SAMPLE_PASSES_PER_S = {"small": 13_300.0, "large": 4_942.0}
CLASSIFIER_IMG_PER_S = 8_500.0
INCEPTION_IMG_PER_S = 3_000.0
STARTUP_S = 20.0


def _size(config) -> str:
    return "small" if getattr(config, "model_channels", 0) < 128 else "large"


def projected_gpu_seconds(preset) -> Dict[str, float]:
    """Projected H100 seconds of a chapter preset: every arm's training images at its model's rate (a CBDM arm
    twice: its second forward pass is trained too), ``eval.sample_sets`` sets of ``eval.num_samples`` samples
    with ``eval.sample_steps`` steps of ``eval.forwards`` denoiser passes, Inception features of the samples and
    of the references, and start-up. Returns ``{"train_s", "sample_s", "fid_s", "startup_s", "total_s"}``."""
    train_s, size = 0.0, "small"
    for arm in preset.arms.values():
        images = arm.train.steps * arm.train.batch_size
        if arm.kind == "classifier":
            train_s += images / CLASSIFIER_IMG_PER_S
            continue
        rate = TRAIN_IMG_PER_S[_size(arm.model)] * (2.0 if arm.kind == "noisy_classifier" else 1.0)
        passes = 2.0 if arm.diffusion.cbdm_tau > 0 else 1.0
        train_s += passes * images / rate
        if arm.kind in ("denoiser", "generator"):
            size = _size(arm.model) if size == "small" else size
    ev = preset.eval
    sample_s = ev.sample_sets * ev.num_samples * ev.sample_steps * ev.forwards / SAMPLE_PASSES_PER_S[size]
    n_ref = ev.fid_reference_images or (50_000 if ev.fid_reference == "train" else 10_000)
    fid_s = (ev.sample_sets * ev.num_samples + n_ref + (ev.pr_reference_images or 0)) / INCEPTION_IMG_PER_S
    total = train_s + sample_s + fid_s + STARTUP_S
    return {"train_s": train_s, "sample_s": sample_s, "fid_s": fid_s, "startup_s": STARTUP_S, "total_s": total}


def cost_rows(chapter: str):
    """One row per scale of ``chapter``: arms, training images, and the projection in hours and minutes
    (for :func:`lt_diffusion.plotting.metrics_table`)."""
    from lt_diffusion.presets import SCALES, get_preset

    rows = []
    for scale in SCALES:
        p = get_preset(chapter, scale)
        c = projected_gpu_seconds(p)
        rows.append({"scale": scale, "arms": len(p.arms),
                     "training images (M)": sum(a.train.steps * a.train.batch_size for a in p.arms.values()) / 1e6,
                     "train (h)": c["train_s"] / 3600, "sampling + FID (h)": (c["sample_s"] + c["fid_s"]) / 3600,
                     "total (min)": c["total_s"] / 60})
    return rows
