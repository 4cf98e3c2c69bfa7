"""The records a chapter preset is made of: what to train (an :class:`Arm`), on which data, with which diffusion,
and how to sample and score. Plain frozen data; each record checks its own values.

An :class:`Arm` is one training run: a model configuration, a :class:`lt_diffusion.train.TrainConfig` (the one
training record, handed unchanged to the :class:`~lt_diffusion.train.Trainer`), a :class:`DataSpec` and, for the
models that see noised images, a :class:`DiffusionSpec`. :func:`lt_diffusion.experiments.train_model` trains any
arm; a chapter preset (:class:`ChapterPreset`) lists its arms by name, so ``(chapter, scale, arm name)`` names a run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from lt_diffusion.models import ClassifierConfig, UNetConfig
from lt_diffusion.train import TrainConfig

__all__ = ["LOSSES", "ARM_KINDS", "CLASSIFIER_ARCHS", "DiffusionSpec", "DataSpec", "EvalSpec", "Arm",
           "ChapterPreset"]

LOSSES = ("simple", "hybrid", "vlb")
ARM_KINDS = ("denoiser", "generator", "noisy_classifier", "classifier")
CLASSIFIER_ARCHS = ("resnet18", "tiny_cnn")


@dataclass(frozen=True)
class DiffusionSpec:
    """The arguments of :func:`lt_diffusion.diffusion.create_diffusion`, plus the papers' hooks as data.

    Attributes:
        steps, noise_schedule, learn_sigma, sigma_small, loss, rescale_timesteps, vlb_weight: as
            ``create_diffusion`` (``loss``: ``"simple"`` ε-MSE, ``"hybrid"`` L_simple + λ L_vlb with a learned
            variance, ``"vlb"`` the bound alone; ``vlb_weight`` is λ, 0.001 in Improved DDPM).
        p2_gamma, p2_k: P2 weighting (chapter 05, Eq. {eq}`p2-weight`): the ε-MSE is multiplied by
            ``1 / (k + SNR)^γ``; γ = 0 leaves the loss unweighted (no ``loss_weight`` hook).
        cbdm_tau, cbdm_gamma, cbdm_label_dist, cbdm_num_labels: CBDM's regulariser (chapter 06, Eq.
            {eq}`cbdm-loss`): strength τ (0: no ``regularizer`` hook), commitment weight γ, the distribution of y'
            (``"train"`` label frequencies or ``"uniform"``) and |Y'|.
    """

    steps: int = 1000
    noise_schedule: str = "linear"
    learn_sigma: bool = False
    sigma_small: bool = False
    loss: str = "simple"
    rescale_timesteps: bool = True
    vlb_weight: float = 0.001
    p2_gamma: float = 0.0
    p2_k: float = 1.0
    cbdm_tau: float = 0.0
    cbdm_gamma: float = 0.25
    cbdm_label_dist: str = "train"
    cbdm_num_labels: int = 1

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.noise_schedule not in ("linear", "cosine"):
            raise ValueError(f"noise_schedule must be 'linear' or 'cosine', got {self.noise_schedule!r}")
        if self.steps < 2:
            raise ValueError(f"steps must be >= 2, got {self.steps}")
        if self.learn_sigma != (self.loss != "simple"):
            raise ValueError(f"loss={self.loss!r} with learn_sigma={self.learn_sigma}: L_hybrid and L_vlb train a "
                             "learned variance, L_simple gives it no gradient; set learn_sigma=(loss != 'simple')")
        if self.p2_gamma < 0 or self.p2_k <= 0:
            raise ValueError(f"P2 needs p2_gamma >= 0 and p2_k > 0, got {self.p2_gamma}, {self.p2_k}")
        if self.p2_gamma > 0 and self.loss == "vlb":
            raise ValueError("p2_gamma weights the ε-MSE term, which loss='vlb' does not have")
        if self.cbdm_tau < 0 or self.cbdm_num_labels < 1:
            raise ValueError(f"CBDM needs cbdm_tau >= 0 and cbdm_num_labels >= 1, got {self.cbdm_tau}, "
                             f"{self.cbdm_num_labels}")
        if self.cbdm_label_dist not in ("train", "uniform"):
            raise ValueError(f"cbdm_label_dist must be 'train' or 'uniform', got {self.cbdm_label_dist!r}")


@dataclass(frozen=True)
class DataSpec:
    """Which CIFAR-10 images an arm trains on.

    Attributes:
        split: ``"train"`` or ``"test"``.
        num_images: a class-balanced subset of this size (the first images of each class; None: the whole split).
        imb_factor, n_max: a long-tailed subset (Cao et al. 2019): class c keeps ``n_max * imb_factor^(c/9)``
            images (``n_max`` None: the largest class, 5,000).
        from_arm: the data are made by the chapter from another arm's output (generated images, minority levels);
            :func:`lt_diffusion.experiments.train_model` then needs ``data=`` and the fields above describe the real
            images those data start from.
    """

    split: str = "train"
    num_images: Optional[int] = None
    imb_factor: Optional[float] = None
    n_max: Optional[int] = None
    from_arm: Optional[str] = None

    def __post_init__(self):
        if self.split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {self.split!r}")
        if self.num_images is not None and self.imb_factor is not None:
            raise ValueError("DataSpec takes either num_images (balanced) or imb_factor (long-tailed), not both")
        if self.imb_factor is not None and not 0 < self.imb_factor <= 1:
            raise ValueError(f"imb_factor must lie in (0, 1], got {self.imb_factor}")
        if self.n_max is not None and self.imb_factor is None:
            raise ValueError("n_max sizes a long-tailed subset: set imb_factor too")
        if self.num_images is not None and self.num_images < 1:
            raise ValueError(f"num_images must be positive, got {self.num_images}")


@dataclass(frozen=True)
class EvalSpec:
    """How a chapter samples and scores.

    Attributes:
        num_samples: samples per scored set; sample_steps: respaced sampling steps; batch_size: sampling batch.
        fid_reference, fid_reference_images: CIFAR-10 split and size (None: all of it) of the FID statistics.
        pr_reference_images: real train images whose features are the precision / recall / KID reference
            (None: no such reference).
        grid: images in a sample-grid figure.
        sample_sets: how many sets of ``num_samples`` the chapter draws (for the cost projection only).
        forwards: denoiser passes per sampling step (2 with classifier-free guidance).
    """

    num_samples: int
    sample_steps: int
    batch_size: int = 500
    fid_reference: str = "train"
    fid_reference_images: Optional[int] = None
    pr_reference_images: Optional[int] = None
    grid: int = 64
    sample_sets: int = 1
    forwards: int = 1

    def __post_init__(self):
        if self.fid_reference not in ("train", "test"):
            raise ValueError(f"fid_reference must be 'train' or 'test', got {self.fid_reference!r}")
        if self.num_samples < 2:
            raise ValueError(f"FID needs at least 2 samples, got {self.num_samples}")
        if self.sample_steps < 1 or self.batch_size < 1 or self.sample_sets < 0 or self.forwards < 1:
            raise ValueError("sample_steps, batch_size and forwards must be >= 1 and sample_sets >= 0")


@dataclass(frozen=True)
class Arm:
    """One training run, as plain data.

    Attributes:
        kind: ``"denoiser"`` (a :class:`~lt_diffusion.models.UNetModel` trained with the diffusion's loss),
            ``"generator"`` (Diffusion Inversion's :class:`~lt_diffusion.inversion.ClassTableGenerator`, chapter 08),
            ``"noisy_classifier"`` (ADM's :class:`~lt_diffusion.models.EncoderUNetModel` on q_sample-noised images,
            chapters 03, 04, 07) or ``"classifier"`` (a clean ResNet-18 / tiny CNN with random crop + flip,
            chapters 07, 08).
        model: a :class:`UNetConfig` (denoiser, generator), a :class:`ClassifierConfig` (noisy classifier) or an
            architecture name in :data:`CLASSIFIER_ARCHS` (classifier).
        train: the :class:`TrainConfig` handed to the Trainer (seed, device, progress are set at run time).
        data: the training images.
        diffusion: the forward process (and loss, and hooks) of a denoiser, generator or noisy classifier.
        random_crop: random crop with zero padding of 1/8 of the image size (classifier only; flips are
            ``train.random_flip``).
        label: a display name (default: the arm's key in its preset).
    """

    kind: str
    model: Any
    train: TrainConfig
    data: DataSpec = field(default_factory=DataSpec)
    diffusion: Optional[DiffusionSpec] = None
    random_crop: bool = False
    label: str = ""

    def __post_init__(self):
        if self.kind not in ARM_KINDS:
            raise ValueError(f"arm kind must be one of {ARM_KINDS}, got {self.kind!r}")
        if self.kind != "classifier" and self.diffusion is None:
            raise ValueError(f"a {self.kind} arm needs a DiffusionSpec (the forward process it is trained on)")
        if self.kind in ("denoiser", "generator"):
            if not isinstance(self.model, UNetConfig):
                raise ValueError(f"a {self.kind} arm needs a UNetConfig, got {type(self.model).__name__}")
            if self.model.learn_sigma != self.diffusion.learn_sigma:
                raise ValueError(f"model.learn_sigma={self.model.learn_sigma} but diffusion.learn_sigma="
                                 f"{self.diffusion.learn_sigma}: a learned-variance model outputs ε and v (2C "
                                 "channels)")
        if self.kind == "generator" and (self.model.cond_dim is None or self.model.num_classes is not None
                                         or self.train.num_classes is None):
            raise ValueError("a generator arm needs a UNetConfig with cond_dim set and num_classes=None, and "
                             "train.num_classes (the rows of its class table)")
        if self.kind == "noisy_classifier" and not isinstance(self.model, ClassifierConfig):
            raise ValueError(f"a noisy_classifier arm needs a ClassifierConfig, got {type(self.model).__name__}")
        if self.kind == "classifier" and (self.model not in CLASSIFIER_ARCHS or self.train.num_classes is None):
            raise ValueError(f"a classifier arm needs model in {CLASSIFIER_ARCHS} and train.num_classes, got "
                             f"{self.model!r}, {self.train.num_classes}")
        if self.kind == "classifier" and self.train.data_range is not None:
            raise ValueError("a classifier arm trains on images normalised with CIFAR-10's channel mean and std "
                             "(values outside [-1, 1], see lt_diffusion.classify): set train.data_range=None")
        if self.random_crop and self.kind != "classifier":
            raise ValueError("random_crop is part of the clean classifier recipe (kind='classifier')")
        conditional = self.train.num_classes is not None or getattr(self.model, "num_classes", None) is not None
        if self.diffusion is not None and self.diffusion.cbdm_tau > 0 and not conditional:
            raise ValueError("the CBDM regulariser compares predictions under two labels: it needs a "
                             "class-conditional model (model.num_classes)")


@dataclass(frozen=True, kw_only=True)
class ChapterPreset:
    """What every chapter preset holds; each chapter adds its own flat values in a subclass.

    Attributes:
        scale: ``"smoke"`` (CPU, CI), ``"book"`` (one GPU, minutes) or ``"paper"`` (the paper's settings).
        arms: every training run of the chapter by name.
        chapter: the chapter's key (``"p2"``, ...), set by :func:`lt_diffusion.presets.get_preset`; saved runs
            record it (:mod:`lt_diffusion.experiments.runs`).
        eval: sampling and scoring.
        comparable: False for smoke, whose numbers are printed with "smoke: not comparable".
        note: what this scale can and cannot show.
    """

    scale: str
    arms: Dict[str, Arm]
    eval: EvalSpec
    comparable: bool = True
    note: str = ""
    chapter: str = ""

    def __post_init__(self):
        if self.scale not in ("smoke", "book", "paper"):
            raise ValueError(f"scale must be 'smoke', 'book' or 'paper', got {self.scale!r}")
        for name, arm in self.arms.items():
            if arm.data.from_arm is not None and arm.data.from_arm not in self.arms:
                raise ValueError(f"arm {name!r} takes its data from {arm.data.from_arm!r}, which is not an arm "
                                 f"of this preset ({sorted(self.arms)})")

    def arm(self, name: str) -> Arm:
        """The arm called ``name``; a ``ValueError`` lists the arms otherwise."""
        if name not in self.arms:
            raise ValueError(f"unknown arm {name!r}; this preset has {sorted(self.arms)}")
        return self.arms[name]
