"""The noisy classifier (ADM Sec. 4) trained by the Trainer: noised inputs, original-scale t, generic labels."""
import torch
from torch import nn

from lt_diffusion.classifier_train import NoisyClassifierLoss, accuracy_vs_t, default_eval_timesteps
from lt_diffusion.data import ImageDataset
from lt_diffusion.diffusion import create_diffusion
from lt_diffusion.experiments import Arm, DiffusionSpec, train_model
from lt_diffusion.models import ClassifierConfig
from lt_diffusion.train import TrainConfig, Trainer


def _brightness_dataset(n=256, size=8, seed=0):
    """Two 'classes' told apart by mean brightness: easy when clean, impossible at pure noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    base = torch.where(y[:, None, None, None] == 1, 200.0, 55.0)
    x = (base + 20 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 255).to(torch.uint8)
    return ImageDataset(x, y, ["dark", "bright"])


class _RecordingClassifier(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.lin = nn.Linear(1, k)
        self.seen_t = []

    def forward(self, x, t):
        self.seen_t.append(t.detach().clone())
        return self.lin(x.mean(dim=(1, 2, 3))[:, None])


def _train(clf, diffusion, data, steps, lr, batch_size=32):
    loader = iter(((data.images[i] / 127.5 - 1.0, data.labels[i]) for i in
                   (torch.randint(0, len(data), (batch_size,), generator=torch.Generator().manual_seed(s))
                    for s in range(steps))))
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, num_classes=2, device="cpu", progress=False,
                      log_every=steps)
    return Trainer(clf, NoisyClassifierLoss(diffusion), loader, cfg).run()


def test_classifier_learns_and_accuracy_falls_with_t():
    ds = _brightness_dataset()
    diffusion = create_diffusion(steps=100, noise_schedule="linear")
    clf = _RecordingClassifier(2)
    history = _train(clf, diffusion, ds, steps=150, lr=5e-2)
    assert history[-1]["step"] == 150 and 0.0 <= history[-1]["accuracy"] <= 1.0
    held = _brightness_dataset(n=200, seed=1)
    acc = accuracy_vs_t(clf, diffusion, held.images, held.labels, timesteps=[0, 99], batch_size=64)
    assert acc["t"] == [0, 99]
    assert acc["accuracy"][0] > 0.9           # clean: brightness is obvious
    assert acc["accuracy"][1] < 0.75          # x_T is almost pure noise
    assert acc["alpha_bar"][0] > acc["alpha_bar"][1]


def test_encoder_unet_arm_trains_on_noised_images():
    cfg = ClassifierConfig(num_classes=2, image_size=8, model_channels=16, num_res_blocks=1, attention_resolutions=(),
                           channel_mult=(1, 2), num_head_channels=16, pool="adaptive")
    arm = Arm("noisy_classifier", cfg, TrainConfig(steps=2, batch_size=8, lr=1e-3, log_every=1),
              diffusion=DiffusionSpec(steps=50))
    run = train_model(arm, data=_brightness_dataset(n=16), device="cpu")
    assert [h["step"] for h in run.history] == [1, 2] and run.history[0]["loss"] > 0 and not run.model.training


def test_spaced_diffusion_passes_original_timesteps_and_ordinal_labels():
    ds = _brightness_dataset(n=64)
    diffusion = create_diffusion(steps=100, noise_schedule="linear", timestep_respacing="10")
    clf = _RecordingClassifier(2)
    _train(clf, diffusion, ds, steps=3, lr=1e-3, batch_size=16)
    seen = torch.cat(clf.seen_t)
    assert set(seen.tolist()) <= set(diffusion.timestep_map.tolist())
    out = accuracy_vs_t(clf, diffusion, ds.images, ds.labels, timesteps=[0, 9], ordinal=True)
    assert out["t"] == [0, 99] and len(out["mae"]) == 2
    assert NoisyClassifierLoss(diffusion, max_t=4).num_timesteps == 4
    assert default_eval_timesteps(1000, 5) == [0, 250, 500, 749, 999]
